//! Clocks: record timestamps (the cheap clock and its conversion), wall
//! time and monotonic time, for the bus and the layers above it.
//!
//! Publishing stamps every record, so the clock must be cheap. On x86_64
//! the record carries raw TSC ticks (`rdtsc`, ~10 ns here, against ~34 ns
//! for `clock_gettime(CLOCK_REALTIME)`); the kernel's TSC clocksource
//! guarantees it is synchronised across CPUs. Ticks are converted to
//! nanoseconds since the Unix epoch only when asked
//! ([`Sample::timestamp_ns`](crate::Sample::timestamp_ns)), against a pair
//! of readings taken at bus creation and a pair taken now:
//! `ns(t) = now_ns - (now_ticks - t) * rate`, with `rate` measured over the
//! bus's whole life. The error is the rate's error times the record's age,
//! so recent records convert almost exactly. Elsewhere the record carries
//! nanoseconds directly.

/// The cheap clock records are stamped with: TSC ticks on x86_64, ns since
/// the epoch elsewhere. Convert a stamp with
/// [`Bus::stamp_to_wall_ns`](crate::Bus::stamp_to_wall_ns).
#[inline]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `rdtsc` has no preconditions on x86_64 (it only reads the
        // time-stamp counter); it is not used where the OS forbids it
        // (CR4.TSD is not set by Linux for user space).
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        wall_ns()
    }
}

/// Wall-clock time in nanoseconds since the Unix epoch (0 before 1970).
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Converts `t` (from [`ticks`]) to ns since the epoch, given the
/// `(ticks, ns)` readings taken when the bus was created.
pub(crate) fn to_wall_ns(t: u64, anchor_ticks: u64, anchor_ns: u64) -> u64 {
    if t == 0 {
        return 0;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let (now_t, now_ns) = (ticks(), wall_ns());
        let dt = now_t.saturating_sub(anchor_ticks);
        let dns = now_ns.saturating_sub(anchor_ns);
        if dt == 0 || dns == 0 {
            return now_ns;
        }
        let rate = dns as f64 / dt as f64;
        let age = now_t.saturating_sub(t) as f64 * rate;
        now_ns.saturating_sub(age as u64)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (anchor_ticks, anchor_ns);
        t
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: comparable between processes of one
/// host (events carry it so that another process can time a span).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes one timespec through the valid,
    // exclusive pointer; CLOCK_MONOTONIC is always supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}
