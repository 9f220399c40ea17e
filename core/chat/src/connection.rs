//! One STOMP connection's view of the chat: maps the engine's [`Event`]s to the contract's
//! destinations and answers through the [`Session`].

use crate::ports::Delivery;
use rtchat_stomp::{Event, Session};
use std::time::Instant;

/// The chat side of one STOMP connection. The driver calls [`ChatConnection::handle`] for every
/// event the session yields, [`ChatConnection::deliver`] for every [`Delivery`] the hub queued,
/// and [`ChatConnection::closed`] once, when the connection is over (whatever the reason).
pub struct ChatConnection {
    _private: (),
}

impl ChatConnection {
    /// Answers one session event (CONNECT authentication, SEND routing, SUBSCRIBE, ...).
    pub async fn handle(&mut self, event: Event, session: &mut Session, now: Instant) {
        let _ = (event, session, now);
        todo!()
    }

    /// Puts one queued delivery on the wire (dropping duplicates after a `since-id` replay).
    /// Returns false when the session refused it as a slow consumer; the driver then closes.
    pub fn deliver(&mut self, delivery: Delivery, session: &mut Session) -> bool {
        let _ = (delivery, session);
        todo!()
    }

    /// The connection ended: leave rooms, update counts. Idempotent.
    pub async fn closed(&mut self) {
        todo!()
    }
}
