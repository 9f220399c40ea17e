//! The in-process broker: one node, so publishing is calling the hub.

use async_trait::async_trait;
use rtchat_chat::{BackendError, Broker, RoomEvent, RoomEventSink};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// A [`Broker`] for a single node: `publish` calls the node's sink synchronously, so events
/// reach it in publish order and a `publish` that returned has been fanned out.
pub struct InProcessBroker {
    sink: Arc<dyn RoomEventSink>,
}

impl InProcessBroker {
    /// A broker that hands every event to `sink` (the node's [`rtchat_chat::Hub`]).
    pub fn new(sink: Arc<dyn RoomEventSink>) -> Self {
        InProcessBroker { sink }
    }
}

impl fmt::Debug for InProcessBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessBroker").finish_non_exhaustive()
    }
}

#[async_trait]
impl Broker for InProcessBroker {
    async fn publish(&self, event: RoomEvent) -> Result<(), BackendError> {
        self.sink.on_event(event, Instant::now());
        Ok(())
    }

    async fn publish_all(&self, events: Vec<RoomEvent>) -> Result<(), BackendError> {
        let now = Instant::now();
        for event in events {
            self.sink.on_event(event, now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<RoomEvent>>);

    impl RoomEventSink for Recorder {
        fn on_event(&self, event: RoomEvent, _now: Instant) {
            self.0.lock().expect("lock").push(event);
        }
    }

    #[tokio::test]
    async fn publish_reaches_the_sink_in_order_before_returning() {
        let recorder = Arc::new(Recorder::default());
        let broker = InProcessBroker::new(recorder.clone());
        for count in 1..=3 {
            broker
                .publish(RoomEvent::Entry { count })
                .await
                .expect("publish");
        }
        let seen = recorder.0.lock().expect("lock").clone();
        assert_eq!(
            seen,
            (1..=3)
                .map(|count| RoomEvent::Entry { count })
                .collect::<Vec<_>>()
        );
    }
}
