//! `GET /webtransport`'s answer as rtchat's clients read it: where the endpoint is, the
//! certificate hashes to pin, and which streams the server writes on (docs/protocol.md).

use base64::Engine as _;
use rtchat_webtransport::CertificateHash;
use serde_json::Value;

/// A server's WebTransport endpoint and how to trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebTransportOffer {
    /// The session URL (`https://host:port/stomp`).
    pub url: String,
    /// The SHA-256 hashes to pin; empty when the certificate is verified the ordinary way.
    pub pins: Vec<CertificateHash>,
    /// `single` or `per-subscription` (a server that says nothing: `single`).
    pub streams: String,
}

/// Why an answer is not an offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// The server runs without `--webtransport`.
    #[error("the server does not serve WebTransport (start it with --webtransport)")]
    Off,
    /// The answer is not an offer rtchat makes.
    #[error("{0}")]
    Malformed(&'static str),
}

impl WebTransportOffer {
    /// Reads the JSON envelope of `GET /webtransport`.
    pub fn from_envelope(envelope: &Value) -> Result<Self, OfferError> {
        if envelope["type"] == "WEBTRANSPORT_OFF" {
            return Err(OfferError::Off);
        }
        let offer = &envelope["response"];
        let url = offer["url"]
            .as_str()
            .ok_or(OfferError::Malformed("no url"))?
            .to_owned();
        let pins = offer["certificateHashes"]
            .as_array()
            .ok_or(OfferError::Malformed("no certificateHashes"))?
            .iter()
            .filter(|hash| hash["algorithm"] == "sha-256")
            .map(|hash| {
                base64::engine::general_purpose::STANDARD
                    .decode(hash["value"].as_str().unwrap_or_default())
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .map(CertificateHash)
                    .ok_or(OfferError::Malformed(
                        "a certificate hash that is not base64 of 32 bytes",
                    ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let streams = offer["streams"].as_str().unwrap_or("single").to_owned();
        Ok(WebTransportOffer { url, pins, streams })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_offer_gives_its_url_pins_and_streams() {
        let hash = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let envelope = json!({
            "type": "SUCCESS_WEBTRANSPORT",
            "response": {
                "url": "https://127.0.0.1:4433/stomp",
                "certificateHashes": [{"algorithm": "sha-256", "value": hash}],
                "streams": "per-subscription",
            },
        });
        let offer = WebTransportOffer::from_envelope(&envelope).expect("an offer");
        assert_eq!(offer.url, "https://127.0.0.1:4433/stomp");
        assert_eq!(offer.pins, vec![CertificateHash([7; 32])]);
        assert_eq!(offer.streams, "per-subscription");

        // Before stream modes: `single`; a CA-issued certificate: nothing to pin.
        let envelope = json!({"response": {"url": "https://h/stomp", "certificateHashes": []}});
        let offer = WebTransportOffer::from_envelope(&envelope).expect("an offer");
        assert_eq!((offer.pins.len(), offer.streams.as_str()), (0, "single"));
    }

    #[test]
    fn what_is_not_an_offer_says_why() {
        let off = json!({"type": "WEBTRANSPORT_OFF", "response": null});
        assert_eq!(WebTransportOffer::from_envelope(&off), Err(OfferError::Off));
        let no_url = json!({"response": {"certificateHashes": []}});
        assert_eq!(
            WebTransportOffer::from_envelope(&no_url),
            Err(OfferError::Malformed("no url"))
        );
        let short = json!({"response": {"url": "https://h/stomp",
            "certificateHashes": [{"algorithm": "sha-256", "value": "AAAA"}]}});
        assert!(matches!(
            WebTransportOffer::from_envelope(&short),
            Err(OfferError::Malformed(_))
        ));
    }
}
