//! The per-session frame budget: a token bucket over the `Instant`s the owner passes in.

use std::time::Instant;

/// Allows `per_second` client frames per second on average, in bursts of up to `per_second`.
/// Every frame costs the server work (parsing, often a store or a broadcast), so one client
/// may not send frames without end, whatever the application limits per destination.
#[derive(Debug, Clone)]
pub(super) struct FrameBudget {
    per_second: f64,
    available: f64,
    refilled_at: Instant,
}

impl FrameBudget {
    /// A full budget at `now`; `per_second == 0` means unlimited.
    pub(super) fn new(per_second: u32, now: Instant) -> Self {
        FrameBudget {
            per_second: f64::from(per_second),
            available: f64::from(per_second),
            refilled_at: now,
        }
    }

    /// Spends one frame at `now`; false when the budget is exhausted.
    pub(super) fn spend(&mut self, now: Instant) -> bool {
        if self.per_second == 0.0 {
            return true;
        }
        // Saturating: an `Instant` older than the last refill refills nothing.
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.refilled_at = self.refilled_at.max(now);
        self.available = (self.available + elapsed * self.per_second).min(self.per_second);
        if self.available >= 1.0 {
            self.available -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_up_to_the_rate_then_refills_with_time() {
        let start = Instant::now();
        let mut budget = FrameBudget::new(4, start);
        assert!((0..4).all(|_| budget.spend(start)));
        assert!(!budget.spend(start));
        assert!(budget.spend(start + Duration::from_millis(250)));
        assert!(!budget.spend(start + Duration::from_millis(250)));
        // Time going backwards (a caller's mistake) refills nothing and does not panic.
        assert!(!budget.spend(start));
    }

    #[test]
    fn zero_means_unlimited() {
        let start = Instant::now();
        let mut budget = FrameBudget::new(0, start);
        assert!((0..100_000).all(|_| budget.spend(start)));
    }
}
