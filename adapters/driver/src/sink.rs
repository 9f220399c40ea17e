//! The bounded outbound queue between the hub and one connection.

use rtchat_chat::{ConnectionSink, Delivery, OfferError, SendOutcome};
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

/// A [`ConnectionSink`] over a bounded queue. When the queue is full the connection is marked
/// slow and its driver is woken to close it: the room never waits for one reader.
///
/// A plain `VecDeque` behind a mutex rather than a tokio channel: it allocates nothing while
/// the connection is idle (a tokio channel allocates a block of 32 slots up front, kilobytes
/// on every one of thousands of idle connections), and the driver takes a whole batch under
/// one lock.
#[derive(Debug)]
pub struct ChannelSink {
    state: Mutex<QueueState>,
    /// Wakes the driver: deliveries arrived, or the connection was marked slow.
    wake: Notify,
    capacity: usize,
}

#[derive(Debug, Default)]
struct QueueState {
    queue: VecDeque<Outbound>,
    /// Deliveries in `queue` (outcomes do not count against the capacity: the connection
    /// bounds its SENDs in flight itself).
    deliveries: usize,
    slow: bool,
    closed: bool,
}

/// What the hub and the room writers queue for a connection, in the order they queued it.
#[derive(Debug)]
pub enum Outbound {
    /// A message for one of its subscriptions.
    Delivery(Delivery),
    /// The outcome of one of its SENDs.
    Outcome(SendOutcome),
}

/// Queues this long are given back to the allocator once drained, so one burst does not pin
/// memory on a connection for the rest of its life.
const SHRINK_ABOVE: usize = 64;

impl ChannelSink {
    /// A sink holding at most `capacity` deliveries.
    pub fn new(capacity: usize) -> Self {
        ChannelSink {
            state: Mutex::new(QueueState::default()),
            wake: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // The state stays consistent even if a holder panicked: every update is a single push,
        // drain or flag store.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// True once an offer found the queue full.
    pub fn is_slow(&self) -> bool {
        self.lock().slow
    }

    /// Moves up to `limit` queued items into `out`; returns whether the connection is slow.
    pub fn take(&self, out: &mut Vec<Outbound>, limit: usize) -> bool {
        let mut state = self.lock();
        let count = state.queue.len().min(limit);
        let taken = state.queue.drain(..count);
        let before = out.len();
        out.extend(taken);
        let deliveries = out[before..]
            .iter()
            .filter(|item| matches!(item, Outbound::Delivery(_)))
            .count();
        state.deliveries -= deliveries;
        if state.queue.is_empty() && state.queue.capacity() > SHRINK_ABOVE {
            state.queue = VecDeque::new();
        }
        state.slow
    }

    /// Resolves when there is something to take or the connection was marked slow.
    pub async fn ready(&self) {
        loop {
            let notified = self.wake.notified();
            {
                let state = self.lock();
                if state.slow || !state.queue.is_empty() {
                    return;
                }
            }
            notified.await;
        }
    }

    /// The connection is over: further offers fail with [`OfferError::Closed`] and what is
    /// queued is dropped.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.queue = VecDeque::new();
        state.deliveries = 0;
    }
}

impl ConnectionSink for ChannelSink {
    fn offer(&self, delivery: Delivery) -> Result<(), OfferError> {
        let mut state = self.lock();
        if state.closed {
            return Err(OfferError::Closed);
        }
        if state.slow {
            // Already condemned: dropping further deliveries keeps its memory bounded.
            return Err(OfferError::Full);
        }
        if state.deliveries >= self.capacity {
            state.slow = true;
            drop(state);
            self.wake.notify_one();
            return Err(OfferError::Full);
        }
        let was_empty = state.queue.is_empty();
        state.queue.push_back(Outbound::Delivery(delivery));
        state.deliveries += 1;
        drop(state);
        if was_empty {
            self.wake.notify_one();
        }
        Ok(())
    }

    fn outcome(&self, outcome: SendOutcome) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        let was_empty = state.queue.is_empty();
        state.queue.push_back(Outbound::Outcome(outcome));
        drop(state);
        if was_empty {
            self.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtchat_stomp::{Headers, SharedMessage, SubscriptionKey};
    use std::sync::Arc;

    fn delivery(id: u64) -> Delivery {
        Delivery {
            subscription: SubscriptionKey(1),
            seq: Some(id),
            message: SharedMessage::new(
                "/sub/channel/lobby",
                &id.to_string(),
                Some("application/json"),
                &Headers::new(),
                Bytes::from_static(b"{}"),
            ),
        }
    }

    #[tokio::test]
    async fn a_full_queue_marks_the_connection_slow_and_refuses_more() {
        let sink = ChannelSink::new(2);
        assert_eq!(sink.offer(delivery(1)), Ok(()));
        assert_eq!(sink.offer(delivery(2)), Ok(()));
        assert!(!sink.is_slow());
        assert_eq!(sink.offer(delivery(3)), Err(OfferError::Full));
        assert!(sink.is_slow());
        sink.ready().await;
        // Even after the reader catches up, a condemned connection gets nothing more.
        let mut taken = Vec::new();
        assert!(sink.take(&mut taken, 10), "still slow");
        assert_eq!(taken.len(), 2);
        assert_eq!(sink.offer(delivery(4)), Err(OfferError::Full));
    }

    #[tokio::test]
    async fn deliveries_come_out_in_order_in_bounded_batches() {
        let sink = ChannelSink::new(100);
        for id in 0..10 {
            assert_eq!(sink.offer(delivery(id)), Ok(()));
        }
        sink.ready().await;
        let mut taken = Vec::new();
        assert!(!sink.take(&mut taken, 4));
        let seqs: Vec<_> = taken
            .iter()
            .map(|item| match item {
                Outbound::Delivery(d) => d.seq,
                Outbound::Outcome(_) => None,
            })
            .collect();
        assert_eq!(seqs, [Some(0), Some(1), Some(2), Some(3)]);
        taken.clear();
        assert!(!sink.take(&mut taken, 100));
        assert_eq!(taken.len(), 6);
    }

    #[tokio::test]
    async fn ready_waits_for_an_offer() {
        let sink = Arc::new(ChannelSink::new(4));
        let waiter = tokio::spawn({
            let sink = sink.clone();
            async move { sink.ready().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        assert_eq!(sink.offer(delivery(1)), Ok(()));
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("woken by the offer")
            .expect("task");
    }

    #[test]
    fn outcomes_keep_their_place_and_do_not_count_as_deliveries() {
        let sink = ChannelSink::new(1);
        assert_eq!(sink.offer(delivery(1)), Ok(()));
        for ticket in 1..=3 {
            sink.outcome(SendOutcome {
                ticket,
                result: Err(rtchat_chat::ChatError::Unavailable),
            });
        }
        let mut taken = Vec::new();
        assert!(
            !sink.take(&mut taken, 10),
            "outcomes never make a connection slow"
        );
        assert!(matches!(taken[0], Outbound::Delivery(_)));
        let tickets: Vec<_> = taken[1..]
            .iter()
            .filter_map(|item| match item {
                Outbound::Outcome(outcome) => Some(outcome.ticket),
                Outbound::Delivery(_) => None,
            })
            .collect();
        assert_eq!(tickets, [1, 2, 3]);
        // The delivery was taken, so there is room for another.
        assert_eq!(sink.offer(delivery(2)), Ok(()));
    }

    #[test]
    fn offering_to_a_finished_connection_says_closed() {
        let sink = ChannelSink::new(2);
        assert_eq!(sink.offer(delivery(1)), Ok(()));
        sink.close();
        assert_eq!(sink.offer(delivery(2)), Err(OfferError::Closed));
        let mut taken = Vec::new();
        sink.take(&mut taken, 10);
        assert!(taken.is_empty(), "queued deliveries are dropped on close");
        assert!(!sink.is_slow());
    }
}
