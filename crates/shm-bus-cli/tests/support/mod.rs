//! The harness shared by the CLI's integration tests: unique buses removed
//! on drop, `shm-bus` processes under a watchdog, their captured output.
#![allow(dead_code)] // each test file uses part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_shm-bus");
/// Generous: only a hung process gets anywhere near it.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// A unique bus name, removed (with `shm-bus remove --force`, then by unlinking
/// the file) when dropped, even if the test failed.
pub struct TestBus {
    pub name: String,
}

impl TestBus {
    pub fn new(tag: &str) -> TestBus {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        TestBus {
            name: format!("cli-{}-{n}-{tag}", std::process::id()),
        }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/dev/shm/shm-bus.{}", self.name))
    }

    pub fn exists(&self) -> bool {
        self.path().exists()
    }

    /// Creates it with `shm-bus create` and extra flags.
    pub fn create(tag: &str, flags: &[&str]) -> TestBus {
        let bus = TestBus::new(tag);
        let mut args = vec!["create", bus.name.as_str()];
        args.extend_from_slice(flags);
        let out = run(&args);
        assert_eq!(out.code(), Some(0), "create: {}", out.stderr);
        bus
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .args(["remove", &self.name, "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(self.path());
    }
}

/// What a finished process said.
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?} (stderr {:?})",
                self.stdout, self.stderr
            )
        })
    }

    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
            .collect()
    }

    pub fn stderr_lines(&self) -> usize {
        self.stderr.lines().count()
    }
}

/// A running `shm-bus` process, killed on drop if still running.
pub struct Proc {
    pub child: Child,
    pub stdout: Option<thread::JoinHandle<String>>,
    pub stderr: Option<thread::JoinHandle<String>>,
}

pub fn reader(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

impl Proc {
    /// Starts `shm-bus ARGS`, feeding it `stdin` (then closing it).
    pub fn spawn_with(args: &[&str], stdin: Option<&[u8]>) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shm-bus");
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let data = data.to_vec();
            thread::spawn(move || {
                let _ = pipe.write_all(&data);
            });
        }
        let stdout = child.stdout.take().map(reader);
        let stderr = child.stderr.take().map(reader);
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    pub fn spawn(args: &[&str]) -> Proc {
        Proc::spawn_with(args, None)
    }

    /// Starts `shm-bus ARGS` and hands back the read end of its stdout.
    pub fn spawn_raw_stdout(args: &[&str]) -> (Proc, std::process::ChildStdout) {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shm-bus");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().map(reader);
        let p = Proc {
            child,
            stdout: None,
            stderr,
        };
        (p, stdout)
    }

    /// Starts `shm-bus ARGS`, also sending each line of its stderr to the
    /// returned channel as it comes (all of it is still in `finish`).
    pub fn spawn_watching_stderr(args: &[&str]) -> (Proc, mpsc::Receiver<String>) {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shm-bus");
        let stdout = child.stdout.take().map(reader);
        let pipe = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        let stderr = thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                all.push_str(&line);
                all.push('\n');
                let _ = tx.send(line);
            }
            all
        });
        let p = Proc {
            child,
            stdout,
            stderr: Some(stderr),
        };
        (p, rx)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} {}", self.pid());
    }

    /// Waits for the exit, killing the process if the watchdog runs out.
    pub fn finish(mut self) -> Out {
        let deadline = Instant::now() + WATCHDOG;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("watchdog: shm-bus (pid {}) hung; killed it", self.pid());
            }
            thread::sleep(Duration::from_millis(5));
        };
        Out {
            status,
            stdout: self
                .stdout
                .take()
                .map(|h| h.join().unwrap())
                .unwrap_or_default(),
            stderr: self
                .stderr
                .take()
                .map(|h| h.join().unwrap())
                .unwrap_or_default(),
        }
    }

    /// SIGKILL, and reap the zombie.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits (under the watchdog) for a line from `lines` that contains
/// `needle`, and returns it.
pub fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("watchdog: no stderr line with {needle:?} ({e})"),
        }
    }
}

/// Removes a bus while processes are attached (`shm-bus remove --force`).
pub fn remove_in_use(bus: &TestBus) {
    let out = run(&["remove", &bus.name, "--force"]);
    assert_eq!(out.code(), Some(0), "remove: {}", out.stderr);
    assert!(!bus.exists());
}

/// Runs `shm-bus ARGS` to completion under the watchdog.
pub fn run(args: &[&str]) -> Out {
    Proc::spawn(args).finish()
}
