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
    cli_with_env(args, stdin, &[]).await
}

/// Runs `rtchat-cli ARGS` with `stdin` and the environment variables `env`, bounded by [`WAIT`].
async fn cli_with_env(args: &[&str], stdin: &str, env: &[(&str, &Path)]) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
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

/// A TLS-terminating proxy on 127.0.0.1 in front of `backend` (the test server's HTTP port),
/// with a certificate for `localhost` from a throwaway CA written to `ca_file`: an `https://`
/// server as a deployment behind a TLS proxy has it. Returns the proxy's port.
async fn tls_proxy(backend: &str, ca_file: &Path) -> u16 {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio_rustls::rustls;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("a CA key"))
        .expect("a CA certificate");
    std::fs::write(ca_file, ca.pem()).expect("the CA written");
    let leaf_key = KeyPair::generate().expect("a key");
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("certificate parameters")
        .signed_by(&leaf_key, &ca)
        .expect("a certificate signed by the CA");
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
        .expect("a private key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
    .expect("a TLS server configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let port = listener.local_addr().expect("an address").port();
    let backend = backend.to_owned();
    // Ends with the test's runtime.
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let backend = backend.clone();
            tokio::spawn(async move {
                let Ok(mut client) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut server) = tokio::net::TcpStream::connect(&backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn an_https_server_is_reached_over_wss_and_webtransport() {
    let server = start(true).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let ca_file = dir.path().join("ca.pem");
    let backend = server.url.trim_start_matches("http://").to_owned();
    let port = tls_proxy(&backend, &ca_file).await;
    let https = format!("https://localhost:{port}");
    let trust = [("SSL_CERT_FILE", ca_file.as_path())];
    let token_file = dir.path().join("token");
    let token = token_file.to_str().expect("a UTF-8 path");

    // wss:// (the token from GET /init over TLS), then WebTransport found through
    // GET /webtransport over TLS: each hears what the other said.
    let base = [
        "--server",
        &https,
        "--token-file",
        token,
        "--room",
        "garden",
    ];
    let mut args = base.to_vec();
    args.extend(["--transport", "ws", "--send", "over wss"]);
    let sent = cli_with_env(&args, "", &trust).await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let mut args = base.to_vec();
    args.extend(["--transport", "wt", "--since-seq", "0", "--listen", "1"]);
    let heard = cli_with_env(&args, "", &trust).await;
    assert_eq!(heard.code, Some(0), "{heard:?}");
    assert_line(heard.stdout.trim_end(), "over wss");

    let mut args = base.to_vec();
    args.extend(["--transport", "wt", "--send", "over WebTransport"]);
    let sent = cli_with_env(&args, "", &trust).await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let mut args = base.to_vec();
    args.extend(["--transport", "ws", "--since-seq", "1", "--listen", "1"]);
    let heard = cli_with_env(&args, "", &trust).await;
    assert_eq!(heard.code, Some(0), "{heard:?}");
    assert_line(heard.stdout.trim_end(), "over WebTransport");

    // Trusting only another CA (one that signed another proxy's certificate), the
    // certificate is not trusted: a clear error, exit 1.
    let other_roots = dir.path().join("other.pem");
    tls_proxy(&backend, &other_roots).await;
    let untrusted = [("SSL_CERT_FILE", other_roots.as_path())];
    let mut args = base.to_vec();
    args.extend(["--send", "x"]);
    let refused = cli_with_env(&args, "", &untrusted).await;
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains(&format!("cannot reach {https}"))
            && refused.stderr.contains("certificate"),
        "{refused:?}"
    );
    server.stop().await;
}
