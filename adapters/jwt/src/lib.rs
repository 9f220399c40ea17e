//! # rtchat-jwt
//!
//! The [`Tokens`] port over HS256 JSON Web Tokens (jsonwebtoken). A token carries an
//! anonymous [`Identity`]; its claims are the contract's (docs/protocol.md): `jti` (uuid v4),
//! `iss` (this server), `sub` (the name tag, `#A1B2C3`), `randId` (the display name), `aud`
//! (the client address when issued), `iat`, `nbf`, `exp` (seconds since the epoch).
//!
//! Verification accepts HS256 only and checks the signature, `iss`, `nbf` and `exp` with no
//! leeway. `aud` is not checked: clients move between networks and keep their identity.
//! A well-signed token past `exp` is [`TokenError::Expired`] with its identity, so `/init`
//! can re-issue the same name; anything else wrong is [`TokenError::Invalid`].

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use rtchat_chat::{Identity, TokenError, Tokens, VerifiedToken};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a token is valid unless configured otherwise: 30 days.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Length of a secret made by [`JwtTokens::generate_secret`]: 256 bits, HS256's own size.
pub const SECRET_LEN: usize = 32;

/// Seconds since the Unix epoch, as the token claims count time.
type Now = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Issues and verifies HS256 identity tokens with one secret.
#[derive(Clone)]
pub struct JwtTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    ttl: Duration,
    validation: Validation,
    now: Now,
}

/// The claims written into a token.
#[derive(Serialize)]
struct IssuedClaims<'a> {
    jti: String,
    iss: &'a str,
    sub: &'a str,
    #[serde(rename = "randId")]
    rand_id: &'a str,
    /// An array of one, as the original service's library wrote it: pages written for it
    /// read `aud[0]` (of a plain string that would be its first character).
    aud: [&'a str; 1],
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// The claims read back; `jti` and `aud` are not needed to verify, so tokens differing only
/// there (`aud` as a string or an array, as different libraries write it) still decode.
#[derive(Deserialize)]
struct VerifiedClaims {
    sub: String,
    #[serde(rename = "randId")]
    rand_id: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// How far in the future a token's `iat` and `nbf` may lie: the clocks of a cluster's nodes
/// differ a little, but a token "issued" later than that was not issued by us.
pub const CLOCK_LEEWAY_SECS: u64 = 60;

impl JwtTokens {
    /// Tokens signed with `secret`, naming `issuer` as `iss` (and accepting only that issuer),
    /// valid for `ttl` from issue ([`DEFAULT_TTL`] is the usual choice).
    pub fn new(secret: &[u8], issuer: String, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        validation.validate_aud = false;
        // Time is checked in `verify` against `now`, so tests can move the clock and expiry
        // can be told apart from other failures with a single decode.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        JwtTokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer,
            ttl,
            validation,
            now: Arc::new(system_now),
        }
    }

    /// Replaces the clock (seconds since the Unix epoch), e.g. to test expiry without waiting.
    pub fn with_clock(mut self, now: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.now = Arc::new(now);
        self
    }

    /// A fresh random secret of [`SECRET_LEN`] bytes from the OS generator, for a node started
    /// without a configured one (its tokens then die with it).
    pub fn generate_secret() -> Vec<u8> {
        let mut secret = vec![0; SECRET_LEN];
        rand::rng().fill_bytes(&mut secret);
        secret
    }

    /// The `iss` this instance writes and accepts.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// How long issued tokens are valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

impl fmt::Debug for JwtTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys are left out: this may end up in a log.
        f.debug_struct("JwtTokens")
            .field("issuer", &self.issuer)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Tokens for JwtTokens {
    fn issue(&self, identity: &Identity, audience: &str) -> String {
        let now = (self.now)();
        let claims = IssuedClaims {
            jti: uuid::Uuid::new_v4().to_string(),
            iss: &self.issuer,
            sub: &identity.name_tag,
            rand_id: &identity.rand_id,
            aud: [audience],
            iat: now,
            nbf: now,
            exp: now.saturating_add(self.ttl.as_secs()),
        };
        // Invariant: HMAC signing takes a key of any length and these claims are plain
        // strings and integers, so encoding cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    fn verify_token(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let claims =
            jsonwebtoken::decode::<VerifiedClaims>(token, &self.decoding, &self.validation)
                .map_err(|_| TokenError::Invalid)?
                .claims;
        let identity =
            Identity::from_parts(claims.rand_id, claims.sub).ok_or(TokenError::Invalid)?;
        let now = (self.now)();
        let latest = now.saturating_add(CLOCK_LEEWAY_SECS);
        if claims.nbf > latest || claims.iat > latest {
            return Err(TokenError::Invalid);
        }
        // RFC 7519: not accepted "on or after" `exp`.
        if now >= claims.exp {
            return Err(TokenError::Expired(identity));
        }
        Ok(VerifiedToken {
            identity,
            expires_at: claims.exp,
        })
    }
}

fn system_now() -> u64 {
    // Before 1970 only on a broken clock: then every token looks young, which the `nbf`
    // check turns into Invalid rather than a panic.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const START: u64 = 1_800_000_000;

    fn identity() -> Identity {
        Identity {
            rand_id: "Wren42".to_owned(),
            name_tag: "#A1B2C3".to_owned(),
        }
    }

    /// Tokens with a clock the test moves.
    fn tokens_at(clock: &Arc<AtomicU64>) -> JwtTokens {
        let clock = clock.clone();
        JwtTokens::new(SECRET, "rtchat-test".to_owned(), Duration::from_secs(60))
            .with_clock(move || clock.load(Ordering::SeqCst))
    }

    fn payload(token: &str) -> serde_json::Value {
        use base64_url::decode;
        let part = token.split('.').nth(1).expect("payload part");
        serde_json::from_slice(&decode(part)).expect("payload json")
    }

    /// Base64url without padding, enough to read and forge tokens in tests.
    mod base64_url {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

        pub fn encode(bytes: &[u8]) -> String {
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
                for i in 0..=chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
                }
            }
            out
        }

        pub fn decode(text: &str) -> Vec<u8> {
            let values: Vec<u32> = text
                .bytes()
                .map(|c| ALPHABET.iter().position(|&a| a == c).expect("base64url") as u32)
                .collect();
            let mut out = Vec::new();
            for chunk in values.chunks(4) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |n, (i, &v)| n | (v << (18 - 6 * i)));
                for i in 0..chunk.len() - 1 {
                    out.push((n >> (16 - 8 * i)) as u8);
                }
            }
            out
        }
    }

    #[test]
    fn verify_token_tells_the_exp_a_session_ends_at() {
        let clock = Arc::new(AtomicU64::new(START));
        let tokens = tokens_at(&clock);
        let token = tokens.issue(&identity(), "192.168.1.2");
        assert_eq!(
            tokens.verify_token(&token),
            Ok(VerifiedToken {
                identity: identity(),
                expires_at: START + 60,
            })
        );
    }

    #[test]
    fn issue_then_verify_round_trips_the_identity() {
        let clock = Arc::new(AtomicU64::new(START));
        let tokens = tokens_at(&clock);
        let token = tokens.issue(&identity(), "192.168.1.2");
        assert_eq!(tokens.verify(&token), Ok(identity()));
    }

    #[test]
    fn claims_are_the_contract() {
        let clock = Arc::new(AtomicU64::new(START));
        let token = tokens_at(&clock).issue(&identity(), "192.168.1.2");
        let claims = payload(&token);
        assert_eq!(claims["iss"], "rtchat-test");
        assert_eq!(claims["sub"], "#A1B2C3");
        assert_eq!(claims["randId"], "Wren42");
        assert_eq!(claims["aud"], serde_json::json!(["192.168.1.2"]));
        assert_eq!(claims["iat"], START);
        assert_eq!(claims["nbf"], START);
        assert_eq!(claims["exp"], START + 60);
        let jti = claims["jti"].as_str().expect("jti");
        let jti = uuid::Uuid::parse_str(jti).expect("uuid");
        assert_eq!(jti.get_version_num(), 4);
        let header: serde_json::Value = serde_json::from_slice(&base64_url::decode(
            token.split('.').next().expect("header"),
        ))
        .expect("header json");
        assert_eq!(header["alg"], "HS256");
    }

    #[test]
    fn every_token_has_its_own_jti() {
        let clock = Arc::new(AtomicU64::new(START));
        let tokens = tokens_at(&clock);
        let a = payload(&tokens.issue(&identity(), "x"));
        let b = payload(&tokens.issue(&identity(), "x"));
        assert_ne!(a["jti"], b["jti"]);
    }

    #[test]
    fn aud_as_a_string_or_an_array_both_verify() {
        let sign = |aud: serde_json::Value| {
            let claims = serde_json::json!({
                "jti": "j", "iss": "rtchat-test", "sub": "#A1B2C3", "randId": "Wren42",
                "aud": aud, "iat": START, "nbf": START, "exp": START + 600,
            });
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(SECRET),
            )
            .expect("sign")
        };
        let clock = Arc::new(AtomicU64::new(START));
        let tokens = tokens_at(&clock);
        assert_eq!(
            tokens.verify(&sign(serde_json::json!("10.0.0.1"))),
            Ok(identity())
        );
        assert_eq!(
            tokens.verify(&sign(serde_json::json!(["10.0.0.1"]))),
            Ok(identity())
        );
    }

    #[test]
    fn audience_is_not_checked() {
        let clock = Arc::new(AtomicU64::new(START));
        let tokens = tokens_at(&clock);
        let token = tokens.issue(&identity(), "10.0.0.1");
        // Verified from anywhere: the address is not an input of verify at all.
        assert_eq!(tokens.verify(&token), Ok(identity()));
    }

    #[test]
    fn expired_token_keeps_its_identity() {
        let clock = Arc::new(AtomicU64::new(START));
        let tokens = tokens_at(&clock);
        let token = tokens.issue(&identity(), "x");
        clock.store(START + 59, Ordering::SeqCst);
        assert_eq!(tokens.verify(&token), Ok(identity()));
        clock.store(START + 60, Ordering::SeqCst);
        assert_eq!(tokens.verify(&token), Err(TokenError::Expired(identity())));
    }

    #[test]
    fn a_token_from_a_node_a_little_ahead_is_valid_one_from_the_future_is_not() {
        let clock = Arc::new(AtomicU64::new(START));
        let token = tokens_at(&clock).issue(&identity(), "x");
        clock.store(START - CLOCK_LEEWAY_SECS, Ordering::SeqCst);
        assert_eq!(tokens_at(&clock).verify(&token), Ok(identity()));
        clock.store(START - CLOCK_LEEWAY_SECS - 1, Ordering::SeqCst);
        assert_eq!(tokens_at(&clock).verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn a_signed_token_whose_iat_lies_in_the_future_is_invalid() {
        let sign = |iat: u64| {
            let claims = serde_json::json!({
                "jti": "j", "iss": "rtchat-test", "sub": "#A1B2C3", "randId": "Wren42",
                "aud": "x", "iat": iat, "nbf": START, "exp": START + 600,
            });
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(SECRET),
            )
            .expect("sign")
        };
        let clock = Arc::new(AtomicU64::new(START));
        let tokens = tokens_at(&clock);
        assert_eq!(tokens.verify(&sign(START)), Ok(identity()));
        assert_eq!(
            tokens.verify(&sign(START + CLOCK_LEEWAY_SECS + 1)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn wrong_secret_is_invalid() {
        let clock = Arc::new(AtomicU64::new(START));
        let token = tokens_at(&clock).issue(&identity(), "x");
        let other = JwtTokens::new(
            b"another secret entirely, 32 byte",
            "rtchat-test".to_owned(),
            DEFAULT_TTL,
        );
        assert_eq!(other.verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn expired_with_wrong_secret_is_invalid_not_expired() {
        let clock = Arc::new(AtomicU64::new(START));
        let token = tokens_at(&clock).issue(&identity(), "x");
        let other = JwtTokens::new(
            b"another secret entirely, 32 byte",
            "rtchat-test".to_owned(),
            DEFAULT_TTL,
        )
        .with_clock(|| START + 1_000_000);
        assert_eq!(other.verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn wrong_issuer_is_invalid() {
        let clock = Arc::new(AtomicU64::new(START));
        let token = tokens_at(&clock).issue(&identity(), "x");
        let other =
            JwtTokens::new(SECRET, "someone-else".to_owned(), DEFAULT_TTL).with_clock(|| START);
        assert_eq!(other.verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn garbage_is_invalid() {
        let clock = Arc::new(AtomicU64::new(START));
        let tokens = tokens_at(&clock);
        for garbage in [
            "",
            "null",
            "abc",
            "a.b.c",
            "....",
            "eyJhbGciOiJIUzI1NiJ9.e30.",
            "é.é.é",
        ] {
            assert_eq!(
                tokens.verify(garbage),
                Err(TokenError::Invalid),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn alg_none_is_invalid() {
        let clock = Arc::new(AtomicU64::new(START));
        let tokens = tokens_at(&clock);
        let token = tokens.issue(&identity(), "x");
        let payload_part = token.split('.').nth(1).expect("payload");
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"None"}"#,
            r#"{"alg":"HS512"}"#,
        ] {
            let forged = format!("{}.{payload_part}.", base64_url::encode(header.as_bytes()));
            assert_eq!(tokens.verify(&forged), Err(TokenError::Invalid), "{header}");
        }
    }

    #[test]
    fn tampered_payload_is_invalid() {
        let clock = Arc::new(AtomicU64::new(START));
        let tokens = tokens_at(&clock);
        let token = tokens.issue(&identity(), "x");
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut claims = payload(&token);
        claims["randId"] = "Mallory1".into();
        parts[1] = base64_url::encode(&serde_json::to_vec(&claims).expect("json"));
        assert_eq!(tokens.verify(&parts.join(".")), Err(TokenError::Invalid));
    }

    #[test]
    fn malformed_identity_claims_are_invalid() {
        let clock = Arc::new(AtomicU64::new(START));
        let tokens = tokens_at(&clock);
        for bad in [
            Identity {
                rand_id: "Wren42".to_owned(),
                name_tag: "A1B2C3".to_owned(),
            },
            Identity {
                rand_id: "Wren42".to_owned(),
                name_tag: "#a1b2c3".to_owned(),
            },
            Identity {
                rand_id: String::new(),
                name_tag: "#A1B2C3".to_owned(),
            },
        ] {
            let token = tokens.issue(&bad, "x");
            assert_eq!(tokens.verify(&token), Err(TokenError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn generated_secrets_are_random_and_sized() {
        let (a, b) = (JwtTokens::generate_secret(), JwtTokens::generate_secret());
        assert_eq!(a.len(), SECRET_LEN);
        assert_ne!(a, b);
    }

    #[test]
    fn real_clock_accepts_a_fresh_token() {
        let tokens = JwtTokens::new(SECRET, "rtchat".to_owned(), DEFAULT_TTL);
        let token = tokens.issue(&identity(), "x");
        assert_eq!(tokens.verify(&token), Ok(identity()));
        assert!(!format!("{tokens:?}").contains("0123456789"));
    }
}
