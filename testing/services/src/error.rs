//! Why a throwaway server could not be had.

use std::fmt;
use std::io;
use std::process::ExitStatus;
use std::time::Duration;

/// Why a throwaway server could not be started (or started again).
///
/// Only [`Unavailable::MissingProgram`] and [`Unavailable::NoUnprivilegedAccount`] mean "not
/// installed here": the shared servers turn those into a visible skip. Every other variant
/// means the server is installed but broken, which is a failure, never a skip.
#[derive(Debug)]
#[non_exhaustive]
pub enum Unavailable {
    /// A program the server needs was not found.
    MissingProgram {
        /// The program, e.g. `initdb` or `redis-server`.
        program: &'static str,
        /// Where it was looked for.
        searched: String,
    },
    /// We run as root, PostgreSQL refuses to, and there is no `postgres` (or `nobody`)
    /// account to run it as.
    NoUnprivilegedAccount,
    /// An operating-system call failed.
    Io {
        /// What was being done, e.g. "create a temporary directory".
        action: String,
        /// The error.
        source: io::Error,
    },
    /// A setup command (e.g. `initdb`) ran and failed.
    CommandFailed {
        /// The command, for the message.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// The end of what it printed.
        output: String,
    },
    /// The server exited before it accepted connections.
    ExitedEarly {
        /// `PostgreSQL` or `Redis`.
        server: &'static str,
        /// How it ended.
        status: ExitStatus,
        /// The end of its log.
        log: String,
    },
    /// The server kept running but did not accept connections in time.
    NotReady {
        /// `PostgreSQL` or `Redis`.
        server: &'static str,
        /// How long it was given.
        waited: Duration,
        /// What the last connection attempt got.
        last_attempt: String,
        /// The end of its log.
        log: String,
    },
    /// A setup statement (e.g. `CREATE DATABASE`) failed.
    SetupQueryFailed {
        /// The statement.
        sql: String,
        /// What the server (or the connection) said.
        error: String,
    },
}

impl Unavailable {
    /// Whether the server is simply not installed (or cannot be run) here: the one case
    /// where a test may skip instead of failing.
    pub(crate) fn is_not_installed(&self) -> bool {
        matches!(
            self,
            Unavailable::MissingProgram { .. } | Unavailable::NoUnprivilegedAccount
        )
    }

    /// An [`Unavailable::Io`] for `action`, for `map_err`.
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> Unavailable {
        let action = action.into();
        move |source| Unavailable::Io { action, source }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::MissingProgram { program, searched } => {
                write!(f, "`{program}` is not installed (looked in {searched})")
            }
            Unavailable::NoUnprivilegedAccount => write!(
                f,
                "running as root, PostgreSQL refuses root, and there is no `postgres` or \
                 `nobody` account to run it as"
            ),
            Unavailable::Io { action, source } => write!(f, "could not {action}: {source}"),
            Unavailable::CommandFailed {
                command,
                status,
                output,
            } => write!(f, "`{command}` failed ({status}):\n{output}"),
            Unavailable::ExitedEarly {
                server,
                status,
                log,
            } => write!(
                f,
                "{server} exited ({status}) before accepting connections; its log ends:\n{log}"
            ),
            Unavailable::NotReady {
                server,
                waited,
                last_attempt,
                log,
            } => write!(
                f,
                "{server} did not accept connections within {waited:?} (last attempt: \
                 {last_attempt}); its log ends:\n{log}"
            ),
            Unavailable::SetupQueryFailed { sql, error } => write!(f, "`{sql}` failed: {error}"),
        }
    }
}

impl std::error::Error for Unavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Unavailable::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
