//! # rtchat-stomp
//!
//! A sans-IO STOMP 1.0, 1.1 and 1.2 engine for servers. Bytes and [`std::time::Instant`]s go in;
//! frames, bytes to write and timer deadlines come out. No sockets, no clocks, no async
//! runtime: every behaviour is a plain unit test, and every transport (WebSocket,
//! WebTransport, an in-process test driver) behaves the same because it runs this same code.
//!
//! - [`parse`]: an incremental, bounded frame parser (`Complete(n)` / `Partial`).
//! - [`encode`]: frames to bytes, and [`SharedMessage`] for fan-out without re-encoding.
//! - [`session`]: the per-connection state machine ([`Session`]).

pub mod encode;
mod escape;
pub mod frame;
pub mod parse;
pub mod rate;
pub mod session;

/// Header values shared with the buffer they were parsed from ([`Headers::get_shared`],
/// [`ReceiptId`]).
pub use bytestring::ByteString;
pub use encode::{SharedMessage, encode_frame, encode_message_head, encode_to_bytes};
pub use frame::{Command, Frame, Headers, Version};
pub use parse::{Item, Limits, ParseError, Parser, Status, parse_frame};
pub use rate::TokenBucket;
pub use session::{
    AckMode, CloseReason, ConnectRequest, DeliverError, Event, HeartBeat, ProtocolError, ReceiptId,
    Session, SessionConfig, State, SubscriptionKey, Transmit,
};
