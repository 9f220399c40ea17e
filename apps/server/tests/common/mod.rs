//! Helpers for tests that run a real server on a loopback port.

#![allow(dead_code)]

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rtchat_server::{Server, ServerConfig};
use rtchat_stomp::{Frame, Item, Limits, Parser};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "integration-test-secret";

/// A STOMP 1.2 CONNECT with `token` and no heart-beats.
pub fn connect_frame(token: &str) -> String {
    format!(
        "CONNECT\naccept-version:1.2\nhost:rtchat\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0"
    )
}

/// A server on 127.0.0.1 with a free port, stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// `--metrics-bind`'s address, when the config had one.
    pub metrics_addr: Option<SocketAddr>,
    /// `--webtransport`'s UDP address, when the config had one.
    pub wt_addr: Option<SocketAddr>,
    pub service: rtchat_chat::ChatService,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub fn config() -> ServerConfig {
    let mut config = ServerConfig::in_memory();
    config.bind = "127.0.0.1:0".parse().expect("loopback address");
    config.jwt_secret = Some(SECRET.to_owned());
    config
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(config()).await
    }

    pub async fn start_with(config: ServerConfig) -> TestServer {
        let server = Server::bind(&config).await.expect("server starts");
        let addr = server.local_addr().expect("bound address");
        let metrics_addr = server.metrics_addr();
        let wt_addr = server.webtransport_addr();
        let service = server.service().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(2),
        ));
        TestServer {
            addr,
            metrics_addr,
            wt_addr,
            service,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server and waits until it has finished.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server stops within 10 s");
            result.expect("server task").expect("server ran cleanly");
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// A plain HTTP/1.1 request; returns the status, the headers as text, and the body as JSON
    /// (or as a string when it is not JSON).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response {
        request_at(self.addr, method, path, headers, body).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], None).await
    }

    /// `GET /webtransport`: the URL, the SHA-256 hashes to pin, and the whole offer.
    pub async fn webtransport_offer(
        &self,
    ) -> (String, Vec<rtchat_webtransport::CertificateHash>, Value) {
        use base64::Engine as _;
        let response = self.get("/webtransport").await;
        assert_eq!(response.status, 200, "{:?}", response.body);
        assert_eq!(response.body["type"], "SUCCESS_WEBTRANSPORT");
        let offer = response.body["response"].clone();
        let url = offer["url"].as_str().expect("a url").to_owned();
        let hashes = offer["certificateHashes"]
            .as_array()
            .expect("hashes")
            .iter()
            .map(|hash| {
                assert_eq!(hash["algorithm"], "sha-256");
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(hash["value"].as_str().expect("a value"))
                    .expect("base64");
                rtchat_webtransport::CertificateHash(bytes.try_into().expect("32 bytes"))
            })
            .collect();
        (url, hashes, offer)
    }

    /// A token for the identity with name tag `tag` (e.g. `#AAAAAA`), signed with [`SECRET`].
    pub fn token_for(&self, tag: &str) -> String {
        Self::token_for_secret(tag)
    }

    /// [`TestServer::token_for`] without a server (for nodes a test assembles itself).
    pub fn token_for_secret(tag: &str) -> String {
        use rtchat_chat::Tokens;
        let tokens = rtchat_jwt::JwtTokens::new(
            SECRET.as_bytes(),
            "rtchat".to_owned(),
            Duration::from_secs(3600),
        );
        let identity = rtchat_chat::Identity {
            rand_id: format!("Test{}", &tag[1..]),
            name_tag: tag.to_owned(),
        };
        tokens.issue(&identity, "127.0.0.1")
    }

    /// A fresh token from `GET /init`.
    pub async fn token(&self) -> String {
        let response = self.get("/init").await;
        response.body["response"]
            .as_str()
            .expect("token")
            .to_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A plain HTTP/1.1 request to `addr`; returns the status, the headers as text, and the body
/// as JSON (or as a string when it is not JSON).
pub async fn request_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Response {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");

    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    if let Some(body) = body {
        request.push_str(body);
    }
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .expect("response within 5 s")
        .expect("read response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let json = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    Response {
        status,
        head: head.to_ascii_lowercase(),
        body: json,
    }
}

pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Value,
}

/// A STOMP-over-WebSocket client that reads frames with the core parser.
pub struct StompClient {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub protocol: Option<String>,
    parser: Parser,
}

impl StompClient {
    pub async fn open(url: &str, subprotocols: &str) -> StompClient {
        let mut request = url.into_client_request().expect("request");
        if !subprotocols.is_empty() {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_str(subprotocols).expect("header value"),
            );
        }
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket handshake");
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        StompClient {
            socket,
            protocol,
            parser: Parser::new(Limits::default()),
        }
    }

    pub async fn send(&mut self, frame: &str) {
        self.socket.send(Message::text(frame)).await.expect("send");
    }

    /// The next frame within 5 s; heart-beats are skipped.
    pub async fn frame(&mut self) -> Frame {
        loop {
            match self.parser.next_item().expect("valid frame from server") {
                Some(Item::Frame(frame)) => return frame,
                Some(Item::HeartBeat) => continue,
                None => {}
            }
            let message = tokio::time::timeout(Duration::from_secs(5), self.socket.next())
                .await
                .expect("a frame within 5 s")
                .expect("socket still open")
                .expect("no socket error");
            match message {
                Message::Text(text) => self.parser.feed(Bytes::from(text).as_ref()),
                Message::Binary(bytes) => self.parser.feed(&bytes),
                _ => {}
            }
        }
    }

    /// Waits for the server to close the socket; returns the close code if one was sent.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), self.socket.next())
                .await
                .expect("close within 5 s");
            match next {
                Some(Ok(Message::Close(frame))) => return frame.map(|frame| u16::from(frame.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn connect(url: &str, token: &str) -> StompClient {
        let mut client = StompClient::open(url, "v12.stomp").await;
        client.send(&connect_frame(token)).await;
        let connected = client.frame().await;
        assert_eq!(
            connected.command,
            rtchat_stomp::Command::Connected,
            "{connected:?}"
        );
        client
    }
}

/// A STOMP-over-WebTransport client (the session's first bidirectional stream carries the
/// STOMP bytes) that reads frames with the core parser.
pub struct WtClient {
    pub stream: rtchat_webtransport::client::ClientStream,
    parser: Parser,
}

impl WtClient {
    /// Opens a session on `url`, pinning `pins`.
    pub async fn open(url: &str, pins: &[rtchat_webtransport::CertificateHash]) -> WtClient {
        let stream = tokio::time::timeout(
            Duration::from_secs(5),
            rtchat_webtransport::client::connect(url, pins),
        )
        .await
        .expect("the WebTransport session opens within 5 s")
        .expect("the WebTransport session opens");
        WtClient {
            stream,
            parser: Parser::new(Limits::default()),
        }
    }

    /// Opens a session and CONNECTs with `token`.
    pub async fn connect(
        url: &str,
        pins: &[rtchat_webtransport::CertificateHash],
        token: &str,
    ) -> WtClient {
        let mut client = WtClient::open(url, pins).await;
        client.send(&connect_frame(token)).await;
        let connected = client.frame().await;
        assert_eq!(
            connected.command,
            rtchat_stomp::Command::Connected,
            "{connected:?}"
        );
        client
    }

    pub async fn send(&mut self, frame: &str) {
        tokio::time::timeout(
            Duration::from_secs(5),
            self.stream.send.write_all(frame.as_bytes()),
        )
        .await
        .expect("written within 5 s")
        .expect("written");
    }

    /// The next frame within 5 s (heart-beats skipped), or `None` once the stream ended.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.parser.next_item().expect("valid frame from server") {
                Some(Item::Frame(frame)) => return Some(frame),
                Some(Item::HeartBeat) => continue,
                None => {}
            }
            let chunk = tokio::time::timeout(
                Duration::from_secs(5),
                self.stream.recv.read_chunk(64 * 1024, true),
            )
            .await
            .expect("a frame within 5 s");
            match chunk {
                Ok(Some(chunk)) => self.parser.feed(&chunk.bytes),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next frame within 5 s; heart-beats are skipped.
    pub async fn frame(&mut self) -> Frame {
        self.next_frame()
            .await
            .expect("a frame before the stream ends")
    }

    /// Waits (5 s at most) for the session to close; the close code and reason the server
    /// sent in its CLOSE_WEBTRANSPORT_SESSION capsule, or the error if it closed otherwise.
    pub async fn closed(&self) -> Result<(u32, String), String> {
        let error = tokio::time::timeout(Duration::from_secs(5), self.stream.session.closed())
            .await
            .expect("the session closes within 5 s");
        match error {
            rtchat_webtransport::web_transport_quinn::SessionError::WebTransportError(
                rtchat_webtransport::web_transport_quinn::WebTransportError::Closed(code, reason),
            ) => Ok((code, reason)),
            other => Err(other.to_string()),
        }
    }
}
