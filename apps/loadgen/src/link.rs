//! Which transport the load generator's clients use, and where a server's WebTransport
//! endpoint is: found through its `GET /webtransport` and pinned to the certificate hashes it
//! offers.

use base64::Engine;
use rtchat_client::Link;
use rtchat_webtransport::CertificateHash;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Which transport the clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// STOMP over WebSocket at `--url`.
    Ws,
    /// STOMP over WebTransport at the URL the server's `GET /webtransport` gives.
    Wt,
}

/// Where and how to connect over WebTransport (read once, used by every client).
#[derive(Debug, Clone)]
pub struct WebTransportTarget {
    url: String,
    pins: Vec<CertificateHash>,
}

impl WebTransportTarget {
    /// Asks the server behind `ws_url` (`ws://host:port/...`) where its WebTransport endpoint
    /// is and which certificate hashes to pin.
    pub async fn discover(ws_url: &str) -> Result<WebTransportTarget, String> {
        let host = ws_url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap_or_default();
        let mut stream = TcpStream::connect(host)
            .await
            .map_err(|error| format!("connect to {host}: {error}"))?;
        let request =
            format!("GET /webtransport HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|error| error.to_string())?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|error| error.to_string())?;
        let body = answer
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .map(|at| &answer[at + 4..])
            .ok_or("GET /webtransport: no HTTP answer")?;
        let envelope: serde_json::Value = serde_json::from_slice(body)
            .map_err(|error| format!("GET /webtransport: not JSON: {error}"))?;
        let offer = &envelope["response"];
        let url = offer["url"]
            .as_str()
            .ok_or("the server offers no WebTransport (start it with --webtransport)")?
            .to_owned();
        let pins = offer["certificateHashes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|hash| hash["value"].as_str())
            .filter_map(|value| base64::engine::general_purpose::STANDARD.decode(value).ok())
            .filter_map(|bytes| <[u8; 32]>::try_from(bytes).ok().map(CertificateHash))
            .collect();
        Ok(WebTransportTarget { url, pins })
    }
}

/// Opens `transport` to the server at `ws_url` (or the WebTransport endpoint of `wt`).
pub async fn open(
    transport: Transport,
    ws_url: &str,
    wt: Option<&WebTransportTarget>,
) -> Result<Link, String> {
    let link = match (transport, wt) {
        (Transport::Wt, Some(wt)) => Link::webtransport(&wt.url, &wt.pins).await,
        (Transport::Wt, None) => return Err("no WebTransport endpoint was found".to_owned()),
        (Transport::Ws, _) => Link::websocket(ws_url).await,
    };
    link.map_err(|error| error.to_string())
}
