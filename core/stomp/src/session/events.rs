//! What a session hands out: events for the application and bytes for the transport.

use super::errors::ProtocolError;
use crate::frame::{Headers, Version};
use bytes::Bytes;
use bytestring::ByteString;

/// A `receipt` header value the application owes a RECEIPT for. It shares the buffer the
/// frame was read from (cloning it is a reference-count bump).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReceiptId(pub ByteString);

impl ReceiptId {
    /// The receipt id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One subscription from SUBSCRIBE to UNSUBSCRIBE: numbered by the session from 1, never
/// reused within it, even when the client reuses the subscription's id. The application
/// answers a SUBSCRIBE by it ([`Session::accept_subscription`](crate::Session::accept_subscription),
/// [`Session::refuse_subscription`](crate::Session::refuse_subscription)) and delivers by it
/// ([`Session::deliver`](crate::Session::deliver)), so a delivery meant for a subscription that
/// ended never reaches a later one with the same id. A transport that gives each subscription
/// a stream of its own (WebTransport's `per-subscription` mode) tells them apart by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionKey(pub u64);

impl std::fmt::Display for SubscriptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a subscription acknowledges messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AckMode {
    /// Messages count as acknowledged when sent.
    #[default]
    Auto,
    /// ACK of a message acknowledges it and every earlier one on the subscription.
    Client,
    /// ACK acknowledges exactly one message.
    ClientIndividual,
}

/// A CONNECT (or STOMP) frame the application must answer with
/// [`Session::accept`](crate::Session::accept) or [`Session::refuse`](crate::Session::refuse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The version negotiated from `accept-version`.
    pub version: Version,
    /// The `host` header (required by 1.1+, but we do not refuse its absence).
    pub host: Option<String>,
    /// `login`, if any.
    pub login: Option<String>,
    /// `passcode`, if any.
    pub passcode: Option<String>,
    /// All headers, e.g. `Authorization`.
    pub headers: Headers,
}

/// What the peer asked for, handed to the application by [`Session::poll_event`](crate::Session::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer sent CONNECT or STOMP with a version we share; answer with accept or refuse.
    Connect(ConnectRequest),
    /// A SEND (outside a transaction, or released by its COMMIT).
    Send {
        /// Where the client sent it.
        destination: String,
        /// All of the frame's headers, in wire order.
        headers: Headers,
        /// The body, shared with the parser's buffer (never copied).
        body: Bytes,
        /// The RECEIPT the application owes once the SEND took effect; `None` inside a
        /// transaction (the engine receipted it when it joined the transaction).
        receipt: Option<ReceiptId>,
    },
    /// A SUBSCRIBE, awaiting the application's answer, as a CONNECT does: call
    /// [`Session::accept_subscription`](crate::Session::accept_subscription) once MESSAGEs may
    /// flow on it, or [`Session::refuse_subscription`](crate::Session::refuse_subscription)
    /// (the engine sends nothing; the application says why in its own way). Until then the
    /// engine holds it as the client sees it, made: its id is taken (a second SUBSCRIBE with it
    /// is a protocol error) and it counts against
    /// [`SessionConfig::max_subscriptions`](crate::SessionConfig::max_subscriptions), but
    /// nothing can be delivered on it. The frames after it are read and answered as usual
    /// meanwhile; an UNSUBSCRIBE of it ends it (an [`Event::Unsubscribe`] with its key), and
    /// the answer that comes after is ignored.
    Subscribe {
        /// The subscription's key, from now until it ends.
        key: SubscriptionKey,
        /// The subscription id (1.0 without `id`: the destination).
        id: String,
        /// What to subscribe to.
        destination: String,
        /// How its messages are acknowledged.
        ack: AckMode,
        /// All of the frame's headers (e.g. `since-id`, `limit`).
        headers: Headers,
        /// The RECEIPT the application owes once the subscription is live.
        receipt: Option<ReceiptId>,
    },
    /// A subscription ended (accepted, or still awaiting its answer); the engine has
    /// forgotten it, and deliveries to its key fail from now on.
    Unsubscribe {
        /// The key the subscription had.
        key: SubscriptionKey,
        /// The subscription id.
        id: String,
        /// The destination it was subscribed to.
        destination: String,
        /// The RECEIPT the application owes.
        receipt: Option<ReceiptId>,
    },
    /// Messages acknowledged (for `client` mode, every message up to and including this one).
    Ack {
        /// The subscription the messages were delivered on.
        subscription: String,
        /// The `message-id`s acknowledged, oldest first.
        message_ids: Vec<String>,
        /// The RECEIPT the application owes (`None` inside a transaction).
        receipt: Option<ReceiptId>,
    },
    /// Messages refused by the client.
    Nack {
        /// The subscription the messages were delivered on.
        subscription: String,
        /// The `message-id`s refused, oldest first (cumulative in `client` mode, like ACK).
        message_ids: Vec<String>,
        /// The RECEIPT the application owes (`None` inside a transaction).
        receipt: Option<ReceiptId>,
    },
    /// The client sent DISCONNECT and [`SessionConfig::defer_disconnect`](crate::SessionConfig::defer_disconnect) is on: nothing more
    /// is read; call [`Session::disconnect`](crate::Session::disconnect) once every earlier frame is answered.
    Disconnect {
        /// The RECEIPT [`Session::disconnect`](crate::Session::disconnect) will send.
        receipt: Option<ReceiptId>,
    },
    /// A COMMIT: its held SEND/ACK/NACK events came just before this one.
    Commit {
        /// The transaction id.
        transaction: String,
        /// The RECEIPT the application owes once the released frames took effect.
        receipt: Option<ReceiptId>,
    },
    /// The connection is over (DISCONNECT, protocol error, timeout, or [`Session::close`](crate::Session::close));
    /// no event follows. Subscriptions and open transactions are gone.
    Closed(CloseReason),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent DISCONNECT.
    Disconnect,
    /// The application closed it (after [`Session::refuse`](crate::Session::refuse), [`Session::error`](crate::Session::error) or [`Session::close`](crate::Session::close)).
    Application,
    /// The peer broke the protocol; an ERROR was sent.
    ProtocolError(ProtocolError),
    /// No CONNECT in time.
    ConnectTimeout,
    /// The client went silent for longer than the negotiated heart-beat plus grace.
    HeartBeatTimeout,
    /// The transport ended (the owner called [`Session::handle_transport_closed`](crate::Session::handle_transport_closed)).
    TransportClosed,
}

/// Bytes to write to the transport: one STOMP frame or one heart-beat EOL per transmit, so a
/// message-oriented transport (WebSocket) sends each as one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A whole encoded frame, or a heart-beat (`\n`).
    Bytes(Bytes),
    /// A MESSAGE: the per-subscription head and the shared tail, never copied per subscriber.
    Message {
        /// The subscription the MESSAGE is delivered on.
        subscription: SubscriptionKey,
        /// `MESSAGE`, `subscription` and (1.2 client modes) `ack`: encoded per delivery.
        head: Bytes,
        /// The rest of the frame: a clone of [`SharedMessage::tail`](crate::SharedMessage::tail), shared by every delivery.
        tail: Bytes,
    },
}

impl Transmit {
    /// Total length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Transmit::Bytes(b) => b.len(),
            Transmit::Message { head, tail, .. } => head.len() + tail.len(),
        }
    }

    /// True for an empty transmit (never produced by the session).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunks in order, for vectored writes.
    pub fn chunks(&self) -> impl Iterator<Item = &Bytes> {
        let (first, second) = match self {
            Transmit::Bytes(b) => (b, None),
            Transmit::Message { head, tail, .. } => (head, Some(tail)),
        };
        std::iter::once(first).chain(second)
    }

    /// One contiguous buffer (copies a MESSAGE's two parts together).
    pub fn into_contiguous(self) -> Bytes {
        match self {
            Transmit::Bytes(b) => b,
            Transmit::Message { head, tail, .. } => {
                let mut out = bytes::BytesMut::with_capacity(head.len() + tail.len());
                out.extend_from_slice(&head);
                out.extend_from_slice(&tail);
                out.freeze()
            }
        }
    }
}
