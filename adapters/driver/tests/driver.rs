//! The driver with real core and memory adapters over the in-memory transport: slow readers,
//! heart-beats in time, transport-level liveness, and shutdown.

use bytes::Bytes;
use rtchat_chat::{ChatConfig, ChatService, Hub, Identity, Ports, Tokens};
use rtchat_driver::{
    ChatUseCases, DriverConfig, MemoryClient, RoomWriters, Shutdown, WriterConfig, memory_pair,
    run_connection,
};
use rtchat_jwt::JwtTokens;
use rtchat_memory::{
    InProcessBroker, MemoryMessageStore, MemoryPresence, MemoryRoomStore, SystemClock,
};
use rtchat_stomp::{Command, Frame, HeartBeat, Item, Limits, Parser};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct Node {
    service: ChatService,
    tokens: Arc<JwtTokens>,
    shutdown: Shutdown,
}

async fn node() -> Node {
    let hub = Arc::new(Hub::new());
    let tokens = Arc::new(JwtTokens::new(
        b"driver-test-secret",
        "rtchat".to_owned(),
        Duration::from_secs(3600),
    ));
    let messages = Arc::new(MemoryMessageStore::new());
    let rooms = Arc::new(MemoryRoomStore::new());
    let broker = Arc::new(InProcessBroker::new(hub.clone()));
    let ports = Ports {
        messages: messages.clone(),
        rooms: rooms.clone(),
        presence: Arc::new(MemoryPresence::new()),
        broker: broker.clone(),
        appender: Arc::new(RoomWriters::new(
            messages,
            rooms,
            broker,
            WriterConfig::default(),
        )),
        tokens: tokens.clone(),
        clock: Arc::new(SystemClock),
    };
    let config = ChatConfig {
        max_sends_per_second: 1_000_000,
        ..ChatConfig::default()
    };
    let service = ChatService::new(ports, hub, config)
        .await
        .expect("service assembles");
    Node {
        service,
        tokens,
        shutdown: Shutdown::new(),
    }
}

fn alice() -> Identity {
    Identity {
        rand_id: "Alice".to_owned(),
        name_tag: "#A11CE0".to_owned(),
    }
}

/// Starts a connection on its own task; returns the client end.
fn open(
    node: &Node,
    config: DriverConfig,
    transport_capacity: usize,
) -> (MemoryClient, tokio::task::JoinHandle<()>) {
    let (transport, client) = memory_pair(transport_capacity);
    let service = node.service.clone();
    let signal = node.shutdown.signal();
    let task = tokio::spawn(async move {
        run_connection(transport, &service, LOCALHOST, &config, signal).await;
    });
    (client, task)
}

/// Reads items from the client end with the core parser.
struct Reader {
    parser: Parser,
}

impl Reader {
    fn new() -> Self {
        Reader {
            parser: Parser::new(Limits::default()),
        }
    }

    /// The next item, or `None` once the server closed.
    async fn next(&mut self, client: &mut MemoryClient) -> Option<Item> {
        loop {
            if let Some(item) = self
                .parser
                .next_item()
                .expect("valid STOMP from the server")
            {
                return Some(item);
            }
            let bytes: Bytes = tokio::time::timeout(Duration::from_secs(30), client.recv())
                .await
                .expect("server answers or closes")?;
            self.parser.feed(&bytes);
        }
    }

    async fn frame(&mut self, client: &mut MemoryClient) -> Option<Frame> {
        loop {
            match self.next(client).await? {
                Item::Frame(frame) => return Some(frame),
                Item::HeartBeat => continue,
            }
        }
    }
}

async fn connect(node: &Node, client: &mut MemoryClient, reader: &mut Reader, heart_beat: &str) {
    let token = node.tokens.issue(&alice(), "127.0.0.1");
    assert!(
        client
            .send(format!(
                "CONNECT\naccept-version:1.2\nhost:rtchat\nheart-beat:{heart_beat}\nAuthorization:Bearer {token}\n\n\0"
            ))
            .await
    );
    let connected = reader.frame(client).await.expect("CONNECTED");
    assert_eq!(connected.command, Command::Connected, "{connected:?}");
}

#[tokio::test]
async fn a_reader_that_falls_behind_gets_an_error_and_the_room_goes_on() {
    let node = node().await;
    let config = DriverConfig {
        outbound_capacity: 8,
        ..DriverConfig::default()
    };
    let (mut slow, _task) = open(&node, config, 1024);
    let mut reader = Reader::new();
    connect(&node, &mut slow, &mut reader, "0,0").await;
    assert!(
        slow.send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:r\n\n\0")
            .await
    );
    assert_eq!(
        reader.frame(&mut slow).await.expect("RECEIPT").command,
        Command::Receipt
    );

    // The publisher never yields to the reader's task, as a busy room would outpace it.
    for n in 0..200 {
        node.service
            .post_message(&alice(), LOCALHOST, "lobby", &format!("message {n}"))
            .await
            .expect("the room never waits for a slow reader");
    }

    let mut messages = 0;
    let mut error = None;
    while let Some(frame) = reader.frame(&mut slow).await {
        match frame.command {
            Command::Message => messages += 1,
            Command::Error => error = Some(frame),
            other => panic!("unexpected {other}"),
        }
    }
    let error = error.expect("an ERROR before the close");
    assert_eq!(error.get("message"), Some("slow consumer"));
    assert!(
        messages <= 8,
        "at most the queue's worth was delivered, got {messages}"
    );
    // Everything is still stored for a since-id catch-up.
    let stored = node
        .service
        .history(&alice(), "lobby", 100, None)
        .await
        .expect("history");
    assert_eq!(stored.len(), 100);
}

#[tokio::test]
async fn a_reader_whose_transport_stalls_is_dropped_after_the_write_timeout() {
    let node = node().await;
    let config = DriverConfig {
        outbound_capacity: 10_000,
        write_timeout: Duration::from_millis(200),
        ..DriverConfig::default()
    };
    // A transport that holds only two messages: like a peer whose socket buffer is full.
    let (mut stalled, task) = open(&node, config, 2);
    let mut reader = Reader::new();
    connect(&node, &mut stalled, &mut reader, "0,0").await;
    assert!(
        stalled
            .send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:r\n\n\0")
            .await
    );
    assert_eq!(
        reader.frame(&mut stalled).await.expect("RECEIPT").command,
        Command::Receipt
    );
    for n in 0..50 {
        node.service
            .post_message(&alice(), LOCALHOST, "lobby", &format!("message {n}"))
            .await
            .expect("stored");
    }
    // Not reading: the driver's writes wait, then give up.
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the stalled connection ends")
        .expect("driver task");
    let mut received = 0;
    while reader.frame(&mut stalled).await.is_some() {
        received += 1;
    }
    assert!(received < 50, "{received}");
}

#[tokio::test(start_paused = true)]
async fn the_server_sends_heart_beats_on_time() {
    let node = node().await;
    let mut config = DriverConfig::default();
    config.session.heart_beat = HeartBeat {
        send_every: Duration::from_millis(1000),
        want_every: Duration::ZERO,
    };
    let (mut client, _task) = open(&node, config, 64);
    let mut reader = Reader::new();
    connect(&node, &mut client, &mut reader, "0,1000").await;
    let started = tokio::time::Instant::now();
    for beat in 1..=3u32 {
        assert_eq!(reader.next(&mut client).await, Some(Item::HeartBeat));
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1000) * beat
                && elapsed < Duration::from_millis(1000) * beat + Duration::from_millis(100),
            "beat {beat} at {elapsed:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_but_pings_keep_it_alive() {
    let node = node().await;
    let mut config = DriverConfig::default();
    config.session.heart_beat = HeartBeat {
        send_every: Duration::ZERO,
        want_every: Duration::from_millis(1000),
    };
    config.session.heart_beat_grace = Duration::from_millis(1000);
    let (mut client, task) = open(&node, config, 64);
    let mut reader = Reader::new();
    connect(&node, &mut client, &mut reader, "1000,0").await;

    // WebSocket pings (transport liveness) every half second keep it open well past the limit.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(client.ping().await, "still open");
    }
    assert!(!task.is_finished());

    // Then silence: closed after the interval plus the grace.
    let silent_since = tokio::time::Instant::now();
    while reader.next(&mut client).await.is_some() {}
    let waited = silent_since.elapsed();
    assert!(
        waited >= Duration::from_millis(2000) && waited < Duration::from_millis(3000),
        "{waited:?}"
    );
}

#[tokio::test]
async fn shutdown_ends_every_connection() {
    let node = node().await;
    let (mut first, first_task) = open(&node, DriverConfig::default(), 64);
    let (mut second, second_task) = open(&node, DriverConfig::default(), 64);
    let mut first_reader = Reader::new();
    connect(&node, &mut first, &mut first_reader, "0,0").await;
    let mut second_reader = Reader::new();
    connect(&node, &mut second, &mut second_reader, "0,0").await;
    assert_eq!(node.shutdown.live_connections(), 2);
    node.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), node.shutdown.wait_idle())
        .await
        .expect("connections finish");
    first_task.await.expect("first");
    second_task.await.expect("second");
    // Each is told why, then closed.
    for (client, reader) in [
        (&mut first, &mut first_reader),
        (&mut second, &mut second_reader),
    ] {
        let error = reader
            .frame(client)
            .await
            .expect("an ERROR before the close");
        assert_eq!(error.command, Command::Error);
        assert_eq!(error.get("message"), Some("server shutting down"));
        assert!(reader.frame(client).await.is_none(), "then nothing");
    }
}
