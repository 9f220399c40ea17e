//! `--wt-streams`: in `per-subscription` mode each subscription's MESSAGEs come on a
//! unidirectional stream of its own (opened at its first MESSAGE, finished when it ends) and
//! everything else on the bidirectional stream; `GET /webtransport` says which mode; and
//! chat works end to end through `rtchat-client` in both modes. Every wait is bounded.

mod common;

use bytes::Bytes;
use common::{TestServer, WtClient};
use rtchat_server::WtStreams;
use rtchat_stomp::{Command, Frame, Item, Limits, Parser};
use rtchat_webtransport::CertificateHash;
use rtchat_webtransport::web_transport_quinn::RecvStream;
use serde_json::Value;
use std::time::Duration;

async fn start(streams: WtStreams) -> TestServer {
    let mut config = common::config();
    config.webtransport = Some("127.0.0.1:0".parse().expect("an address"));
    config.wt_streams = streams;
    // A burst of SENDs from one connection.
    config.max_sends_per_second = 1000;
    TestServer::start_with(config).await
}

/// The URL, the hashes and the `streams` `GET /webtransport` gives.
async fn offer(server: &TestServer) -> (String, Vec<CertificateHash>, String) {
    let (url, hashes, offer) = server.webtransport_offer().await;
    let streams = offer["streams"].as_str().expect("streams").to_owned();
    (url, hashes, streams)
}

fn text(frame: &Frame) -> String {
    let body: Value = serde_json::from_slice(&frame.body).expect("a JSON body");
    body["message"].as_str().expect("a message").to_owned()
}

fn send(text: &str) -> String {
    format!(
        "SEND\ndestination:/pub/chat\ncontent-type:application/json\n\n{{\"roomId\":\"lobby\",\"message\":\"{text}\"}}\0"
    )
}

/// A server-opened unidirectional stream, read with its own parser.
struct Uni {
    recv: RecvStream,
    parser: Parser,
}

impl Uni {
    /// The next stream the server opens, within 5 s.
    async fn accept(client: &WtClient) -> Uni {
        let recv = tokio::time::timeout(Duration::from_secs(5), client.stream.session.accept_uni())
            .await
            .expect("a stream within 5 s")
            .expect("a stream");
        Uni {
            recv,
            parser: Parser::new(Limits::default()),
        }
    }

    /// The next frame within 5 s, or `None` once the stream is finished.
    async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.parser.next_item().expect("valid frames") {
                Some(Item::Frame(frame)) => return Some(frame),
                Some(Item::HeartBeat) => panic!("no heart-beats on a subscription's stream"),
                None => {}
            }
            let chunk = tokio::time::timeout(
                Duration::from_secs(5),
                self.recv.read_chunk(64 * 1024, true),
            )
            .await
            .expect("a frame or the end within 5 s")
            .expect("a readable stream");
            match chunk {
                Some(chunk) => self.parser.feed(&chunk.bytes),
                None => {
                    assert!(self.parser.next_item().expect("valid").is_none());
                    return None;
                }
            }
        }
    }
}

#[tokio::test]
async fn per_subscription_mode_gives_each_subscription_a_stream_of_its_own() {
    let server = start(WtStreams::PerSubscription).await;
    let (url, hashes, streams) = offer(&server).await;
    assert_eq!(streams, "per-subscription");
    let mut client = WtClient::connect(&url, &hashes, &server.token().await).await;
    for id in ["0", "1"] {
        client
            .send(&format!(
                "SUBSCRIBE\nid:{id}\ndestination:/sub/channel/lobby\nreceipt:s{id}\n\n\0"
            ))
            .await;
        let receipt = client.frame().await;
        assert_eq!(
            receipt.command,
            Command::Receipt,
            "control frames stay on the bidi stream"
        );
    }
    client.send(&send("first")).await;

    // Two subscriptions, one MESSAGE each: two streams, each carrying its subscription's.
    let mut first = Uni::accept(&client).await;
    let mut second = Uni::accept(&client).await;
    let a = first.next_frame().await.expect("a MESSAGE");
    let b = second.next_frame().await.expect("a MESSAGE");
    for frame in [&a, &b] {
        assert_eq!(frame.command, Command::Message);
        assert_eq!(text(frame), "first");
    }
    let mut subscriptions = [a.get("subscription"), b.get("subscription")];
    subscriptions.sort();
    assert_eq!(subscriptions, [Some("0"), Some("1")]);
    let (mut zero, mut one) = if a.get("subscription") == Some("0") {
        (first, second)
    } else {
        (second, first)
    };

    // Order within a subscription: its stream carries its MESSAGEs in order.
    for n in 0..5 {
        client.send(&send(&format!("n{n}"))).await;
    }
    for stream in [&mut zero, &mut one] {
        for n in 0..5 {
            let frame = stream.next_frame().await.expect("a MESSAGE");
            assert_eq!(text(&frame), format!("n{n}"));
        }
    }

    // UNSUBSCRIBE: a RECEIPT on the bidi stream, and the subscription's stream finishes.
    client.send("UNSUBSCRIBE\nid:0\nreceipt:u0\n\n\0").await;
    let receipt = client.frame().await;
    assert_eq!(receipt.command, Command::Receipt);
    assert_eq!(receipt.get("receipt-id"), Some("u0"));
    assert!(
        zero.next_frame().await.is_none(),
        "finished after its last MESSAGE"
    );

    // The other subscription goes on on its stream; the same id subscribed again gets a new one.
    client
        .send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:again\n\n\0")
        .await;
    assert_eq!(client.frame().await.command, Command::Receipt);
    client.send(&send("second")).await;
    assert_eq!(text(&one.next_frame().await.expect("a MESSAGE")), "second");
    let mut again = Uni::accept(&client).await;
    let frame = again.next_frame().await.expect("a MESSAGE");
    assert_eq!(frame.get("subscription"), Some("0"));
    assert_eq!(text(&frame), "second");

    // DISCONNECT: its RECEIPT on the bidi stream, and every stream ends.
    client.send("DISCONNECT\nreceipt:bye\n\n\0").await;
    let receipt = client.frame().await;
    assert_eq!(receipt.get("receipt-id"), Some("bye"));
    assert!(
        client.next_frame().await.is_none(),
        "no MESSAGE ever came on the bidi stream"
    );
    assert!(one.next_frame().await.is_none());
    assert!(again.next_frame().await.is_none());
    server.stop().await;
}

#[tokio::test]
async fn single_mode_is_the_default_and_opens_no_streams() {
    let mut config = common::config();
    config.webtransport = Some("127.0.0.1:0".parse().expect("an address"));
    let server = TestServer::start_with(config).await;
    let (url, hashes, streams) = offer(&server).await;
    assert_eq!(streams, "single");
    let mut client = WtClient::connect(&url, &hashes, &server.token().await).await;
    client
        .send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:s\n\n\0")
        .await;
    assert_eq!(client.frame().await.command, Command::Receipt);
    client.send(&send("hello")).await;
    let message = client.frame().await;
    assert_eq!(message.command, Command::Message);
    assert_eq!(text(&message), "hello");
    let opened = tokio::time::timeout(
        Duration::from_millis(300),
        client.stream.session.accept_uni(),
    )
    .await;
    assert!(opened.is_err(), "no unidirectional stream in single mode");
    server.stop().await;
}

/// Reads frames from `link` until both subscriptions had the MESSAGE `last` (5 s at most);
/// the MESSAGEs read, per subscription, in order.
async fn messages_through(link: &mut rtchat_client::Link, parser: &mut Parser) -> [Vec<String>; 2] {
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut seen = [Vec::new(), Vec::new()];
        loop {
            while let Some(item) = parser.next_item().expect("whole, valid frames") {
                if let Item::Frame(frame) = item {
                    assert_ne!(frame.command, Command::Error, "{frame:?}");
                    if frame.command == Command::Message {
                        let index = usize::from(frame.get("subscription") == Some("1"));
                        seen[index].push(text(&frame));
                    }
                }
            }
            if seen
                .iter()
                .all(|texts| texts.last().is_some_and(|last| last == "last"))
            {
                return seen;
            }
            let bytes = link.recv().await.expect("readable").expect("open");
            parser.feed(&bytes);
        }
    })
    .await
    .expect("the MESSAGEs within 5 s")
}

#[tokio::test]
async fn chat_works_through_rtchat_client_in_both_modes() {
    for (mode, streams_opened) in [(WtStreams::Single, 0), (WtStreams::PerSubscription, 2)] {
        let server = start(mode).await;
        let (url, hashes, _) = offer(&server).await;
        let mut link = rtchat_client::Link::webtransport(&url, &hashes)
            .await
            .expect("a session");
        let mut parser = Parser::new(Limits::default());
        let token = server.token().await;
        link.send(Bytes::from(format!(
            "CONNECT\naccept-version:1.2\nhost:rtchat\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\n\n\0SUBSCRIBE\nid:1\ndestination:/sub/channel/lobby\nreceipt:s\n\n\0"
        )))
        .await
        .expect("sent");
        // Many MESSAGEs on two streams, interleaved with nothing mid-frame: a long one and
        // short ones, so stream chunks do not line up with frames.
        let long = "x".repeat(1500);
        for n in 0..20 {
            link.send(Bytes::from(send(&format!("m{n} {long}"))))
                .await
                .expect("sent");
        }
        link.send(Bytes::from(send("last"))).await.expect("sent");
        // Both subscriptions get every MESSAGE, in order; the parser never sees a torn frame.
        let seen = messages_through(&mut link, &mut parser).await;
        let mut expected: Vec<String> = (0..20).map(|n| format!("m{n} {long}")).collect();
        expected.push("last".to_owned());
        assert_eq!(seen, [expected.clone(), expected], "{mode:?}");
        if let rtchat_client::Link::WebTransport(wt) = &link {
            assert_eq!(wt.uni_streams_opened(), streams_opened, "{mode:?}");
        } else {
            panic!("a WebTransport link");
        }
        link.close(Duration::from_secs(1)).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn a_stopped_subscription_stream_loses_its_messages_not_the_session() {
    let server = start(WtStreams::PerSubscription).await;
    let (url, hashes, _) = offer(&server).await;
    let mut client = WtClient::connect(&url, &hashes, &server.token().await).await;
    client
        .send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:s\n\n\0")
        .await;
    assert_eq!(client.frame().await.command, Command::Receipt);
    client.send(&send("before")).await;
    let mut stream = Uni::accept(&client).await;
    assert_eq!(
        text(&stream.next_frame().await.expect("a MESSAGE")),
        "before"
    );
    stream.recv.stop(7).expect("stopped");
    // Let the STOP_SENDING reach the server, then more MESSAGEs: dropped, and the session
    // still answers.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for n in 0..3 {
        client.send(&send(&format!("after {n}"))).await;
    }
    client.send("DISCONNECT\nreceipt:bye\n\n\0").await;
    let receipt = client.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    assert_eq!(receipt.get("receipt-id"), Some("bye"));
    server.stop().await;
}
