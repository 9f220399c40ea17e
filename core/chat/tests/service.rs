//! The service's synchronous side: tokens, identities and ids (its use cases that wait on
//! the ports are tested with the driver, which runs them).

mod common;

use common::*;
use rtchat_core::{ChatConfig, ChatError, InitOutcome, is_valid_name_tag};
use std::net::IpAddr;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

#[test]
fn init_without_token_issues_a_new_identity_for_the_client_address() {
    let node = Node::new();
    for bearer in [None, Some("null"), Some(""), Some("  ")] {
        let InitOutcome::Issued(token) = node.service.init(bearer, ip("192.168.1.7")) else {
            panic!("expected Issued for {bearer:?}");
        };
        assert_eq!(FakeTokens::audience(&token), "192.168.1.7");
        let identity = node.service.authenticate(&token).expect("valid");
        assert!(is_valid_name_tag(&identity.name_tag));
    }
}

#[test]
fn init_outcomes_for_valid_expired_and_invalid_tokens() {
    let node = Node::new();
    let valid = FakeTokens::valid(&alice());
    assert_eq!(
        node.service.init(Some(&valid), ip("10.0.0.1")),
        InitOutcome::Valid(valid.clone())
    );

    let InitOutcome::Reissued(token) = node
        .service
        .init(Some(&FakeTokens::expired(&alice())), ip("10.0.0.1"))
    else {
        panic!("expected Reissued");
    };
    assert_eq!(
        node.service.authenticate(&token),
        Ok(alice()),
        "same identity, new token"
    );

    assert_eq!(
        node.service.init(Some("garbage"), ip("10.0.0.1")),
        InitOutcome::Invalid
    );
}

#[test]
fn authenticate_maps_token_errors() {
    let node = Node::new();
    assert_eq!(
        node.service.authenticate(&FakeTokens::valid(&bob())),
        Ok(bob())
    );
    assert_eq!(
        node.service.authenticate(&FakeTokens::expired(&bob())),
        Err(ChatError::ExpiredToken)
    );
    assert_eq!(node.service.authenticate("x"), Err(ChatError::InvalidToken));
    assert_eq!(
        node.service.authenticate("null"),
        Err(ChatError::InvalidToken)
    );
}

#[test]
fn identities_differ_between_clients() {
    let node = Node::new();
    let tokens: std::collections::HashSet<String> = (0..50)
        .map(|_| match node.service.init(None, ip("10.0.0.1")) {
            InitOutcome::Issued(token) => token,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(tokens.len() > 45);
}

#[test]
fn an_oversized_token_is_invalid_on_every_path_before_it_is_decoded() {
    let node = Node::new();
    // Well formed for the fake verifier, but too long: refused without being looked at.
    let padding = "x".repeat(rtchat_core::MAX_TOKEN_BYTES);
    let huge = format!("valid|Wren1|#AAAAAA|{padding}");
    assert_eq!(
        node.service.authenticate(&huge),
        Err(ChatError::InvalidToken)
    );
    assert_eq!(
        node.service.init(Some(&huge), ip("10.0.0.1")),
        InitOutcome::Invalid
    );
    let fits = format!("valid|Wren1|#AAAAAA|{}", "x".repeat(100));
    assert!(node.service.authenticate(&fits).is_ok());
}

#[test]
fn seeds_make_identities_reproducible() {
    let config = ChatConfig {
        seed: [7; 32],
        ..ChatConfig::default()
    };
    let a = Node::with_config(config.clone());
    let b = Node::with_config(config);
    assert_eq!(
        a.service.init(None, ip("10.0.0.1")),
        b.service.init(None, ip("10.0.0.1"))
    );
}
