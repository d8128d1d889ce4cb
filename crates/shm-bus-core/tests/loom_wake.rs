//! loom model of waking sleeping subscribers (`wake::Waker`), on heap
//! atomics with the orderings production uses: a publisher skips the
//! wake syscall while no subscriber registered as a sleeper since its
//! last wake. The model checks that the skip never strands a sleeper:
//! every registration a publisher had read before a wake comes from a
//! sleeper whose futex snapshot (`seen`) predates that wake's bump, so
//! the sleeper's futex wait on `seen` is woken or returns at once.
//!
//! The sleeper registers twice (as one that woke, found nothing and went
//! back to sleep); the publisher commits three times. The futex wait
//! itself is the kernel's and is not modelled: only the values it
//! compares are.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p shm-bus-core --release --test loom_wake`
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;
use shm_bus_core::wake::Waker;

/// The header's three words (`data_futex`, `data_sleepers`,
/// `data_registrations`).
#[derive(Default)]
struct Words {
    futex: AtomicU32,
    sleepers: AtomicU32,
    registrations: AtomicU32,
}

/// Executions in which the publisher woke after reading a registration:
/// the check below is not vacuous.
static CHECKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn a_publisher_skipping_wakes_never_strands_a_registered_sleeper() {
    loom::model(|| {
        let w = Arc::new(Words::default());
        let sleeper = {
            let w = w.clone();
            thread::spawn(move || {
                let mut seen = Vec::new();
                for _ in 0..2 {
                    // As `Subscriber::wait`: snapshot, register, count.
                    let s = w.futex.load(Ordering::Acquire);
                    w.registrations.fetch_add(1, Ordering::SeqCst);
                    w.sleepers.fetch_add(1, Ordering::SeqCst);
                    seen.push(s);
                    // (futex wait on `s`), then `stop_sleeping`.
                    w.sleepers.fetch_sub(1, Ordering::SeqCst);
                }
                seen
            })
        };
        // As `Publisher::wake_subscribers`, after three commits: (futex
        // value before the bump, registrations read before it).
        let mut waker = Waker::default();
        let mut wakes = Vec::new();
        for _ in 0..3 {
            if waker.due(&w.sleepers, &w.registrations) {
                let before = w.futex.fetch_add(1, Ordering::Release);
                wakes.push((before, waker.last().expect("set by a wake")));
            }
        }
        let seen = sleeper.join().unwrap();
        for &(before, read) in &wakes {
            // Registration k (1-based) was counted in `read`: its
            // snapshot predates the bump, so a wait on it cannot sleep
            // through the bump.
            for (k, &s) in seen.iter().enumerate() {
                if (k as u32) < read {
                    assert!(
                        s <= before,
                        "registration {} saw futex {s} after a bump from {before}",
                        k + 1
                    );
                    CHECKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        // A publisher never wakes twice for the same registrations.
        for pair in wakes.windows(2) {
            assert_ne!(pair[0].1, pair[1].1, "woke twice for one registration");
        }
    });
    assert!(
        CHECKED.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no execution had a wake after a registration"
    );
}
