//! Record timestamps.
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

/// The cheap clock: TSC ticks on x86_64, ns since the epoch elsewhere.
#[inline]
pub(crate) fn ticks() -> u64 {
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

/// Wall-clock time in nanoseconds since the Unix epoch.
pub(crate) fn wall_ns() -> u64 {
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
