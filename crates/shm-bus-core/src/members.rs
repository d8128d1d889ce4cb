//! [`Bus::members`]: who holds the producer and subscriber slots, read
//! once — what `Bus::info`, the CLI and the engine's lifecycle monitor all
//! build on.

use std::sync::atomic::{AtomicU64, Ordering};

use shm_bus_alloc::ProcessId;

use crate::bus::Bus;
use crate::layout::{
    NAME_BYTES, SLOT_ACTIVE, SLOT_CLAIMING, SLOT_FREE, load_name, slot_state, slot_token,
};

/// The state of a producer or subscriber slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotState {
    /// Nobody holds it.
    Free,
    /// A process is claiming it (a subscriber not yet counted by
    /// producers).
    Claiming,
    /// Held by a process (which may have died since: see
    /// [`Member::is_alive`]).
    Active,
    /// The state word holds a value no process writes (a damaged segment);
    /// a reaper frees it once its garbage owner is found dead.
    Damaged,
}

/// One producer or subscriber slot, as read by [`Bus::members`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The slot (the producer id samples carry, or the subscriber id).
    pub slot: u32,
    /// Its state.
    pub state: SlotState,
    /// The owner's identity: its pid and the low bits of its start time,
    /// so two processes that had the same pid differ. Compare tokens to
    /// tell whether a slot changed hands; `0` for a free slot.
    pub token: u64,
    /// The owner's pid, as the owner wrote it (the last owner's, for a
    /// free slot that was used).
    pub pid: u32,
    /// The owner's name (up to 32 bytes).
    pub name: String,
    /// How many times the slot has been claimed.
    pub generation: u64,
    /// Whether the owner has written its fields: the pid field belongs to
    /// the token (a slot caught between its claim and those stores reads
    /// as incomplete).
    pub complete: bool,
    /// Subscribers: records missed through lag (Overwrite policy).
    /// Producers: 0.
    pub lagged: u64,
}

impl Member {
    /// Whether the slot is held (active or being claimed) by a process
    /// that is still alive (pid and start time checked against `/proc`,
    /// so a reused pid is not mistaken for the owner).
    pub fn is_alive(&self) -> bool {
        matches!(self.state, SlotState::Active | SlotState::Claiming)
            && !ProcessId::token_is_dead(self.token)
    }
}

/// Every producer and subscriber slot of a bus, in slot order
/// ([`Bus::members`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    /// `max_producers` entries.
    pub producers: Vec<Member>,
    /// `max_subscribers` entries.
    pub subscribers: Vec<Member>,
}

fn read(
    slot: u32,
    state: &AtomicU64,
    pid: &AtomicU64,
    generation: &AtomicU64,
    name: &[AtomicU64; NAME_BYTES / 8],
    lagged: u64,
) -> Member {
    // Acquire: pairs with the Release/SeqCst stores that claim a slot
    // (`attach_publisher`'s CAS, the subscriber's ACTIVE store) and free it,
    // so the owner fields written before them are visible.
    let word = state.load(Ordering::Acquire);
    let token = slot_token(word);
    // Relaxed (here and below): fields of the slot, ordered by the Acquire
    // load above; checked against the token (`complete`).
    let pid = pid.load(Ordering::Relaxed) as u32;
    Member {
        slot,
        state: match slot_state(word) {
            _ if word == SLOT_FREE => SlotState::Free,
            SLOT_CLAIMING => SlotState::Claiming,
            SLOT_ACTIVE => SlotState::Active,
            _ => SlotState::Damaged,
        },
        token,
        pid,
        name: load_name(name),
        generation: generation.load(Ordering::Relaxed),
        complete: word != SLOT_FREE && u64::from(pid) == token & 0xffff_ffff,
        lagged,
    }
}

impl Bus {
    /// Every producer and subscriber slot as it is now: state, owner
    /// (token, pid, name), generation. Slots are read one after another,
    /// not at one instant. Cheap: no `/proc` reads unless
    /// [`Member::is_alive`] is asked.
    pub fn members(&self) -> Members {
        let sh = &*self.shared;
        let producers = (0..sh.config.max_producers)
            .map(|p| {
                let s = sh.producer(p as usize);
                read(p, &s.state, &s.owner_pid, &s.generation, &s.name, 0)
            })
            .collect();
        let subscribers = (0..sh.config.max_subscribers)
            .map(|i| {
                let s = sh.subscriber(i as usize);
                // Relaxed: a statistic.
                let lagged = s.lagged.load(Ordering::Relaxed);
                read(i, &s.state, &s.owner_pid, &s.generation, &s.name, lagged)
            })
            .collect();
        Members {
            producers,
            subscribers,
        }
    }
}
