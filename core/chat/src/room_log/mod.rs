//! The node's view of every room log it delivers: chat messages arrive from the broker in any
//! order, with holes (the broker is at most once); they leave in seq order with no holes.
//!
//! Sans-IO, in the manner of quinn-proto: messages, store reads and time come in as calls
//! ([`RoomLog::on_message`], [`RoomLog::on_repaired`], [`RoomLog::handle_timeout`]); what to
//! deliver comes out of [`RoomLog::poll_deliver`], what to read from the store out of
//! [`RoomLog::poll_repair`], and when to call again out of [`RoomLog::poll_timeout`].
//!
//! Only rooms with local subscribers are tracked ([`RoomLog::track`]); a tracked room's
//! starting point is the store's head read by its first subscriber ([`RoomLog::observe_head`]).
//! When a message arrives past a hole, later ones are held for [`RoomLogConfig::gap_wait`]
//! (the missing one is usually a few microseconds behind, published by another writer), then
//! the hole is read from the store, which has every message up to any seq it handed out.

use crate::model::{ChatMessage, RoomId, Seq};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How the log waits and repairs.
#[derive(Debug, Clone)]
pub struct RoomLogConfig {
    /// How long messages after a hole are held before the hole is read from the store.
    pub gap_wait: Duration,
    /// Messages held per room at most; later ones are dropped and read back by the repair.
    pub max_held: usize,
    /// Messages one repair reads at most (a longer hole takes several reads).
    pub repair_batch: usize,
    /// How long after a failed repair the next one is tried.
    pub retry_after: Duration,
}

impl Default for RoomLogConfig {
    fn default() -> Self {
        RoomLogConfig {
            gap_wait: Duration::from_millis(200),
            max_held: 1024,
            repair_batch: 500,
            retry_after: Duration::from_millis(500),
        }
    }
}

/// A read the log needs from the store: the messages of `room` after seq `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The room with a hole.
    pub room: RoomId,
    /// The last seq delivered; the hole starts after it.
    pub after: Seq,
    /// Read at most this many.
    pub limit: usize,
}

/// What the log knows of one tracked room.
#[derive(Debug, Default)]
struct Track {
    /// The last seq handed out for delivery; `None` until the store's head is known.
    delivered: Option<Seq>,
    /// Messages that arrived past a hole, by seq.
    held: BTreeMap<Seq, ChatMessage>,
    /// When the next repair is due.
    repair_due: Option<Instant>,
    /// A repair of this room is being read.
    repairing: bool,
    /// The due repair must be made even if the held messages close the hole meanwhile: the
    /// broker may have lost messages, or the store was seen ahead of delivery.
    forced: bool,
}

/// The ordering and repair state of every tracked room of one node.
#[derive(Debug)]
pub struct RoomLog {
    config: RoomLogConfig,
    rooms: HashMap<RoomId, Track>,
    deliver: VecDeque<ChatMessage>,
    repairs: VecDeque<Repair>,
    /// Holes repaired from the store since the start (for metrics and tests).
    repaired: u64,
    /// A deadline was set since [`RoomLog::take_timers_changed`] was last called.
    timers_changed: bool,
}

impl RoomLog {
    /// A log tracking no room.
    pub fn new(config: RoomLogConfig) -> Self {
        RoomLog {
            config,
            rooms: HashMap::new(),
            deliver: VecDeque::new(),
            repairs: VecDeque::new(),
            repaired: 0,
            timers_changed: false,
        }
    }

    /// `room` has a local subscriber: its messages are ordered from now on. Idempotent.
    pub fn track(&mut self, room: &RoomId) {
        if !self.rooms.contains_key(room) {
            self.rooms.insert(room.clone(), Track::default());
        }
    }

    /// `room` has no local subscriber any more: forget it (and what it held).
    pub fn untrack(&mut self, room: &RoomId) {
        self.rooms.remove(room);
    }

    /// Whether `room` is tracked.
    pub fn is_tracked(&self, room: &RoomId) -> bool {
        self.rooms.contains_key(room)
    }

    /// The last seq of `room` handed out for delivery, once known.
    pub fn delivered(&self, room: &RoomId) -> Option<Seq> {
        self.rooms.get(room).and_then(|track| track.delivered)
    }

    /// Messages read from the store to fill holes, since the start.
    pub fn repaired(&self) -> u64 {
        self.repaired
    }

    /// The store's head of `room` was `head` at some point after the room was tracked: the
    /// first such call sets where delivery starts (a new subscriber gets what comes after
    /// the head it read); a later head past what was delivered is a hole to fill.
    pub fn observe_head(&mut self, room: &RoomId, head: Seq, now: Instant) {
        let gap_wait = self.config.gap_wait;
        let Some(track) = self.rooms.get_mut(room) else {
            return;
        };
        match track.delivered {
            None => {
                track.delivered = Some(head);
                track.held = track.held.split_off(&head.saturating_add(1));
                self.release(room, now);
            }
            Some(delivered) if head > delivered => {
                // Stored but not seen yet: most likely still on its way through the broker.
                let due = now + gap_wait;
                track.repair_due = Some(track.repair_due.map_or(due, |at| at.min(due)));
                track.forced = true;
            }
            Some(_) => {}
        }
    }

    /// A chat message from the broker.
    pub fn on_message(&mut self, message: ChatMessage, now: Instant) {
        let Some(room) = RoomId::parse(&message.room_id) else {
            return;
        };
        if self.accept(&room, message, now) {
            self.release(&room, now);
        }
    }

    /// The broker may have lost messages (its link dropped or was re-established): every
    /// tracked room is read from the store after what it delivered, before what arrives
    /// later can pass.
    pub fn on_reset(&mut self, now: Instant) {
        for track in self.rooms.values_mut() {
            if track.delivered.is_some() {
                track.repair_due = Some(now);
                track.forced = true;
            }
        }
    }

    /// Turns due repairs into [`Repair`]s (see [`RoomLog::poll_repair`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        let limit = self.config.repair_batch.max(1);
        for (room, track) in &mut self.rooms {
            let due = track.repair_due.is_some_and(|at| at <= now);
            let Some(after) = track.delivered.filter(|_| due && !track.repairing) else {
                continue;
            };
            track.repair_due = None;
            track.forced = false;
            track.repairing = true;
            self.repairs.push_back(Repair {
                room: room.clone(),
                after,
                limit,
            });
        }
    }

    /// The store's answer to `repair`: the messages after `repair.after`, oldest first, or
    /// `None` when the read failed (it is tried again after [`RoomLogConfig::retry_after`]).
    pub fn on_repaired(&mut self, repair: &Repair, read: Option<Vec<ChatMessage>>, now: Instant) {
        let retry_after = self.config.retry_after;
        let Some(track) = self.rooms.get_mut(&repair.room) else {
            return;
        };
        track.repairing = false;
        let Some(messages) = read else {
            track.repair_due = Some(now + retry_after);
            track.forced = true;
            return;
        };
        let full = messages.len() >= repair.limit;
        let mut filled = 0;
        for message in messages {
            if message.room_id == repair.room.as_str() && self.accept(&repair.room, message, now) {
                filled += 1;
            }
        }
        self.repaired += filled;
        self.release(&repair.room, now);
        if let Some(track) = self.rooms.get_mut(&repair.room)
            && full
        {
            // There may be more after what one read returned.
            track.repair_due = Some(now);
            track.forced = true;
        }
    }

    /// The next message to fan out: per room, in seq order with no holes.
    pub fn poll_deliver(&mut self) -> Option<ChatMessage> {
        self.deliver.pop_front()
    }

    /// The next store read to make; answer it with [`RoomLog::on_repaired`].
    pub fn poll_repair(&mut self) -> Option<Repair> {
        self.repairs.pop_front()
    }

    /// Whether a deadline was set since the last call: the caller's timer must be re-armed
    /// (cheaper than comparing [`RoomLog::poll_timeout`], which looks at every room).
    pub fn take_timers_changed(&mut self) -> bool {
        std::mem::take(&mut self.timers_changed)
    }

    /// When [`RoomLog::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rooms
            .values()
            .filter(|track| !track.repairing)
            .filter_map(|track| track.repair_due)
            .min()
    }

    /// Holds `message` unless it was delivered or is held already; true when it is new.
    fn accept(&mut self, room: &RoomId, message: ChatMessage, now: Instant) -> bool {
        let max_held = self.config.max_held;
        let gap_wait = self.config.gap_wait;
        let Some(track) = self.rooms.get_mut(room) else {
            return false;
        };
        if track
            .delivered
            .is_some_and(|delivered| message.seq <= delivered)
        {
            return false;
        }
        if track.held.contains_key(&message.seq) {
            return false;
        }
        if track.held.len() >= max_held {
            // Memory stays bounded: the newest held message makes room for an older one
            // (which is nearer to delivery); what is dropped is read back from the store,
            // even if nothing else is missing by then.
            track.forced = true;
            if track.repair_due.is_none() {
                track.repair_due = Some(now + gap_wait);
                self.timers_changed = true;
            }
            match track.held.last_key_value() {
                Some((&newest, _)) if newest > message.seq => {
                    track.held.remove(&newest);
                }
                _ => return false,
            }
        }
        track.held.insert(message.seq, message);
        true
    }

    /// Moves the held messages that continue the room's log to the delivery queue, and
    /// schedules a repair when a hole is left behind them.
    fn release(&mut self, room: &RoomId, now: Instant) {
        let gap_wait = self.config.gap_wait;
        let Some(track) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(mut delivered) = track.delivered else {
            return;
        };
        while let Some(entry) = track.held.first_entry() {
            if *entry.key() != delivered + 1 {
                break;
            }
            delivered += 1;
            self.deliver.push_back(entry.remove());
        }
        track.delivered = Some(delivered);
        if !track.held.is_empty() {
            if track.repair_due.is_none() {
                track.repair_due = Some(now + gap_wait);
                self.timers_changed = true;
            }
        } else if !track.forced {
            // The hole closed by itself: nothing to read.
            track.repair_due = None;
        }
    }
}

#[cfg(test)]
mod tests;
