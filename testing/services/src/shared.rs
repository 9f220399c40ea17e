//! The servers a whole test binary shares, and what happens when there is none.

use crate::{PostgresServer, RedisServer, Unavailable};
use std::collections::BTreeSet;
use std::io::{self, Write};
use std::sync::{Mutex, OnceLock, PoisonError};

/// A kind of server, for the environment variable that names one and for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Service {
    name: &'static str,
    env_var: &'static str,
}

impl Service {
    pub(crate) const POSTGRES: Service = Service {
        name: "PostgreSQL",
        env_var: "DATABASE_URL",
    };
    pub(crate) const REDIS: Service = Service {
        name: "Redis",
        env_var: "REDIS_URL",
    };
}

/// Started at most once per test binary; never dropped: the watchdog stops it after the
/// process exits.
static SHARED_POSTGRES: OnceLock<Result<PostgresServer, Unavailable>> = OnceLock::new();
/// As [`SHARED_POSTGRES`].
static SHARED_REDIS: OnceLock<Result<RedisServer, Unavailable>> = OnceLock::new();

/// The PostgreSQL for `test_name`: `DATABASE_URL` when set (and not empty), otherwise a
/// throwaway server shared by every test of this test binary, started on first use
/// (`postgres://postgres@127.0.0.1:<port>/test`).
///
/// `None` only when PostgreSQL is not installed: the test should then return early. The
/// skip is printed where `cargo test` shows it (see the crate documentation). Panics
/// instead when `RTCHAT_REQUIRE_SERVICES=1`, and whenever PostgreSQL is installed but its
/// throwaway server does not start (a broken setup must not pass as a skip).
///
/// Tests sharing the server share its database: give each test a schema or names of its own.
#[track_caller]
pub fn shared_database_url(test_name: &str) -> Option<String> {
    shared_url(
        Service::POSTGRES,
        test_name,
        &SHARED_POSTGRES,
        PostgresServer::start,
        PostgresServer::url,
    )
}

/// The Redis for `test_name`: `REDIS_URL` when set (and not empty), otherwise a throwaway
/// server shared by every test of this test binary, started on first use
/// (`redis://127.0.0.1:<port>`).
///
/// `None` only when Redis is not installed, as for [`shared_database_url`], which see.
/// Tests sharing the server share its keys: give each test a prefix of its own.
#[track_caller]
pub fn shared_redis_url(test_name: &str) -> Option<String> {
    shared_url(
        Service::REDIS,
        test_name,
        &SHARED_REDIS,
        RedisServer::start,
        RedisServer::url,
    )
}

#[track_caller]
fn shared_url<S>(
    service: Service,
    test_name: &str,
    server: &OnceLock<Result<S, Unavailable>>,
    start: fn() -> Result<S, Unavailable>,
    url: fn(&S) -> String,
) -> Option<String> {
    if let Some(configured) = std::env::var(service.env_var)
        .ok()
        .filter(|url| !url.is_empty())
    {
        return Some(configured);
    }
    let started = server.get_or_init(|| {
        let started = start();
        if let Ok(server) = &started {
            // Captured like any test output: seen with `--nocapture`, or if the test fails.
            eprintln!(
                "rtchat-test-services: {} is unset; started a throwaway {} at {} for this test \
                 binary",
                service.env_var,
                service.name,
                url(server)
            );
        }
        started
    });
    match started {
        Ok(server) => Some(url(server)),
        Err(reason) => skip_or_fail(
            require_services(),
            service,
            test_name,
            &format!(
                "{} is unset, so it needs a throwaway {}",
                service.env_var, service.name
            ),
            reason,
        ),
    }
}

/// Whether `RTCHAT_REQUIRE_SERVICES=1` (CI): a missing server is then a failure.
pub(crate) fn require_services() -> bool {
    std::env::var("RTCHAT_REQUIRE_SERVICES").as_deref() == Ok("1")
}

/// What a test does without a server: `None` (after a visible skip notice) when `service`
/// is not installed, a panic when it is required (`require`) or installed but broken.
/// `need` says what the test needed, e.g. "it needs a Redis of its own".
#[track_caller]
pub(crate) fn skip_or_fail<T>(
    require: bool,
    service: Service,
    test_name: &str,
    need: &str,
    reason: &Unavailable,
) -> Option<T> {
    let notice = skip_notice(require, service, test_name, need, reason);
    report_skip(service, test_name, &notice);
    None
}

/// The line that tells why `test_name` is skipped; panics when it must fail instead.
#[track_caller]
fn skip_notice(
    require: bool,
    service: Service,
    test_name: &str,
    need: &str,
    reason: &Unavailable,
) -> String {
    if !reason.is_not_installed() {
        panic!(
            "{test_name}: {need}, and {} is installed but did not start: {reason}",
            service.name
        );
    }
    if require {
        panic!(
            "{test_name}: {need}, but {reason}; a failure because RTCHAT_REQUIRE_SERVICES=1 \
             (install {}, or set {} to a running server)",
            service.name, service.env_var
        );
    }
    format!(
        "rtchat-test-services: SKIPPED {test_name}: {need}, but {reason}. Install {} to run \
         it; RTCHAT_REQUIRE_SERVICES=1 makes this a failure.\n",
        service.name
    )
}

/// Writes `notice` once per service and test name, past libtest's output capture.
fn report_skip(service: Service, test_name: &str, notice: &str) {
    static REPORTED: Mutex<BTreeSet<(&'static str, String)>> = Mutex::new(BTreeSet::new());
    let first_time = REPORTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert((service.name, test_name.to_owned()));
    if first_time {
        // Not `eprintln!`: libtest captures the print macros of passing tests, not writes to
        // the stderr handle, so this reaches the terminal or CI log of a plain `cargo test`.
        // Nothing useful is left to do if stderr itself fails.
        let _ = io::stderr().lock().write_all(notice.as_bytes());
    }
}

/// Whether both PostgreSQL and Redis can be started here. When one cannot, `test_name` gets
/// the usual skip notice (or, under `RTCHAT_REQUIRE_SERVICES=1`, fails) and this is false:
/// for tests that start servers in another process.
#[track_caller]
pub fn both_installed_or_skip(test_name: &str) -> bool {
    let installed = [
        (Service::POSTGRES, crate::postgres::check_installed()),
        (Service::REDIS, crate::redis::program().map(drop)),
    ];
    for (service, installed) in installed {
        if let Err(reason) = installed {
            let _: Option<()> = skip_or_fail(
                require_services(),
                service,
                test_name,
                "it needs PostgreSQL and Redis",
                &reason,
            );
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_installed() -> Unavailable {
        Unavailable::MissingProgram {
            program: "redis-server",
            searched: "PATH".to_owned(),
        }
    }

    fn broken() -> Unavailable {
        Unavailable::SetupQueryFailed {
            sql: "CREATE DATABASE test".to_owned(),
            error: "disk full".to_owned(),
        }
    }

    #[test]
    fn a_missing_server_is_a_skip_that_names_the_test_and_the_reason() {
        let notice = skip_notice(
            false,
            Service::REDIS,
            "broker_fans_out",
            "it needs a Redis",
            &not_installed(),
        );
        assert_eq!(
            notice,
            "rtchat-test-services: SKIPPED broker_fans_out: it needs a Redis, but \
             `redis-server` is not installed (looked in PATH). Install Redis to run it; \
             RTCHAT_REQUIRE_SERVICES=1 makes this a failure.\n"
        );
    }

    #[test]
    #[should_panic(expected = "RTCHAT_REQUIRE_SERVICES=1")]
    fn a_missing_server_fails_when_services_are_required() {
        skip_notice(
            true,
            Service::REDIS,
            "broker_fans_out",
            "it needs a Redis",
            &not_installed(),
        );
    }

    #[test]
    #[should_panic(expected = "is installed but did not start: `CREATE DATABASE test` failed")]
    fn an_installed_server_that_does_not_start_is_a_failure_not_a_skip() {
        skip_notice(
            false,
            Service::POSTGRES,
            "store_round_trip",
            "it needs a PostgreSQL",
            &broken(),
        );
    }
}
