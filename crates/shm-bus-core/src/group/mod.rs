//! Worker groups: each matching event goes to exactly one live member of
//! a named group (NATS queue groups, Kafka consumer groups, the
//! Disruptor's `WorkerPool`), across processes, surviving member crashes.
//!
//! The claim protocol and its invariants are in `protocol.rs` (loom
//! models in `tests/loom_group.rs`); this file puts it on the segment: the
//! group table, creating and removing groups, a member's receive path
//! (a [`Subscriber`] whose state has a [`GroupSeat`]), and [`GroupInfo`].
//!
//! ## The group table
//!
//! After the cursors: a header of [`GROUP_TABLE_HEADER`] bytes (a robust
//! lock serialising creation and removal, then a mask of active groups at
//! byte 256), then `max_groups` group slots. A producer computing its
//! limit reads the mask after `ring::limit`'s SeqCst fence and counts every
//! active group's [`floor`](protocol::GroupCore::floor): a group is created
//! with the subscribers' join handshake (cursors at the tails, ACTIVE and
//! the mask bit, SeqCst fence, tails read again).

pub(crate) mod protocol;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm_bus_alloc::lock::{Guard, RobustLock};
use shm_bus_alloc::{Mem, OsOwners, ProcessId, Segment};
use shm_bus_topic::Topic;

use crate::bus::Bus;
use crate::clock;
use crate::config::{GROUP_TABLE_HEADER, Policy};
use crate::delivery::{AnyPolicy, Delivery};
use crate::error::{BusError, RecvError};
use crate::layout::{NAME_BYTES, SLOT_ACTIVE, SLOT_FREE, slot_state, slot_token, slot_word};
use crate::receive::{CLAIMED, Found, REDELIVERED, State, wake_producer};
use crate::ring::{self, Peek};
use crate::shared::Shared;
use crate::subscriber::Subscriber;
use protocol::{
    G_CLAIMS, G_CREATED_NS, G_FOLDED_CLAIMED, G_FOLDED_DONE, G_GENERATION, G_LAGGED, G_LOST,
    G_MODE, G_NAME, G_PATTERNS, G_PATTERNS_LEN, G_REDELIVERED, G_REMOVING, G_STATE, GroupCore,
    GroupFault, HANDED, M_CLAIMED, M_DONE, M_END, M_LAST_ACTIVE, M_NAME, M_PID, M_PROGRESS, M_RING,
    M_SLEEPING, MODE_AT_LEAST_ONCE, MODE_AT_MOST_ONCE, NO_RING, PATTERN_BYTES, Scan,
};

/// Offset (in the table header) of the mask of active groups.
const MASK_AT: u64 = 256;
/// Most records a claim scan looks at under the lock.
const SCAN_RECORDS: usize = 1024;
/// How often an idle member looks for dead members' work.
const ADOPT_EVERY: Duration = Duration::from_millis(5);
/// A word nobody else uses: where a member's activity words point if its
/// slot could not be resolved (never, after validation at open).
static NOWHERE: AtomicU64 = AtomicU64::new(0);
/// The processes of this host.
static OS: OsOwners = OsOwners;

/// One word of the segment, resolved (and bounds-checked) once, for a
/// member's per-event stores: its progress, claimed and done counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegWord(std::ptr::NonNull<AtomicU64>);

// SAFETY: a pointer to an atomic word in the shared mapping, which any
// thread may use (the word is an atomic); see `SegWord::get` for why it
// stays valid.
unsafe impl Send for SegWord {}
// SAFETY: as above.
unsafe impl Sync for SegWord {}

impl SegWord {
    /// Resolves word `off` of `core`'s segment (`NOWHERE` if out of range,
    /// which validation at open rules out).
    fn at(core: &GroupCore<'_, Segment, OsOwners>, off: u64) -> SegWord {
        SegWord(std::ptr::NonNull::from(core.word(off).unwrap_or(&NOWHERE)))
    }

    #[inline]
    fn get(&self) -> &AtomicU64 {
        // SAFETY: it points into the segment mapping (or at `NOWHERE`),
        // resolved with a bounds check by `SegWord::at`; a `SegWord` is
        // kept only in a member's state, inside the `Subscriber` that also
        // holds the `Bus` keeping the mapping alive, and never handed out.
        unsafe { self.0.as_ref() }
    }
}

/// What happens to an event whose member died before finishing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GroupMode {
    /// It is handed to another member, flagged
    /// [`redelivered`](crate::Sample::redelivered), and counted (the
    /// default; Kafka's and NATS's default too).
    #[default]
    AtLeastOnce,
    /// It is dropped and counted as lost: no event is ever handled twice.
    AtMostOnce,
}

impl GroupMode {
    /// `"at-least-once"` or `"at-most-once"`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupMode::AtLeastOnce => "at-least-once",
            GroupMode::AtMostOnce => "at-most-once",
        }
    }

    fn to_raw(self) -> u64 {
        match self {
            GroupMode::AtLeastOnce => MODE_AT_LEAST_ONCE,
            GroupMode::AtMostOnce => MODE_AT_MOST_ONCE,
        }
    }

    fn from_raw(raw: u64) -> Option<GroupMode> {
        match raw {
            MODE_AT_LEAST_ONCE => Some(GroupMode::AtLeastOnce),
            MODE_AT_MOST_ONCE => Some(GroupMode::AtMostOnce),
            _ => None,
        }
    }
}

impl std::fmt::Display for GroupMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for GroupMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "at-least-once" => Ok(GroupMode::AtLeastOnce),
            "at-most-once" => Ok(GroupMode::AtMostOnce),
            other => Err(format!(
                "unknown group mode `{other}`: use at-least-once or at-most-once"
            )),
        }
    }
}

/// How a member joins ([`Bus::group_member_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupOptions {
    /// The group's mode, fixed by whoever creates it; a member asking for
    /// another mode of an existing group gets
    /// [`BusError::GroupModeMismatch`].
    pub mode: GroupMode,
    /// Most events one claim takes (1..). Larger batches cost fewer
    /// claims (one lock each); smaller ones share work more finely among
    /// members. Default 8.
    pub claim_batch: u32,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            mode: GroupMode::AtLeastOnce,
            claim_batch: 8,
        }
    }
}

/// One member of a group, as [`Bus::groups`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberInfo {
    /// The member slot.
    pub slot: u32,
    /// The pid of the process that joined with this slot.
    pub pid: u32,
    /// Its name.
    pub name: String,
    /// Whether the slot's holder is alive: its own process, or a member
    /// that adopted the slot's unfinished work after it died.
    pub alive: bool,
    /// Whether a member of another process holds the slot now (it adopted
    /// the work this member left).
    pub adopted: bool,
    /// Whether its member left (its receiver was dropped) with unfinished
    /// work, rather than dying; that work waits for a member to adopt it.
    pub departed: bool,
    /// Events handed out through this slot.
    pub claimed: u64,
    /// Events finished through this slot.
    pub done: u64,
    /// Whether it holds a claim with unfinished events.
    pub busy: bool,
}

/// A worker group, as [`Bus::groups`] reads it (word by word, not at one
/// instant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group's slot in the table.
    pub slot: u32,
    /// Its name.
    pub name: String,
    /// What happens to a dead member's events.
    pub mode: GroupMode,
    /// Its subscription set.
    pub patterns: Vec<String>,
    /// Its member slots in use (live, dead, or adopted).
    pub members: Vec<GroupMemberInfo>,
    /// Events handed out again after their member died.
    pub redelivered: u64,
    /// Events dropped because their member died holding them.
    pub lost: u64,
    /// Events overwritten before the group got to them (Overwrite policy).
    pub lagged: u64,
    /// Events handed out, by present and past members.
    pub claimed: u64,
    /// Events finished, by present and past members.
    pub done: u64,
    /// Claims made.
    pub claims: u64,
    /// Records (of any topic) in the rings that the group has not finished:
    /// from its oldest unfinished position to each producer's tail.
    pub backlog: u64,
    /// Whether it is being removed (it was removed while members remained).
    pub removing: bool,
    /// When it was created, ns since the Unix epoch.
    pub created_ns: u64,
}

/// What [`Bus::remove_group`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRemoval {
    /// No group of that name.
    NotFound,
    /// Removed: it holds producers back no more, and its name is free.
    Removed,
    /// Live members remain (their pids): removal was not forced, nothing
    /// changed.
    InUse(Vec<u32>),
    /// Forced while live members remained (their pids): they get
    /// [`RecvError::GroupRemoved`] at their next receive, and the slot is
    /// freed once they are gone; the group holds producers back no more.
    Evicted(Vec<u32>),
}

/// A member's place in its group: the `State` of a [`Subscriber`] made by
/// [`Bus::group_member`].
pub(crate) struct GroupSeat {
    /// The group's slot in the table.
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) generation: u64,
    /// This member's slot.
    pub(crate) member: u64,
    pub(crate) at_most_once: bool,
    pub(crate) batch: u64,
    /// The claim being worked through (ours, or one adopted).
    pub(crate) work: Option<Work>,
    /// The ring the next claim scan starts at (fairness).
    pub(crate) next_ring: u64,
    /// Records handed out / finished through our own slot.
    pub(crate) claimed: u64,
    pub(crate) done: u64,
    /// Redelivered samples handed out by this member.
    pub(crate) redelivered: u64,
    /// When an idle member next looks for dead members' work.
    pub(crate) next_adopt: Instant,
    pub(crate) idle_polls: u32,
    /// The group was removed: every receive answers `GroupRemoved`.
    pub(crate) removed: bool,
    /// Our slot's `M_CLAIMED` and `M_DONE` words.
    pub(crate) claimed_word: SegWord,
    pub(crate) done_word: SegWord,
    /// Offsets of our slot's `M_LAST_ACTIVE` and `M_SLEEPING` words.
    pub(crate) last_active_at: u64,
    pub(crate) sleeping_at: u64,
}

/// A claim being worked through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Work {
    /// The member slot holding it (ours, or an adopted one).
    slot: u64,
    /// That slot's `M_PROGRESS` word.
    progress: SegWord,
    ring: usize,
    /// The next record to look at.
    pos: u64,
    end: u64,
    /// Sequence number expected at `pos` (Overwrite counts lag from it).
    expected: u64,
    end_seq: u64,
    /// Positions below this are redeliveries.
    redeliver_below: u64,
}

fn group_err(group: &str, fault: GroupFault) -> BusError {
    match fault {
        GroupFault::Corrupt(what) => BusError::Corrupt { what },
        GroupFault::Removed => BusError::GroupRemoved {
            group: group.to_owned(),
        },
        GroupFault::Full => BusError::GroupFull {
            group: group.to_owned(),
        },
    }
}

fn recv_err(fault: GroupFault) -> RecvError {
    match fault {
        GroupFault::Corrupt(what) => RecvError::Corrupt { what },
        GroupFault::Removed | GroupFault::Full => RecvError::GroupRemoved,
    }
}

/// Whether the group of `generation` was removed (or is being removed):
/// read without the lock, by an idle member (a claim finds out under it).
fn group_gone(core: &GroupCore<'_, Segment, OsOwners>, generation: u64) -> bool {
    // Acquire: pairs with the journaled (Release) stores of a removal.
    let load = |off: u64| {
        core.word(core.at(off))
            .map_or(0, |w| w.load(Ordering::Acquire))
    };
    slot_state(load(G_STATE)) != SLOT_ACTIVE
        || load(G_GENERATION) != generation
        || load(G_REMOVING) != 0
}

/// Checks a worker-group name as [`Bus::group_member`] does: 1 to 32
/// bytes of letters, digits, `_`, `-`, `.` and `:`. For tools that refuse
/// a bad name before opening a bus.
///
/// # Errors
/// [`BusError::InvalidGroupName`].
pub fn check_group_name(group: &str) -> Result<(), BusError> {
    let ok = !group.is_empty()
        && group.len() <= NAME_BYTES
        && group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(BusError::InvalidGroupName {
            group: group.to_owned(),
        })
    }
}

fn name_words(name: &str) -> [u64; 4] {
    let mut bytes = [0u8; NAME_BYTES];
    let n = name.len().min(NAME_BYTES);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    std::array::from_fn(|i| {
        u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap_or_default())
    })
}

/// The canonical text of a subscription set: each pattern parsed and
/// printed, sorted, without repeats, one per line.
fn canonical_patterns(patterns: &[&str]) -> Result<Vec<String>, BusError> {
    let mut out = Vec::with_capacity(patterns.len());
    for p in patterns {
        out.push(Topic::parse(p)?.to_string());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

impl Shared {
    /// Group slot `g` of the table.
    pub(crate) fn group_core(&self, g: usize) -> GroupCore<'_, Segment, OsOwners> {
        GroupCore {
            mem: &self.seg,
            base: self.groups + GROUP_TABLE_HEADER + g as u64 * self.config.group_bytes(),
            producers: self.config.max_producers as u64,
            stride: self.config.cursor_stride(),
            members: self.config.max_group_members as u64,
            owners: &OS,
            sleepers: std::cell::Cell::new(0),
        }
    }

    /// The mask of active groups (bit `g` for group slot `g`).
    fn group_mask(&self) -> u64 {
        if self.groups == 0 {
            return 0;
        }
        let bits = match self.config.max_groups {
            n @ 0..64 => (1u64 << n) - 1,
            _ => u64::MAX,
        };
        // Acquire: pairs with the Release store (journaled) that sets a
        // bit when a group is created: its cursors are visible.
        self.seg
            .word(self.groups + MASK_AT)
            .map_or(0, |w| w.load(Ordering::Acquire))
            & bits
    }

    /// Block policy: the lowest position of ring `p` an active group still
    /// needs, if any group is active. Out of line: `limit` is on the
    /// publish path's slow side, and groups are rarer still.
    #[inline(never)]
    pub(crate) fn group_floor(&self, p: usize) -> Option<u64> {
        let mut mask = self.group_mask();
        let mut min = None::<u64>;
        while mask != 0 {
            let g = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            match self.group_core(g).floor(p as u64) {
                Ok(f) => min = Some(min.map_or(f, |m| m.min(f))),
                // A damaged group must not let us overwrite what a member
                // holds: gate at the oldest position a reader can hold.
                Err(_) => min = Some(0),
            }
        }
        min
    }

    /// Takes sleepers un-counted from dead members' slots off the bus's
    /// sleeper count.
    fn drop_sleepers(&self, core: &GroupCore<'_, Segment, OsOwners>) {
        for _ in 0..core.sleepers.take() {
            // SeqCst: as every update of the sleeper count.
            self.header().data_sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Frees the member slots of dead members without unfinished work, in
    /// every group. Returns how many.
    pub(crate) fn reap_groups(&self) -> u32 {
        let mut mask = self.group_mask();
        let mut freed = 0;
        while mask != 0 {
            let g = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let core = self.group_core(g);
            let Ok(generation) = core.word(core.at(G_GENERATION)) else {
                continue;
            };
            // Acquire: pairs with the journaled store at creation.
            let generation = generation.load(Ordering::Acquire);
            if let Ok(n) = core.reap(generation) {
                freed += n;
            }
            self.drop_sleepers(&core);
        }
        freed + self.free_evicted_groups()
    }

    /// The table lock (creation and removal of groups).
    fn table_lock(&self) -> Result<Guard<'_, Segment>, BusError> {
        let end = self.groups
            + GROUP_TABLE_HEADER
            + self.config.max_groups as u64 * self.config.group_bytes();
        let (guard, _) = RobustLock {
            mem: &self.seg,
            base: self.groups,
            owners: &OS,
            targets: [
                self.groups + MASK_AT..self.groups + MASK_AT + 8,
                self.groups + GROUP_TABLE_HEADER..end,
                0..0,
            ],
        }
        .lock()?;
        Ok(guard)
    }

    /// Reads a group's name.
    fn group_name(&self, core: &GroupCore<'_, Segment, OsOwners>) -> String {
        let mut bytes = Vec::with_capacity(NAME_BYTES);
        for i in 0..4 {
            // Relaxed: read after an Acquire load of the state.
            let w = core
                .word(core.at(G_NAME + 8 * i))
                .map_or(0, |w| w.load(Ordering::Relaxed));
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    }

    fn group_patterns(&self, core: &GroupCore<'_, Segment, OsOwners>) -> Vec<String> {
        let len = core
            .word(core.at(G_PATTERNS_LEN))
            .map_or(0, |w| w.load(Ordering::Relaxed))
            .min(PATTERN_BYTES);
        let mut bytes = Vec::with_capacity(len as usize);
        for i in 0..len.div_ceil(8) {
            let w = core
                .word(core.at(G_PATTERNS + 8 * i))
                .map_or(0, |w| w.load(Ordering::Relaxed));
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        bytes.truncate(len as usize);
        String::from_utf8_lossy(&bytes)
            .split('\n')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The active (not removing) group named `name`: its slot.
    fn find_group(&self, name: &str) -> Option<usize> {
        (0..self.config.max_groups as usize).find(|&g| {
            let core = self.group_core(g);
            // Acquire: pairs with the journaled (Release) ACTIVE store.
            let active = core
                .word(core.at(G_STATE))
                .is_ok_and(|w| slot_state(w.load(Ordering::Acquire)) == SLOT_ACTIVE);
            let removing = core
                .word(core.at(G_REMOVING))
                .is_ok_and(|w| w.load(Ordering::Acquire) != 0);
            active && !removing && self.group_name(&core) == name
        })
    }

    /// Frees the slots of evicted groups whose members are all gone.
    fn free_evicted_groups(&self) -> u32 {
        let evicted: Vec<usize> = (0..self.config.max_groups as usize)
            .filter(|&g| {
                let core = self.group_core(g);
                core.word(core.at(G_REMOVING))
                    .is_ok_and(|w| w.load(Ordering::Acquire) != 0)
            })
            .collect();
        if evicted.is_empty() {
            return 0;
        }
        let Ok(mut t) = self.table_lock() else {
            return 0;
        };
        let mut freed = 0;
        for g in evicted {
            let core = self.group_core(g);
            let Ok(mut gl) = core.lock_raw() else {
                continue;
            };
            let occupied = (0..core.members).any(|m| {
                gl.load(core.member_at(m, protocol::M_STATE))
                    .is_ok_and(|s| s != SLOT_FREE && !ProcessId::token_is_dead(slot_token(s)))
            });
            if occupied || gl.load(core.at(G_REMOVING)).is_ok_and(|r| r == 0) {
                continue;
            }
            for m in 0..core.members {
                let _ = gl.store(core.member_at(m, protocol::M_STATE), SLOT_FREE);
            }
            gl.commit();
            drop(gl);
            if self.free_group(&mut t, g).is_ok() {
                freed += 1;
            }
        }
        t.commit();
        freed
    }

    /// Frees group slot `g` (under the table lock): off the mask, state
    /// free.
    fn free_group(&self, t: &mut Guard<'_, Segment>, g: usize) -> Result<(), BusError> {
        let core = self.group_core(g);
        let mask = t.load(self.groups + MASK_AT)?;
        t.store(self.groups + MASK_AT, mask & !(1 << g))?;
        t.store(core.at(G_STATE), SLOT_FREE)?;
        t.store(core.at(G_REMOVING), 0)?;
        Ok(())
    }

    /// Creates group `name` (under the table lock) in a free slot, with the
    /// subscribers' join handshake for its cursors. Returns the slot.
    fn create_group(
        &self,
        t: &mut Guard<'_, Segment>,
        name: &str,
        patterns: &[String],
        mode: GroupMode,
    ) -> Result<usize, BusError> {
        let max = self.config.max_groups;
        let slot = (0..max as usize).find(|&g| {
            let core = self.group_core(g);
            t.load(core.at(G_STATE)).is_ok_and(|s| {
                s == SLOT_FREE
                    || (slot_state(s) != SLOT_ACTIVE && ProcessId::token_is_dead(slot_token(s)))
            })
        });
        let g = slot.ok_or(BusError::TooManyGroups { max })?;
        let text = patterns.join("\n");
        if text.len() as u64 > PATTERN_BYTES {
            return Err(BusError::GroupPatternsTooLong {
                len: text.len(),
                max: PATTERN_BYTES as usize,
            });
        }
        let core = self.group_core(g);
        // Members of an earlier group in this slot may still be in a
        // critical section: wait for it, so that what we write here is not
        // overwritten (they find the new generation at their next lock).
        let mut gl = core.lock_raw().map_err(|e| group_err(name, e))?;
        let generation = t.load(core.at(G_GENERATION))?.wrapping_add(1);
        let me = ProcessId::current().token();
        t.store(
            core.at(G_STATE),
            slot_word(me, crate::layout::SLOT_CLAIMING),
        )?;
        t.store(core.at(G_GENERATION), generation)?;
        let plain = |off: u64, v: u64| -> Result<(), BusError> {
            // Relaxed: published by the Release store of ACTIVE below; the
            // slot is not active, so nobody reads these before.
            core.word(off)
                .map_err(|e| group_err(name, e))?
                .store(v, Ordering::Relaxed);
            Ok(())
        };
        for (i, w) in name_words(name).iter().enumerate() {
            plain(core.at(G_NAME + 8 * i as u64), *w)?;
        }
        let mut bytes = text.into_bytes();
        let len = bytes.len() as u64;
        bytes.resize(len.div_ceil(8) as usize * 8, 0);
        for (i, chunk) in bytes.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            plain(core.at(G_PATTERNS + 8 * i as u64), w)?;
        }
        plain(core.at(G_PATTERNS_LEN), len)?;
        plain(core.at(G_MODE), mode.to_raw())?;
        plain(core.at(G_CREATED_NS), clock::wall_ns())?;
        plain(core.at(G_REMOVING), 0)?;
        for off in [
            protocol::G_MEMBER_LAGGED,
            G_REDELIVERED,
            G_LOST,
            G_LAGGED,
            G_FOLDED_CLAIMED,
            G_FOLDED_DONE,
            G_CLAIMS,
        ] {
            plain(core.at(off), 0)?;
        }
        for m in 0..core.members {
            plain(core.member_at(m, protocol::M_STATE), SLOT_FREE)?;
        }
        // The join handshake (see `ring::join_before`), for every ring.
        let producers = self.config.max_producers as usize;
        let mut before = Vec::with_capacity(producers);
        for p in 0..producers {
            let cursor = core
                .word(core.cursor_at(p as u64))
                .map_err(|e| group_err(name, e))?;
            let b = ring::join_before(&self.ring_ctl(self.producer(p)), cursor);
            plain(core.expected_at(p as u64), b.1)?;
            before.push(b);
        }
        let mask = t.load(self.groups + MASK_AT)?;
        t.store(self.groups + MASK_AT, mask | (1 << g))?;
        t.store(core.at(G_STATE), slot_word(me, SLOT_ACTIVE))?;
        ring::join_fence();
        let overwrite = self.config.policy == Policy::Overwrite;
        for (p, b) in before.into_iter().enumerate() {
            // SAFETY: used here only, while `self` is borrowed.
            let r = unsafe { self.producer_ref(p) };
            let head = overwrite.then_some(&r.slot().head);
            let cursor = core
                .word(core.cursor_at(p as u64))
                .map_err(|e| group_err(name, e))?;
            let (_, seq) = ring::join_after(&r, &r.ctl(), cursor, b, head);
            // Relaxed: read under the group lock (which we hold) by claims.
            plain(core.expected_at(p as u64), seq)?;
        }
        gl.commit();
        drop(gl);
        Ok(g)
    }
}

impl Bus {
    /// Joins worker group `group` as member `name` (up to 32 bytes, shown
    /// in `inspect`), creating the group with `patterns` if it does not
    /// exist. Each event matching the group's patterns goes to exactly one
    /// live member; see [`group_member_with`](Self::group_member_with).
    ///
    /// ```no_run
    /// use shm_bus_core::Bus;
    ///
    /// let bus = Bus::open("orders")?;
    /// let mut worker = bus.group_member("fills", "worker-1", &["orders.{venue}.fill"])?;
    /// loop {
    ///     let sample = worker.recv()?;
    ///     // ... handle it; dropping the sample finishes it.
    ///     # break;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`group_member_with`](Self::group_member_with).
    pub fn group_member(
        &self,
        group: &str,
        name: &str,
        patterns: &[&str],
    ) -> Result<Subscriber, BusError> {
        self.group_member_with::<AnyPolicy>(group, name, patterns, GroupOptions::default())
    }

    /// Joins (or creates) worker group `group`; the returned receiver has
    /// the subscriber's receive API ([`recv`](Subscriber::recv),
    /// [`try_recv_many`](Subscriber::try_recv_many), …).
    ///
    /// - The group is named, lives in the segment, and has one
    ///   subscription set. `patterns` must be the group's (in any order),
    ///   or empty to take the group's. A group is created by its first
    ///   member, with `patterns` and `options.mode`, and starts with what
    ///   producers commit from then on.
    /// - Members claim up to `options.claim_batch` events at a time as they
    ///   become free; per member, events arrive in producer order; no order
    ///   holds across members.
    /// - An event is done when its sample is dropped. Events a member
    ///   claimed and had not finished when it died (or was dropped) are
    ///   finished by another member: the one it was handling is handed out
    ///   again flagged [`Sample::redelivered`](crate::Sample::redelivered)
    ///   (at-least-once) or dropped and counted lost (at-most-once).
    /// - Under Block policy the group holds producers back at its oldest
    ///   unfinished event, even with no live member, until it is removed
    ///   ([`remove_group`](Self::remove_group)). Under Overwrite it lags
    ///   like a subscriber ([`RecvError::Lagged`]).
    ///
    /// # Errors
    /// [`BusError::InvalidGroupName`], [`BusError::InvalidTopic`],
    /// [`BusError::GroupPatternMismatch`], [`BusError::GroupModeMismatch`],
    /// [`BusError::GroupPatternsTooLong`], [`BusError::TooManyGroups`],
    /// [`BusError::GroupFull`], [`BusError::BorrowNeedsBlock`].
    pub fn group_member_with<M: Delivery>(
        &self,
        group: &str,
        name: &str,
        patterns: &[&str],
        options: GroupOptions,
    ) -> Result<Subscriber<M>, BusError> {
        check_group_name(group)?;
        let sh: &Shared = &self.shared;
        let copy = M::copies(sh.config.policy)?;
        if sh.config.max_groups == 0 {
            return Err(BusError::TooManyGroups { max: 0 });
        }
        let wanted = canonical_patterns(patterns)?;
        let (g, generation, mode, have) = {
            let mut t = sh.table_lock()?;
            let g = match sh.find_group(group) {
                Some(g) => g,
                None => {
                    if wanted.is_empty() {
                        return Err(BusError::GroupPatternMismatch {
                            group: group.to_owned(),
                            has: Vec::new(),
                        });
                    }
                    sh.create_group(&mut t, group, &wanted, options.mode)?
                }
            };
            t.commit();
            let core = sh.group_core(g);
            let generation = t.load(core.at(G_GENERATION))?;
            let mode = GroupMode::from_raw(t.load(core.at(G_MODE))?)
                .ok_or(BusError::Corrupt { what: "group mode" })?;
            (g, generation, mode, sh.group_patterns(&core))
        };
        if !wanted.is_empty() && wanted != have {
            return Err(BusError::GroupPatternMismatch {
                group: group.to_owned(),
                has: have,
            });
        }
        if mode != options.mode {
            return Err(BusError::GroupModeMismatch {
                group: group.to_owned(),
                has: mode,
            });
        }
        let core = sh.group_core(g);
        let me = ProcessId::current();
        let member = core
            .join(
                generation,
                me.pid as u64,
                name_words(name),
                clock::wall_ns(),
            )
            .map_err(|e| group_err(group, e))?;
        sh.drop_sleepers(&core);
        let seat = GroupSeat {
            index: g,
            name: group.to_owned(),
            generation,
            member,
            at_most_once: mode == GroupMode::AtMostOnce,
            batch: u64::from(options.claim_batch.max(1)),
            work: None,
            next_ring: 0,
            claimed: 0,
            done: 0,
            redelivered: 0,
            next_adopt: Instant::now(),
            idle_polls: 0,
            removed: false,
            claimed_word: SegWord::at(&core, core.member_at(member, M_CLAIMED)),
            done_word: SegWord::at(&core, core.member_at(member, M_DONE)),
            last_active_at: core.member_at(member, M_LAST_ACTIVE),
            sleeping_at: core.member_at(member, M_SLEEPING),
        };
        let mut st = State::for_group(sh, copy, Box::new(seat));
        for p in &have {
            let topic = Topic::parse(p)?;
            st.index.insert(&topic, st.next_pattern);
            st.next_pattern += 1;
            st.patterns.push(topic);
        }
        Ok(Subscriber::from_state(self.clone(), st))
    }

    /// Removes worker group `group`. With no live member it is removed at
    /// once: its events still waiting are dropped and producers are no
    /// longer held back by it. With live members it is left alone
    /// ([`GroupRemoval::InUse`]) unless `force`, which evicts them
    /// ([`GroupRemoval::Evicted`]).
    ///
    /// # Errors
    /// [`BusError::InvalidGroupName`]; [`BusError::Corrupt`] or
    /// [`BusError::Segment`] if the group table is damaged.
    pub fn remove_group(&self, group: &str, force: bool) -> Result<GroupRemoval, BusError> {
        check_group_name(group)?;
        let sh: &Shared = &self.shared;
        if sh.config.max_groups == 0 {
            return Ok(GroupRemoval::NotFound);
        }
        let mut t = sh.table_lock()?;
        let Some(g) = sh.find_group(group) else {
            return Ok(GroupRemoval::NotFound);
        };
        let core = sh.group_core(g);
        let mut gl = core.lock_raw().map_err(|e| group_err(group, e))?;
        let mut live = Vec::new();
        for m in 0..core.members {
            let state = gl.load(core.member_at(m, protocol::M_STATE))?;
            let token = slot_token(state);
            if state != SLOT_FREE && token != 0 && !ProcessId::token_is_dead(token) {
                live.push((token & 0xffff_ffff) as u32);
            }
        }
        live.sort_unstable();
        live.dedup();
        if live.is_empty() {
            for m in 0..core.members {
                gl.store(core.member_at(m, protocol::M_STATE), SLOT_FREE)?;
                gl.commit();
            }
            drop(gl);
            sh.free_group(&mut t, g)?;
            t.commit();
            drop(t);
        } else if force {
            gl.store(core.at(G_REMOVING), 1)?;
            gl.commit();
            drop(gl);
            t.commit();
            drop(t);
        } else {
            return Ok(GroupRemoval::InUse(live));
        }
        // Producers held back by the group may go on.
        for p in 0..sh.config.max_producers as usize {
            wake_producer(sh, p);
        }
        Ok(if live.is_empty() {
            GroupRemoval::Removed
        } else {
            GroupRemoval::Evicted(live)
        })
    }

    /// Every worker group of the bus, as it is now.
    pub fn groups(&self) -> Vec<GroupInfo> {
        let sh: &Shared = &self.shared;
        (0..sh.config.max_groups as usize)
            .filter_map(|g| sh.group_info(g))
            .collect()
    }
}

impl Shared {
    fn group_info(&self, g: usize) -> Option<GroupInfo> {
        let core = self.group_core(g);
        // Acquire (here and below): pairs with the journaled Release stores.
        let load = |off: u64| core.word(off).map_or(0, |w| w.load(Ordering::Acquire));
        if slot_state(load(core.at(G_STATE))) != SLOT_ACTIVE {
            return None;
        }
        let mut members = Vec::new();
        let mut claimed = load(core.at(G_FOLDED_CLAIMED));
        let mut done = load(core.at(G_FOLDED_DONE));
        for m in 0..core.members {
            let state = load(core.member_at(m, protocol::M_STATE));
            if state == SLOT_FREE {
                continue;
            }
            let token = slot_token(state);
            let pid = load(core.member_at(m, M_PID)) as u32;
            let mut name = Vec::with_capacity(NAME_BYTES);
            for i in 0..4 {
                name.extend_from_slice(&load(core.member_at(m, M_NAME + 8 * i)).to_le_bytes());
            }
            let end_name = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            let ring = load(core.member_at(m, M_RING));
            let progress = load(core.member_at(m, M_PROGRESS)) & !31;
            let end = load(core.member_at(m, M_END));
            let c = load(core.member_at(m, M_CLAIMED));
            let d = load(core.member_at(m, M_DONE));
            claimed = claimed.wrapping_add(c);
            done = done.wrapping_add(d);
            members.push(GroupMemberInfo {
                slot: m as u32,
                pid,
                name: String::from_utf8_lossy(&name[..end_name]).into_owned(),
                alive: token != 0
                    && slot_state(state) == SLOT_ACTIVE
                    && !ProcessId::token_is_dead(token),
                adopted: token != 0 && (token & 0xffff_ffff) as u32 != pid,
                departed: token == 0,
                claimed: c,
                done: d,
                busy: ring != NO_RING && progress < end,
            });
        }
        let mut backlog = 0u64;
        for p in 0..self.config.max_producers as usize {
            let Ok(floor) = core.floor(p as u64) else {
                continue;
            };
            // SAFETY: used here only, while `self` is borrowed.
            let r = unsafe { self.producer_ref(p) };
            let (tail, seq) = ring::snapshot(&r.ctl());
            let head = (self.config.policy == Policy::Overwrite).then_some(&r.slot().head);
            let next_seq = ring::walk(&r, tail, seq, head).seq;
            let mut pos = floor;
            for _ in 0..2 {
                match ring::peek(&r, pos, head) {
                    Peek::Record(v) => {
                        backlog = backlog.saturating_add(next_seq.saturating_sub(v.seq));
                        break;
                    }
                    Peek::Padding { next } => pos = next,
                    _ => break,
                }
            }
        }
        Some(GroupInfo {
            slot: g as u32,
            name: self.group_name(&core),
            mode: GroupMode::from_raw(load(core.at(G_MODE))).unwrap_or_default(),
            patterns: self.group_patterns(&core),
            members,
            redelivered: load(core.at(G_REDELIVERED)),
            lost: load(core.at(G_LOST)),
            lagged: load(core.at(G_LAGGED)).wrapping_add(load(core.at(protocol::G_MEMBER_LAGGED))),
            claimed,
            done,
            claims: load(core.at(G_CLAIMS)),
            backlog,
            removing: load(core.at(G_REMOVING)) != 0,
            created_ns: load(core.at(G_CREATED_NS)),
        })
    }
}

impl State {
    /// A member's activity words: (last active, sleeping).
    pub(crate) fn member_words<'s>(
        sh: &'s Shared,
        seat: &GroupSeat,
    ) -> (&'s AtomicU64, &'s AtomicU64) {
        (
            sh.seg.word(seat.last_active_at).unwrap_or(&NOWHERE),
            sh.seg.word(seat.sleeping_at).unwrap_or(&NOWHERE),
        )
    }

    /// `poll` for a group member: the next wanted record of its claim,
    /// claiming (or adopting) more when it has none.
    #[inline(never)]
    pub(crate) fn group_poll(&mut self, sh: &Shared) -> Result<Found, RecvError> {
        let Some(mut seat) = self.group.take() else {
            return Err(RecvError::Empty);
        };
        let r = self.group_poll_with(sh, &mut seat);
        self.group = Some(seat);
        r
    }

    fn group_poll_with(&mut self, sh: &Shared, seat: &mut GroupSeat) -> Result<Found, RecvError> {
        if seat.removed {
            return Err(RecvError::GroupRemoved);
        }
        loop {
            let Some(w) = seat.work.as_mut() else {
                match self.find_work(sh, seat) {
                    Ok(true) => continue,
                    Ok(false) => return Err(RecvError::Empty),
                    Err(RecvError::GroupRemoved) => {
                        seat.removed = true;
                        return Err(RecvError::GroupRemoved);
                    }
                    Err(e) => return Err(e),
                }
            };
            if w.pos >= w.end {
                self.finish_work(sh, seat);
                continue;
            }
            let ring = self.lanes[w.ring & 63].ring;
            let head = self.overwrite.then_some(&ring.slot().head);
            match ring::peek(&ring, w.pos, head) {
                Peek::Record(v) => {
                    if self.overwrite && v.seq > w.expected {
                        let missed = v.seq - w.expected;
                        w.expected = v.seq;
                        return Err(self.member_lagged(sh, seat, missed));
                    }
                    if !self.wants(sh, v.topic) {
                        w.pos = v.next;
                        w.expected = v.seq.wrapping_add(1);
                        continue;
                    }
                    let (p, pos, progress) = (w.ring, w.pos, w.progress);
                    let redelivered = pos < w.redeliver_below;
                    if self.copy && !self.copy_payload(p, &v) {
                        // Rewritten while copied (Overwrite): the rest of
                        // the claim is gone with it.
                        return Err(self.lose_rest(sh, seat));
                    }
                    // Release: pairs with the Acquire loads of the floor and
                    // of an adopter (`GroupCore::set_progress`'s contract).
                    progress.get().store(pos | HANDED, Ordering::Release);
                    seat.claimed += 1;
                    // Relaxed: statistics, written by this member only.
                    seat.claimed_word
                        .get()
                        .store(seat.claimed, Ordering::Relaxed);
                    if redelivered {
                        seat.redelivered += 1;
                    }
                    return Ok(Found {
                        producer: p as u32,
                        view: v,
                        origin: if redelivered { REDELIVERED } else { CLAIMED },
                    });
                }
                Peek::Padding { next } => w.pos = next,
                Peek::Lagged | Peek::Empty if self.overwrite => {
                    return Err(self.lose_rest(sh, seat));
                }
                Peek::Empty => {
                    // A claimed record is committed; an empty header in a
                    // claim under Block is damage.
                    let p = w.ring;
                    w.pos = w.end;
                    return Err(self.corrupt(p, "group claim over uncommitted records"));
                }
                Peek::Lagged => {
                    let p = w.ring;
                    w.pos = w.end;
                    return Err(self.corrupt(p, "overwrite mark on a Block ring"));
                }
                Peek::Corrupt(what) => {
                    let p = w.ring;
                    w.pos = w.end;
                    return Err(self.corrupt(p, what));
                }
            }
        }
    }

    /// The record `group_poll` handed out was rewritten before `poll` read
    /// its header again (Overwrite: the producer lapped us in between; the
    /// rest of the claim is gone with it). Under Block it cannot happen
    /// (the group's floor holds the record): damage.
    #[cold]
    #[inline(never)]
    pub(crate) fn group_ready_gone(&mut self, sh: &Shared) -> RecvError {
        let Some(mut seat) = self.group.take() else {
            return RecvError::Empty;
        };
        let e = if self.overwrite {
            self.lose_rest(sh, &mut seat)
        } else {
            let p = seat.work.map_or(0, |w| w.ring);
            if let Some(w) = seat.work.as_mut() {
                w.pos = w.end;
            }
            self.corrupt(p, "a group member's record changed while it held it")
        };
        self.group = Some(seat);
        e
    }

    /// Overwrite: the rest of the current claim was overwritten; it is
    /// reported as lagged and given up.
    fn lose_rest(&mut self, sh: &Shared, seat: &mut GroupSeat) -> RecvError {
        let Some(w) = seat.work.as_mut() else {
            return RecvError::Empty;
        };
        let missed = w.end_seq.saturating_sub(w.expected).max(1);
        w.expected = w.end_seq;
        w.pos = w.end;
        self.member_lagged(sh, seat, missed)
    }

    /// Counts `missed` events of our claim as lagged (the member's and the
    /// group's count) and reports them.
    fn member_lagged(&mut self, sh: &Shared, seat: &GroupSeat, missed: u64) -> RecvError {
        self.lagged = self.lagged.saturating_add(missed);
        let core = sh.group_core(seat.index);
        if let Ok(w) = core.word(core.at(protocol::G_MEMBER_LAGGED)) {
            // Relaxed: a statistic.
            w.fetch_add(missed, Ordering::Relaxed);
        }
        RecvError::Lagged(missed)
    }

    /// Looks for work: a dead member's (now and then, when idle), else a
    /// new claim. `Ok(true)` when `seat.work` was set.
    fn find_work(&mut self, sh: &Shared, seat: &mut GroupSeat) -> Result<bool, RecvError> {
        let core = sh.group_core(seat.index);
        if Instant::now() >= seat.next_adopt && self.adopt(sh, seat)? {
            return Ok(true);
        }
        // Nothing at any cursor: no lock taken.
        if !self.group_has_records(sh, seat) {
            if group_gone(&core, seat.generation) {
                return Err(RecvError::GroupRemoved);
            }
            seat.idle_polls = seat.idle_polls.wrapping_add(1);
            if seat.idle_polls % 256 == 0 && Instant::now() >= seat.next_adopt {
                return self.adopt(sh, seat);
            }
            return Ok(false);
        }
        let batch = seat.batch;
        let (claim, missed) = core
            .claim(
                seat.generation,
                seat.member,
                seat.next_ring,
                |p, cursor, expected| Ok(self.scan(sh, p as usize, cursor, expected, batch)),
            )
            .map_err(recv_err)?;
        if let Some(c) = claim {
            seat.next_ring = (c.ring as u64 + 1) % sh.config.max_producers as u64;
            seat.work = Some(Work {
                slot: seat.member,
                progress: SegWord::at(&core, core.member_at(seat.member, M_PROGRESS)),
                ring: c.ring,
                pos: c.start,
                end: c.end,
                expected: c.seq,
                end_seq: c.end_seq,
                redeliver_below: 0,
            });
        }
        // Records passed over move the floor: a blocked producer may go on.
        if missed > 0 {
            self.lagged = self.lagged.saturating_add(missed);
            return Err(RecvError::Lagged(missed));
        }
        Ok(seat.work.is_some())
    }

    /// Whether some ring has a record at the group's cursor (a hint, read
    /// without the lock).
    fn group_has_records(&self, sh: &Shared, seat: &GroupSeat) -> bool {
        let core = sh.group_core(seat.index);
        let mask = sh.producer_mask() & !self.broken;
        (0..sh.config.max_producers as u64).any(|p| {
            if mask & (1 << p) == 0 {
                return false;
            }
            // Acquire: pairs with the claim's Release cursor store.
            let Ok(cursor) = core
                .word(core.cursor_at(p))
                .map(|w| w.load(Ordering::Acquire))
            else {
                return false;
            };
            let ring = self.lanes[p as usize & 63].ring;
            let head = self.overwrite.then_some(&ring.slot().head);
            !matches!(ring::peek(&ring, cursor, head), Peek::Empty)
        })
    }

    /// Under the group lock: what ring `p` holds from the group's cursor,
    /// up to `batch` wanted records.
    fn scan(&mut self, sh: &Shared, p: usize, cursor: u64, expected: u64, batch: u64) -> Scan {
        let none = Scan {
            start: cursor,
            end: cursor,
            seq: expected,
            end_seq: expected,
            wanted: 0,
            missed: 0,
        };
        if self.broken & (1 << p) != 0 || p >= 64 {
            return none;
        }
        let ring = self.lanes[p].ring;
        let head = self.overwrite.then_some(&ring.slot().head);
        let mut s = none;
        let mut first = true;
        for _ in 0..SCAN_RECORDS {
            match ring::peek(&ring, s.end, head) {
                Peek::Record(v) => {
                    if self.overwrite && v.seq > s.end_seq {
                        s.missed = s.missed.saturating_add(v.seq - s.end_seq);
                    }
                    if first {
                        s.seq = v.seq;
                        first = false;
                    }
                    s.end_seq = v.seq.wrapping_add(1);
                    s.end = v.next;
                    if self.wants(sh, v.topic) {
                        s.wanted += 1;
                        if s.wanted >= batch {
                            break;
                        }
                    }
                }
                Peek::Padding { next } => s.end = next,
                Peek::Empty => break,
                Peek::Lagged if s.wanted == 0 => {
                    let to = ring::resync(&ring, &ring.ctl());
                    if to <= s.end {
                        self.corrupt(p, "overwrite mark beyond the producer's tail");
                        return none;
                    }
                    s.start = to;
                    s.end = to;
                    first = true;
                }
                Peek::Lagged => break,
                Peek::Corrupt(what) => {
                    if s.end == cursor {
                        self.corrupt(p, what);
                        return none;
                    }
                    break;
                }
            }
        }
        if first {
            s.seq = s.end_seq;
        }
        s
    }

    /// Adopts a dead member's unfinished work, if there is some.
    fn adopt(&mut self, sh: &Shared, seat: &mut GroupSeat) -> Result<bool, RecvError> {
        seat.next_adopt = Instant::now() + ADOPT_EVERY;
        let core = sh.group_core(seat.index);
        let overwrite = self.overwrite;
        let lanes = &self.lanes;
        let adopted = core
            .adopt(seat.generation, seat.at_most_once, |p, pos| {
                let ring = lanes[p as usize & 63].ring;
                let head = overwrite.then_some(&ring.slot().head);
                match ring::peek(&ring, pos, head) {
                    Peek::Record(v) => Some(v.next),
                    _ => None,
                }
            })
            .map_err(recv_err);
        sh.drop_sleepers(&core);
        let Some(a) = adopted? else {
            return Ok(false);
        };
        let ring = self.lanes[a.ring & 63].ring;
        let head = overwrite.then_some(&ring.slot().head);
        let expected = match ring::peek(&ring, a.from, head) {
            Peek::Record(v) => v.seq,
            _ => 0,
        };
        tracing::info!(
            group = %seat.name,
            slot = a.slot,
            redelivered = a.redeliver_below != 0,
            "adopted a departed member's unfinished events"
        );
        seat.work = Some(Work {
            slot: a.slot as u64,
            progress: SegWord::at(&core, core.member_at(a.slot as u64, M_PROGRESS)),
            ring: a.ring,
            pos: a.from,
            end: a.end,
            expected,
            end_seq: expected,
            redeliver_below: a.redeliver_below,
        });
        Ok(true)
    }

    /// The current claim is finished: recorded, an adopted slot freed, the
    /// producer woken if it waits for space.
    fn finish_work(&mut self, sh: &Shared, seat: &mut GroupSeat) {
        let Some(w) = seat.work.take() else {
            return;
        };
        let core = sh.group_core(seat.index);
        let _ = core.finish(w.slot, w.end);
        if w.slot != seat.member {
            if let Err(e) = core.leave(seat.generation, w.slot) {
                tracing::warn!(group = %seat.name, error = ?e, "could not free an adopted slot");
            }
        }
        wake_producer(sh, w.ring);
    }

    /// `delivered` for a group member: the sample at the claim's position
    /// is finished.
    #[inline(never)]
    pub(crate) fn group_delivered(&mut self, sh: &Shared, next: u64, seq: u64) {
        self.received += 1;
        let Some(seat) = self.group.as_mut() else {
            return;
        };
        seat.done += 1;
        // Relaxed: statistics, written by this member only.
        seat.done_word.get().store(seat.done, Ordering::Relaxed);
        let Some(w) = seat.work.as_mut() else {
            return;
        };
        w.pos = next;
        w.expected = seq.wrapping_add(1);
        // Release: as in `GroupCore::set_progress`.
        w.progress.get().store(w.pos, Ordering::Release);
        if w.pos >= w.end {
            let mut seat = self.group.take();
            if let Some(s) = seat.as_mut() {
                self.finish_work(sh, s);
            }
            self.group = seat;
        }
    }

    /// Before an idle member sleeps: look for dead members' work.
    pub(crate) fn group_idle(&mut self, sh: &Shared) {
        if let Some(mut seat) = self.group.take() {
            if !seat.removed && seat.work.is_none() && Instant::now() >= seat.next_adopt {
                let _ = self.adopt(sh, &mut seat);
            }
            self.group = Some(seat);
        }
    }

    /// The member leaves (its `Subscriber` is dropped): unfinished work is
    /// left for another member to adopt, the slot freed.
    pub(crate) fn group_leave(&mut self, sh: &Shared) {
        let Some(mut seat) = self.group.take() else {
            return;
        };
        let core = sh.group_core(seat.index);
        if let Some(w) = seat.work.take() {
            // No sample is out (it would borrow the subscriber): `pos` is
            // where the next record starts.
            let _ = core.set_progress(w.slot, w.pos);
            if w.slot != seat.member {
                let _ = core.leave(seat.generation, w.slot);
            }
        }
        if let Err(e) = core.leave(seat.generation, seat.member) {
            tracing::warn!(group = %seat.name, error = ?e, "could not leave the group");
        }
        sh.free_evicted_groups();
    }
}
