//! The Redis broker: one pub/sub channel per deployment, so one global order of events.
//!
//! `publish` sends the encoded event (see [`crate::wire`]) with `PUBLISH` on a reconnecting
//! command connection. A background task holds a dedicated pub/sub connection subscribed to the
//! channel, decodes every payload and hands the event to the node's [`RoomEventSink`]; the
//! publishing node's own events come back the same way, which is what gives every node the same
//! order. Redis pub/sub is at-most-once: events published while a node's subscription is down
//! are not delivered to it. So when the subscription is lost and again when it is back, the
//! sink is told ([`RoomEventSink::on_reset`]): the node's room log then reads what it missed
//! from the store, and nothing a client was sent has a hole.

use crate::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT, backend, client, command_connection, wire};
use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use rtchat_chat::{BackendError, Broker, RoomEvent, RoomEventSink};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// The channel prefix [`RedisBroker::connect`] uses: events go on `rtchat:events`.
pub const DEFAULT_CHANNEL_PREFIX: &str = "rtchat";

/// How often the subscriber pings Redis, to notice a connection that died silently.
const HEALTH_CHECK_EVERY: Duration = Duration::from_secs(15);

/// First delay before resubscribing after the pub/sub connection was lost; doubles per failure.
const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// Longest delay between two resubscription attempts: short, so an outage is not stretched
/// by more than this once Redis is back.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// A [`Broker`] over Redis pub/sub, for several nodes.
///
/// Built with the node's sink; a background task (spawned by [`RedisBroker::connect`]) calls
/// the sink for every event any node publishes, in the order Redis received them. The task
/// reconnects and resubscribes with a bounded backoff when the connection drops, and is
/// aborted when the broker is dropped.
pub struct RedisBroker {
    channel: String,
    publisher: ConnectionManager,
    subscriber: JoinHandle<()>,
    /// Times the subscriber connection was re-established (for metrics).
    reconnects: Arc<AtomicU64>,
}

impl RedisBroker {
    /// Connects to `url` with the [`DEFAULT_CHANNEL_PREFIX`]; see [`RedisBroker::connect_with_prefix`].
    pub async fn connect(
        url: &str,
        sink: Arc<dyn RoomEventSink>,
    ) -> Result<RedisBroker, BackendError> {
        Self::connect_with_prefix(url, DEFAULT_CHANNEL_PREFIX, sink).await
    }

    /// Connects to `url` and subscribes to `{channel_prefix}:events` (every node of a
    /// deployment must use the same prefix). Fails fast when Redis is unreachable; when it
    /// returns, the subscription is active, so every event published from then on reaches
    /// `sink`. Must be called within a tokio runtime: it spawns the subscriber task.
    pub async fn connect_with_prefix(
        url: &str,
        channel_prefix: &str,
        sink: Arc<dyn RoomEventSink>,
    ) -> Result<RedisBroker, BackendError> {
        let client = client(url)?;
        let channel = format!("{channel_prefix}:events");
        let subscription = subscribe(&client, &channel)
            .await
            .map_err(|e| BackendError::new(format!("redis subscribe: {e}")))?;
        let publisher = command_connection(client.clone()).await?;
        let reconnects = Arc::new(AtomicU64::new(0));
        let subscriber = tokio::spawn(run(
            client,
            channel.clone(),
            sink,
            subscription,
            reconnects.clone(),
        ));
        Ok(RedisBroker {
            channel,
            publisher,
            subscriber,
            reconnects,
        })
    }

    /// Times the subscriber connection has been re-established since the start, as a shared
    /// count that goes on growing (the node's metrics read it).
    pub fn reconnects(&self) -> Arc<AtomicU64> {
        self.reconnects.clone()
    }

    /// The pub/sub channel this broker publishes on and listens to.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

impl fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBroker")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Broker for RedisBroker {
    /// Publishes `event` on the channel. It reaches this node's sink too, through the
    /// subscriber task (never directly), in the same order as on every other node.
    async fn publish(&self, event: RoomEvent) -> Result<(), BackendError> {
        let payload = wire::encode(&event);
        let mut connection = self.publisher.clone();
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async::<u64>(&mut connection)
            .await
            .map(|_receivers| ())
            .map_err(|e| backend("publish", e))
    }

    /// PING on the publishing connection, within the response timeout.
    async fn ready(&self) -> Result<(), BackendError> {
        let mut connection = self.publisher.clone();
        match timeout(
            RESPONSE_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut connection),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(backend("ping", error)),
            Err(_) => Err(BackendError::new("redis ping: timed out".to_owned())),
        }
    }

    /// Publishes `events` in one pipeline: one round trip for a whole batch, in order.
    async fn publish_all(&self, events: Vec<RoomEvent>) -> Result<(), BackendError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        for event in &events {
            pipeline
                .cmd("PUBLISH")
                .arg(&self.channel)
                .arg(wire::encode(event))
                .ignore();
        }
        let mut connection = self.publisher.clone();
        pipeline
            .query_async::<()>(&mut connection)
            .await
            .map_err(|e| backend("publish", e))
    }
}

/// A dedicated pub/sub connection subscribed to `channel` (confirmed by Redis).
async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> Result<(PubSubSink, PubSubStream), String> {
    let pubsub = timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let (mut sink, stream) = pubsub.split();
    timeout(RESPONSE_TIMEOUT, sink.subscribe(channel))
        .await
        .map_err(|_| "SUBSCRIBE timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok((sink, stream))
}

/// The subscriber task: delivers events, and resubscribes whenever the connection is lost.
/// Runs until aborted.
async fn run(
    client: redis::Client,
    channel: String,
    sink: Arc<dyn RoomEventSink>,
    mut subscription: (PubSubSink, PubSubStream),
    reconnects: Arc<AtomicU64>,
) {
    loop {
        let reason = pump(&channel, sink.as_ref(), &mut subscription).await;
        tracing::warn!(
            %channel, %reason,
            "redis pub/sub connection lost; resubscribing (missed events are read from the store)"
        );
        // Repairs can start at once: what the store has is not waiting for Redis.
        sink.on_reset(Instant::now());
        subscription = resubscribe(&client, &channel).await;
        reconnects.fetch_add(1, Ordering::Relaxed);
        // Whatever was published between the loss and the new subscription is read now.
        sink.on_reset(Instant::now());
        tracing::info!(%channel, "redis pub/sub resubscribed");
    }
}

/// Delivers messages until the connection fails; returns why it stopped.
async fn pump(
    channel: &str,
    sink: &dyn RoomEventSink,
    (pubsub, stream): &mut (PubSubSink, PubSubStream),
) -> String {
    let mut health = tokio::time::interval(HEALTH_CHECK_EVERY);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    health.tick().await; // The first tick is immediate.
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => deliver(channel, sink, message.get_payload_bytes()),
                None => return "connection closed".to_owned(),
            },
            _ = health.tick() => {
                match timeout(RESPONSE_TIMEOUT, pubsub.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("PING failed: {e}"),
                    Err(_) => return "PING timed out".to_owned(),
                }
            }
        }
    }
}

/// Decodes one payload and hands it to the sink; logs and skips what does not decode.
fn deliver(channel: &str, sink: &dyn RoomEventSink, payload: &[u8]) {
    match wire::decode(payload) {
        Ok(event) => sink.on_event(event, Instant::now()),
        Err(error) => tracing::warn!(
            %channel, %error, len = payload.len(),
            "skipping an undecodable payload on the event channel"
        ),
    }
}

/// Resubscribes, retrying with a doubling delay between [`MIN_BACKOFF`] and [`MAX_BACKOFF`].
async fn resubscribe(client: &redis::Client, channel: &str) -> (PubSubSink, PubSubStream) {
    let mut delay = MIN_BACKOFF;
    loop {
        tokio::time::sleep(delay).await;
        match subscribe(client, channel).await {
            Ok(subscription) => return subscription,
            Err(error) => {
                delay = (delay * 2).min(MAX_BACKOFF);
                tracing::warn!(%channel, %error, retry_in = ?delay, "redis pub/sub resubscribe failed");
            }
        }
    }
}
