//! Processes: the orchestrator spawns every participant as a child (this
//! binary re-executed with a hidden role argument), talks to it over its
//! stdin/stdout, and kills it when it stops answering. Children die with
//! the orchestrator (`PR_SET_PDEATHSIG`) and give up on their own when no
//! progress is made for [`IDLE_LIMIT`].
//!
//! The protocol, the same for every system and workload:
//!
//! 1. the **creator** (ping side, producer) creates the system's resources
//!    and prints `READY`;
//! 2. the **attachers** (echo side, subscribers) open them and print `READY`;
//! 3. the orchestrator writes `GO` to the attachers, then to the creator;
//! 4. every child measures and prints `RESULT <json>`;
//! 5. the orchestrator writes `FIN` to the creator, which then releases its
//!    resources (so subscribers never see a producer vanish mid-run);
//! 6. every child exits 0.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::systems::System;

/// A child that makes no progress for this long gives up with an error.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------ the spec

/// Everything a child needs to know, passed as one JSON argument.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Spec {
    /// The system measured.
    pub system: System,
    /// The orchestrator's pid: every name this run creates contains it.
    pub pid: u32,
    /// Distinguishes the sessions of one run.
    pub session: u64,
    /// Payload bytes.
    pub size: usize,
    /// Round trips (latency) or messages (throughput, dispatch) measured.
    pub count: u64,
    /// Round trips before the measured ones (latency).
    pub warmup: u64,
    /// Subscriber processes of this session.
    pub subscribers: u32,
    /// Which subscriber this child is (0-based).
    pub index: u32,
    /// Bytes of buffering (ring) the system gets.
    pub ring: u64,
    /// Pin this process to that CPU.
    pub cpu: Option<usize>,
    /// Dispatch: patterns the subscriber registers.
    pub patterns: usize,
    /// Dispatch: distinct topics the producer cycles through.
    pub topics: u32,
}

impl Spec {
    pub fn new(system: System, pid: u32, session: u64) -> Spec {
        Spec {
            system,
            pid,
            session,
            size: 64,
            count: 0,
            warmup: 0,
            subscribers: 1,
            index: 0,
            ring: 1 << 20,
            cpu: None,
            patterns: 0,
            topics: 0,
        }
    }

    /// The shm-bus bus of this session (`/dev/shm/shm-bus.cmp<pid>-<n>`).
    pub fn bus_name(&self) -> String {
        format!("cmp{}-{}", self.pid, self.session)
    }

    /// The floor's POSIX shared-memory object (`/dev/shm/cmpfloor<pid>-<n>`).
    pub fn floor_name(&self) -> String {
        format!("/cmpfloor{}-{}", self.pid, self.session)
    }

    /// The Unix socket's abstract address (no file to remove).
    pub fn uds_name(&self) -> String {
        format!("shm-bus-compare-{}-{}", self.pid, self.session)
    }
}

// ------------------------------------------------------ orchestrator side

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Relaxed: a flag polled by the orchestrator's waits; nothing else is
    // published through it.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// SIGINT, SIGTERM and SIGHUP make the orchestrator stop at its next wait
/// (children are killed, names removed) instead of dying on the spot.
pub fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `on_signal` is async-signal-safe (one atomic store) and
        // has the signature `signal` expects.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

pub fn interrupted() -> bool {
    // Relaxed: see `on_signal`.
    INTERRUPTED.load(Ordering::Relaxed)
}

/// A child process, killed (and reaped) on drop.
pub struct Peer {
    role: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Peer {
    pub fn spawn(role: &str, spec: &Spec) -> Result<Peer> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("__child")
            .arg(role)
            .arg(serde_json::to_string(spec)?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawning {role}"))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let stdin = child.stdin.take();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Peer {
            role: format!("{role} ({})", spec.system.name()),
            child,
            stdin,
            lines,
        })
    }

    /// Waits for a line starting with `tag`; returns the rest of it.
    pub fn expect(&mut self, tag: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if interrupted() {
                bail!("interrupted");
            }
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    let Some(rest) = line.strip_prefix(tag) else {
                        bail!("{}: expected {tag}, got `{line}`", self.role);
                    };
                    return Ok(rest.trim().to_string());
                }
                Err(RecvTimeoutError::Timeout) => {
                    if Instant::now() > deadline {
                        bail!(
                            "{}: no {tag} within {:.0?} (watchdog: killed)",
                            self.role,
                            timeout
                        );
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait()?;
                    bail!("{}: exited ({status}) before {tag}", self.role);
                }
            }
        }
    }

    /// A line starting with `tag` if one has arrived (its rest), without
    /// waiting; an error if the child wrote something else or exited.
    pub fn poll(&mut self, tag: &str) -> Result<Option<String>> {
        match self.lines.try_recv() {
            Ok(line) => match line.strip_prefix(tag) {
                Some(rest) => Ok(Some(rest.trim().to_string())),
                None => bail!("{}: expected {tag}, got `{line}`", self.role),
            },
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => {
                let status = self.child.wait()?;
                bail!("{}: exited ({status}) before {tag}", self.role);
            }
        }
    }

    pub fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("child stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("{}: writing {line}", self.role))
    }

    /// Waits for a clean exit.
    pub fn finish(&mut self, timeout: Duration) -> Result<()> {
        self.stdin = None;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("{}: {status}", self.role);
                }
                return Ok(());
            }
            if interrupted() {
                bail!("interrupted");
            }
            if Instant::now() > deadline {
                bail!("{}: did not exit (watchdog: killed)", self.role);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// What a session's children reported.
pub struct Reports {
    pub creator: String,
    pub attachers: Vec<String>,
}

/// Runs one session (see the module docs): the creator, then the
/// attachers, GO, RESULTs, FIN. Any child that stops answering within
/// `timeout` is killed and the session fails.
pub fn session(
    creator: (&str, &Spec),
    attachers: &[(&str, Spec)],
    timeout: Duration,
) -> Result<Reports> {
    const START: Duration = Duration::from_secs(60);
    let mut c = Peer::spawn(creator.0, creator.1)?;
    c.expect("READY", START)?;
    let mut peers = Vec::new();
    for (role, spec) in attachers {
        let mut p = Peer::spawn(role, spec)?;
        p.expect("READY", START)?;
        peers.push(p);
    }
    for p in &mut peers {
        p.send("GO")?;
    }
    c.send("GO")?;
    // Collect every RESULT, noticing at once any child that dies.
    let deadline = Instant::now() + timeout;
    let mut creator_report = None;
    let mut reports: Vec<Option<String>> = vec![None; peers.len()];
    while creator_report.is_none() || reports.iter().any(Option::is_none) {
        if creator_report.is_none() {
            creator_report = c.poll("RESULT")?;
        }
        for (p, r) in peers.iter_mut().zip(&mut reports) {
            if r.is_none() {
                *r = p.poll("RESULT")?;
            }
        }
        if interrupted() {
            bail!("interrupted");
        }
        if Instant::now() > deadline {
            bail!(
                "{}: no result within {timeout:.0?} (watchdog: killed)",
                creator.0
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    c.send("FIN")?;
    for p in &mut peers {
        p.finish(START)?;
    }
    c.finish(START)?;
    Ok(Reports {
        creator: creator_report.unwrap_or_default(),
        attachers: reports.into_iter().flatten().collect(),
    })
}

// ------------------------------------------------------------ child side

/// First thing a child does: die with the orchestrator, pin if asked.
pub fn child_init(spec: &Spec) -> Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number; no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    if let Some(cpu) = spec.cpu {
        pin_to(cpu)?;
    }
    Ok(())
}

fn pin_to(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside
    // it (cpu < CPU_SETSIZE is checked); sched_setaffinity reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= libc::CPU_SETSIZE as usize {
            bail!("cpu {cpu} out of range");
        }
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        bail!("pinning to cpu {cpu}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Number of CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Waits for `word` on stdin (blocking read: no CPU used meanwhile).
pub fn hear(word: &str) -> Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if line.trim() != word {
        bail!(
            "expected {word} from the orchestrator, got `{}`",
            line.trim()
        );
    }
    Ok(())
}

pub fn ready() -> Result<()> {
    say("READY")
}

pub fn report(value: &impl Serialize) -> Result<()> {
    say(&format!("RESULT {}", serde_json::to_string(value)?))
}

/// CLOCK_MONOTONIC in ns: comparable between processes of one machine.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// -------------------------------------------------------------- waiting

/// How every throughput participant waits when it cannot make progress
/// (no message yet, ring or socket full), the same for every system: spin
/// for 50 µs, then `sched_yield` until 2 ms, then sleep 50 µs per poll; give
/// up after [`IDLE_LIMIT`]. Create one per wait; cheap while spinning.
pub struct Waiter {
    polls: u32,
    since: Option<Instant>,
}

impl Waiter {
    #[inline]
    pub fn new() -> Waiter {
        Waiter {
            polls: 0,
            since: None,
        }
    }

    #[inline]
    pub fn wait(&mut self) -> Result<()> {
        self.polls = self.polls.wrapping_add(1);
        if self.polls < 256 {
            std::hint::spin_loop();
            return Ok(());
        }
        let idle = self.since.get_or_insert_with(Instant::now).elapsed();
        if idle < Duration::from_micros(50) {
            std::hint::spin_loop();
        } else if idle < Duration::from_millis(2) {
            std::thread::yield_now();
        } else if idle < IDLE_LIMIT {
            std::thread::sleep(Duration::from_micros(50));
        } else {
            bail!("no progress for {IDLE_LIMIT:?}: giving up");
        }
        Ok(())
    }
}

/// For the latency loops, which only spin: an error after [`IDLE_LIMIT`]
/// without an answer. Checks the clock every 2^20 polls.
pub struct Patience {
    polls: u32,
    since: Instant,
}

impl Patience {
    pub fn new() -> Patience {
        Patience {
            polls: 0,
            since: Instant::now(),
        }
    }

    #[inline]
    pub fn progress(&mut self) {
        self.polls = 0;
    }

    #[inline]
    pub fn idle(&mut self) -> Result<()> {
        self.polls = self.polls.wrapping_add(1);
        if self.polls & ((1 << 20) - 1) == 0 {
            if self.polls == 1 << 20 {
                self.since = Instant::now();
            } else if self.since.elapsed() > IDLE_LIMIT {
                bail!("no answer for {IDLE_LIMIT:?}: giving up");
            }
        }
        Ok(())
    }
}
