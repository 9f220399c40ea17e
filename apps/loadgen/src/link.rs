//! Which transport the load generator's clients use, and where a server's WebTransport
//! endpoint is: found through its `GET /webtransport` and pinned to the certificate hashes it
//! offers.

use rtchat_webtransport::CertificateHash;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How the load generator reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// Plain STOMP over WebSocket: `--url` is the WebSocket URL (`ws://127.0.0.1:8080/ws`).
    Ws,
    /// STOMP over WebTransport at the URL the server's `GET /webtransport` gives (`--url` is
    /// the server's WebSocket URL, to find it).
    Wt,
    /// SockJS's `websocket` transport: `--url` is the SockJS base (`http://127.0.0.1:8080/connect`).
    SockjsWebsocket,
    /// SockJS's `xhr_streaming` transport (receive on a streaming POST, send with `xhr_send`):
    /// `--url` is the SockJS base.
    SockjsXhrStreaming,
}

/// Where and how to connect over WebTransport (read once, used by every client).
#[derive(Debug, Clone)]
pub struct WebTransportTarget {
    /// The session URL (`https://host:port/stomp`).
    pub url: String,
    /// The certificate hashes to pin.
    pub pins: Vec<CertificateHash>,
    /// Which streams the server writes frames on (`single` or `per-subscription`; servers
    /// from before the choice say nothing: `single`).
    pub streams: String,
}

impl WebTransportTarget {
    /// Asks the server behind `ws_url` (`ws://host:port/...`) where its WebTransport endpoint
    /// is and which certificate hashes to pin.
    pub async fn discover(ws_url: &str) -> Result<WebTransportTarget, String> {
        let answer = http_exchange(ws_url, |host| {
            format!("GET /webtransport HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
        })
        .await?;
        let body = answer
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .map(|at| &answer[at + 4..])
            .ok_or("GET /webtransport: no HTTP answer")?;
        let envelope: serde_json::Value = serde_json::from_slice(body)
            .map_err(|error| format!("GET /webtransport: not JSON: {error}"))?;
        let offer = rtchat_client::WebTransportOffer::from_envelope(&envelope)
            .map_err(|error| format!("GET /webtransport: {error}"))?;
        let rtchat_client::WebTransportOffer { url, pins, streams } = offer;
        Ok(WebTransportTarget { url, pins, streams })
    }
}

/// Sends the request `request(host)` to the server behind `url` (`ws://host:port/...` or
/// `http://host:port/...`) on a fresh connection and reads the whole answer (the request must
/// ask for `Connection: close`).
pub async fn http_exchange(
    url: &str,
    request: impl FnOnce(&str) -> String,
) -> Result<Vec<u8>, String> {
    let host = url
        .trim_start_matches("ws://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    let mut stream = TcpStream::connect(host)
        .await
        .map_err(|error| format!("connect to {host}: {error}"))?;
    stream
        .write_all(request(host).as_bytes())
        .await
        .map_err(|error| error.to_string())?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .map_err(|error| error.to_string())?;
    Ok(answer)
}
