//! A throwaway Redis.

use crate::Unavailable;
use crate::process::{ServerProcess, Signal, find_on_path, free_port};
use crate::shared::{Service, skip_or_fail};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Connecting, and every read and write of the readiness check.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How many free ports to try: another process may take one between our check and the bind.
const PORT_ATTEMPTS: usize = 3;

/// A Redis of its own for a test: `redis-server` (from `PATH`) on a free port of 127.0.0.1,
/// without persistence.
///
/// It can be killed ([`kill`](Self::kill)) and come back, empty, on the same port
/// ([`start_again`](Self::start_again)). Dropping it kills it and deletes its directory;
/// should the test process die first, its watchdog does.
pub struct RedisServer {
    program: PathBuf,
    port: u16,
    process: ServerProcess,
}

impl RedisServer {
    /// Starts `redis-server` on a free port; returns once it answers `PING`.
    pub fn start() -> Result<RedisServer, Unavailable> {
        let program = program()?;
        let process = ServerProcess::new("Redis", "rtchat-redis-", Signal::Kill, None)?;
        let mut server = RedisServer {
            program,
            port: 0,
            process,
        };
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            let mut command = server.command(port);
            match server.process.start(&mut command, || ping(port)) {
                Ok(()) => {
                    server.port = port;
                    return Ok(server);
                }
                // Most likely someone took the port before redis-server could bind it.
                Err(Unavailable::ExitedEarly { .. }) if attempt < PORT_ATTEMPTS => attempt += 1,
                Err(error) => return Err(error),
            }
        }
    }

    /// [`start`](Self::start), or `None` when Redis is not installed, after saying so where
    /// `cargo test` shows it. Panics (failing `test_name`) when it is installed but does
    /// not start, or when it is missing and `RTCHAT_REQUIRE_SERVICES=1`.
    #[track_caller]
    pub fn start_or_skip(test_name: &str) -> Option<RedisServer> {
        match RedisServer::start() {
            Ok(server) => Some(server),
            Err(reason) => skip_or_fail(
                crate::shared::require_services(),
                Service::REDIS,
                test_name,
                "it needs a Redis of its own",
                &reason,
            ),
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TCP port on 127.0.0.1; it stays the same across [`start_again`](Self::start_again).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, `None` while killed.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// SIGKILL: every connection drops, every key is lost. Returns once it has exited.
    /// Nothing to do if it is not running.
    pub fn kill(&mut self) -> io::Result<()> {
        self.process.stop(Signal::Kill)
    }

    /// Starts a new, empty server on the same port after [`kill`](Self::kill) (or a crash of
    /// its own); returns once it answers `PING`. If it is running, only waits for that.
    pub fn start_again(&mut self) -> Result<(), Unavailable> {
        let port = self.port;
        let mut command = self.command(port);
        self.process.start(&mut command, || ping(port))
    }

    fn command(&self, port: u16) -> Command {
        let mut command = Command::new(&self.program);
        command
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1"])
            // No snapshots, no append-only file: nothing to write, nothing restored.
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.process.root())
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .current_dir(self.process.root());
        command
    }

    /// The server's private directory (its log), deleted when it is dropped.
    pub fn root(&self) -> &std::path::Path {
        self.process.root()
    }
}

/// `redis-server` on `PATH`.
pub(crate) fn program() -> Result<PathBuf, Unavailable> {
    find_on_path("redis-server").ok_or(Unavailable::MissingProgram {
        program: "redis-server",
        searched: "PATH".to_owned(),
    })
}

/// Whether the server at `port` answers `PING` with `PONG` (not, say, `-LOADING`).
pub(crate) fn ping(port: u16) -> Result<(), String> {
    let attempt = || -> io::Result<Vec<u8>> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut stream = TcpStream::connect_timeout(&address, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(b"PING\r\n")?;
        let mut reply = Vec::new();
        let mut buffer = [0u8; 256];
        // One line, however the bytes arrive; bounded, in case something else listens there.
        while !reply.ends_with(b"\r\n") && reply.len() < 4096 {
            let read = stream.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            reply.extend_from_slice(&buffer[..read]);
        }
        Ok(reply)
    };
    match attempt() {
        Ok(reply) if reply == b"+PONG\r\n" => Ok(()),
        Ok(reply) => Err(format!(
            "PING got {:?}",
            String::from_utf8_lossy(&reply).trim_end()
        )),
        Err(error) => Err(error.to_string()),
    }
}
