//! The node-local fan-out: which connection subscribed to which destination, and the
//! encode-once delivery of room events to them.

use crate::ports::{RoomEvent, RoomEventSink};

/// The node's subscriptions per destination. The broker adapter calls it as the node's
/// [`RoomEventSink`]; it encodes each event once as a `SharedMessage` and offers it to every
/// local subscriber's sink without waiting.
pub struct Hub {
    _private: (),
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Hub { _private: () }
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl RoomEventSink for Hub {
    fn on_event(&self, event: RoomEvent) {
        let _ = event;
        todo!()
    }
}
