//! Deadlines for a connection that is not (yet) a WebSocket, so a slow or silent client cannot
//! hold a socket for long: the Slowloris attack sends a request's head a byte at a time, or
//! nothing at all, to keep thousands of sockets open.
//!
//! hyper's own `header_read_timeout` starts whenever it waits for a request's head, including
//! the wait for the next request on a kept-alive connection, so it cannot give a kept-alive
//! connection longer than a slow head. So the connection's [`Activity`] is tracked here, from
//! three hooks: the socket ([`Watched`]: a byte read), the service (a request's head was read)
//! and the answer's body ([`Answer`]: dropped once written), and the accept loop closes the
//! connection when [`Activity::deadline`] passes.

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a connection may stay in each [`Phase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// A request's head must be read within this: from the accept for the first request,
    /// from its first byte for later ones.
    pub header_read: Duration,
    /// A kept-alive connection may wait this long for its next request, and a request may
    /// take this long to be answered once its head is read (its body read, the answer
    /// written).
    pub idle: Duration,
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading a request's head.
    Head,
    /// A request's head is read: the request is being answered.
    Answering,
    /// Kept alive after an answer, waiting for the next request.
    KeptAlive,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    since: Instant,
    /// The connection is no longer watched (it ended, or became a WebSocket).
    finished: bool,
}

/// What one connection is doing, and since when.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
    /// Set while kept alive, so reads check a flag and take the lock only for the byte that
    /// starts the next request (an upgraded WebSocket keeps reading through [`Watched`]).
    awaiting_first_byte: AtomicBool,
    /// Woken at every change of phase: the deadline moved.
    changed: Notify,
}

impl Activity {
    /// A connection accepted at `now`, reading its first request's head.
    pub fn new(now: Instant) -> Arc<Self> {
        Arc::new(Activity {
            state: Mutex::new(State {
                phase: Phase::Head,
                since: now,
                finished: false,
            }),
            awaiting_first_byte: AtomicBool::new(false),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update below leaves the state whole, so a poisoned lock still holds good data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves to `phase` at `now` when `from` allows the current phase.
    fn enter(&self, phase: Phase, now: Instant, from: impl Fn(Phase) -> bool) {
        let mut state = self.state();
        if state.finished || !from(state.phase) {
            return;
        }
        state.phase = phase;
        state.since = now;
        self.awaiting_first_byte
            .store(phase == Phase::KeptAlive, Ordering::Release);
        drop(state);
        // A permit is kept if the accept loop is not waiting right now, so no change is missed.
        self.changed.notify_one();
    }

    /// A request's head was read at `now`.
    pub fn request_read(&self, now: Instant) {
        self.enter(Phase::Answering, now, |_| true);
    }

    /// The answer was written (its body is done with) at `now`.
    pub fn answered(&self, now: Instant) {
        self.enter(Phase::KeptAlive, now, |phase| phase == Phase::Answering);
    }

    /// Bytes were read at `now`: on a kept-alive connection, the next request has begun.
    pub fn bytes_read(&self, now: Instant) {
        if self.awaiting_first_byte.swap(false, Ordering::AcqRel) {
            self.enter(Phase::Head, now, |phase| phase == Phase::KeptAlive);
        }
    }

    /// The connection is no longer watched: it ended, or it is a WebSocket now (heart-beats
    /// govern those).
    pub fn finish(&self) {
        self.state().finished = true;
        self.awaiting_first_byte.store(false, Ordering::Release);
    }

    /// The current phase and when it must end.
    pub fn deadline(&self, deadlines: Deadlines) -> (Phase, Instant) {
        let state = self.state();
        let allowed = match state.phase {
            Phase::Head => deadlines.header_read,
            Phase::Answering | Phase::KeptAlive => deadlines.idle,
        };
        (state.phase, state.since + allowed)
    }

    /// Resolves at the next change of phase (at once if one happened since the last call).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// A socket that tells its connection's [`Activity`] when bytes arrive.
#[derive(Debug)]
pub struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    /// Watches `io` for `activity`.
    pub fn new(io: T, activity: Arc<Activity>) -> Self {
        Watched { io, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read(Instant::now());
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// An answer's body that tells its connection's [`Activity`] when hyper is done with it
/// (dropped: written out, or abandoned).
#[derive(Debug)]
pub struct Answer {
    body: Body,
    activity: Arc<Activity>,
}

impl Answer {
    /// `body`, reporting to `activity`.
    pub fn new(body: Body, activity: Arc<Activity>) -> Self {
        Answer { body, activity }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.activity.answered(Instant::now());
    }
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINES: Deadlines = Deadlines {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[test]
    fn a_first_request_has_the_header_timeout_from_the_accept() {
        let start = Instant::now();
        let activity = Activity::new(start);
        assert_eq!(
            activity.deadline(DEADLINES),
            (Phase::Head, start + DEADLINES.header_read)
        );
        // Bytes of the head itself move nothing: the head must be whole by the deadline.
        activity.bytes_read(start + Duration::from_secs(5));
        assert_eq!(
            activity.deadline(DEADLINES),
            (Phase::Head, start + DEADLINES.header_read)
        );
    }

    #[test]
    fn kept_alive_waits_the_idle_timeout_then_a_new_head_the_header_timeout() {
        let start = Instant::now();
        let activity = Activity::new(start);
        let read = start + Duration::from_millis(3);
        activity.request_read(read);
        assert_eq!(
            activity.deadline(DEADLINES),
            (Phase::Answering, read + DEADLINES.idle)
        );
        let answered = read + Duration::from_millis(2);
        activity.answered(answered);
        assert_eq!(
            activity.deadline(DEADLINES),
            (Phase::KeptAlive, answered + DEADLINES.idle)
        );
        let next = answered + Duration::from_secs(30);
        activity.bytes_read(next);
        assert_eq!(
            activity.deadline(DEADLINES),
            (Phase::Head, next + DEADLINES.header_read)
        );
        // Later bytes of that head do not restart its clock.
        activity.bytes_read(next + Duration::from_secs(1));
        assert_eq!(
            activity.deadline(DEADLINES),
            (Phase::Head, next + DEADLINES.header_read)
        );
    }

    #[test]
    fn a_finished_connection_no_longer_changes() {
        let start = Instant::now();
        let activity = Activity::new(start);
        activity.request_read(start);
        activity.answered(start);
        activity.finish();
        activity.bytes_read(start + Duration::from_secs(1));
        assert_eq!(
            activity.deadline(DEADLINES),
            (Phase::KeptAlive, start + DEADLINES.idle)
        );
    }

    #[tokio::test]
    async fn every_change_of_phase_wakes_the_watcher() {
        let activity = Activity::new(Instant::now());
        activity.request_read(Instant::now());
        // The change came before anyone waited: its permit is kept.
        tokio::time::timeout(Duration::from_secs(1), activity.changed())
            .await
            .expect("woken");
    }

    #[tokio::test]
    async fn an_answer_dropped_keeps_the_connection_alive() {
        let start = Instant::now();
        let activity = Activity::new(start);
        activity.request_read(start);
        drop(Answer::new(Body::from("ok"), activity.clone()));
        assert_eq!(activity.deadline(DEADLINES).0, Phase::KeptAlive);
    }
}
