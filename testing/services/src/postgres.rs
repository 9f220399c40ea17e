//! A throwaway PostgreSQL.

use crate::Unavailable;
use crate::pg_wire;
use crate::process::{Account, ServerProcess, Signal, find_on_path, free_port, is_executable};
use crate::shared::{Service, skip_or_fail};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The superuser `initdb` creates, and the user of [`PostgresServer::url`].
pub(crate) const USER: &str = "postgres";
/// The database [`PostgresServer::url`] names, created at start.
pub(crate) const DATABASE: &str = "test";
/// Where Debian and Ubuntu install each major version (`<version>/bin`), off `PATH`.
const DEBIAN_INSTALLATIONS: &str = "/usr/lib/postgresql";
/// Accounts PostgreSQL may run as when we are root, in order of preference.
const UNPRIVILEGED_ACCOUNTS: [&str; 2] = ["postgres", "nobody"];
/// How many free ports to try: another process may take one between our check and the bind.
const PORT_ATTEMPTS: usize = 3;

/// A PostgreSQL of its own for a test: a fresh cluster in a temporary directory, listening on
/// a free port of 127.0.0.1 with trust authentication, with an empty database `test`.
///
/// It can crash ([`stop_immediate`](Self::stop_immediate)) and come back on the same port with
/// the same data ([`start_again`](Self::start_again)). Dropping it stops it and deletes its
/// directory; should the test process die first, its watchdog does.
///
/// Durability against an operating-system crash is off (`fsync=off`,
/// `full_page_writes=off`) for speed; a crash of the server process loses nothing committed,
/// as `synchronous_commit` stays on.
pub struct PostgresServer {
    programs: Programs,
    /// Who runs `initdb` and `postgres` when we are root.
    account: Option<Account>,
    port: u16,
    process: ServerProcess,
}

impl PostgresServer {
    /// Creates a cluster with `initdb`, starts `postgres` on a free port, and creates the
    /// database `test`; returns once it accepts sessions.
    ///
    /// The programs are looked for on `PATH`, then in `/usr/lib/postgresql/<newest>/bin`.
    /// As root (which PostgreSQL refuses), they run as the `postgres` account, or `nobody`.
    pub fn start() -> Result<PostgresServer, Unavailable> {
        let programs = Programs::find()?;
        let account = unprivileged_account()?;
        let process = ServerProcess::new("PostgreSQL", "rtchat-postgres-", Signal::Quit, account)?;
        // From here on, an early return drops `server`, which cleans up.
        let mut server = PostgresServer {
            programs,
            account,
            port: 0,
            process,
        };
        server.create_cluster()?;
        server.start_on_a_free_port()?;
        let create = format!("CREATE DATABASE {DATABASE}");
        pg_wire::session(server.port, USER, "postgres", Some(&create)).map_err(|error| {
            Unavailable::SetupQueryFailed {
                sql: create.clone(),
                error: error.to_string(),
            }
        })?;
        Ok(server)
    }

    /// [`start`](Self::start), or `None` when PostgreSQL is not installed, after saying so
    /// where `cargo test` shows it. Panics (failing `test_name`) when it is installed but
    /// does not start, or when it is missing and `RTCHAT_REQUIRE_SERVICES=1`.
    #[track_caller]
    pub fn start_or_skip(test_name: &str) -> Option<PostgresServer> {
        match PostgresServer::start() {
            Ok(server) => Some(server),
            Err(reason) => skip_or_fail(
                crate::shared::require_services(),
                Service::POSTGRES,
                test_name,
                "it needs a PostgreSQL of its own",
                &reason,
            ),
        }
    }

    /// `postgres://postgres@127.0.0.1:<port>/test`.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The TCP port on 127.0.0.1; it stays the same across [`start_again`](Self::start_again).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id, `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Crashes the server, as `pg_ctl stop -m immediate` does: SIGQUIT to the postmaster,
    /// which drops every connection and exits without a checkpoint (the next start runs
    /// crash recovery). Returns once it has exited. Nothing to do if it is stopped.
    pub fn stop_immediate(&mut self) -> io::Result<()> {
        self.process.stop(Signal::Quit)
    }

    /// Starts the server again on the same port with the same data, after
    /// [`stop_immediate`](Self::stop_immediate) (or a crash of its own); returns once it
    /// accepts sessions again. If it is running, only waits for that.
    pub fn start_again(&mut self) -> Result<(), Unavailable> {
        let port = self.port;
        let mut command = self.postgres_command(port);
        self.process.start(&mut command, || accepts_sessions(port))
    }

    /// Runs `initdb` into `<root>/data`.
    fn create_cluster(&self) -> Result<(), Unavailable> {
        let mut initdb = self.command(&self.programs.initdb);
        initdb
            .arg("-D")
            .arg(self.data_directory())
            .args(["-U", USER, "--auth=trust", "--encoding=UTF8", "--no-locale"])
            // Nothing here needs to survive an operating-system crash.
            .arg("--no-sync");
        self.process.run_setup(&mut initdb, "initdb.log")
    }

    fn start_on_a_free_port(&mut self) -> Result<(), Unavailable> {
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            let mut command = self.postgres_command(port);
            match self.process.start(&mut command, || accepts_sessions(port)) {
                Ok(()) => {
                    self.port = port;
                    return Ok(());
                }
                // Most likely someone took the port before postgres could bind it.
                Err(Unavailable::ExitedEarly { .. }) if attempt < PORT_ATTEMPTS => attempt += 1,
                Err(error) => return Err(error),
            }
        }
    }

    fn postgres_command(&self, port: u16) -> Command {
        let mut postgres = self.command(&self.programs.postgres);
        postgres
            .arg("-D")
            .arg(self.data_directory())
            .arg("-p")
            .arg(port.to_string())
            // TCP on loopback only; the unix socket in our directory, not a shared one.
            .arg("-h")
            .arg("127.0.0.1")
            .arg("-k")
            .arg(self.process.root())
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        postgres
    }

    /// A command for one of the PostgreSQL programs, run as [`Self::account`] in the
    /// server's directory (the test's working directory may not be readable by that account).
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.current_dir(self.process.root());
        if let Some(account) = self.account {
            command.uid(account.uid).gid(account.gid);
        }
        command
    }

    fn data_directory(&self) -> PathBuf {
        self.process.root().join("data")
    }

    /// The server's private directory (data, unix socket, log), deleted when it is dropped.
    pub fn root(&self) -> &Path {
        self.process.root()
    }
}

/// Whether PostgreSQL can run here at all: its programs, and an account to run them as.
pub(crate) fn check_installed() -> Result<(), Unavailable> {
    Programs::find()?;
    unprivileged_account()?;
    Ok(())
}

/// Whether the server at `port` opens a session on the always-present `postgres` database.
fn accepts_sessions(port: u16) -> Result<(), String> {
    pg_wire::session(port, USER, "postgres", None).map_err(|error| error.to_string())
}

/// `initdb` and the `postgres` of the same installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Programs {
    initdb: PathBuf,
    postgres: PathBuf,
}

impl Programs {
    /// `initdb` on `PATH` (with `postgres` beside it), else the newest Debian-style
    /// installation.
    pub(crate) fn find() -> Result<Programs, Unavailable> {
        let on_path = find_on_path("initdb");
        if let Some(programs) = on_path.clone().and_then(Programs::beside) {
            return Ok(programs);
        }
        if let Some(programs) = newest_debian_installation() {
            return Ok(programs);
        }
        Err(match on_path {
            Some(initdb) => Unavailable::MissingProgram {
                program: "postgres",
                searched: format!(
                    "{} and {DEBIAN_INSTALLATIONS}/*/bin",
                    initdb.parent().unwrap_or(&initdb).display()
                ),
            },
            None => Unavailable::MissingProgram {
                program: "initdb",
                searched: format!("PATH and {DEBIAN_INSTALLATIONS}/*/bin"),
            },
        })
    }

    /// `postgres` next to `initdb`, or next to what `initdb` links to.
    fn beside(initdb: PathBuf) -> Option<Programs> {
        let resolved = fs::canonicalize(&initdb).ok();
        [Some(initdb), resolved]
            .into_iter()
            .flatten()
            .find_map(|initdb| {
                let postgres = initdb.with_file_name("postgres");
                is_executable(&postgres).then_some(Programs { initdb, postgres })
            })
    }
}

fn newest_debian_installation() -> Option<Programs> {
    fs::read_dir(DEBIAN_INSTALLATIONS)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = version_key(entry.file_name().to_str()?)?;
            let bin = entry.path().join("bin");
            let programs = Programs {
                initdb: bin.join("initdb"),
                postgres: bin.join("postgres"),
            };
            (is_executable(&programs.initdb) && is_executable(&programs.postgres))
                .then_some((version, programs))
        })
        .max_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, programs)| programs)
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`: sorts versions numerically; `None` for other names.
fn version_key(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// `None` unless we are root; then the account to run PostgreSQL as.
fn unprivileged_account() -> Result<Option<Account>, Unavailable> {
    // SAFETY: `geteuid` cannot fail and touches no memory of ours.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    UNPRIVILEGED_ACCOUNTS
        .iter()
        .find_map(|name| account_named(name))
        .map(Some)
        .ok_or(Unavailable::NoUnprivilegedAccount)
}

/// The uid and gid of the account `name`, from the system's user database.
fn account_named(name: &str) -> Option<Account> {
    let name = CString::new(name).ok()?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero `passwd` is a valid value (null pointers, zero ids); it is only
    // read after `getpwnam_r` filled it in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `name` is NUL-terminated, `buffer` has
    // the length passed, and `entry` and `found` are live locals. The strings `entry` points
    // into live in `buffer`, and only the integer ids are read below.
    let status = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 || found.is_null() {
        return None;
    }
    Some(Account {
        uid: entry.pw_uid,
        gid: entry.pw_gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically() {
        assert!(version_key("15") > version_key("9.6"));
        assert!(version_key("9.6") > version_key("9.5"));
        assert_eq!(version_key("15"), Some(vec![15]));
        assert_eq!(version_key("main"), None);
    }

    #[test]
    fn root_is_a_known_account() {
        assert_eq!(account_named("root"), Some(Account { uid: 0, gid: 0 }));
        assert_eq!(account_named("no-such-account-rtchat"), None);
    }
}
