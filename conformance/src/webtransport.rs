//! The WebTransport combination: the embedded adapters behind the real WebTransport server
//! (QUIC on 127.0.0.1, a fresh self-signed certificate per node), each client a WebTransport
//! session whose first bidirectional stream carries the STOMP bytes.

use crate::combination::{Client, Combination, Node};
use async_trait::async_trait;
use rtchat_driver::Shutdown;
use rtchat_server::{ServerConfig, assemble};
use rtchat_webtransport::{
    DEFAULT_PATH, Sha256Digest, WebTransportConfig, WebTransportServer, self_signed_identity,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::task::JoinHandle;
use wtransport::endpoint::endpoint_side;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream, VarInt};

/// How long a node may take to finish its sessions when a transcript is over.
const DRAIN: Duration = Duration::from_secs(2);

/// How long opening a session and its stream may take.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// The embedded adapters (memory store, in-process broker) behind the WebTransport server.
pub struct WebTransport;

struct WebTransportNode {
    address: SocketAddr,
    hash: Sha256Digest,
    shutdown: Shutdown,
    server: JoinHandle<()>,
}

#[async_trait]
impl Combination for WebTransport {
    fn name(&self) -> &'static str {
        "webtransport (QUIC, memory store, in-process broker)"
    }

    async fn start(&self, config: &ServerConfig) -> Result<Box<dyn Node>, String> {
        let node = assemble(config)
            .await
            .map_err(|error| format!("cannot assemble the node: {error}"))?;
        let identity = self_signed_identity(&[]).map_err(|error| error.to_string())?;
        let mut wt_config = WebTransportConfig::new(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            identity,
        );
        wt_config.drain = DRAIN;
        let server = WebTransportServer::bind(wt_config).map_err(|error| error.to_string())?;
        let address = server
            .local_addr()
            .map_err(|error| format!("no local address: {error}"))?;
        let hash = server
            .certificate_hash()
            .cloned()
            .ok_or("the identity has no certificate")?;
        let shutdown = Shutdown::new();
        let server = tokio::spawn(server.serve(node.service, node.web.driver, shutdown.clone()));
        Ok(Box::new(WebTransportNode {
            address,
            hash,
            shutdown,
            server,
        }))
    }
}

#[async_trait]
impl Node for WebTransportNode {
    async fn connect(&mut self) -> Result<Box<dyn Client>, String> {
        let config = ClientConfig::builder()
            .with_bind_default()
            .with_server_certificate_hashes([self.hash.clone()])
            .build();
        let endpoint =
            Endpoint::client(config).map_err(|error| format!("no client endpoint: {error}"))?;
        let url = format!("https://{}{DEFAULT_PATH}", self.address);
        let opening = async {
            let connection = endpoint
                .connect(url)
                .await
                .map_err(|error| format!("the WebTransport session failed: {error}"))?;
            let (send, recv) = connection
                .open_bi()
                .await
                .map_err(|error| format!("cannot open the STOMP stream: {error}"))?
                .await
                .map_err(|error| format!("cannot open the STOMP stream: {error}"))?;
            Ok::<_, String>((connection, send, recv))
        };
        let (connection, send, recv) = tokio::time::timeout(HANDSHAKE, opening)
            .await
            .map_err(|_| "the WebTransport handshake timed out".to_owned())??;
        Ok(Box::new(WebTransportClient {
            session: Some(Session {
                _endpoint: endpoint,
                connection,
                send,
                recv,
            }),
        }))
    }

    async fn stop(self: Box<Self>) {
        self.shutdown.trigger();
        let mut server = self.server;
        if tokio::time::timeout(DRAIN * 2, &mut server).await.is_err() {
            server.abort();
        }
    }
}

struct Session {
    /// Kept so the client's UDP socket lives as long as the session.
    _endpoint: Endpoint<endpoint_side::Client>,
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
}

struct WebTransportClient {
    /// `None` once closed.
    session: Option<Session>,
}

#[async_trait]
impl Client for WebTransportClient {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        let session = self
            .session
            .as_mut()
            .ok_or("the client already closed its connection")?;
        session
            .send
            .write_all(&bytes)
            .await
            .map_err(|error| format!("WebTransport write failed: {error}"))
    }

    async fn recv(&mut self) -> Option<Vec<u8>> {
        let session = self.session.as_mut()?;
        // quinn documents `read_chunk` as cancel-safe: a timed-out call loses no bytes.
        match session
            .recv
            .quic_stream_mut()
            .read_chunk(64 * 1024, true)
            .await
        {
            Ok(Some(chunk)) => Some(chunk.bytes.to_vec()),
            Ok(None) | Err(_) => None,
        }
    }

    async fn close(&mut self) {
        if let Some(mut session) = self.session.take() {
            let _ = session.send.finish().await;
            session.connection.close(VarInt::from_u32(0), b"");
        }
    }
}
