//! The ring protocol: one producer, many readers, over a byte log.
//!
//! A ring is `cap = 2^k` bytes. Positions are byte offsets that only grow
//! (they never wrap; the slot of a position is `pos & (cap - 1)`). Records
//! are a 32-byte header and a payload padded to 32 bytes:
//!
//! | word | content |
//! |------|---------|
//! | 0    | commit stamp: `pos + 1` once the record at `pos` is complete; anything else means "not (yet) a record at `pos`" |
//! | 1    | payload length (low 32 bits) and `TopicId` (high 32 bits; `u32::MAX` marks a padding record) |
//! | 2    | sequence number (per producer slot, gap-free, never wraps) |
//! | 3    | timestamp, ns since the Unix epoch |
//!
//! **Writing** a record at `pos` of size `size`: write words 1–3 and the
//! payload, set word 0 of the *next* position `pos + size` to 0, then store
//! the stamp `pos + 1` into word 0 (Release). A record that does not fit
//! before the end of the ring is preceded by a padding record to the end.
//!
//! **Reading** at `cursor`: load word 0 (Acquire). It equals `cursor + 1`
//! only once the record is complete: a subscriber learns of a record from
//! the record's own header, not from a counter on another cache line.
//! Because the producer clears the next header before committing, the word
//! at the producer's tail never holds a stale stamp, and a producer killed
//! mid-write leaves a header whose stamp is not `pos + 1`: torn records are
//! never visible.
//!
//! **Block policy**: the producer never writes past `min(cursor) + cap`
//! (including the next header it clears), so unread bytes are never reused
//! and a reader may borrow a payload in place ([`payload_in_place`]; the
//! producer fills it in place through [`payload_raw`]) until
//! it moves its cursor. A reader joining while the producer publishes
//! follows the handshake of [`join_before`] / [`join_fence`] /
//! [`join_after`], which pairs with the fence in [`limit`].
//!
//! **Overwrite policy**: before writing bytes up to position `end`, the
//! producer stores `head = end` and issues a Release fence; a reader checks
//! after reading (Acquire fence, then `head`) that `head <= cursor + cap`,
//! i.e. that nothing it read was reused — the seqlock pattern. Both sides
//! touch payload bytes only with atomic word accesses ([`copy_in`],
//! [`copy_out`]), never through references: a reference to bytes another
//! thread may write is a data race whatever is checked afterwards. A reader
//! that was lapped finds a record boundary again through `checkpoints`: the
//! producer records where the first record starting in each 1/64th of the
//! ring begins.
//!
//! **Damage**: every word read from the ring or the producer's controls is
//! checked before it indexes or sizes anything ([`peek`],
//! [`Writer::attach`]); positions and sequence numbers at or above
//! [`MAX_POSITION`] are damage, which keeps all position arithmetic free of
//! overflow.

use crate::sync::{AtomicU64, Ordering, fence};

/// Record header bytes.
pub const HEADER: u64 = 32;
/// Record alignment (and payload alignment).
pub const ALIGN: u64 = 32;
/// `TopicId` value of padding records.
pub const PADDING_TOPIC: u32 = u32::MAX;
/// Positions (and sequence numbers) at or above this are damage: at
/// 100 GB/s a ring reaches 2^62 bytes after 1.4 years of publishing, and
/// every sum of a position with a ring size or record size stays far below
/// `u64::MAX`, so no arithmetic on a checked position overflows.
pub const MAX_POSITION: u64 = 1 << 62;

/// One 32-byte line, aligned like a ring payload: private copies of
/// payloads (a subscriber's copy, a publisher's staging buffer) are made
/// of these, so a `Pod` view of a copy behaves as one in the ring.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(32))]
pub struct Line(pub [u64; 4]);

/// Largest payload for a ring of `cap` bytes: a record takes at most half
/// the ring, so a record plus padding plus the next header always fit.
pub const fn max_payload(cap: u64) -> u64 {
    cap / 2 - HEADER
}

/// Size of the record holding `len` payload bytes.
#[inline]
pub const fn record_size(len: u64) -> u64 {
    HEADER + len.div_ceil(ALIGN) * ALIGN
}

/// Where a ring's bytes live: the shared segment, or heap memory in tests.
///
/// # Safety
/// Implementors promise that `word(slot)` for every 8-aligned
/// `slot < capacity()`, `header(slot)` for every 32-aligned one, and
/// `ptr(slot)` for every `slot < capacity()` point
/// into one live allocation of `capacity()` bytes, 32-byte aligned at
/// offset 0, that stays valid while `self` lives; that `capacity()` is a
/// power of two of at least `8 * ALIGN`; and that the bytes are accessed
/// by other threads or processes only through this protocol.
pub unsafe trait RingMem {
    /// Capacity in bytes (a power of two, at least `8 * ALIGN`).
    fn capacity(&self) -> u64;
    /// The 8-byte word at ring offset `slot & (capacity - 1)` (`slot`
    /// 8-aligned).
    fn word(&self, slot: u64) -> &AtomicU64;
    /// The four words of the record header at ring offset
    /// `slot & (capacity - 1) & !31` (a record boundary): one masking for
    /// the header's four accesses.
    fn header(&self, slot: u64) -> &[AtomicU64; 4];
    /// A raw pointer to ring byte `slot & (capacity - 1)`.
    fn ptr(&self, slot: u64) -> *mut u8;
}

/// Copies `dst.len()` words of ring bytes starting at ring offset `slot`
/// (32-aligned, inside one record) with atomic word loads: the one way a
/// reader copies a payload the producer may be rewriting (Overwrite
/// policy). The copy means something only once validated with [`intact`].
///
/// Relaxed loads: ordering comes from the Acquire fence in [`intact`]
/// (the seqlock's read side), which these loads precede.
#[inline]
pub fn copy_out<M: RingMem>(mem: &M, slot: u64, dst: &mut [u64]) {
    for (i, d) in dst.iter_mut().enumerate() {
        *d = mem.word(slot + 8 * i as u64).load(Ordering::Relaxed);
    }
}

/// Copies `src` into the ring at ring offset `slot` (32-aligned, inside
/// the caller's reservation) with atomic word stores, the last word padded
/// with zeros: the one way a producer writes a payload a lapped reader may
/// be reading (Overwrite policy).
///
/// Relaxed stores: they follow the Release fence in [`Writer::reserve`]
/// (the seqlock's write side), and the record's commit stamp (Release)
/// follows them.
#[inline]
pub fn copy_in<M: RingMem>(mem: &M, slot: u64, src: &[u8]) {
    let mut chunks = src.chunks_exact(8);
    let mut at = slot;
    for chunk in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        mem.word(at).store(u64::from_ne_bytes(b), Ordering::Relaxed);
        at += 8;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        mem.word(at).store(u64::from_ne_bytes(b), Ordering::Relaxed);
    }
}

/// Block policy: the payload of a committed record, in place.
///
/// # Safety
/// The record at `view.pos` was committed (its stamp loaded with Acquire
/// by [`peek`], which also checked that it lies inside the ring), the
/// policy is Block, and the caller's cursor stays at or before `view.pos`
/// (so the producer cannot reuse the bytes, see [`limit`]) for as long as
/// the returned slice lives.
#[inline]
pub unsafe fn payload_in_place<'m, M: RingMem>(mem: &'m M, view: &RecordView) -> &'m [u8] {
    let ptr = mem.ptr(view.payload_slot(mem.capacity() - 1));
    // SAFETY: `peek` checked `slot + record_size(len) <= cap`, so the
    // `len` bytes are inside the ring allocation (`RingMem` contract); they
    // were written before the commit stamp the caller loaded with Acquire,
    // and under Block nobody writes them again while the caller's cursor
    // holds them (the caller's contract). u8 is valid for any bits.
    unsafe { std::slice::from_raw_parts(ptr, view.len as usize) }
}

/// Block policy: where the payload bytes of a reservation are, for the
/// producer to fill in place. A raw pointer: turning it into `&mut [u8]`
/// is sound only while `res` is the producer's current, uncommitted
/// reservation on a Block ring — `reserve` made sure the record lies
/// contiguously inside the ring, and no reader reads those bytes before
/// the commit stamp (Release) that follows the producer's writes.
#[inline]
pub fn payload_raw<M: RingMem>(mem: &M, res: &Reservation) -> *mut [u8] {
    let ptr = mem.ptr(res.payload_slot(mem.capacity() - 1));
    std::ptr::slice_from_raw_parts_mut(ptr, res.len as usize)
}

/// The producer-owned words of a ring (in the producer slot). The number
/// of checkpoints must be a power of two.
pub struct RingCtl<'a> {
    /// One past the last committed record (Release).
    pub tail: &'a AtomicU64,
    /// Overwrite policy: end of the range the producer may be writing.
    pub head: &'a AtomicU64,
    /// Sequence number of the next record.
    pub next_seq: &'a AtomicU64,
    /// Seqlock over (`tail`, `next_seq`): odd while they are being
    /// updated, so readers can take a consistent [`snapshot`].
    pub progress: &'a AtomicU64,
    /// Record-start positions, one per 1/64th of the ring.
    pub checkpoints: &'a [AtomicU64],
}

/// A reserved, not yet committed, record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// Position of the record.
    pub pos: u64,
    /// Payload length.
    pub len: u64,
}

impl Reservation {
    /// Ring offset of the payload.
    pub fn payload_slot(&self, mask: u64) -> u64 {
        (self.pos + HEADER) & mask
    }
}

/// The producer side. Holds local copies of the tail and sequence number.
pub struct Writer {
    cap: u64,
    mask: u64,
    tail: u64,
    seq: u64,
    overwrite: bool,
    /// Block policy: highest position that may be written, cached.
    limit: u64,
    /// The tail as last published in `RingCtl::tail` (see [`Writer::flush`]).
    published_tail: u64,
    /// Where the 1/n-th of the ring after `published_tail`'s begins: a
    /// commit whose tail reaches it publishes the progress.
    flush_at: u64,
    last_chunk: u64,
    /// `log2(cap / number of checkpoints)`.
    chunk_shift: u32,
    /// Largest payload [`reserve`](Self::reserve) accepts.
    max_len: u64,
}

/// Why a reservation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveError {
    /// Block policy: not enough space freed by the slowest reader.
    Full,
    /// The payload is larger than [`max_payload`].
    TooLarge,
}

impl Writer {
    /// Takes over a ring whose controls say where the last producer
    /// stopped. Records committed after the published tail (the previous
    /// producer died between committing and publishing) are found by
    /// walking their stamps, so none is overwritten or torn.
    ///
    /// # Errors
    /// A tail, head or sequence number at or above [`MAX_POSITION`]: the
    /// controls are damaged, and the ring cannot be continued.
    pub fn attach<M: RingMem>(
        mem: &M,
        ctl: &RingCtl<'_>,
        overwrite: bool,
    ) -> Result<Writer, &'static str> {
        let cap = mem.capacity();
        let mask = cap - 1;
        // Acquire: pairs with the Release stores of `tail` / `next_seq` in
        // `publish_progress` (a previous owner's records before `tail` are
        // complete; the slot claim's AcqRel CAS already orders them).
        let tail = ctl.tail.load(Ordering::Acquire);
        let seq = ctl.next_seq.load(Ordering::Acquire);
        // Relaxed: only this producer writes `head`; the previous owner's
        // last store is ordered before us by the slot claim's AcqRel CAS.
        let head = ctl.head.load(Ordering::Relaxed);
        if tail >= MAX_POSITION || seq >= MAX_POSITION || head >= MAX_POSITION {
            return Err("producer position or sequence out of range");
        }
        if tail % ALIGN != 0 {
            return Err("producer position not on a record boundary");
        }
        // Records committed but not yet published as the tail (progress is
        // published once per chunk: see `commit`).
        let walked = walk(mem, tail, seq, None);
        let (tail, seq) = (walked.tail, walked.seq);
        // The previous producer may have cleared or half-written the header
        // at the tail; make sure it does not carry this position's stamp.
        // Relaxed: published by the Release stores of `publish_progress`
        // below and of the next commit stamp.
        mem.word(tail & mask).store(0, Ordering::Relaxed);
        let chunk_shift = (cap
            / (ctl.checkpoints.len().max(1) as u64)
                .next_power_of_two()
                .min(cap))
        .trailing_zeros();
        let writer = Writer {
            cap,
            mask,
            tail,
            seq,
            overwrite,
            limit: 0,
            published_tail: tail,
            flush_at: next_chunk(tail, chunk_shift),
            last_chunk: u64::MAX,
            chunk_shift,
            max_len: max_payload(cap),
        };
        if overwrite {
            // Readers must treat everything up to the old head as possibly
            // rewritten; keep head monotonic. Relaxed: the Release fence
            // after the next `head` store in `reserve` orders it for readers.
            ctl.head.store(head.max(tail + HEADER), Ordering::Relaxed);
        }
        publish_progress(ctl, tail, seq);
        Ok(writer)
    }

    /// Lowers the largest payload [`reserve`](Self::reserve) accepts (a
    /// bus keeping history reserves part of the ring: see [`limit`]).
    pub fn with_max_payload(mut self, max: u64) -> Writer {
        self.max_len = max.min(max_payload(self.cap));
        self
    }

    /// Sequence number of the next record (also the number of records
    /// ever committed on this ring).
    #[inline]
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    #[cfg(loom)]
    /// Ring mask (`cap - 1`).
    pub fn mask(&self) -> u64 {
        self.mask
    }

    /// Reserves a record of `len` payload bytes. `limit` is asked (Block
    /// policy only) for the highest writable position when the cached one
    /// is not enough: `min(cursor) + cap`, or `tail + cap` with no readers.
    ///
    /// A padding record needed to reach the ring's start is committed here.
    pub fn reserve<M: RingMem>(
        &mut self,
        mem: &M,
        ctl: &RingCtl<'_>,
        len: u64,
        limit: impl FnOnce(u64) -> u64,
    ) -> Result<Reservation, ReserveError> {
        if len > self.max_len {
            return Err(ReserveError::TooLarge);
        }
        let size = record_size(len);
        let slot = self.tail & self.mask;
        let pad = if slot + size > self.cap {
            self.cap - slot
        } else {
            0
        };
        // The record, any padding before it, and the next header we clear.
        let end = self.tail + pad + size + HEADER;
        if self.overwrite {
            // Relaxed, then a Release fence: the seqlock's write side. Any
            // reader whose (atomic) loads see a word written after the fence
            // also sees this `head` (pairs with the Acquire fence in
            // `intact`).
            ctl.head.store(end, Ordering::Relaxed);
            fence(Ordering::Release);
        } else if end > self.limit {
            // The join handshake needs the tail published before every
            // limit computation (the SeqCst fence in `limit` follows this
            // store): a joiner that the limit does not see starts at or
            // after this tail (see `join_after`).
            self.flush(ctl);
            self.limit = limit(self.tail);
            if end > self.limit {
                return Err(ReserveError::Full);
            }
        }
        if pad > 0 {
            let pos = self.tail;
            // Relaxed: published by the Release stamp store below.
            mem.word(slot + 8)
                .store((PADDING_TOPIC as u64) << 32, Ordering::Relaxed);
            mem.word(slot + 16).store(0, Ordering::Relaxed);
            mem.word(slot + 24).store(0, Ordering::Relaxed);
            // Clear the header at the ring's start before committing the
            // padding that leads to it.
            mem.word(0).store(0, Ordering::Relaxed);
            // Release: pairs with the Acquire stamp load in `peek`.
            mem.word(slot).store(pos + 1, Ordering::Release);
            self.tail += pad;
            self.flush(ctl);
        }
        Ok(Reservation {
            pos: self.tail,
            len,
        })
    }

    /// Commits a reservation whose payload has been written: fills the
    /// header, clears the next header, stamps the record, publishes the
    /// tail. Returns the record's sequence number.
    pub fn commit<M: RingMem>(
        &mut self,
        mem: &M,
        ctl: &RingCtl<'_>,
        res: Reservation,
        topic: u32,
        timestamp: u64,
    ) -> u64 {
        debug_assert_eq!(res.pos, self.tail);
        let slot = res.pos & self.mask;
        let size = record_size(res.len);
        let seq = self.seq;
        let header = mem.header(slot);
        // Relaxed: published by the Release stamp store below.
        header[1].store(res.len | ((topic as u64) << 32), Ordering::Relaxed);
        header[2].store(seq, Ordering::Relaxed);
        header[3].store(timestamp, Ordering::Relaxed);
        // The next record's header must not carry a stale stamp when a
        // reader reaches it (it is inside the reservation: `end` included it).
        mem.word((res.pos + size) & self.mask)
            .store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire stamp load in `peek`. A plain
        // store, not a locked one: the line is usually being polled by a
        // reader, and a locked op would stall until it is owned again.
        header[0].store(res.pos + 1, Ordering::Release);
        self.tail = res.pos + size;
        self.seq += 1;
        // Checkpoint the first record starting in each 1/n-th of the ring
        // (n = number of checkpoints, a power of two: 64 in the bus).
        let chunk = res.pos >> self.chunk_shift;
        if chunk != self.last_chunk {
            self.last_chunk = chunk;
            let n = ctl.checkpoints.len();
            if n > 0 {
                // Release: pairs with the Acquire load in `resync`; the stamp
                // stored above is then visible too.
                ctl.checkpoints[chunk as usize & (n - 1)].store(res.pos, Ordering::Release);
            }
        }
        // Progress (tail, next_seq) is published when the tail enters a new
        // 1/n-th of the ring, not on every record, so the published tail
        // always trails the true one by less than `cap / n`; readers that
        // need the true tail walk the stamps forward from it ([`walk`]).
        if self.tail >= self.flush_at {
            self.flush(ctl);
        }
        seq
    }

    /// Publishes the tail and next sequence number in the ring's controls
    /// if they moved since last published. [`commit`](Self::commit) does so
    /// once per 1/n-th of the ring (n checkpoints), [`reserve`](Self::reserve) before it
    /// computes a limit; call it when the producer stops publishing (the
    /// bus's `Publisher` does on drop), so the controls say where it ended
    /// without a walk.
    #[inline]
    pub fn flush(&mut self, ctl: &RingCtl<'_>) {
        if self.published_tail != self.tail {
            self.published_tail = self.tail;
            self.flush_at = next_chunk(self.tail, self.chunk_shift);
            publish_progress(ctl, self.tail, self.seq);
        }
    }

    /// Whether the controls hold this writer's current tail (the last
    /// [`commit`](Self::commit) or [`reserve`](Self::reserve) published it).
    #[inline]
    pub fn is_flushed(&self) -> bool {
        self.published_tail == self.tail
    }

    /// The position where the next record will start.
    #[inline]
    pub fn tail(&self) -> u64 {
        self.tail
    }
}

/// Where the 1/n-th of the ring after the one holding `pos` begins
/// (`chunk_shift` = log2 of its size).
fn next_chunk(pos: u64, chunk_shift: u32) -> u64 {
    ((pos >> chunk_shift) + 1) << chunk_shift
}

/// Where [`walk`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    /// One past the last committed record found (a record boundary).
    pub tail: u64,
    /// The sequence number the next record will carry.
    pub seq: u64,
    /// Records walked over (padding not counted).
    pub records: u64,
    /// Timestamp of the last record walked over, if any.
    pub last_timestamp: Option<u64>,
}

/// From a published `(tail, seq)` (a producer's controls, which trail its
/// records by less than 1/64 of the ring: see [`Writer::commit`]), walks the
/// commit stamps forward to one past the last committed record. Stops at
/// the first position that holds no complete record, at damage ([`peek`]
/// validates every header), at [`MAX_POSITION`], or after a ring's worth
/// of records. `head` as for [`peek`] (Overwrite policy: a record lapped
/// while walked ends the walk).
pub fn walk<M: RingMem>(mem: &M, tail: u64, seq: u64, head: Option<&AtomicU64>) -> Walked {
    let mut w = Walked {
        tail,
        seq,
        records: 0,
        last_timestamp: None,
    };
    for _ in 0..(mem.capacity() / ALIGN) {
        let next = match peek(mem, w.tail, head) {
            Peek::Record(view) => {
                if view.seq >= MAX_POSITION {
                    break; // damaged: the next write goes here
                }
                w.seq = view.seq + 1;
                w.records += 1;
                w.last_timestamp = Some(view.timestamp);
                view.next
            }
            Peek::Padding { next } => next,
            Peek::Empty | Peek::Lagged | Peek::Corrupt(_) => break,
        };
        if next >= MAX_POSITION {
            break;
        }
        w.tail = next;
    }
    w
}

/// Publishes the producer's progress under the `progress` seqlock (one
/// writer: the producer owning the ring).
fn publish_progress(ctl: &RingCtl<'_>, tail: u64, seq: u64) {
    let g = ctl.progress.load(Ordering::Relaxed);
    // Odd: an update is under way.
    ctl.progress.store(g | 1, Ordering::Relaxed);
    // Release fence: a reader that sees either store below also sees the
    // odd generation (pairs with the Acquire fence in `snapshot`).
    fence(Ordering::Release);
    // Release: pairs with Acquire loads of `tail` by readers that only need
    // the tail (introspection, `attach`, `resync`).
    ctl.tail.store(tail, Ordering::Release);
    ctl.next_seq.store(seq, Ordering::Release);
    // Release: pairs with the Acquire load of `progress` in `snapshot`.
    ctl.progress
        .store((g | 1).wrapping_add(1), Ordering::Release);
}

/// A consistent `(tail, next_seq)`: the position where the next record
/// will start and the sequence number it will carry. If the producer died
/// in the middle of an update (the generation stays odd), gives up after a
/// bounded number of tries and returns the words as they are.
pub fn snapshot(ctl: &RingCtl<'_>) -> (u64, u64) {
    for _ in 0..10_000 {
        // Acquire: pairs with the final Release store in `publish_progress`.
        let g1 = ctl.progress.load(Ordering::Acquire);
        let tail = ctl.tail.load(Ordering::Relaxed);
        let seq = ctl.next_seq.load(Ordering::Relaxed);
        // Acquire fence: pairs with the Release fence in `publish_progress`.
        fence(Ordering::Acquire);
        let g2 = ctl.progress.load(Ordering::Relaxed);
        if g1 == g2 && g1 & 1 == 0 {
            return (tail, seq);
        }
        crate::sync::spin_loop();
    }
    (
        ctl.tail.load(Ordering::Acquire),
        ctl.next_seq.load(Ordering::Acquire),
    )
}

/// What a reader finds at its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// No complete record there yet.
    Empty,
    /// A record.
    Record(RecordView),
    /// A padding record: continue at `next`.
    Padding {
        /// The next lap's start.
        next: u64,
    },
    /// Overwrite policy: the producer has reused the bytes at the cursor.
    Lagged,
    /// The header fails validation.
    Corrupt(&'static str),
}

/// A complete record's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView {
    /// Position of the record.
    pub pos: u64,
    /// Position of the next record.
    pub next: u64,
    /// Payload length.
    pub len: u64,
    /// Topic id.
    pub topic: u32,
    /// Sequence number.
    pub seq: u64,
    /// Timestamp.
    pub timestamp: u64,
}

impl RecordView {
    /// Ring offset of the payload.
    pub fn payload_slot(&self, mask: u64) -> u64 {
        (self.pos + HEADER) & mask
    }
}

/// Reads the header at `cursor`. `head` is `Some` in Overwrite policy.
///
/// Every word it returns that sizes or indexes has been checked: the
/// length against the ring, the record against the ring's end, the cursor
/// against [`MAX_POSITION`] and the record alignment. The topic id is not
/// checked against the topic table (the caller does that), and the
/// sequence number is any `u64` (callers do wrapping arithmetic on it).
#[inline]
pub fn peek<M: RingMem>(mem: &M, cursor: u64, head: Option<&AtomicU64>) -> Peek {
    // One test for both kinds of damage: a position at or above
    // `MAX_POSITION`, or off a record boundary.
    if cursor & !(MAX_POSITION - ALIGN) != 0 {
        return Peek::Corrupt("ring position out of range or off a record boundary");
    }
    let cap = mem.capacity();
    let slot = cursor & (cap - 1);
    // Acquire: pairs with the stamp store in `commit` / `reserve`; the
    // header words and payload written before it are visible.
    let header = mem.header(slot);
    let stamp = header[0].load(Ordering::Acquire);
    if stamp != cursor + 1 {
        if let Some(head) = head {
            // Relaxed: only a hint that we were lapped; `resync` and the
            // `peek` it makes validate whatever it leads to.
            if head.load(Ordering::Relaxed) > cursor + cap {
                return Peek::Lagged;
            }
        }
        return Peek::Empty;
    }
    // Relaxed: ordered after the stamp's Acquire load (Block), and
    // validated by `intact` (Overwrite).
    let w1 = header[1].load(Ordering::Relaxed);
    let seq = header[2].load(Ordering::Relaxed);
    let timestamp = header[3].load(Ordering::Relaxed);
    if let Some(head) = head {
        if !intact(head, cursor, cap) {
            return Peek::Lagged;
        }
    }
    let (len, topic) = (w1 & 0xffff_ffff, (w1 >> 32) as u32);
    if topic == PADDING_TOPIC {
        if slot == 0 {
            return Peek::Corrupt("padding record at the start of a lap");
        }
        return Peek::Padding {
            next: cursor + (cap - slot),
        };
    }
    if len > max_payload(cap) {
        return Peek::Corrupt("record length beyond the ring's maximum");
    }
    let size = record_size(len);
    if slot + size > cap {
        return Peek::Corrupt("record crosses the end of the ring");
    }
    Peek::Record(RecordView {
        pos: cursor,
        next: cursor + size,
        len,
        topic,
        seq,
        timestamp,
    })
}

/// Overwrite policy: whether bytes of the record at `pos` read so far (with
/// atomic loads: [`copy_out`], the header words in [`peek`]) are still the
/// record's — no byte of it has been reused by the producer.
#[inline]
pub fn intact(head: &AtomicU64, pos: u64, cap: u64) -> bool {
    // Acquire fence: pairs with the Release fence in `reserve`. If any word
    // loaded before this fence was stored after the producer's fence, the
    // `head` the producer stored before its fence is visible to the load
    // below (fence-to-fence synchronisation), so the check fails.
    fence(Ordering::Acquire);
    // Relaxed: ordered by the fence above.
    head.load(Ordering::Relaxed) <= pos.saturating_add(cap)
}

/// Overwrite policy: a record boundary to continue at after being lapped —
/// the oldest checkpointed record that is still intact, leaving a quarter
/// of the ring as margin, else the tail.
pub fn resync<M: RingMem>(mem: &M, ctl: &RingCtl<'_>) -> u64 {
    let cap = mem.capacity();
    for _ in 0..8 {
        // Relaxed: a bound for choosing a candidate; the candidate is then
        // validated by `peek` (stamp, then `intact`) in `oldest_start`.
        let h = ctl.head.load(Ordering::Relaxed);
        if let Some(pos) = oldest_start(mem, ctl, h, cap - cap / 4, Some(ctl.head)) {
            return pos;
        }
    }
    // The published tail is always a record boundary; the walk moves it to
    // the producer's true tail.
    let (tail, seq) = snapshot(ctl);
    walk(mem, tail, seq, Some(ctl.head)).tail
}

/// The slot-state word of a subscriber that the producer counts in
/// [`limit`]: `SLOT_ACTIVE` in the top two bits (see `slots`).
#[inline]
fn counts(state: u64) -> bool {
    crate::slots::slot_state(state) == crate::slots::SLOT_ACTIVE
}

/// Block policy: the highest position a producer whose tail is `tail` may
/// write — the slowest active reader's cursor plus the ring — or
/// `tail + cap` when no reader is active. `readers` yields each reader
/// slot's `(state, cursor)` words.
///
/// A cursor outside `[tail - cap, tail]` cannot be a live reader's (the
/// producer never gets more than a ring ahead of one, and a reader never
/// passes the tail): it is clamped into that range, so a damaged word can
/// make the producer wait (a live reader publishes its cursor again) but
/// never lets it overwrite unread bytes of a reader it saw.
///
/// `history` bytes (a multiple of 32, at most `cap / 4`) are kept back: the
/// producer never overwrites a position at or above `min(cursor, tail) -
/// history`, so a reader joining at tail `T` may start as far back as
/// `T - history` ([`oldest_start`]). The largest record must then be
/// `history` bytes smaller (`Writer::with_max_payload`), so that a record,
/// its padding and the next header still fit in `cap - history`.
pub fn limit<'a>(
    readers: impl IntoIterator<Item = (&'a AtomicU64, &'a AtomicU64)>,
    tail: u64,
    cap: u64,
    history: u64,
) -> u64 {
    // SeqCst fence: the producer side of the join handshake (a store-
    // buffering pattern). Pairs with the SeqCst fence in `join`: either
    // this producer's tail store (made before this fence, in
    // `publish_progress`) is visible to the joiner's tail load after its
    // fence, or the joiner's ACTIVE store is visible to the state loads
    // below. Without both fences both loads may miss (x86 store buffers).
    fence(Ordering::SeqCst);
    let mut min = u64::MAX;
    for (state, cursor) in readers {
        // Acquire: pairs with the joiner's SeqCst (hence Release) ACTIVE
        // store; the cursor it stored before is visible.
        if counts(state.load(Ordering::Acquire)) {
            // Acquire: pairs with the reader's Release cursor store (in
            // `join` and `Subscriber::publish_cursor`): the bytes before the
            // cursor have been read.
            let c = cursor.load(Ordering::Acquire);
            min = min.min(c.clamp(tail.saturating_sub(cap), tail));
        }
    }
    if min == u64::MAX { tail } else { min }
        .saturating_add(cap)
        .saturating_sub(history)
}

/// Where a reader that just joined at `tail` (the position [`join_after`]
/// gave) may start to read what is still retained: the oldest checkpointed
/// record at or after `tail - back`, or `None` if there is none.
///
/// Block policy: call with `back` = the bus's `history` (see [`limit`]):
/// positions from `tail - history` on are never overwritten before the
/// producer sees this reader, and after it does, it respects the reader's
/// cursor. Overwrite policy: call with `back` = three quarters of the
/// ring; what is read is validated as always ([`intact`]), and a position
/// lapped meanwhile reads as `Lagged`.
pub fn oldest_start<M: RingMem>(
    mem: &M,
    ctl: &RingCtl<'_>,
    tail: u64,
    back: u64,
    head: Option<&AtomicU64>,
) -> Option<u64> {
    let from = tail.saturating_sub(back);
    ctl.checkpoints
        .iter()
        // Acquire: pairs with the Release store in `commit`.
        .map(|c| c.load(Ordering::Acquire))
        .filter(|&c| c >= from && c < tail)
        .filter(|&c| matches!(peek(mem, c, head), Peek::Record(_) | Peek::Padding { .. }))
        .min()
}

/// The join handshake of a reader that starts at the producer's tail, for
/// one ring: what to store as the cursor before going ACTIVE, and the
/// position to start reading from after.
///
/// Protocol (the subscriber does steps 1 and 3 for every producer's ring,
/// step 2 once):
/// 1. `before`: snapshot `(tail, seq)` and store the tail as the cursor;
/// 2. store ACTIVE (SeqCst) and issue [`join_fence`];
/// 3. `after`: snapshot again and, if the tail moved, store it as the cursor.
///
/// A producer that computed its [`limit`] without seeing this reader ACTIVE
/// did so with a tail the `after` snapshot sees (the fences' guarantee),
/// so it never writes past `after`'s tail plus a ring: starting there is
/// safe.
pub fn join_before(ctl: &RingCtl<'_>, cursor: &AtomicU64) -> (u64, u64) {
    let (tail, seq) = snapshot(ctl);
    // Relaxed: published by the SeqCst ACTIVE store that follows.
    cursor.store(tail, Ordering::Relaxed);
    (tail, seq)
}

/// Step 2 of the join handshake, after the SeqCst ACTIVE store.
#[inline]
pub fn join_fence() {
    // SeqCst fence: pairs with the SeqCst fence in `limit` (see there).
    fence(Ordering::SeqCst);
}

/// Step 3 of the join handshake (see [`join_before`]): the `(tail, seq)`
/// to start reading at — the published progress, walked forward over the
/// records committed since ([`walk`]; `head` as for [`peek`]), so that the
/// reader starts after everything committed before it joined.
///
/// Starting anywhere at or after the published tail is safe: the producer
/// publishes its tail before every limit computation ([`Writer::reserve`]),
/// so a limit that did not count this reader was computed with a tail at
/// or before the one read here.
pub fn join_after<M: RingMem>(
    mem: &M,
    ctl: &RingCtl<'_>,
    cursor: &AtomicU64,
    before: (u64, u64),
    head: Option<&AtomicU64>,
) -> (u64, u64) {
    let (tail, seq) = snapshot(ctl);
    let now = walk(mem, tail, seq, head);
    if now.tail != before.0 {
        // Release: pairs with the Acquire cursor load in `limit`.
        cursor.store(now.tail, Ordering::Release);
    }
    (now.tail, now.seq)
}

/// The protocol on heap memory with std threads, as production runs it;
/// also run under Miri (see the file).
#[cfg(test)]
pub(crate) mod tests;
