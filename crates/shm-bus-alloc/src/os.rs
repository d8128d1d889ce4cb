//! Every OS call of the crate, in one place. Errors stay `io::Error` values.
//!
//! Linux only: shared-memory objects live in `/dev/shm`, process start times
//! come from `/proc/PID/stat`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

fn nix_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// `shm_open(name, O_RDWR | O_CREAT | O_EXCL, mode)` — see shm_open(3p).
pub(crate) fn shm_create_excl(name: &str, mode: u32) -> io::Result<File> {
    let fd: OwnedFd = nix::sys::mman::shm_open(
        name,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL,
        Mode::from_bits_truncate(mode as libc::mode_t),
    )
    .map_err(nix_io)?;
    // shm_open applies the umask; set the mode the caller asked for exactly
    // (fchmod(3p)).
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode as libc::mode_t)).map_err(nix_io)?;
    Ok(File::from(fd))
}

/// `shm_open(name, O_RDWR)` — see shm_open(3p).
pub(crate) fn shm_open_rw(name: &str) -> io::Result<File> {
    let fd = nix::sys::mman::shm_open(name, OFlag::O_RDWR, Mode::empty()).map_err(nix_io)?;
    Ok(File::from(fd))
}

/// `shm_unlink(name)` — see shm_unlink(3p).
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    nix::sys::mman::shm_unlink(name).map_err(nix_io)
}

/// `ftruncate(fd, len)` — see ftruncate(3p); new bytes read as zero.
pub(crate) fn ftruncate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment size too large"))?;
    nix::unistd::ftruncate(file, len).map_err(nix_io)
}

/// `(st_size, st_dev, st_ino)` from `fstat(fd)` — see fstat(3p).
pub(crate) fn fstat(file: &File) -> io::Result<(u64, u64, u64)> {
    let st = nix::sys::stat::fstat(file).map_err(nix_io)?;
    Ok((st.st_size.max(0) as u64, st.st_dev, st.st_ino))
}

/// Advisory whole-file lock operations, flock(2).
#[derive(Clone, Copy)]
pub(crate) enum FlockOp {
    /// `LOCK_EX`, blocking.
    Exclusive,
    /// `LOCK_EX | LOCK_NB`.
    TryExclusive,
    /// `LOCK_SH | LOCK_NB`.
    TryShared,
    /// `LOCK_UN`.
    Unlock,
}

/// `flock(fd, op)` — see flock(2). Returns `Ok(false)` when a non-blocking
/// request would block.
pub(crate) fn flock(file: &File, op: FlockOp) -> io::Result<bool> {
    let op = match op {
        FlockOp::Exclusive => libc::LOCK_EX,
        FlockOp::TryExclusive => libc::LOCK_EX | libc::LOCK_NB,
        FlockOp::TryShared => libc::LOCK_SH | libc::LOCK_NB,
        FlockOp::Unlock => libc::LOCK_UN,
    };
    loop {
        // SAFETY: flock(2) only reads its two integer arguments; the fd is
        // open for as long as `file` is borrowed.
        let r = unsafe { libc::flock(file.as_raw_fd(), op) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// The calling process's id, getpid(3p).
pub(crate) fn getpid() -> u32 {
    std::process::id()
}

/// What `/proc/PID/stat` says about a process.
pub(crate) enum ProcStat {
    /// No such process.
    Gone,
    /// A zombie (`Z`) or dead (`X`) task: exited, not yet reaped.
    Exited,
    /// Running (any other state), with its start time in clock ticks after
    /// boot (field 22, proc(5)).
    Running { start_time: u64 },
}

/// Reads and parses `/proc/PID/stat` (proc(5)).
pub(crate) fn proc_stat(pid: u32) -> io::Result<ProcStat> {
    let text = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ProcStat::Gone),
        // ESRCH can surface when the task exits while we read.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(ProcStat::Gone),
        Err(e) => return Err(e),
    };
    parse_proc_stat(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/PID/stat"))
}

/// Field 2 (`comm`) may contain spaces and parentheses, so fields are counted
/// from the last `)`: state is field 3, starttime is field 22.
pub(crate) fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" || state == "x" {
        return Some(ProcStat::Exited);
    }
    // We consumed field 3; starttime is field 22, i.e. 18 fields further.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat::Running { start_time })
}

/// `kill(pid, 0)` — see kill(3p): `false` only when the process does not
/// exist (`ESRCH`); `EPERM` means it exists.
pub(crate) fn pid_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::Error::ESRCH)
    )
}

/// Wall-clock time in nanoseconds since the Unix epoch (clock_gettime(3p),
/// `CLOCK_REALTIME`).
pub(crate) fn unix_time_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Page size, sysconf(3p) `_SC_PAGESIZE`.
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf(3p) has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}
