//! Presence shared by every node, with a bounded life for the sessions of a crashed node.
//!
//! # Design
//!
//! Every node has an id (`node_id`, unique per running process) and these keys live under a
//! deployment prefix `P`:
//!
//! | key | type | contents |
//! |---|---|---|
//! | `P:nodes` | set | ids of nodes that may own state |
//! | `P:node:{node}` | string, TTL | the node's liveness key, refreshed every `refresh_every`, expires after `ttl` |
//! | `P:node:{node}:sessions` | set | the node's sessions that have any state (connected or in a room) |
//! | `P:connected` | set | `{node}\|{session}` of every connected session: [`Presence::total`] is its size |
//! | `P:room:{room}` | set | `{node}\|{session}` of the room's members: [`Presence::room_count`] is its size |
//! | `P:rooms:{node}\|{session}` | set | the rooms of one session, so `disconnected` knows what changes |
//!
//! Every operation is one Lua script, so it is atomic and its answer is consistent with the
//! change it made; sets make `connected` and `joined` idempotent and counts are of distinct
//! sessions.
//!
//! **No zombies.** A background task (the refresher) on every node, every `refresh_every`:
//! 1. sets the node's liveness key with the `ttl` and adds the node to `P:nodes`; if the key had
//!    expired (Redis was unreachable, the process stalled...) other nodes may have swept this
//!    node's sessions, so it writes them back from its local mirror;
//! 2. sweeps: for every node in `P:nodes` whose liveness key is gone, removes all its sessions
//!    from `P:connected` and from every room, in one script (so two nodes sweeping at once do
//!    not both report the same change).
//!
//! A crashed node stops refreshing, its key expires at most `ttl` after its last refresh, and
//! the next sweep by any live node (at most `refresh_every` later) removes its sessions: with the
//! defaults (15 s, 5 s) they are gone within **20 s** of the crash. Until then they still count.
//! A node that restarts with the same id first purges what its previous run left
//! ([`RedisPresence::connect_with`]). A clean stop calls [`RedisPresence::shutdown`], which
//! removes the node's sessions at once. The changes a sweep makes can be published (as
//! presence and entry events) through [`PresenceConfig::on_sweep`].
//!
//! The scripts build key names from the prefix, so Redis Cluster is not supported.

use crate::{backend, client, command_connection};
use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;
use rtchat_chat::{BackendError, Presence, RoomId, SessionKey};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Default time a node's liveness key lives without a refresh.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// Default period of the refresher (liveness key and sweep).
pub const DEFAULT_REFRESH_EVERY: Duration = Duration::from_secs(5);

/// Called with what a sweep changed: log it, or publish the new counts as room events.
pub type SweepListener = Arc<dyn Fn(SweepOutcome) + Send + Sync>;

/// How a [`RedisPresence`] is set up.
#[derive(Clone)]
pub struct PresenceConfig {
    /// Key prefix shared by every node of a deployment (e.g. `rtchat:presence`).
    pub prefix: String,
    /// This node's id: unique among running nodes, non-empty, without `|`.
    pub node_id: String,
    /// How long the node's liveness key lives without a refresh; must exceed `refresh_every`.
    pub ttl: Duration,
    /// How often the refresher renews the liveness key and sweeps dead nodes.
    pub refresh_every: Duration,
    /// Called (from the refresher task, so it must not block) after a sweep removed a node.
    pub on_sweep: Option<SweepListener>,
}

impl PresenceConfig {
    /// The default timings ([`DEFAULT_TTL`], [`DEFAULT_REFRESH_EVERY`]) and no sweep listener.
    pub fn new(prefix: impl Into<String>, node_id: impl Into<String>) -> Self {
        PresenceConfig {
            prefix: prefix.into(),
            node_id: node_id.into(),
            ttl: DEFAULT_TTL,
            refresh_every: DEFAULT_REFRESH_EVERY,
            on_sweep: None,
        }
    }

    fn validate(&self) -> Result<(), BackendError> {
        let invalid = |why: &str| Err(BackendError::new(format!("invalid presence config: {why}")));
        if self.node_id.is_empty() || self.node_id.contains('|') {
            return invalid("node_id must be non-empty and must not contain '|'");
        }
        if self.refresh_every.is_zero() || self.ttl <= self.refresh_every {
            return invalid("ttl must exceed refresh_every, which must be positive");
        }
        Ok(())
    }
}

impl fmt::Debug for PresenceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceConfig")
            .field("prefix", &self.prefix)
            .field("node_id", &self.node_id)
            .field("ttl", &self.ttl)
            .field("refresh_every", &self.refresh_every)
            .field("on_sweep", &self.on_sweep.is_some())
            .finish()
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SweepOutcome {
    /// The nodes whose sessions were removed.
    pub nodes: Vec<String>,
    /// The number of connected sessions afterwards.
    pub total: u64,
    /// The rooms whose count changed, with their new counts, sorted by room.
    pub rooms: Vec<(RoomId, u64)>,
}

/// A [`Presence`] in Redis, shared by every node; see the [module docs](self) for the design.
///
/// [`RedisPresence::connect`] spawns the refresher task; dropping the presence aborts it
/// (the node's sessions then expire like a crashed node's), [`RedisPresence::shutdown`]
/// also removes them at once.
pub struct RedisPresence {
    inner: Arc<Inner>,
    refresher: JoinHandle<()>,
}

struct Inner {
    connection: ConnectionManager,
    config: PresenceConfig,
    /// This node's own state, to write back if other nodes swept it while it was alive.
    local: Mutex<Local>,
    /// Operations hold it shared, [`Inner::restore`] exclusively: a restore never writes back
    /// a session that an operation running at the same time removes.
    gate: tokio::sync::RwLock<()>,
}

#[derive(Default)]
struct Local {
    connected: HashSet<SessionKey>,
    rooms: HashMap<SessionKey, HashSet<RoomId>>,
}

// ARGV of every script: prefix, node, then the script's own arguments.

static CONNECTED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, n, s = ARGV[1], ARGV[2], ARGV[3]
redis.call('SADD', p..':nodes', n)
redis.call('SADD', p..':node:'..n..':sessions', s)
redis.call('SADD', p..':connected', n..'|'..s)
return redis.call('SCARD', p..':connected')
",
    )
});

static DISCONNECTED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, n, s = ARGV[1], ARGV[2], ARGV[3]
local m = n..'|'..s
redis.call('SREM', p..':connected', m)
local rk = p..':rooms:'..m
local rooms = redis.call('SMEMBERS', rk)
local counts = {}
for i, r in ipairs(rooms) do
  local key = p..':room:'..r
  redis.call('SREM', key, m)
  counts[i] = redis.call('SCARD', key)
end
redis.call('DEL', rk)
redis.call('SREM', p..':node:'..n..':sessions', s)
return {redis.call('SCARD', p..':connected'), rooms, counts}
",
    )
});

static JOINED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, n, s, r = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local m = n..'|'..s
redis.call('SADD', p..':nodes', n)
redis.call('SADD', p..':node:'..n..':sessions', s)
redis.call('SADD', p..':rooms:'..m, r)
redis.call('SADD', p..':room:'..r, m)
return redis.call('SCARD', p..':room:'..r)
",
    )
});

static LEFT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, n, s, r = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local m = n..'|'..s
redis.call('SREM', p..':room:'..r, m)
redis.call('SREM', p..':rooms:'..m, r)
if redis.call('EXISTS', p..':rooms:'..m) == 0 and redis.call('SISMEMBER', p..':connected', m) == 0 then
  redis.call('SREM', p..':node:'..n..':sessions', s)
end
return redis.call('SCARD', p..':room:'..r)
",
    )
});

/// Renews the liveness key; returns 1 if it still existed, 0 if it had expired.
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, n, ttl_ms = ARGV[1], ARGV[2], ARGV[3]
local live = p..':node:'..n
local was = redis.call('EXISTS', live)
redis.call('SET', live, '1', 'PX', ttl_ms)
redis.call('SADD', p..':nodes', n)
return was
",
    )
});

/// With an empty ARGV[2], removes every node whose liveness key is gone; with a node id,
/// removes that node (and its liveness key) whatever its state.
static SWEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, only = ARGV[1], ARGV[2]
local candidates
if only ~= '' then candidates = {only} else candidates = redis.call('SMEMBERS', p..':nodes') end
local swept, changed = {}, {}
for _, n in ipairs(candidates) do
  if only ~= '' or redis.call('EXISTS', p..':node:'..n) == 0 then
    table.insert(swept, n)
    local nk = p..':node:'..n..':sessions'
    for _, s in ipairs(redis.call('SMEMBERS', nk)) do
      local m = n..'|'..s
      redis.call('SREM', p..':connected', m)
      local rk = p..':rooms:'..m
      for _, r in ipairs(redis.call('SMEMBERS', rk)) do
        redis.call('SREM', p..':room:'..r, m)
        changed[r] = true
      end
      redis.call('DEL', rk)
    end
    redis.call('DEL', nk)
    redis.call('SREM', p..':nodes', n)
    if only ~= '' then redis.call('DEL', p..':node:'..n) end
  end
end
local rooms, counts = {}, {}
for r, _ in pairs(changed) do
  table.insert(rooms, r)
  table.insert(counts, redis.call('SCARD', p..':room:'..r))
end
return {redis.call('SCARD', p..':connected'), swept, rooms, counts}
",
    )
});

impl RedisPresence {
    /// Connects with the default timings; see [`RedisPresence::connect_with`].
    pub async fn connect(
        url: &str,
        prefix: &str,
        node_id: &str,
    ) -> Result<RedisPresence, BackendError> {
        Self::connect_with(url, PresenceConfig::new(prefix, node_id)).await
    }

    /// Connects to `url` (failing fast when Redis is unreachable), purges what a previous run
    /// of this node id left, registers the node as alive, sweeps dead nodes, and spawns the
    /// refresher task. Must be called within a tokio runtime.
    pub async fn connect_with(
        url: &str,
        config: PresenceConfig,
    ) -> Result<RedisPresence, BackendError> {
        config.validate()?;
        let connection = command_connection(client(url)?).await?;
        let inner = Arc::new(Inner {
            connection,
            config,
            local: Mutex::new(Local::default()),
            gate: tokio::sync::RwLock::new(()),
        });
        let purged = inner.sweep(Some(&inner.config.node_id)).await?;
        if !purged.rooms.is_empty() || purged.total > 0 {
            inner.report(purged);
        }
        inner.heartbeat().await?;
        let swept = inner.sweep(None).await?;
        if !swept.nodes.is_empty() {
            inner.report(swept);
        }
        let refresher = tokio::spawn(refresh(Arc::clone(&inner)));
        Ok(RedisPresence { inner, refresher })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// Removes the sessions of every node whose liveness key expired, now (the refresher does
    /// this every `refresh_every`).
    pub async fn sweep(&self) -> Result<SweepOutcome, BackendError> {
        self.inner.sweep(None).await
    }

    /// A clean stop: stops the refresher and removes this node's sessions and liveness key at
    /// once. Returns what changed, for the caller to publish.
    pub async fn shutdown(&self) -> Result<SweepOutcome, BackendError> {
        self.refresher.abort();
        let _exclusive = self.inner.gate.write().await;
        {
            let mut local = lock(&self.inner.local);
            local.connected.clear();
            local.rooms.clear();
        }
        self.inner.sweep(Some(&self.inner.config.node_id)).await
    }
}

impl Drop for RedisPresence {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

impl fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPresence")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The refresher task: runs until aborted.
async fn refresh(inner: Arc<Inner>) {
    let mut ticks = tokio::time::interval(inner.config.refresh_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // The first tick is immediate; `connect_with` just did the work.
    loop {
        ticks.tick().await;
        if let Err(error) = inner.heartbeat().await {
            tracing::warn!(node = %inner.config.node_id, %error, "presence heartbeat failed");
            continue;
        }
        match inner.sweep(None).await {
            Ok(outcome) if !outcome.nodes.is_empty() => inner.report(outcome),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "presence sweep failed"),
        }
    }
}

impl Inner {
    fn prefix(&self) -> &str {
        &self.config.prefix
    }

    fn node(&self) -> &str {
        &self.config.node_id
    }

    /// Renews the liveness key; writes this node's state back if the key had expired.
    async fn heartbeat(&self) -> Result<(), BackendError> {
        let ttl_ms = u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut connection = self.connection.clone();
        let existed: i64 = HEARTBEAT
            .prepare_invoke()
            .arg(self.prefix())
            .arg(self.node())
            .arg(ttl_ms)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| backend("heartbeat", e))?;
        if existed == 0 {
            self.restore().await?;
        }
        Ok(())
    }

    /// Writes this node's sessions and memberships back (idempotent).
    async fn restore(&self) -> Result<(), BackendError> {
        let _exclusive = self.gate.write().await;
        let (connected, rooms) = {
            let local = lock(&self.local);
            let rooms: Vec<(SessionKey, RoomId)> = local
                .rooms
                .iter()
                .flat_map(|(s, rs)| rs.iter().map(|r| (s.clone(), r.clone())))
                .collect();
            (local.connected.iter().cloned().collect::<Vec<_>>(), rooms)
        };
        if connected.is_empty() && rooms.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            node = %self.node(), sessions = connected.len(), memberships = rooms.len(),
            "presence liveness key had expired; restoring this node's sessions"
        );
        for session in &connected {
            self.run_connected(session).await?;
        }
        for (session, room) in &rooms {
            self.run_joined(room, session).await?;
        }
        Ok(())
    }

    /// Removes dead nodes (`only: None`) or one node whatever its state.
    async fn sweep(&self, only: Option<&str>) -> Result<SweepOutcome, BackendError> {
        let mut connection = self.connection.clone();
        let (total, nodes, rooms, counts): (u64, Vec<String>, Vec<String>, Vec<u64>) = SWEEP
            .prepare_invoke()
            .arg(self.prefix())
            .arg(only.unwrap_or(""))
            .invoke_async(&mut connection)
            .await
            .map_err(|e| backend("sweep", e))?;
        Ok(SweepOutcome {
            nodes,
            total,
            rooms: room_counts(rooms, counts),
        })
    }

    fn report(&self, outcome: SweepOutcome) {
        tracing::info!(
            nodes = ?outcome.nodes, total = outcome.total, rooms = outcome.rooms.len(),
            "presence swept the sessions of dead nodes"
        );
        if let Some(listener) = &self.config.on_sweep {
            listener(outcome);
        }
    }

    async fn run_connected(&self, session: &SessionKey) -> Result<u64, BackendError> {
        let mut connection = self.connection.clone();
        CONNECTED
            .prepare_invoke()
            .arg(self.prefix())
            .arg(self.node())
            .arg(session.0.as_ref())
            .invoke_async(&mut connection)
            .await
            .map_err(|e| backend("connected", e))
    }

    async fn run_joined(&self, room: &RoomId, session: &SessionKey) -> Result<u64, BackendError> {
        let mut connection = self.connection.clone();
        JOINED
            .prepare_invoke()
            .arg(self.prefix())
            .arg(self.node())
            .arg(session.0.as_ref())
            .arg(room.as_str())
            .invoke_async(&mut connection)
            .await
            .map_err(|e| backend("joined", e))
    }
}

/// Pairs rooms with their counts, sorted by room; skips names that are not room ids
/// (only this crate writes them, but Redis is shared).
fn room_counts(rooms: Vec<String>, counts: Vec<u64>) -> Vec<(RoomId, u64)> {
    let mut changed: Vec<(RoomId, u64)> = rooms
        .iter()
        .zip(counts)
        .filter_map(|(room, count)| RoomId::parse(room).map(|room| (room, count)))
        .collect();
    changed.sort_unstable();
    changed
}

/// Locks the mirror whether or not a panicking thread poisoned it: each update is a single
/// set operation, so the data is always consistent.
fn lock(mutex: &Mutex<Local>) -> MutexGuard<'_, Local> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl Presence for RedisPresence {
    async fn connected(&self, session: &SessionKey) -> Result<u64, BackendError> {
        let _shared = self.inner.gate.read().await;
        lock(&self.inner.local).connected.insert(session.clone());
        self.inner.run_connected(session).await
    }

    async fn disconnected(
        &self,
        session: &SessionKey,
    ) -> Result<(u64, Vec<(RoomId, u64)>), BackendError> {
        let _shared = self.inner.gate.read().await;
        {
            let mut local = lock(&self.inner.local);
            local.connected.remove(session);
            local.rooms.remove(session);
        }
        let mut connection = self.inner.connection.clone();
        let (total, rooms, counts): (u64, Vec<String>, Vec<u64>) = DISCONNECTED
            .prepare_invoke()
            .arg(self.inner.prefix())
            .arg(self.inner.node())
            .arg(session.0.as_ref())
            .invoke_async(&mut connection)
            .await
            .map_err(|e| backend("disconnected", e))?;
        Ok((total, room_counts(rooms, counts)))
    }

    async fn joined(&self, room: &RoomId, session: &SessionKey) -> Result<u64, BackendError> {
        let _shared = self.inner.gate.read().await;
        lock(&self.inner.local)
            .rooms
            .entry(session.clone())
            .or_default()
            .insert(room.clone());
        self.inner.run_joined(room, session).await
    }

    async fn left(&self, room: &RoomId, session: &SessionKey) -> Result<u64, BackendError> {
        let _shared = self.inner.gate.read().await;
        {
            let mut local = lock(&self.inner.local);
            if let Some(rooms) = local.rooms.get_mut(session) {
                rooms.remove(room);
                if rooms.is_empty() {
                    local.rooms.remove(session);
                }
            }
        }
        let mut connection = self.inner.connection.clone();
        LEFT.prepare_invoke()
            .arg(self.inner.prefix())
            .arg(self.inner.node())
            .arg(session.0.as_ref())
            .arg(room.as_str())
            .invoke_async(&mut connection)
            .await
            .map_err(|e| backend("left", e))
    }

    async fn room_count(&self, room: &RoomId) -> Result<u64, BackendError> {
        let mut connection = self.inner.connection.clone();
        redis::cmd("SCARD")
            .arg(format!("{}:room:{}", self.inner.prefix(), room.as_str()))
            .query_async(&mut connection)
            .await
            .map_err(|e| backend("room_count", e))
    }

    async fn total(&self) -> Result<u64, BackendError> {
        let mut connection = self.inner.connection.clone();
        redis::cmd("SCARD")
            .arg(format!("{}:connected", self.inner.prefix()))
            .query_async(&mut connection)
            .await
            .map_err(|e| backend("total", e))
    }
}
