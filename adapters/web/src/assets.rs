//! The page, embedded in the binary so the server runs from a single file.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");
const STOMP_JS: &str = include_str!("../assets/stomp.umd.min.js");
const TRANSPORT_JS: &str = include_str!("../assets/transport.js");

/// Scripts only from this origin: a message that slipped into the DOM as HTML still could not
/// run script. Connections: this origin, WebSockets, and `https:` for WebTransport (its
/// endpoint is another port, and CSP's `connect-src` governs WebTransport too).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self' ws: wss: https:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn respond(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /`.
pub async fn index() -> Response {
    respond(INDEX_HTML, "text/html; charset=utf-8")
}

/// `GET /assets/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => respond(APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => respond(STYLE_CSS, "text/css; charset=utf-8"),
        "stomp.umd.min.js" => respond(STOMP_JS, "text/javascript; charset=utf-8"),
        "transport.js" => respond(TRANSPORT_JS, "text/javascript; charset=utf-8"),
        _ => crate::envelope::Envelope::error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such asset")
            .into_response(),
    }
}
