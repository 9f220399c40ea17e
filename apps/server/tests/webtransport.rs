//! STOMP over WebTransport on the same node as the WebSocket (`--webtransport`): users on
//! either transport chat together, `GET /webtransport` tells the URL and the hashes to pin,
//! sessions end with a CLOSE_WEBTRANSPORT_SESSION capsule (code 0 and a reason) on
//! DISCONNECT and on shutdown, and self-signed certificates rotate without breaking
//! sessions. Every wait is bounded.

mod common;

use common::{StompClient, TestServer, WtClient};
use rtchat_driver::Shutdown;
use rtchat_server::assemble;
use rtchat_stomp::Command;
use rtchat_webtransport::{
    CertificateHash, CertificateSource, RotationPolicy, WebTransportConfig, WebTransportServer,
};
use serde_json::Value;
use std::time::Duration;

async fn start() -> TestServer {
    let mut config = common::config();
    config.webtransport = Some("127.0.0.1:0".parse().expect("an address"));
    TestServer::start_with(config).await
}

fn body(frame: &rtchat_stomp::Frame) -> Value {
    serde_json::from_slice(&frame.body).expect("a JSON body")
}

#[tokio::test]
async fn the_offer_names_the_endpoint_and_one_pinnable_hash() {
    let server = start().await;
    let wt_addr = server.wt_addr.expect("WebTransport is on");
    let (url, hashes, offer) = server.webtransport_offer().await;
    assert_eq!(url, format!("https://{wt_addr}/stomp"));
    assert_eq!(hashes.len(), 1);
    let valid_until = offer["validUntil"].as_str().expect("validUntil");
    // RFC 3339 in UTC: such strings order as their times do.
    let in_days = |days| {
        (time::OffsetDateTime::now_utc() + time::Duration::days(days))
            .format(&time::format_description::well_known::Rfc3339)
            .expect("a time")
    };
    assert!(valid_until.ends_with('Z'), "{valid_until}");
    assert!(*valid_until > *in_days(9), "{valid_until}");
    assert!(*valid_until < *in_days(14), "{valid_until}");
    server.stop().await;
}

#[tokio::test]
async fn without_the_flag_there_is_no_offer() {
    let server = TestServer::start().await;
    let response = server.get("/webtransport").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["success"], true);
    assert_eq!(response.body["response"], Value::Null);
    assert_eq!(response.body["type"], "WEBTRANSPORT_OFF");
    assert_eq!(server.wt_addr, None);
    server.stop().await;
}

#[tokio::test]
async fn users_on_either_transport_chat_together() {
    let server = start().await;
    let (url, hashes, _) = server.webtransport_offer().await;

    let mut web = StompClient::connect(&server.ws_url(), &server.token().await).await;
    web.send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:s\n\n\0")
        .await;
    assert_eq!(web.frame().await.command, Command::Receipt);

    let mut quic = WtClient::connect(&url, &hashes, &server.token().await).await;
    quic.send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:s\n\n\0")
        .await;
    assert_eq!(quic.frame().await.command, Command::Receipt);

    quic.send("SEND\ndestination:/pub/chat\ncontent-type:application/json\n\n{\"roomId\":\"lobby\",\"message\":\"from QUIC\"}\0")
        .await;
    for client in [quic.frame().await, web.frame().await] {
        assert_eq!(client.command, Command::Message);
        assert_eq!(body(&client)["message"], "from QUIC");
    }
    web.send("SEND\ndestination:/pub/chat\ncontent-type:application/json\n\n{\"roomId\":\"lobby\",\"message\":\"from TCP\"}\0")
        .await;
    for client in [web.frame().await, quic.frame().await] {
        assert_eq!(client.command, Command::Message);
        assert_eq!(body(&client)["message"], "from TCP");
        assert_eq!(body(&client)["ipAddress"], "127.0");
    }
    server.stop().await;
}

#[tokio::test]
async fn disconnect_ends_the_session_with_code_0_and_a_reason() {
    let server = start().await;
    let (url, hashes, _) = server.webtransport_offer().await;
    let mut client = WtClient::connect(&url, &hashes, &server.token().await).await;
    client.send("DISCONNECT\nreceipt:bye\n\n\0").await;
    let receipt = client.frame().await;
    assert_eq!(receipt.command, Command::Receipt);
    assert_eq!(receipt.get("receipt-id"), Some("bye"));
    assert!(client.next_frame().await.is_none(), "the stream ends");
    assert_eq!(
        client.closed().await,
        Ok((0, rtchat_webtransport::REASON_DONE.to_owned())),
        "a CLOSE_WEBTRANSPORT_SESSION capsule, not a lost connection"
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_tells_the_session_and_closes_it_with_code_0() {
    let server = start().await;
    let (url, hashes, _) = server.webtransport_offer().await;
    let mut client = WtClient::connect(&url, &hashes, &server.token().await).await;
    let stopping = tokio::spawn(server.stop());
    let error = client.frame().await;
    assert_eq!(error.command, Command::Error);
    assert_eq!(error.get("message"), Some("server shutting down"));
    assert_eq!(
        client.closed().await,
        Ok((0, rtchat_webtransport::REASON_GOING_AWAY.to_owned()))
    );
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the server stops in time")
        .expect("the stop task");
}

#[tokio::test]
async fn sessions_on_other_paths_and_unpinned_certificates_are_refused() {
    let server = start().await;
    let (url, hashes, _) = server.webtransport_offer().await;
    let elsewhere = url.replace("/stomp", "/elsewhere");
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        rtchat_webtransport::client::connect(&elsewhere, &hashes),
    )
    .await
    .expect("answered in time");
    assert!(refused.is_err(), "another path is refused");
    let wrong_pin = tokio::time::timeout(
        Duration::from_secs(5),
        rtchat_webtransport::client::connect(&url, &[CertificateHash([7; 32])]),
    )
    .await
    .expect("answered in time");
    assert!(
        wrong_pin.is_err(),
        "a certificate with another hash is refused"
    );
    server.stop().await;
}

#[tokio::test]
async fn certificates_rotate_without_breaking_open_sessions() {
    // Valid for 2 minutes from a minute ago: announced 2 s after start, served 1 s later.
    let policy = RotationPolicy {
        validity: Duration::from_secs(120),
        renew_before: Duration::from_secs(58),
        announce_ahead: Duration::from_secs(1),
    };
    let config = common::config();
    let node = assemble(&config).await.expect("the node assembles");
    let mut wt = WebTransportConfig::new("127.0.0.1:0".parse().expect("an address"));
    wt.certificate = CertificateSource::SelfSigned {
        extra_names: Vec::new(),
        rotation: policy,
    };
    wt.drain = Duration::from_secs(1);
    let server = WebTransportServer::bind(wt).expect("binds");
    let url = format!("https://{}/stomp", server.local_addr().expect("an address"));
    let mut offers = server.offer();
    let first = offers.borrow().hashes.clone();
    assert_eq!(first.len(), 1);
    let shutdown = Shutdown::new();
    let task = tokio::spawn(server.serve(node.service, node.web.driver, shutdown.clone()));

    let token = TestServer::token_for_secret("#AAAAAA");
    let mut before = WtClient::connect(&url, &first, &token).await;

    // Announced: both hashes offered.
    tokio::time::timeout(Duration::from_secs(10), offers.changed())
        .await
        .expect("announced in time")
        .expect("the offer lives");
    let announced = offers.borrow_and_update().hashes.clone();
    assert_eq!(announced.len(), 2, "{announced:?}");
    assert_eq!(announced[0], first[0]);
    let next = announced[1];
    // Switched: the new certificate is served first, the old hash still offered.
    tokio::time::timeout(Duration::from_secs(10), offers.changed())
        .await
        .expect("switched in time")
        .expect("the offer lives");
    assert_eq!(offers.borrow().hashes, vec![next, first[0]]);

    let mut after = WtClient::connect(&url, &[next], &token).await;
    let only_old = tokio::time::timeout(
        Duration::from_secs(5),
        rtchat_webtransport::client::connect(&url, &first),
    )
    .await
    .expect("answered in time");
    assert!(only_old.is_err(), "new handshakes get the new certificate");

    // The session opened before the switch still works, and sees the new one's message.
    before
        .send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:s\n\n\0")
        .await;
    assert_eq!(before.frame().await.command, Command::Receipt);
    after
        .send("SEND\ndestination:/pub/chat\ncontent-type:application/json\n\n{\"roomId\":\"lobby\",\"message\":\"rotated\"}\0")
        .await;
    let message = before.frame().await;
    assert_eq!(body(&message)["message"], "rotated");

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops in time")
        .expect("no panic");
}
