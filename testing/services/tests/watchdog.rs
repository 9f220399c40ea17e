//! Nothing outlives the test process: a process that started a PostgreSQL and a Redis and
//! never dropped them is SIGKILLed, and the watchdogs stop both servers and delete their
//! directories.

use rtchat_test_services::{both_installed_or_skip, is_running};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the watchdog may take to stop a server and delete its directory.
const CLEANUP_WAIT: Duration = Duration::from_secs(20);

/// Kills its child when dropped, so a failed assertion leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn servers_do_not_outlive_the_test_process() {
    if !both_installed_or_skip("servers_do_not_outlive_the_test_process") {
        return;
    }
    let mut helper = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_abandon-servers"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
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

    let deadline = Instant::now() + CLEANUP_WAIT;
    let left = || {
        servers
            .iter()
            .filter(|(pid, root)| is_running(*pid) || root.exists())
            .collect::<Vec<_>>()
    };
    while !left().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        left().is_empty(),
        "left behind after the test process died: {:?}",
        left()
    );
}
