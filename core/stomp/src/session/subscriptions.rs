//! The subscription registry: every subscription of the session by its [`SubscriptionKey`],
//! from SUBSCRIBE (awaiting the application's answer) to UNSUBSCRIBE, with the messages each
//! `client`/`client-individual` subscription still owes an acknowledgement for.

use super::AckMode;
use super::events::SubscriptionKey;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// One subscription the session holds, accepted or awaiting the application's answer.
#[derive(Debug)]
pub(super) struct Subscription {
    pub(super) key: SubscriptionKey,
    pub(super) id: String,
    pub(super) destination: String,
    pub(super) ack: AckMode,
    /// The application accepted it: MESSAGEs may be delivered on it. Until then it still
    /// takes its id and counts against the limit, as the client sees it as made.
    pub(super) accepted: bool,
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

/// Every subscription of the session, by key: a delivery (the hot path, once per MESSAGE)
/// finds its subscription in one hash lookup. Lookups by id or destination (SUBSCRIBE,
/// UNSUBSCRIBE, 1.0/1.1 ACK: once per client frame, over at most `max_subscriptions`) scan;
/// where several could match, the oldest (lowest key) wins, as the order they were made in
/// is what the client sees.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    by_key: HashMap<SubscriptionKey, Subscription, BuildHasherDefault<KeyHasher>>,
    next_ack_id: u64,
    /// The last key handed out (keys start at 1).
    last_key: u64,
}

impl Subscriptions {
    /// Subscriptions held, accepted or awaiting an answer.
    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// The subscription called `id`, accepted or awaiting an answer.
    pub(super) fn get(&self, id: &str) -> Option<&Subscription> {
        self.by_key.values().find(|s| s.id == id)
    }

    /// The subscription `key`, accepted or awaiting an answer.
    pub(super) fn by_key(&self, key: SubscriptionKey) -> Option<&Subscription> {
        self.by_key.get(&key)
    }

    /// Records a SUBSCRIBE awaiting the application's answer, under a key never used before
    /// in this session.
    pub(super) fn insert(
        &mut self,
        id: String,
        destination: String,
        ack: AckMode,
    ) -> SubscriptionKey {
        self.last_key += 1;
        let key = SubscriptionKey(self.last_key);
        self.by_key.insert(
            key,
            Subscription {
                key,
                id,
                destination,
                ack,
                accepted: false,
                pending: VecDeque::new(),
            },
        );
        key
    }

    /// The application accepted subscription `key`; false unless it awaited an answer.
    pub(super) fn accept(&mut self, key: SubscriptionKey) -> bool {
        match self.by_key.get_mut(&key) {
            Some(subscription) if !subscription.accepted => {
                subscription.accepted = true;
                true
            }
            _ => false,
        }
    }

    /// The application refused subscription `key`: it is forgotten (its id is free again);
    /// false unless it awaited an answer.
    pub(super) fn refuse(&mut self, key: SubscriptionKey) -> bool {
        if self.by_key.get(&key).is_some_and(|s| !s.accepted) {
            self.by_key.remove(&key);
            return true;
        }
        false
    }

    /// Removes the subscription called `id` (accepted or not), forgetting its pending
    /// deliveries.
    pub(super) fn remove(&mut self, id: &str) -> Option<Subscription> {
        let key = self.get(id)?.key;
        self.by_key.remove(&key)
    }

    /// The id of the oldest subscription to `destination` (STOMP 1.0 UNSUBSCRIBE by
    /// destination).
    pub(super) fn id_for_destination(&self, destination: &str) -> Option<&str> {
        self.by_key
            .values()
            .filter(|s| s.destination == destination)
            .min_by_key(|s| s.key)
            .map(|s| s.id.as_str())
    }

    /// Records a delivery on the accepted subscription `key` and returns its id and the
    /// delivery's ack id, or `None` for the ack id when the subscription acknowledges
    /// automatically. Fails when `max_pending` are already waiting.
    pub(super) fn track(
        &mut self,
        key: SubscriptionKey,
        message_id: &str,
        max_pending: usize,
    ) -> Result<(&str, Option<u64>), TrackError> {
        let subscription = self
            .by_key
            .get_mut(&key)
            .filter(|s| s.accepted)
            .ok_or(TrackError::UnknownSubscription)?;
        if subscription.ack == AckMode::Auto {
            return Ok((&subscription.id, None));
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
        Ok((&subscription.id, Some(ack_id)))
    }

    /// Whether a delivery with this ack id is pending.
    pub(super) fn is_pending(&self, ack_id: u64) -> bool {
        self.locate(ack_id).is_some()
    }

    /// The ack id of the oldest pending delivery of `message_id`, on `subscription` when given
    /// (1.1 names it) or on the oldest subscription that has one (1.0 may not name it).
    pub(super) fn ack_id_for_message(
        &self,
        subscription: Option<&str>,
        message_id: &str,
    ) -> Option<u64> {
        self.by_key
            .values()
            .filter(|s| subscription.is_none_or(|id| s.id == id))
            .filter_map(|s| {
                s.pending
                    .iter()
                    .find(|p| p.message_id == message_id)
                    .map(|p| (s.key, p.ack_id))
            })
            .min_by_key(|(key, _)| *key)
            .map(|(_, ack_id)| ack_id)
    }

    /// Settles the delivery `ack_id`: in `client` mode it and every earlier one on its
    /// subscription, in `client-individual` mode only it. `None` if it is not pending.
    pub(super) fn settle(&mut self, ack_id: u64) -> Option<Acknowledged> {
        let (key, position) = self.locate(ack_id)?;
        let subscription = self.by_key.get_mut(&key)?;
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

    /// (subscription key, position in its pending queue) of `ack_id`. Ack ids are unique in
    /// the session, so at most one subscription has it.
    fn locate(&self, ack_id: u64) -> Option<(SubscriptionKey, usize)> {
        self.by_key.values().find_map(|s| {
            s.pending
                .binary_search_by_key(&ack_id, |p| p.ack_id)
                .ok()
                .map(|position| (s.key, position))
        })
    }
}

/// Why [`Subscriptions::track`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TrackError {
    /// No accepted subscription has the key.
    UnknownSubscription,
    TooManyPending,
}

/// Hashes a [`SubscriptionKey`]: keys are small consecutive numbers the session made up (the
/// peer cannot choose them), so one multiplication spreads them over the table's buckets;
/// SipHash's protection against chosen keys would only cost time on every delivery.
#[derive(Debug, Default)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `SubscriptionKey`'s derived `Hash`; this keeps the
        // hasher correct for anything else.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(FIBONACCI);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: the high bits (which the table uses for its control bytes) and
        // the low bits (which pick the bucket) both depend on every bit of the key.
        self.0 = (self.0 ^ n).wrapping_mul(FIBONACCI);
    }
}

/// 2^64 divided by the golden ratio, odd.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;
