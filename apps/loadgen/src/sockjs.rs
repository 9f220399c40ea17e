//! The load generator's links to a server: plain STOMP over WebSocket (`/ws`), or STOMP over
//! SockJS (`/connect`) as sockjs-client speaks it, over SockJS's `websocket` transport or over
//! `xhr_streaming` (a long POST that receives, one POST to `xhr_send` per frame sent). Either
//! way a [`Link`] carries the STOMP byte stream: what it receives is fed to the STOMP parser
//! as it is, so the measurements are the same code over every transport.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket as tokio-tungstenite gives it.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub use crate::link::Transport;
use crate::link::WebTransportTarget;

/// How long opening a session may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Received STOMP chunks held per xhr-streaming session before its reader stops reading (so a
/// slow measurement pushes back on the server, as a slow browser would).
const RECEIVED_CHUNKS: usize = 256;

/// One STOMP connection's transport.
pub enum Link {
    /// STOMP straight over a WebSocket or WebTransport.
    Direct(rtchat_client::Link),
    /// SockJS frames over a WebSocket.
    SockJsWebSocket(Box<Socket>),
    /// SockJS over HTTP requests.
    XhrStreaming(XhrStreaming),
}

impl Link {
    /// Opens connection number `n` to `url` over `transport`; for SockJS, waits for the open
    /// frame `o`, after which STOMP may be sent.
    pub async fn open(
        url: &str,
        transport: Transport,
        webtransport: Option<&WebTransportTarget>,
        n: usize,
    ) -> Result<Link, String> {
        let failed = |error: rtchat_client::LinkError| format!("connection {n}: {error}");
        match transport {
            Transport::Ws => rtchat_client::Link::websocket(url)
                .await
                .map(Link::Direct)
                .map_err(failed),
            Transport::Wt => {
                let target = webtransport.ok_or("no WebTransport endpoint was found")?;
                rtchat_client::Link::webtransport(&target.url, &target.pins)
                    .await
                    .map(Link::Direct)
                    .map_err(failed)
            }
            Transport::SockjsWebsocket => {
                let base = SockJsBase::parse(url)?;
                let url = format!("ws://{}{}/websocket", base.host, base.session_path(n));
                // TCP_NODELAY, as browsers set it.
                let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
                    .await
                    .map_err(|e| format!("connection {n}: {e}"))?;
                let first = tokio::time::timeout(OPEN_TIMEOUT, socket.next())
                    .await
                    .map_err(|_| format!("connection {n}: no SockJS open frame"))?;
                match first {
                    Some(Ok(Message::Text(text))) if text.as_str() == "o" => {
                        Ok(Link::SockJsWebSocket(Box::new(socket)))
                    }
                    other => Err(format!("connection {n}: expected `o`, got {other:?}")),
                }
            }
            Transport::SockjsXhrStreaming => {
                let base = SockJsBase::parse(url)?;
                XhrStreaming::open(&base, n).await.map(Link::XhrStreaming)
            }
        }
    }

    /// Sends `stomp` (one or more STOMP frames, or a heart-beat).
    pub async fn send(&mut self, stomp: String) -> Result<(), String> {
        match self {
            Link::Direct(link) => link
                .send(Bytes::from(stomp))
                .await
                .map_err(|e| e.to_string()),
            Link::SockJsWebSocket(socket) => socket
                .send(Message::text(sockjs_array(&stomp)))
                .await
                .map_err(|e| e.to_string()),
            Link::XhrStreaming(xhr) => xhr.send(&stomp).await,
        }
    }

    /// The next piece of the server's STOMP stream (SockJS's own frames are taken out).
    pub async fn recv(&mut self) -> Result<Bytes, String> {
        match self {
            Link::Direct(link) => link
                .recv()
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "server closed the connection".to_owned()),
            Link::SockJsWebSocket(socket) => loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(stomp) = sockjs_frame(text.as_str())? {
                            return Ok(stomp);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error.to_string()),
                    None => return Err("server closed the connection".to_owned()),
                }
            },
            Link::XhrStreaming(xhr) => match xhr.received.recv().await {
                Some(received) => received,
                None => Err("the xhr-streaming reader stopped".to_owned()),
            },
        }
    }
}

/// `stomp` as the JSON array of one string that SockJS clients send.
fn sockjs_array(stomp: &str) -> String {
    serde_json::Value::Array(vec![serde_json::Value::String(stomp.to_owned())]).to_string()
}

/// One SockJS frame: the STOMP data of an `a[...]` frame, `None` for `o` and `h` (or a line of
/// `h`, as xhr-streaming's prelude is), an error for a close frame or anything else.
fn sockjs_frame(frame: &str) -> Result<Option<Bytes>, String> {
    match frame.as_bytes().first() {
        Some(b'o' | b'h') if frame.len() == 1 || frame.bytes().all(|b| b == b'h') => Ok(None),
        Some(b'a') => {
            let strings: Vec<String> = serde_json::from_str(&frame[1..])
                .map_err(|e| format!("bad SockJS array frame: {e}"))?;
            Ok(Some(Bytes::from(strings.concat())))
        }
        Some(b'c') => Err(format!("SockJS session closed: {frame}")),
        _ => Err(format!("unexpected SockJS frame: {frame:?}")),
    }
}

/// Where a SockJS endpoint is: `host:port` and the path prefix (`/connect`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SockJsBase {
    host: String,
    prefix: String,
}

/// Sessions opened by this process, for unique session ids.
static SESSIONS: AtomicU64 = AtomicU64::new(0);

impl SockJsBase {
    /// `http://host:port/prefix` (or `ws://`).
    fn parse(url: &str) -> Result<SockJsBase, String> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or_else(|| format!("a SockJS URL is http://host:port/prefix, not {url}"))?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        Ok(SockJsBase {
            host: host.to_owned(),
            prefix: format!("/{}", path.trim_end_matches('/')),
        })
    }

    /// `<prefix>/<server>/<session>` for a new session of connection `n`.
    fn session_path(&self, n: usize) -> String {
        let serial = SESSIONS.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}/{:03}/lg{}x{serial}",
            self.prefix.trim_end_matches('/'),
            n % 1000,
            std::process::id()
        )
    }
}

/// A SockJS session over `xhr_streaming`: a task keeps one streaming POST open (opening the
/// next when the server ends one) and hands over what arrives; sends are POSTs to `xhr_send`
/// on a kept-alive connection of their own, as a browser's are.
pub struct XhrStreaming {
    host: String,
    send_path: String,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
    received: mpsc::Receiver<Result<Bytes, String>>,
    reader: JoinHandle<()>,
}

impl Drop for XhrStreaming {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// An HTTP/1.1 connection to `host`, driven by a task of its own.
async fn http_connection<B>(host: &str) -> Result<http1::SendRequest<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(host)
        .await
        .map_err(|e| format!("connect to {host}: {e}"))?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {host}: {e}"))?;
    tokio::spawn(async move {
        // Ends when the server closes it or the sender is dropped; either is expected.
        let _ = connection.await;
    });
    Ok(sender)
}

impl XhrStreaming {
    async fn open(base: &SockJsBase, n: usize) -> Result<XhrStreaming, String> {
        let session = base.session_path(n);
        let (tx, received) = mpsc::channel(RECEIVED_CHUNKS);
        let (opened_tx, opened) = oneshot::channel();
        let host = base.host.clone();
        let stream_path = format!("{session}/xhr_streaming");
        let reader = tokio::spawn(async move {
            if let Err(error) = receive(&host, &stream_path, &tx, opened_tx).await {
                // The measurement sees it as the end of its stream.
                let _ = tx.send(Err(error)).await;
            }
        });
        let xhr = XhrStreaming {
            host: base.host.clone(),
            send_path: format!("{session}/xhr_send"),
            sender: None,
            received,
            reader,
        };
        match tokio::time::timeout(OPEN_TIMEOUT, opened).await {
            Ok(Ok(())) => Ok(xhr),
            Ok(Err(_)) | Err(_) => Err(format!("connection {n}: no SockJS open frame")),
        }
    }

    async fn send(&mut self, stomp: &str) -> Result<(), String> {
        // A kept-alive connection the server closed (its idle timeout) is replaced before the
        // request goes out, never after: a frame is never sent twice.
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.sender = Some(http_connection(&self.host).await?);
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err("no connection for xhr_send".to_owned());
        };
        sender
            .ready()
            .await
            .map_err(|e| format!("xhr_send connection: {e}"))?;
        let request = Request::post(self.send_path.as_str())
            .header(HOST, self.host.as_str())
            .header(CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(Full::new(Bytes::from(sockjs_array(stomp))))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("xhr_send: {e}"))?;
        let status = response.status();
        // Read to the end, so the connection can carry the next request.
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("xhr_send answer: {e}"))?
            .to_bytes();
        if status.as_u16() == 204 || status.as_u16() == 200 {
            Ok(())
        } else {
            Err(format!(
                "xhr_send answered {status}: {}",
                String::from_utf8_lossy(&body)
            ))
        }
    }
}

/// Keeps a streaming POST open on `path`, one after the other, sending the STOMP data of each
/// array frame to `tx`, until the session closes or the receiver is gone.
async fn receive(
    host: &str,
    path: &str,
    tx: &mpsc::Sender<Result<Bytes, String>>,
    opened: oneshot::Sender<()>,
) -> Result<(), String> {
    let mut opened = Some(opened);
    let mut sender = http_connection::<Empty<Bytes>>(host).await?;
    loop {
        if sender.is_closed() {
            sender = http_connection(host).await?;
        }
        sender
            .ready()
            .await
            .map_err(|e| format!("xhr_streaming connection: {e}"))?;
        let request = Request::post(path)
            .header(HOST, host)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("xhr_streaming: {e}"))?;
        if response.status().as_u16() != 200 {
            return Err(format!("xhr_streaming answered {}", response.status()));
        }
        let mut body = response.into_body();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("xhr_streaming body: {e}"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = memchr::memchr(b'\n', &pending) {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = std::str::from_utf8(&line[..end])
                    .map_err(|_| "xhr_streaming: a frame that is not UTF-8".to_owned())?;
                if line == "o" {
                    if let Some(opened) = opened.take() {
                        let _ = opened.send(());
                    }
                    continue;
                }
                if let Some(stomp) = sockjs_frame(line)?
                    && tx.send(Ok(stomp)).await.is_err()
                {
                    return Ok(());
                }
            }
        }
        // The server ended this answer (its byte or time limit): open the next, as
        // sockjs-client does.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_frames_carry_stomp_and_other_frames_do_not() {
        assert_eq!(
            sockjs_frame(r#"a["MESSAGE\nseq:1\n\n{}\u0000","\n"]"#),
            Ok(Some(Bytes::from_static(b"MESSAGE\nseq:1\n\n{}\0\n")))
        );
        assert_eq!(sockjs_frame("o"), Ok(None));
        assert_eq!(sockjs_frame("h"), Ok(None));
        assert_eq!(sockjs_frame(&"h".repeat(2048)), Ok(None));
        assert!(sockjs_frame(r#"c[3000,"Go away!"]"#).is_err());
        assert!(sockjs_frame("a[1]").is_err());
        assert!(sockjs_frame("x").is_err());
    }

    #[test]
    fn frames_sent_are_json_arrays_of_one_string() {
        assert_eq!(
            sockjs_array("SEND\ndestination:/pub/chat\n\n{\"m\":1}\0"),
            r#"["SEND\ndestination:/pub/chat\n\n{\"m\":1}\u0000"]"#
        );
    }

    #[test]
    fn base_urls_and_session_paths() {
        let base = SockJsBase::parse("http://127.0.0.1:8080/connect/").expect("parses");
        assert_eq!(base.host, "127.0.0.1:8080");
        assert_eq!(base.prefix, "/connect");
        let first = base.session_path(1);
        let second = base.session_path(1);
        assert!(first.starts_with("/connect/001/lg"), "{first}");
        assert_ne!(first, second, "every session has its own id");
        assert!(!first.contains('.'), "SockJS ids have no dots");
        assert!(SockJsBase::parse("https://example.com/connect").is_err());
    }
}
