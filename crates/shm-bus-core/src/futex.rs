//! Shared (not private) futexes on words inside the segment, so that
//! processes can sleep and wake one another. See futex(2).

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `*word == expected`, at most `timeout`. Returns early on a
/// wake, a signal, or when the word already differs. Spurious returns are
/// allowed: callers re-check their condition.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: futex(2) FUTEX_WAIT reads the aligned u32 at `word`, which is
    // valid for the duration of the call (it lives in a mapping the caller
    // holds a reference into). Without FUTEX_PRIVATE_FLAG the kernel keys
    // the wait on the physical page, so processes mapping the same segment
    // share it. `ts` is a valid relative timeout. Errors (EAGAIN when the
    // value differs, EINTR, ETIMEDOUT) all mean "return and re-check".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every process sleeping on `word`.
pub(crate) fn wake_all(word: &AtomicU32) {
    // SAFETY: futex(2) FUTEX_WAKE only uses the address as a key; it is a
    // valid aligned u32 in the shared mapping. No memory is written.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}
