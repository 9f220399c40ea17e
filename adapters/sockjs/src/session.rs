//! A SockJS session of the HTTP transports (xhr polling, xhr streaming, eventsource): the
//! output waiting for the next receiving request, who is receiving, and the session's end.
//! The driver's side is [`SessionTransport`]; the receiving requests hold a [`Receiver`].
//!
//! Output is bounded: past [`Limits::max_buffered_bytes`], the driver's writes wait for a
//! poll, and a client that stops polling is dropped by the driver's write timeout (its
//! deliveries then pile up in the hub's queue, and it is closed as a slow consumer).

use crate::frame::CloseCode;
use async_trait::async_trait;
use rtchat_chat::TransportKind;
use rtchat_driver::{Incoming, Transport, TransportError};
use rtchat_stomp::Transmit;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

/// Bounds of one session.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Output held for the next poll at most (one message is always accepted).
    pub max_buffered_bytes: usize,
    /// A session with no receiving request for this long is ended.
    pub disconnect_delay: Duration,
}

/// Messages from `xhr_send` waiting for the driver, at most (then `xhr_send` waits).
const INBOUND_QUEUE: usize = 16;

/// Whether a receiving request is attached, and since when it is not.
#[derive(Debug, Clone, Copy)]
struct Polled {
    attached: bool,
    /// When the last receiver left (or the session was made).
    since: Instant,
    /// A receiver was cut off by the network: the session ends at once.
    interrupted: bool,
}

#[derive(Debug)]
struct Output {
    /// Messages (STOMP text) not yet taken by a receiver.
    pending: Vec<String>,
    pending_bytes: usize,
    /// The open frame went out.
    opened: bool,
    /// Set once the session is closed: every later receiver gets this frame.
    closed: Option<CloseCode>,
    /// A receiver is attached.
    receiving: bool,
}

/// One session, shared by the driver's transport and the receiving requests.
#[derive(Debug)]
pub struct Session {
    kind: TransportKind,
    limits: Limits,
    output: Mutex<Output>,
    /// Wakes the receiver: output queued, or the session closed.
    output_ready: Notify,
    /// Wakes the driver's writes: a receiver took output.
    space: Notify,
    polled: watch::Sender<Polled>,
    inbound: mpsc::Sender<Incoming>,
}

/// What a receiver takes from the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// The session is new: the open frame.
    Open,
    /// Messages, for one array frame.
    Messages(Vec<String>),
    /// The session is closed.
    Closed(CloseCode),
}

/// The session is gone (ended and forgotten).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session is closed")]
pub struct SessionClosed;

impl Session {
    /// A new session whose driver side is the returned transport.
    pub fn new(kind: TransportKind, limits: Limits) -> (Arc<Session>, SessionTransport) {
        let (inbound, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let (polled, polled_rx) = watch::channel(Polled {
            attached: false,
            since: Instant::now(),
            interrupted: false,
        });
        let session = Arc::new(Session {
            kind,
            limits,
            output: Mutex::new(Output {
                pending: Vec::new(),
                pending_bytes: 0,
                opened: false,
                closed: None,
                receiving: false,
            }),
            output_ready: Notify::new(),
            space: Notify::new(),
            polled,
            inbound,
        });
        let transport = SessionTransport {
            session: session.clone(),
            inbound: inbound_rx,
            polled: polled_rx,
        };
        (session, transport)
    }

    fn output(&self) -> MutexGuard<'_, Output> {
        // Every update leaves the output whole: a poisoned lock still holds good data.
        self.output.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The transport this session was opened with.
    pub fn kind(&self) -> TransportKind {
        self.kind
    }

    /// Attaches a receiving request; `None` when one is attached already (the caller answers
    /// with [`CloseCode::AnotherConnectionOpen`]).
    pub fn attach(self: &Arc<Self>) -> Option<Receiver> {
        let mut output = self.output();
        if output.receiving && output.closed.is_none() {
            return None;
        }
        output.receiving = true;
        drop(output);
        self.polled.send_modify(|polled| polled.attached = true);
        Some(Receiver {
            session: self.clone(),
            completed: false,
        })
    }

    /// Hands messages of an `xhr_send` to the driver, in order; waits while its queue is full.
    pub async fn send(&self, messages: Vec<String>) -> Result<(), SessionClosed> {
        for message in messages {
            self.deliver(Incoming::Data(message.into())).await?;
        }
        Ok(())
    }

    /// Hands `incoming` to the driver.
    pub async fn deliver(&self, incoming: Incoming) -> Result<(), SessionClosed> {
        if self.output().closed.is_some() {
            return Err(SessionClosed);
        }
        self.inbound.send(incoming).await.map_err(|_| SessionClosed)
    }

    /// Whether the session is closed.
    pub fn is_closed(&self) -> bool {
        self.output().closed.is_some()
    }

    /// Resolves once no receiver has been attached for the disconnect delay: a session that
    /// ended is forgotten then (until then, receivers get its close frame).
    pub async fn unpolled(&self) {
        let mut polled = self.polled.subscribe();
        unpolled(&mut polled, self.limits.disconnect_delay, false).await;
    }

    fn close(&self, code: CloseCode) {
        let mut output = self.output();
        if output.closed.is_none() {
            output.closed = Some(code);
        }
        drop(output);
        self.output_ready.notify_one();
        // A write waiting for space must see the close too.
        self.space.notify_waiters();
    }
}

/// Resolves once `polled` says the session has had no receiver for `delay`, or (when
/// `or_interrupted`) that a receiver was cut off.
async fn unpolled(polled: &mut watch::Receiver<Polled>, delay: Duration, or_interrupted: bool) {
    loop {
        let now = *polled.borrow_and_update();
        if or_interrupted && now.interrupted {
            return;
        }
        let deadline = (!now.attached).then(|| now.since + delay);
        tokio::select! {
            changed = polled.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = sleep_until(deadline) => return,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A receiving request's hold on its session. Dropped before [`Receiver::complete`] (the
/// client went away mid-answer), it ends the session as interrupted.
#[derive(Debug)]
pub struct Receiver {
    session: Arc<Session>,
    completed: bool,
}

impl Receiver {
    /// What there is to send now, if anything.
    pub fn take(&mut self) -> Option<Take> {
        let mut output = self.session.output();
        if !output.opened {
            output.opened = true;
            return Some(Take::Open);
        }
        if !output.pending.is_empty() {
            output.pending_bytes = 0;
            let messages = std::mem::take(&mut output.pending);
            drop(output);
            self.session.space.notify_waiters();
            return Some(Take::Messages(messages));
        }
        output.closed.map(Take::Closed)
    }

    /// Waits until there may be something to take (spurious wake-ups are possible).
    pub async fn ready(&self) {
        self.session.output_ready.notified().await;
    }

    /// The answer was written whole: leaving is not an interruption.
    pub fn complete(mut self) {
        self.completed = true;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut output = self.session.output();
        output.receiving = false;
        let closed = output.closed.is_some();
        drop(output);
        let interrupted = !self.completed && !closed;
        if interrupted {
            self.session.close(CloseCode::Interrupted);
        }
        self.session.polled.send_modify(|polled| {
            polled.attached = false;
            polled.since = Instant::now();
            polled.interrupted |= interrupted;
        });
    }
}

/// The driver's side of a session: STOMP bytes in from `xhr_send`, transmits out to the
/// receivers.
#[derive(Debug)]
pub struct SessionTransport {
    session: Arc<Session>,
    inbound: mpsc::Receiver<Incoming>,
    polled: watch::Receiver<Polled>,
}

#[async_trait]
impl Transport for SessionTransport {
    fn kind(&self) -> TransportKind {
        self.session.kind
    }

    async fn recv(&mut self) -> Incoming {
        let delay = self.session.limits.disconnect_delay;
        tokio::select! {
            incoming = self.inbound.recv() => incoming.unwrap_or(Incoming::Closed),
            () = unpolled(&mut self.polled, delay, true) => {
                tracing::debug!("SockJS session not polled within the disconnect delay");
                Incoming::Closed
            }
        }
    }

    async fn feed(&mut self, transmit: Transmit) -> Result<(), TransportError> {
        let message = text(&transmit);
        loop {
            let space = self.session.space.notified();
            let mut space = std::pin::pin!(space);
            space.as_mut().enable();
            {
                let mut output = self.session.output();
                if output.closed.is_some() {
                    return Err(TransportError::Gone);
                }
                if output.pending.is_empty()
                    || output.pending_bytes + message.len()
                        <= self.session.limits.max_buffered_bytes
                {
                    output.pending_bytes += message.len();
                    output.pending.push(message);
                    return Ok(());
                }
            }
            // Full: wait for a receiver to take the output (the driver's write timeout
            // bounds the wait).
            space.await;
        }
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.session.output_ready.notify_one();
        Ok(())
    }

    async fn close(&mut self, _going_away: bool) {
        self.session.close(CloseCode::GoAway);
    }
}

/// `transmit` as text: SockJS carries only strings, and our frames are UTF-8 unless a client
/// sent a binary body (its invalid bytes then arrive as U+FFFD).
pub fn text(transmit: &Transmit) -> String {
    let mut bytes = Vec::with_capacity(transmit.len());
    for chunk in transmit.chunks() {
        bytes.extend_from_slice(chunk);
    }
    String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// The sessions of the HTTP transports, by session id (the server id is only for load
/// balancers, as the spec says).
#[derive(Debug, Default)]
pub struct Registry {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl Registry {
    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        // Single map operations only: a poisoned lock still holds good data.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session `id`, if it exists.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions().get(id).cloned()
    }

    /// The session `id`; made with `make` when missing (then also returned second).
    pub fn get_or_insert<T>(
        &self,
        id: &str,
        make: impl FnOnce() -> (Arc<Session>, T),
    ) -> (Arc<Session>, Option<T>) {
        let mut sessions = self.sessions();
        if let Some(session) = sessions.get(id) {
            return (session.clone(), None);
        }
        let (session, extra) = make();
        sessions.insert(id.to_owned(), session.clone());
        (session, Some(extra))
    }

    /// Forgets `session` (if `id` still names it).
    pub fn remove(&self, id: &str, session: &Arc<Session>) {
        let mut sessions = self.sessions();
        if sessions
            .get(id)
            .is_some_and(|current| Arc::ptr_eq(current, session))
        {
            sessions.remove(id);
        }
    }

    /// Sessions kept.
    pub fn len(&self) -> usize {
        self.sessions().len()
    }

    /// Whether no session is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const LIMITS: Limits = Limits {
        max_buffered_bytes: 10,
        disconnect_delay: Duration::from_secs(5),
    };

    fn transmit(text: &'static str) -> Transmit {
        Transmit::Bytes(Bytes::from_static(text.as_bytes()))
    }

    #[tokio::test]
    async fn a_new_session_opens_then_hands_out_what_was_written_then_its_close() {
        let (session, mut transport) = Session::new(TransportKind::Memory, LIMITS);
        let mut receiver = session.attach().expect("first receiver");
        assert_eq!(receiver.take(), Some(Take::Open));
        assert_eq!(receiver.take(), None);
        transport.feed(transmit("one")).await.expect("fed");
        transport.feed(transmit("two")).await.expect("fed");
        assert_eq!(
            receiver.take(),
            Some(Take::Messages(vec!["one".into(), "two".into()]))
        );
        transport.close(false).await;
        assert_eq!(receiver.take(), Some(Take::Closed(CloseCode::GoAway)));
        receiver.complete();
        // Later receivers keep getting the close frame.
        let mut again = session.attach().expect("after close");
        assert_eq!(again.take(), Some(Take::Closed(CloseCode::GoAway)));
        assert!(transport.feed(transmit("late")).await.is_err());
    }

    #[tokio::test]
    async fn only_one_receiver_at_a_time() {
        let (session, _transport) = Session::new(TransportKind::Memory, LIMITS);
        let first = session.attach().expect("first");
        assert!(session.attach().is_none());
        first.complete();
        assert!(session.attach().is_some());
    }

    #[tokio::test]
    async fn a_receiver_cut_off_ends_the_session_as_interrupted() {
        let (session, mut transport) = Session::new(TransportKind::Memory, LIMITS);
        let mut receiver = session.attach().expect("first");
        let _ = receiver.take();
        drop(receiver);
        assert_eq!(transport.recv().await, Incoming::Closed);
        let mut next = session.attach().expect("next");
        assert_eq!(next.take(), Some(Take::Closed(CloseCode::Interrupted)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unpolled_session_ends_after_the_disconnect_delay_and_not_before() {
        let (session, mut transport) = Session::new(TransportKind::Memory, LIMITS);
        let started = Instant::now();
        let receiver = session.attach().expect("first");
        // Attached: no timeout however long.
        assert!(
            tokio::time::timeout(Duration::from_secs(60), transport.recv())
                .await
                .is_err()
        );
        receiver.complete();
        let left = Instant::now();
        assert_eq!(transport.recv().await, Incoming::Closed);
        assert_eq!(Instant::now() - left, LIMITS.disconnect_delay);
        assert!(Instant::now() - started >= Duration::from_secs(65));
    }

    #[tokio::test(start_paused = true)]
    async fn writes_wait_for_a_poll_once_the_buffer_is_full() {
        let (session, mut transport) = Session::new(TransportKind::Memory, LIMITS);
        // Over the bound alone: accepted, as the buffer was empty.
        transport.feed(transmit("0123456789ab")).await.expect("fed");
        let blocked = tokio::time::timeout(Duration::from_secs(30), transport.feed(transmit("x")));
        assert!(blocked.await.is_err(), "a full buffer makes writes wait");
        let mut receiver = session.attach().expect("receiver");
        let _open = receiver.take();
        let waiting =
            tokio::spawn(async move { transport.feed(transmit("x")).await.map(|()| transport) });
        tokio::task::yield_now().await;
        assert_eq!(
            receiver.take(),
            Some(Take::Messages(vec!["0123456789ab".into()]))
        );
        let _transport = waiting.await.expect("joined").expect("fed after the poll");
        assert_eq!(receiver.take(), Some(Take::Messages(vec!["x".into()])));
    }

    #[tokio::test]
    async fn sends_reach_the_driver_in_order_until_the_session_closes() {
        let (session, mut transport) = Session::new(TransportKind::Memory, LIMITS);
        session
            .send(vec!["a".into(), "b".into()])
            .await
            .expect("sent");
        assert_eq!(transport.recv().await, Incoming::Data(Bytes::from("a")));
        assert_eq!(transport.recv().await, Incoming::Data(Bytes::from("b")));
        transport.close(true).await;
        assert_eq!(session.send(vec!["c".into()]).await, Err(SessionClosed));
    }

    #[test]
    fn the_registry_forgets_only_the_session_it_was_told() {
        let registry = Registry::default();
        let (first, made) =
            registry.get_or_insert("s", || Session::new(TransportKind::Memory, LIMITS));
        assert!(made.is_some());
        let (same, made) =
            registry.get_or_insert("s", || Session::new(TransportKind::Memory, LIMITS));
        assert!(made.is_none() && Arc::ptr_eq(&first, &same));
        let (other, _transport) = Session::new(TransportKind::Memory, LIMITS);
        registry.remove("s", &other);
        assert_eq!(registry.len(), 1);
        registry.remove("s", &first);
        assert!(registry.is_empty() && registry.get("s").is_none());
    }
}
