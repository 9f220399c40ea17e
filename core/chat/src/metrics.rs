//! The node's counters for operators, exported by `GET /metrics` in the OpenMetrics text
//! format (which Prometheus scrapes).
//!
//! Every count is a plain atomic the hot paths bump without a lock or an allocation:
//! deliveries are added once per batch a connection writes, not once per MESSAGE, into a
//! [`ShardedCounter`] so that the cores never pass one cache line back and forth. Labels come
//! from fixed sets (transports, error codes), never from what a peer sent, so a hostile client
//! cannot grow the export. What the node already counts elsewhere (subscriptions, repairs) is
//! read when the metrics are encoded.

use crate::service::ChatError;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The transports a STOMP connection can come over (the `transport` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// STOMP over WebSocket (`/ws`).
    WebSocket,
    /// STOMP over WebTransport (QUIC).
    WebTransport,
    /// The in-process pair tests and the conformance suite use.
    Memory,
    /// SockJS's `websocket` transport (`/connect/{server}/{session}/websocket`).
    SockJsWebSocket,
    /// SockJS's `xhr_streaming` transport.
    SockJsXhrStreaming,
    /// SockJS's `xhr` polling transport.
    SockJsXhrPolling,
    /// SockJS's `eventsource` transport.
    SockJsEventSource,
}

impl TransportKind {
    const ALL: [TransportKind; 7] = [
        TransportKind::WebSocket,
        TransportKind::WebTransport,
        TransportKind::Memory,
        TransportKind::SockJsWebSocket,
        TransportKind::SockJsXhrStreaming,
        TransportKind::SockJsXhrPolling,
        TransportKind::SockJsEventSource,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::WebTransport => "webtransport",
            TransportKind::Memory => "memory",
            TransportKind::SockJsWebSocket => "sockjs-websocket",
            TransportKind::SockJsXhrStreaming => "sockjs-xhr-streaming",
            TransportKind::SockJsXhrPolling => "sockjs-xhr-polling",
            TransportKind::SockJsEventSource => "sockjs-eventsource",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Every `type` code of [`ChatError`], the `reason` of refused SENDs.
const CHAT_ERROR_CODES: [&str; 16] = [
    "UNKNOWN_ROOM",
    "INVALID_ROOM_ID",
    "EMPTY_MESSAGE",
    "MESSAGE_TOO_LONG",
    "RATE_LIMITED",
    "FORBIDDEN_DESTINATION",
    "UNKNOWN_DESTINATION",
    "BAD_REQUEST",
    "ROOM_EXISTS",
    "ROOM_LIMIT_REACHED",
    "INVALID_TOKEN",
    "FORBIDDEN",
    "EXPIRED_TOKEN",
    "STALE_TOKEN",
    "UNAVAILABLE",
    "NOT_STORED",
];

/// Why the server sent an ERROR frame (the `reason` label of `rtchat_errors`): the closes the
/// server initiates, then the chat codes an ERROR can carry, then anything else.
const ERROR_REASONS: [&str; 7] = [
    "protocol_error",
    "connect_timeout",
    "heart_beat_timeout",
    "slow_consumer",
    "frame_too_large",
    "server_shutting_down",
    "other",
];

/// The `reason` of an ERROR frame: one of a fixed set of labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorReason {
    /// The peer broke the protocol (malformed frame, flood, frame before CONNECT, ...).
    ProtocolError,
    /// No CONNECT in time.
    ConnectTimeout,
    /// The client went silent past its heart-beat.
    HeartBeatTimeout,
    /// The client fell too far behind.
    SlowConsumer,
    /// A transport message over the size limit.
    FrameTooLarge,
    /// The server is shutting down.
    ServerShuttingDown,
    /// A chat error sent as an ERROR (a refused CONNECT, a SEND failure with no error queue).
    Chat(&'static str),
    /// Anything else.
    Other,
}

impl ErrorReason {
    /// The reason of an ERROR whose `message` header was `message` (what the server wrote).
    pub fn from_message(message: &str) -> ErrorReason {
        match message {
            "slow consumer" => ErrorReason::SlowConsumer,
            "frame too large" => ErrorReason::FrameTooLarge,
            "server shutting down" => ErrorReason::ServerShuttingDown,
            code => CHAT_ERROR_CODES
                .iter()
                .find(|known| **known == code)
                .map_or(ErrorReason::Other, |known| ErrorReason::Chat(known)),
        }
    }

    fn slot(self) -> Slot {
        match self {
            ErrorReason::ProtocolError => Slot::Fixed(0),
            ErrorReason::ConnectTimeout => Slot::Fixed(1),
            ErrorReason::HeartBeatTimeout => Slot::Fixed(2),
            ErrorReason::SlowConsumer => Slot::Fixed(3),
            ErrorReason::FrameTooLarge => Slot::Fixed(4),
            ErrorReason::ServerShuttingDown => Slot::Fixed(5),
            ErrorReason::Other => Slot::Fixed(6),
            ErrorReason::Chat(code) => Slot::Chat(code_index(code)),
        }
    }
}

enum Slot {
    Fixed(usize),
    Chat(usize),
}

fn code_index(code: &str) -> usize {
    CHAT_ERROR_CODES
        .iter()
        .position(|known| *known == code)
        // Every ChatError code is in the list (a unit test checks); "other" otherwise.
        .unwrap_or(CHAT_ERROR_CODES.len() - 1)
}

/// A count kept by an adapter (e.g. the store's connections opened), read at each scrape.
type Sampled = Arc<AtomicU64>;

/// What `/metrics` exports. One per node, held by its [`crate::Hub`].
pub struct Metrics {
    connections: [Gauge; TransportKind::ALL.len()],
    sends_stored: Counter,
    sends_duplicate: Counter,
    sends_refused: [Counter; CHAT_ERROR_CODES.len()],
    deliveries: ShardedCounter,
    errors: [Counter; ERROR_REASONS.len()],
    chat_errors: [Counter; CHAT_ERROR_CODES.len()],
    append_seconds: Histogram,
    append_batch: Histogram,
    publish_seconds: Histogram,
    broker_resets: Counter,
    store_connections_opened: Mutex<Option<Sampled>>,
    broker_reconnects: Mutex<Option<Sampled>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("deliveries", &self.deliveries.sum())
            .finish_non_exhaustive()
    }
}

/// Seconds, from 0.5 ms to about 4 s: a store append or a broker publish.
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 14)
}

impl Metrics {
    /// Everything at zero.
    pub fn new() -> Self {
        Metrics {
            connections: Default::default(),
            sends_stored: Counter::default(),
            sends_duplicate: Counter::default(),
            sends_refused: Default::default(),
            deliveries: ShardedCounter::default(),
            errors: Default::default(),
            chat_errors: Default::default(),
            append_seconds: Histogram::new(latency_buckets()),
            // 1, 2, 4, ... 256: the writer's batch bound.
            append_batch: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 9),
            ),
            publish_seconds: Histogram::new(latency_buckets()),
            broker_resets: Counter::default(),
            store_connections_opened: Mutex::new(None),
            broker_reconnects: Mutex::new(None),
        }
    }

    /// A connection over `transport` opened; it counts until the guard is dropped.
    pub fn connection_opened(self: &Arc<Self>, transport: TransportKind) -> ConnectionGuard {
        self.connections[transport.index()].inc();
        ConnectionGuard {
            metrics: self.clone(),
            transport,
        }
    }

    /// A SEND was stored (`duplicate`: its key was already stored, and it was answered with
    /// the original).
    pub fn send_stored(&self, duplicate: bool) {
        if duplicate {
            self.sends_duplicate.inc();
        } else {
            self.sends_stored.inc();
        }
    }

    /// A SEND was refused (or could not be stored) with `error`.
    pub fn send_refused(&self, error: &ChatError) {
        self.sends_refused[code_index(error.code())].inc();
    }

    /// `count` MESSAGEs were handed to a connection's session.
    pub fn delivered(&self, count: u64) {
        if count > 0 {
            self.deliveries.add(count);
        }
    }

    /// The server sent an ERROR frame for `reason`.
    pub fn error_sent(&self, reason: ErrorReason) {
        match reason.slot() {
            Slot::Fixed(at) => self.errors[at].inc(),
            Slot::Chat(at) => self.chat_errors[at].inc(),
        };
    }

    /// A room writer stored a batch of `size` messages in `seconds`.
    pub fn appended(&self, size: usize, seconds: f64) {
        self.append_batch.observe(size as f64);
        self.append_seconds.observe(seconds);
    }

    /// A room writer published a batch to the broker in `seconds`.
    pub fn published(&self, seconds: f64) {
        self.publish_seconds.observe(seconds);
    }

    /// The broker said it may have lost events (its link broke, or came back).
    pub fn broker_reset(&self) {
        self.broker_resets.inc();
    }

    /// Exports `opened` (kept by the store adapter) as the store's connections opened.
    pub fn observe_store_connections(&self, opened: Sampled) {
        *lock(&self.store_connections_opened) = Some(opened);
    }

    /// Exports `reconnects` (kept by the broker adapter) as the broker's reconnects.
    pub fn observe_broker_reconnects(&self, reconnects: Sampled) {
        *lock(&self.broker_reconnects) = Some(reconnects);
    }

    /// The MESSAGEs delivered so far (for tests and the load generator's checks).
    pub fn deliveries(&self) -> u64 {
        self.deliveries.sum()
    }

    /// The metrics as OpenMetrics text, with `live` read from the hub at this moment.
    pub fn encode(self: &Arc<Self>, live: LiveCounts) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Snapshot {
            metrics: self.clone(),
            live,
        }));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

/// Shards of a [`ShardedCounter`]: more than the worker threads of a small node, few enough
/// to sum at each scrape.
const SHARDS: usize = 16;

/// One shard on a cache line of its own (128 bytes: adjacent-line prefetch pairs lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(AtomicU64);

/// A counter bumped by every connection on every core: each thread adds to a shard of its
/// own, so an increment never waits for a cache line another core holds, and a scrape sums
/// the shards.
#[derive(Debug, Default)]
pub struct ShardedCounter {
    shards: [Shard; SHARDS],
}

/// Hands each thread the next shard, round robin.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THIS_THREADS_SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

impl ShardedCounter {
    /// Adds `count` to this thread's shard.
    pub fn add(&self, count: u64) {
        let shard = THIS_THREADS_SHARD.with(|shard| *shard);
        self.shards[shard].0.fetch_add(count, Ordering::Relaxed);
    }

    /// The total over every shard.
    pub fn sum(&self) -> u64 {
        self.shards.iter().fold(0u64, |sum, shard| {
            sum.wrapping_add(shard.0.load(Ordering::Relaxed))
        })
    }
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Counts the hub keeps itself, read at each scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveCounts {
    /// Subscriptions registered on this node.
    pub subscriptions: u64,
    /// Messages the room logs read from the store to fill holes.
    pub repaired: u64,
}

/// Keeps a connection counted in `rtchat_connections` while it lives.
pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
    transport: TransportKind,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.connections[self.transport.index()].dec();
    }
}

impl fmt::Debug for ConnectionGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnectionGuard")
            .field(&self.transport)
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One scrape: the node's metrics plus the live counts.
#[derive(Debug)]
struct Snapshot {
    metrics: Arc<Metrics>,
    live: LiveCounts,
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let m = &self.metrics;

        let mut family = encoder.encode_descriptor(
            "rtchat_connections",
            "Open STOMP connections, by transport.",
            None,
            m.connections[0].metric_type(),
        )?;
        for transport in TransportKind::ALL {
            m.connections[transport.index()]
                .encode(family.encode_family(&[("transport", transport.label())])?)?;
        }

        ConstGauge::new(saturating_i64(self.live.subscriptions)).encode(
            encoder.encode_descriptor(
                "rtchat_subscriptions",
                "Subscriptions registered on this node.",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?,
        )?;

        let mut family = encoder.encode_descriptor(
            "rtchat_sends_accepted",
            "SENDs stored and receipted, by outcome (duplicate: a retry of a stored message-key).",
            None,
            m.sends_stored.metric_type(),
        )?;
        m.sends_stored
            .encode(family.encode_family(&[("outcome", "stored")])?)?;
        m.sends_duplicate
            .encode(family.encode_family(&[("outcome", "duplicate")])?)?;

        let mut family = encoder.encode_descriptor(
            "rtchat_sends_refused",
            "SENDs answered with an error, by error code.",
            None,
            m.sends_stored.metric_type(),
        )?;
        for (code, counter) in CHAT_ERROR_CODES.iter().zip(&m.sends_refused) {
            counter.encode(family.encode_family(&[("reason", *code)])?)?;
        }

        ConstCounter::new(m.deliveries.sum()).encode(encoder.encode_descriptor(
            "rtchat_deliveries",
            "MESSAGE frames delivered to connections.",
            None,
            m.sends_stored.metric_type(),
        )?)?;

        m.errors[3].encode(encoder.encode_descriptor(
            "rtchat_slow_consumer_closes",
            "Connections closed because they fell too far behind.",
            None,
            m.sends_stored.metric_type(),
        )?)?;

        let mut family = encoder.encode_descriptor(
            "rtchat_errors",
            "ERROR frames sent (each ends its connection), by reason.",
            None,
            m.sends_stored.metric_type(),
        )?;
        for (reason, counter) in ERROR_REASONS.iter().zip(&m.errors) {
            counter.encode(family.encode_family(&[("reason", *reason)])?)?;
        }
        for (code, counter) in CHAT_ERROR_CODES.iter().zip(&m.chat_errors) {
            if counter.get() > 0 {
                counter.encode(family.encode_family(&[("reason", *code)])?)?;
            }
        }

        m.append_seconds.encode(encoder.encode_descriptor(
            "rtchat_store_append",
            "Time a room writer's batch took to store (one transaction).",
            Some(&Unit::Seconds),
            m.append_seconds.metric_type(),
        )?)?;
        m.append_batch.encode(encoder.encode_descriptor(
            "rtchat_store_append_batch_size",
            "Messages per stored batch (group commit).",
            None,
            m.append_batch.metric_type(),
        )?)?;
        m.publish_seconds.encode(encoder.encode_descriptor(
            "rtchat_broker_publish",
            "Time a stored batch took to publish to the broker.",
            Some(&Unit::Seconds),
            m.publish_seconds.metric_type(),
        )?)?;

        m.broker_resets.encode(encoder.encode_descriptor(
            "rtchat_broker_resets",
            "Times the broker said events may have been lost (link lost, link back); the room logs then read the store.",
            None,
            m.broker_resets.metric_type(),
        )?)?;
        let sampled = [
            (
                "rtchat_broker_reconnects",
                "Times the broker's subscriber connection was re-established.",
                lock(&m.broker_reconnects).clone(),
            ),
            (
                "rtchat_store_connections_opened",
                "Database connections opened (the first ones, and every reconnect).",
                lock(&m.store_connections_opened).clone(),
            ),
        ];
        for (name, help, value) in sampled {
            if let Some(value) = value {
                let counter = ConstCounter::new(value.load(Ordering::Relaxed));
                counter.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    counter.metric_type(),
                )?)?;
            }
        }

        let repaired = ConstCounter::new(self.live.repaired);
        repaired.encode(encoder.encode_descriptor(
            "rtchat_room_log_repaired_messages",
            "Messages the room logs read from the store to fill holes in live delivery.",
            None,
            repaired.metric_type(),
        )?)?;
        Ok(())
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sharded_counter_sums_what_every_thread_added() {
        let counter = Arc::new(ShardedCounter::default());
        let threads: Vec<_> = (0..SHARDS as u64 + 3)
            .map(|n| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        counter.add(n + 1);
                    }
                })
            })
            .collect();
        for thread in threads {
            assert!(thread.join().is_ok());
        }
        let threads = SHARDS as u64 + 3;
        assert_eq!(counter.sum(), 1_000 * threads * (threads + 1) / 2);
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    #[test]
    fn every_chat_error_code_has_its_own_label() {
        let errors = [
            ChatError::UnknownRoom,
            ChatError::InvalidRoomId,
            ChatError::EmptyMessage,
            ChatError::MessageTooLong { max: 1 },
            ChatError::RateLimited,
            ChatError::ForbiddenDestination(String::new()),
            ChatError::UnknownDestination(String::new()),
            ChatError::BadRequest(crate::BadRequest::SendBody),
            ChatError::RoomExists,
            ChatError::TooManyRooms,
            ChatError::InvalidToken,
            ChatError::Forbidden,
            ChatError::ExpiredToken,
            ChatError::StaleToken,
            ChatError::Unavailable,
            ChatError::NotStored,
        ];
        for (at, error) in errors.iter().enumerate() {
            assert_eq!(CHAT_ERROR_CODES[at], error.code());
            assert_eq!(code_index(error.code()), at);
        }
        // Errors that share a code with another.
        assert_eq!(
            code_index(ChatError::OtherIdentity.code()),
            code_index(ChatError::Forbidden.code())
        );
    }

    #[test]
    fn counts_show_in_the_text_under_their_labels() {
        let metrics = Arc::new(Metrics::new());
        let guard = metrics.connection_opened(TransportKind::WebSocket);
        let _other = metrics.connection_opened(TransportKind::WebSocket);
        metrics.send_stored(false);
        metrics.send_stored(false);
        metrics.send_stored(true);
        metrics.send_refused(&ChatError::RateLimited);
        metrics.delivered(40);
        metrics.delivered(2);
        metrics.error_sent(ErrorReason::SlowConsumer);
        metrics.error_sent(ErrorReason::from_message("INVALID_TOKEN"));
        metrics.error_sent(ErrorReason::from_message("anything a peer wrote"));
        metrics.appended(16, 0.002);
        metrics.observe_store_connections(Arc::new(AtomicU64::new(3)));
        drop(guard);
        let text = metrics.encode(LiveCounts {
            subscriptions: 7,
            repaired: 5,
        });
        for (series, expected) in [
            ("rtchat_connections{transport=\"websocket\"}", 1.0),
            ("rtchat_connections{transport=\"webtransport\"}", 0.0),
            ("rtchat_subscriptions", 7.0),
            ("rtchat_sends_accepted_total{outcome=\"stored\"}", 2.0),
            ("rtchat_sends_accepted_total{outcome=\"duplicate\"}", 1.0),
            ("rtchat_sends_refused_total{reason=\"RATE_LIMITED\"}", 1.0),
            ("rtchat_sends_refused_total{reason=\"NOT_STORED\"}", 0.0),
            ("rtchat_deliveries_total", 42.0),
            ("rtchat_slow_consumer_closes_total", 1.0),
            ("rtchat_errors_total{reason=\"slow_consumer\"}", 1.0),
            ("rtchat_errors_total{reason=\"INVALID_TOKEN\"}", 1.0),
            ("rtchat_errors_total{reason=\"other\"}", 1.0),
            ("rtchat_store_append_batch_size_count", 1.0),
            ("rtchat_store_append_batch_size_sum", 16.0),
            ("rtchat_store_append_seconds_count", 1.0),
            ("rtchat_store_connections_opened_total", 3.0),
            ("rtchat_room_log_repaired_messages_total", 5.0),
        ] {
            assert_eq!(value(&text, series), Some(expected), "{series} in\n{text}");
        }
        // Not given by this node: not exported, rather than a misleading zero.
        assert!(!text.contains("rtchat_broker_reconnects"));
        assert!(text.ends_with("# EOF\n"));
    }
}
