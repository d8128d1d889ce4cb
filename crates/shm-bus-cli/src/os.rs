//! The CLI's only OS calls that need `unsafe`: signal handlers for Ctrl-C
//! and `poll(2)` on standard input and output. Everything else in the
//! crate is safe code (`#![deny(unsafe_code)]` in `main.rs`; this module
//! and the benchmark's bare-memory floor are the two exceptions).

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs SIGINT/SIGTERM/SIGHUP handlers (Ctrl-C, kill, a closed
/// terminal) that set a flag (see [`interrupted`]),
/// so long-running commands can clean up instead of dying.
pub(crate) fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: signal(2) with a handler that only stores to an atomic
        // (async-signal-safe); no other state is touched.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Whether SIGINT/SIGTERM arrived since [`catch_interrupts`].
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Sleeps until `due` in slices of at most `slice`, so that a signal is
/// noticed within one slice. Returns `false` if interrupted.
pub(crate) fn sleep_until(due: std::time::Instant, slice: Duration) -> bool {
    loop {
        if interrupted() {
            return false;
        }
        let left = due.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(slice));
    }
}

/// Whether a read on `fd` would not block (data, end of input or an
/// error to report), waiting at most `timeout`; `false` on a signal.
pub(crate) fn readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: poll(2) on one initialised pollfd that outlives the call,
    // count 1; it only writes `revents`.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(n > 0)
}

/// Whether standard output is a pipe whose reader has gone, so that an
/// idle `tail | head` ends without waiting for one more event to write
/// (what GNU `tail -f` does).
pub(crate) fn stdout_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: poll(2) on one initialised pollfd that outlives the call,
    // count 1, timeout 0 (never blocks); it only writes `revents`.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}
