//! A token bucket driven by the `Instant`s the caller passes in (the engine reads no clock):
//! the session's frame budget, and the chat's per-connection SEND and SUBSCRIBE limits.

use std::time::Instant;

/// Allows `per_second` takes per second on average, in bursts of up to `per_second`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    tokens: f64,
    last_refill: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket. `per_second == 0` disables the limit.
    pub fn new(per_second: u32) -> Self {
        TokenBucket {
            per_second: f64::from(per_second),
            tokens: f64::from(per_second),
            last_refill: None,
        }
    }

    /// Takes one token at `now`; false when the bucket is empty (the action is refused).
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.per_second == 0.0 {
            return true;
        }
        let last = self.last_refill.map_or(now, |last| last.max(now));
        if let Some(previous) = self.last_refill {
            // Saturating, and `last` never moves back: an `Instant` older than the previous
            // one (a driver bug) refills nothing rather than panicking or refilling twice.
            let elapsed = now.saturating_duration_since(previous).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        }
        self.last_refill = Some(last);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
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
    fn allows_a_burst_then_refills_over_time() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5);
        for _ in 0..5 {
            assert!(bucket.try_take(start));
        }
        assert!(!bucket.try_take(start));
        assert!(!bucket.try_take(start + Duration::from_millis(100)));
        assert!(bucket.try_take(start + Duration::from_millis(200)));
        // A long pause refills to the burst size, not beyond.
        let later = start + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(bucket.try_take(later));
        }
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn zero_disables_the_limit() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(0);
        assert!((0..1000).all(|_| bucket.try_take(now)));
    }

    #[test]
    fn time_going_backwards_does_not_panic() {
        let now = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(1);
        assert!(bucket.try_take(now));
        assert!(!bucket.try_take(now - Duration::from_secs(5)));
    }
}
