//! Test helpers: unique segment names removed on drop, child processes that
//! re-run this test binary in a role, watchdogs.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shm_bus_alloc::Segment;

/// Env var naming the child role; absent in the parent.
pub const ROLE: &str = "SHMB_TEST_ROLE";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A segment name unique to this process, call and test; unlinked on drop
/// (also when the test panics).
pub struct SegName(pub String);

impl SegName {
    pub fn new(test: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        SegName(format!("t{}-{}-{}", std::process::id(), n, test))
    }
    pub fn dev_shm_path(&self) -> PathBuf {
        PathBuf::from(format!("/dev/shm/shm-bus.{}", self.0))
    }
}

impl Drop for SegName {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

/// A temp file path unique to this test, removed on drop.
pub struct TempPath(pub PathBuf);
impl TempPath {
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        TempPath(std::env::temp_dir().join(format!("shmb-{}-{}-{}", std::process::id(), n, tag)))
    }
}
impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A child process running `role` (a test function of this binary), killed
/// on drop if still running.
///
/// The role's test is `#[ignore]`d (so it does not show as a test of its
/// own); the child runs it with `--include-ignored`. The child's stdout
/// (libtest's own lines) is discarded and its stderr kept, so neither
/// interleaves with the test run's output; stderr is shown if it fails.
pub struct ChildProc {
    pub child: Child,
    role: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ChildProc {
    pub fn spawn(role: &str, env: &[(&str, String)]) -> Self {
        Self::try_spawn_with(role, env, |_| {}).expect("spawn child")
    }

    /// Like [`ChildProc::spawn`], but `configure` may adjust the command
    /// (run as another user, add `--include-ignored` for an `#[ignore]`d
    /// role, capture stdout); spawn errors are returned.
    pub fn try_spawn_with(
        role: &str,
        env: &[(&str, String)],
        configure: impl FnOnce(&mut Command),
    ) -> std::io::Result<Self> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args([
            "--exact",
            role,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        configure(&mut cmd);
        let mut child = cmd.spawn()?;
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let sink = text.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                {
                    let mut t = sink.lock().unwrap_or_else(|e| e.into_inner());
                    t.push_str(&line);
                    t.push('\n');
                }
            });
        }
        Ok(ChildProc {
            child,
            role: role.to_owned(),
            stderr: text,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `deadline` (a generous watchdog, not a timing assertion);
    /// kills the child and panics if it is exceeded.
    pub fn wait(&mut self, deadline: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if start.elapsed() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "watchdog: child {} did not finish in {deadline:?}",
                    self.role
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn wait_success(&mut self, deadline: Duration) {
        let st = self.wait(deadline);
        assert!(
            st.success(),
            "child {} failed: {st:?}; stderr:\n{}",
            self.role,
            self.stderr.lock().unwrap_or_else(|e| e.into_inner())
        );
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits (with a watchdog) until `path` exists.
pub fn wait_for_file(path: &std::path::Path, deadline: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < deadline,
            "watchdog: {path:?} never appeared"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The child's parameter `key`, if running as a child in `role`.
pub fn child_param(role: &str, key: &str) -> Option<String> {
    if std::env::var(ROLE).ok().as_deref() != Some(role) {
        return None;
    }
    Some(std::env::var(key).unwrap_or_else(|_| panic!("child missing {key}")))
}

/// Small deterministic PRNG (xorshift64*).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
