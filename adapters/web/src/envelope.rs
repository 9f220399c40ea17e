//! The response envelope every HTTP answer and every `/user/queue/errors` message uses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rtchat_chat::{ChatError, Envelope as CoreEnvelope, ErrorBody};
use serde::Serialize;
use serde_json::Value;

/// The contract's envelope ([`rtchat_chat::Envelope`]) with the HTTP status it goes out with.
#[derive(Debug, Clone)]
pub struct Envelope {
    body: CoreEnvelope<Value>,
    status: StatusCode,
    /// Seconds for a `Retry-After` header (429 answers).
    retry_after: Option<u64>,
}

impl Envelope {
    /// A success with `response` as payload and `kind` as its code.
    pub fn ok(kind: &'static str, response: impl Serialize) -> Self {
        Envelope {
            body: CoreEnvelope::success(kind, Some(to_value(response))),
            status: StatusCode::OK,
            retry_after: None,
        }
    }

    /// A failure with an HTTP status, a code and a message safe to show a user.
    pub fn error(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Envelope {
            body: CoreEnvelope {
                success: false,
                response: None,
                error: Some(ErrorBody {
                    message: message.into(),
                }),
                kind,
            },
            status,
            retry_after: None,
        }
    }

    /// `429 RATE_LIMITED` with a `Retry-After` of `retry_after` (rounded up to whole seconds).
    pub fn rate_limited(what: &str, retry_after: std::time::Duration) -> Self {
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        let mut envelope = Envelope::error(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("too many {what}; try again in {seconds} s"),
        );
        envelope.retry_after = Some(seconds.max(1));
        envelope
    }

    /// Replaces the payload (an expired token's answer carries the new token and an error).
    pub fn with_response(mut self, response: impl Serialize) -> Self {
        self.body.response = Some(to_value(response));
        self
    }

    /// The HTTP status this envelope goes out with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// Serialising our own plain data types cannot fail; `null` is a safe fallback.
fn to_value(response: impl Serialize) -> Value {
    serde_json::to_value(response).unwrap_or(Value::Null)
}

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.body.serialize(serializer)
    }
}

impl From<ChatError> for Envelope {
    fn from(error: ChatError) -> Self {
        let status = match &error {
            ChatError::UnknownRoom => StatusCode::NOT_FOUND,
            ChatError::RoomExists => StatusCode::CONFLICT,
            ChatError::InvalidToken | ChatError::ExpiredToken => StatusCode::UNAUTHORIZED,
            ChatError::Forbidden | ChatError::OtherIdentity => StatusCode::FORBIDDEN,
            ChatError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ChatError::Unavailable | ChatError::NotStored | ChatError::TooManyRooms => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        Envelope {
            body: CoreEnvelope::failure(&error),
            status,
            retry_after: None,
        }
    }
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(&self)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn success_envelope_has_all_four_fields() {
        let value = serde_json::to_value(Envelope::ok("SUCCESS", vec![1, 2])).unwrap();
        assert_eq!(
            value,
            json!({"success": true, "response": [1, 2], "error": null, "type": "SUCCESS"})
        );
    }

    #[test]
    fn chat_errors_map_to_statuses_and_codes_without_internals() {
        let envelope = Envelope::from(ChatError::RoomExists);
        assert_eq!(envelope.status(), StatusCode::CONFLICT);
        let value = serde_json::to_value(&envelope).unwrap();
        assert_eq!(value["type"], "ROOM_EXISTS");
        assert_eq!(value["success"], false);
        assert_eq!(value["response"], Value::Null);
        assert_eq!(value["error"]["message"], "room already exists");
        assert_eq!(
            Envelope::from(ChatError::Unavailable).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            Envelope::from(ChatError::InvalidToken).status(),
            StatusCode::UNAUTHORIZED
        );
    }
}
