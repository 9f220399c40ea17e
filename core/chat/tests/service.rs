//! The service's synchronous side: tokens, identities and ids (its use cases that wait on
//! the ports are tested with the driver, which runs them).

mod common;

use common::*;
use rtchat_chat::{ChatConfig, ChatError, InitOutcome, is_valid_name_tag};
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
fn refresh_gives_a_valid_token_a_new_one_for_the_same_identity_and_never_a_new_identity() {
    let node = Node::new();
    let valid = FakeTokens::valid(&alice());
    let InitOutcome::Refreshed { token, identity } = node.service.refresh(&valid, ip("10.0.0.2"))
    else {
        panic!("expected Refreshed");
    };
    assert_eq!(identity, alice());
    assert_eq!(FakeTokens::audience(&token), "10.0.0.2", "newly issued");
    assert_eq!(node.service.authenticate(&token), Ok(alice()));

    // Expired and invalid tokens get what plain /init answers.
    let InitOutcome::Reissued(token) = node
        .service
        .refresh(&FakeTokens::expired(&alice()), ip("10.0.0.2"))
    else {
        panic!("expected Reissued");
    };
    assert_eq!(node.service.authenticate(&token), Ok(alice()));
    for bad in [
        "garbage",
        "",
        "null",
        &"x".repeat(rtchat_chat::MAX_TOKEN_BYTES + 1),
    ] {
        assert_eq!(
            node.service.refresh(bad, ip("10.0.0.2")),
            InitOutcome::Invalid,
            "{bad:.20}"
        );
    }
}

#[test]
fn verify_token_tells_the_expiry() {
    let node = Node::new();
    let verified = node
        .service
        .verify_token(&FakeTokens::valid_for(&bob(), 90))
        .expect("valid");
    assert_eq!(verified.identity, bob());
    assert_eq!(verified.expires_at, NOW_UNIX + 90);
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
    let padding = "x".repeat(rtchat_chat::MAX_TOKEN_BYTES);
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

#[test]
fn a_room_is_for_whoever_may_enter_it() {
    let node = Node::new();
    assert_eq!(
        node.service
            .room_for(&alice(), "lobby")
            .map(|r| r.to_string()),
        Ok("lobby".to_owned())
    );
    assert_eq!(
        node.service.room_for(&alice(), "../x"),
        Err(ChatError::InvalidRoomId)
    );
    let pair = node.private_room("#AAAAAA", "#BBBBBB");
    assert!(node.service.room_for(&bob(), pair.as_str()).is_ok());
    assert_eq!(
        node.service
            .room_for(&identity("Carol3", "#CCCCCC"), pair.as_str()),
        Err(ChatError::Forbidden)
    );
}

#[test]
fn history_pages_are_1_to_the_configured_limit() {
    let node = Node::new();
    assert!(node.service.check_history_limit(1).is_ok());
    assert!(node.service.check_history_limit(100).is_ok());
    for limit in [0, 101] {
        assert!(matches!(
            node.service.check_history_limit(limit),
            Err(ChatError::BadRequest(_))
        ));
    }
}

#[test]
fn a_posted_message_is_validated_and_keyed_uniquely() {
    let node = Node::new();
    let lobby = node.service.room_for(&alice(), "lobby").expect("room");
    let first = node
        .service
        .new_message(&alice(), ip("192.168.3.4"), lobby.clone(), "  hello  ")
        .expect("valid");
    assert_eq!(first.message, "hello");
    assert_eq!(first.author, alice());
    assert_eq!(first.created_at, NOW);
    assert_eq!(first.ip_address, "192.168");
    let second = node
        .service
        .new_message(&alice(), ip("192.168.3.4"), lobby.clone(), "hello")
        .expect("valid");
    assert_ne!(first.key, second.key);
    assert_eq!(
        node.service
            .new_message(&alice(), ip("::1"), lobby.clone(), " \n "),
        Err(ChatError::EmptyMessage)
    );
    assert_eq!(
        node.service
            .new_message(&alice(), ip("::1"), lobby, &"é".repeat(2001)),
        Err(ChatError::MessageTooLong { max: 2000 })
    );
}

#[test]
fn a_public_room_has_a_valid_name_and_a_given_or_fresh_id() {
    let node = Node::new();
    let garden = node
        .service
        .public_room(" Garden ", Some(" garden "))
        .expect("room");
    assert_eq!(
        (garden.room_id.as_str(), garden.name.as_str()),
        ("garden", "Garden")
    );
    let generated = node.service.public_room("Anywhere", None).expect("room");
    let id = generated.room_id.as_str();
    assert!(id.starts_with("room-") && id.len() == 17, "{id}");
    assert!(id[5..].bytes().all(|b| b.is_ascii_hexdigit()));
    let again = node.service.public_room("Anywhere", None).expect("room");
    assert_ne!(
        again.room_id, generated.room_id,
        "asking again gives another"
    );
    assert!(matches!(
        node.service.public_room("  ", None),
        Err(ChatError::BadRequest(_))
    ));
    for id in ["bad id", "entry", "private-0123456789abcdef"] {
        assert_eq!(
            node.service.public_room("Name", Some(id)),
            Err(ChatError::InvalidRoomId),
            "{id:?}"
        );
    }
}

#[test]
fn a_private_room_is_asked_for_by_one_of_its_two() {
    let node = Node::new();
    let ab = node
        .service
        .private_room_for(&alice(), "#AAAAAA", "#BBBBBB")
        .expect("room");
    let ba = node
        .service
        .private_room_for(&bob(), " #BBBBBB ", "#AAAAAA")
        .expect("room");
    assert_eq!(ab, ba);
    assert!(ab.room_id.is_private());
    assert_eq!(
        node.service
            .private_room_for(&identity("Carol3", "#CCCCCC"), "#AAAAAA", "#BBBBBB"),
        Err(ChatError::Forbidden)
    );
    assert!(matches!(
        node.service
            .private_room_for(&alice(), "#AAAAAA", "#AAAAAA"),
        Err(ChatError::BadRequest(_))
    ));
}

#[test]
fn rooms_are_capped_by_the_configuration() {
    let node = Node::with_config(ChatConfig {
        max_rooms: 3,
        ..ChatConfig::default()
    });
    assert_eq!(node.service.check_room_capacity(2), Ok(()));
    assert_eq!(
        node.service.check_room_capacity(3),
        Err(ChatError::TooManyRooms)
    );
}
