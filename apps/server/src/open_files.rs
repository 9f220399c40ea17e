//! The process's open-file limit: every connection is a file descriptor, and running out of
//! them locks everyone out (even `/healthz`). At start the soft limit is raised to the hard
//! one, and `--max-connections` is capped to what it leaves for everything else.

/// Descriptors kept for what is not a client connection: the listener, the store's and
/// broker's connections, log files, accepts in progress.
pub const RESERVED: u64 = 256;

/// Raises the soft open-file limit to the hard limit; returns the soft limit now in force, or
/// `None` where it cannot be read.
pub fn raise_to_hard_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `getrlimit`/`setrlimit` only read and write the struct we pass.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap that fits in `open_files` descriptors: `wanted`, or less.
pub fn connection_cap(wanted: usize, open_files: Option<u64>) -> usize {
    match open_files {
        Some(limit) => {
            let room = usize::try_from(limit.saturating_sub(RESERVED)).unwrap_or(usize::MAX);
            wanted.min(room.max(1))
        }
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_everything_else() {
        assert_eq!(
            connection_cap(50_000, Some(20_000)),
            20_000 - RESERVED as usize
        );
        assert_eq!(connection_cap(1_000, Some(20_000)), 1_000);
        assert_eq!(connection_cap(1_000, Some(100)), 1, "never zero");
        assert_eq!(connection_cap(1_000, None), 1_000);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let now = raise_to_hard_limit().expect("readable on unix");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: reads into the struct we pass.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(limit.rlim_cur, limit.rlim_max);
        assert_eq!(now, limit.rlim_cur);
    }
}
