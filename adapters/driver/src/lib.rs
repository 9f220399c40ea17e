//! # rtchat-driver
//!
//! Runs one STOMP connection on tokio. The protocol lives in the sans-IO
//! [`rtchat_stomp::Session`] and the chat in [`rtchat_chat::ChatConnection`]; this crate only
//! moves things between them and the world: bytes from a [`Transport`], deliveries from the
//! hub's bounded queue, and time. Every transport (WebSocket, WebTransport, the in-memory pair
//! used by tests and the conformance suite) runs this same loop, so they behave the same.
//!
//! The I/O a connection's frames need from the store, presence and broker comes out of the
//! core as plain [`rtchat_chat::Job`]s; [`run_job`] runs each against the ports and hands back
//! what it found.
//!
//! The use cases that wait on the ports (assembling a node, the HTTP API's reads and room
//! creation, posting from outside a connection) are [`ChatUseCases`], on the core's
//! [`rtchat_chat::ChatService`].
//!
//! It also runs the node's own tasks: the room writers ([`RoomWriters`], group commit), the
//! room-log repair task ([`spawn_room_log_repairs`]) and the room sweeper
//! ([`spawn_room_sweeper`], rooms idle past a TTL).

mod close_log;
mod connection;
mod jobs;
mod memory;
mod repair;
mod room_sweeper;
mod sink;
mod transport;
mod use_cases;
mod writer;

pub use connection::{DriverConfig, Shutdown, ShutdownSignal, run_connection};
pub use jobs::run_job;
pub use memory::{MemoryClient, memory_pair};
pub use repair::{RepairTask, spawn_room_log_repairs};
pub use room_sweeper::{
    MAX_SWEEP_INTERVAL, RoomSweeper, RoomSweeperConfig, SWEEP_BATCH, spawn_room_sweeper, sweep,
};
pub use sink::{ChannelSink, Outbound};
pub use transport::{Incoming, Transport, TransportError};
pub use use_cases::ChatUseCases;
pub use writer::{RoomWriters, WriterConfig};
