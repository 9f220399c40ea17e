//! The client's address: the socket peer, or the proxy's `X-Forwarded-For` when trusted.

use axum::http::HeaderMap;
use std::net::{IpAddr, SocketAddr};

/// The address to attribute a request to.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for
        && let Some(forwarded) = headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .and_then(|first| first.trim().parse::<IpAddr>().ok())
    {
        return forwarded;
    }
    peer.ip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn peer() -> SocketAddr {
        "10.1.2.3:5000".parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_ignored_unless_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.1"),
        );
        assert_eq!(client_addr(peer(), &headers, false), peer().ip());
        assert_eq!(
            client_addr(peer(), &headers, true),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_garbled_forwarded_for_falls_back_to_the_peer() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(client_addr(peer(), &headers, true), peer().ip());
    }
}
