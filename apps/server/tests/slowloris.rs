//! Slow and silent clients cannot hold sockets (Slowloris), and cannot lock out `/healthz`: the
//! header read timeout, the idle timeout, the cap on connections not yet upgraded (accepted
//! and closed above it), and a small open-file limit. Small settings keep each test to a few
//! seconds; every wait is bounded, and every outcome is a socket closing or a request
//! answered.

mod common;

use common::{StompClient, TestServer};
use rtchat_server::ServerConfig;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

/// A request that takes a while to send a byte at a time.
const SLOW_REQUEST: &[u8] =
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: one-byte-at-a-time/1.0\r\n\r\n";

fn config(header_read: Duration, idle: Duration, max_pending: u32) -> ServerConfig {
    let mut config = common::config();
    config.header_read_timeout = header_read;
    config.idle_timeout = idle;
    config.max_pending_connections = max_pending;
    config
}

/// `GET /healthz` on a fresh connection: whether it was answered `200` within `within`.
async fn healthz(addr: SocketAddr, within: Duration) -> bool {
    healthz_over(TcpStream::connect(addr), within).await
}

/// `GET /healthz` on the connection `connect` opens: whether it was answered `200` within
/// `within` (connecting included).
async fn healthz_over(
    connect: impl std::future::Future<Output = std::io::Result<TcpStream>>,
    within: Duration,
) -> bool {
    let attempt = async {
        let mut stream = connect.await.ok()?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        Some(answer.starts_with(b"HTTP/1.1 200"))
    };
    matches!(timeout(within, attempt).await, Ok(Some(true)))
}

/// Waits (at most `within`) for the server to close `stream`: a read that returns EOF or an
/// error. Returns how long that took, `None` when it stayed open.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buffer = [0; 1024];
    timeout(within, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => continue,
            }
        }
    })
    .await
    .ok()
}

/// One answer to a kept-alive request, read whole (the head, then `Content-Length` bytes).
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0; 1024];
    loop {
        let read = timeout(Duration::from_secs(2), stream.read(&mut buffer))
            .await
            .expect("an answer within 2 s")
            .expect("read");
        assert!(read > 0, "closed before the answer was whole");
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("Content-Length");
            if body.len() >= length {
                return text;
            }
        }
    }
}

/// Sends [`SLOW_REQUEST`] a byte every `pace`; returns how long the server let the socket
/// live, failing if it waited for the whole head.
async fn dribble(addr: SocketAddr, pace: Duration) -> Duration {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let start = Instant::now();
    for byte in SLOW_REQUEST {
        // A write may still succeed after the server closed; the read below tells.
        let _ = stream.write_all(std::slice::from_ref(byte)).await;
        if closed_within(&mut stream, pace).await.is_some() {
            return start.elapsed();
        }
    }
    panic!(
        "the server waited {:?} for a head sent a byte at a time",
        start.elapsed()
    );
}

#[tokio::test]
async fn requests_sent_a_byte_at_a_time_are_closed_at_the_header_timeout_while_healthz_answers() {
    const HEADER_READ: Duration = Duration::from_secs(1);
    const DRIBBLERS: usize = 60;
    let server = TestServer::start_with(config(HEADER_READ, Duration::from_secs(30), 1024)).await;
    let addr = server.addr;
    // 60 bytes or more at 50 ms a byte: 3 s for the whole head, three times the timeout.
    let pace = Duration::from_millis(50);
    let dribblers: Vec<_> = (0..DRIBBLERS)
        .map(|_| tokio::spawn(dribble(addr, pace)))
        .collect();
    // While they dribble, a fresh connection's /healthz is answered at once, every time.
    let start = Instant::now();
    let mut checks = 0;
    while dribblers.iter().any(|dribbler| !dribbler.is_finished()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "dribblers still open after 10 s"
        );
        assert!(
            healthz(addr, Duration::from_millis(500)).await,
            "/healthz did not answer within 500 ms while {DRIBBLERS} sockets dribbled"
        );
        checks += 1;
        sleep(Duration::from_millis(100)).await;
    }
    assert!(checks >= 5, "/healthz was checked {checks} times");
    for dribbler in dribblers {
        let lived = dribbler.await.expect("dribbler");
        assert!(
            lived >= HEADER_READ.mul_f32(0.8) && lived <= HEADER_READ + Duration::from_secs(2),
            "a dribbled request lived {lived:?}; the header timeout is {HEADER_READ:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_header_timeout() {
    const HEADER_READ: Duration = Duration::from_millis(500);
    let server = TestServer::start_with(config(HEADER_READ, Duration::from_secs(30), 64)).await;
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let lived = closed_within(&mut silent, Duration::from_secs(5))
        .await
        .expect("a silent connection is closed");
    assert!(
        lived >= HEADER_READ.mul_f32(0.8) && lived <= HEADER_READ + Duration::from_secs(2),
        "a silent connection lived {lived:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    const HEADER_READ: Duration = Duration::from_millis(500);
    const IDLE: Duration = Duration::from_secs(2);
    let server = TestServer::start_with(config(HEADER_READ, IDLE, 64)).await;
    let mut kept = TcpStream::connect(server.addr).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("request");
    let answer = read_answer(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let idle = closed_within(&mut kept, Duration::from_secs(6))
        .await
        .expect("an idle kept-alive connection is closed");
    assert!(
        idle >= IDLE.mul_f32(0.9) && idle <= IDLE + Duration::from_secs(2),
        "kept alive {idle:?} with nothing to do; the idle timeout is {IDLE:?}, the header \
         timeout {HEADER_READ:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_next_request_on_a_kept_alive_connection_has_the_header_timeout_from_its_first_byte() {
    const HEADER_READ: Duration = Duration::from_millis(500);
    const IDLE: Duration = Duration::from_secs(5);
    let server = TestServer::start_with(config(HEADER_READ, IDLE, 64)).await;
    let mut kept = TcpStream::connect(server.addr).await.expect("connect");
    // Between requests the connection waits longer than the header timeout: kept alive, that
    // is allowed, and each request's head has its own clock.
    for _ in 0..4 {
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .expect("request");
        let answer = read_answer(&mut kept).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Longer than the header timeout, shorter than the idle one.
        sleep(HEADER_READ * 2).await;
    }
    // The start of a request, and then nothing: closed at the header timeout, long before
    // the idle timeout.
    kept.write_all(b"GET /hea").await.expect("part of a head");
    let lived = closed_within(&mut kept, IDLE)
        .await
        .expect("a half-sent head is closed");
    assert!(
        lived >= HEADER_READ.mul_f32(0.8) && lived <= HEADER_READ + Duration::from_secs(2),
        "a half-sent head lived {lived:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_websocket_outlives_the_header_and_idle_timeouts_and_leaves_the_cap() {
    const IDLE: Duration = Duration::from_millis(500);
    // One connection not yet upgraded at most: the WebSocket must not keep holding it.
    let server = TestServer::start_with(config(Duration::from_millis(300), IDLE, 1)).await;
    let token = server.token_for("#A1B2C3");
    let mut client = StompClient::connect(&server.ws_url(), &token).await;
    // Silent far longer than both timeouts (heart-beats are off: STOMP's own liveness rules).
    sleep(IDLE * 3).await;
    client
        .send("SUBSCRIBE\nid:0\ndestination:/sub/channel/lobby\nreceipt:still-here\n\n\0")
        .await;
    let receipt = client.frame().await;
    assert_eq!(receipt.get("receipt-id"), Some("still-here"), "{receipt:?}");
    assert!(
        healthz(server.addr, Duration::from_secs(1)).await,
        "the upgraded WebSocket still counts against the cap"
    );
    server.stop().await;
}

#[tokio::test]
async fn above_the_pending_cap_connections_are_accepted_and_closed_until_the_holders_go() {
    const CAP: u32 = 8;
    // Long timeouts: the holders stay until they go.
    let server = TestServer::start_with(config(
        Duration::from_secs(30),
        Duration::from_secs(30),
        CAP,
    ))
    .await;
    let addr = server.addr;
    let mut holders = Vec::new();
    for _ in 0..CAP {
        holders.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // Behind them in the backlog, every new connection is accepted and closed at once.
    for n in 0..20 {
        let mut late = TcpStream::connect(addr).await.expect("connect");
        assert!(
            closed_within(&mut late, Duration::from_secs(2))
                .await
                .is_some(),
            "connection {n} above the cap was left open"
        );
    }
    assert!(
        !healthz(addr, Duration::from_secs(1)).await,
        "a connection above the cap was served"
    );
    // The holders are not closed by the refusals.
    for holder in &mut holders {
        assert_eq!(closed_within(holder, Duration::from_millis(10)).await, None);
    }
    drop(holders);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !healthz(addr, Duration::from_millis(500)).await {
        assert!(
            Instant::now() < deadline,
            "/healthz still refused 3 s after the holders went"
        );
        sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

/// A connection to `addr` from the loopback address `from` (Linux answers on all of 127/8).
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("source address"))
        .expect("bind the source address");
    socket.connect(addr).await.expect("connect")
}

/// `GET /healthz` from the loopback address `from`: whether it was answered `200`.
async fn healthz_from(from: &str, addr: SocketAddr, within: Duration) -> bool {
    healthz_over(async { Ok(connect_from(from, addr).await) }, within).await
}

#[tokio::test]
async fn one_address_cannot_take_the_pending_cap_from_the_others() {
    const SHARE: u32 = 4;
    let mut config = config(Duration::from_secs(30), Duration::from_secs(30), 64);
    config.max_pending_per_address = SHARE;
    let server = TestServer::start_with(config).await;
    let addr = server.addr;
    let mut holders = Vec::new();
    for _ in 0..SHARE {
        holders.push(connect_from("127.0.0.2", addr).await);
    }
    // The greedy address's next connections are accepted and closed at once...
    for n in 0..10 {
        let mut late = connect_from("127.0.0.2", addr).await;
        assert!(
            closed_within(&mut late, Duration::from_secs(2))
                .await
                .is_some(),
            "connection {n} above the address's share was left open"
        );
    }
    assert!(
        !healthz_from("127.0.0.2", addr, Duration::from_secs(1)).await,
        "a connection above the address's share was served"
    );
    // ...while everyone else is served, and the holders stay open.
    assert!(healthz_from("127.0.0.3", addr, Duration::from_secs(2)).await);
    assert!(healthz(addr, Duration::from_secs(2)).await);
    for holder in &mut holders {
        assert_eq!(closed_within(holder, Duration::from_millis(10)).await, None);
    }
    // A holder that goes gives its place back.
    holders.pop();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !healthz_from("127.0.0.2", addr, Duration::from_millis(500)).await {
        assert!(
            Instant::now() < deadline,
            "the address got no place back after a holder went"
        );
        sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

/// `rtchat-server` with an open-file limit of `open_files` (soft and hard), killed when
/// dropped.
struct LimitedServer {
    child: Child,
    addr: SocketAddr,
    stderr: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl LimitedServer {
    async fn start(open_files: u64, header_read: &str) -> LimitedServer {
        use std::os::unix::process::CommandExt;
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr = dir.path().join("stderr.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_rtchat-server"));
        command
            .args(["--bind", &addr.to_string(), "--store", "memory"])
            .args(["--jwt-secret", common::SECRET])
            .args(["--header-read-timeout", header_read])
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let limit = libc::rlimit {
            rlim_cur: open_files,
            rlim_max: open_files,
        };
        // SAFETY: between fork and exec the hook only makes one system call, which is
        // async-signal-safe, and touches nothing of the parent's.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = command.spawn().expect("rtchat-server starts");
        let server = LimitedServer {
            child,
            addr,
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !healthz(addr, Duration::from_secs(1)).await {
            assert!(Instant::now() < deadline, "the server never answered");
            sleep(Duration::from_millis(50)).await;
        }
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for LimitedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn with_few_file_descriptors_idle_sockets_cannot_lock_healthz_out() {
    // 300 descriptors: 44 left after the 256 reserved, so at most 22 connections not yet
    // upgraded; the attack below opens more sockets than the server has descriptors.
    const OPEN_FILES: u64 = 300;
    const ATTACKERS: usize = 400;
    const HEADER_READ: Duration = Duration::from_secs(1);
    // This test's own process holds the attacking sockets.
    rtchat_server::open_files::raise_to_hard_limit();
    let server = LimitedServer::start(OPEN_FILES, "1s").await;
    let addr = server.addr;
    let mut attackers = Vec::with_capacity(ATTACKERS);
    for _ in 0..ATTACKERS {
        // The kernel's backlog may refuse some outright; that is fine too.
        if let Ok(stream) = TcpStream::connect(addr).await {
            attackers.push(stream);
        }
    }
    // Every attacker is closed by the server: at once above the cap, at the header timeout
    // below it. None is left holding a descriptor.
    let start = Instant::now();
    let closings = attackers.into_iter().map(|mut stream| async move {
        closed_within(&mut stream, HEADER_READ + Duration::from_secs(4)).await
    });
    let closed = futures_util::future::join_all(closings).await;
    let open = closed.iter().filter(|lived| lived.is_none()).count();
    assert_eq!(open, 0, "{open} idle sockets were never closed");
    let at_once = closed
        .iter()
        .filter(|lived| lived.is_some_and(|lived| lived < HEADER_READ / 2))
        .count();
    assert!(
        at_once >= closed.len() - 22,
        "only {at_once} of {} sockets above the cap were closed at once",
        closed.len()
    );
    // With the attackers gone, /healthz answers at once.
    assert!(
        healthz(addr, Duration::from_secs(1)).await,
        "/healthz did not answer {:?} after the attack began",
        start.elapsed()
    );
    let log = server.log();
    assert!(
        log.contains("--max-pending-connections reached"),
        "the refusals were not logged:\n{log}"
    );
    assert!(
        !log.contains("cannot accept connections"),
        "the server ran out of descriptors:\n{log}"
    );
}
