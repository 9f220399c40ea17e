//! The WebTransport combination: the embedded adapters behind the real WebTransport server
//! (QUIC on 127.0.0.1, a fresh self-signed certificate per node), each client a WebTransport
//! session whose first bidirectional stream carries the STOMP bytes.

use crate::combination::{Client, Combination, Node};
use async_trait::async_trait;
use rtchat_driver::Shutdown;
use rtchat_server::{ServerConfig, assemble};
use rtchat_webtransport::client::{ClientStream, connect};
use rtchat_webtransport::{CertificateHash, DEFAULT_PATH, WebTransportConfig, WebTransportServer};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long a node may take to finish its sessions when a transcript is over.
const DRAIN: Duration = Duration::from_secs(2);

/// How long opening a session and its stream may take.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// The embedded adapters (memory store, in-process broker) behind the WebTransport server.
pub struct WebTransport;

struct WebTransportNode {
    address: SocketAddr,
    hashes: Vec<CertificateHash>,
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
        let mut wt_config =
            WebTransportConfig::new(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        wt_config.drain = DRAIN;
        let server = WebTransportServer::bind(wt_config).map_err(|error| error.to_string())?;
        let address = server
            .local_addr()
            .map_err(|error| format!("no local address: {error}"))?;
        let hashes = server.offer().borrow().hashes.clone();
        let shutdown = Shutdown::new();
        let server = tokio::spawn(server.serve(node.service, node.web.driver, shutdown.clone()));
        Ok(Box::new(WebTransportNode {
            address,
            hashes,
            shutdown,
            server,
        }))
    }
}

#[async_trait]
impl Node for WebTransportNode {
    async fn connect(&mut self) -> Result<Box<dyn Client>, String> {
        let url = format!("https://{}{DEFAULT_PATH}", self.address);
        let stream = tokio::time::timeout(HANDSHAKE, connect(&url, &self.hashes))
            .await
            .map_err(|_| "the WebTransport handshake timed out".to_owned())?
            .map_err(|error| error.to_string())?;
        Ok(Box::new(WebTransportClient {
            stream: Some(stream),
        }))
    }

    async fn stop(self: Box<Self>) {
        self.shutdown.trigger();
        let mut server = self.server;
        if tokio::time::timeout(DRAIN * 3, &mut server).await.is_err() {
            server.abort();
        }
    }
}

struct WebTransportClient {
    /// `None` once closed.
    stream: Option<ClientStream>,
}

#[async_trait]
impl Client for WebTransportClient {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        let stream = self
            .stream
            .as_mut()
            .ok_or("the client already closed its connection")?;
        stream
            .send
            .write_all(&bytes)
            .await
            .map_err(|error| format!("WebTransport write failed: {error}"))
    }

    async fn recv(&mut self) -> Option<Vec<u8>> {
        let stream = self.stream.as_mut()?;
        // quinn documents `read_chunk` as cancel-safe: a timed-out call loses no bytes.
        match stream.recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => Some(chunk.bytes.to_vec()),
            Ok(None) | Err(_) => None,
        }
    }

    async fn close(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            let _ = stream.send.finish();
            stream.session.close(0, b"");
        }
    }
}
