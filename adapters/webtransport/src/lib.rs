//! # rtchat-webtransport
//!
//! STOMP over WebTransport (HTTP/3 on QUIC), through the same driver and engine as the
//! WebSocket transport. Built on [`web_transport_quinn`] (quinn underneath, rustls with
//! *ring*).
//!
//! ## The wire contract
//! - A client opens a WebTransport session on the server's path (default [`DEFAULT_PATH`],
//!   `/stomp`); other paths get a 404.
//! - The **first bidirectional stream the client opens** carries the STOMP byte stream, exactly
//!   as a TCP connection would: frames, EOL heart-beats and all, chunked any way. Further
//!   client streams and datagrams are not used (and not read).
//! - In [`StreamMode::Single`] (the default) the server opens no streams. In
//!   [`StreamMode::PerSubscription`] it writes each subscription's MESSAGE frames on a
//!   unidirectional stream it opens at the subscription's first MESSAGE and finishes when the
//!   subscription ends (the driver's [`end_subscription`](rtchat_driver::Transport::end_subscription));
//!   everything else stays on the bidirectional stream. No ordering holds across streams;
//!   clients cut each stream into whole frames ([`client::FrameSplitter`]) before parsing.
//!   docs/protocol.md ("Stream modes") is the definition.
//! - The STOMP session ends when either side finishes the stream or closes the session. The
//!   server finishes its send side after its last frame (an ERROR, a RECEIPT for DISCONNECT),
//!   waits (bounded) for the client to take it, then ends the session with a
//!   CLOSE_WEBTRANSPORT_SESSION capsule, code [`CLOSE_NORMAL`] (0) and reason
//!   [`REASON_DONE`], or [`REASON_GOING_AWAY`] when the server shuts down. A browser's
//!   `WebTransport.closed` therefore resolves (`{closeCode: 0, reason}`) instead of rejecting.
//! - Liveness is STOMP's own heart-beats; QUIC keep-alives and idle timeouts are the transport's
//!   business and do not count as STOMP liveness.
//!
//! A browser reaches a server with a self-signed certificate through
//! `new WebTransport(url, { serverCertificateHashes: [{ algorithm: "sha-256", value }] })`,
//! which requires an ECDSA P-256 certificate valid for at most 14 days: what
//! [`ServedCertificate::self_signed`] makes and [`rotation`] renews.
//!
//! The entry points: [`WebTransportServer::bind`], then [`WebTransportServer::serve`];
//! [`WebTransportServer::offer`] tells what to pin; [`client::connect`] is the client side.

mod certificate;
pub mod client;
pub mod rotation;
mod server;
mod stream;

pub use certificate::{CertificateError, CertificateHash, MAX_PINNED_VALIDITY, ServedCertificate};
pub use rotation::{CertificateOffer, RotationPolicy};
pub use server::{
    CertificateSource, DEFAULT_PATH, WebTransportConfig, WebTransportError, WebTransportServer,
};
pub use stream::{CLOSE_NORMAL, REASON_DONE, REASON_GOING_AWAY, StreamMode, WebTransportStream};
pub use web_transport_quinn;
