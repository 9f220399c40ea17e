//! Adapter combinations: ways to stand up a node and connect clients to it.
//!
//! Adding one (PostgreSQL/Redis, WebTransport, ...) is one implementation of [`Combination`]
//! plus a line in [`all`]: the runner only ever sees these traits.

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use rtchat_driver::{DriverConfig, Shutdown, memory_pair, run_connection};
use rtchat_postgres::PostgresStore;
use rtchat_server::{BrokerKind, Server, ServerConfig, StoreKind, assemble};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// How long a node may take to finish its connections when a transcript is over.
const DRAIN: Duration = Duration::from_secs(2);

/// The address clients connect from (the in-process driver is told it; sockets use it).
const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A way to run a node: a transport, a store, a broker.
#[async_trait]
pub trait Combination: Send + Sync {
    /// A short name for failure messages, e.g. `memory-transport`.
    fn name(&self) -> &'static str;
    /// Starts a fresh node with `config`.
    async fn start(&self, config: &ServerConfig) -> Result<Box<dyn Node>, String>;
}

/// A running node.
#[async_trait]
pub trait Node: Send {
    /// Opens a new client connection.
    async fn connect(&mut self) -> Result<Box<dyn Client>, String>;
    /// Stops the node and waits (bounded) for its connections to end.
    async fn stop(self: Box<Self>);
}

/// The client end of one connection.
#[async_trait]
pub trait Client: Send {
    /// Sends `bytes` as one transport message.
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), String>;
    /// The next bytes from the server; `None` once the server closed the connection.
    /// Must be cancel-safe (the runner wraps it in timeouts).
    async fn recv(&mut self) -> Option<Vec<u8>>;
    /// Closes the connection from the client side.
    async fn close(&mut self);
}

/// Every combination the suite runs, the reference first. The cluster needs PostgreSQL and
/// Redis: the servers `DATABASE_URL` and `REDIS_URL` name, or else throwaway servers started
/// from the installed binaries (see `rtchat-test-services`). Without either it is skipped,
/// with a notice `cargo test` shows, and the run fails instead under
/// `RTCHAT_REQUIRE_SERVICES=1`.
pub fn all() -> Vec<Box<dyn Combination>> {
    let mut combinations: Vec<Box<dyn Combination>> = vec![
        Box::new(InProcess),
        Box::new(InProcessSqlite),
        Box::new(WebSocket),
        Box::new(crate::webtransport::WebTransport),
        Box::new(crate::sockjs::SockJsWebSocket),
    ];
    if let Some(services) = Services::find() {
        combinations.push(Box::new(Cluster { services }));
    }
    combinations
}

// ---- (a) in-process: the driver on an in-memory transport, no sockets ----

/// The embedded adapters, connections driven in-process over [`rtchat_driver::memory_pair`].
pub struct InProcess;

struct InProcessNode {
    service: rtchat_chat::ChatService,
    driver: DriverConfig,
    shutdown: Shutdown,
    connections: Vec<JoinHandle<()>>,
    /// The node itself, to close its store when it stops.
    node: rtchat_server::Node,
    /// The SQLite store's data directory, deleted when the node is dropped.
    _data_dir: Option<tempfile::TempDir>,
}

#[async_trait]
impl Combination for InProcess {
    fn name(&self) -> &'static str {
        "in-process (memory transport, memory store, in-process broker)"
    }

    async fn start(&self, config: &ServerConfig) -> Result<Box<dyn Node>, String> {
        start_in_process(config, None).await
    }
}

/// Assembles a node from `config` and drives its connections in-process.
async fn start_in_process(
    config: &ServerConfig,
    data_dir: Option<tempfile::TempDir>,
) -> Result<Box<dyn Node>, String> {
    let node = assemble(config)
        .await
        .map_err(|error| format!("cannot assemble the node: {error}"))?;
    Ok(Box::new(InProcessNode {
        service: node.service.clone(),
        driver: node.web.driver.clone(),
        shutdown: Shutdown::new(),
        connections: Vec::new(),
        node,
        _data_dir: data_dir,
    }))
}

// ---- (a') in-process on the SQLite store: the embedded default's store ----

/// In-process connections, the SQLite store in a fresh temporary data directory.
pub struct InProcessSqlite;

#[async_trait]
impl Combination for InProcessSqlite {
    fn name(&self) -> &'static str {
        "in-process-sqlite (memory transport, SQLite store, in-process broker)"
    }

    async fn start(&self, config: &ServerConfig) -> Result<Box<dyn Node>, String> {
        let data_dir =
            tempfile::tempdir().map_err(|error| format!("no temporary directory: {error}"))?;
        let mut config = config.clone();
        config.store = StoreKind::Sqlite;
        config.data_dir = data_dir.path().to_path_buf();
        start_in_process(&config, Some(data_dir)).await
    }
}

#[async_trait]
impl Node for InProcessNode {
    async fn connect(&mut self) -> Result<Box<dyn Client>, String> {
        let (transport, client) = memory_pair(64);
        let service = self.service.clone();
        let driver = self.driver.clone();
        let signal = self.shutdown.signal();
        self.connections.push(tokio::spawn(async move {
            run_connection(transport, &service, CLIENT_IP, &driver, signal).await;
        }));
        Ok(Box::new(InProcessClient {
            client: Some(client),
        }))
    }

    async fn stop(self: Box<Self>) {
        self.shutdown.trigger();
        let _ = tokio::time::timeout(DRAIN, self.shutdown.wait_idle()).await;
        for connection in self.connections {
            connection.abort();
        }
        self.node.leave_cluster().await;
    }
}

struct InProcessClient {
    /// `None` once closed (closing consumes the client end).
    client: Option<rtchat_driver::MemoryClient>,
}

#[async_trait]
impl Client for InProcessClient {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        let client = self
            .client
            .as_ref()
            .ok_or("the client already closed its connection")?;
        if client.send(bytes).await {
            Ok(())
        } else {
            Err("the server end of the connection is gone".to_owned())
        }
    }

    async fn recv(&mut self) -> Option<Vec<u8>> {
        self.client
            .as_mut()?
            .recv()
            .await
            .map(|bytes| bytes.to_vec())
    }

    async fn close(&mut self) {
        if let Some(client) = self.client.take() {
            client.close().await;
        }
    }
}

// ---- (b) the real server: axum WebSocket over TCP ----

/// The embedded adapters behind the real HTTP server, clients over WebSocket on TCP.
pub struct WebSocket;

struct WebSocketNode {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

#[async_trait]
impl Combination for WebSocket {
    fn name(&self) -> &'static str {
        "websocket (axum over TCP, memory store, in-process broker)"
    }

    async fn start(&self, config: &ServerConfig) -> Result<Box<dyn Node>, String> {
        Ok(WebSocket::start_at(config).await?.0)
    }
}

impl WebSocket {
    /// Starts the real server on a free loopback port; returns it and its address.
    pub(crate) async fn start_at(
        config: &ServerConfig,
    ) -> Result<(Box<dyn Node>, SocketAddr), String> {
        let mut config = config.clone();
        config.bind = SocketAddr::new(CLIENT_IP, 0);
        let server = Server::bind(&config)
            .await
            .map_err(|error| format!("cannot start the server: {error}"))?;
        let address = server
            .local_addr()
            .map_err(|error| format!("no local address: {error}"))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(server.run(
            async move {
                // A dropped sender stops the server too.
                let _ = stopped.await;
            },
            DRAIN,
        ));
        Ok((
            Box::new(WebSocketNode {
                address,
                stop,
                server,
            }),
            address,
        ))
    }
}

#[async_trait]
impl Node for WebSocketNode {
    async fn connect(&mut self) -> Result<Box<dyn Client>, String> {
        let mut request = format!("ws://{}/ws", self.address)
            .into_client_request()
            .map_err(|error| format!("bad WebSocket request: {error}"))?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("v12.stomp"),
        );
        let (stream, response) =
            tokio::time::timeout(Duration::from_secs(5), connect_async(request))
                .await
                .map_err(|_| "the WebSocket handshake timed out".to_owned())?
                .map_err(|error| format!("the WebSocket handshake failed: {error}"))?;
        let protocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|value| value.to_str().ok());
        if protocol != Some("v12.stomp") {
            return Err(format!(
                "the server chose subprotocol {protocol:?}, not \"v12.stomp\""
            ));
        }
        Ok(Box::new(WebSocketClient {
            stream: Some(stream),
        }))
    }

    async fn stop(self: Box<Self>) {
        let _ = self.stop.send(());
        let mut server = self.server;
        if tokio::time::timeout(DRAIN * 2, &mut server).await.is_err() {
            server.abort();
        }
    }
}

struct WebSocketClient {
    /// `None` once closed.
    stream: Option<WebSocketStream<MaybeTlsStream<TcpStream>>>,
}

#[async_trait]
impl Client for WebSocketClient {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        let stream = self
            .stream
            .as_mut()
            .ok_or("the client already closed its connection")?;
        let message = match String::from_utf8(bytes) {
            Ok(text) => Message::text(text),
            Err(not_text) => Message::binary(not_text.into_bytes()),
        };
        stream
            .send(message)
            .await
            .map_err(|error| format!("WebSocket send failed: {error}"))
    }

    async fn recv(&mut self) -> Option<Vec<u8>> {
        let stream = self.stream.as_mut()?;
        loop {
            match stream.next().await? {
                Ok(Message::Text(text)) => return Some(text.as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => return Some(bytes.to_vec()),
                // tungstenite answers pings itself.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) | Err(_) => return None,
            }
        }
    }

    async fn close(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.close(None)).await;
        }
    }
}

// ---- (c) a cluster: two WebSocket nodes sharing PostgreSQL and Redis ----

/// Where the shared services are.
#[derive(Debug, Clone)]
pub struct Services {
    database_url: String,
    redis_url: String,
}

/// What the skip notice, or the failure, names when the cluster has no services.
const CLUSTER_NEEDS_SERVICES: &str = "the conformance cluster combination";

impl Services {
    /// The configured servers or throwaway ones; `None` when the cluster must be skipped.
    fn find() -> Option<Services> {
        Some(Services {
            database_url: rtchat_test_services::shared_database_url(CLUSTER_NEEDS_SERVICES)?,
            redis_url: rtchat_test_services::shared_redis_url(CLUSTER_NEEDS_SERVICES)?,
        })
    }
}

/// Two real servers sharing a PostgreSQL store and the Redis broker and presence, as nodes
/// behind a load balancer would: clients connect to the nodes in turn (the first to node A,
/// the second to node B, ...), so every multi-client transcript crosses nodes. Each run gets
/// its own schema and Redis prefix, so runs never see each other's rooms, messages or counts.
pub struct Cluster {
    services: Services,
}

struct ClusterNode {
    nodes: [Box<dyn Node>; 2],
    next: usize,
    services: Services,
    schema: String,
}

/// A name no other run uses: this process, a counter, and the clock.
fn unique_run_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

#[async_trait]
impl Combination for Cluster {
    fn name(&self) -> &'static str {
        "cluster (two WebSocket nodes, PostgreSQL store, Redis broker and presence)"
    }

    async fn start(&self, config: &ServerConfig) -> Result<Box<dyn Node>, String> {
        let run = unique_run_id();
        let schema = format!("conformance_{run}");
        let mut config = config.clone();
        config.store = StoreKind::Postgres;
        config.database_url = Some(self.services.database_url.clone());
        config.database_schema = Some(schema.clone());
        config.broker = BrokerKind::Redis;
        config.redis_url = Some(self.services.redis_url.clone());
        config.redis_prefix = format!("rtchat-conformance:{run}");
        let a = WebSocket.start(&config).await?;
        let b = match WebSocket.start(&config).await {
            Ok(b) => b,
            Err(error) => {
                a.stop().await;
                return Err(error);
            }
        };
        Ok(Box::new(ClusterNode {
            nodes: [a, b],
            next: 0,
            services: self.services.clone(),
            schema,
        }))
    }
}

#[async_trait]
impl Node for ClusterNode {
    async fn connect(&mut self) -> Result<Box<dyn Client>, String> {
        let node = self.next % self.nodes.len();
        self.next += 1;
        self.nodes[node].connect().await
    }

    async fn stop(self: Box<Self>) {
        let ClusterNode {
            nodes,
            services,
            schema,
            ..
        } = *self;
        for node in nodes {
            node.stop().await;
        }
        // Best effort: a schema left behind only costs disk in a test database.
        let _ = PostgresStore::drop_schema(&services.database_url, &schema).await;
    }
}
