//! The room log through real faults, on real server processes with PostgreSQL and Redis:
//! concurrent publishers on two nodes, Redis killed, PostgreSQL crashed, a node SIGKILLed.
//! Servers these tests kill are their own throwaway ones (`rtchat-test-services`); the
//! others come from `DATABASE_URL` / `REDIS_URL`, or are throwaway too when those are unset.

use bytes::Bytes;
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use rtchat_chat::MessageStore;
use rtchat_stomp::{Command, Frame, Item, Limits, Parser};
use rtchat_test_services::{PostgresServer, RedisServer, shared_database_url, shared_redis_url};
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &str = "faults-test-secret";
/// The longest any step of these tests waits.
const PATIENCE: Duration = Duration::from_secs(60);

/// A unique name for this test's schema and Redis prefix.
fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("faults_{test}_{}_{nanos:08x}", std::process::id())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// One `rtchat-server` process of a cluster (PostgreSQL store, Redis broker), killed when
/// dropped.
struct NodeProcess {
    child: Child,
    addr: SocketAddr,
}

impl NodeProcess {
    async fn start(name: &str, database_url: &str, redis_url: &str, cluster: &str) -> NodeProcess {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let child = Process::new(env!("CARGO_BIN_EXE_rtchat-server"))
            .args(["--bind", &addr.to_string()])
            .args(["--store", "postgres", "--database-url", database_url])
            .args(["--database-schema", cluster])
            .args(["--broker", "redis", "--redis-url", redis_url])
            .args(["--redis-prefix", cluster])
            .args(["--jwt-secret", SECRET, "--node-name", name])
            .args([
                "--max-sends-per-second",
                "0",
                "--max-frames-per-second",
                "0",
            ])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("rtchat-server starts");
        let node = NodeProcess { child, addr };
        let deadline = Instant::now() + PATIENCE;
        while http(addr, "GET", "/healthz", None).await.is_none() {
            assert!(
                Instant::now() < deadline,
                "node {name} never answered /healthz"
            );
            sleep(Duration::from_millis(100)).await;
        }
        node
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// SIGKILL: no goodbye to anyone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP/1.1 request, with a token and a JSON body when given; the body of a 2xx
/// answer, `None` when the node does not answer.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some((token, body)) = body {
        request.push_str(&format!(
            "Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.split_whitespace()
        .nth(1)
        .filter(|code| code.starts_with('2'))
        .map(|_| body.to_owned())
}

async fn token(node: &NodeProcess) -> String {
    let body = http(node.addr, "GET", "/init", None)
        .await
        .expect("/init answers");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    json["response"].as_str().expect("a token").to_owned()
}

async fn create_room(node: &NodeProcess, room: &str) {
    let body = format!("{{\"name\":\"{room}\",\"roomId\":\"{room}\"}}");
    let token = token(node).await;
    http(node.addr, "POST", "/rooms", Some((&token, &body)))
        .await
        .expect("room created");
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A STOMP client whose frames are read by a task of their own, so a test can send and
/// receive at the same time. `frames` ends when the server closes the connection.
struct Client {
    sink: SplitSink<Socket, Message>,
    frames: mpsc::UnboundedReceiver<Frame>,
}

impl Client {
    async fn connect(node: &NodeProcess, token: &str) -> Client {
        let mut request = node.ws_url().into_client_request().expect("request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("v12.stomp"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket handshake");
        let (sink, mut stream) = socket.split();
        let (tx, frames) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut parser = Parser::new(Limits::default());
            while let Some(Ok(message)) = stream.next().await {
                match message {
                    Message::Text(text) => parser.feed(Bytes::from(text).as_ref()),
                    Message::Binary(bytes) => parser.feed(&bytes),
                    _ => continue,
                }
                while let Ok(Some(item)) = parser.next_item() {
                    if let Item::Frame(frame) = item
                        && tx.send(frame).is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut client = Client { sink, frames };
        client
            .send(&format!(
                "CONNECT\naccept-version:1.2\nhost:rtchat\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0"
            ))
            .await;
        let connected = client.frame().await.expect("CONNECTED");
        assert_eq!(connected.command, Command::Connected, "{connected:?}");
        client
    }

    async fn send(&mut self, frame: &str) -> bool {
        self.sink.send(Message::text(frame)).await.is_ok()
    }

    /// The next frame, `None` once the connection is closed.
    async fn frame(&mut self) -> Option<Frame> {
        timeout(PATIENCE, self.frames.recv())
            .await
            .expect("a frame in time")
    }

    /// SUBSCRIBE to `room` (with `extra` headers), waiting for the RECEIPT; the MESSAGEs
    /// that came before it are returned.
    async fn subscribe(&mut self, room: &str, extra: &str) -> Vec<Frame> {
        self.send(&format!(
            "SUBSCRIBE\nid:{room}\ndestination:/sub/channel/{room}\n{extra}receipt:subscribed\n\n\0"
        ))
        .await;
        let mut before = Vec::new();
        loop {
            let frame = self.frame().await.expect("RECEIPT of SUBSCRIBE");
            if frame.command == Command::Receipt {
                return before;
            }
            before.push(frame);
        }
    }
}

fn chat(room: &str, text: &str, key: &str) -> String {
    format!(
        "SEND\ndestination:/pub/chat\nmessage-key:{key}\nreceipt:{key}\n\n{{\"roomId\":\"{room}\",\"message\":\"{text}\"}}\0"
    )
}

/// What answered one SEND: `RECEIPT`, or the error's `type` (from the error queue).
fn answer_of(frame: &Frame) -> String {
    match frame.command {
        Command::Receipt => "RECEIPT".to_owned(),
        _ => {
            let body: serde_json::Value = serde_json::from_slice(&frame.body).unwrap_or_default();
            body["type"].as_str().unwrap_or("?").to_owned()
        }
    }
}

/// Sends `m0`, `m1`, ... to the lobby 100 a second (keys `k0`, `k1`, ...) on its own task,
/// collecting every answer by `receipt-id`, and waits up to 15 s after the last SEND for the
/// answers of all of them. Gives the publisher back with the answers.
fn send_paced(
    mut publisher: Client,
    sends: usize,
) -> tokio::task::JoinHandle<(Client, HashMap<String, Vec<String>>)> {
    fn record(answers: &mut HashMap<String, Vec<String>>, frame: &Frame) {
        let key = frame.get("receipt-id").unwrap_or_default().to_owned();
        answers.entry(key).or_default().push(answer_of(frame));
    }
    tokio::spawn(async move {
        let mut answers = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for m in 0..sends {
            tick.tick().await;
            publisher
                .send(&chat("lobby", &format!("m{m}"), &format!("k{m}")))
                .await;
            while let Ok(frame) = publisher.frames.try_recv() {
                record(&mut answers, &frame);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while answers.len() < sends && Instant::now() < deadline {
            match timeout(Duration::from_secs(1), publisher.frames.recv()).await {
                Ok(Some(frame)) => record(&mut answers, &frame),
                Ok(None) => break,
                Err(_) => {}
            }
        }
        (publisher, answers)
    })
}

/// The seq and text of a chat MESSAGE.
fn seq_and_text(frame: &Frame) -> Option<(u64, String)> {
    if frame.command != Command::Message {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(&frame.body).ok()?;
    let seq = frame.get("seq")?.parse().ok()?;
    assert_eq!(body["seq"].as_u64(), Some(seq), "header and body agree");
    Some((seq, body["message"].as_str()?.to_owned()))
}

/// Reads chat MESSAGEs until `want` of them came (or the connection closed); asserts they
/// continue `after` strictly in order with no hole.
async fn read_log(client: &mut Client, after: u64, want: usize) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while got.len() < want {
        let Ok(next) = timeout(deadline - Instant::now(), client.frames.recv()).await else {
            panic!(
                "only {} of {want} messages arrived: {:?}",
                got.len(),
                got.last()
            );
        };
        let Some(frame) = next else { break };
        if let Some((seq, text)) = seq_and_text(&frame) {
            let expected = after + got.len() as u64 + 1;
            assert_eq!(seq, expected, "seq {seq} arrived where {expected} was due");
            got.push((seq, text));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_on_two_nodes_never_invert_or_skip() {
    let (Some(database), Some(redis)) = (
        shared_database_url("concurrent_publishers_on_two_nodes"),
        shared_redis_url("concurrent_publishers_on_two_nodes"),
    ) else {
        return;
    };
    let cluster = unique("order");
    let a = NodeProcess::start("a", &database, &redis, &cluster).await;
    let b = NodeProcess::start("b", &database, &redis, &cluster).await;
    const PUBLISHERS_PER_NODE: usize = 2;
    const EACH: usize = 500;
    const TOTAL: usize = 2 * PUBLISHERS_PER_NODE * EACH;
    for run in 0..5 {
        let room = format!("run-{run}");
        create_room(&a, &room).await;
        let mut watchers = Vec::new();
        for node in [&a, &a, &b, &b] {
            let mut watcher = Client::connect(node, &token(node).await).await;
            watcher.subscribe(&room, "").await;
            watchers.push(watcher);
        }
        let mut publishers = Vec::new();
        for (n, node) in [&a, &b]
            .into_iter()
            .cycle()
            .take(2 * PUBLISHERS_PER_NODE)
            .enumerate()
        {
            let mut publisher = Client::connect(node, &token(node).await).await;
            let room = room.clone();
            publishers.push(tokio::spawn(async move {
                for m in 0..EACH {
                    assert!(
                        publisher
                            .send(&chat(&room, &format!("{n}.{m}"), &format!("k{n}-{m}")))
                            .await
                    );
                }
                let mut receipts = 0;
                while receipts < EACH {
                    let frame = publisher.frame().await.expect("connection stays open");
                    assert_eq!(frame.command, Command::Receipt, "{frame:?}");
                    receipts += 1;
                }
            }));
        }
        for publisher in publishers {
            publisher.await.expect("publisher");
        }
        for watcher in &mut watchers {
            let log = read_log(watcher, 0, TOTAL).await;
            assert_eq!(
                log.len(),
                TOTAL,
                "run {run}: every message, no inversion, no hole"
            );
            let distinct: HashSet<_> = log.iter().map(|(_, text)| text).collect();
            assert_eq!(distinct.len(), TOTAL, "run {run}: no duplicate");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_no_receipted_message() {
    let Some(database) = shared_database_url("a_redis_restart") else {
        return;
    };
    let Some(mut redis) = RedisServer::start_or_skip("a_redis_restart") else {
        return;
    };
    let cluster = unique("redis");
    let a = NodeProcess::start("a", &database, &redis.url(), &cluster).await;
    let b = NodeProcess::start("b", &database, &redis.url(), &cluster).await;
    let mut watchers = Vec::new();
    for node in [&a, &b] {
        let mut watcher = Client::connect(node, &token(node).await).await;
        watcher.subscribe("lobby", "").await;
        watchers.push(watcher);
    }
    let mut publisher = Client::connect(&a, &token(&a).await).await;
    publisher
        .send("SUBSCRIBE\nid:errors\ndestination:/user/queue/errors\n\n\0")
        .await;

    // 100 messages a second for 3 s; Redis is down from 1.5 s to 4.5 s, so the last ones are
    // published into the outage and nothing later reveals the hole: only the nodes' catch-up
    // from the store after resubscribing can deliver them.
    const SENDS: usize = 300;
    let sender = send_paced(publisher, SENDS);
    sleep(Duration::from_millis(1500)).await;
    assert!(
        http(a.addr, "GET", "/readyz", None).await.is_some(),
        "ready"
    );
    redis.kill().expect("kill redis");
    let (mut publisher, answers) = sender.await.expect("sender");
    // Not ready while its broker does not answer (still alive: /healthz answers).
    assert!(
        http(a.addr, "GET", "/readyz", None).await.is_none(),
        "not ready"
    );
    assert!(
        http(a.addr, "GET", "/healthz", None).await.is_some(),
        "alive"
    );
    sleep(Duration::from_millis(1500)).await;
    redis.start_again().expect("redis back");

    let receipted: Vec<String> = answers
        .iter()
        .filter(|(_, got)| got[..] == ["RECEIPT"])
        .map(|(key, _)| format!("m{}", &key[1..]))
        .collect();
    assert_eq!(
        receipted.len(),
        SENDS,
        "PostgreSQL was up: every SEND is stored"
    );
    let in_order: Vec<String> = (0..SENDS).map(|m| format!("m{m}")).collect();
    for watcher in &mut watchers {
        let log = read_log(watcher, 0, SENDS).await;
        let seen: Vec<String> = log.into_iter().map(|(_, text)| text).collect();
        assert_eq!(
            seen, in_order,
            "every receipted message, in order, with no client action"
        );
    }
    // Redis carries messages again, and the node says it is ready.
    let deadline = Instant::now() + Duration::from_secs(10);
    while http(a.addr, "GET", "/readyz", None).await.is_none() {
        assert!(Instant::now() < deadline, "ready again once Redis is back");
        sleep(Duration::from_millis(100)).await;
    }
    publisher.send(&chat("lobby", "after", "k-after")).await;
    for watcher in &mut watchers {
        let log = read_log(watcher, SENDS as u64, 1).await;
        assert_eq!(log[0].1, "after");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_crash_answers_every_send_and_stores_each_once() {
    let Some(redis) = shared_redis_url("a_postgres_crash") else {
        return;
    };
    let Some(mut postgres) = PostgresServer::start_or_skip("a_postgres_crash") else {
        return;
    };
    let cluster = unique("pg");
    let node = NodeProcess::start("a", &postgres.url(), &redis, &cluster).await;
    let mut publisher = Client::connect(&node, &token(&node).await).await;
    publisher
        .send("SUBSCRIBE\nid:errors\ndestination:/user/queue/errors\n\n\0")
        .await;
    const SENDS: usize = 500;
    let sender = send_paced(publisher, SENDS);
    sleep(Duration::from_millis(1000)).await;
    postgres.stop_immediate().expect("crash postgres");
    sleep(Duration::from_secs(3)).await;
    postgres.start_again().expect("postgres back");
    let (mut publisher, answers) = sender.await.expect("sender");

    // Every SEND got exactly one answer, within the bound.
    assert_eq!(answers.len(), SENDS, "every SEND is answered");
    for (key, got) in &answers {
        assert_eq!(got.len(), 1, "{key}: exactly one answer, got {got:?}");
        assert!(
            ["RECEIPT", "NOT_STORED", "UNAVAILABLE"].contains(&got[0].as_str()),
            "{key}: {got:?}"
        );
    }
    let failed: Vec<&String> = answers
        .iter()
        .filter(|(_, got)| got[0] != "RECEIPT")
        .map(|(key, _)| key)
        .collect();
    // The client retries what failed, and one that was receipted, with the same keys.
    let receipted_one = answers
        .iter()
        .find(|(_, got)| got[0] == "RECEIPT")
        .map(|(key, _)| key.clone())
        .expect("some SENDs were stored");
    for key in failed
        .iter()
        .map(|k| k.as_str())
        .chain([receipted_one.as_str()])
    {
        let text = format!("m{}", &key[1..]);
        publisher.send(&chat("lobby", &text, key)).await;
        let answer = publisher.frame().await.expect("answer to the retry");
        assert_eq!(
            answer.command,
            Command::Receipt,
            "retry of {key}: {answer:?}"
        );
    }

    // The store has each message exactly once, in a log without holes.
    let store = rtchat_postgres::PostgresStore::connect_in_schema(&postgres.url(), &cluster)
        .await
        .expect("store");
    let lobby = rtchat_chat::RoomId::parse("lobby").expect("room id");
    let stored = store.after_seq(&lobby, 0, 1000).await.expect("read");
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=SENDS as u64).collect::<Vec<_>>(),
        "contiguous, one per SEND"
    );
    let texts: HashSet<&str> = stored.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts.len(), SENDS, "no message stored twice");
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_node_resume_on_the_other_with_since_seq() {
    let (Some(database), Some(redis)) = (
        shared_database_url("clients_of_a_killed_node"),
        shared_redis_url("clients_of_a_killed_node"),
    ) else {
        return;
    };
    let cluster = unique("kill");
    let mut a = NodeProcess::start("a", &database, &redis, &cluster).await;
    let b = NodeProcess::start("b", &database, &redis, &cluster).await;
    let token_b = token(&b).await;
    let mut watcher = Client::connect(&a, &token(&a).await).await;
    watcher.subscribe("lobby", "").await;
    let mut publisher = Client::connect(&b, &token_b).await;
    const SENDS: usize = 300;
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for m in 0..SENDS {
            tick.tick().await;
            publisher
                .send(&chat("lobby", &format!("m{m}"), &format!("k{m}")))
                .await;
        }
        publisher
    });
    // Read from node A until it dies under us.
    let mut log = Vec::new();
    let killer = tokio::spawn(async move {
        sleep(Duration::from_secs(1)).await;
        a.kill();
        a
    });
    while let Some(frame) = watcher.frame().await {
        if let Some((seq, text)) = seq_and_text(&frame) {
            assert_eq!(seq, log.len() as u64 + 1, "in order before the kill");
            log.push((seq, text));
        }
    }
    let _dead = killer.await.expect("killer");
    assert!(!log.is_empty(), "messages flowed before the kill");
    // Reconnect to B from where we were.
    let last = log.len() as u64;
    let mut watcher = Client::connect(&b, &token_b).await;
    let replayed = watcher
        .subscribe("lobby", &format!("since-seq:{last}\n"))
        .await;
    for frame in &replayed {
        if let Some(entry) = seq_and_text(frame) {
            assert_eq!(entry.0, log.len() as u64 + 1, "replay continues the log");
            log.push(entry);
        }
    }
    let _publisher = sender.await.expect("sender");
    let after = log.len() as u64;
    let rest = read_log(&mut watcher, after, SENDS - log.len()).await;
    log.extend(rest);
    let texts: Vec<String> = log.into_iter().map(|(_, text)| text).collect();
    let expected: Vec<String> = (0..SENDS).map(|m| format!("m{m}")).collect();
    assert_eq!(texts, expected, "no gap, no duplicate across the failover");
}
