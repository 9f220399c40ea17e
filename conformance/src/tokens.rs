//! Tokens for the named users of transcripts, minted by the JWT adapter itself (so the suite
//! also checks that what it issues, it accepts): good ones as the server would issue them,
//! expired ones with the adapter's clock set two hours back, bad ones with another secret.

use rtchat_chat::{Identity, Tokens};
use rtchat_jwt::JwtTokens;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The secret every transcript's server is configured with.
pub const SECRET: &str = "conformance-secret";
/// The secret of `{bad-token}`.
const OTHER_SECRET: &str = "not-the-conformance-secret";
/// The address in the tokens' `aud`.
const AUDIENCE: &str = "127.0.0.1";

/// Named users with fixed identities, so snapshots show who said what.
const KNOWN: &[(&str, &str, &str)] = &[
    ("alice", "Alice", "#A11CE0"),
    ("bob", "Bob", "#B0B000"),
    ("carol", "Carol", "#CA7010"),
    ("dave", "Dave", "#DA7E00"),
    ("eve", "Eve", "#E7E000"),
];

/// The identity of the user called `name` in transcripts: fixed for the known names, and
/// derived from the name (capitalised, tag from a hash) for any other.
pub fn identity(name: &str) -> Identity {
    if let Some((_, rand_id, name_tag)) = KNOWN.iter().find(|(known, _, _)| *known == name) {
        return Identity {
            rand_id: (*rand_id).to_owned(),
            name_tag: (*name_tag).to_owned(),
        };
    }
    let mut chars = name.chars();
    let rand_id = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Anonymous".to_owned(),
    };
    // FNV-1a: stable across runs and platforms.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    Identity {
        rand_id,
        name_tag: format!("#{:06X}", hash & 0x00FF_FFFF),
    }
}

/// Mints the tokens a transcript asks for.
pub struct TokenMint {
    issuer: String,
    tokens: JwtTokens,
}

impl TokenMint {
    /// Tokens as the server with `issuer` (its node name) and [`SECRET`] issues them.
    pub fn new(issuer: &str) -> Self {
        TokenMint {
            issuer: issuer.to_owned(),
            tokens: JwtTokens::new(
                SECRET.as_bytes(),
                issuer.to_owned(),
                Duration::from_secs(3600),
            ),
        }
    }

    /// A valid token for `name`, issued by the adapter.
    pub fn valid(&self, name: &str) -> String {
        self.tokens.issue(&identity(name), AUDIENCE)
    }

    /// A token for `name`, signed with the server's secret, that expired an hour ago: issued
    /// by the adapter with its clock two hours back and a one-hour lifetime.
    pub fn expired(&self, name: &str) -> String {
        let two_hours_ago = unix_now().saturating_sub(2 * 3600);
        JwtTokens::new(
            SECRET.as_bytes(),
            self.issuer.clone(),
            Duration::from_secs(3600),
        )
        .with_clock(move || two_hours_ago)
        .issue(&identity(name), AUDIENCE)
    }

    /// A token for `name`, valid in time, signed with a secret the server does not know.
    pub fn foreign(&self, name: &str) -> String {
        JwtTokens::new(
            OTHER_SECRET.as_bytes(),
            self.issuer.clone(),
            Duration::from_secs(3600),
        )
        .issue(&identity(name), AUDIENCE)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_fixed_and_well_formed() {
        assert_eq!(identity("alice").rand_id, "Alice");
        assert_eq!(identity("bob").name_tag, "#B0B000");
        let other = identity("zed");
        assert_eq!(other, identity("zed"));
        assert_eq!(other.rand_id, "Zed");
        assert!(rtchat_chat::is_valid_name_tag(&other.name_tag));
        for (name, _, _) in KNOWN {
            assert!(rtchat_chat::is_valid_name_tag(&identity(name).name_tag));
        }
    }
}
