//! The state word of a producer or subscriber slot: who owns it and
//! whether it is free, being claimed, or active.
//!
//! Layout: the state (`SLOT_*`) in the top two bits, the owner's token
//! (`ProcessId::token`, below 2^62) in the bits below. A damaged word may
//! carry state `3`, which no code writes: it counts as neither free nor
//! active, and a reaper frees it once its (garbage) owner is found dead.

/// A free slot (the whole word is 0).
pub const SLOT_FREE: u64 = 0;
/// A slot whose owner is filling it in (not yet counted by producers).
pub const SLOT_CLAIMING: u64 = 1;
/// A slot in use: a subscriber in it holds producers back (Block policy).
pub const SLOT_ACTIVE: u64 = 2;
const TOKEN_MASK: u64 = (1 << 62) - 1;

/// The state word of a slot owned by `token` in `state`.
#[inline]
pub fn slot_word(token: u64, state: u64) -> u64 {
    (token & TOKEN_MASK) | (state << 62)
}

/// The state (`SLOT_*`, or 3 if damaged) of a state word.
#[inline]
pub fn slot_state(word: u64) -> u64 {
    word >> 62
}

/// The owner token of a state word.
#[inline]
pub fn slot_token(word: u64) -> u64 {
    word & TOKEN_MASK
}
