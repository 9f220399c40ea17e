//! A session lives as long as its token, unless refreshed: against a real server over
//! WebSocket, with tokens that expire in seconds (signed with the test secret, as the server
//! would issue them with a very short `--token-ttl-hours`).

mod common;

use common::{SECRET, StompClient, TestServer};
use rtchat_chat::{Identity, Tokens};
use rtchat_stomp::Command;
use serde_json::Value;
use std::time::Duration;

/// Seconds a short-lived token is valid (its `exp` is whole seconds: it expires one to two
/// seconds after it is made).
const SHORT_TTL_SECS: u64 = 2;

fn identity() -> Identity {
    Identity {
        rand_id: "Wren7".to_owned(),
        name_tag: "#A7A7A7".to_owned(),
    }
}

/// A token for [`identity`] that expires within [`SHORT_TTL_SECS`].
fn short_lived_token() -> String {
    rtchat_jwt::JwtTokens::new(
        SECRET.as_bytes(),
        "rtchat".to_owned(),
        Duration::from_secs(SHORT_TTL_SECS),
    )
    .issue(&identity(), "127.0.0.1")
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three JWT parts");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut bits, mut count, mut out) = (0u32, 0, Vec::new());
    for byte in payload.bytes() {
        let value = alphabet.iter().position(|&c| c == byte).expect("base64url") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    serde_json::from_slice(&out).expect("JSON claims")
}

#[tokio::test]
async fn a_session_past_its_tokens_exp_is_closed_with_expired_token() {
    let server = TestServer::start().await;
    let mut client = StompClient::connect(&server.ws_url(), &short_lived_token()).await;
    // Nothing is sent: the server ends the session on its own at the token's exp.
    let error = client.frame().await;
    assert_eq!(error.command, Command::Error, "{error:?}");
    assert_eq!(error.get("message"), Some("EXPIRED_TOKEN"));
    let body = String::from_utf8_lossy(&error.body);
    assert!(body.contains("/init"), "{body}");
    client.closed().await;
    server.stop().await;
}

#[tokio::test]
async fn a_session_refreshed_through_init_and_pub_token_lives_past_the_first_tokens_exp() {
    let server = TestServer::start().await;
    let first = short_lived_token();
    let mut client = StompClient::connect(&server.ws_url(), &first).await;

    let refreshed = server
        .request(
            "GET",
            "/init?refresh=true",
            &[("Authorization", &format!("Bearer {first}"))],
            None,
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(refreshed.body["type"], "SUCCESS_TOKEN_REFRESHED");
    assert_eq!(refreshed.body["success"], true);
    let second = refreshed.body["response"]
        .as_str()
        .expect("a token")
        .to_owned();
    let (old, new) = (claims(&first), claims(&second));
    assert_eq!(new["sub"], old["sub"], "the same identity");
    assert_eq!(new["randId"], old["randId"]);
    assert!(new["exp"].as_u64() > old["exp"].as_u64(), "{new} {old}");

    client
        .send(&format!(
            "SEND\ndestination:/pub/token\ncontent-type:text/plain\nreceipt:refreshed\n\n{second}\0"
        ))
        .await;
    let receipt = client.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    assert_eq!(receipt.get("receipt-id"), Some("refreshed"));

    // Past the first token's exp, the session still works.
    tokio::time::sleep(Duration::from_secs(SHORT_TTL_SECS + 1)).await;
    client
        .send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:subscribed\n\n\0")
        .await;
    let subscribed = client.frame().await;
    assert_eq!(subscribed.command, Command::Receipt, "{subscribed:?}");
    assert_eq!(subscribed.get("receipt-id"), Some("subscribed"));
    client
        .send("SEND\ndestination:/pub/chat\ncontent-type:application/json\nreceipt:sent\n\n{\"roomId\":\"lobby\",\"message\":\"still here\"}\0")
        .await;
    let mut answered = Vec::new();
    while answered.len() < 2 {
        let frame = client.frame().await;
        assert_ne!(frame.command, Command::Error, "{frame:?}");
        answered.push(frame.command);
    }
    assert!(answered.contains(&Command::Receipt) && answered.contains(&Command::Message));
    server.stop().await;
}

#[tokio::test]
async fn a_refresh_with_another_identitys_token_is_refused_on_the_error_queue() {
    let server = TestServer::start().await;
    let mut client = StompClient::connect(&server.ws_url(), &server.token_for("#AAAAAA")).await;
    client
        .send("SUBSCRIBE\nid:e\ndestination:/user/queue/errors\nreceipt:s\n\n\0")
        .await;
    assert_eq!(client.frame().await.command, Command::Receipt);
    let other = server.token_for("#BBBBBB");
    client
        .send(&format!(
            "SEND\ndestination:/pub/token\nreceipt:t\n\n{other}\0"
        ))
        .await;
    let error = client.frame().await;
    assert_eq!(error.get("destination"), Some("/user/queue/errors"));
    assert_eq!(error.get("receipt-id"), Some("t"));
    let body: Value = serde_json::from_slice(&error.body).expect("envelope");
    assert_eq!(body["type"], "FORBIDDEN");
    server.stop().await;
}
