//! SockJS at `/connect` against a real server on 127.0.0.1, following the cases of the SockJS
//! protocol's own test suite (sockjs-protocol 0.3.3: greeting, info, session URLs, xhr
//! polling and streaming, eventsource, xhr_send errors, websocket framing, heartbeats, close
//! frames, session timeouts), with STOMP in place of its echo service; then chat end to end
//! over every SockJS transport as stompjs 2.3.3 speaks it.

mod common;

use common::{StompClient, TestServer, config};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// How long any one step may take.
const STEP: Duration = Duration::from_secs(5);

/// An HTTP/1.1 answer read as it comes: chunk by chunk when chunked.
struct Answer {
    status: u16,
    /// Lower-cased head.
    head: String,
    reader: BufReader<TcpStream>,
    chunked: bool,
    length: Option<usize>,
    done: bool,
}

impl Answer {
    async fn open(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = body.unwrap_or("");
        if method == "POST" {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write request");
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(STEP, reader.read_line(&mut line))
                .await
                .expect("head in time")
                .expect("read head");
            assert!(read > 0, "connection closed in the head: {head}");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("status");
        let chunked = head.contains("transfer-encoding: chunked");
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .and_then(|length| length.trim().parse().ok());
        Answer {
            status,
            head,
            reader,
            chunked,
            length,
            done: false,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.head
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .map(str::trim)
    }

    /// The next piece of the body: one chunk, or the whole body when not chunked; `None` at
    /// its end.
    async fn next(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        if !self.chunked {
            self.done = true;
            let mut body = vec![0; self.length.unwrap_or(0)];
            tokio::time::timeout(STEP, self.reader.read_exact(&mut body))
                .await
                .expect("body in time")
                .expect("body");
            return Some(String::from_utf8(body).expect("UTF-8"));
        }
        let mut size = String::new();
        tokio::time::timeout(STEP, self.reader.read_line(&mut size))
            .await
            .expect("chunk in time")
            .expect("chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        let mut chunk = vec![0; size + 2];
        tokio::time::timeout(STEP, self.reader.read_exact(&mut chunk))
            .await
            .expect("chunk in time")
            .expect("chunk");
        if size == 0 {
            self.done = true;
            return None;
        }
        chunk.truncate(size);
        Some(String::from_utf8(chunk).expect("UTF-8"))
    }

    /// The whole body.
    async fn body(mut self) -> String {
        let mut body = String::new();
        while let Some(piece) = self.next().await {
            body.push_str(&piece);
        }
        body
    }
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let answer = Answer::open(addr, "POST", path, &[], Some(body)).await;
    let status = answer.status;
    (status, answer.body().await)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let answer = Answer::open(addr, "GET", path, &[], None).await;
    let status = answer.status;
    (status, answer.body().await)
}

/// A fresh session path.
fn session_path() -> String {
    format!("/connect/000/{:016x}", rand_id())
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or_default();
    nanos ^ NEXT.fetch_add(1, Ordering::Relaxed).rotate_left(40)
}

/// The messages of an array frame (without the transport's wrapping).
fn messages(frame: &str) -> Vec<String> {
    let frame = frame.trim_end();
    let array = frame
        .strip_prefix('a')
        .unwrap_or_else(|| panic!("an array frame, got {frame:?}"));
    serde_json::from_str(array).expect("a JSON array of strings")
}

/// `messages` as an `xhr_send` body.
fn send_body(messages: &[&str]) -> String {
    serde_json::to_string(messages).expect("JSON")
}

/// CONNECT as stompjs 2.3.3 sends it.
fn stompjs_connect(token: &str) -> String {
    format!(
        "CONNECT\nAuthorization:Bearer {token}\nX-Client-IP:127.0.0.1\nngrok-skip-browser-warning:69420\naccept-version:1.1,1.0\nheart-beat:10000,10000\n\n\0"
    )
}

fn command(stomp: &str) -> &str {
    stomp.split('\n').next().unwrap_or_default()
}

// ---- static URLs ----

#[tokio::test]
async fn the_greeting_and_info_are_served_and_other_urls_are_not_found() {
    let server = TestServer::start().await;
    for path in ["/connect", "/connect/"] {
        let answer = Answer::open(server.addr, "GET", path, &[], None).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(answer.header("set-cookie").is_none());
        assert_eq!(answer.body().await, "Welcome to SockJS!\n");
    }
    for path in [
        "/connect/a",
        "/connect/a.html",
        "/connect//",
        "/connect/a/a",
        "/connect/a/a/",
    ] {
        assert_eq!(get(server.addr, path).await.0, 404, "{path}");
    }
    // The transports rtchat does not offer.
    for path in [
        "/connect/iframe.html",
        "/connect/iframe-0.1.2.html",
        "/connect/000/abc/htmlfile?c=callback",
        "/connect/000/abc/jsonp?c=callback",
    ] {
        assert_eq!(get(server.addr, path).await.0, 404, "{path}");
    }

    let mut entropies = Vec::new();
    for _ in 0..2 {
        let answer = Answer::open(server.addr, "GET", "/connect/info", &[], None).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(
            answer.header("cache-control"),
            Some("no-store, no-cache, must-revalidate, max-age=0")
        );
        let info: Value = serde_json::from_str(&answer.body().await).expect("JSON");
        assert_eq!(info["websocket"], true);
        assert_eq!(info["cookie_needed"], false);
        assert_eq!(info["origins"], serde_json::json!(["*:*"]));
        entropies.push(info["entropy"].as_u64().expect("an integer entropy"));
    }
    assert_ne!(entropies[0], entropies[1], "entropy is random");
    server.stop().await;
}

#[tokio::test]
async fn info_and_session_answers_carry_cors_for_the_configured_origin() {
    let mut config = config();
    config.cors_origins = vec!["http://127.0.0.1:5500".to_owned()];
    let server = TestServer::start_with(config).await;
    let origin = [("Origin", "http://127.0.0.1:5500")];
    let answer = Answer::open(server.addr, "GET", "/connect/info", &origin, None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("http://127.0.0.1:5500")
    );
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    let preflight = Answer::open(
        server.addr,
        "OPTIONS",
        &format!("{}/xhr_send", session_path()),
        &[
            ("Origin", "http://127.0.0.1:5500"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        None,
    )
    .await;
    assert!(preflight.status < 300, "{}", preflight.status);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("http://127.0.0.1:5500")
    );
    let path = session_path();
    let poll = Answer::open(
        server.addr,
        "POST",
        &format!("{path}/xhr"),
        &origin,
        Some(""),
    )
    .await;
    assert_eq!(
        poll.header("access-control-allow-origin"),
        Some("http://127.0.0.1:5500")
    );
    assert_eq!(poll.body().await, "o\n");
    server.stop().await;
}

// ---- session URLs and xhr polling ----

#[tokio::test]
async fn session_urls_take_any_ids_without_dots_and_only_the_session_id_counts() {
    let server = TestServer::start().await;
    for ids in ["/a/a", "/_/_", "/1/1", "/abcdefgh_i-j%20/abcdefg_i-j%20"] {
        let (status, body) = post(server.addr, &format!("/connect{ids}/xhr"), "").await;
        assert_eq!((status, body.as_str()), (200, "o\n"), "{ids}");
    }
    for ids in ["//", "/a./a", "/a/a.", "/./.", "/", "///"] {
        let path = format!("/connect{ids}/xhr");
        assert_eq!(get(server.addr, &path).await.0, 404, "GET {path}");
        assert_eq!(post(server.addr, &path, "").await.0, 404, "POST {path}");
    }
    let long = "x".repeat(rtchat_sockjs::frame::MAX_ID_CHARS + 1);
    assert_eq!(
        post(server.addr, &format!("/connect/000/{long}/xhr"), "")
            .await
            .0,
        404
    );

    // The server id is for load balancers: the same session through another one.
    let session = format!("{:016x}", rand_id());
    assert_eq!(
        post(server.addr, &format!("/connect/000/{session}/xhr"), "").await,
        (200, "o\n".to_owned())
    );
    let (status, _) = post(
        server.addr,
        &format!("/connect/000/{session}/xhr_send"),
        &send_body(&["CONNECT\naccept-version:1.2\n\n\0"]),
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = post(server.addr, &format!("/connect/999/{session}/xhr"), "").await;
    assert_eq!(status, 200);
    // No token: the STOMP connection is refused with an ERROR, carried in an array frame.
    let got = messages(&body);
    assert_eq!(command(&got[0]), "ERROR", "{got:?}");
    server.stop().await;
}

#[tokio::test]
async fn xhr_polling_answers_one_frame_per_request_with_no_caching() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let path = session_path();
    let answer = Answer::open(server.addr, "POST", &format!("{path}/xhr"), &[], Some("")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert_eq!(
        answer.header("cache-control"),
        Some("no-store, no-cache, must-revalidate, max-age=0")
    );
    assert_eq!(answer.body().await, "o\n");

    // Any content type is taken.
    let send = Answer::open(
        server.addr,
        "POST",
        &format!("{path}/xhr_send"),
        &[("Content-Type", "T")],
        Some(&send_body(&[&stompjs_connect(&token)])),
    )
    .await;
    assert_eq!(send.status, 204);
    assert_eq!(
        send.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(send.body().await, "");

    let (status, body) = post(server.addr, &format!("{path}/xhr"), "").await;
    assert_eq!(status, 200);
    assert!(body.ends_with("\"]\n"), "{body:?}");
    // A STOMP frame's NUL travels JSON-escaped.
    assert!(body.contains("\\u0000"), "{body:?}");
    let connected = messages(&body);
    assert_eq!(command(&connected[0]), "CONNECTED");
    assert!(connected[0].contains("\nversion:1.1\n"), "{connected:?}");
    assert!(connected[0].ends_with('\0'));
    server.stop().await;
}

#[tokio::test]
async fn a_second_receiver_gets_another_connection_still_open_and_the_first_is_unharmed() {
    let server = TestServer::start().await;
    let path = session_path();
    assert_eq!(post(server.addr, &format!("{path}/xhr"), "").await.1, "o\n");
    let addr = server.addr;
    let first_path = format!("{path}/xhr");
    let first = tokio::spawn(async move { post(addr, &first_path, "").await });
    // Let the first poll attach.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        post(server.addr, &format!("{path}/xhr"), "").await,
        (
            200,
            "c[2010,\"Another connection still open\"]\n".to_owned()
        )
    );
    // The first poll still gets the session's next frame.
    post(
        server.addr,
        &format!("{path}/xhr_send"),
        &send_body(&["CONNECT\naccept-version:1.2\n\n\0"]),
    )
    .await;
    let (status, body) = tokio::time::timeout(STEP, first)
        .await
        .expect("first poll answered")
        .expect("joined");
    assert_eq!(status, 200);
    assert_eq!(command(&messages(&body)[0]), "ERROR");
    server.stop().await;
}

#[tokio::test]
async fn xhr_send_errors_get_sockjs_answers_and_the_session_goes_on() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let unknown = session_path();
    assert_eq!(
        post(server.addr, &format!("{unknown}/xhr_send"), "[\"x\"]")
            .await
            .0,
        404
    );
    let path = session_path();
    assert_eq!(post(server.addr, &format!("{path}/xhr"), "").await.1, "o\n");
    let send = format!("{path}/xhr_send");
    for (body, status, text) in [
        ("[\"x", 500, "Broken JSON encoding."),
        ("[1,2]", 500, "Broken JSON encoding."),
        ("{\"a\":1}", 500, "Broken JSON encoding."),
        ("", 500, "Payload expected."),
    ] {
        let (got, answer) = post(server.addr, &send, body).await;
        assert_eq!(got, status, "{body:?}");
        assert!(answer.contains(text), "{body:?}: {answer:?}");
    }
    // Over the size limit: refused before it is read.
    let huge = send_body(&[&"x".repeat(1 << 20)]);
    assert_eq!(post(server.addr, &send, &huge).await.0, 413);
    // The session still works.
    assert_eq!(
        post(server.addr, &send, &send_body(&[&stompjs_connect(&token)]))
            .await
            .0,
        204
    );
    let (_, body) = post(server.addr, &format!("{path}/xhr"), "").await;
    assert_eq!(command(&messages(&body)[0]), "CONNECTED");
    server.stop().await;
}

#[tokio::test]
async fn a_closed_session_keeps_answering_its_close_frame() {
    let server = TestServer::start().await;
    let path = session_path();
    assert_eq!(post(server.addr, &format!("{path}/xhr"), "").await.1, "o\n");
    // Not STOMP at all: the server answers ERROR and closes the session.
    post(
        server.addr,
        &format!("{path}/xhr_send"),
        &send_body(&["HELLO\n\n\0"]),
    )
    .await;
    let (_, body) = post(server.addr, &format!("{path}/xhr"), "").await;
    assert_eq!(command(&messages(&body)[0]), "ERROR", "{body:?}");
    for _ in 0..2 {
        assert_eq!(
            post(server.addr, &format!("{path}/xhr"), "").await,
            (200, "c[3000,\"Go away!\"]\n".to_owned())
        );
    }
    // Sending to it is pointless now.
    assert_eq!(
        post(server.addr, &format!("{path}/xhr_send"), "[\"x\"]")
            .await
            .0,
        404
    );
    server.stop().await;
}

// ---- streaming transports ----

#[tokio::test]
async fn xhr_streaming_sends_a_prelude_then_frames_and_ends_after_its_byte_limit() {
    let mut config = config();
    config.sockjs_stream_bytes = 4096;
    config.max_subscribes_per_second = 100;
    let server = TestServer::start_with(config).await;
    let token = server.token().await;
    let path = session_path();
    let mut stream = Answer::open(
        server.addr,
        "POST",
        &format!("{path}/xhr_streaming"),
        &[],
        Some(""),
    )
    .await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        stream.header("content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert_eq!(
        stream.header("cache-control"),
        Some("no-store, no-cache, must-revalidate, max-age=0")
    );
    assert_eq!(
        stream.next().await.as_deref(),
        Some(&*format!("{}\n", "h".repeat(2048)))
    );
    assert_eq!(stream.next().await.as_deref(), Some("o\n"));
    post(
        server.addr,
        &format!("{path}/xhr_send"),
        &send_body(&[&stompjs_connect(&token)]),
    )
    .await;
    let connected = stream.next().await.expect("a frame");
    assert_eq!(command(&messages(&connected)[0]), "CONNECTED");
    // Fill past the limit with RECEIPTs carrying long receipt ids.
    let mut received = connected.len();
    let mut frames = 0;
    while received < 4096 {
        let receipt = format!("r{}", "x".repeat(500));
        post(
            server.addr,
            &format!("{path}/xhr_send"),
            &send_body(&[&format!(
                "SUBSCRIBE\nid:{frames}\ndestination:/sub/channel/entry\nreceipt:{receipt}\n\n\0"
            )]),
        )
        .await;
        let Some(frame) = stream.next().await else {
            panic!("the stream ended after {received} bytes");
        };
        received += frame.len();
        frames += 1;
        assert!(frames < 20);
    }
    // Past the limit: the answer ends (the client opens another), the session goes on.
    assert_eq!(stream.next().await, None);
    post(
        server.addr,
        &format!("{path}/xhr_send"),
        &send_body(&["SUBSCRIBE\nid:after\ndestination:/sub/channel/lobby\nreceipt:after\n\n\0"]),
    )
    .await;
    let (status, body) = post(server.addr, &format!("{path}/xhr"), "").await;
    assert_eq!(status, 200);
    let receipt = messages(&body);
    assert_eq!(command(&receipt[0]), "RECEIPT", "{body:?}");
    server.stop().await;
}

#[tokio::test]
async fn eventsource_wraps_frames_as_data_lines() {
    let server = TestServer::start().await;
    let path = session_path();
    let mut stream = Answer::open(
        server.addr,
        "GET",
        &format!("{path}/eventsource"),
        &[],
        None,
    )
    .await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        stream.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(stream.next().await.as_deref(), Some("\r\n"));
    assert_eq!(stream.next().await.as_deref(), Some("data: o\r\n\r\n"));
    post(
        server.addr,
        &format!("{path}/xhr_send"),
        &send_body(&["CONNECT\naccept-version:1.2\n\n\0"]),
    )
    .await;
    let frame = stream.next().await.expect("a frame");
    let frame = frame
        .strip_prefix("data: ")
        .and_then(|frame| frame.strip_suffix("\r\n\r\n"))
        .unwrap_or_else(|| panic!("an event, got {frame:?}"));
    assert!(!frame.contains('\n') && frame.contains("\\n") && frame.contains("\\u0000"));
    assert_eq!(command(&messages(frame)[0]), "ERROR");
    assert_eq!(
        stream.next().await.as_deref(),
        Some("data: c[3000,\"Go away!\"]\r\n\r\n")
    );
    assert_eq!(stream.next().await, None, "nothing follows a close frame");
    server.stop().await;
}

#[tokio::test]
async fn a_second_stream_is_refused_and_an_aborted_one_ends_the_session() {
    let server = TestServer::start().await;
    let path = session_path();
    let url = format!("{path}/xhr_streaming");
    let mut first = Answer::open(server.addr, "POST", &url, &[], Some("")).await;
    first.next().await;
    assert_eq!(first.next().await.as_deref(), Some("o\n"));
    let prelude = format!("{}\n", "h".repeat(2048));
    let frames_of = |body: String| body.strip_prefix(&prelude).map(str::to_owned);
    let second = Answer::open(server.addr, "POST", &url, &[], Some("")).await;
    assert_eq!(
        frames_of(second.body().await).as_deref(),
        Some("c[2010,\"Another connection still open\"]\n")
    );
    // The network cuts the first one off: the session ends, and says so until forgotten.
    drop(first);
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let third = Answer::open(server.addr, "POST", &url, &[], Some("")).await;
        let frames = frames_of(third.body().await);
        if frames.as_deref() == Some("c[1002,\"Connection interrupted\"]\n") {
            break;
        }
        // The server may not have seen the cut yet.
        assert_eq!(
            frames.as_deref(),
            Some("c[2010,\"Another connection still open\"]\n")
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cut was never seen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

// ---- timeouts and heartbeats ----

#[tokio::test]
async fn quiet_receivers_get_heartbeats_and_unpolled_sessions_are_ended() {
    let mut config = config();
    config.sockjs_heartbeat = Duration::from_millis(300);
    config.sockjs_disconnect_delay = Duration::from_millis(500);
    let server = TestServer::start_with(config).await;
    let token = server.token().await;
    let path = session_path();
    assert_eq!(post(server.addr, &format!("{path}/xhr"), "").await.1, "o\n");
    // A poll with nothing to say ends with a heartbeat.
    assert_eq!(
        post(server.addr, &format!("{path}/xhr"), "").await,
        (200, "h\n".to_owned())
    );
    // A stream with nothing to say sends them.
    let mut stream = Answer::open(
        server.addr,
        "POST",
        &format!("{path}/xhr_streaming"),
        &[],
        Some(""),
    )
    .await;
    stream.next().await;
    assert_eq!(stream.next().await.as_deref(), Some("h\n"));
    drop(stream);

    // A connected session nobody polls any more is ended, and forgotten.
    let path = session_path();
    assert_eq!(post(server.addr, &format!("{path}/xhr"), "").await.1, "o\n");
    post(
        server.addr,
        &format!("{path}/xhr_send"),
        &send_body(&[&stompjs_connect(&token)]),
    )
    .await;
    let (_, body) = post(server.addr, &format!("{path}/xhr"), "").await;
    assert_eq!(command(&messages(&body)[0]), "CONNECTED");
    let counted = |metrics: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with("rtchat_connections{transport=\"sockjs-xhr-polling\"}"))
            .and_then(|line| line.split_whitespace().last())
            .map(str::to_owned)
    };
    let (_, metrics) = get(server.addr, "/metrics").await;
    assert_eq!(counted(&metrics).as_deref(), Some("1"), "{metrics}");
    let deadline = tokio::time::Instant::now() + STEP;
    while post(server.addr, &format!("{path}/xhr_send"), "[\"\\n\"]")
        .await
        .0
        != 404
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session was never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, metrics) = get(server.addr, "/metrics").await;
    assert_eq!(counted(&metrics).as_deref(), Some("0"), "{metrics}");
    server.stop().await;
}

// ---- websocket transports ----

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn sockjs_websocket(addr: SocketAddr) -> Socket {
    let url = format!("ws://{addr}{}/websocket", session_path());
    let (socket, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake in time")
        .expect("handshake");
    socket
}

/// The next text message; `None` once closed.
async fn text(socket: &mut Socket) -> Option<String> {
    loop {
        match tokio::time::timeout(STEP, socket.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn the_websocket_transport_frames_every_message() {
    let mut config = config();
    config.sockjs_heartbeat = Duration::from_millis(300);
    let server = TestServer::start_with(config).await;
    let token = server.token().await;
    let mut socket = sockjs_websocket(server.addr).await;
    assert_eq!(text(&mut socket).await.as_deref(), Some("o"));
    // Empty messages are ignored; a single string is a message too.
    socket.send(Message::text("")).await.expect("send");
    socket
        .send(Message::text(
            serde_json::to_string(&stompjs_connect(&token)).expect("JSON"),
        ))
        .await
        .expect("send");
    let connected = text(&mut socket).await.expect("a frame");
    assert_eq!(command(&messages(&connected)[0]), "CONNECTED");
    // Quiet: a heartbeat frame.
    assert_eq!(text(&mut socket).await.as_deref(), Some("h"));
    socket
        .send(Message::text(send_body(&["DISCONNECT\nreceipt:bye\n\n\0"])))
        .await
        .expect("send");
    let receipt = text(&mut socket).await.expect("a frame");
    assert_eq!(command(&messages(&receipt)[0]), "RECEIPT");
    assert_eq!(
        text(&mut socket).await.as_deref(),
        Some("c[3000,\"Go away!\"]")
    );
    assert_eq!(text(&mut socket).await, None);

    // Broken JSON: the socket is dropped, with no frame.
    let mut socket = sockjs_websocket(server.addr).await;
    assert_eq!(text(&mut socket).await.as_deref(), Some("o"));
    socket.send(Message::text("[\"a")).await.expect("send");
    assert_eq!(text(&mut socket).await, None);

    // Plain HTTP to it.
    let (status, body) = get(server.addr, "/connect/0/0/websocket").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("Can \"Upgrade\" only to \"WebSocket\"."),
        "{body}"
    );
    assert_eq!(post(server.addr, "/connect/0/0/websocket", "").await.0, 405);
    server.stop().await;
}

#[tokio::test]
async fn the_raw_websocket_speaks_plain_stomp() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let url = format!("ws://{}/connect/websocket", server.addr);
    let _client = StompClient::connect(&url, &token).await;
    server.stop().await;
}

// ---- chat end to end over each SockJS transport ----

/// A stompjs-over-sockjs-client stand-in over one SockJS transport.
enum Client {
    Polling {
        addr: SocketAddr,
        path: String,
    },
    Streaming {
        addr: SocketAddr,
        path: String,
        stream: Box<Answer>,
        events: bool,
    },
    WebSocket {
        socket: Box<Socket>,
    },
}

impl Client {
    async fn open(addr: SocketAddr, transport: &str) -> Client {
        let path = session_path();
        match transport {
            "xhr" => {
                assert_eq!(post(addr, &format!("{path}/xhr"), "").await.1, "o\n");
                Client::Polling { addr, path }
            }
            "xhr_streaming" | "eventsource" => {
                let events = transport == "eventsource";
                let (method, body) = if events {
                    ("GET", None)
                } else {
                    ("POST", Some(""))
                };
                let mut stream =
                    Answer::open(addr, method, &format!("{path}/{transport}"), &[], body).await;
                stream.next().await;
                let open = stream.next().await.expect("open frame");
                assert!(open.contains('o'), "{open:?}");
                Client::Streaming {
                    addr,
                    path,
                    stream: Box::new(stream),
                    events,
                }
            }
            _ => {
                let mut socket = sockjs_websocket(addr).await;
                assert_eq!(text(&mut socket).await.as_deref(), Some("o"));
                Client::WebSocket {
                    socket: Box::new(socket),
                }
            }
        }
    }

    async fn send(&mut self, stomp: &str) {
        match self {
            Client::Polling { addr, path } | Client::Streaming { addr, path, .. } => {
                let (status, _) =
                    post(*addr, &format!("{path}/xhr_send"), &send_body(&[stomp])).await;
                assert_eq!(status, 204);
            }
            Client::WebSocket { socket } => {
                socket
                    .send(Message::text(send_body(&[stomp])))
                    .await
                    .expect("send");
            }
        }
    }

    /// The STOMP frames of the next array frame (heartbeats skipped).
    async fn frames(&mut self) -> Vec<String> {
        loop {
            let frame = match self {
                Client::Polling { addr, path } => post(*addr, &format!("{path}/xhr"), "").await.1,
                Client::Streaming { stream, events, .. } => {
                    let chunk = stream.next().await.expect("stream open");
                    if *events {
                        chunk.trim_start_matches("data: ").to_owned()
                    } else {
                        chunk
                    }
                }
                Client::WebSocket { socket } => text(socket).await.expect("socket open"),
            };
            if frame.trim_end() == "h" {
                continue;
            }
            return messages(&frame)
                .into_iter()
                // STOMP heart-beats.
                .filter(|stomp| stomp != "\n")
                .collect();
        }
    }

    /// The next STOMP frame.
    async fn frame(&mut self, pending: &mut Vec<String>) -> String {
        while pending.is_empty() {
            *pending = self.frames().await;
        }
        pending.remove(0)
    }
}

async fn chat_over(transport: &str) {
    let server = TestServer::start().await;
    let alice_token = server.token().await;
    let bob_token = server.token().await;
    let mut alice = Client::open(server.addr, transport).await;
    let mut bob = Client::open(server.addr, transport).await;
    let (mut alice_pending, mut bob_pending) = (Vec::new(), Vec::new());
    for (client, token, pending) in [
        (&mut alice, &alice_token, &mut alice_pending),
        (&mut bob, &bob_token, &mut bob_pending),
    ] {
        client.send(&stompjs_connect(token)).await;
        let connected = client.frame(pending).await;
        assert_eq!(
            command(&connected),
            "CONNECTED",
            "{transport}: {connected:?}"
        );
        assert!(connected.contains("heart-beat:"), "{connected:?}");
        client
            .send("SUBSCRIBE\nid:sub-0\ndestination:/sub/channel/lobby\nreceipt:joined\n\n\0")
            .await;
        let receipt = client.frame(pending).await;
        assert_eq!(command(&receipt), "RECEIPT", "{transport}: {receipt:?}");
    }
    for (from, to, text) in [("alice", "bob", "hello bob"), ("bob", "alice", "hi alice")] {
        let (sender, receiver, sender_pending, receiver_pending) = if from == "alice" {
            (&mut alice, &mut bob, &mut alice_pending, &mut bob_pending)
        } else {
            (&mut bob, &mut alice, &mut bob_pending, &mut alice_pending)
        };
        sender
            .send(&format!(
                "SEND\ndestination:/pub/chat\ncontent-type:application/json\n\n{{\"roomId\":\"lobby\",\"message\":\"{text}\"}}\0"
            ))
            .await;
        for (who, client, pending) in [
            (from, sender, sender_pending),
            (to, receiver, receiver_pending),
        ] {
            let message = loop {
                let frame = client.frame(pending).await;
                if command(&frame) == "MESSAGE" && frame.contains(text) {
                    break frame;
                }
            };
            assert!(
                message.contains("destination:/sub/channel/lobby"),
                "{who}: {message:?}"
            );
            assert!(message.contains("subscription:sub-0"), "{who}: {message:?}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn chat_over_sockjs_xhr_polling() {
    chat_over("xhr").await;
}

#[tokio::test]
async fn chat_over_sockjs_xhr_streaming() {
    chat_over("xhr_streaming").await;
}

#[tokio::test]
async fn chat_over_sockjs_eventsource() {
    chat_over("eventsource").await;
}

#[tokio::test]
async fn chat_over_sockjs_websocket() {
    chat_over("websocket").await;
}
