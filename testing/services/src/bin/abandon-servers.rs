//! A helper process for the watchdog test (`tests/watchdog.rs`): starts a throwaway
//! PostgreSQL and Redis, reports them on stdout (`SERVER <pid> <directory>`, then `READY`),
//! and never drops them, as the shared servers in their statics never are. The test then
//! SIGKILLs it and checks that the watchdogs stopped both servers and deleted their
//! directories.

use rtchat_test_services::{PostgresServer, RedisServer};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let (postgres, redis) = match (PostgresServer::start(), RedisServer::start()) {
        (Ok(postgres), Ok(redis)) => (postgres, redis),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("abandon-servers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut report = String::new();
    for (pid, root) in [
        (postgres.pid(), postgres.root()),
        (redis.pid(), redis.root()),
    ] {
        let Some(pid) = pid else {
            eprintln!("abandon-servers: a server has no pid right after starting");
            return ExitCode::FAILURE;
        };
        report.push_str(&format!("SERVER {pid} {}\n", root.display()));
    }
    report.push_str("READY\n");
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(report.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    std::mem::forget((postgres, redis));
    // Only a safety net should the test never kill us: exiting lets the watchdogs clean up.
    std::thread::sleep(Duration::from_secs(120));
    ExitCode::SUCCESS
}
