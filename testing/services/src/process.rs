//! What both servers share: a private directory, the server process in it, and the watchdog
//! that stops the one and deletes the other once the test process is gone.

use crate::Unavailable;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The longest a server may take to accept connections after it was started.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a setup command (`initdb`) may run.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopped server may take to exit before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long dropping a server waits for its watchdog to delete the directory.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Between two readiness checks.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How much of a log goes into an error message.
const LOG_TAIL_BYTES: u64 = 4000;

/// A Unix account to run a server as (PostgreSQL refuses to run as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// The signals the servers are stopped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// PostgreSQL's immediate shutdown: the postmaster kills its backends without a
    /// checkpoint (a crash, for clients and for the data directory) but still releases its
    /// shared memory, which SIGKILL would leak.
    Quit,
    /// No clean-up at all.
    Kill,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Quit => libc::SIGQUIT,
            Signal::Kill => libc::SIGKILL,
        }
    }

    /// The name `kill -s` takes.
    fn name(self) -> &'static str {
        match self {
            Signal::Quit => "QUIT",
            Signal::Kill => "KILL",
        }
    }
}

/// One server: its directory, its process while it runs, and its watchdog.
///
/// Dropping it stops the process and deletes the directory. If the test process dies without
/// dropping it (a `static`, a SIGKILL, Ctrl-C), the watchdog does both.
pub(crate) struct ServerProcess {
    /// `PostgreSQL` or `Redis`, for messages.
    server: &'static str,
    /// The private directory: data, log, socket.
    root: PathBuf,
    /// The server's stdout and stderr, appended across restarts.
    log: PathBuf,
    /// How `Drop` (and the watchdog) stop it.
    stop_signal: Signal,
    /// The running server; `None` while stopped.
    child: Option<Child>,
    /// Declared after `child`: it deletes the directory, so it must go last.
    watchdog: Watchdog,
}

impl ServerProcess {
    /// A new private directory (owned by `owner` when given) under a watchdog; no process yet.
    pub(crate) fn new(
        server: &'static str,
        directory_prefix: &str,
        stop_signal: Signal,
        owner: Option<Account>,
    ) -> Result<ServerProcess, Unavailable> {
        let directory = tempfile::Builder::new()
            .prefix(directory_prefix)
            .tempdir()
            .map_err(Unavailable::io("create a temporary directory"))?;
        if let Some(owner) = owner {
            std::os::unix::fs::chown(directory.path(), Some(owner.uid), Some(owner.gid)).map_err(
                Unavailable::io(format!(
                    "give {} to uid {}",
                    directory.path().display(),
                    owner.uid
                )),
            )?;
        }
        let watchdog = Watchdog::spawn(stop_signal, directory.path())?;
        // From here on the watchdog deletes the directory, even if this process dies abruptly.
        let root = directory.keep();
        let log = root.join("server.log");
        Ok(ServerProcess {
            server,
            root,
            log,
            stop_signal,
            child: None,
            watchdog,
        })
    }

    /// The server's private directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The running server's process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs a setup `command` (as `initdb`) to completion, its output going to `log_name` in
    /// the directory; an error with the output's end if it fails or overruns.
    pub(crate) fn run_setup(
        &self,
        command: &mut Command,
        log_name: &str,
    ) -> Result<(), Unavailable> {
        let log = self.root.join(log_name);
        let description = format!("{command:?}");
        let (stdout, stderr) = log_handles(&log)?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(Unavailable::io(format!("run {description}")))?;
        let status = match wait_until(&mut child, Instant::now() + SETUP_TIMEOUT)
            .map_err(Unavailable::io(format!("wait for {description}")))?
        {
            Some(status) => status,
            None => {
                let _ = child.kill();
                child
                    .wait()
                    .map_err(Unavailable::io(format!("wait for {description}")))?
            }
        };
        if status.success() {
            return Ok(());
        }
        Err(Unavailable::CommandFailed {
            command: description,
            status,
            output: log_tail(&log),
        })
    }

    /// Starts the server with `command` unless it runs already, and returns once `probe`
    /// succeeds. A server that exits or does not get ready in time is an error (and is
    /// killed).
    pub(crate) fn start(
        &mut self,
        command: &mut Command,
        mut probe: impl FnMut() -> Result<(), String>,
    ) -> Result<(), Unavailable> {
        if let Some(child) = &mut self.child {
            let exited = child
                .try_wait()
                .map_err(Unavailable::io(format!("check on {}", self.server)))?;
            if exited.is_none() {
                return wait_until_ready(self.server, &self.log, child, &mut probe);
            }
            // It died on its own: forget it and start a new one.
            self.child = None;
            self.watchdog
                .forget()
                .map_err(Unavailable::io("update the watchdog"))?;
        }
        let (stdout, stderr) = log_handles(&self.log)?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Out of the terminal's process group: Ctrl-C reaches the test process only, and
            // the watchdog then stops the server in order.
            .process_group(0)
            .spawn()
            .map_err(Unavailable::io(format!("start {}", self.server)))?;
        if let Err(error) = self.watchdog.watch(child.id()) {
            let _ = stop_child(&mut child, Signal::Kill);
            return Err(Unavailable::io("tell the watchdog about the server")(error));
        }
        match wait_until_ready(self.server, &self.log, &mut child, &mut probe) {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(error) => {
                if stop_child(&mut child, Signal::Kill).is_ok() {
                    let _ = self.watchdog.forget();
                }
                Err(error)
            }
        }
    }

    /// Stops the server with `signal` (SIGKILL after a grace period) and reaps it. Nothing
    /// to do when it is stopped already.
    pub(crate) fn stop(&mut self, signal: Signal) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Err(error) = stop_child(&mut child, signal) {
            // Still ours (and still the watchdog's) to stop later.
            self.child = Some(child);
            return Err(error);
        }
        // Its pid may be reused from now on: the watchdog must not signal it any more.
        self.watchdog.forget()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // If this fails the watchdog still knows the process, and stops it when released.
        let _ = self.stop(self.stop_signal);
    }
}

/// The server's log, opened for appending, as stdout and stderr.
fn log_handles(log: &Path) -> Result<(File, File), Unavailable> {
    let open_error = Unavailable::io(format!("open {}", log.display()));
    let stdout = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(open_error)?;
    let stderr = stdout
        .try_clone()
        .map_err(Unavailable::io(format!("open {}", log.display())))?;
    Ok((stdout, stderr))
}

/// Polls until `probe` succeeds while `child` keeps running, for at most [`READY_TIMEOUT`].
fn wait_until_ready(
    server: &'static str,
    log: &Path,
    child: &mut Child,
    probe: &mut impl FnMut() -> Result<(), String>,
) -> Result<(), Unavailable> {
    let started = Instant::now();
    loop {
        let exited = child
            .try_wait()
            .map_err(Unavailable::io(format!("check on {server}")))?;
        if let Some(status) = exited {
            return Err(Unavailable::ExitedEarly {
                server,
                status,
                log: log_tail(log),
            });
        }
        let last_attempt = match probe() {
            // Checked again: the answer must not come from someone else who got the port
            // while ours failed to bind it.
            Ok(()) => {
                if let Some(status) = child
                    .try_wait()
                    .map_err(Unavailable::io(format!("check on {server}")))?
                {
                    return Err(Unavailable::ExitedEarly {
                        server,
                        status,
                        log: log_tail(log),
                    });
                }
                return Ok(());
            }
            Err(error) => error,
        };
        if started.elapsed() >= READY_TIMEOUT {
            return Err(Unavailable::NotReady {
                server,
                waited: READY_TIMEOUT,
                last_attempt,
                log: log_tail(log),
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Sends `signal`, waits [`STOP_GRACE`], then SIGKILL; returns once the process is reaped.
fn stop_child(child: &mut Child, signal: Signal) -> io::Result<ExitStatus> {
    send_signal(child.id(), signal)?;
    if let Some(status) = wait_until(child, Instant::now() + STOP_GRACE)? {
        return Ok(status);
    }
    child.kill()?;
    child.wait()
}

/// Sends `signal` to process `pid`.
pub(crate) fn send_signal(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: `kill` has no memory-safety preconditions. The pid is an unreaped child of
    // ours, so it cannot name some other process.
    if unsafe { libc::kill(pid, signal.number()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits for `child` to exit until `deadline`; `None` if it still runs then.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The watchdog: a `/bin/sh` reading lines from a pipe only this process can write to.
/// Each line names the server's current process, or `-` for none. End of input means this
/// process is gone (or the server was dropped): it stops the last process named, then
/// deletes the directory.
///
/// It ignores SIGINT and SIGHUP and runs in a process group of its own, so Ctrl-C and a
/// closed terminal reach the test process and not it.
const WATCHDOG_SCRIPT: &str = r#"
trap '' INT HUP
signal=$1
directory=$2
pid=-
while IFS= read -r line; do pid=$line; done
if [ "$pid" != - ]; then
    kill -s "$signal" "$pid" 2>/dev/null
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 100 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -s KILL "$pid" 2>/dev/null
fi
rm -rf "$directory"
"#;

/// See [`WATCHDOG_SCRIPT`].
struct Watchdog {
    process: Child,
    /// Closing it is what releases the watchdog; `None` only while dropping.
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    /// A watchdog for `directory`, which stops the server with `signal`.
    fn spawn(signal: Signal, directory: &Path) -> Result<Watchdog, Unavailable> {
        let mut process = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("rtchat-test-services-watchdog")
            .arg(signal.name())
            .arg(directory)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(Unavailable::io("start the watchdog (/bin/sh)"))?;
        let pipe = process.stdin.take();
        Ok(Watchdog { process, pipe })
    }

    /// The server now runs as `pid`.
    fn watch(&mut self, pid: u32) -> io::Result<()> {
        self.tell(&format!("{pid}\n"))
    }

    /// No server process runs any more.
    fn forget(&mut self) -> io::Result<()> {
        self.tell("-\n")
    }

    fn tell(&mut self, line: &str) -> io::Result<()> {
        match &mut self.pipe {
            // The pipe is unbuffered: the line is the watchdog's as soon as this returns.
            Some(pipe) => pipe.write_all(line.as_bytes()),
            None => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the watchdog was released",
            )),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.pipe.take());
        // Waiting means the directory is gone when the server's drop returns. Should the
        // watchdog hang, it is left to finish on its own rather than hanging the test.
        let _ = wait_until(&mut self.process, Instant::now() + CLEANUP_TIMEOUT);
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub(crate) fn free_port() -> Result<u16, Unavailable> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(Unavailable::io("find a free port on 127.0.0.1"))
}

/// `program` in the first directory on `PATH` that has it as an executable file.
pub(crate) fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(program))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a file someone may execute.
pub(crate) fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// The last few thousand bytes of a log, for error messages.
pub(crate) fn log_tail(log: &Path) -> String {
    let read_tail = || -> io::Result<String> {
        let mut file = File::open(log)?;
        let length = file.metadata()?.len();
        file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES)))?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail)?;
        Ok(String::from_utf8_lossy(&tail).into_owned())
    };
    match read_tail() {
        Ok(tail) => tail,
        Err(error) => format!("(cannot read {}: {error})", log.display()),
    }
}

/// Whether process `pid` exists and has not exited (a zombie has: only its status waits to
/// be collected).
pub fn is_running(pid: u32) -> bool {
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
