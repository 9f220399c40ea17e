//! # rtchat-redis
//!
//! Redis adapters for rtchat's ports, so several nodes behind a load balancer share room
//! events and presence:
//!
//! - [`RedisBroker`] implements [`rtchat_chat::Broker`]: every event goes through ONE Redis
//!   pub/sub channel per deployment (`{channel_prefix}:events`). Redis delivers the messages
//!   of one channel to every subscriber in the order it received them, so every node (the
//!   publishing one included) sees every room's events in the same global order. The node's
//!   sink is only ever called by the broker's subscriber task, never directly by `publish`.
//! - [`RedisPresence`] implements [`rtchat_chat::Presence`] across nodes, without zombies:
//!   each node keeps a liveness key with a TTL; live nodes sweep the sessions of nodes whose
//!   key expired, so the sessions of a crashed node disappear within `ttl + refresh_every`
//!   (20 s with the defaults). See the [`presence`] module for the design.
//!
//! The wire format of the broker is versioned JSON (see [`wire`]); anything that does not decode
//! is logged and skipped, since any node (or anyone with access to Redis) can publish.
//!
//! Both adapters need a tokio runtime: they spawn background tasks, which stop when the
//! adapter is dropped. Redis Cluster is not supported (presence's Lua scripts build key names).

#![warn(missing_docs)]

pub mod broker;
pub mod presence;
pub mod wire;

pub use broker::{DEFAULT_CHANNEL_PREFIX, RedisBroker};
pub use presence::{
    DEFAULT_REFRESH_EVERY, DEFAULT_TTL, PresenceConfig, RedisPresence, SweepListener, SweepOutcome,
};

use rtchat_chat::BackendError;
use std::time::Duration;

/// How long connecting to Redis may take before a constructor gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one command may wait for its answer before it fails with a [`BackendError`].
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A Redis error as the ports' error (the text is for logs only).
fn backend(context: &str, error: redis::RedisError) -> BackendError {
    BackendError::caused_by(format!("redis {context}"), error)
}

/// A reconnecting command connection that fails fast: one attempt when Redis is down.
async fn command_connection(
    client: redis::Client,
) -> Result<redis::aio::ConnectionManager, BackendError> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(2));
    redis::aio::ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| backend("connect", e))
}

/// Opens a client for `url` (no I/O yet).
fn client(url: &str) -> Result<redis::Client, BackendError> {
    redis::Client::open(url).map_err(|e| backend("url", e))
}
