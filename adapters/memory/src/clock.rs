//! The wall clock, for `createdAt` and token expiries.

use rtchat_chat::Clock;
use std::time::SystemTime;
use time::OffsetDateTime;
use time::macros::format_description;

/// The system's UTC clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_rfc3339(&self) -> String {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        // Formatting a UTC date with a fixed description only fails for years past 9999.
        OffsetDateTime::now_utc()
            .format(format)
            .unwrap_or_else(|_| "9999-12-31T23:59:59.999Z".to_owned())
    }

    fn now_system_time(&self) -> SystemTime {
        SystemTime::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_milliseconds_in_utc() {
        let now = SystemClock.now_rfc3339();
        assert_eq!(now.len(), "2026-11-22T10:00:00.123Z".len(), "{now}");
        for (at, byte) in now.bytes().enumerate() {
            let expected_separator = match at {
                4 | 7 => Some(b'-'),
                10 => Some(b'T'),
                13 | 16 => Some(b':'),
                19 => Some(b'.'),
                23 => Some(b'Z'),
                _ => None,
            };
            match expected_separator {
                Some(separator) => assert_eq!(byte, separator, "{now}"),
                None => assert!(byte.is_ascii_digit(), "{now}"),
            }
        }
    }
}
