//! The process's open-file limit: every connection is a file descriptor, and running out of
//! them locks everyone out (even `/healthz`). At start the soft limit is raised to the hard
//! one, and `--max-connections` and `--max-pending-connections` are capped to what it leaves
//! for everything else, so connections alone never use up the descriptors.

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

/// How many connections of each kind fit in the open-file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// Open WebSockets (`--max-connections`).
    pub websockets: usize,
    /// Connections not yet upgraded (`--max-pending-connections`).
    pub pending: usize,
}

/// The caps that fit in `open_files` descriptors: what was wanted, or less. What is left after
/// [`RESERVED`] goes first to connections not yet upgraded (at most half of it: they come and
/// go within seconds), the rest to WebSockets; neither is ever zero.
pub fn connection_caps(
    wanted_websockets: usize,
    wanted_pending: usize,
    open_files: Option<u64>,
) -> ConnectionCaps {
    let wanted = ConnectionCaps {
        websockets: wanted_websockets.max(1),
        pending: wanted_pending.max(1),
    };
    let Some(limit) = open_files else {
        return wanted;
    };
    let room = usize::try_from(limit.saturating_sub(RESERVED)).unwrap_or(usize::MAX);
    let pending = wanted.pending.min(room / 2).max(1);
    ConnectionCaps {
        websockets: wanted.websockets.min(room.saturating_sub(pending)).max(1),
        pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caps_leave_room_for_everything_else() {
        let caps = |ws, pending, limit| {
            let ConnectionCaps {
                websockets,
                pending,
            } = connection_caps(ws, pending, limit);
            (websockets, pending)
        };
        let room = 20_000 - RESERVED as usize;
        assert_eq!(caps(50_000, 4096, Some(20_000)), (room - 4096, 4096));
        assert_eq!(caps(1_000, 100, Some(20_000)), (1_000, 100));
        assert_eq!(
            caps(50_000, 4096, Some(RESERVED + 64)),
            (32, 32),
            "pending connections get at most half"
        );
        assert_eq!(caps(1_000, 100, Some(100)), (1, 1), "never zero");
        assert_eq!(caps(1_000, 100, None), (1_000, 100));
        let ConnectionCaps {
            websockets,
            pending,
        } = connection_caps(usize::MAX, usize::MAX, Some(1 << 20));
        assert!(websockets + pending <= (1 << 20) - RESERVED as usize);
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
