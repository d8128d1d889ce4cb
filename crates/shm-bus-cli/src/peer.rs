//! Helper processes and scratch names for `bench` and `demo`: a child
//! process re-running this binary in a role, and a bus or segment name
//! removed when the run ends.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use shm_bus_alloc::Segment;

/// A bus or raw segment named for this run, removed (unlinked) on drop,
/// also when the run fails or is interrupted.
pub(crate) struct Scratch(pub(crate) String);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

/// A scratch name unique to this process and call: `__bench-TAG-PID-N`.
pub(crate) fn unique(tag: &str) -> Scratch {
    static N: AtomicU32 = AtomicU32::new(0);
    Scratch(format!(
        "__bench-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A child process (of `bench` or `demo`), killed if still running on
/// drop; its stdout lines arrive through a channel.
pub(crate) struct Peer {
    pub(crate) child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// The write end of its stdin, for a child told to stop by its closing.
    stdin: Option<ChildStdin>,
}

impl Peer {
    pub(crate) fn spawn(role: &str, args: &[String]) -> Result<Peer> {
        Peer::spawn_inner(role, args, false)
    }

    /// A child whose stdin is a pipe held open until [`close_stdin`]
    /// (or drop): its signal to stop (see [`stdin_closed`]).
    ///
    /// [`close_stdin`]: Peer::close_stdin
    pub(crate) fn spawn_stoppable(role: &str, args: &[String]) -> Result<Peer> {
        Peer::spawn_inner(role, args, true)
    }

    fn spawn_inner(role: &str, args: &[String], piped: bool) -> Result<Peer> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("__child")
            .arg(role)
            .args(args)
            .stdin(if piped {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning a benchmark process")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Ok(Peer {
            child,
            lines,
            stdin,
        })
    }

    /// Closes the child's stdin (of [`spawn_stoppable`]): it stops.
    ///
    /// [`spawn_stoppable`]: Peer::spawn_stoppable
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line, within `timeout`.
    pub(crate) fn line(&mut self, timeout: Duration) -> Result<String> {
        self.lines
            .recv_timeout(timeout)
            .context("benchmark process stopped answering")
    }

    pub(crate) fn wait(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("benchmark process failed: {status}");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("benchmark process did not finish");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// In a child of [`Peer::spawn_stoppable`]: a flag raised when the
/// parent closes our stdin (or dies).
pub(crate) fn stdin_closed() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let raised = flag.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        raised.store(true, Ordering::Release);
    });
    flag
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
