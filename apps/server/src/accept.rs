//! The accept loop: every TCP connection is served by hyper (HTTP/1.1, with upgrades for
//! `/ws`) under the [`Deadlines`] of [`crate::http_deadlines`], and at most
//! [`HttpLimits::max_pending`] connections that are not yet WebSockets are open at once.
//! Above that, a new connection is accepted and closed at once: the backlog keeps moving
//! instead of filling up, and the open-file limit is never reached by idle sockets. One
//! client address may hold at most [`HttpLimits::max_pending_per_address`] of them, so one
//! client cannot take the whole cap from everyone else. When
//! accepting fails for want of resources (no file descriptor left), the loop waits a little
//! instead of spinning.

use crate::http_deadlines::{Activity, Answer, Deadlines, Watched};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long the loop waits after accepting failed for want of resources.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// At most one warning of each kind per this long (refusals at the cap, failed accepts): an
/// attack must not flood the log.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The bounds on connections that are not WebSockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Per-connection deadlines.
    pub deadlines: Deadlines,
    /// Connections not yet upgraded to a WebSocket, at most.
    pub max_pending: usize,
    /// Of those, from one client address ([`AddressKey`]) at most; 0: no bound per address.
    pub max_pending_per_address: usize,
}

/// What connections are counted by per address: an IPv4 address (an IPv4-mapped IPv6
/// address counts as IPv4), or an IPv6 /64, which one subscriber usually holds whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    /// One IPv4 address.
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl AddressKey {
    /// The key `address` is counted under.
    pub fn of(address: IpAddr) -> AddressKey {
        match address {
            IpAddr::V4(v4) => AddressKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4.octets()),
                None => AddressKey::V6Prefix((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

/// Connections not yet upgraded, counted per [`AddressKey`]. Holds an entry only for an
/// address with a connection open, so it is bounded by the pending cap.
#[derive(Debug)]
struct PerAddress {
    max: usize,
    open: Mutex<HashMap<AddressKey, usize>>,
}

impl PerAddress {
    /// A place for one more connection from `peer`, or `None` when it holds `max` already.
    fn take(self: &Arc<Self>, peer: IpAddr) -> Option<AddressPlace> {
        let key = AddressKey::of(peer);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressPlace {
            owner: self.clone(),
            key,
        })
    }
}

/// One connection's place in its address's count, given back when dropped.
#[derive(Debug)]
struct AddressPlace {
    owner: Arc<PerAddress>,
    key: AddressKey,
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut open = self
            .owner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What the accept loop leaves behind: the connections not yet upgraded, to close on shutdown.
pub struct Pending {
    permits: Arc<Semaphore>,
    max: u32,
    closing: watch::Sender<bool>,
}

impl Pending {
    /// Tells every connection not yet upgraded to finish the request it is answering and
    /// close; resolves once all have closed.
    pub async fn close(self) {
        self.closing.send_replace(true);
        // Every connection holds a permit until it ends (or becomes a WebSocket).
        let _ = self.permits.acquire_many(self.max).await;
    }
}

/// Accepts connections on `listener` and serves `router` on them until `stop` resolves;
/// then the listener is closed and the connections not yet upgraded are returned to close.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()>,
) -> Pending {
    // A semaphore counts in u32 when waiting for all permits back.
    let max = u32::try_from(limits.max_pending.max(1)).unwrap_or(u32::MAX);
    let permits = Arc::new(Semaphore::new(max as usize));
    let (closing, closing_watch) = watch::channel(false);
    let per_address = (limits.max_pending_per_address > 0).then(|| {
        Arc::new(PerAddress {
            max: limits.max_pending_per_address,
            open: Mutex::new(HashMap::new()),
        })
    });
    let mut refusals = Throttled::default();
    let mut refusals_per_address = Throttled::default();
    let mut failed_accepts = Throttled::default();
    let mut stop = pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let place = match &per_address {
                        Some(per_address) => match per_address.take(peer.ip()) {
                            Some(place) => Some(place),
                            None => {
                                drop(stream);
                                if let Some(refused) = refusals_per_address.count() {
                                    tracing::warn!(
                                        cap = limits.max_pending_per_address,
                                        refused,
                                        address = %rtchat_chat::ip_prefix(peer.ip()),
                                        "--max-pending-per-address reached: that address's \
                                         new connections are accepted and closed"
                                    );
                                }
                                continue;
                            }
                        },
                        None => None,
                    };
                    let router = router.clone();
                    let closing = closing_watch.clone();
                    tokio::spawn(async move {
                        serve_connection(stream, peer, router, limits.deadlines, closing).await;
                        drop(place);
                        drop(permit);
                    });
                }
                // Accepted and closed at once: the client sees its connection end, and the
                // backlog behind it keeps moving.
                Err(_) => {
                    drop(stream);
                    if let Some(refused) = refusals.count() {
                        tracing::warn!(
                            cap = limits.max_pending,
                            refused,
                            "--max-pending-connections reached: new connections are accepted \
                             and closed"
                        );
                    }
                }
            },
            Err(error) => {
                if let Some(pause) = accept_backoff(&error) {
                    if let Some(failures) = failed_accepts.count() {
                        tracing::warn!(
                            %error,
                            failures,
                            "cannot accept connections; retrying every {pause:?}"
                        );
                    }
                    tokio::select! {
                        () = &mut stop => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }
    drop(listener);
    Pending {
        permits,
        max,
        closing,
    }
}

/// How long to wait after `error` from `accept`: `None` when it concerns only the connection
/// being accepted (gone before it was accepted) and the next one may be taken at once; a
/// pause otherwise (no file descriptor or memory left), so the loop does not spin while
/// connections close.
pub fn accept_backoff(error: &std::io::Error) -> Option<Duration> {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionAborted
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionRefused
        | ErrorKind::Interrupted
        | ErrorKind::WouldBlock => None,
        _ => Some(ACCEPT_BACKOFF),
    }
}

/// Serves one connection until it ends, becomes a WebSocket, overstays its deadline, or is
/// told to close.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    deadlines: Deadlines,
    mut closing: watch::Receiver<bool>,
) {
    // No Nagle: a MESSAGE or RECEIPT is written the moment it is ready. With Nagle on, a small
    // write behind an unacknowledged one waits for the peer's delayed ACK (up to 40 ms on
    // Linux), which showed as a p99 of 20 to 55 ms from 2,000 msg/s up (docs/benchmarks.md).
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "TCP_NODELAY not set");
    }
    let activity = Activity::new(Instant::now());
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |mut request: Request<Incoming>| {
            activity.request_read(Instant::now());
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            let activity = activity.clone();
            async move {
                let response = router
                    .oneshot(request.map(Body::new))
                    .await
                    .unwrap_or_else(|never: Infallible| match never {});
                Ok::<_, Infallible>(response.map(|body| Answer::new(body, activity)))
            }
        }
    });
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let mut connection = pin!(
        hyper::server::conn::http1::Builder::new()
            // The deadlines above replace hyper's header timer (which has no timer to run on
            // here, and would give a kept-alive connection no longer than a slow head).
            .header_read_timeout(None)
            .serve_connection(io, service)
            .with_upgrades()
    );
    let mut told_to_close = false;
    loop {
        let (phase, deadline) = activity.deadline(deadlines);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, %peer, "HTTP connection failed");
                }
                break;
            }
            () = tokio::time::sleep_until(deadline) => {
                if activity.deadline(deadlines) == (phase, deadline) {
                    tracing::debug!(%peer, ?phase, "closing an HTTP connection past its deadline");
                    break;
                }
            }
            () = activity.changed() => {}
            // Told to close, or the loop is gone: finish the request under way, then close.
            _ = closing.wait_for(|closing| *closing), if !told_to_close => {
                told_to_close = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
    // Dropping the connection closes the socket, unless it became a WebSocket: that one lives
    // on in its own task, outside these deadlines.
    activity.finish();
}

/// Counts events, and says when to log them: at most once per [`WARN_EVERY`].
#[derive(Debug, Default)]
struct Throttled {
    since_logged: u64,
    logged_at: Option<Instant>,
}

impl Throttled {
    /// Counts one event; returns how many to log (this one included) when it is time to.
    fn count(&mut self) -> Option<u64> {
        self.since_logged += 1;
        let now = Instant::now();
        if self
            .logged_at
            .is_some_and(|at| now.duration_since(at) < WARN_EVERY)
        {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.since_logged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    fn key(text: &str) -> AddressKey {
        AddressKey::of(text.parse().expect("test address"))
    }

    #[test]
    fn addresses_count_as_one_ipv4_address_or_one_ipv6_slash_64() {
        assert_eq!(key("192.0.2.7"), key("::ffff:192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn one_address_gets_at_most_its_share_and_gets_places_back_when_they_close() {
        let per_address = Arc::new(PerAddress {
            max: 2,
            open: Mutex::new(HashMap::new()),
        });
        let peer: IpAddr = "192.0.2.7".parse().expect("address");
        let first = per_address.take(peer).expect("first place");
        let second = per_address.take(peer).expect("second place");
        assert!(per_address.take(peer).is_none(), "a third place");
        // Another address is not held back by it.
        let other = per_address.take("192.0.2.8".parse().expect("address"));
        assert!(other.is_some());
        drop(first);
        let third = per_address.take(peer).expect("a place freed by a close");
        drop((second, third, other));
        // No entry stays behind for an address with nothing open.
        assert!(per_address.open.lock().expect("lock").is_empty());
    }

    #[test]
    fn warnings_come_at_most_once_per_period_with_the_count_since_the_last() {
        let mut throttled = Throttled::default();
        assert_eq!(throttled.count(), Some(1));
        assert_eq!(throttled.count(), None);
        assert_eq!(throttled.count(), None);
        throttled.logged_at = throttled
            .logged_at
            .and_then(|at| at.checked_sub(WARN_EVERY));
        assert_eq!(throttled.count(), Some(3));
    }

    #[test]
    fn running_out_of_descriptors_pauses_the_loop_but_a_vanished_peer_does_not() {
        for os_error in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(
                accept_backoff(&Error::from_raw_os_error(os_error)),
                Some(ACCEPT_BACKOFF),
                "errno {os_error}"
            );
        }
        for kind in [ErrorKind::ConnectionAborted, ErrorKind::ConnectionReset] {
            assert_eq!(accept_backoff(&Error::from(kind)), None, "{kind:?}");
        }
        assert_eq!(
            accept_backoff(&Error::from_raw_os_error(libc::ECONNABORTED)),
            None
        );
    }
}
