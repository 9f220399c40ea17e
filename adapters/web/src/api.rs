//! The JSON API. Every answer, success or failure, is an [`Envelope`]; bad input gets a 400
//! with a clear message, never a panic or an internal cause.

use crate::AppState;
use crate::client_addr::client_addr;
use crate::envelope::Envelope;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use rtchat_chat::WindowLimiter;
use rtchat_chat::{ChatError, ChatService, Identity, InitOutcome, MessageId};
use rtchat_driver::ChatUseCases;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;

/// Messages per page when a request names no `limit`.
const DEFAULT_PAGE: usize = 10;

/// The bearer token of a request, as far as the header says.
enum Bearer<'a> {
    Absent,
    Token(&'a str),
    Malformed,
}

fn bearer(headers: &HeaderMap) -> Bearer<'_> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Bearer::Absent;
    };
    let Ok(value) = value.to_str() else {
        return Bearer::Malformed;
    };
    match value.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            // The original client sent the string "null" before it had a token.
            if token.is_empty() || token == "null" {
                Bearer::Absent
            } else {
                Bearer::Token(token)
            }
        }
        _ => Bearer::Malformed,
    }
}

/// Keys remembered per limit (one per address prefix or identity seen in the last hour).
const MAX_LIMITED_KEYS: usize = 100_000;

/// Limits on what anyone can do for free but costs the server for good: rooms and identities.
/// Per identity alone would not hold (tokens are free), so also per client address prefix
/// (the same short prefix the messages show: a /16 for IPv4).
#[derive(Debug)]
pub(crate) struct AbuseLimits {
    rooms_by_identity: Mutex<WindowLimiter<String>>,
    rooms_by_address: Mutex<WindowLimiter<String>>,
    tokens_by_address: Mutex<WindowLimiter<String>>,
    refreshes_by_identity: Mutex<WindowLimiter<String>>,
}

impl AbuseLimits {
    pub(crate) fn new(config: &crate::WebConfig) -> Self {
        let hourly = |allowed| Mutex::new(WindowLimiter::new(allowed, HOUR, MAX_LIMITED_KEYS));
        AbuseLimits {
            rooms_by_identity: hourly(config.rooms_per_hour),
            rooms_by_address: hourly(config.rooms_per_hour),
            tokens_by_address: hourly(config.tokens_per_hour),
            refreshes_by_identity: hourly(REFRESHES_PER_HOUR),
        }
    }
}

/// Token refreshes (`GET /init?refresh=true`) one identity may have per hour. A page refreshes
/// once per token lifetime (and retries a failed refresh); more only costs the server
/// signatures. It cannot make identities, so `tokens_per_hour` does not apply.
pub const REFRESHES_PER_HOUR: u32 = 10;

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// Takes one from `limiter` for `key`, or the 429 answer.
fn take(limiter: &Mutex<WindowLimiter<String>>, key: &str, what: &str) -> Result<(), Envelope> {
    limiter
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take(&key.to_owned(), std::time::Instant::now())
        .map_err(|retry_after| Envelope::rate_limited(what, retry_after))
}

/// The identity of a request that must carry a valid token.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Identity, Envelope> {
    match bearer(headers) {
        Bearer::Token(token) => state.service.authenticate(token).map_err(Envelope::from),
        Bearer::Absent => Err(Envelope::error(
            StatusCode::UNAUTHORIZED,
            "MISSING_TOKEN",
            "an Authorization: Bearer token from /init is required",
        )),
        Bearer::Malformed => Err(Envelope::from(ChatError::InvalidToken)),
    }
}

/// `GET /healthz`.
pub async fn healthz() -> Envelope {
    Envelope::ok("SUCCESS", serde_json::json!({"status": "ok"}))
}

/// `GET /metrics`: the node's counters in the OpenMetrics text format (Prometheus scrapes it).
pub async fn metrics(State(service): State<ChatService>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            rtchat_chat::metrics::CONTENT_TYPE,
        )],
        service.hub().encode_metrics(),
    )
}

/// `GET /readyz`: whether the store, broker and presence answer (a load balancer sends no
/// one here while they do not). `/healthz` is only liveness.
pub async fn readyz(State(state): State<AppState>) -> Envelope {
    match state.service.ready().await {
        Ok(()) => Envelope::ok("SUCCESS", serde_json::json!({"status": "ready"})),
        Err(down) => Envelope::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            format!("not ready: {} not answering", down.join(", ")),
        ),
    }
}

/// `GET /init`: issue, accept or re-issue a token. With `?refresh=true`, a valid token gets a
/// new one for the same identity (`SUCCESS_TOKEN_REFRESHED`), so a page can extend its session
/// before the token expires.
pub async fn init(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Envelope {
    let client = client_addr(peer, &headers, state.config.trust_forwarded_for);
    let refresh = match params.get("refresh").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return bad_request("query parameter 'refresh' must be true or false".to_owned());
        }
    };
    if refresh {
        return refresh_token(&state, &headers, client);
    }
    let token = match bearer(&headers) {
        Bearer::Absent => {
            // A new identity: limited per address, or anyone could mint them without end.
            let prefix = rtchat_chat::ip_prefix(client);
            if let Err(refused) = take(&state.limits.tokens_by_address, &prefix, "new tokens") {
                return refused;
            }
            None
        }
        Bearer::Token(token) => Some(token),
        Bearer::Malformed => return Envelope::from(ChatError::InvalidToken),
    };
    match state.service.init(token, client) {
        InitOutcome::Issued(token) => Envelope::ok("SUCCESS_TOKEN_ISSUANCE", token),
        InitOutcome::Valid(token) => Envelope::ok("SUCCESS_TOKEN_VALID", token),
        InitOutcome::Reissued(token) => reissued(token),
        InitOutcome::Invalid => Envelope::from(ChatError::InvalidToken),
        // Only `ChatService::refresh` gives it.
        InitOutcome::Refreshed { token, .. } => Envelope::ok("SUCCESS_TOKEN_REFRESHED", token),
    }
}

/// The answer that carries a token re-issued for an expired one.
fn reissued(token: String) -> Envelope {
    Envelope::error(
        StatusCode::OK,
        "EXPIRED_TOKEN",
        "the token had expired; a new one was issued for the same name",
    )
    .with_response(token)
}

/// `GET /init?refresh=true`: never a new identity, so it needs a token; a valid one gets a
/// newly issued token for the same identity, at most [`REFRESHES_PER_HOUR`] per identity.
fn refresh_token(state: &AppState, headers: &HeaderMap, client: std::net::IpAddr) -> Envelope {
    let token = match bearer(headers) {
        Bearer::Token(token) => token,
        Bearer::Absent => {
            return Envelope::error(
                StatusCode::UNAUTHORIZED,
                "MISSING_TOKEN",
                "refresh=true needs the token to refresh in Authorization: Bearer",
            );
        }
        Bearer::Malformed => return Envelope::from(ChatError::InvalidToken),
    };
    match state.service.refresh(token, client) {
        InitOutcome::Refreshed { token, identity } => {
            if let Err(refused) = take(
                &state.limits.refreshes_by_identity,
                &identity.name_tag,
                "token refreshes",
            ) {
                return refused;
            }
            Envelope::ok("SUCCESS_TOKEN_REFRESHED", token)
        }
        InitOutcome::Reissued(token) => reissued(token),
        InitOutcome::Issued(_) | InitOutcome::Valid(_) | InitOutcome::Invalid => {
            Envelope::from(ChatError::InvalidToken)
        }
    }
}

/// Query parameters, read by hand so a bad one gets a 400 envelope naming it.
struct Params(HashMap<String, String>);

impl Params {
    fn required(&self, name: &'static str) -> Result<&str, Envelope> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| bad_request(format!("missing query parameter '{name}'")))
    }

    fn number<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: Option<T>,
    ) -> Result<T, Envelope> {
        match (self.0.get(name), default) {
            (Some(value), _) => value.parse().map_err(|_| {
                bad_request(format!(
                    "query parameter '{name}' must be a positive whole number"
                ))
            }),
            (None, Some(default)) => Ok(default),
            (None, None) => Err(bad_request(format!("missing query parameter '{name}'"))),
        }
    }
}

fn bad_request(message: String) -> Envelope {
    Envelope::from(ChatError::BadRequest(rtchat_chat::BadRequest::Http(
        message,
    )))
}

fn messages(result: Result<Vec<rtchat_chat::ChatMessage>, ChatError>) -> Envelope {
    match result {
        Ok(messages) => Envelope::ok("SUCCESS", messages),
        Err(error) => Envelope::from(error),
    }
}

/// `GET /message?roomId=R&limit=N`: the newest N, newest first.
pub async fn newest_messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Envelope {
    history_page(&state, &headers, Params(params), Page::Newest).await
}

/// `GET /message/lastMessageId?roomId=R&limit=N&lastMessageId=ID`: the N before ID, newest first.
pub async fn messages_before(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Envelope {
    history_page(&state, &headers, Params(params), Page::BeforeLastMessageId).await
}

/// Which page of history a request asks for.
enum Page {
    Newest,
    BeforeLastMessageId,
}

async fn history_page(
    state: &AppState,
    headers: &HeaderMap,
    params: Params,
    page: Page,
) -> Envelope {
    let run = async {
        let caller = authenticate(state, headers)?;
        let room = params.required("roomId")?;
        let limit = params.number("limit", Some(DEFAULT_PAGE))?;
        let before: Option<MessageId> = match page {
            Page::Newest => None,
            Page::BeforeLastMessageId => Some(params.number("lastMessageId", None)?),
        };
        Ok::<_, Envelope>(messages(
            state.service.history(&caller, room, limit, before).await,
        ))
    };
    run.await.unwrap_or_else(|envelope| envelope)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomView<'a> {
    room_id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

/// `GET /rooms`: public rooms with their live counts.
pub async fn list_rooms(State(state): State<AppState>) -> Envelope {
    match state.service.rooms().await {
        Ok(rooms) => {
            let views: Vec<RoomView<'_>> = rooms
                .iter()
                .map(|(room, count)| RoomView {
                    room_id: room.room_id.as_str(),
                    name: &room.name,
                    count: Some(*count),
                })
                .collect();
            Envelope::ok("SUCCESS", views)
        }
        Err(error) => Envelope::from(error),
    }
}

/// A JSON request body of `T`'s shape, and only a well-formed JSON object. Both checks were
/// found by the `http_json` fuzz target:
/// - serde's derived `Deserialize` also takes an array of the fields in order (`["Tea",
///   "tea"]`), which the contract does not name (and Spring's Jackson refused);
/// - serde skips the fields `T` does not know without checking their strings, so a body with an
///   invalid escape (a lone surrogate, `"\ud800-"`) or invalid UTF-8 in an unknown field was
///   accepted although it is not JSON.
///
/// So the body is first read whole as a JSON object (every string checked), then as `T`.
pub struct Object<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Reads a JSON object's fields as JSON values, refusing a key given twice (as the
        /// derived `Deserialize` does; a map would keep the last).
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = serde_json::Map<String, serde_json::Value>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = serde_json::Map::new();
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    if fields.contains_key(&key) {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate field `{key}`"
                        )));
                    }
                    fields.insert(key, value);
                }
                Ok(fields)
            }
        }

        let fields = deserializer.deserialize_map(FieldsVisitor)?;
        T::deserialize(serde_json::Value::Object(fields))
            .map(Object)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRoom {
    name: String,
    room_id: Option<String>,
}

fn json_error(rejection: JsonRejection) -> Envelope {
    bad_request(format!(
        "the body must be JSON of the documented shape ({})",
        rejection.body_text()
    ))
}

/// `POST /rooms` `{"name", "roomId"?}`, with a valid token; limited per identity and per
/// client address prefix (rooms cost memory for good, and the node holds `--max-rooms`).
pub async fn create_room(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<Object<CreateRoom>>, JsonRejection>,
) -> Envelope {
    let caller = match authenticate(&state, &headers) {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let Json(Object(request)) = match body {
        Ok(body) => body,
        Err(rejection) => return json_error(rejection),
    };
    let client = client_addr(peer, &headers, state.config.trust_forwarded_for);
    let prefix = rtchat_chat::ip_prefix(client);
    let limited = take(
        &state.limits.rooms_by_identity,
        &caller.name_tag,
        "new rooms",
    )
    .and_then(|()| take(&state.limits.rooms_by_address, &prefix, "new rooms"));
    if let Err(refused) = limited {
        return refused;
    }
    match state
        .service
        .create_room(&request.name, request.room_id.as_deref())
        .await
    {
        Ok(room) => Envelope::ok(
            "SUCCESS",
            RoomView {
                room_id: room.room_id.as_str(),
                name: &room.name,
                count: None,
            },
        ),
        Err(error) => Envelope::from(error),
    }
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivateRoom {
    sender_id: String,
    receiver_id: String,
}

/// `POST /chatroom/private` `{"senderId", "receiverId"}` (name tags), by one of the two (its
/// token says so): the pair's room, always the same.
pub async fn private_room(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Object<PrivateRoom>>, JsonRejection>,
) -> Envelope {
    let caller = match authenticate(&state, &headers) {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let Json(Object(request)) = match body {
        Ok(body) => body,
        Err(rejection) => return json_error(rejection),
    };
    match state
        .service
        .private_room(&caller, &request.sender_id, &request.receiver_id)
        .await
    {
        Ok(room) => Envelope::ok(
            "SUCCESS",
            serde_json::json!({
                "senderId": request.sender_id,
                "receiverId": request.receiver_id,
                "roomId": room.room_id.as_str(),
            }),
        ),
        Err(error) => Envelope::from(error),
    }
}

/// Anything else.
pub async fn not_found() -> Envelope {
    Envelope::error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_objects_only() {
        let room: Object<CreateRoom> =
            serde_json::from_str(r#"{"name":"Tea","roomId":"tea"}"#).expect("an object");
        assert_eq!(
            (room.0.name.as_str(), room.0.room_id.as_deref()),
            ("Tea", Some("tea"))
        );
        let pair: Object<PrivateRoom> =
            serde_json::from_str(r##"{"senderId":"#A11CE0","receiverId":"#B0B000"}"##)
                .expect("an object");
        assert_eq!(pair.0.receiver_id, "#B0B000");
        // The fields in order, as an array: what the derived `Deserialize` alone accepted.
        assert!(serde_json::from_str::<Object<CreateRoom>>(r#"["Tea","tea"]"#).is_err());
        assert!(serde_json::from_str::<Object<CreateRoom>>(r#"["Tea"]"#).is_err());
        assert!(serde_json::from_str::<Object<PrivateRoom>>(r##"["#A11CE0","#B0B000"]"##).is_err());
        // What the derived `Deserialize` refuses, this refuses too.
        assert!(serde_json::from_str::<Object<CreateRoom>>(r#"{"roomId":"tea"}"#).is_err());
        assert!(serde_json::from_str::<Object<CreateRoom>>(r#"{"name":"a","name":"b"}"#).is_err());
        // Unknown fields are let through, but only as JSON: a lone surrogate escape or invalid
        // UTF-8 in one makes the body not JSON (serde skips unknown fields unchecked).
        assert!(serde_json::from_str::<Object<CreateRoom>>(r#"{"name":"a","x":1}"#).is_ok());
        let lone_surrogate = br#"{"name":"Tea","x":"\ud800-1"}"#;
        assert!(serde_json::from_slice::<Object<CreateRoom>>(lone_surrogate).is_err());
        let bad_utf8 = b"{\"name\":\"Tea\",\"x\":\"\xff\"}";
        assert!(serde_json::from_slice::<Object<CreateRoom>>(bad_utf8).is_err());
    }
}
