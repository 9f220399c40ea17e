//! Why a session refused what the peer or the application asked.

use super::events::SubscriptionKey;
use super::transactions::TransactionError;
use crate::parse::ParseError;

/// A protocol violation by the peer. The engine sends an ERROR whose `message` header is this
/// error's text, then closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The bytes are not a STOMP frame (or break a parser limit).
    #[error("malformed frame: {0}")]
    Malformed(#[from] ParseError),
    /// A frame other than CONNECT or STOMP came first.
    #[error("frame received before CONNECT")]
    NotConnected,
    /// CONNECT or STOMP on a session that already has one.
    #[error("already connected")]
    AlreadyConnected,
    /// `accept-version` shares no version with the server's.
    #[error("supported protocol versions are {supported}")]
    UnsupportedVersion {
        /// The server's versions, comma-separated, as in the ERROR's `version` header.
        supported: String,
    },
    /// A server frame (CONNECTED, MESSAGE, RECEIPT, ERROR) sent by the client.
    #[error("{command} is not a client frame")]
    UnexpectedCommand {
        /// The command as written on the wire.
        command: &'static str,
    },
    /// A header the frame needs is absent.
    #[error("missing required header '{0}'")]
    MissingHeader(&'static str),
    /// A header has a value the spec does not allow.
    #[error("invalid header '{0}'")]
    InvalidHeader(&'static str),
    /// SUBSCRIBE with an `id` already active on this session.
    #[error("subscription id '{0}' already in use")]
    DuplicateSubscription(String),
    /// UNSUBSCRIBE (or a 1.1 ACK) naming no active subscription.
    #[error("no subscription with id '{0}'")]
    UnknownSubscription(String),
    /// SUBSCRIBE past [`SessionConfig::max_subscriptions`](crate::SessionConfig::max_subscriptions).
    #[error("too many subscriptions")]
    TooManySubscriptions,
    /// ACK or NACK of a message that is not waiting for one.
    #[error("no pending message with id '{0}'")]
    UnknownAck(String),
    /// BEGIN of a transaction that is already open.
    #[error("transaction '{0}' already begun")]
    DuplicateTransaction(String),
    /// COMMIT, ABORT or a transactional frame naming no open transaction.
    #[error("no transaction '{0}'")]
    UnknownTransaction(String),
    /// BEGIN past [`SessionConfig::max_transactions`](crate::SessionConfig::max_transactions).
    #[error("too many transactions")]
    TooManyTransactions,
    /// A frame past [`SessionConfig::max_frames_per_transaction`](crate::SessionConfig::max_frames_per_transaction).
    #[error("transaction too large")]
    TransactionTooLarge,
    /// The client sent more than the pipelining allowance while its CONNECT was being
    /// decided (see [`Session::handle_input`](crate::Session::handle_input)).
    #[error("too much data before CONNECTED")]
    TooMuchBeforeConnected,
    /// More frames than [`SessionConfig::max_frames_per_second`](crate::SessionConfig::max_frames_per_second) allows.
    #[error("too many frames: at most {per_second} per second")]
    TooManyFrames {
        /// The limit.
        per_second: u32,
    },
}

/// Why [`Session::deliver`](crate::Session::deliver) did not queue a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    /// The session has no accepted subscription with this key: it was never accepted, was
    /// refused, or ended (the client may have just unsubscribed).
    #[error("no accepted subscription with key {0}")]
    UnknownSubscription(SubscriptionKey),
    /// The subscription already holds [`SessionConfig::max_unacked_per_subscription`](crate::SessionConfig::max_unacked_per_subscription)
    /// unacknowledged messages: the client is not keeping up.
    #[error("too many unacknowledged messages on the subscription with key {0}")]
    TooManyUnacked(SubscriptionKey),
    /// The session is not (or no longer) connected.
    #[error("session is not connected")]
    NotConnected,
}

impl ProtocolError {
    /// The body of the ERROR for this error: what the client did wrong, in a sentence.
    pub fn explanation(&self) -> &'static str {
        match self {
            ProtocolError::Malformed(_) => "The bytes received do not form a valid STOMP frame.",
            ProtocolError::NotConnected => "The first frame must be CONNECT or STOMP.",
            ProtocolError::AlreadyConnected => "CONNECT may only be sent once per connection.",
            ProtocolError::UnsupportedVersion { .. } => {
                "The client's accept-version header names no protocol version this server speaks."
            }
            ProtocolError::UnexpectedCommand { .. } => {
                "Clients may not send CONNECTED, MESSAGE, RECEIPT or ERROR frames."
            }
            ProtocolError::MissingHeader(_) => {
                "The frame lacks a header the specification requires."
            }
            ProtocolError::InvalidHeader(_) => {
                "A header has a value the specification does not allow."
            }
            ProtocolError::DuplicateSubscription(_) => {
                "Subscription ids must be unique within a connection."
            }
            ProtocolError::UnknownSubscription(_) => {
                "The frame names a subscription that is not active."
            }
            ProtocolError::TooManySubscriptions => {
                "The connection has too many active subscriptions."
            }
            ProtocolError::UnknownAck(_) => "The frame acknowledges a message that is not pending.",
            ProtocolError::DuplicateTransaction(_) => "The transaction has already begun.",
            ProtocolError::UnknownTransaction(_) => {
                "The frame names a transaction that is not open."
            }
            ProtocolError::TooManyTransactions => "The connection has too many open transactions.",
            ProtocolError::TransactionTooLarge => "The transaction holds too many frames.",
            ProtocolError::TooMuchBeforeConnected => {
                "The client sent too much data before the server answered its CONNECT."
            }
            ProtocolError::TooManyFrames { .. } => {
                "The client sent frames faster than this server accepts from one connection."
            }
        }
    }

    /// The error a transaction operation on `transaction` failed with.
    pub(super) fn of_transaction(error: TransactionError, transaction: &str) -> ProtocolError {
        match error {
            TransactionError::Duplicate => {
                ProtocolError::DuplicateTransaction(transaction.to_owned())
            }
            TransactionError::Unknown => ProtocolError::UnknownTransaction(transaction.to_owned()),
            TransactionError::TooMany => ProtocolError::TooManyTransactions,
            TransactionError::TooLarge => ProtocolError::TransactionTooLarge,
        }
    }
}
