//! The axum side: routes, answers, and the sessions' tasks.

use crate::SockJs;
use crate::frame::{self, CloseCode, Wrapping};
use crate::session::{Limits, Receiver, Session, SessionTransport, Take};
use crate::websocket::SockJsWebSocket;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use rtchat_chat::TransportKind;
use rtchat_driver::run_connection;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Read buffer of a SockJS WebSocket: as for `/ws`, small, so idle sessions stay small.
const READ_BUFFER_BYTES: usize = 1024;

/// What the spec asks of answers that must never be cached (xhr answers are POSTs, which
/// some mobile browsers cache anyway).
const NO_CACHE: &str = "no-store, no-cache, must-revalidate, max-age=0";

const JAVASCRIPT: &str = "application/javascript; charset=UTF-8";
const EVENT_STREAM: &str = "text/event-stream; charset=UTF-8";
const TEXT: &str = "text/plain; charset=UTF-8";
const JSON: &str = "application/json; charset=UTF-8";

/// The routes under the configured prefix, ready to merge into the server's router.
pub fn router(sockjs: SockJs) -> Router {
    let prefix = sockjs.config.prefix.trim_end_matches('/').to_owned();
    let session = |transport: &str| format!("{prefix}/{{server}}/{{session}}/{transport}");
    Router::new()
        .route(&prefix, get(greeting))
        .route(&format!("{prefix}/"), get(greeting))
        .route(&format!("{prefix}/info"), get(info))
        // Any method: a bad id is a 404 whatever the method, as the spec's tests expect.
        .route(&session("websocket"), any(websocket))
        .route(&session("xhr"), any(xhr_polling))
        .route(&session("xhr_streaming"), any(xhr_streaming))
        .route(&session("eventsource"), any(eventsource))
        .route(
            &session("xhr_send"),
            any(xhr_send).layer(DefaultBodyLimit::max(sockjs.config.max_send_bytes)),
        )
        .with_state(sockjs)
}

fn answer(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    response
}

fn not_found() -> Response {
    answer(StatusCode::NOT_FOUND, TEXT, "Not found.\n")
}

async fn greeting() -> Response {
    answer(StatusCode::OK, TEXT, frame::GREETING)
}

async fn info(State(sockjs): State<SockJs>) -> Response {
    answer(
        StatusCode::OK,
        JSON,
        frame::info(sockjs.config.websocket, rand::random()),
    )
}

/// The client's address.
fn client(sockjs: &SockJs, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    (sockjs.client_addr)(peer, headers)
}

/// Whether `server` and `session` are valid ids.
fn valid_ids(server: &str, session: &str) -> bool {
    frame::valid_id(server) && frame::valid_id(session)
}

/// The answer to a session URL with bad ids (404) or the wrong method (405); `None` when
/// the request may go on.
fn refused(server: &str, session: &str, method: &Method, allowed: Method) -> Option<Response> {
    if !valid_ids(server, session) {
        return Some(not_found());
    }
    if *method != allowed {
        let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
        if let Ok(allow) = HeaderValue::from_str(allowed.as_str()) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        return Some(response);
    }
    None
}

fn full() -> Response {
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        TEXT,
        "The server is full; try again later.\n",
    )
}

impl SockJs {
    fn is_full(&self) -> bool {
        self.shutdown.live_connections() >= self.max_connections
    }

    fn limits(&self) -> Limits {
        Limits {
            max_buffered_bytes: self.config.max_buffered_bytes,
            disconnect_delay: self.config.disconnect_delay,
        }
    }

    /// The session `id`, opened over `kind` (and its connection started) when new.
    fn session(
        &self,
        id: &str,
        kind: TransportKind,
        client: IpAddr,
    ) -> Result<Arc<Session>, Box<Response>> {
        if let Some(session) = self.sessions.get(id) {
            return Ok(session);
        }
        if self.is_full() {
            tracing::warn!(%client, "connection limit reached: refusing a SockJS session");
            return Err(Box::new(full()));
        }
        let (session, made) = self
            .sessions
            .get_or_insert(id, || Session::new(kind, self.limits()));
        if let Some(transport) = made {
            // Taken now, so the connection counts from this request on.
            let signal = self.shutdown.signal();
            let sockjs = self.clone();
            let id = id.to_owned();
            let session = session.clone();
            tokio::spawn(async move {
                sockjs
                    .run_session(&id, session, transport, client, signal)
                    .await;
            });
        }
        Ok(session)
    }

    /// Runs a session's connection, then keeps the session (its close frame for late
    /// receivers) until it is no longer polled, then forgets it.
    async fn run_session(
        &self,
        id: &str,
        session: Arc<Session>,
        transport: SessionTransport,
        client: IpAddr,
        signal: rtchat_driver::ShutdownSignal,
    ) {
        run_connection(transport, &self.service, client, &self.driver, signal).await;
        session.unpolled().await;
        self.sessions.remove(id, &session);
    }
}

fn render(take: Take) -> String {
    match take {
        Take::Open => frame::OPEN.to_owned(),
        Take::Messages(messages) => frame::messages(&messages),
        Take::Closed(code) => code.frame(),
    }
}

/// `POST .../xhr`: one frame (or a heartbeat after a quiet while), then the answer ends.
async fn xhr_polling(
    State(sockjs): State<SockJs>,
    Path((server, id)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refused(&server, &id, &method, Method::POST) {
        return refused;
    }
    let client = client(&sockjs, peer, &headers);
    let session = match sockjs.session(&id, TransportKind::SockJsXhrPolling, client) {
        Ok(session) => session,
        Err(refused) => return *refused,
    };
    let polled = |frame: String| answer(StatusCode::OK, JAVASCRIPT, Wrapping::Newline.wrap(&frame));
    let Some(mut receiver) = session.attach() else {
        return polled(CloseCode::AnotherConnectionOpen.frame());
    };
    let quiet_until = Instant::now() + sockjs.config.heartbeat.min(sockjs.config.max_response_time);
    loop {
        if let Some(take) = receiver.take() {
            receiver.complete();
            return polled(render(take));
        }
        tokio::select! {
            () = receiver.ready() => {}
            () = tokio::time::sleep_until(quiet_until) => {
                receiver.complete();
                return polled(frame::HEARTBEAT.to_owned());
            }
        }
    }
}

/// `POST .../xhr_streaming`.
async fn xhr_streaming(
    State(sockjs): State<SockJs>,
    Path((server, id)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refused(&server, &id, &method, Method::POST) {
        return refused;
    }
    let client = client(&sockjs, peer, &headers);
    streaming(
        sockjs,
        &id,
        client,
        Wrapping::Newline,
        TransportKind::SockJsXhrStreaming,
    )
}

/// `GET .../eventsource`.
async fn eventsource(
    State(sockjs): State<SockJs>,
    Path((server, id)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refused(&server, &id, &method, Method::GET) {
        return refused;
    }
    let client = client(&sockjs, peer, &headers);
    streaming(
        sockjs,
        &id,
        client,
        Wrapping::EventSource,
        TransportKind::SockJsEventSource,
    )
}

/// A streaming answer: prelude, then frames as they come, heartbeats when quiet; it ends
/// with a close frame, or after [`crate::SockJsConfig::stream_bytes`] or
/// [`crate::SockJsConfig::max_response_time`] (the client then opens the next one).
fn streaming(
    sockjs: SockJs,
    id: &str,
    client: IpAddr,
    wrapping: Wrapping,
    kind: TransportKind,
) -> Response {
    let session = match sockjs.session(id, kind, client) {
        Ok(session) => session,
        Err(refused) => return *refused,
    };
    let content_type = match wrapping {
        Wrapping::Newline => JAVASCRIPT,
        Wrapping::EventSource => EVENT_STREAM,
    };
    let prelude = wrapping.prelude(true);
    let Some(receiver) = session.attach() else {
        let body = prelude + &wrapping.wrap(&CloseCode::AnotherConnectionOpen.frame());
        return answer(StatusCode::OK, content_type, body);
    };
    let stream = Stream {
        receiver: Some(receiver),
        wrapping,
        prelude: Some(prelude),
        sent: 0,
        limit: sockjs.config.stream_bytes,
        ends_at: Instant::now() + sockjs.config.max_response_time,
        heartbeat: sockjs.config.heartbeat,
    };
    let body = futures_util::stream::unfold(stream, |mut stream| async move {
        let chunk = stream.next().await?;
        Some((Ok::<_, Infallible>(Bytes::from(chunk)), stream))
    });
    answer(StatusCode::OK, content_type, Body::from_stream(body))
}

/// The state of a streaming answer.
struct Stream {
    /// `None` once the answer is over.
    receiver: Option<Receiver>,
    wrapping: Wrapping,
    prelude: Option<String>,
    /// Bytes of frames written (the prelude not counted).
    sent: usize,
    limit: usize,
    ends_at: Instant,
    heartbeat: Duration,
}

impl Stream {
    /// The next chunk of the answer; `None` when it is over.
    async fn next(&mut self) -> Option<String> {
        if let Some(prelude) = self.prelude.take() {
            return Some(prelude);
        }
        let receiver = self.receiver.as_mut()?;
        if self.sent >= self.limit || Instant::now() >= self.ends_at {
            self.finish();
            return None;
        }
        let quiet_until = Instant::now() + self.heartbeat;
        loop {
            if let Some(take) = receiver.take() {
                let closed = matches!(take, Take::Closed(_));
                let chunk = self.wrapping.wrap(&render(take));
                self.sent += chunk.len();
                if closed {
                    // Nothing follows a close frame: the next call ends the answer.
                    self.sent = self.limit.max(self.sent);
                }
                return Some(chunk);
            }
            tokio::select! {
                () = receiver.ready() => {}
                () = tokio::time::sleep_until(quiet_until) => {
                    let chunk = self.wrapping.wrap(frame::HEARTBEAT);
                    self.sent += chunk.len();
                    return Some(chunk);
                }
                () = tokio::time::sleep_until(self.ends_at) => {
                    self.finish();
                    return None;
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Some(receiver) = self.receiver.take() {
            receiver.complete();
        }
    }
}

/// `POST .../xhr_send`: the client's messages, a JSON array of strings.
async fn xhr_send(
    State(sockjs): State<SockJs>,
    Path((server, id)): Path<(String, String)>,
    method: Method,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(refused) = refused(&server, &id, &method, Method::POST) {
        return refused;
    }
    let Some(session) = sockjs.sessions.get(&id) else {
        return not_found();
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return answer(
                rejection.status(),
                TEXT,
                format!("{}\n", rejection.body_text()),
            );
        }
    };
    let messages = match frame::decode_send(&body) {
        Ok(messages) => messages,
        Err(error) => return answer(StatusCode::INTERNAL_SERVER_ERROR, TEXT, error.to_string()),
    };
    match session.send(messages).await {
        Ok(()) => answer(StatusCode::NO_CONTENT, TEXT, Body::empty()),
        Err(_) => not_found(),
    }
}

/// `GET .../websocket`: a SockJS-framed WebSocket; its session lives as long as the socket
/// (ids may be reused, as the spec allows).
async fn websocket(
    State(sockjs): State<SockJs>,
    Path((server, id)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !sockjs.config.websocket {
        return not_found();
    }
    if let Some(refused) = refused(&server, &id, &method, Method::GET) {
        return refused;
    }
    let Ok(upgrade) = upgrade else {
        return answer(
            StatusCode::BAD_REQUEST,
            TEXT,
            "Can \"Upgrade\" only to \"WebSocket\".\n",
        );
    };
    let client = client(&sockjs, peer, &headers);
    if sockjs.is_full() {
        tracing::warn!(%client, "connection limit reached: refusing a SockJS WebSocket");
        return full();
    }
    let max_message = sockjs.config.max_send_bytes;
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(sockjs.config.max_buffered_bytes.max(1 << 20))
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| async move {
            let signal = sockjs.shutdown.signal();
            if let Some(transport) = SockJsWebSocket::open(socket, sockjs.config.heartbeat).await {
                run_connection(transport, &sockjs.service, client, &sockjs.driver, signal).await;
            }
        })
}
