//! Who is alive: `(pid, start time)` identities that pid reuse cannot fool.
//!
//! A pid alone is not an identity: Linux reuses pids. [`ProcessId`] pairs
//! the pid with the process's start time (clock ticks after boot, field 22
//! of `/proc/PID/stat`), so a new process that happens to get a dead
//! process's pid is never mistaken for it. Zombies (killed but not yet
//! reaped by their parent) count as dead.

use std::sync::Mutex;

use crate::os;

/// A process identity that survives pid reuse: the pid plus the process's
/// start time. A plain value: it is not [`ShmSafe`](crate::ShmSafe) (its
/// fields are not atomics); the segment stores its fields in atomic words
/// and [`ProcessId::token`] packs it into one.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ProcessId {
    /// The OS process id. `0` never names a user process.
    pub pid: u32,
    /// Always zero; explicit padding so the type has no uninitialised bytes.
    pub reserved: u32,
    /// Start time in clock ticks after boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
}

#[cfg(not(loom))]
crate::assert_layout!(ProcessId, size = 16, align = 8);

/// Bits of the start time kept in an owner token (see [`ProcessId::token`]).
const TOKEN_START_BITS: u32 = 30;

static CURRENT: Mutex<Option<ProcessId>> = Mutex::new(None);

impl ProcessId {
    /// The calling process. The start time is read from `/proc/self/stat`
    /// once per process (re-read after a `fork`, where the pid changes).
    ///
    /// # Panics
    /// Never in practice; if `/proc` is unreadable the start time is `0`,
    /// which still identifies the process by pid.
    pub fn current() -> ProcessId {
        let pid = os::getpid();
        let mut cached = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = *cached {
            if id.pid == pid {
                return id;
            }
        }
        let start_time = match os::proc_stat(pid) {
            Ok(os::ProcStat::Running { start_time }) => start_time,
            _ => 0,
        };
        let id = ProcessId {
            pid,
            reserved: 0,
            start_time,
        };
        *cached = Some(id);
        id
    }

    /// Whether this process is still running: the pid exists, is not a
    /// zombie, and has the same start time (so a reused pid is "dead").
    /// When `/proc` cannot be read, falls back to `kill(pid, 0)`.
    pub fn is_alive(&self) -> bool {
        match os::proc_stat(self.pid) {
            Ok(os::ProcStat::Gone) | Ok(os::ProcStat::Exited) => false,
            Ok(os::ProcStat::Running { start_time }) => start_time == self.start_time,
            Err(_) => os::pid_exists(self.pid),
        }
    }

    /// Packs the identity into a non-zero word below 2^62: pid in bits
    /// 0..32, the low 30 bits of the start time in bits 32..62. Lock owner
    /// words and `ByteMap` busy slots store this token, because a CAS can
    /// only swap one word. Two live processes never share a token; a token
    /// could only be mistaken for a *different* later process with the same
    /// pid whose start time is equal modulo 2^30 ticks (≈124 days at 100 Hz).
    pub fn token(&self) -> u64 {
        (self.pid as u64) | ((self.start_time & ((1 << TOKEN_START_BITS) - 1)) << 32)
    }

    /// Whether the process a token names is dead (see [`ProcessId::token`]).
    pub fn token_is_dead(token: u64) -> bool {
        let pid = (token & 0xffff_ffff) as u32;
        let start_low = (token >> 32) & ((1 << TOKEN_START_BITS) - 1);
        if pid == 0 || token >> (32 + TOKEN_START_BITS) != 0 {
            // Not a token any process writes: garbage, so nobody owns it.
            return true;
        }
        match os::proc_stat(pid) {
            Ok(os::ProcStat::Gone) | Ok(os::ProcStat::Exited) => true,
            Ok(os::ProcStat::Running { start_time }) => {
                start_time & ((1 << TOKEN_START_BITS) - 1) != start_low
            }
            Err(_) => !os::pid_exists(pid),
        }
    }
}

/// Who is acting and whether another actor is dead: the processes of the
/// host in production, simulated actors in unit and loom tests.
pub trait Owners {
    /// The caller's non-zero owner token (< 2^62).
    fn token(&self) -> u64;
    /// Whether the actor owning `token` is dead.
    fn is_dead(&self, token: u64) -> bool;
}

/// The real thing: tokens of OS processes.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsOwners;

impl Owners for OsOwners {
    fn token(&self) -> u64 {
        ProcessId::current().token()
    }
    fn is_dead(&self, token: u64) -> bool {
        ProcessId::token_is_dead(token)
    }
}

/// Simulated actors for unit tests: `me` is the caller's token, `dead` the
/// one token reported dead.
#[cfg(all(test, not(loom)))]
pub(crate) struct FakeOwners {
    pub me: std::cell::Cell<u64>,
    pub dead: std::cell::Cell<u64>,
}

#[cfg(all(test, not(loom)))]
impl Owners for FakeOwners {
    fn token(&self) -> u64 {
        self.me.get()
    }
    fn is_dead(&self, token: u64) -> bool {
        token == self.dead.get()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_alive() {
        let me = ProcessId::current();
        assert_eq!(me.pid, std::process::id());
        assert!(me.start_time > 0);
        assert!(me.is_alive());
        assert!(!ProcessId::token_is_dead(me.token()));
    }

    #[test]
    fn reused_pid_with_other_start_time_is_dead() {
        let mut me = ProcessId::current();
        me.start_time += 1;
        assert!(!me.is_alive());
        assert!(ProcessId::token_is_dead(me.token()));
    }

    #[test]
    fn nonexistent_pid_is_dead() {
        let ghost = ProcessId {
            pid: u32::MAX - 7,
            reserved: 0,
            start_time: 1,
        };
        assert!(!ghost.is_alive());
        assert!(ProcessId::token_is_dead(ghost.token()));
        assert!(ProcessId::token_is_dead(0));
    }

    #[test]
    fn reaped_and_zombie_children_are_dead() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start_time = match os::proc_stat(pid).unwrap() {
            os::ProcStat::Running { start_time } => start_time,
            _ => panic!("child not running"),
        };
        let id = ProcessId {
            pid,
            reserved: 0,
            start_time,
        };
        assert!(id.is_alive());
        child.kill().unwrap();
        // Not yet reaped: a zombie, which must count as dead.
        let mut zombie_seen_dead = false;
        for _ in 0..2000 {
            if !id.is_alive() {
                zombie_seen_dead = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(zombie_seen_dead);
        child.wait().unwrap();
        assert!(!id.is_alive());
    }

    #[test]
    fn proc_stat_parser_handles_odd_comm() {
        let line = "42 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 12345 99 100";
        match parse_proc_stat_for_test(line) {
            Some(os::ProcStat::Running { start_time }) => assert_eq!(start_time, 12345),
            _ => panic!("bad parse"),
        }
        assert!(matches!(
            parse_proc_stat_for_test("42 (x) Z 1 2"),
            Some(os::ProcStat::Exited)
        ));
    }

    fn parse_proc_stat_for_test(s: &str) -> Option<os::ProcStat> {
        os::parse_proc_stat(s)
    }
}
