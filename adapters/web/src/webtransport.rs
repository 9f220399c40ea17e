//! `GET /webtransport`: where this node's WebTransport endpoint listens and which certificate
//! hashes a browser passes as `serverCertificateHashes`.

use crate::AppState;
use crate::envelope::Envelope;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// What the WebTransport endpoint offers right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebTransportOffer {
    /// The address the endpoint is bound to; `None` when it is the unspecified address
    /// (`0.0.0.0`, `::`), in which case the URL names the host the page was loaded from.
    pub ip: Option<IpAddr>,
    /// The UDP port.
    pub port: u16,
    /// The session path (`/stomp`).
    pub path: String,
    /// SHA-256 hashes of the certificates to accept, the served one first; empty when the
    /// certificate is verified the ordinary way (one from `--wt-cert`).
    pub certificate_hashes: Vec<[u8; 32]>,
    /// When to fetch the offer again (the certificate rotates); `None` if it does not change.
    pub valid_until: Option<SystemTime>,
    /// Which streams the server writes frames on: `single` (everything on the client's
    /// bidirectional stream) or `per-subscription` (each subscription's MESSAGEs on a
    /// unidirectional stream of its own); see docs/protocol.md.
    pub streams: &'static str,
}

/// Reads the current offer (certificates rotate, so it is read per request).
pub type WebTransportOffers = Arc<dyn Fn() -> WebTransportOffer + Send + Sync>;

/// The answer's `response`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    url: String,
    certificate_hashes: Vec<Hash>,
    valid_until: Option<String>,
    streams: &'static str,
}

#[derive(Debug, Serialize)]
struct Hash {
    algorithm: &'static str,
    value: String,
}

/// `GET /webtransport`.
pub(crate) async fn offer(State(state): State<AppState>, headers: HeaderMap) -> Envelope {
    let Some(offers) = &state.webtransport else {
        // A success with no offer, not a 404: a page asks on every start, and a browser
        // reports every 404 as an error in its console.
        return Envelope::ok("WEBTRANSPORT_OFF", serde_json::Value::Null);
    };
    let offer = offers();
    let host = match offer.ip {
        Some(IpAddr::V4(ip)) => ip.to_string(),
        Some(IpAddr::V6(ip)) => format!("[{ip}]"),
        None => request_host(&headers).unwrap_or_else(|| "localhost".to_owned()),
    };
    Envelope::ok(
        "SUCCESS_WEBTRANSPORT",
        Answer {
            url: format!("https://{host}:{}{}", offer.port, offer.path),
            certificate_hashes: offer
                .certificate_hashes
                .iter()
                .map(|hash| Hash {
                    algorithm: "sha-256",
                    value: base64::engine::general_purpose::STANDARD.encode(hash),
                })
                .collect(),
            valid_until: offer.valid_until.and_then(rfc3339),
            streams: offer.streams,
        },
    )
}

/// The host part of the request's `Host` header (without its port), if it is a plausible
/// host name or address literal.
fn request_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        format!("[{}]", rest.split_once(']')?.0)
    } else {
        host.split(':').next()?.to_owned()
    };
    let plausible = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    plausible.then_some(name)
}

fn rfc3339(time: SystemTime) -> Option<String> {
    time::OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn host(value: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            HeaderValue::from_str(value).expect("a header"),
        );
        request_host(&headers)
    }

    #[test]
    fn the_host_header_loses_its_port_and_keeps_brackets() {
        assert_eq!(host("chat.example:8080").as_deref(), Some("chat.example"));
        assert_eq!(host("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(host("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(host("evil/path:1"), None);
        assert_eq!(host(""), None);
        assert_eq!(request_host(&HeaderMap::new()), None);
    }
}
