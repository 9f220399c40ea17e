//! The servers against the real binaries: crash and restart on the same port, clean-up on
//! drop, and the shared servers (clean-up when the test process is killed is
//! `tests/watchdog.rs`). Each test skips (visibly) where its server is not installed.

use crate::pg_wire::{self, WireError};
use crate::{PostgresServer, RedisServer, is_running, shared_database_url, shared_redis_url};
use std::io::ErrorKind;

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
