//! `GET /metrics`: scraped after real traffic over WebSocket and parsed; every count moves
//! the way the traffic says.

mod common;

use common::{StompClient, TestServer};
use rtchat_stomp::Command;
use std::collections::HashMap;

/// The samples of an OpenMetrics text: `name{labels}` to value. Fails on a line that is
/// neither a comment nor `series value`.
fn parse(text: &str) -> HashMap<String, f64> {
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    let mut samples = HashMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value.parse().expect("a number");
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "metric name {series:?}"
        );
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "{series} twice"
        );
    }
    samples
}

async fn scrape(server: &TestServer, at: Option<std::net::SocketAddr>) -> HashMap<String, f64> {
    let response =
        common::request_at(at.unwrap_or(server.addr), "GET", "/metrics", &[], None).await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .head
            .contains("content-type: application/openmetrics-text"),
        "{}",
        response.head
    );
    parse(response.body.as_str().expect("text"))
}

fn get(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing from {samples:#?}"))
}

#[tokio::test]
async fn counts_follow_connections_sends_deliveries_and_errors() {
    let server = TestServer::start().await;
    let before = scrape(&server, None).await;
    assert_eq!(
        get(&before, "rtchat_connections{transport=\"websocket\"}"),
        0.0
    );
    assert_eq!(get(&before, "rtchat_deliveries_total"), 0.0);

    let token = server.token().await;
    let mut alice = StompClient::connect(&server.ws_url(), &token).await;
    alice
        .send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:s\n\n\0")
        .await;
    loop {
        if alice.frame().await.command == Command::Receipt {
            break;
        }
    }
    let mut bob = StompClient::connect(&server.ws_url(), &server.token().await).await;
    bob.send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:s\n\n\0")
        .await;
    loop {
        if bob.frame().await.command == Command::Receipt {
            break;
        }
    }
    for n in 0..3 {
        alice
            .send(&format!(
                "SEND\ndestination:/pub/chat\nreceipt:m{n}\ncontent-type:application/json\n\n{{\"roomId\":\"lobby\",\"message\":\"hi {n}\"}}\0"
            ))
            .await;
    }
    // A refused one: the room does not exist.
    alice
        .send("SEND\ndestination:/pub/chat\nreceipt:bad\n\n{\"roomId\":\"nowhere\",\"message\":\"x\"}\0")
        .await;
    // Bob sees the three messages (so the deliveries were made).
    let mut seen = 0;
    while seen < 3 {
        let frame = bob.frame().await;
        if frame.command == Command::Message
            && frame.get("destination") == Some("/sub/channel/lobby")
        {
            seen += 1;
        }
    }
    // Alice's answers: three RECEIPTs, then the refusal (an ERROR: she has no error queue).
    let mut receipts = 0;
    let error = loop {
        let frame = alice.frame().await;
        match frame.command {
            Command::Receipt => receipts += 1,
            Command::Error => break frame,
            _ => {}
        }
    };
    assert_eq!(receipts, 3);
    assert_eq!(error.get("message"), Some("UNKNOWN_ROOM"));
    alice.closed().await;

    let during = scrape(&server, None).await;
    assert_eq!(
        get(&during, "rtchat_connections{transport=\"websocket\"}"),
        1.0
    );
    assert_eq!(get(&during, "rtchat_subscriptions"), 1.0);
    assert_eq!(
        get(&during, "rtchat_sends_accepted_total{outcome=\"stored\"}"),
        3.0
    );
    assert_eq!(
        get(
            &during,
            "rtchat_sends_refused_total{reason=\"UNKNOWN_ROOM\"}"
        ),
        1.0
    );
    assert_eq!(
        get(&during, "rtchat_errors_total{reason=\"UNKNOWN_ROOM\"}"),
        1.0
    );
    // Each of the three reached both subscribers (alice's own may be cut by her ERROR, so at
    // least bob's three and some of alice's).
    assert!(get(&during, "rtchat_deliveries_total") >= 3.0);
    assert_eq!(get(&during, "rtchat_store_append_batch_size_sum"), 3.0);
    assert!(get(&during, "rtchat_store_append_seconds_count") >= 1.0);
    assert!(get(&during, "rtchat_broker_publish_seconds_count") >= 1.0);

    // A protocol error is counted by its kind, not by what the peer wrote.
    let mut mallory = StompClient::open(&server.ws_url(), "v12.stomp").await;
    mallory.send("HELLO\n\n\0").await;
    assert_eq!(mallory.frame().await.command, Command::Error);
    mallory.closed().await;
    drop(bob);
    let mut after = scrape(&server, None).await;
    for _ in 0..50 {
        if get(&after, "rtchat_connections{transport=\"websocket\"}") == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        after = scrape(&server, None).await;
    }
    assert_eq!(
        get(&after, "rtchat_connections{transport=\"websocket\"}"),
        0.0
    );
    assert_eq!(get(&after, "rtchat_subscriptions"), 0.0);
    assert_eq!(
        get(&after, "rtchat_errors_total{reason=\"protocol_error\"}"),
        1.0
    );
    assert!(!after.keys().any(|series| series.contains("HELLO")));
    server.stop().await;
}

#[tokio::test]
async fn metrics_bind_moves_the_metrics_off_the_public_port() {
    let mut config = common::config();
    config.metrics_bind = Some("127.0.0.1:0".parse().expect("address"));
    let server = TestServer::start_with(config).await;
    let metrics_addr = server.metrics_addr.expect("metrics address");
    assert_ne!(metrics_addr, server.addr);
    let samples = scrape(&server, Some(metrics_addr)).await;
    assert!(samples.contains_key("rtchat_deliveries_total"));
    assert_eq!(server.get("/metrics").await.status, 404);
    server.stop().await;
}
