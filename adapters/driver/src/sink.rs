//! The bounded outbound queue between the hub and one connection.

use rtchat_core::{ConnectionSink, Delivery, OfferError};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Notify, mpsc};

/// A [`ConnectionSink`] over a bounded tokio channel. When the queue is full the connection is
/// marked slow and its driver is woken to close it: the room never waits for one reader.
#[derive(Debug)]
pub struct ChannelSink {
    queue: mpsc::Sender<Delivery>,
    slow: AtomicBool,
    slow_notify: Notify,
}

impl ChannelSink {
    /// A sink holding at most `capacity` deliveries, and the receiving end for the driver.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Delivery>) {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let sink = ChannelSink {
            queue,
            slow: AtomicBool::new(false),
            slow_notify: Notify::new(),
        };
        (sink, receiver)
    }

    /// True once an offer found the queue full.
    pub fn is_slow(&self) -> bool {
        self.slow.load(Ordering::Acquire)
    }

    /// Resolves once the connection has been marked slow.
    pub async fn marked_slow(&self) {
        loop {
            let notified = self.slow_notify.notified();
            if self.is_slow() {
                return;
            }
            notified.await;
        }
    }
}

impl ConnectionSink for ChannelSink {
    fn offer(&self, delivery: Delivery) -> Result<(), OfferError> {
        if self.is_slow() {
            // Already condemned: dropping further deliveries keeps its memory bounded.
            return Err(OfferError::Full);
        }
        match self.queue.try_send(delivery) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.slow.store(true, Ordering::Release);
                self.slow_notify.notify_one();
                Err(OfferError::Full)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(OfferError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtchat_stomp::{Headers, SharedMessage};
    use std::sync::Arc;

    fn delivery() -> Delivery {
        Delivery {
            subscription: Arc::from("sub-0"),
            message_id: Some(1),
            message: SharedMessage::new(
                "/sub/channel/lobby",
                "1",
                Some("application/json"),
                &Headers::new(),
                Bytes::from_static(b"{}"),
            ),
        }
    }

    #[tokio::test]
    async fn a_full_queue_marks_the_connection_slow_and_refuses_more() {
        let (sink, mut receiver) = ChannelSink::new(2);
        assert_eq!(sink.offer(delivery()), Ok(()));
        assert_eq!(sink.offer(delivery()), Ok(()));
        assert!(!sink.is_slow());
        assert_eq!(sink.offer(delivery()), Err(OfferError::Full));
        assert!(sink.is_slow());
        sink.marked_slow().await;
        // Even after the reader catches up, a condemned connection gets nothing more.
        assert!(receiver.recv().await.is_some());
        assert_eq!(sink.offer(delivery()), Err(OfferError::Full));
    }

    #[tokio::test]
    async fn offering_to_a_finished_connection_says_closed() {
        let (sink, receiver) = ChannelSink::new(2);
        drop(receiver);
        assert_eq!(sink.offer(delivery()), Err(OfferError::Closed));
        assert!(!sink.is_slow());
    }
}
