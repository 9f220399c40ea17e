//! The per-connection loop.

use crate::close_log;
use crate::jobs::run_job;
use crate::sink::{ChannelSink, Outbound};
use crate::transport::{Incoming, Transport, TransportError};
use rtchat_chat::{ChatService, ErrorReason, JobDone};
use rtchat_stomp::{CloseReason, Event, Session, SessionConfig};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How connections are run.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The STOMP session's settings (heart-beats, limits, bounds).
    pub session: SessionConfig,
    /// Deliveries queued for one connection before it counts as a slow consumer and is closed.
    pub outbound_capacity: usize,
    /// Longest a batch of writes may take before the reader counts as stalled and is dropped
    /// (Spring's send-time limit is 10 s too).
    pub write_timeout: Duration,
    /// Deliveries taken from the queue per wake-up, so one busy room costs one flush per batch.
    pub delivery_batch: usize,
    /// On shutdown, how long a connection may wait for its SENDs in flight to be stored and
    /// answered before it is told the server is going away.
    pub drain: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            session: SessionConfig::default(),
            outbound_capacity: 1024,
            write_timeout: Duration::from_secs(10),
            delivery_batch: 64,
            drain: Duration::from_secs(10),
        }
    }
}

/// The server-wide shutdown switch. Connections hold a [`ShutdownSignal`]; [`Shutdown::wait_idle`]
/// resolves once every one of them has finished.
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
}

/// One connection's view of the shutdown switch.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    /// A switch that is off.
    pub fn new() -> Self {
        let (sender, _) = watch::channel(false);
        Shutdown {
            sender: Arc::new(sender),
        }
    }

    /// A signal for a new connection.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            receiver: self.sender.subscribe(),
        }
    }

    /// Tells every connection to close.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Connections still running.
    pub fn live_connections(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Resolves when no connection is running any more.
    pub async fn wait_idle(&self) {
        self.sender.closed().await;
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownSignal {
    /// Resolves once shutdown was triggered (or the switch was dropped).
    pub async fn triggered(&mut self) {
        // An error means the switch is gone, which is shutdown too.
        let _ = self.receiver.wait_for(|on| *on).await;
    }
}

/// Runs one STOMP connection until it ends: the peer disconnects, breaks the protocol, goes
/// silent, falls too far behind, or the server shuts down.
pub async fn run_connection<T: Transport>(
    mut transport: T,
    service: &ChatService,
    client: IpAddr,
    config: &DriverConfig,
    mut shutdown: ShutdownSignal,
) {
    let metrics = service.hub().metrics().clone();
    let _counted = metrics.connection_opened(transport.kind());
    let sink = Arc::new(ChannelSink::new(config.outbound_capacity));
    let mut chat = service.connection(client, sink.clone());
    let mut session = Session::new(config.session.clone(), now());
    let mut going_away = false;
    // Set on shutdown: until then the connection reads nothing more, and waits for its SENDs
    // in flight to be answered; then it is told the server is going away.
    let mut drain_until: Option<tokio::time::Instant> = None;
    // The connection's job under way (store, presence and broker work), if any: polled here
    // beside reading and delivering, never awaited on its own.
    let mut job: Option<Running> = None;
    // Why the session closed, when the engine closed it (its ERROR's reason for metrics).
    let mut engine_closed: Option<ErrorReason> = None;

    loop {
        // Frames are taken one at a time, as the connection is ready for them (see
        // `ChatConnection::wants_events`).
        while chat.wants_events()
            && let Some(event) = session.poll_event()
        {
            if let Event::Closed(reason) = &event {
                engine_closed = engine_error_reason(reason);
                if let Some(why) = close_log::server_reason(reason) {
                    close_log::server_closed(chat.id().0, client, &why, now());
                }
            }
            chat.handle(event, &mut session, now());
        }
        // The SENDs of this read go to their writers together (one batch per room).
        chat.submit_sends();
        // Boxed for the same reason as `handle`: alive only while writing.
        let writing = Box::pin(tokio::time::timeout(
            config.write_timeout,
            write_pending(&mut transport, &mut session),
        ));
        match writing.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%client, %error, "transport write failed");
                session.handle_transport_closed();
                break;
            }
            Err(_) => {
                close_log::server_closed(chat.id().0, client, "reader stalled", now());
                session.handle_transport_closed();
                break;
            }
        }
        if session.is_closed() {
            break;
        }
        if let Some(until) = drain_until
            && (!chat.has_sends_in_flight() || tokio::time::Instant::now() >= until)
        {
            drain_until = None;
            session.error(
                "server shutting down",
                "This server is going away; reconnect (with since-seq) to reach another.",
                None,
                now(),
            );
            close_log::server_closed(chat.id().0, client, "server shutting down", now());
            continue;
        }
        // Taken only while the connection lives: the job that ends it (leaving the counts)
        // is the one `closed` gives below.
        if job.is_none()
            && let Some(next) = chat.poll_job()
        {
            let service = service.clone();
            job = Some(Box::pin(async move { run_job(&service, next).await }));
        }

        // The session's timers (heart-beats, CONNECT) and the end of its token's validity.
        let deadline = [session.poll_timeout(), chat.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            () = shutdown.triggered(), if !going_away => {
                going_away = true;
                drain_until = Some(tokio::time::Instant::now() + config.drain);
            }
            () = sleep_until(drain_until), if drain_until.is_some() => {}
            // While its SENDs wait for the store, a connection reads no more (bounded memory);
            // it still delivers, heart-beats and answers. Nor does it while draining.
            // Nor while frames wait for a job (what is held stays one read at most).
            incoming = transport.recv(), if chat.wants_input()
                && !going_away
                && (chat.wants_events() || !session.has_unread_input()) => match incoming {
                Incoming::Data(bytes) => session.handle_input(&bytes, now()),
                Incoming::Liveness => session.handle_liveness(now()),
                Incoming::TooLarge => {
                    close_log::server_closed(chat.id().0, client, "message too large", now());
                    session.error(
                        "frame too large",
                        "a message was larger than the server accepts; see --max-frame-bytes",
                        None,
                now(),
                    );
                }
                Incoming::Closed => session.handle_transport_closed(),
            },
            () = sink.ready() => {
                // A fresh buffer per wake-up: one allocation per batch, and nothing kept on an
                // idle connection.
                let mut batch: Vec<Outbound> = Vec::new();
                let slow = sink.take(&mut batch, config.delivery_batch);
                if slow {
                    close_log::server_closed(chat.id().0, client, "slow consumer", now());
                    session.error(
                        "slow consumer",
                        "The connection fell too far behind the room and was closed; reconnect with since-id to catch up.",
                        None,
                now(),
                    );
                } else {
                    let mut delivered = 0;
                    // One clock read per batch, not per MESSAGE.
                    let at = now();
                    for item in batch {
                        match item {
                            Outbound::Delivery(delivery) => {
                                if !chat.deliver(delivery, &mut session, at) {
                                    break;
                                }
                                delivered += 1;
                            }
                            Outbound::Outcome(outcome) => chat.on_outcome(outcome, &mut session, at),
                        }
                    }
                    // One count per batch, not per MESSAGE.
                    metrics.delivered(delivered);
                }
            }
            done = run(&mut job) => {
                job = None;
                if !chat.on_job_done(done, &mut session, now()) {
                    close_log::server_closed(chat.id().0, client, "slow consumer", now());
                }
            }
            () = sleep_until(deadline) => {
                if chat.handle_timeout(now(), &mut session) {
                    close_log::server_closed(chat.id().0, client, "token expired", now());
                }
                session.handle_timeout(now());
            }
        }
    }

    // Drain what the close produced (the Closed event; the ERROR or RECEIPT already written).
    while let Some(event) = session.poll_event() {
        if let Event::Closed(reason) = &event {
            engine_closed = engine_error_reason(reason);
        }
        chat.handle(event, &mut session, now());
    }
    if let Some(message) = session.error_sent() {
        metrics.error_sent(engine_closed.unwrap_or_else(|| ErrorReason::from_message(message)));
    }
    // SENDs that came with the close (e.g. just before DISCONNECT) are still stored.
    chat.submit_sends();
    sink.close();
    drop(job);
    if let Some(leave) = chat.closed() {
        // Boxed: alive only while the connection ends; inline, it would sit in every task.
        Box::pin(run_job(service, leave)).await;
    }
    let _ = tokio::time::timeout(
        config.write_timeout,
        write_pending(&mut transport, &mut session),
    )
    .await;
    transport.close(going_away).await;
}

/// The reason of the ERROR the engine itself sent when it closed for `reason`; `None` when
/// the application chose the ERROR (its `message` says why).
fn engine_error_reason(reason: &CloseReason) -> Option<ErrorReason> {
    match reason {
        CloseReason::ProtocolError(_) => Some(ErrorReason::ProtocolError),
        CloseReason::ConnectTimeout => Some(ErrorReason::ConnectTimeout),
        CloseReason::HeartBeatTimeout => Some(ErrorReason::HeartBeatTimeout),
        _ => None,
    }
}

async fn write_pending<T: Transport>(
    transport: &mut T,
    session: &mut Session,
) -> Result<(), TransportError> {
    let mut wrote = false;
    while let Some(transmit) = session.poll_transmit() {
        transport.feed(transmit).await?;
        wrote = true;
    }
    // Every MESSAGE of an ended subscription was queued before it ended, so it was fed above.
    while let Some(key) = session.poll_ended_subscription() {
        transport.end_subscription(key).await?;
        wrote = true;
    }
    if wrote {
        transport.flush().await?;
    }
    Ok(())
}

/// A job being run: boxed, so a connection's task only holds its memory while it runs.
type Running = Pin<Box<dyn Future<Output = JobDone> + Send>>;

/// Completes with the job under way; never, when there is none.
async fn run(job: &mut Option<Running>) -> JobDone {
    match job {
        Some(job) => job.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The driver's clock: tokio's, so tests can pause and advance time.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
