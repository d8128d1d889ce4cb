//! The harness shared by the multi-process tests: unique bus names removed
//! on drop, and child processes (this test binary re-executed in a role
//! given by `SHM_BUS_ROLE`, its arguments in `SHM_BUS_ARG_*`) with a
//! watchdog. Each test binary that uses it has a `child_entry` test that
//! runs the role.
//!
//! A dev-dependency of the crates' tests only (`publish = false`): one copy
//! of the harness instead of one per test directory.
#![forbid(unsafe_code)]
// Under `--cfg loom` the bus is not built (only its protocol is): nothing
// here compiles then, and the loom models do not need it.
#![cfg(not(loom))]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shm_bus_core::Bus;

// ------------------------------------------------------------- harness

pub struct BusGuard(String);

impl Drop for BusGuard {
    fn drop(&mut self) {
        let _ = Bus::remove(&self.0);
    }
}

pub fn unique(tag: &str) -> (String, BusGuard) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "tp-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let _ = Bus::remove(&name);
    (name.clone(), BusGuard(name))
}

/// A child process whose stdout is drained, for its whole life, into a
/// channel of lines (so it never blocks or gets EPIPE on stdout), and
/// whose stderr is kept (not interleaved with the test run's output) and
/// shown when it fails.
pub struct Proc {
    pub child: Child,
    pub lines: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    what: String,
}

impl Proc {
    /// Waits for a stdout line containing `marker` (libtest may print its
    /// own text before ours on the same line).
    pub fn wait_line(&mut self, marker: &str, deadline: Instant) {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return,
                Ok(_) => {}
                Err(_) => panic!("watchdog: no `{marker}` line from {}", self.what),
            }
        }
    }

    /// Waits for the child to exit by `deadline` (the watchdog kills it
    /// otherwise) and asserts success; returns its `RESULT` key/values.
    pub fn finish(&mut self, deadline: Instant) -> HashMap<String, u64> {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("watchdog: {} did not finish in time", self.what);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Drain until the reader thread reaches EOF (the child has exited,
        // but its last lines may still be in flight).
        let mut lines = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            lines.push(line);
        }
        assert!(
            status.success(),
            "{} failed: {status}; stdout: {lines:?}; stderr:\n{}",
            self.what,
            self.stderr_text()
        );
        lines
            .iter()
            .filter_map(|l| l.find("RESULT ").map(|i| &l[i + 7..]))
            .flat_map(|l| l.split_whitespace())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
            .collect()
    }

    /// Kills the child with SIGKILL (what `Child::kill` sends on Unix) and
    /// reaps it.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the child wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Still running (a failed assertion): kill it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs this test binary again as a child process in `role`: its
/// `child_entry` test, which is `#[ignore]`d so that it does not show as a
/// test of its own (the child runs it with `--ignored`).
pub fn spawn(role: &str, args: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_entry",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("SHM_BUS_ROLE", role)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in args {
        cmd.env(format!("SHM_BUS_ARG_{k}"), v);
    }
    let mut child = cmd.spawn().expect("spawn child");
    let stderr_text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = stderr_text.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut text = sink.lock().unwrap_or_else(|e| e.into_inner());
            text.push_str(&line);
            text.push('\n');
        }
    });
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Proc {
        child,
        lines,
        stderr: stderr_text,
        what: role.to_owned(),
    }
}

pub fn arg(name: &str) -> String {
    std::env::var(format!("SHM_BUS_ARG_{name}")).unwrap_or_else(|_| panic!("missing arg {name}"))
}

pub fn arg_u64(name: &str) -> u64 {
    arg(name).parse().unwrap()
}
