//! The throughput floor: a minimal ring of fixed slots, one producer and
//! 1 to [`MAX_CONSUMERS`] consumers.
//!
//! # Layout
//!
//! ```text
//! offset 0                     unused line pair
//! offset 128 × (1 + c)         head of consumer c (u64; c = 0 .. consumers), each
//!                              on its own 128-byte pair of cache lines
//! offset HEADS_BYTES (4096)    slot 0, slot 1, … slot slots-1
//! ```
//!
//! Line 0 is unused (kept so that no head shares lines with what precedes
//! the region). A slot is `size` rounded up to [`SLOT_ALIGN`] (64) bytes;
//! there are `max(ring_bytes / slot, 2)` slots. Every field is a
//! little-endian `u64` written with atomics:
//!
//! - a **slot's first 8 bytes** are its commit flag: the sequence number of
//!   the message it holds, plus one (0: never written). Message `n` (the
//!   `n`-th sent, from 0; never wraps) lives in slot `n % slots`. The rest
//!   of the slot is the payload after its first 8 bytes, written with
//!   plain copies by the producer before it stores the flag.
//! - a **head** is the number of messages its consumer has finished with
//!   (never wraps); the producer may reuse the slot of message `n` once
//!   every head is past `n`.
//!
//! # Protocol
//!
//! - The producer writes the payload into the slot of message `tail`, then
//!   stores the flag `tail + 1` with Release. Before reusing a slot it
//!   checks its cached minimum head; only when that says the ring is full
//!   does it load every head (Acquire) again.
//! - A consumer polls the flag of its next slot with Acquire; the message
//!   is there when the flag equals `next + 1`. It publishes its head
//!   (Release) every `max(slots / 64, 1)` messages, and whenever it finds
//!   nothing new (caught up), so that no shared counter bounces between
//!   cores on every message.
//! - Consumers read only the sequence number (the flag), as the benchmarks'
//!   subscribers do; they never read the payload bytes.
//!
//! This is how shm-bus's own rings work (a commit stamp per record,
//! cursors published every 1/64 of the ring or when caught up), minus
//! everything else the bus does.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{AttachError, LINE, LayoutError, check_region};

/// Bytes before the first slot: the heads, one per [`LINE`] (one page).
pub const HEADS_BYTES: usize = 4096;

/// The most consumers a ring can have: heads on lines 1 to 31 of the
/// header.
pub const MAX_CONSUMERS: usize = HEADS_BYTES / LINE - 1;

/// Slot size granularity and the alignment the region's base needs: a
/// slot starts on a cache line, so the bulk copy of a payload's bytes
/// from offset 64 on is 64-byte aligned.
pub const SLOT_ALIGN: usize = 64;

/// The shape of a ring: message size, number of slots and consumers. Both
/// sides of a ring must be made with equal layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    /// Bytes per message, at least 8.
    size: usize,
    /// Bytes per slot: `size` rounded up to [`SLOT_ALIGN`].
    slot: usize,
    /// Number of slots, at least 2.
    slots: u64,
    /// Number of consumers, 1 ..= [`MAX_CONSUMERS`].
    consumers: usize,
}

impl RingLayout {
    /// A ring of `size`-byte messages in about `ring_bytes` of slots
    /// (`max(ring_bytes / slot, 2)` slots of `size` rounded up to 64
    /// bytes), read by `consumers` consumers.
    pub fn new(size: usize, ring_bytes: u64, consumers: usize) -> Result<RingLayout, LayoutError> {
        if size < 8 {
            return Err(LayoutError::PayloadTooSmall { size });
        }
        if consumers == 0 {
            return Err(LayoutError::NoConsumers);
        }
        if consumers > MAX_CONSUMERS {
            return Err(LayoutError::TooManyConsumers {
                consumers,
                max: MAX_CONSUMERS,
            });
        }
        let slot = size
            .checked_next_multiple_of(SLOT_ALIGN)
            .ok_or(LayoutError::TooLarge)?;
        let slots = (ring_bytes / slot as u64).max(2);
        let layout = RingLayout {
            size,
            slot,
            slots,
            consumers,
        };
        layout.checked_bytes().ok_or(LayoutError::TooLarge)?;
        Ok(layout)
    }

    fn checked_bytes(&self) -> Option<usize> {
        let slots = usize::try_from(self.slots).ok()?;
        let total = self.slot.checked_mul(slots)?.checked_add(HEADS_BYTES)?;
        // Pointer offsets must fit in `isize`.
        isize::try_from(total).ok()?;
        Some(total)
    }

    /// Bytes of memory the ring needs: [`HEADS_BYTES`] plus the slots.
    pub fn bytes(&self) -> usize {
        self.checked_bytes()
            .expect("checked when the layout was made")
    }

    /// Bytes per message.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Bytes per slot: [`size`](Self::size) rounded up to 64.
    pub fn slot_bytes(&self) -> usize {
        self.slot
    }

    /// Number of slots.
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Number of consumers.
    pub fn consumers(&self) -> usize {
        self.consumers
    }

    /// How many messages a consumer reads between publications of its
    /// head (unless it catches up first): 1/64 of the ring, at least 1.
    pub fn batch(&self) -> u64 {
        (self.slots / 64).max(1)
    }

    /// Offset of consumer `c`'s head.
    fn head_offset(c: usize) -> usize {
        (1 + c) * LINE
    }

    /// Offset of slot `idx` (< slots).
    #[inline]
    fn slot_offset(&self, idx: u64) -> usize {
        HEADS_BYTES + idx as usize * self.slot
    }
}

/// The atomic word at `offset` from `base`.
///
/// # Safety
///
/// `offset + 8` is within memory that is valid for `'a`, `base + offset`
/// is 8-byte aligned, and every access to that word is atomic.
#[inline]
unsafe fn word<'a>(base: NonNull<u8>, offset: usize) -> &'a AtomicU64 {
    // SAFETY: in bounds, aligned, valid for 'a and only accessed
    // atomically (the caller's contract); any bits are a valid AtomicU64.
    unsafe { &*base.as_ptr().add(offset).cast::<AtomicU64>() }
}

/// The producer of a ring: writes each message once into its slot.
pub struct Producer<O> {
    base: NonNull<u8>,
    layout: RingLayout,
    /// Messages sent: the sequence number of the next one (never wraps).
    tail: u64,
    /// The slowest head as last loaded (`tail - min_head <= slots`).
    min_head: u64,
    /// Slot of the next message: `tail % slots`, kept to avoid a division.
    idx: u64,
    /// Keeps the memory alive.
    _owner: O,
}

// SAFETY: the producer is the only writer of the slots' bytes wherever it
// runs; moving it to another thread changes nothing about who accesses
// what. The pointer stays valid as long as `_owner`, which moves with it
// (hence `O: Send`).
unsafe impl<O: Send> Send for Producer<O> {}

impl<O> Producer<O> {
    /// The producer of the ring `layout` at `base`, keeping `owner` (which
    /// keeps the memory mapped) until it is dropped.
    ///
    /// # Errors
    ///
    /// [`AttachError::Misaligned`] when `base` is not 64-byte aligned;
    /// [`AttachError::TooSmall`] when `len < layout.bytes()`.
    ///
    /// # Safety
    ///
    /// - `base` points to `len` bytes that stay valid for reads and writes
    ///   (mapped, not freed or unmapped) for as long as `owner` lives.
    /// - The first `layout.bytes()` of them are used only as this ring,
    ///   with this layout: by this producer and by [`Consumer`]s made with
    ///   an equal layout over the same bytes (in any process), and by
    ///   nothing else, for as long as any of them lives. There is one
    ///   producer per ring: no other `Producer` over the same bytes lives
    ///   at the same time.
    ///
    /// For the ring to work (not for soundness), those bytes are all zero
    /// before the first producer or consumer over them is made.
    pub unsafe fn new(
        base: NonNull<u8>,
        len: usize,
        layout: RingLayout,
        owner: O,
    ) -> Result<Producer<O>, AttachError> {
        check_region(base, len, layout.bytes())?;
        Ok(Producer {
            base,
            layout,
            tail: 0,
            min_head: 0,
            idx: 0,
            _owner: owner,
        })
    }

    /// Tries to send `payload` as the next message: copies its bytes after
    /// the first 8 into the next slot, then commits the slot with the
    /// message's sequence number ([`sent`](Self::sent) before the call) in
    /// place of the payload's first 8 bytes. `false`: the ring is full
    /// (some consumer has not finished with that slot yet); call again.
    ///
    /// # Panics
    ///
    /// When `payload.len()` is not the layout's [`size`](RingLayout::size).
    #[inline]
    pub fn try_send(&mut self, payload: &[u8]) -> bool {
        assert_eq!(
            payload.len(),
            self.layout.size,
            "floor ring messages are exactly the layout's size"
        );
        if self.tail - self.min_head >= self.layout.slots {
            let mut min = u64::MAX;
            for c in 0..self.layout.consumers {
                // SAFETY: the head is inside the region (`new` checked
                // `len >= bytes()`, c < consumers <= MAX_CONSUMERS), 8-byte
                // aligned (64-aligned base) and only accessed atomically
                // (the contract of `new`); `_owner` keeps it mapped.
                let head = unsafe { word(self.base, RingLayout::head_offset(c)) };
                // Acquire: pairs with the Release store of the head in
                // `Consumer::publish`, so that consumer's loads of the slots
                // before its head are done before we overwrite them.
                min = min.min(head.load(Ordering::Acquire));
            }
            self.min_head = min;
            if self.tail - self.min_head >= self.layout.slots {
                return false;
            }
        }
        let offset = self.layout.slot_offset(self.idx);
        let len = payload.len();
        let first = len.min(SLOT_ALIGN);
        // SAFETY: the slot (`offset .. offset + slot`) lies inside the
        // region and holds `len <= slot` bytes; only this producer writes
        // it (one producer, the contract of `new`) and consumers never read
        // its bytes after the flag; every head is past the slot's previous
        // message (checked above), and its flag does not yet announce this
        // one. The bytes after the flag are copied in two parts so that the
        // bulk copy starts 64-byte aligned (a misaligned `rep movsb` is
        // slower).
        unsafe {
            let dst = self.base.as_ptr().add(offset);
            std::ptr::copy_nonoverlapping(payload.as_ptr().add(8), dst.add(8), first - 8);
            if len > SLOT_ALIGN {
                std::ptr::copy_nonoverlapping(
                    payload.as_ptr().add(SLOT_ALIGN),
                    dst.add(SLOT_ALIGN),
                    len - SLOT_ALIGN,
                );
            }
        }
        // SAFETY: the flag is the slot's first word: inside the region,
        // 64-byte aligned, only accessed atomically (the payload copy above
        // starts after it).
        let flag = unsafe { word(self.base, offset) };
        // Release: pairs with the Acquire load of the flag in
        // `Consumer::try_recv`: the payload is written before the message
        // is visible.
        flag.store(self.tail + 1, Ordering::Release);
        self.tail += 1;
        self.idx += 1;
        if self.idx == self.layout.slots {
            self.idx = 0;
        }
        true
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.tail
    }

    /// The ring's layout.
    pub fn layout(&self) -> &RingLayout {
        &self.layout
    }
}

/// Consumer `index` of a ring: polls the next slot's flag, reads the
/// message's sequence number.
pub struct Consumer<O> {
    base: NonNull<u8>,
    layout: RingLayout,
    /// Offset of this consumer's head.
    head: usize,
    /// Sequence number of the next message (never wraps).
    next: u64,
    /// Slot of the next message: `next % slots`.
    idx: u64,
    /// The head as last published (`<= next`).
    published: u64,
    /// Publish the head after this many messages ([`RingLayout::batch`]).
    batch: u64,
    /// Keeps the memory alive.
    _owner: O,
}

// SAFETY: a consumer only makes atomic accesses to the region, from
// whichever thread it runs on; the pointer stays valid as long as
// `_owner`, which moves with it (hence `O: Send`).
unsafe impl<O: Send> Send for Consumer<O> {}

impl<O> Consumer<O> {
    /// Consumer `index` (< `layout.consumers()`) of the ring `layout` at
    /// `base`, keeping `owner` (which keeps the memory mapped) until it is
    /// dropped. It starts at message 0.
    ///
    /// # Errors
    ///
    /// [`AttachError::NoSuchConsumer`], [`AttachError::Misaligned`] (base
    /// not 64-byte aligned), [`AttachError::TooSmall`] (`len <
    /// layout.bytes()`).
    ///
    /// # Safety
    ///
    /// As for [`Producer::new`]: `base` points to `len` bytes that stay
    /// valid for reads and writes for as long as `owner` lives, and the
    /// first `layout.bytes()` of them are used only as this ring, with an
    /// equal layout, by one producer and consumers, and by nothing else.
    ///
    /// For the ring to work (not for soundness): those bytes were all zero
    /// before the first producer or consumer over them was made, and each
    /// index has one consumer at a time.
    pub unsafe fn new(
        base: NonNull<u8>,
        len: usize,
        layout: RingLayout,
        index: usize,
        owner: O,
    ) -> Result<Consumer<O>, AttachError> {
        if index >= layout.consumers {
            return Err(AttachError::NoSuchConsumer {
                index,
                consumers: layout.consumers,
            });
        }
        check_region(base, len, layout.bytes())?;
        Ok(Consumer {
            base,
            layout,
            head: RingLayout::head_offset(index),
            next: 0,
            idx: 0,
            published: 0,
            batch: layout.batch(),
            _owner: owner,
        })
    }

    /// Polls once: the sequence number of the next message if it has been
    /// committed (then this consumer is done with it), `None` otherwise
    /// (then the head is published, so the producer may reuse every slot
    /// read so far).
    #[inline]
    pub fn try_recv(&mut self) -> Option<u64> {
        // SAFETY: the flag is the first word of slot `idx` < slots: inside
        // the region (`new` checked the length), 64-byte aligned, only
        // accessed atomically (the contract of `new`); `_owner` keeps it
        // mapped.
        let flag = unsafe { word(self.base, self.layout.slot_offset(self.idx)) };
        // Acquire: pairs with the Release store of the flag in
        // `Producer::try_send` (the message is complete once visible).
        let f = flag.load(Ordering::Acquire);
        if f != self.next + 1 {
            // Caught up: let the producer reuse everything read so far.
            self.publish();
            return None;
        }
        self.next += 1;
        self.idx += 1;
        if self.idx == self.layout.slots {
            self.idx = 0;
        }
        if self.next - self.published >= self.batch {
            self.publish();
        }
        Some(f - 1)
    }

    /// Messages received so far.
    pub fn received(&self) -> u64 {
        self.next
    }

    /// The ring's layout.
    pub fn layout(&self) -> &RingLayout {
        &self.layout
    }

    #[inline]
    fn publish(&mut self) {
        if self.published != self.next {
            self.published = self.next;
            // SAFETY: this consumer's head: inside the region, 8-byte
            // aligned, only accessed atomically (the contract of `new`).
            let head = unsafe { word(self.base, self.head) };
            // Release: pairs with the Acquire load of the heads in
            // `Producer::try_send`: our loads of the slots before `next`
            // are done before the producer reuses them.
            head.store(self.next, Ordering::Release);
        }
    }
}
