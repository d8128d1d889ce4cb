//! The worker-group claim protocol, on any [`Mem`] (the segment in
//! production, heap memory in the loom models of `tests/loom_group.rs`).
//!
//! A group is a slot of words in the segment (layout below): a name, a
//! mode, a subscription set, one **claim cursor** per producer ring, and a
//! table of **member slots**. Every change to the group's shared words is
//! made under the group's robust lock ([`shm_bus_alloc::lock`]), whose undo
//! log makes each critical section atomic with respect to crashes: a
//! member killed in the middle of a claim leaves the group as if it had
//! never started it. The one exception is a member's own progress through
//! its claim (one word, [`M_PROGRESS`], and two counters), which only the
//! member that holds the slot writes.
//!
//! ## Claims
//!
//! A member holds at most one claim: a range `[start, end)` of one
//! producer's ring, taken from the group's claim cursor of that ring (which
//! moves to `end` in the same critical section). The member hands out the
//! wanted records of its claim one by one, in order. Its progress word is
//! the position of the first record it has not finished, with bit
//! [`HANDED`] set while the record there has been handed out and not yet
//! finished. So at any instant a member's unfinished work is exactly
//! `[progress, end)`, of which at most the first record was seen by the
//! user.
//!
//! ## Death
//!
//! A member whose owner is dead (pid and start time, as for subscribers),
//! or that left with work unfinished, is **adopted** by a live idle member
//! under the lock: the slot's state names the adopter from then on (so if
//! the adopter dies too, the slot is dead again), and the adopter finishes
//! `[progress, end)` in place. A handed-out record there is counted once,
//! in the same critical section: as `redelivered` (at-least-once: the
//! adopter hands it out again, flagged) or as `lost` (at-most-once: the
//! adopter's progress skips it). A dead member with no unfinished work is
//! simply freed. The ranges never move between slots, so a producer
//! reading the slots one after another never misses one.
//!
//! ## Gating (Block policy)
//!
//! [`GroupCore::floor`] is the oldest position of ring `p` the group still
//! needs: its claim cursor, or the start of any member slot's unfinished
//! claim in that ring (alive, dead or adopted; `M_START` moves to the end
//! when the claim is finished), whichever is lower. The start is at most a
//! claim behind the progress, and lives on a line the member writes once
//! or twice per claim, so producers computing their limit do not pull the
//! line the member writes per event.
//! It reads the cursor first (Acquire, pairing with the Release store that
//! ends a claim's journal): a claim that moved the cursor past a record
//! had already written the member's range, so the record is still counted.
//! The floor only grows, so a stale read is conservative.
//!
//! ## Layout of a group slot (byte offsets from its base)
//!
//! | offset | words | content |
//! |---|---|---|
//! | 0 | 1 | state: `slot_word(creator, CLAIMING)` while created, `slot_word(creator, ACTIVE)` after, 0 when free |
//! | 8 | 1 | generation (bumped by each creation) |
//! | 16 | 1 | mode: 1 at-least-once, 2 at-most-once |
//! | 24 | 1 | removing: non-zero once removal was asked while members remained |
//! | 32 | 4 | name (32 bytes) |
//! | 64 | 26 | robust lock record |
//! | 272 | 2 | events lapped inside members' claims, claims made (`fetch_add`, unjournaled) |
//! | 320 | 7 | redelivered, lost, lagged, folded claimed, folded done, patterns length, created ns |
//! | 384 | 128 | patterns, `\n`-separated |
//! | 1408 | stride | claim cursor per producer |
//! | … | stride | sequence number expected at each cursor |
//! | … | 16 × members | member slots (below) |
//!
//! A member slot, line 0 (what producers read; written per claim): state
//! (`slot_word(owner, ACTIVE)`, 0 free), ring, start, end, pid,
//! generation, joined ns, sleeping. Line 1 (written per event by its
//! owner): name (4 words), progress, claimed, done, last active ns.

use shm_bus_alloc::lock::{Acquired, Guard, LOCK_BYTES, RobustLock};
use shm_bus_alloc::{Mem, Owners};

use crate::slots::{SLOT_ACTIVE, SLOT_FREE, slot_state, slot_token, slot_word};
use crate::sync::{AtomicU64, Ordering};

/// Group state word.
pub const G_STATE: u64 = 0;
/// Generation, bumped by every creation in this slot.
pub const G_GENERATION: u64 = 8;
/// Delivery mode ([`MODE_AT_LEAST_ONCE`], [`MODE_AT_MOST_ONCE`]).
pub const G_MODE: u64 = 16;
/// Non-zero once removal was asked while members remained.
pub const G_REMOVING: u64 = 24;
/// Name, 32 bytes.
pub const G_NAME: u64 = 32;
/// The group's robust lock record.
pub const G_LOCK: u64 = 64;
/// Events handed out again after their member died (at-least-once).
pub const G_REDELIVERED: u64 = 320;
/// Events of members' claims overwritten before they were read (Overwrite
/// policy): bumped with `fetch_add` by the member, outside the lock (so
/// outside the journaled words).
pub const G_MEMBER_LAGGED: u64 = 272;
/// Events dropped because their member died holding them (at-most-once).
pub const G_LOST: u64 = 328;
/// Events overwritten before the group claimed them (Overwrite policy).
pub const G_LAGGED: u64 = 336;
/// `claimed` counts of member slots freed since creation.
pub const G_FOLDED_CLAIMED: u64 = 344;
/// `done` counts of member slots freed since creation.
pub const G_FOLDED_DONE: u64 = 352;
/// Bytes of the pattern text.
pub const G_PATTERNS_LEN: u64 = 360;
/// Creation time, ns since the epoch.
pub const G_CREATED_NS: u64 = 368;
/// Claims made (statistics; `fetch_add`, unjournaled, outside the lock's
/// targets).
pub const G_CLAIMS: u64 = 280;
/// Pattern text.
pub const G_PATTERNS: u64 = 384;
/// Bytes of pattern text a group keeps.
pub const PATTERN_BYTES: u64 = 1024;
/// First claim cursor.
pub const G_CURSORS: u64 = G_PATTERNS + PATTERN_BYTES;

/// Member slot: state word.
pub const M_STATE: u64 = 0;
/// Member slot: the ring of its claim ([`NO_RING`] when it never claimed).
pub const M_RING: u64 = 8;
/// Member slot: the oldest position of its claim it may still need: the
/// claim's start while it is unfinished, its end once finished. What
/// producers' [`GroupCore::floor`] reads (with the ring and end, on this
/// line written once or twice per claim), instead of the progress word
/// the member writes per event on the next line.
pub const M_START: u64 = 16;
/// Member slot: end of its claim.
pub const M_END: u64 = 24;
/// Member slot: the owner's pid (as it wrote it; the token is in the state).
pub const M_PID: u64 = 32;
/// Member slot: times claimed.
pub const M_GENERATION: u64 = 40;
/// Member slot: when it joined, ns since the epoch.
pub const M_JOINED_NS: u64 = 48;
/// Member slot: 1 while counted among the bus's sleeping receivers.
pub const M_SLEEPING: u64 = 56;
/// Member slot: name, 32 bytes.
pub const M_NAME: u64 = 64;
/// Member slot: first unfinished position of its claim, | [`HANDED`].
pub const M_PROGRESS: u64 = 96;
/// Member slot: records handed out.
pub const M_CLAIMED: u64 = 104;
/// Member slot: records finished.
pub const M_DONE: u64 = 112;
/// Member slot: last time it was active, ns since the epoch.
pub const M_LAST_ACTIVE: u64 = 120;
/// Bytes of a member slot.
pub const MEMBER_BYTES: u64 = 128;

/// Progress bit: the record at the progress position was handed out and
/// is not finished. Positions are multiples of 32, so the bit is free.
pub const HANDED: u64 = 1;
/// `M_RING` of a member that holds no claim yet.
pub const NO_RING: u64 = u64::MAX;
/// At-least-once mode word.
pub const MODE_AT_LEAST_ONCE: u64 = 1;
/// At-most-once mode word.
pub const MODE_AT_MOST_ONCE: u64 = 2;

const _: () = assert!(G_LOCK + LOCK_BYTES <= G_MEMBER_LAGGED);
const _: () = assert!(G_CLAIMS + 8 <= G_REDELIVERED);

/// Bytes of a group slot for `stride` cursor words and `members` members.
pub const fn group_bytes(stride: u64, members: u64) -> u64 {
    members_offset(stride) + members * MEMBER_BYTES
}

const fn members_offset(stride: u64) -> u64 {
    (G_CURSORS + 16 * stride).next_multiple_of(64)
}

/// Why a group operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupFault {
    /// A word of the group is out of range or inconsistent.
    Corrupt(&'static str),
    /// The group was removed (or its slot reused) since the caller joined.
    Removed,
    /// Every member slot has a live owner or unfinished work.
    Full,
}

impl From<shm_bus_alloc::Error> for GroupFault {
    fn from(e: shm_bus_alloc::Error) -> Self {
        match e {
            shm_bus_alloc::Error::Corrupt { what } => GroupFault::Corrupt(what),
            _ => GroupFault::Corrupt("group lock"),
        }
    }
}

/// A claim handed to a member: `[start, end)` of ring `ring`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The producer ring.
    pub ring: usize,
    /// First position.
    pub start: u64,
    /// One past the last record.
    pub end: u64,
    /// Sequence number of the first record (Overwrite counts lag from it).
    pub seq: u64,
    /// Sequence number of the record at `end`.
    pub end_seq: u64,
    /// Records of this ring overwritten before the cursor reached them.
    pub missed: u64,
}

/// What a member scanning ring `p` from the group's cursor found (the
/// member reads the ring: the protocol only needs the outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Where the claim would start (the cursor, or where a lapped cursor
    /// resynchronised).
    pub start: u64,
    /// One past the last record to claim (`start` when nothing is ready).
    pub end: u64,
    /// Sequence number at `start` / at `end`.
    pub seq: u64,
    /// Sequence number at `end`.
    pub end_seq: u64,
    /// Wanted records in `[start, end)`.
    pub wanted: u64,
    /// Records overwritten before the cursor reached them.
    pub missed: u64,
}

/// A dead (or departed) member's unfinished work, now the adopter's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adopted {
    /// The member slot adopted.
    pub slot: usize,
    /// The ring of its claim.
    pub ring: usize,
    /// Where to continue (a record boundary).
    pub from: u64,
    /// End of its claim.
    pub end: u64,
    /// Positions below this are redeliveries (the record handed out when
    /// its member died), `0` when none.
    pub redeliver_below: u64,
}

/// One group slot in `mem`.
pub struct GroupCore<'a, M: Mem, O: Owners> {
    /// Where the words live.
    pub mem: &'a M,
    /// Offset of the group slot.
    pub base: u64,
    /// Producer rings (cursors in use).
    pub producers: u64,
    /// Cursor words per table (at least `producers`).
    pub stride: u64,
    /// Member slots.
    pub members: u64,
    /// Who the caller is, who is dead.
    pub owners: &'a O,
    /// Sleepers un-counted from dead members' slots (the caller takes them
    /// off the bus's sleeper count).
    pub sleepers: std::cell::Cell<u32>,
}

impl<'a, M: Mem, O: Owners> GroupCore<'a, M, O> {
    /// Offset of group word `off`.
    #[inline]
    pub fn at(&self, off: u64) -> u64 {
        self.base + off
    }

    /// Offset of producer `p`'s claim cursor.
    #[inline]
    pub fn cursor_at(&self, p: u64) -> u64 {
        self.base + G_CURSORS + 8 * p
    }

    /// Offset of the sequence number expected at producer `p`'s cursor.
    #[inline]
    pub fn expected_at(&self, p: u64) -> u64 {
        self.base + G_CURSORS + 8 * self.stride + 8 * p
    }

    /// Offset of field `f` of member slot `m`.
    #[inline]
    pub fn member_at(&self, m: u64, f: u64) -> u64 {
        self.base + members_offset(self.stride) + m * MEMBER_BYTES + f
    }

    /// The word at `off` (an offset from this module's `*_at`).
    #[inline]
    pub fn word(&self, off: u64) -> Result<&'a AtomicU64, GroupFault> {
        self.mem
            .word(off)
            .ok_or(GroupFault::Corrupt("group word out of the segment"))
    }

    fn load(&self, off: u64) -> Result<u64, GroupFault> {
        // Acquire: pairs with the Release stores of the lock's journal
        // (`Guard::store`) and of a member's own progress.
        Ok(self.word(off)?.load(Ordering::Acquire))
    }

    /// Takes the group's lock, breaking it (and undoing the dead holder's
    /// unfinished section) if its holder died. No check of the group.
    pub fn lock_raw(&self) -> Result<Guard<'a, M>, GroupFault> {
        let (guard, how) = RobustLock {
            mem: self.mem,
            base: self.at(G_LOCK),
            owners: self.owners,
            targets: [
                self.at(G_STATE)..self.at(G_LOCK),
                self.at(G_REDELIVERED)..self.at(G_PATTERNS),
                self.cursor_at(0)..self.base + group_bytes(self.stride, self.members),
            ],
        }
        .lock()?;
        if how == Acquired::Recovered {
            tracing::info!(
                group = self.base,
                "recovered the lock of a dead group member"
            );
        }
        Ok(guard)
    }

    /// Takes the group's lock ([`lock_raw`](Self::lock_raw)), then checks
    /// that the group is still the one of `generation` and not being
    /// removed.
    pub fn lock(&self, generation: u64) -> Result<Guard<'a, M>, GroupFault> {
        let guard = self.lock_raw()?;
        if slot_state(guard.load(self.at(G_STATE))?) != SLOT_ACTIVE
            || guard.load(self.at(G_GENERATION))? != generation
            || guard.load(self.at(G_REMOVING))? != 0
        {
            return Err(GroupFault::Removed);
        }
        Ok(guard)
    }

    /// Member `m`'s own progress (only the member holding the slot calls
    /// this): `pos | HANDED` when it hands out the record at `pos`, the
    /// next position when it finishes it. Release: pairs with the Acquire
    /// loads of [`floor`](Self::floor) and of an adopter.
    #[inline]
    pub fn set_progress(&self, m: u64, value: u64) -> Result<(), GroupFault> {
        self.word(self.member_at(m, M_PROGRESS))?
            .store(value, Ordering::Release);
        Ok(())
    }

    /// Member `m`'s claim is finished (the member holding the slot calls
    /// this): progress and floor at its end. Release: pairs with the
    /// Acquire loads of [`floor`](Self::floor) and of an adopter.
    pub fn finish(&self, m: u64, end: u64) -> Result<(), GroupFault> {
        self.set_progress(m, end)?;
        self.word(self.member_at(m, M_START))?
            .store(end, Ordering::Release);
        Ok(())
    }

    /// Block policy: the oldest position of ring `p` the group still needs
    /// (see the module docs). Lock-free; may be stale, never too high.
    pub fn floor(&self, p: u64) -> Result<u64, GroupFault> {
        // Acquire: pairs with the Release store of the cursor at the end of
        // a claim's journal; the claimer's range, written before, is seen.
        let removing = self.load(self.at(G_REMOVING))? != 0;
        let mut min = if removing {
            u64::MAX
        } else {
            self.load(self.cursor_at(p))?
        };
        for m in 0..self.members {
            if self.load(self.member_at(m, M_STATE))? == SLOT_FREE {
                continue;
            }
            if self.load(self.member_at(m, M_RING))? != p {
                continue;
            }
            // The claim's start, not the progress the member writes per
            // event: at most a claim more conservative, and a line the
            // member writes only once or twice per claim.
            let start = self.load(self.member_at(m, M_START))?;
            if start < self.load(self.member_at(m, M_END))? {
                min = min.min(start);
            }
        }
        Ok(min)
    }

    /// Joins member slot `m`'s state word to `me` (the caller's token):
    /// takes a free slot, or one whose dead owner left no unfinished work.
    /// Returns the slot.
    pub fn join(
        &self,
        generation: u64,
        pid: u64,
        name: [u64; 4],
        now_ns: u64,
    ) -> Result<u64, GroupFault> {
        let mut g = self.lock(generation)?;
        let me = self.owners.token();
        let mut chosen = None;
        for m in 0..self.members {
            let state = g.load(self.member_at(m, M_STATE))?;
            if state == SLOT_FREE {
                chosen = Some(m);
                break;
            }
        }
        if chosen.is_none() {
            self.reap_locked(&mut g)?;
            for m in 0..self.members {
                if g.load(self.member_at(m, M_STATE))? == SLOT_FREE {
                    chosen = Some(m);
                    break;
                }
            }
        }
        let m = chosen.ok_or(GroupFault::Full)?;
        let gen_at = self.member_at(m, M_GENERATION);
        let next_gen = g.load(gen_at)?.wrapping_add(1);
        g.store(gen_at, next_gen)?;
        g.store(self.member_at(m, M_RING), NO_RING)?;
        g.store(self.member_at(m, M_END), 0)?;
        g.store(self.member_at(m, M_PROGRESS), 0)?;
        // Unjournaled fields of a slot nobody else owns: seen by readers
        // after the state store below (Release), rolled back with it.
        for (i, w) in name.iter().enumerate() {
            self.word(self.member_at(m, M_NAME + 8 * i as u64))?
                .store(*w, Ordering::Relaxed);
        }
        for (f, v) in [
            (M_PID, pid),
            (M_JOINED_NS, now_ns),
            (M_LAST_ACTIVE, now_ns),
            (M_CLAIMED, 0),
            (M_DONE, 0),
            (M_SLEEPING, 0),
            (M_START, 0),
        ] {
            self.word(self.member_at(m, f))?.store(v, Ordering::Relaxed);
        }
        g.store(self.member_at(m, M_STATE), slot_word(me, SLOT_ACTIVE))?;
        g.commit();
        Ok(m)
    }

    /// Takes the next claim for idle member `m`: scans ring by ring, from
    /// `first`, with `scan(p, cursor, expected)`, until one has a record the
    /// group wants. Records it does not want are passed over (the cursor
    /// moves past them); a lapped cursor (Overwrite) moves on and counts
    /// what it missed. `Ok(None)` when no ring has a wanted record ready;
    /// the records missed are returned either way.
    pub fn claim(
        &self,
        generation: u64,
        m: u64,
        first: u64,
        mut scan: impl FnMut(u64, u64, u64) -> Result<Scan, GroupFault>,
    ) -> Result<(Option<Claim>, u64), GroupFault> {
        let mut g = self.lock(generation)?;
        let mut missed = 0u64;
        for i in 0..self.producers {
            let p = (first + i) % self.producers;
            let cursor = g.load(self.cursor_at(p))?;
            let expected = g.load(self.expected_at(p))?;
            let s = scan(p, cursor, expected)?;
            if s.end == cursor && s.missed == 0 {
                continue;
            }
            if s.end < s.start || s.start < cursor {
                return Err(GroupFault::Corrupt("claim scan went backwards"));
            }
            if s.missed > 0 {
                missed = missed.saturating_add(s.missed);
                let lagged = g.load(self.at(G_LAGGED))?;
                g.store(self.at(G_LAGGED), lagged.saturating_add(s.missed))?;
            }
            if s.wanted > 0 {
                // Journaled: the range (a store that changes nothing needs
                // no undo entry). The claim count is a statistic: a plain
                // `fetch_add`, outside the journaled words.
                if g.load(self.member_at(m, M_RING))? != p {
                    g.store(self.member_at(m, M_RING), p)?;
                }
                g.store(self.member_at(m, M_END), s.end)?;
                g.store(self.member_at(m, M_PROGRESS), s.start)?;
                g.store(self.member_at(m, M_START), s.start)?;
                // Relaxed: a statistic, read by `Bus::groups`.
                self.word(self.at(G_CLAIMS))?
                    .fetch_add(1, Ordering::Relaxed);
            }
            g.store(self.expected_at(p), s.end_seq)?;
            // Last: whoever sees the cursor past the range also sees the
            // range in our slot (the journal's stores are Release).
            g.store(self.cursor_at(p), s.end)?;
            // One section per ring (the undo log holds a few entries).
            g.commit();
            if s.wanted > 0 {
                let claim = Claim {
                    ring: p as usize,
                    start: s.start,
                    end: s.end,
                    seq: s.seq,
                    end_seq: s.end_seq,
                    missed: s.missed,
                };
                return Ok((Some(claim), missed));
            }
        }
        Ok((None, missed))
    }

    /// Adopts the unfinished work of one dead or departed member for an
    /// idle member of the caller's process, and frees dead members that
    /// left none. `next_of(p, pos)` is the position after the record at
    /// `pos` of ring `p`: at-most-once skips the handed-out record with it
    /// (`None` when it cannot be read: the rest of the claim is skipped).
    pub fn adopt(
        &self,
        generation: u64,
        at_most_once: bool,
        mut next_of: impl FnMut(u64, u64) -> Option<u64>,
    ) -> Result<Option<Adopted>, GroupFault> {
        let mut g = self.lock(generation)?;
        self.reap_locked(&mut g)?;
        let me = self.owners.token();
        for m in 0..self.members {
            let state = g.load(self.member_at(m, M_STATE))?;
            if state == SLOT_FREE || !self.is_dead(state) {
                continue;
            }
            let ring = g.load(self.member_at(m, M_RING))?;
            let end = g.load(self.member_at(m, M_END))?;
            let progress = g.load(self.member_at(m, M_PROGRESS))?;
            let pos = progress & !31;
            if ring >= self.producers || pos >= end {
                continue; // no work (left by `reap_locked` only if damaged)
            }
            let mut from = pos;
            let mut redeliver_below = 0;
            if progress & HANDED != 0 {
                if at_most_once {
                    from = next_of(ring, pos)
                        .filter(|&n| n > pos && n <= end)
                        .unwrap_or(end);
                    let lost = g.load(self.at(G_LOST))?;
                    g.store(self.at(G_LOST), lost.saturating_add(1))?;
                    g.store(self.member_at(m, M_PROGRESS), from)?;
                } else {
                    redeliver_below = pos + 1;
                    let n = g.load(self.at(G_REDELIVERED))?;
                    g.store(self.at(G_REDELIVERED), n.saturating_add(1))?;
                }
            }
            g.store(self.member_at(m, M_STATE), slot_word(me, SLOT_ACTIVE))?;
            g.commit();
            self.uncount_sleeper(m)?;
            return Ok(Some(Adopted {
                slot: m as usize,
                ring: ring as usize,
                from,
                end,
                redeliver_below,
            }));
        }
        g.commit();
        Ok(None)
    }

    /// Frees the slots of dead members that left no unfinished work.
    /// Returns how many.
    pub fn reap(&self, generation: u64) -> Result<u32, GroupFault> {
        let mut g = self.lock(generation)?;
        let n = self.reap_locked(&mut g)?;
        g.commit();
        Ok(n)
    }

    /// Member slot `m` (the caller's own, or one it adopted) is given up:
    /// freed, its counters folded into the group's, when its claim is
    /// finished; otherwise left for adoption (state token 0: "departed").
    pub fn leave(&self, generation: u64, m: u64) -> Result<(), GroupFault> {
        let mut g = self.lock_raw()?;
        if g.load(self.at(G_GENERATION))? != generation {
            return Ok(()); // the group is gone, and the slot with it
        }
        let ring = g.load(self.member_at(m, M_RING))?;
        let end = g.load(self.member_at(m, M_END))?;
        let progress = g.load(self.member_at(m, M_PROGRESS))?;
        if ring < self.producers && progress & !31 < end {
            g.store(self.member_at(m, M_STATE), slot_word(0, SLOT_ACTIVE))?;
        } else {
            self.fold(&mut g, m)?;
            g.store(self.member_at(m, M_STATE), SLOT_FREE)?;
        }
        g.commit();
        Ok(())
    }

    /// Whether the owner of a (non-free) member state word is gone: dead,
    /// or token 0 (a member that left with unfinished work).
    fn is_dead(&self, state: u64) -> bool {
        let token = slot_token(state);
        slot_state(state) != SLOT_ACTIVE || token == 0 || self.owners.is_dead(token)
    }

    /// Clears a member slot's sleeping flag, counting in `sleepers` the
    /// sleepers its dead owner left counted (see `Shared::reap`).
    fn uncount_sleeper(&self, m: u64) -> Result<(), GroupFault> {
        // AcqRel: pairs with the owner's swap in `stop_sleeping`: exactly
        // one of the two sees 1.
        if self
            .word(self.member_at(m, M_SLEEPING))?
            .swap(0, Ordering::AcqRel)
            == 1
        {
            self.sleepers.set(self.sleepers.get() + 1);
        }
        Ok(())
    }

    /// Adds member `m`'s counters to the group's folded ones.
    fn fold(&self, g: &mut Guard<'a, M>, m: u64) -> Result<(), GroupFault> {
        for (from, to) in [(M_CLAIMED, G_FOLDED_CLAIMED), (M_DONE, G_FOLDED_DONE)] {
            let v = g.load(self.member_at(m, from))?;
            let total = g.load(self.at(to))?;
            g.store(self.at(to), total.wrapping_add(v))?;
        }
        Ok(())
    }

    /// Frees the slots of dead members without unfinished work (under the
    /// lock).
    fn reap_locked(&self, g: &mut Guard<'a, M>) -> Result<u32, GroupFault> {
        let mut freed = 0;
        for m in 0..self.members {
            let state = g.load(self.member_at(m, M_STATE))?;
            if state == SLOT_FREE || !self.is_dead(state) {
                continue;
            }
            let ring = g.load(self.member_at(m, M_RING))?;
            let end = g.load(self.member_at(m, M_END))?;
            let progress = g.load(self.member_at(m, M_PROGRESS))?;
            if ring < self.producers && progress & !31 < end {
                continue; // unfinished: for a member to adopt
            }
            self.fold(g, m)?;
            g.store(self.member_at(m, M_STATE), SLOT_FREE)?;
            self.uncount_sleeper(m)?;
            freed += 1;
        }
        Ok(freed)
    }
}
