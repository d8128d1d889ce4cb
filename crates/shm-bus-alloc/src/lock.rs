//! A cross-process lock that survives the death of its holder, with an undo
//! log that makes every critical section atomic with respect to crashes.
//!
//! # Record layout (all 8-byte atomic words at `base`)
//!
//! | offset | field     | encoding                                                |
//! |--------|-----------|---------------------------------------------------------|
//! | 0      | `owner`   | `0` = free, else the holder's owner token (pid + start) |
//! | 8      | `log_len` | number of valid undo entries, `0..=LOG_CAP`             |
//! | 16+16i | `addr[i]` | address of the word changed by step `i`                 |
//! | 24+16i | `old[i]`  | its value before step `i`                               |
//!
//! # Protocol
//!
//! Acquire: CAS `owner` 0 → my token. If the CAS fails, spin; once spinning
//! is slow, ask whether the owner token names a dead process; if so, CAS
//! `owner` dead-token → my token (exactly one waiter wins) and roll back.
//!
//! Every store a critical section makes to shared metadata goes through
//! [`Guard::store`]: (1) write `addr[n]`, `old[n]`; (2) `log_len = n + 1`
//! (Release); (3) store the new value (Release). [`Guard::commit`] sets
//! `log_len = 0` (Release): that single store is the commit point. Unlock
//! stores `owner = 0` (Release).
//!
//! # Why a crash anywhere is harmless
//!
//! The stores of one holder become visible in program order (each is a
//! Release store, and the recoverer synchronises with the dead process
//! through the kernel: the task was torn down before `/proc` reports it
//! dead). So the recoverer sees a prefix of the steps above:
//! - before any `log_len = n + 1`: step `n` did not happen or its entry is
//!   not yet counted and its target is untouched;
//! - `log_len = n + 1` but the target store not done: restoring `old[n]` is
//!   a no-op;
//! - `log_len = 0` after commit: the operation is complete, nothing to undo.
//!
//! Rollback restores entries from last to first and then sets
//! `log_len = 0`. It is idempotent, so a recoverer that itself dies
//! mid-rollback leaves a state the next recoverer rolls back again. An
//! abandoned operation is thus undone entirely: an allocation is returned
//! to where it came from, a free leaves the block allocated (leaked — its
//! owner is dead anyway). No block can be handed out twice and no list can
//! be left half-linked.
//!
//! A guard dropped without commit (an error or panic in our own process)
//! rolls back the same way.
//!
//! # Damage
//!
//! Every word of the record is range-checked before it is used: a
//! `log_len` above [`LOG_CAP`], or an undo entry whose address is not a
//! word inside one of the lock's `targets` ranges (the metadata the lock
//! protects) or lies inside the lock record itself, is
//! [`Error::Corrupt`]`("lock undo log")` and nothing is restored. An owner
//! word that is not a token any process writes counts as a dead holder
//! (see `ProcessId::token_is_dead`).

use crate::error::{Error, Result};
use crate::liveness::Owners;
use crate::mem::Mem;
use crate::sync::{AtomicU64, Ordering, SpinWait};

/// Undo entries per critical section (the arena needs at most 8).
pub const LOG_CAP: u64 = 12;
/// Bytes of a lock record.
pub const LOCK_BYTES: u64 = 16 + 16 * LOG_CAP;

const OWNER: u64 = 0;
const LOG_LEN: u64 = 8;
const fn entry(i: u64) -> u64 {
    16 + 16 * i
}

/// What acquiring the lock found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The lock was free.
    Clean,
    /// The previous holder was dead; its operation was rolled back.
    Recovered,
}

/// A lock record at `base` in `mem`.
pub struct RobustLock<'a, M: Mem, O: Owners> {
    /// The memory holding the lock record and the words it protects.
    pub mem: &'a M,
    /// Offset of the lock record ([`LOCK_BYTES`] bytes, 8-aligned).
    pub base: u64,
    /// Who the caller is, and who is dead.
    pub owners: &'a O,
    /// Address ranges (`start..end`, bytes) of the words critical sections
    /// may journal. Undo entries pointing elsewhere are damage.
    pub targets: Targets,
}

/// Where journaled words may live: up to three byte ranges.
pub type Targets = [std::ops::Range<u64>; 3];

/// Initialises a lock record (free, empty log) without relying on the
/// memory's previous content.
pub fn init_lock<M: Mem>(mem: &M, base: u64) -> Result<()> {
    for off in (0..LOCK_BYTES).step_by(8) {
        word(mem, base + off)?.store(0, Ordering::Relaxed);
    }
    Ok(())
}

fn word<M: Mem>(mem: &M, off: u64) -> Result<&AtomicU64> {
    // A `match`, not `ok_or`: the error (whose type has drop glue) is
    // built only when needed, not built and dropped on every journaled
    // store (measured: ~100 instructions per group claim).
    match mem.word(off) {
        Some(w) => Ok(w),
        None => Err(Error::Corrupt {
            what: "lock record",
        }),
    }
}

/// The word at `addr` of the metadata a critical section changes (as
/// `word`, with its own message).
fn target<M: Mem>(mem: &M, addr: u64) -> Result<&AtomicU64> {
    match mem.word(addr) {
        Some(w) => Ok(w),
        None => Err(Error::Corrupt {
            what: "arena metadata address",
        }),
    }
}

impl<'a, M: Mem, O: Owners> RobustLock<'a, M, O> {
    /// Takes the lock, breaking it if its holder is dead. Waits as long as a
    /// live holder keeps it.
    pub fn lock(&self) -> Result<(Guard<'a, M>, Acquired)> {
        let owner = word(self.mem, self.base + OWNER)?;
        let me = self.owners.token();
        let spin = SpinWait::new();
        loop {
            // Acquire pairs with the Release store of `owner = 0` in
            // `Guard::drop`: we see everything the previous holder did.
            match owner.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => {
                    let guard = Guard::new(self.mem, self.base, &self.targets)?;
                    // A non-empty log here means a holder abandoned its
                    // section without commit and without dying (or memory
                    // was damaged); undo it like a crash.
                    let acquired = if guard.pending()? > 0 {
                        guard.rollback()?;
                        Acquired::Recovered
                    } else {
                        Acquired::Clean
                    };
                    return Ok((guard, acquired));
                }
                Err(holder) => {
                    if spin.is_slow() && self.owners.is_dead(holder) {
                        // Acquire pairs with the Release stores of the dead
                        // holder (log entries, targets); only one waiter's
                        // CAS succeeds, so recovery is exclusive.
                        if owner
                            .compare_exchange(holder, me, Ordering::Acquire, Ordering::Relaxed)
                            .is_ok()
                        {
                            let guard = Guard::new(self.mem, self.base, &self.targets)?;
                            guard.rollback()?;
                            return Ok((guard, Acquired::Recovered));
                        }
                        continue;
                    }
                    spin.wait();
                }
            }
        }
    }
}

/// Holding the lock. Journal every metadata store through [`Guard::store`],
/// then [`Guard::commit`]. Dropping without commit rolls back.
pub struct Guard<'a, M: Mem> {
    mem: &'a M,
    base: u64,
    targets: Targets,
    owner: &'a AtomicU64,
    log_len: &'a AtomicU64,
    len: u64,
}

#[cfg(test)]
thread_local! {
    /// Unit tests: panic ("crash") after this many more journaled stores.
    pub(crate) static CRASH_AFTER: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
    /// Unit tests: set while a simulated crash unwinds, so guards neither
    /// roll back nor unlock — exactly what a SIGKILL leaves behind.
    pub(crate) static CRASHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl<'a, M: Mem> Guard<'a, M> {
    fn new(mem: &'a M, base: u64, targets: &Targets) -> Result<Self> {
        Ok(Guard {
            mem,
            base,
            targets: targets.clone(),
            owner: word(mem, base + OWNER)?,
            log_len: word(mem, base + LOG_LEN)?,
            len: 0,
        })
    }

    fn pending(&self) -> Result<u64> {
        // Acquire pairs with the Release stores of `log_len` in `store`.
        let n = self.log_len.load(Ordering::Acquire);
        if n > LOG_CAP {
            return Err(Error::Corrupt {
                what: "lock undo log",
            });
        }
        Ok(n)
    }

    /// Whether `addr` may be journaled: a word inside one of the targets,
    /// outside the lock record.
    fn is_target(&self, addr: u64) -> bool {
        let in_record = addr >= self.base && addr - self.base < LOCK_BYTES;
        addr % 8 == 0
            && !in_record
            && self
                .targets
                .iter()
                .any(|r| r.start <= addr && addr.checked_add(8).is_some_and(|e| e <= r.end))
    }

    /// Restores every logged word, last first, then empties the log. Every
    /// entry is checked before any is restored: a damaged log restores
    /// nothing and is reported.
    fn rollback(&self) -> Result<()> {
        let n = self.pending()?;
        let mut undo = [(0u64, 0u64); LOG_CAP as usize];
        for (i, e) in undo.iter_mut().enumerate().take(n as usize) {
            let i = i as u64;
            let addr = word(self.mem, self.base + entry(i))?.load(Ordering::Relaxed);
            let old = word(self.mem, self.base + entry(i) + 8)?.load(Ordering::Relaxed);
            if !self.is_target(addr) || self.mem.word(addr).is_none() {
                return Err(Error::Corrupt {
                    what: "lock undo log",
                });
            }
            *e = (addr, old);
        }
        for &(addr, old) in undo[..n as usize].iter().rev() {
            if let Some(target) = self.mem.word(addr) {
                // Relaxed: ordered before the next holder by our Release
                // unlock.
                target.store(old, Ordering::Relaxed);
            }
        }
        // Release: the restores above happen-before anyone who sees the
        // empty log (pairs with the Acquire load in `pending`).
        self.log_len.store(0, Ordering::Release);
        Ok(())
    }

    /// Reads a metadata word (no journaling needed).
    pub fn load(&self, addr: u64) -> Result<u64> {
        Ok(target(self.mem, addr)?.load(Ordering::Relaxed))
    }

    /// Journals and performs `*addr = value`.
    pub fn store(&mut self, addr: u64, value: u64) -> Result<()> {
        #[cfg(test)]
        CRASH_AFTER.with(|c| {
            if let Some(n) = c.get() {
                if n == 0 {
                    c.set(None);
                    CRASHING.with(|x| x.set(true));
                    panic!("injected crash");
                }
                c.set(Some(n - 1));
            }
        });
        if self.len == LOG_CAP {
            return Err(Error::Corrupt {
                what: "lock undo log overflow",
            });
        }
        // The same check rollback applies, so nothing we journal is ever
        // refused by a recoverer (and a damaged link never makes us write
        // outside the metadata the lock protects).
        if !self.is_target(addr) {
            return Err(Error::Corrupt {
                what: "arena metadata address",
            });
        }
        let target = target(self.mem, addr)?;
        let i = self.len;
        word(self.mem, self.base + entry(i))?.store(addr, Ordering::Relaxed);
        word(self.mem, self.base + entry(i) + 8)?
            .store(target.load(Ordering::Relaxed), Ordering::Relaxed);
        self.len += 1;
        // Release: the entry is complete before it is counted (pairs with
        // the Acquire load in `pending` of a recoverer).
        self.log_len.store(self.len, Ordering::Release);
        // Release: the target changes only after its undo entry is counted,
        // so a recoverer that sees the new value also sees the entry.
        target.store(value, Ordering::Release);
        Ok(())
    }

    /// Makes all journaled stores permanent (the commit point).
    pub fn commit(&mut self) {
        // Release: pairs with the Acquire load in `pending`; every target
        // store is visible before the log is seen empty.
        self.log_len.store(0, Ordering::Release);
        self.len = 0;
    }

    /// Bumps a counter outside the journal (diagnostics only).
    pub fn bump_unjournaled(&self, addr: u64) {
        if let Some(w) = self.mem.word(addr) {
            w.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<M: Mem> Drop for Guard<'_, M> {
    fn drop(&mut self) {
        #[cfg(test)]
        if CRASHING.with(|x| x.get()) {
            return;
        }
        if self.len > 0 {
            // Uncommitted: undo. Errors cannot be reported from drop; a
            // damaged log is reported by the next `lock`.
            let _ = self.rollback();
        }
        // Release: pairs with the Acquire CAS in `RobustLock::lock`.
        self.owner.store(0, Ordering::Release);
    }
}
