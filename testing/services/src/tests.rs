//! The servers against the real binaries: crash and restart on the same port, clean-up on
//! drop, clean-up when the test process is killed, and the shared servers. Each test skips
//! (visibly) where its server is not installed.

use crate::pg_wire::{self, WireError};
use crate::shared::{Service, require_services, skip_or_fail};
use crate::{PostgresServer, RedisServer, shared_database_url, shared_redis_url};
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the watchdog may take to stop a server and delete its directory.
const CLEANUP_WAIT: Duration = Duration::from_secs(20);
/// Set in the environment of the helper process of `servers_do_not_outlive_the_test_process`.
const HELPER_ENV: &str = "RTCHAT_TEST_SERVICES_ABANDONING_HELPER";
/// The helper's test name, as libtest's `--exact` filter wants it.
const HELPER_TEST: &str = "tests::start_servers_and_wait_to_be_killed";

/// Whether process `pid` exists and has not exited (a zombie has: only its status waits to
/// be collected).
fn is_running(pid: u32) -> bool {
    if Path::new("/proc/self/stat").exists() {
        return fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            // "pid (command) state ...": the command may contain spaces and parentheses.
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        });
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; no memory is involved.
    let status = unsafe { libc::kill(pid, 0) };
    status == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Polls `condition` until it holds or `within` has passed; whether it held.
fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn assert_connection_refused<T: std::fmt::Debug, E: std::fmt::Debug>(
    what: &str,
    outcome: Result<T, E>,
    is_refusal: impl FnOnce(&E) -> bool,
) {
    match outcome {
        Err(error) if is_refusal(&error) => {}
        other => panic!("{what}: expected the connection to be refused, got {other:?}"),
    }
}

#[test]
fn postgres_crashes_and_comes_back_on_the_same_port_with_its_data() {
    let Some(mut server) = PostgresServer::start_or_skip(
        "postgres_crashes_and_comes_back_on_the_same_port_with_its_data",
    ) else {
        return;
    };
    let port = server.port();
    assert_eq!(
        server.url(),
        format!("postgres://postgres@127.0.0.1:{port}/test")
    );
    pg_wire::session(
        port,
        "postgres",
        "test",
        Some("CREATE TABLE survivor (id int); INSERT INTO survivor VALUES (1)"),
    )
    .expect("the database `test` exists and takes a table");
    let root = server.root().to_owned();
    assert!(
        root.join("data/PG_VERSION").is_file(),
        "a cluster in {root:?}"
    );
    let first = server.pid().expect("a pid while running");
    assert!(is_running(first));

    server.stop_immediate().expect("crash");
    assert_eq!(server.pid(), None);
    assert!(!is_running(first), "the postmaster has exited");
    assert_connection_refused(
        "after stop_immediate",
        pg_wire::session(port, "postgres", "test", None),
        |error| matches!(error, WireError::Io(error) if error.kind() == ErrorKind::ConnectionRefused),
    );
    server
        .stop_immediate()
        .expect("stopping a stopped server does nothing");

    server.start_again().expect("back after the crash");
    assert_eq!(server.port(), port);
    let second = server.pid().expect("a pid while running");
    assert!(is_running(second));
    // Divides by zero (an error) unless the committed row survived the crash.
    pg_wire::session(
        port,
        "postgres",
        "test",
        Some("SELECT 1 / count(*) FROM survivor WHERE id = 1"),
    )
    .expect("the same data directory, with the row committed before the crash");
    server
        .start_again()
        .expect("starting a running server only waits");
    assert_eq!(server.pid(), Some(second), "no second postmaster");

    drop(server);
    assert!(!is_running(second), "dropping stops the postmaster");
    assert!(!root.exists(), "dropping deletes {root:?}");
}

#[test]
fn redis_is_killed_and_comes_back_empty_on_the_same_port() {
    let Some(mut server) =
        RedisServer::start_or_skip("redis_is_killed_and_comes_back_empty_on_the_same_port")
    else {
        return;
    };
    let port = server.port();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
    crate::redis::ping(port).expect("answers PING");
    let root = server.root().to_owned();
    assert!(root.is_dir());
    let first = server.pid().expect("a pid while running");
    assert!(is_running(first));

    server.kill().expect("kill");
    assert_eq!(server.pid(), None);
    assert!(!is_running(first), "redis-server has exited");
    assert_connection_refused("after kill", crate::redis::ping(port), |error: &String| {
        error.contains("refused")
    });
    server.kill().expect("killing a killed server does nothing");

    server.start_again().expect("back after the kill");
    assert_eq!(server.port(), port);
    let second = server.pid().expect("a pid while running");
    crate::redis::ping(port).expect("answers PING again");

    drop(server);
    assert!(!is_running(second), "dropping kills redis-server");
    assert!(!root.exists(), "dropping deletes {root:?}");
}

/// Kills its helper child when dropped, so a failed assertion leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn servers_do_not_outlive_the_test_process() {
    let test = "servers_do_not_outlive_the_test_process";
    let installed = [
        (Service::POSTGRES, crate::postgres::check_installed()),
        (Service::REDIS, crate::redis::program().map(drop)),
    ];
    for (service, installed) in installed {
        if let Err(reason) = installed {
            let _: Option<()> = skip_or_fail(
                require_services(),
                service,
                test,
                "it needs PostgreSQL and Redis",
                &reason,
            );
            return;
        }
    }
    // This very test binary, running only the helper below, which starts a server of each
    // kind and never drops them, like the shared servers in their statics.
    let mut helper = KillOnDrop(
        Command::new(std::env::current_exe().expect("the test binary's path"))
            .args([HELPER_TEST, "--exact", "--ignored", "--nocapture"])
            .env(HELPER_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the helper"),
    );
    let output = helper
        .0
        .stdout
        .take()
        .expect("the helper's stdout is piped");
    let mut servers: Vec<(u32, PathBuf)> = Vec::new();
    let mut transcript = String::new();
    for line in BufReader::new(output).lines() {
        let line = line.expect("read the helper's output");
        transcript.push_str(&line);
        transcript.push('\n');
        if line == "READY" {
            break;
        }
        if let Some((pid, root)) = line
            .strip_prefix("SERVER ")
            .and_then(|server| server.split_once(' '))
        {
            servers.push((pid.parse().expect("a pid"), PathBuf::from(root)));
        }
    }
    assert_eq!(
        servers.len(),
        2,
        "the helper reports its two servers; it said:\n{transcript}"
    );
    for (pid, root) in &servers {
        assert!(is_running(*pid), "server {pid} runs before the kill");
        assert!(root.is_dir(), "{root:?} exists before the kill");
    }

    // SIGKILL: no destructor, no exit handler, nothing of the helper runs again.
    drop(helper);

    let cleaned_up = eventually(CLEANUP_WAIT, || {
        servers
            .iter()
            .all(|(pid, root)| !is_running(*pid) && !root.exists())
    });
    assert!(
        cleaned_up,
        "left behind after the test process died: {:?}",
        servers
            .iter()
            .filter(|(pid, root)| is_running(*pid) || root.exists())
            .collect::<Vec<_>>()
    );
}

#[test]
#[ignore = "not a test: the process servers_do_not_outlive_the_test_process starts and kills"]
fn start_servers_and_wait_to_be_killed() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let postgres = PostgresServer::start().expect("PostgreSQL starts");
    let redis = RedisServer::start().expect("Redis starts");
    let mut report = String::new();
    for (pid, root) in [
        (postgres.pid(), postgres.root()),
        (redis.pid(), redis.root()),
    ] {
        let pid = pid.expect("a pid while running");
        report.push_str(&format!("SERVER {pid} {}\n", root.display()));
    }
    report.push_str("READY\n");
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(report.as_bytes()).expect("report");
    stdout.flush().expect("report");
    drop(stdout);
    std::mem::forget((postgres, redis));
    // Only a safety net should the parent never kill us: exiting lets the watchdogs clean up.
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn shared_database_url_is_the_environments_or_one_throwaway_server() {
    let test = "shared_database_url_is_the_environments_or_one_throwaway_server";
    let Some(url) = shared_database_url(test) else {
        return;
    };
    assert_eq!(
        shared_database_url(test).as_ref(),
        Some(&url),
        "one server per test binary"
    );
    match std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        Some(configured) => assert_eq!(url, configured),
        None => {
            let port: u16 = url
                .strip_prefix("postgres://postgres@127.0.0.1:")
                .and_then(|rest| rest.strip_suffix("/test"))
                .and_then(|port| port.parse().ok())
                .unwrap_or_else(|| panic!("a throwaway server's url, got {url}"));
            assert_ne!(
                port, 5432,
                "a throwaway server, not the system's PostgreSQL"
            );
            pg_wire::session(port, "postgres", "test", Some("SELECT 1"))
                .expect("the throwaway server has the database `test`");
        }
    }
}

#[test]
fn shared_redis_url_is_the_environments_or_one_throwaway_server() {
    let test = "shared_redis_url_is_the_environments_or_one_throwaway_server";
    let Some(url) = shared_redis_url(test) else {
        return;
    };
    assert_eq!(
        shared_redis_url(test).as_ref(),
        Some(&url),
        "one server per test binary"
    );
    match std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        Some(configured) => assert_eq!(url, configured),
        None => {
            let port: u16 = url
                .strip_prefix("redis://127.0.0.1:")
                .and_then(|port| port.parse().ok())
                .unwrap_or_else(|| panic!("a throwaway server's url, got {url}"));
            assert_ne!(port, 6379, "a throwaway server, not the system's Redis");
            crate::redis::ping(port).expect("the throwaway server answers PING");
        }
    }
}
