//! Waking sleeping subscribers with one syscall per sleep, not one per
//! publish.
//!
//! A subscriber that found nothing to read, and spun long enough, sleeps
//! on the bus's futex word (`Subscriber::wait`):
//!
//! 1. `seen = data_futex` (Acquire);
//! 2. `data_registrations += 1`, then `data_sleepers += 1` (both SeqCst);
//! 3. polls once more, and sleeps only if that finds nothing, for as long
//!    as `data_futex == seen` (or a short nap);
//! 4. on waking, `data_sleepers -= 1`.
//!
//! A publisher that committed a record bumps `data_futex` and makes the
//! wake syscall when [`Waker::due`] says so: someone sleeps
//! (`data_sleepers != 0`), and someone registered since this publisher's
//! own last wake (`data_registrations` moved). Without the second test, a
//! sleeper that has been woken but has not run yet (on a busy machine,
//! for a while) would cost every publish until then a syscall: measured
//! at about 300 wake syscalls per actual sleep on two busy vCPUs.
//!
//! Skipping is sound because of what the skipping publisher saw at its
//! last wake: every registration counted in the value it read then
//! (Acquire, pairing with the registering SeqCst increment) comes from a
//! sleeper whose `seen` was read before that increment, hence before the
//! publisher's bump that followed (Release). So that sleeper's futex wait
//! either was woken by the syscall after the bump or finds the word
//! changed and returns at once. A sleeper registering later moves the
//! count, and the next publish wakes again: a publisher that reads a
//! sleeper's `data_sleepers` increment (Acquire) also reads its earlier
//! registration, so it cannot count the sleeper and take it for one it
//! already woke.
//!
//! What is not covered here is the race the plain count already had: a
//! publisher reads `data_sleepers` without a fence, so it may miss a
//! sleeper registering at that instant; the sleeper's own re-poll (step
//! 3) and its short nap bound that delay (see `Subscriber::wait`).

use crate::sync::{AtomicU32, Ordering};

/// A publisher's memory of its last wake (one per publisher handle).
#[derive(Debug, Default, Clone, Copy)]
pub struct Waker {
    /// `data_registrations` as read before this publisher's last bump of
    /// the futex word; `None` before the first.
    last: Option<u32>,
}

impl Waker {
    /// Whether the caller, having committed a record, must bump the futex
    /// word (Release) and wake the sleepers; if so, the caller must do it
    /// (this records the wake as done).
    #[inline]
    pub fn due(&mut self, sleepers: &AtomicU32, registrations: &AtomicU32) -> bool {
        // Acquire: pairs with a sleeper's SeqCst increment, so that the
        // registration it made before is seen below (a plain load on
        // x86). No fence between the committing stamp store and this
        // load, so a subscriber that registers as a sleeper at the same
        // instant may be missed; it re-polls after registering and sleeps
        // with a short, growing timeout, so it notices the record within
        // a millisecond (see `Subscriber::wait`). A fence here would stall
        // every publish.
        if sleepers.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.registered_since(registrations)
    }

    /// The registration count read before the last wake (for the loom
    /// model's check).
    #[cfg(loom)]
    pub fn last(&self) -> Option<u32> {
        self.last
    }

    #[inline]
    fn registered_since(&mut self, registrations: &AtomicU32) -> bool {
        // Acquire: pairs with the SeqCst increment of a registering
        // sleeper, so its `seen` read of the futex word happens before the
        // bump the caller makes next (see the module docs).
        let now = registrations.load(Ordering::Acquire);
        if self.last == Some(now) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Waker;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    /// The header's words, and a count of committed records standing in
    /// for the ring.
    #[derive(Default)]
    struct Bus {
        futex: AtomicU32,
        sleepers: AtomicU32,
        registrations: AtomicU32,
        committed: AtomicU64,
    }

    /// Std threads doing what `Subscriber::wait` and
    /// `Publisher::wake_subscribers` do with these words; the futex wait
    /// is a bounded spin on the word (a nap that ends by timeout). Under
    /// Miri (`cargo +nightly miri test -p shm-bus-core --lib miri_`) its
    /// checker sees every access; natively it runs as a plain test. The
    /// subscriber gets every record, and the publisher makes fewer wakes
    /// than records.
    #[test]
    fn miri_a_sleeping_subscriber_gets_every_record_with_deduplicated_wakes() {
        const RECORDS: u64 = if cfg!(miri) { 20 } else { 20_000 };
        let bus = Arc::new(Bus::default());
        let subscriber = {
            let bus = bus.clone();
            std::thread::spawn(move || {
                let mut read = 0;
                let mut woken = 0u64;
                while read < RECORDS {
                    // Acquire: pairs with the Release commit below.
                    let now = bus.committed.load(Ordering::Acquire);
                    if now > read {
                        read = now;
                        continue;
                    }
                    let seen = bus.futex.load(Ordering::Acquire);
                    bus.registrations.fetch_add(1, Ordering::SeqCst);
                    bus.sleepers.fetch_add(1, Ordering::SeqCst);
                    if bus.committed.load(Ordering::Acquire) == read {
                        // The nap: until the word moves, or a timeout.
                        for _ in 0..100 {
                            if bus.futex.load(Ordering::Acquire) != seen {
                                woken += 1;
                                break;
                            }
                            std::thread::yield_now();
                        }
                    }
                    bus.sleepers.fetch_sub(1, Ordering::SeqCst);
                }
                (read, woken)
            })
        };
        let mut waker = Waker::default();
        let mut wakes = 0;
        for i in 1..=RECORDS {
            // Release: the "stamp" a subscriber acquires.
            bus.committed.store(i, Ordering::Release);
            if waker.due(&bus.sleepers, &bus.registrations) {
                bus.futex.fetch_add(1, Ordering::Release);
                wakes += 1;
            }
        }
        let (read, _woken) = subscriber.join().expect("subscriber");
        assert_eq!(read, RECORDS);
        assert!(wakes <= RECORDS);
        // Every wake answered a registration the publisher had not
        // answered before.
        assert!(u64::from(bus.registrations.load(Ordering::Relaxed)) >= wakes);
    }
}
