//! `rtchat-loadgen`: measures a running rtchat server from the outside, over real WebSockets
//! on loopback. Two measurements, each bounded in connections and time:
//!
//! - `idle`: opens N STOMP connections that each CONNECT and SUBSCRIBE, then reads the server's
//!   resident memory (from `/proc/<pid>/status`) before and after: memory per idle connection.
//! - `fanout`: S subscribers in one room, one publisher sending M messages; reports deliveries
//!   per second and the server's CPU time per delivery (from `/proc/<pid>/stat`).
//! - `latency`: S subscribers, one publisher at a fixed rate: delivery latency percentiles,
//!   and the CPU per delivery of the server and of the load generator (see [`latency`]).
//! - `store`: P publishers spread over R rooms, each with W SENDs in flight; reports stored
//!   messages per second (a RECEIPT means stored), the room writers' group commit at work.
//! - `hol`: the head-of-line experiment: one subscriber of a busy room and a quiet one, over
//!   WebTransport through a lossy UDP proxy (see [`hol`]).
//! - `udp-proxy`: that proxy on its own (see [`proxy`]).
//!
//! Tokens are minted with the server's JWT secret (`--jwt-secret`), so no HTTP client is needed.
//! Every measurement runs over plain STOMP over WebSocket (`/ws`), over WebTransport, or over
//! SockJS (`/connect`, its `websocket` or `xhr_streaming` transport): `--transport`, see
//! [`link`] and [`sockjs`].

mod hol;
mod latency;
mod link;
mod proxy;
mod sockjs;

use bytes::Bytes;
use clap::{Args, Parser as CliParser, Subcommand};
use rtchat_chat::{Identity, Tokens};
use rtchat_jwt::JwtTokens;
use rtchat_stomp::{Command, Item, Limits, Parser};
use std::time::{Duration, Instant};

#[derive(Debug, CliParser)]
#[command(
    name = "rtchat-loadgen",
    about = "Measure an rtchat server over loopback WebSockets"
)]
struct Cli {
    #[command(subcommand)]
    command: Measure,
}

#[derive(Debug, Subcommand)]
enum Measure {
    /// Memory per idle, connected, subscribed connection.
    Idle {
        #[command(flatten)]
        target: Target,
        /// Connections to open (at most 20,000).
        #[arg(long, default_value_t = 1000)]
        connections: usize,
    },
    /// Fan-out throughput and CPU per delivery.
    Fanout {
        #[command(flatten)]
        target: Target,
        /// Subscribers in the room (at most 5,000).
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
        /// Messages the publisher sends (at most 1,000,000).
        #[arg(long, default_value_t = 2000)]
        messages: usize,
        /// Messages in flight before the publisher waits for receipts.
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Publish through this URL instead of `--url` (another node of a cluster).
        #[arg(long)]
        publish_url: Option<String>,
    },
    /// Delivery latency at a fixed publishing rate (p50/p99/p99.9), with CPU per delivery.
    Latency {
        #[command(flatten)]
        target: Target,
        /// Subscribers in the room (at most 5,000).
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
        /// Messages per second (1 to 100,000).
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// Seconds of counted sending (at most 300).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Seconds of uncounted sending first.
        #[arg(long, default_value_t = 1)]
        warmup_seconds: u64,
    },
    /// Stored messages per second: publishers over rooms, receipts counted.
    Store {
        #[command(flatten)]
        target: Target,
        /// Rooms to spread the publishers over (created when missing; at most 1,000). With 1,
        /// `--room` is used.
        #[arg(long, default_value_t = 1)]
        rooms: usize,
        /// Publisher connections (at most 1,000).
        #[arg(long, default_value_t = 20)]
        publishers: usize,
        /// Messages each publisher sends (at most 100,000).
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        /// SENDs each publisher has in flight before it waits for receipts.
        #[arg(long, default_value_t = 64)]
        window: usize,
    },
    /// Head-of-line blocking: one subscriber of a busy room A and a quiet room B, over
    /// WebTransport through a lossy, slow UDP proxy (or over WebSocket, without the proxy, as
    /// the reference); latency and lost/duplicated/out-of-order counts per room. The server
    /// needs `--max-sends-per-second` at least `--a-rate`.
    Hol {
        #[command(flatten)]
        target: Target,
        /// Room A's messages per second (1 to 10,000).
        #[arg(long, default_value_t = 200)]
        a_rate: u32,
        /// Room A's message text length in bytes (40 to 1,900).
        #[arg(long, default_value_t = 1000)]
        a_bytes: usize,
        /// Room B's messages per second (1 to 1,000).
        #[arg(long, default_value_t = 20)]
        b_rate: u32,
        /// Seconds of counted sending (at most 300).
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Seconds of uncounted sending first.
        #[arg(long, default_value_t = 2)]
        warmup_seconds: u64,
        /// Percent of datagrams the proxy drops, each way (0 to 50; WebTransport only).
        #[arg(long, default_value_t = 0.0)]
        loss_percent: f64,
        /// Milliseconds the proxy holds each datagram, each way (at most 1,000; WebTransport
        /// only).
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Seed of the proxy's loss draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// A lossy, slow UDP proxy on loopback (these kernels have no netem): forwards datagrams
    /// between clients and `--upstream`, dropping `--loss-percent` of them and holding each
    /// `--delay-ms`, each way. Stops after `--seconds` or on Ctrl-C.
    UdpProxy {
        /// Where clients send (a loopback address).
        #[arg(long, default_value = "127.0.0.1:4434")]
        listen: std::net::SocketAddr,
        /// The server (a loopback address, e.g. the WebTransport endpoint).
        #[arg(long, default_value = "127.0.0.1:4433")]
        upstream: std::net::SocketAddr,
        /// Percent of datagrams dropped, each way (0 to 50).
        #[arg(long, default_value_t = 1.0)]
        loss_percent: f64,
        /// Milliseconds each datagram is held, each way (at most 1,000).
        #[arg(long, default_value_t = 20)]
        delay_ms: u64,
        /// Seed of the loss draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Datagrams held at most per direction (more are dropped; at most 1,000,000).
        #[arg(long, default_value_t = 100_000)]
        max_queue: usize,
        /// Stop after this many seconds (at most 86,400).
        #[arg(long, default_value_t = 600)]
        seconds: u64,
    },
}

#[derive(Debug, Args)]
struct Target {
    /// The server's WebSocket URL, or its SockJS base (`http://127.0.0.1:8080/connect`) with a
    /// SockJS `--transport` (loopback only).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// How to reach the server: `ws` (STOMP over WebSocket), `wt` (WebTransport: the endpoint
    /// and certificate hashes the server's `GET /webtransport` gives, with `--url` its
    /// WebSocket URL; start it with `--webtransport`), `sockjs-websocket` or
    /// `sockjs-xhr-streaming` (STOMP over SockJS, as sockjs-client pages do).
    #[arg(long, value_enum, default_value = "ws")]
    transport: link::Transport,
    /// The server's JWT secret, to mint tokens (rtchat dialect).
    #[arg(long, env = "RTCHAT_JWT_SECRET", default_value = "")]
    jwt_secret: String,
    /// The server's node name (the token issuer).
    #[arg(long, default_value = "rtchat")]
    issuer: String,
    /// The server's process id, to read its memory and CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The room to use.
    #[arg(long, default_value = "lobby")]
    room: String,
    /// Whose STOMP contract to speak: `rtchat` (token in CONNECT, SEND to /pub/chat, subscribe
    /// /sub/channel/{room}), or `broker` for a plain STOMP broker such as RabbitMQ Web-STOMP
    /// (login/passcode, SEND and SUBSCRIBE on `--topic`), to measure both side by side.
    #[arg(long, value_enum, default_value = "rtchat")]
    dialect: Dialect,
    /// With `--dialect broker`: the destination to publish and subscribe on.
    #[arg(long, default_value = "/topic/chat.lobby")]
    topic: String,
    /// With `--dialect broker`: CONNECT login and passcode.
    #[arg(long, default_value = "guest")]
    login: String,
    #[arg(long, default_value = "guest")]
    passcode: String,
    /// The WebTransport endpoint, found at start with `--transport wt`.
    #[arg(skip)]
    webtransport: Option<link::WebTransportTarget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Dialect {
    Rtchat,
    Broker,
}

impl Target {
    fn subscribe_destination(&self) -> String {
        match self.dialect {
            Dialect::Rtchat => format!("/sub/channel/{}", self.room),
            Dialect::Broker => self.topic.clone(),
        }
    }

    fn send_destination(&self) -> &str {
        match self.dialect {
            Dialect::Rtchat => "/pub/chat",
            Dialect::Broker => &self.topic,
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let mut cli = Cli::parse();
    let target = match &mut cli.command {
        Measure::Idle { target, .. }
        | Measure::Fanout { target, .. }
        | Measure::Latency { target, .. }
        | Measure::Store { target, .. }
        | Measure::Hol { target, .. } => target,
        Measure::UdpProxy {
            listen,
            upstream,
            loss_percent,
            delay_ms,
            seed,
            max_queue,
            seconds,
        } => {
            return udp_proxy(
                proxy::ProxyConfig {
                    listen: *listen,
                    upstream: *upstream,
                    loss: loss_percent.clamp(0.0, 50.0) / 100.0,
                    delay: Duration::from_millis((*delay_ms).min(1_000)),
                    seed: *seed,
                    max_queue: (*max_queue).clamp(1, 1_000_000),
                },
                Duration::from_secs((*seconds).clamp(1, 86_400)),
            )
            .await;
        }
    };
    if target.transport == link::Transport::Wt {
        ensure_loopback(&target.url)?;
        target.webtransport = Some(link::WebTransportTarget::discover(&target.url).await?);
    }
    match cli.command {
        Measure::Idle {
            target,
            connections,
        } => idle(&target, connections.min(20_000)).await,
        Measure::Fanout {
            target,
            subscribers,
            messages,
            window,
            publish_url,
        } => {
            fanout(
                &target,
                publish_url.as_deref(),
                subscribers.min(5_000),
                messages.min(1_000_000),
                window.max(1),
            )
            .await
        }
        Measure::Latency {
            target,
            subscribers,
            rate,
            seconds,
            warmup_seconds,
        } => {
            latency::latency(
                &target,
                latency::LatencyRun {
                    subscribers: subscribers.clamp(1, 5_000),
                    rate: rate.clamp(1, 100_000),
                    duration: Duration::from_secs(seconds.clamp(1, 300)),
                    warmup: Duration::from_secs(warmup_seconds.min(60)),
                },
            )
            .await
        }
        Measure::Hol {
            target,
            a_rate,
            a_bytes,
            b_rate,
            seconds,
            warmup_seconds,
            loss_percent,
            delay_ms,
            seed,
        } => {
            hol::hol(
                &target,
                hol::HolRun {
                    a_rate: a_rate.clamp(1, 10_000),
                    a_bytes: a_bytes.clamp(40, 1_900),
                    b_rate: b_rate.clamp(1, 1_000),
                    duration: Duration::from_secs(seconds.clamp(1, 300)),
                    warmup: Duration::from_secs(warmup_seconds.min(60)),
                    loss: loss_percent.clamp(0.0, 50.0) / 100.0,
                    delay: Duration::from_millis(delay_ms.min(1_000)),
                    seed,
                },
            )
            .await
        }
        Measure::UdpProxy { .. } => Ok(()),
        Measure::Store {
            target,
            rooms,
            publishers,
            messages,
            window,
        } => {
            store(
                &target,
                rooms.clamp(1, 1_000),
                publishers.clamp(1, 1_000),
                messages.min(100_000),
                window.max(1),
            )
            .await
        }
    }
}

/// `udp-proxy`: runs the proxy until `limit` passes or Ctrl-C, then prints what it did.
async fn udp_proxy(config: proxy::ProxyConfig, limit: Duration) -> Result<(), String> {
    let proxy = proxy::Proxy::bind(config).await?;
    let stats = proxy.stats();
    println!(
        "udp-proxy: {} -> {}, dropping {:.1}% and delaying {} ms each way, for at most {} s",
        proxy.local_addr(),
        config.upstream,
        config.loss * 100.0,
        config.delay.as_millis(),
        limit.as_secs()
    );
    proxy
        .run(async move {
            tokio::select! {
                () = tokio::time::sleep(limit) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await;
    println!("udp-proxy: {}", stats.summary());
    Ok(())
}

fn ensure_loopback(url: &str) -> Result<(), String> {
    let loopback = [
        "ws://127.",
        "ws://localhost",
        "ws://[::1]",
        "http://127.",
        "http://localhost",
        "http://[::1]",
    ];
    if loopback.iter().any(|prefix| url.starts_with(prefix)) {
        Ok(())
    } else {
        Err(format!("refusing to load {url}: loopback addresses only"))
    }
}

/// A STOMP client connection, reading frames with the core parser.
struct Client {
    link: sockjs::Link,
    parser: Parser,
}

impl Client {
    async fn connect(target: &Target, tokens: &JwtTokens, n: usize) -> Result<Client, String> {
        Self::connect_to(&target.url, target, tokens, n).await
    }

    async fn connect_to(
        url: &str,
        target: &Target,
        tokens: &JwtTokens,
        n: usize,
    ) -> Result<Client, String> {
        // A publisher on another node (`--publish-url`) always comes over WebSocket.
        let transport = if url == target.url {
            target.transport
        } else {
            link::Transport::Ws
        };
        Self::connect_over(
            url,
            transport,
            target.webtransport.as_ref(),
            target,
            tokens,
            n,
        )
        .await
    }

    /// Connects over `transport` (`webtransport` names the endpoint for `wt`).
    async fn connect_over(
        url: &str,
        transport: link::Transport,
        webtransport: Option<&link::WebTransportTarget>,
        target: &Target,
        tokens: &JwtTokens,
        n: usize,
    ) -> Result<Client, String> {
        let link = sockjs::Link::open(url, transport, webtransport, n).await?;
        let identity = Identity {
            rand_id: format!("Load{}", n % 100),
            name_tag: format!("#{:06X}", n & 0xFF_FFFF),
        };
        let mut client = Client {
            link,
            parser: Parser::new(Limits::default()),
        };
        let credentials = match target.dialect {
            Dialect::Rtchat => format!(
                "host:rtchat\nAuthorization:Bearer {}",
                tokens.issue(&identity, "127.0.0.1")
            ),
            Dialect::Broker => format!(
                "host:/\nlogin:{}\npasscode:{}",
                target.login, target.passcode
            ),
        };
        client
            .send(format!(
                "CONNECT\naccept-version:1.2\nheart-beat:0,0\n{credentials}\n\n\0"
            ))
            .await?;
        client.expect(Command::Connected).await?;
        Ok(client)
    }

    async fn send(&mut self, frame: String) -> Result<(), String> {
        self.link.send(frame).await
    }

    /// The next frame (heart-beats skipped).
    async fn next_frame(&mut self) -> Result<rtchat_stomp::Frame, String> {
        loop {
            match self.parser.next_item() {
                Ok(Some(Item::Frame(frame))) => return Ok(frame),
                Ok(Some(Item::HeartBeat)) => continue,
                Ok(None) => {}
                Err(error) => return Err(format!("bad frame from server: {error}")),
            }
            let received: Bytes = tokio::time::timeout(Duration::from_secs(30), self.link.recv())
                .await
                .map_err(|_| "server silent for 30 s".to_owned())??;
            self.parser.feed(&received);
        }
    }

    async fn expect(&mut self, command: Command) -> Result<rtchat_stomp::Frame, String> {
        let frame = self.next_frame().await?;
        if frame.command == command {
            Ok(frame)
        } else {
            Err(format!(
                "expected {command}, got {} ({:?})",
                frame.command,
                frame.get("message")
            ))
        }
    }

    /// Sends `messages` chat SENDs to `room` with receipts, keeping at most `window` waiting;
    /// returns how many were receipted (all of them, or an error).
    async fn publish_windowed(
        &mut self,
        destination: &str,
        room: &str,
        messages: usize,
        window: usize,
    ) -> Result<usize, String> {
        let body = serde_json::json!({"roomId": room, "message": "load test message of a typical chat length, about eighty bytes"}).to_string();
        let mut in_flight = 0usize;
        let mut receipted = 0usize;
        for n in 0..messages {
            self.send(format!(
                "SEND\ndestination:{destination}\ncontent-type:application/json\nreceipt:{n}\n\n{body}\0"
            ))
            .await?;
            in_flight += 1;
            while in_flight >= window || (n + 1 == messages && in_flight > 0) {
                let frame = self.next_frame().await?;
                match frame.command {
                    Command::Receipt => {
                        in_flight -= 1;
                        receipted += 1;
                    }
                    Command::Error => {
                        return Err(format!("ERROR: {:?}", frame.get("message")));
                    }
                    _ => {}
                }
            }
        }
        Ok(receipted)
    }

    async fn subscribe(&mut self, destination: &str, id: &str) -> Result<(), String> {
        self.send(format!(
            "SUBSCRIBE\nid:{id}\ndestination:{destination}\nreceipt:sub-{id}\n\n\0"
        ))
        .await?;
        self.expect(Command::Receipt).await.map(|_| ())
    }
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU time of `pid`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Linux reports in clock ticks of 1/100 s (USER_HZ) on every mainstream configuration.
    Some(Duration::from_millis((utime + stime) * 10))
}

fn tokens(target: &Target) -> JwtTokens {
    JwtTokens::new(
        target.jwt_secret.as_bytes(),
        target.issuer.clone(),
        Duration::from_secs(3600),
    )
}

async fn idle(target: &Target, connections: usize) -> Result<(), String> {
    ensure_loopback(&target.url)?;
    let tokens = tokens(target);
    let before = target.server_pid.and_then(rss_kib);
    let started = Instant::now();
    let mut clients = Vec::with_capacity(connections);
    for n in 0..connections {
        let mut client = Client::connect(target, &tokens, n).await?;
        client
            .subscribe(&target.subscribe_destination(), "0")
            .await?;
        clients.push(client);
    }
    // Let allocator caches and the server's queues settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = target.server_pid.and_then(rss_kib);
    println!(
        "idle: {connections} connections connected and subscribed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    match (before, after) {
        (Some(before), Some(after)) => println!(
            "idle: server RSS {before} KiB -> {after} KiB: {:.2} KiB per idle connection",
            after.saturating_sub(before) as f64 / connections as f64
        ),
        _ => println!("idle: pass --server-pid to read the server's memory"),
    }
    drop(clients);
    Ok(())
}

async fn fanout(
    target: &Target,
    publish_url: Option<&str>,
    subscribers: usize,
    messages: usize,
    window: usize,
) -> Result<(), String> {
    ensure_loopback(&target.url)?;
    let tokens = tokens(target);
    let destination = target.subscribe_destination();
    let mut readers = Vec::with_capacity(subscribers);
    for n in 0..subscribers {
        let mut client = Client::connect(target, &tokens, n).await?;
        client.subscribe(&destination, "0").await?;
        readers.push(tokio::spawn(async move {
            let mut received = 0usize;
            while received < messages {
                let frame = client.next_frame().await?;
                if frame.command == Command::Message {
                    received += 1;
                }
            }
            Ok::<usize, String>(received)
        }));
    }
    let mut publisher = match publish_url {
        Some(url) => {
            ensure_loopback(url)?;
            Client::connect_to(url, target, &tokens, subscribers).await?
        }
        None => Client::connect(target, &tokens, subscribers).await?,
    };
    let cpu_before = target.server_pid.and_then(cpu_time);
    let started = Instant::now();
    publisher
        .publish_windowed(target.send_destination(), &target.room, messages, window)
        .await?;
    let mut delivered = 0usize;
    for reader in readers {
        delivered += reader.await.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed();
    let cpu_after = target.server_pid.and_then(cpu_time);
    println!(
        "fanout: {subscribers} subscribers x {messages} messages = {delivered} deliveries in {:.2} s: {:.0} deliveries/s",
        elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64()
    );
    match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => {
            let cpu = after.saturating_sub(before);
            println!(
                "fanout: server CPU {:.2} s: {:.2} us per delivery",
                cpu.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64
            );
        }
        _ => println!("fanout: pass --server-pid to read the server's CPU time"),
    }
    Ok(())
}

/// `POST /rooms` on the server behind `ws_url` with `token`; an existing room is fine.
async fn create_room(ws_url: &str, token: &str, room: &str) -> Result<(), String> {
    let body = serde_json::json!({"name": room, "roomId": room}).to_string();
    let answer = link::http_exchange(ws_url, |host| {
        format!(
            "POST /rooms HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    })
    .await?;
    let answer = String::from_utf8_lossy(&answer);
    if answer.starts_with("HTTP/1.1 2") || answer.starts_with("HTTP/1.1 409") {
        Ok(())
    } else {
        Err(format!(
            "creating room {room}: {}",
            answer.lines().next().unwrap_or_default()
        ))
    }
}

async fn store(
    target: &Target,
    rooms: usize,
    publishers: usize,
    messages: usize,
    window: usize,
) -> Result<(), String> {
    ensure_loopback(&target.url)?;
    let tokens = tokens(target);
    let room_names: Vec<String> = if rooms == 1 {
        vec![target.room.clone()]
    } else {
        (0..rooms).map(|n| format!("bench-{n}")).collect()
    };
    if rooms > 1 {
        let creator = Identity {
            rand_id: "LoadRooms".to_owned(),
            name_tag: "#10AD00".to_owned(),
        };
        let token = tokens.issue(&creator, "127.0.0.1");
        for room in &room_names {
            create_room(&target.url, &token, room).await?;
        }
    }
    let mut clients = Vec::with_capacity(publishers);
    for n in 0..publishers {
        clients.push(Client::connect(target, &tokens, n).await?);
    }
    let cpu_before = target.server_pid.and_then(cpu_time);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(publishers);
    for (n, mut client) in clients.into_iter().enumerate() {
        let room = room_names[n % room_names.len()].clone();
        let destination = target.send_destination().to_owned();
        tasks.push(tokio::spawn(async move {
            client
                .publish_windowed(&destination, &room, messages, window)
                .await
        }));
    }
    let mut stored = 0usize;
    for task in tasks {
        stored += task.await.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed();
    println!(
        "store: {publishers} publishers over {rooms} rooms, window {window}: {stored} messages stored in {:.2} s: {:.0} stored messages/s",
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64()
    );
    if let (Some(before), Some(after)) = (cpu_before, target.server_pid.and_then(cpu_time)) {
        let cpu = after.saturating_sub(before);
        println!(
            "store: server CPU {:.2} s: {:.1} us per stored message",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / stored.max(1) as f64
        );
    }
    Ok(())
}
