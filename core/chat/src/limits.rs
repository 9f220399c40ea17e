//! Limits per key over a fixed window (per identity, per address prefix): for what anyone can
//! do for free and what costs the server for good, like making rooms or identities. Sans-IO:
//! the caller passes `now`.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// At most `allowed` takes per key per `window`. Keys are forgotten once their window is over;
/// at most `max_keys` are remembered (past that, the oldest windows are dropped first), so a
/// flood of keys cannot grow memory without bound.
#[derive(Debug)]
pub struct WindowLimiter<K> {
    allowed: u32,
    window: Duration,
    max_keys: usize,
    windows: HashMap<K, (Instant, u32)>,
}

impl<K: Eq + Hash + Clone> WindowLimiter<K> {
    /// A limiter of `allowed` per `window` (0 allows everything), remembering `max_keys` keys.
    pub fn new(allowed: u32, window: Duration, max_keys: usize) -> Self {
        WindowLimiter {
            allowed,
            window,
            max_keys: max_keys.max(1),
            windows: HashMap::new(),
        }
    }

    /// Takes one for `key` at `now`; when the key's window is used up, how long until it is
    /// not (for a `Retry-After`).
    pub fn take(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.allowed == 0 {
            return Ok(());
        }
        if let Some((start, used)) = self.windows.get_mut(key) {
            let ends = *start + self.window;
            if now < ends {
                if *used >= self.allowed {
                    return Err(ends - now);
                }
                *used += 1;
                return Ok(());
            }
            *start = now;
            *used = 1;
            return Ok(());
        }
        if self.windows.len() >= self.max_keys {
            self.forget_old(now);
        }
        self.windows.insert(key.clone(), (now, 1));
        Ok(())
    }

    /// Drops the windows that are over; if none is, the oldest half.
    fn forget_old(&mut self, now: Instant) {
        let window = self.window;
        self.windows.retain(|_, (start, _)| now < *start + window);
        if self.windows.len() >= self.max_keys {
            let mut starts: Vec<Instant> = self.windows.values().map(|(start, _)| *start).collect();
            starts.sort_unstable();
            let cut = starts[starts.len() / 2];
            self.windows.retain(|_, (start, _)| *start > cut);
        }
    }

    /// Keys remembered (for tests).
    pub fn keys(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_key_gets_its_allowance_per_window_and_is_told_when_it_resets() {
        let now = Instant::now();
        let mut limiter = WindowLimiter::new(2, HOUR, 100);
        assert_eq!(limiter.take(&"a", now), Ok(()));
        assert_eq!(limiter.take(&"a", now + Duration::from_secs(10)), Ok(()));
        assert_eq!(
            limiter.take(&"a", now + Duration::from_secs(600)),
            Err(HOUR - Duration::from_secs(600))
        );
        assert_eq!(limiter.take(&"b", now), Ok(()), "keys are separate");
        assert_eq!(limiter.take(&"a", now + HOUR), Ok(()), "a new window");
    }

    #[test]
    fn zero_allows_everything() {
        let now = Instant::now();
        let mut limiter = WindowLimiter::new(0, HOUR, 1);
        for _ in 0..100 {
            assert_eq!(limiter.take(&"a", now), Ok(()));
        }
    }

    #[test]
    fn memory_is_bounded_whatever_the_keys() {
        let now = Instant::now();
        let mut limiter = WindowLimiter::new(1, HOUR, 64);
        for n in 0..10_000u32 {
            let _ = limiter.take(&n, now + Duration::from_millis(u64::from(n)));
            assert!(limiter.keys() <= 64);
        }
    }
}
