//! The embedded default keeps what it is given: `rtchat-server` with no store flags (SQLite in
//! `--data-dir`), killed and started again on the same directory, still has the rooms, the
//! history, the seqs, the log epoch and the identities (its generated JWT secret).

mod common;

use common::StompClient;
use rtchat_stomp::Command;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep};

/// `rtchat-server` on `data_dir`, killed when dropped.
struct Embedded {
    child: Child,
}

impl Embedded {
    async fn start(data_dir: &Path, addr: SocketAddr) -> Embedded {
        let child = Process::new(env!("CARGO_BIN_EXE_rtchat-server"))
            .args(["--bind", &addr.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("RTCHAT_STORE")
            .env_remove("RTCHAT_JWT_SECRET")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("rtchat-server starts");
        let server = Embedded { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(addr, "/healthz", None).await.is_none() {
            assert!(Instant::now() < deadline, "the server never answered");
            sleep(Duration::from_millis(50)).await;
        }
        server
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET path` (with a bearer token); the JSON body, `None` when nobody answers.
async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Option<serde_json::Value> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let text = String::from_utf8(raw).ok()?;
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
}

fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// Sends one message with a receipt; returns CONNECTED's epoch.
async fn chat(addr: SocketAddr, token: &str, text: &str) -> String {
    let mut client = StompClient::open(&format!("ws://{addr}/ws"), "v12.stomp").await;
    client
        .send(&format!(
            "CONNECT\naccept-version:1.2\nhost:rtchat\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0"
        ))
        .await;
    let connected = client.frame().await;
    assert_eq!(connected.command, Command::Connected, "{connected:?}");
    client
        .send(&format!(
            "SEND\ndestination:/pub/chat\nreceipt:r\n\n{{\"roomId\":\"lobby\",\"message\":\"{text}\"}}\0"
        ))
        .await;
    let receipt = client.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    connected.get("epoch").expect("epoch").to_owned()
}

#[tokio::test]
async fn a_restart_keeps_history_seqs_epoch_and_identities() {
    let data = tempfile::tempdir().expect("temp dir");
    let addr = free_address();
    let mut first = Embedded::start(data.path(), addr).await;
    let init = get(addr, "/init", None).await.expect("/init");
    let token = init["response"].as_str().expect("token").to_owned();
    let epoch = chat(addr, &token, "before the restart").await;
    // Killed, not stopped: what was receipted is committed.
    first.kill();

    let _second = Embedded::start(data.path(), addr).await;
    let again = get(addr, "/init", Some(&token)).await.expect("/init");
    assert_eq!(
        again["type"], "SUCCESS_TOKEN_VALID",
        "the identity survives: {again}"
    );
    let history = get(addr, "/message?roomId=lobby&limit=10", Some(&token))
        .await
        .expect("history");
    let messages = history["response"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{history}");
    assert_eq!(messages[0]["message"], "before the restart");
    assert_eq!(messages[0]["seq"], 1);
    assert_eq!(
        chat(addr, &token, "after the restart").await,
        epoch,
        "the same log: the same epoch"
    );
    let history = get(addr, "/message?roomId=lobby&limit=10", Some(&token))
        .await
        .expect("history");
    assert_eq!(history["response"][0]["seq"], 2, "the log goes on");
    // The secret is in the data directory, readable by its owner only.
    assert!(data.path().join("jwt-secret").exists());
    assert!(data.path().join(rtchat_server::SQLITE_FILE).exists());
}
