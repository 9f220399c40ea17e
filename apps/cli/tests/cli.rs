//! `rtchat-cli` against a real in-process server serving both transports: messages cross
//! from one transport to the other both ways, the token is kept and reused, the interactive
//! prompt sends and shows history, and errors end it non-zero with a clear message. Every
//! process is bounded in time and killed if it overruns.

use rtchat_server::{Server, ServerConfig};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::oneshot;

const BIN: &str = env!("CARGO_BIN_EXE_rtchat-cli");
const WAIT: Duration = Duration::from_secs(30);

struct TestServer {
    url: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(webtransport: bool) -> TestServer {
    let mut config = ServerConfig::in_memory();
    config.bind = "127.0.0.1:0".parse().expect("an address");
    config.jwt_secret = Some("cli-test-secret".to_owned());
    config.rooms = vec![
        ("garden".to_owned(), "garden".to_owned()),
        ("pond".to_owned(), "pond".to_owned()),
    ];
    if webtransport {
        config.webtransport = Some("127.0.0.1:0".parse().expect("an address"));
    }
    let server = Server::bind(&config).await.expect("the server starts");
    let url = format!("http://{}", server.local_addr().expect("an address"));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(2),
    ));
    TestServer { url, stop, task }
}

impl TestServer {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// The outcome of one run.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `rtchat-cli ARGS` with `stdin`, bounded by [`WAIT`].
async fn cli(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("rtchat-cli starts");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("stdin written");
    drop(input);
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("rtchat-cli ends in time")
        .expect("rtchat-cli ran");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn common<'a>(server: &'a TestServer, token_file: &'a Path, transport: &'a str) -> Vec<&'a str> {
    vec![
        "--server",
        &server.url,
        "--transport",
        transport,
        "--token-file",
        token_file.to_str().expect("a UTF-8 path"),
    ]
}

/// `name #TAG: text`, the name and tag as the server made them.
fn assert_line(line: &str, text: &str) {
    let (who, said) = line.split_once(": ").expect("name #tag: text");
    assert_eq!(said, text, "{line:?}");
    let (name, tag) = who.split_once(" #").expect("a name and a tag");
    assert!(!name.is_empty(), "{line:?}");
    assert!(
        tag.len() == 6 && tag.chars().all(|c| c.is_ascii_hexdigit()),
        "{line:?}"
    );
}

#[tokio::test]
async fn messages_cross_between_transports_both_ways() {
    let server = start(true).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    for (room, from, to) in [("garden", "ws", "wt"), ("pond", "wt", "ws")] {
        let sender_token = dir.path().join(format!("sender-{room}"));
        let mut args = common(&server, &sender_token, from);
        let text = format!("over {from} to {to}");
        args.extend(["--room", room, "--send", &text]);
        let sent = cli(&args, "").await;
        assert_eq!(sent.code, Some(0), "{sent:?}");
        assert_eq!(sent.stdout, "", "sending alone prints nothing");

        let listener_token = dir.path().join(format!("listener-{room}"));
        let mut args = common(&server, &listener_token, to);
        args.extend(["--room", room, "--since-seq", "0", "--listen", "1"]);
        let heard = cli(&args, "").await;
        assert_eq!(heard.code, Some(0), "{heard:?}");
        assert_eq!(heard.stdout.lines().count(), 1, "{heard:?}");
        assert_line(heard.stdout.trim_end(), &text);
    }
    server.stop().await;
}

#[tokio::test]
async fn the_token_is_kept_and_the_same_identity_comes_back() {
    let server = start(true).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let token_file = dir.path().join("nested").join("token");
    for (transport, text) in [("wt", "first"), ("ws", "second")] {
        let mut args = common(&server, &token_file, transport);
        args.extend(["--send", text]);
        let run = cli(&args, "").await;
        assert_eq!(run.code, Some(0), "{run:?}");
    }
    let token = std::fs::read_to_string(&token_file).expect("the token is kept");
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only its owner may read the token");
    }

    let mut args = common(&server, &token_file, "wt");
    args.extend(["--since-seq", "0", "--listen", "2", "--json"]);
    let run = cli(&args, "").await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let messages: Vec<Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["message"], "first");
    assert_eq!(messages[1]["message"], "second");
    assert_eq!(
        messages[0]["randId"], messages[1]["randId"],
        "the same identity"
    );
    assert_eq!(messages[0]["nameTag"], messages[1]["nameTag"]);
    server.stop().await;
}

#[tokio::test]
async fn the_prompt_sends_lines_switches_rooms_and_shows_history() {
    let server = start(true).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let token_file = dir.path().join("token");
    let args = common(&server, &token_file, "wt");
    let run = cli(
        &args,
        "hello from the prompt\n/room pond\nin the pond\n/dance\n/quit\n",
    )
    .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("unknown command"), "{run:?}");
    assert!(run.stderr.contains("now in pond"), "{run:?}");

    let run = cli(&args, "/history 5\n/room pond\n/history\n/quit\n").await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{run:?}");
    assert_line(lines[0], "hello from the prompt");
    assert_line(lines[1], "in the pond");
    server.stop().await;
}

#[tokio::test]
async fn errors_end_it_non_zero_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let token_file = dir.path().join("token");
    let token_path = token_file.to_str().expect("a UTF-8 path");

    // Nobody listens on this port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let nowhere = format!("http://127.0.0.1:{port}");
    let run = cli(
        &[
            "--server",
            &nowhere,
            "--token-file",
            token_path,
            "--send",
            "x",
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.starts_with("rtchat-cli: cannot reach"),
        "{run:?}"
    );

    let run = cli(&["--server", "ftp://127.0.0.1", "--send", "x"], "").await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("bad --server"), "{run:?}");

    let server = start(false).await;
    let mut args = common(&server, &token_file, "wt");
    args.extend(["--send", "x"]);
    let run = cli(&args, "").await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("does not serve WebTransport"),
        "{run:?}"
    );

    let mut args = common(&server, &token_file, "ws");
    args.extend(["--room", "no-such-room", "--send", "x"]);
    let run = cli(&args, "").await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.starts_with("rtchat-cli: "), "{run:?}");

    let mut args = common(&server, &token_file, "wt");
    args.extend(["--cert-hash", "not-a-hash", "--send", "x"]);
    let run = cli(&args, "").await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("bad --cert-hash"), "{run:?}");
    server.stop().await;
}
