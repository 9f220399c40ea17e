//! # rtchat-core
//!
//! The chat and room domain of rtchat, the ports (traits) its adapters implement, and the
//! application service that maps STOMP events to the chat contract. Pure: no sockets, no
//! clocks, no async runtime (async traits are only signatures here).

pub mod connection;
pub mod hub;
pub mod model;
pub mod ports;
pub mod service;

pub use connection::ChatConnection;
pub use hub::Hub;
pub use model::{ChatMessage, Identity, LOBBY, MessageId, NewMessage, Room, RoomId};
pub use ports::{
    BackendError, Broker, Clock, ConnectionSink, CreateRoomError, Delivery, MessageStore,
    OfferError, Presence, RoomEvent, RoomEventSink, RoomStore, SessionKey, TokenError, Tokens,
};
pub use service::{ChatConfig, ChatError, ChatService, InitOutcome, Ports};
