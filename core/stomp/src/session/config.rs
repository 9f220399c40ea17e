//! What a session needs to know before the first byte: the server's heart-beat wish and limits.

use crate::frame::Version;
use crate::parse::Limits;
use std::time::Duration;

/// How the server wants heart-beats, as the `heart-beat` header of CONNECTED would say:
/// `send_every` is the server's cx (how often it can send), `want_every` its cy (how often
/// it wants to hear from the client). Zero means "not at all".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartBeat {
    /// The smallest interval at which the server can send heart-beats.
    pub send_every: Duration,
    /// The interval at which the server wants heart-beats from the client.
    pub want_every: Duration,
}

impl HeartBeat {
    /// No heart-beats either way.
    pub const OFF: HeartBeat = HeartBeat {
        send_every: Duration::ZERO,
        want_every: Duration::ZERO,
    };

    /// Parses `"cx,cy"` in milliseconds, as in the `heart-beat` header and `--heart-beat`.
    pub fn parse(value: &str) -> Option<HeartBeat> {
        let (cx, cy) = value.split_once(',')?;
        Some(HeartBeat {
            send_every: Duration::from_millis(cx.trim().parse().ok()?),
            want_every: Duration::from_millis(cy.trim().parse().ok()?),
        })
    }
}

impl Default for HeartBeat {
    /// `25000,25000`, like Spring's recommended setting and Centrifugo's ping.
    fn default() -> Self {
        HeartBeat {
            send_every: Duration::from_secs(25),
            want_every: Duration::from_secs(25),
        }
    }
}

/// Everything a session needs to know before the first byte.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Versions this server speaks (all three by default).
    pub versions: Vec<Version>,
    /// The server's heart-beat wish.
    pub heart_beat: HeartBeat,
    /// The most tolerance a silent client gets past the negotiated receive interval before
    /// it is closed. The spec suggests some tolerance; the session allows the interval again,
    /// at least [`MIN_HEART_BEAT_GRACE`] (so a short interval survives a scheduling hiccup)
    /// and at most this.
    pub heart_beat_grace: Duration,
    /// A connection that has not sent CONNECT by then is closed.
    pub connect_timeout: Duration,
    /// Parser limits.
    pub limits: Limits,
    /// The `server` header of CONNECTED, e.g. `rtchat/0.1.0`.
    pub server_name: String,
    /// Active subscriptions per session.
    pub max_subscriptions: usize,
    /// Unacknowledged messages held per `client`/`client-individual` subscription;
    /// a delivery past this bound fails with [`DeliverError::TooManyUnacked`](crate::DeliverError::TooManyUnacked).
    pub max_unacked_per_subscription: usize,
    /// Open transactions per session.
    pub max_transactions: usize,
    /// Frames held in one transaction.
    pub max_frames_per_transaction: usize,
    /// Client frames per second, in bursts of as many; more is a protocol error
    /// ([`ProtocolError::TooManyFrames`](crate::ProtocolError::TooManyFrames)). Heart-beats do not count. 0 means unlimited.
    pub max_frames_per_second: u32,
    /// Whether a DISCONNECT waits for the application: the session yields
    /// [`Event::Disconnect`](crate::Event::Disconnect), reads nothing more, and sends the RECEIPT and closes only at
    /// [`Session::disconnect`](crate::Session::disconnect), so the application can first answer the frames before it
    /// (RECEIPTs of SENDs still being stored). Off: the RECEIPT goes at once.
    pub defer_disconnect: bool,
}

impl Default for SessionConfig {
    /// All versions, `25000,25000` heart-beats with as much grace, 10 s to connect, default
    /// parser limits, 64 subscriptions, 1024 unacknowledged messages each, 16 transactions of
    /// at most 256 frames.
    fn default() -> Self {
        SessionConfig {
            versions: Version::ALL.to_vec(),
            heart_beat: HeartBeat::default(),
            heart_beat_grace: Duration::from_secs(25),
            connect_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            server_name: concat!("rtchat/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_subscriptions: 64,
            max_unacked_per_subscription: 1024,
            max_transactions: 16,
            max_frames_per_transaction: 256,
            max_frames_per_second: 1000,
            defer_disconnect: false,
        }
    }
}

/// The least tolerance past the negotiated receive interval, whatever the interval.
pub const MIN_HEART_BEAT_GRACE: Duration = Duration::from_secs(1);
