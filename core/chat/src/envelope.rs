//! The response envelope of every HTTP answer and every error sent to `/user/queue/errors`:
//! `{"success", "response", "error": {"message"} | null, "type"}`. The message is always the
//! [`ChatError`]'s user-facing text, never an internal cause.

use crate::service::ChatError;
use serde::Serialize;

/// The `error` member of an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// Text safe to show a user.
    pub message: String,
}

/// The contract's envelope around a payload `T`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Envelope<T> {
    /// Whether the request did what was asked.
    pub success: bool,
    /// The payload, or `null`.
    pub response: Option<T>,
    /// What went wrong, or `null`.
    pub error: Option<ErrorBody>,
    /// The code, e.g. `SUCCESS_TOKEN_ISSUANCE` or `UNKNOWN_ROOM`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl<T> Envelope<T> {
    /// `success: true` with `response` and the code `kind`.
    pub fn success(kind: &'static str, response: Option<T>) -> Self {
        Envelope {
            success: true,
            response,
            error: None,
            kind,
        }
    }

    /// `success: false`, no payload, the error's message and code.
    pub fn failure(error: &ChatError) -> Self {
        Envelope {
            success: false,
            response: None,
            error: Some(ErrorBody {
                message: error.to_string(),
            }),
            kind: error.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failure_has_the_contract_shape() {
        let envelope = Envelope::<()>::failure(&ChatError::UnknownRoom);
        assert_eq!(
            serde_json::to_value(&envelope).expect("serialize"),
            json!({"success": false, "response": null, "error": {"message": "unknown room"}, "type": "UNKNOWN_ROOM"})
        );
    }

    #[test]
    fn success_has_the_contract_shape() {
        let envelope = Envelope::success("SUCCESS_TOKEN_ISSUANCE", Some("jwt"));
        assert_eq!(
            serde_json::to_value(&envelope).expect("serialize"),
            json!({"success": true, "response": "jwt", "error": null, "type": "SUCCESS_TOKEN_ISSUANCE"})
        );
    }
}
