//! STOMP over WebSocket against a real server: the "done when" scenario of the chat issue, the
//! subprotocol negotiation, and a graceful shutdown.

mod common;

use common::{StompClient, TestServer};
use rtchat_stomp::Command;
use serde_json::Value;

#[tokio::test]
async fn a_client_with_a_token_from_init_chats_with_itself() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let mut client = StompClient::connect(&server.ws_url(), &token).await;
    assert_eq!(client.protocol.as_deref(), Some("v12.stomp"));

    client
        .send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:subscribed\n\n\0")
        .await;
    let receipt = client.frame().await;
    assert_eq!(receipt.command, Command::Receipt);
    assert_eq!(receipt.get("receipt-id"), Some("subscribed"));

    // The body tries to forge a name: the server must take it from the token.
    client
        .send("SEND\ndestination:/pub/chat\ncontent-type:application/json\nreceipt:sent\n\n{\"roomId\":\"lobby\",\"message\":\"hello <b>world</b>\",\"randId\":\"Mallory\",\"nameTag\":\"#000000\"}\0")
        .await;
    let mut got_receipt = false;
    let mut message = None;
    while !(got_receipt && message.is_some()) {
        let frame = client.frame().await;
        match frame.command {
            Command::Receipt => {
                assert_eq!(frame.get("receipt-id"), Some("sent"));
                got_receipt = true;
            }
            Command::Message => message = Some(frame),
            other => panic!("unexpected {other}: {frame:?}"),
        }
    }
    let message = message.expect("message");
    assert_eq!(message.get("destination"), Some("/sub/channel/lobby"));
    assert_eq!(message.get("subscription"), Some("0"));
    assert!(message.get("message-id").is_some());
    let body: Value = serde_json::from_slice(&message.body).expect("JSON body");
    assert_eq!(body["message"], "hello <b>world</b>");
    assert_eq!(body["roomId"], "lobby");
    assert_ne!(body["randId"], "Mallory");
    assert_ne!(body["nameTag"], "#000000");
    assert_eq!(body["ipAddress"], "127.0");
    assert!(body["id"].is_u64());
    assert!(body["createdAt"].is_string());

    // And it is in the history the page loads.
    let history = server
        .request(
            "GET",
            "/message?roomId=lobby&limit=10",
            &[("Authorization", &format!("Bearer {token}"))],
            None,
        )
        .await;
    assert_eq!(history.body["response"][0]["id"], body["id"]);
    server.stop().await;
}

#[tokio::test]
async fn the_best_shared_stomp_subprotocol_is_selected() {
    let server = TestServer::start().await;
    let client = StompClient::open(&server.ws_url(), "v10.stomp, v11.stomp").await;
    assert_eq!(client.protocol.as_deref(), Some("v11.stomp"));
    let client = StompClient::open(&server.ws_url(), "v10.stomp").await;
    assert_eq!(client.protocol.as_deref(), Some("v10.stomp"));
    // Clients that name no subprotocol still get STOMP.
    let client = StompClient::open(&server.ws_url(), "").await;
    assert_eq!(client.protocol, None);
    server.stop().await;
}

#[tokio::test]
async fn connect_without_a_token_gets_an_error_and_is_closed() {
    let server = TestServer::start().await;
    let mut client = StompClient::open(&server.ws_url(), "v12.stomp").await;
    client
        .send("CONNECT\naccept-version:1.2\nhost:rtchat\n\n\0")
        .await;
    let error = client.frame().await;
    assert_eq!(error.command, Command::Error);
    assert!(
        error.get("message").is_some_and(|m| m.contains("token")),
        "{error:?}"
    );
    client.closed().await;
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_websockets_with_going_away() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let mut client = StompClient::connect(&server.ws_url(), &token).await;
    let stopping = tokio::spawn(server.stop());
    // The STOMP session is told why first, then the WebSocket goes away.
    let error = client.frame().await;
    assert_eq!(error.command, Command::Error);
    assert_eq!(error.get("message"), Some("server shutting down"));
    assert_eq!(client.closed().await, Some(1001));
    stopping.await.expect("server stopped");
}

#[tokio::test]
async fn connections_past_the_limit_get_a_503() {
    let mut config = common::config();
    config.max_connections = 1;
    let server = TestServer::start_with(config).await;
    let token = server.token().await;
    let _first = StompClient::connect(&server.ws_url(), &token).await;
    let refused = tokio_tungstenite::connect_async(server.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_websocket_message_over_the_limit_gets_an_error_saying_so_then_a_close() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let mut client = StompClient::connect(&server.ws_url(), &token).await;
    // One WebSocket message far over the limit (the frame limit is 64 KiB of body).
    let huge = format!(
        "SEND\ndestination:/pub/chat\n\n{{\"roomId\":\"lobby\",\"message\":\"{}\"}}\0",
        "x".repeat(1_000_000)
    );
    client.send(&huge).await;
    let error = client.frame().await;
    assert_eq!(error.command, Command::Error, "{error:?}");
    assert_eq!(error.get("message"), Some("frame too large"));
    client.closed().await;
    server.stop().await;
}

/// What a client saw after `frames`, sent in one WebSocket message or in one message each:
/// every frame until the answers to all of them came (or the ERROR that ends the session), as
/// `RECEIPT r3`, `RATE_LIMITED`, `ERROR <message>`.
async fn answers(
    server: &TestServer,
    frames: &[String],
    pipelined: bool,
    expected: usize,
) -> Vec<String> {
    let token = server.token().await;
    let mut client = StompClient::connect(&server.ws_url(), &token).await;
    // The error queue first, on its own, so refusals are told.
    client
        .send("SUBSCRIBE\nid:errors\ndestination:/user/queue/errors\nreceipt:errors\n\n\0")
        .await;
    assert_eq!(client.frame().await.get("receipt-id"), Some("errors"));
    if pipelined {
        client.send(&frames.concat()).await;
    } else {
        for frame in frames {
            client.send(frame).await;
        }
    }
    let mut seen = Vec::new();
    while seen.len() < expected {
        let frame = client.frame().await;
        match frame.command {
            Command::Receipt => {
                seen.push(format!("RECEIPT {}", frame.get("receipt-id").unwrap_or("")))
            }
            Command::Error => {
                seen.push(format!("ERROR {}", frame.get("message").unwrap_or("")));
                assert_eq!(client.closed().await, Some(1000), "closed after the ERROR");
                break;
            }
            Command::Message if frame.get("destination") == Some("/user/queue/errors") => {
                let body: serde_json::Value =
                    serde_json::from_slice(&frame.body).expect("JSON envelope");
                seen.push(body["type"].as_str().unwrap_or("?").to_owned());
            }
            _ => {}
        }
    }
    seen
}

#[tokio::test]
async fn pipelined_subscribes_get_the_answers_they_get_one_by_one() {
    // One SUBSCRIBE a second: the rest of a burst is refused, whether it came in one
    // WebSocket message or in many (the bucket cannot refill during the test's milliseconds).
    let mut config = common::config();
    config.max_subscribes_per_second = 1;
    let server = TestServer::start_with(config).await;
    let frames: Vec<String> = (0..30)
        .map(|n| format!("SUBSCRIBE\nid:s{n}\ndestination:/sub/channel/lobby\nreceipt:r{n}\n\n\0"))
        .collect();
    // The error queue took the burst's one token.
    let expected: Vec<String> = (0..30).map(|_| "RATE_LIMITED".to_owned()).collect();
    assert_eq!(answers(&server, &frames, true, 30).await, expected);
    assert_eq!(answers(&server, &frames, false, 30).await, expected);
    server.stop().await;

    // No rate limit: the engine's subscription limit (64) ends the session with an ERROR,
    // after the 64 RECEIPTs and before anything else, however the frames came.
    let mut config = common::config();
    config.max_subscribes_per_second = 0;
    let server = TestServer::start_with(config).await;
    // (The 64th is one too many; the client sends nothing after it, since writing to a
    // socket the server has closed makes the kernel reset it, losing the ERROR.)
    let frames: Vec<String> = (0..64)
        .map(|n| format!("SUBSCRIBE\nid:s{n}\ndestination:/sub/presence/lobby\nreceipt:r{n}\n\n\0"))
        .collect();
    let pipelined = answers(&server, &frames, true, 64).await;
    let one_by_one = answers(&server, &frames, false, 64).await;
    assert_eq!(pipelined, one_by_one);
    let receipts = pipelined
        .iter()
        .filter(|a| a.starts_with("RECEIPT"))
        .count();
    assert_eq!(receipts, 63, "{pipelined:?}");
    assert!(
        pipelined
            .last()
            .is_some_and(|last| last.starts_with("ERROR")),
        "{pipelined:?}"
    );
    server.stop().await;
}
