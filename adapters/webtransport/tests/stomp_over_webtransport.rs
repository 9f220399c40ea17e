//! STOMP over a real WebTransport session: the server on 127.0.0.1 with a fresh self-signed
//! identity, a Rust client pinning the certificate's hash (as a browser does with
//! `serverCertificateHashes`). Every wait is bounded.

use rtchat_core::{Identity, Tokens};
use rtchat_driver::Shutdown;
use rtchat_jwt::JwtTokens;
use rtchat_server::{ServerConfig, assemble};
use rtchat_webtransport::{WebTransportConfig, WebTransportServer, self_signed_identity};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream};

const WAIT: Duration = Duration::from_secs(5);
const SECRET: &str = "webtransport-test-secret";

struct TestServer {
    address: SocketAddr,
    hash: wtransport::tls::Sha256Digest,
    shutdown: Shutdown,
    task: JoinHandle<()>,
    tokens: JwtTokens,
}

async fn start() -> TestServer {
    let mut config = ServerConfig::in_memory();
    config.jwt_secret = Some(SECRET.to_owned());
    let node = assemble(&config).await.expect("the node assembles");
    let identity = self_signed_identity(&[]).expect("a self-signed identity");
    let server = WebTransportServer::bind(WebTransportConfig::new(
        "127.0.0.1:0".parse().expect("an address"),
        identity,
    ))
    .expect("the endpoint binds");
    let address = server.local_addr().expect("a local address");
    let hash = server.certificate_hash().expect("a certificate").clone();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(server.serve(node.service, node.web.driver, shutdown.clone()));
    let tokens = JwtTokens::new(
        SECRET.as_bytes(),
        config.node_name.clone(),
        Duration::from_secs(3600),
    );
    TestServer {
        address,
        hash,
        shutdown,
        task,
        tokens,
    }
}

impl TestServer {
    fn token(&self) -> String {
        let identity = Identity {
            rand_id: "Alice".to_owned(),
            name_tag: "#A11CE0".to_owned(),
        };
        self.tokens.issue(&identity, "127.0.0.1")
    }

    async fn connect(&self) -> Client {
        let config = ClientConfig::builder()
            .with_bind_default()
            .with_server_certificate_hashes([self.hash.clone()])
            .build();
        let endpoint = Endpoint::client(config).expect("a client endpoint");
        let url = format!("https://127.0.0.1:{}/stomp", self.address.port());
        let connection = tokio::time::timeout(WAIT, endpoint.connect(url))
            .await
            .expect("the session opens in time")
            .expect("the session opens");
        let opening = tokio::time::timeout(WAIT, connection.open_bi())
            .await
            .expect("the stream opens in time")
            .expect("the stream opens");
        let (send, recv) = tokio::time::timeout(WAIT, opening)
            .await
            .expect("the stream opens in time")
            .expect("the stream opens");
        Client {
            _endpoint: endpoint,
            connection,
            send,
            recv,
            buffer: Vec::new(),
        }
    }

    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops in time")
            .expect("the server task does not panic");
    }
}

struct Client {
    _endpoint: Endpoint<wtransport::endpoint::endpoint_side::Client>,
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
    buffer: Vec<u8>,
}

impl Client {
    async fn send(&mut self, frame: &str) {
        tokio::time::timeout(WAIT, self.send.write_all(frame.as_bytes()))
            .await
            .expect("the write completes in time")
            .expect("the write succeeds");
    }

    /// The next frame (heart-beat EOLs skipped), or `None` once the stream ended.
    async fn frame(&mut self) -> Option<String> {
        loop {
            while matches!(self.buffer.first(), Some(b'\n' | b'\r')) {
                self.buffer.remove(0);
            }
            if let Some(end) = self.buffer.iter().position(|&b| b == 0) {
                let frame: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(String::from_utf8_lossy(&frame[..end]).into_owned());
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(WAIT, self.recv.read(&mut chunk))
                .await
                .expect("the server answers in time")
            {
                Ok(Some(n)) => self.buffer.extend_from_slice(&chunk[..n]),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    async fn expect(&mut self, command: &str) -> String {
        let frame = self.frame().await.expect("a frame before the stream ends");
        assert!(
            frame.starts_with(&format!("{command}\n")),
            "expected {command}, got {frame:?}"
        );
        frame
    }
}

#[tokio::test]
async fn connect_subscribe_send_and_receive_a_message() {
    let server = start().await;
    let mut client = server.connect().await;
    let token = server.token();
    client
        .send(&format!(
            "CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0"
        ))
        .await;
    let connected = client.expect("CONNECTED").await;
    assert!(connected.contains("version:1.2"), "{connected}");

    client
        .send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:sub-0\n\n\0")
        .await;
    let receipt = client.expect("RECEIPT").await;
    assert!(receipt.contains("receipt-id:sub-0"), "{receipt}");

    client
        .send("SEND\ndestination:/pub/chat\ncontent-type:application/json\n\n{\"roomId\":\"lobby\",\"message\":\"hello over QUIC\"}\0")
        .await;
    let message = client.expect("MESSAGE").await;
    assert!(
        message.contains("destination:/sub/channel/lobby"),
        "{message}"
    );
    let body = message
        .split_once("\n\n")
        .map(|(_, body)| body)
        .expect("a body");
    let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(json["message"], "hello over QUIC");
    assert_eq!(json["roomId"], "lobby");
    assert_eq!(json["randId"], "Alice");
    assert_eq!(json["nameTag"], "#A11CE0");
    assert_eq!(json["ipAddress"], "127.0");

    client.send("DISCONNECT\nreceipt:bye\n\n\0").await;
    let receipt = client.expect("RECEIPT").await;
    assert!(receipt.contains("receipt-id:bye"), "{receipt}");
    assert_eq!(
        client.frame().await,
        None,
        "the stream ends after DISCONNECT"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_bad_token_gets_an_error_and_the_session_ends() {
    let server = start().await;
    let mut client = server.connect().await;
    client
        .send("CONNECT\naccept-version:1.2\nhost:localhost\nAuthorization:Bearer not-a-token\n\n\0")
        .await;
    client.expect("ERROR").await;
    assert_eq!(client.frame().await, None, "the stream ends after ERROR");
    let closed = tokio::time::timeout(WAIT, client.connection.closed()).await;
    assert!(closed.is_ok(), "the session closes after ERROR");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_sessions_with_going_away() {
    let server = start().await;
    let mut client = server.connect().await;
    let token = server.token();
    client
        .send(&format!(
            "CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0"
        ))
        .await;
    client.expect("CONNECTED").await;
    let Client { connection, .. } = client;
    server.stop().await;
    let closed = tokio::time::timeout(WAIT, connection.closed())
        .await
        .expect("the session closes when the server stops");
    match closed {
        wtransport::error::ConnectionError::ApplicationClosed(close) => assert_eq!(
            close.code(),
            wtransport::VarInt::from_u32(rtchat_webtransport::CLOSE_GOING_AWAY),
            "closed with going-away"
        ),
        other => panic!("expected an application close with going-away, got {other}"),
    }
}

#[tokio::test]
async fn other_paths_are_refused() {
    let server = start().await;
    let config = ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([server.hash.clone()])
        .build();
    let endpoint = Endpoint::client(config).expect("a client endpoint");
    let url = format!("https://127.0.0.1:{}/elsewhere", server.address.port());
    let result = tokio::time::timeout(WAIT, endpoint.connect(url))
        .await
        .expect("the server answers in time");
    assert!(result.is_err(), "a session on another path is refused");
    server.stop().await;
}
