//! The subscription table and the messages each `client`/`client-individual` subscription
//! still owes an acknowledgement for.

use super::AckMode;
use super::events::SubscriptionKey;
use std::collections::VecDeque;

/// One active subscription.
#[derive(Debug)]
pub(super) struct Subscription {
    pub(super) key: SubscriptionKey,
    pub(super) id: String,
    pub(super) destination: String,
    pub(super) ack: AckMode,
    /// Deliveries not yet acknowledged, oldest first. Ack ids only grow, so this is sorted
    /// by `ack_id` and can be binary-searched.
    pending: VecDeque<Pending>,
}

/// A delivery waiting for ACK or NACK.
#[derive(Debug)]
struct Pending {
    /// Session-unique; the `ack` header of a 1.2 MESSAGE.
    ack_id: u64,
    /// What the application is told was acknowledged, and what 1.0/1.1 clients ACK by.
    message_id: String,
}

/// What an ACK or NACK resolved to.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Acknowledged {
    pub(super) subscription: String,
    pub(super) message_ids: Vec<String>,
}

/// Active subscriptions, in the order they were made (a `Vec`: there are few, and a stable
/// order keeps 1.0's ACK-by-message-id lookup deterministic).
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    entries: Vec<Subscription>,
    next_ack_id: u64,
    /// The last key handed out (keys start at 1).
    last_key: u64,
}

impl Subscriptions {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn get(&self, id: &str) -> Option<&Subscription> {
        self.entries.iter().find(|s| s.id == id)
    }

    pub(super) fn insert(
        &mut self,
        id: String,
        destination: String,
        ack: AckMode,
    ) -> SubscriptionKey {
        self.last_key += 1;
        let key = SubscriptionKey(self.last_key);
        self.entries.push(Subscription {
            key,
            id,
            destination,
            ack,
            pending: VecDeque::new(),
        });
        key
    }

    /// Removes the subscription called `id`, forgetting its pending deliveries.
    pub(super) fn remove(&mut self, id: &str) -> Option<Subscription> {
        let index = self.entries.iter().position(|s| s.id == id)?;
        Some(self.entries.remove(index))
    }

    /// The id of the first subscription to `destination` (STOMP 1.0 UNSUBSCRIBE by destination).
    pub(super) fn id_for_destination(&self, destination: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|s| s.destination == destination)
            .map(|s| s.id.as_str())
    }

    /// Records a delivery on subscription `id` and returns the subscription's key and the
    /// delivery's ack id, or `None` when the subscription acknowledges automatically. Fails
    /// when `max_pending` are already waiting.
    pub(super) fn track(
        &mut self,
        id: &str,
        message_id: &str,
        max_pending: usize,
    ) -> Result<(SubscriptionKey, Option<u64>), TrackError> {
        let subscription = self
            .entries
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or(TrackError::UnknownSubscription)?;
        let key = subscription.key;
        if subscription.ack == AckMode::Auto {
            return Ok((key, None));
        }
        if subscription.pending.len() >= max_pending {
            return Err(TrackError::TooManyPending);
        }
        let ack_id = self.next_ack_id;
        self.next_ack_id += 1;
        subscription.pending.push_back(Pending {
            ack_id,
            message_id: message_id.to_owned(),
        });
        Ok((key, Some(ack_id)))
    }

    /// Whether a delivery with this ack id is pending.
    pub(super) fn is_pending(&self, ack_id: u64) -> bool {
        self.locate(ack_id).is_some()
    }

    /// The ack id of the oldest pending delivery of `message_id`, on `subscription` when given
    /// (1.1 names it) or on any subscription (1.0 may not).
    pub(super) fn ack_id_for_message(
        &self,
        subscription: Option<&str>,
        message_id: &str,
    ) -> Option<u64> {
        self.entries
            .iter()
            .filter(|s| subscription.is_none_or(|id| s.id == id))
            .flat_map(|s| s.pending.iter())
            .find(|p| p.message_id == message_id)
            .map(|p| p.ack_id)
    }

    /// Settles the delivery `ack_id`: in `client` mode it and every earlier one on its
    /// subscription, in `client-individual` mode only it. `None` if it is not pending.
    pub(super) fn settle(&mut self, ack_id: u64) -> Option<Acknowledged> {
        let (index, position) = self.locate(ack_id)?;
        let subscription = &mut self.entries[index];
        let message_ids = match subscription.ack {
            AckMode::Client => subscription
                .pending
                .drain(..=position)
                .map(|p| p.message_id)
                .collect(),
            AckMode::ClientIndividual | AckMode::Auto => subscription
                .pending
                .remove(position)
                .map(|p| p.message_id)
                .into_iter()
                .collect(),
        };
        Some(Acknowledged {
            subscription: subscription.id.clone(),
            message_ids,
        })
    }

    /// (subscription index, position in its pending queue) of `ack_id`.
    fn locate(&self, ack_id: u64) -> Option<(usize, usize)> {
        self.entries.iter().enumerate().find_map(|(index, s)| {
            s.pending
                .binary_search_by_key(&ack_id, |p| p.ack_id)
                .ok()
                .map(|position| (index, position))
        })
    }
}

/// Why [`Subscriptions::track`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TrackError {
    UnknownSubscription,
    TooManyPending,
}
