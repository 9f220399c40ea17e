//! # rtchat-test-services
//!
//! Throwaway PostgreSQL and Redis servers for rtchat's tests, started from the binaries
//! installed on the machine. A dev-dependency only; Unix only.
//!
//! ## Two ways to get a server
//!
//! - [`shared_database_url`] and [`shared_redis_url`], for tests that just need a server:
//!   `DATABASE_URL` / `REDIS_URL` when set (CI points them at its services), otherwise one
//!   throwaway server per test binary, started on first use and shared by all its tests.
//! - [`PostgresServer`] and [`RedisServer`], for tests of faults: a server of the test's own,
//!   which it can crash ([`PostgresServer::stop_immediate`], [`RedisServer::kill`]) and bring
//!   back on the same port ([`PostgresServer::start_again`], [`RedisServer::start_again`]).
//!
//! The API is plain blocking `std`, so synchronous tests and any async runtime can use it
//! (from async code, starting takes a second or so: fine in a test).
//!
//! ## When there is no server
//!
//! | `DATABASE_URL` / `REDIS_URL` | binaries installed | result |
//! |---|---|---|
//! | set | (not needed) | that server |
//! | unset | yes | a throwaway server |
//! | unset | yes, but it does not start | panic: a broken setup must not pass as a skip |
//! | unset | no | `None` and a visible skip notice; a panic under `RTCHAT_REQUIRE_SERVICES=1` |
//!
//! PostgreSQL needs `initdb` and `postgres`: from `PATH`, else from the newest
//! `/usr/lib/postgresql/<version>/bin` (where Debian and Ubuntu put them). Redis needs
//! `redis-server` on `PATH`.
//!
//! **Why the skip notice is written to the stderr handle.** libtest captures what a test
//! prints with `print!`/`eprint!` and shows it only if the test fails, so the old
//! `eprintln!("skipping ...")` of a skipped (hence passing) test never reached anyone. The
//! capture hooks those macros, not the process's stderr: a write to [`std::io::stderr`]
//! goes straight to the terminal or CI log of a plain `cargo test`, between the
//! `test ... ok` lines, once per test and service. The alternatives do not work: a test
//! cannot rename itself to "skipped" at run time, marking tests ignored is decided at compile time,
//! `/dev/tty` does not exist in CI, and failing would make PostgreSQL and Redis mandatory
//! for every contributor. (Runners that capture at the file-descriptor level, such as
//! cargo-nextest, show it with their success-output option.)
//!
//! ## Lifetime: nothing outlives the test process
//!
//! Each server lives in a private temporary directory (data, unix socket, log) and is a
//! direct child of the test process, in a process group of its own. Dropping a server stops
//! it and deletes the directory. But the shared servers live in `static`s, which are never
//! dropped, and a test process can also die from SIGKILL or Ctrl-C. So every server has a
//! watchdog: a small `/bin/sh` script reading a pipe whose write end only the test process
//! holds. It is told the server's pid after every start. When the pipe reaches end of
//! input (the kernel closes it however the test process ends), it stops the server (SIGQUIT
//! for PostgreSQL's immediate shutdown, SIGKILL for Redis) and deletes the directory. This
//! beats `PR_SET_PDEATHSIG`, which is Linux-only, fires when the *thread* that spawned the
//! child ends (libtest runs each test on a thread of its own), and deletes no directory.
//!
//! ## Running as root
//!
//! PostgreSQL refuses to run as root. As root, `initdb` and `postgres` run as the `postgres`
//! account (or `nobody`), which owns the server's directory; the test process and the
//! watchdog stay root. Redis runs as whoever runs the tests.
//!
//! ## Settings
//!
//! Both listen on a free port of 127.0.0.1 only. PostgreSQL: a fresh cluster with trust
//! authentication for the superuser `postgres`, a database `test`, `fsync=off` and
//! `full_page_writes=off` (only an operating-system crash could lose data; a killed
//! server loses nothing committed, since `synchronous_commit` stays on, so fault tests see
//! what a real server would). Redis: no snapshots, no append-only file. Starting waits at
//! most 30 s for the server to accept connections, checked with its own protocol (a
//! PostgreSQL session, a Redis `PING`), so no client library is needed.

#![cfg(unix)]

mod error;
mod pg_wire;
mod postgres;
mod process;
mod redis;
mod shared;

pub use error::Unavailable;
pub use postgres::PostgresServer;
pub use process::is_running;
pub use redis::RedisServer;
pub use shared::{both_installed_or_skip, shared_database_url, shared_redis_url};

#[cfg(test)]
mod tests;
