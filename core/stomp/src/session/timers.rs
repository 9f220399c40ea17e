//! The session's deadlines: CONNECT in time, heart-beats out, and the peer's heart-beats in.

use super::config::{HeartBeat, MIN_HEART_BEAT_GRACE};
use super::{Phase, Session};
use std::time::{Duration, Instant};

/// The deadlines a session keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// CONNECT must arrive and be accepted by then.
    Connect,
    /// Nothing was sent for the negotiated send interval: time for a heart-beat.
    SendHeartBeat,
    /// Nothing was received for the negotiated receive interval plus grace: the peer is gone.
    Receive,
}

impl Timer {
    pub(super) const ALL: [Timer; 3] = [Timer::Connect, Timer::SendHeartBeat, Timer::Receive];
}

/// The EOL a heart-beat is made of.
pub(super) const HEART_BEAT: &[u8] = b"\n";

/// The negotiated heart-beat intervals; zero means off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Negotiated {
    pub(super) send_every: Duration,
    pub(super) receive_every: Duration,
}

impl Negotiated {
    /// The spec's rule: each direction runs at the slower of what the sender can do and what
    /// the receiver wants, and not at all when either side says zero.
    pub(super) fn new(server: HeartBeat, client: HeartBeat) -> Self {
        fn slower_unless_off(a: Duration, b: Duration) -> Duration {
            if a.is_zero() || b.is_zero() {
                Duration::ZERO
            } else {
                a.max(b)
            }
        }
        Negotiated {
            send_every: slower_unless_off(server.send_every, client.want_every),
            receive_every: slower_unless_off(client.send_every, server.want_every),
        }
    }
}

/// The tolerance past a receive interval of `every`: the interval again, within
/// [`MIN_HEART_BEAT_GRACE`] and `max` (a `max` below the minimum still allows the minimum).
fn heart_beat_grace(every: Duration, max: Duration) -> Duration {
    every.min(max).max(MIN_HEART_BEAT_GRACE)
}

impl Session {
    /// When `timer` fires, if it runs in the session's current phase.
    pub(super) fn deadline(&self, timer: Timer) -> Option<Instant> {
        match (timer, &self.phase) {
            (Timer::Connect, Phase::AwaitingConnect { deadline }) => *deadline,
            (Timer::Connect, Phase::Authenticating(authenticating)) => authenticating.deadline,
            (Timer::SendHeartBeat, Phase::Connected(connected)) => {
                let every = connected.heart_beat.send_every;
                if every.is_zero() {
                    return None;
                }
                self.out.last_sent.checked_add(every)
            }
            (Timer::Receive, Phase::Connected(connected)) => {
                let every = connected.heart_beat.receive_every;
                if every.is_zero() {
                    return None;
                }
                // An absurd interval from the peer overflows to "never", not a panic.
                self.last_received
                    .checked_add(every)?
                    .checked_add(heart_beat_grace(every, self.config.heart_beat_grace))
            }
            _ => None,
        }
    }

    /// Moves the session's notion of the present forward to `now` (never back).
    pub(super) fn observe(&mut self, now: Instant) {
        self.out.latest_now = self.out.latest_now.max(now);
    }
}
