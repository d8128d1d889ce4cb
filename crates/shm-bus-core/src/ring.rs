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
//! (including the next header it clears), so unread bytes are never reused.
//!
//! **Overwrite policy**: before writing bytes up to position `end`, the
//! producer stores `head = end` and issues a Release fence; a reader checks
//! after reading (Acquire fence, then `head`) that `head <= cursor + cap`,
//! i.e. that nothing it read was reused — the seqlock pattern. A reader that
//! was lapped finds a record boundary again through `checkpoints`: the
//! producer records where the first record starting in each 1/64th of the
//! ring begins.

use crate::sync::{AtomicU64, Ordering, fence};

/// Record header bytes.
pub const HEADER: u64 = 32;
/// Record alignment (and payload alignment).
pub const ALIGN: u64 = 32;
/// `TopicId` value of padding records.
pub const PADDING_TOPIC: u32 = u32::MAX;
/// Number of checkpoints the bus keeps per ring (see the module docs).
pub const CHECKPOINTS: u64 = 64;

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
pub trait RingMem {
    /// Capacity in bytes (a power of two, at least `8 * ALIGN`).
    fn capacity(&self) -> u64;
    /// The 8-byte word at ring offset `slot` (8-aligned, `< capacity`).
    fn word(&self, slot: u64) -> &AtomicU64;
    /// Copies `src` into the ring at offset `slot`.
    ///
    /// # Safety
    /// `slot + src.len() <= capacity`, and the protocol grants the caller
    /// the range (the producer, inside its reservation).
    unsafe fn write(&self, slot: u64, src: &[u8]);
    /// Copies ring bytes at offset `slot` into `dst`.
    ///
    /// # Safety
    /// `slot + dst.len() <= capacity`. In Overwrite policy the bytes may be
    /// concurrently rewritten; the caller validates with [`intact`].
    unsafe fn read(&self, slot: u64, dst: &mut [u8]);
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
    last_chunk: u64,
    /// `log2(cap / number of checkpoints)`.
    chunk_shift: u32,
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
    pub fn attach<M: RingMem>(mem: &M, ctl: &RingCtl<'_>, overwrite: bool) -> Writer {
        let cap = mem.capacity();
        let mask = cap - 1;
        // Acquire: pairs with the Release stores of `tail` / `next_seq` in
        // `commit`, so the records before `tail` are complete.
        let mut tail = ctl.tail.load(Ordering::Acquire);
        let mut seq = ctl.next_seq.load(Ordering::Acquire);
        let head = ctl.head.load(Ordering::Acquire);
        // Walk records committed but not yet published as the tail.
        for _ in 0..(cap / ALIGN) {
            let slot = tail & mask;
            // Acquire: pairs with the commit stamp store.
            if mem.word(slot).load(Ordering::Acquire) != tail + 1 {
                break;
            }
            let w1 = mem.word(slot + 8).load(Ordering::Relaxed);
            let (len, topic) = (w1 & 0xffff_ffff, (w1 >> 32) as u32);
            let size = if topic == PADDING_TOPIC {
                cap - slot
            } else {
                seq = mem.word(slot + 16).load(Ordering::Relaxed) + 1;
                record_size(len)
            };
            if size > cap / 2 && topic != PADDING_TOPIC {
                break; // damaged: stop here, the next write overwrites it
            }
            tail += size;
        }
        // The previous producer may have cleared or half-written the header
        // at the tail; make sure it does not carry this position's stamp.
        mem.word(tail & mask).store(0, Ordering::Relaxed);
        let writer = Writer {
            cap,
            mask,
            tail,
            seq,
            overwrite,
            limit: 0,
            last_chunk: u64::MAX,
            chunk_shift: (cap
                / (ctl.checkpoints.len().max(1) as u64)
                    .next_power_of_two()
                    .min(cap))
            .trailing_zeros(),
        };
        if overwrite {
            // Readers must treat everything up to the old head as possibly
            // rewritten; keep head monotonic.
            ctl.head.store(head.max(tail + HEADER), Ordering::Relaxed);
        }
        publish_progress(ctl, tail, seq);
        writer
    }

    /// The local tail (one past the last committed record).
    pub fn tail(&self) -> u64 {
        self.tail
    }

    /// Sequence number of the next record.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

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
        if len > max_payload(self.cap) {
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
            ctl.head.store(end, Ordering::Relaxed);
            // Release fence: any reader that sees a byte written after this
            // point also sees `head` (pairs with the Acquire fence in
            // `intact`).
            fence(Ordering::Release);
        } else if end > self.limit {
            self.limit = limit(self.tail);
            if end > self.limit {
                return Err(ReserveError::Full);
            }
        }
        if pad > 0 {
            let pos = self.tail;
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
            publish_progress(ctl, self.tail, self.seq);
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
        mem.word(slot + 8)
            .store(res.len | ((topic as u64) << 32), Ordering::Relaxed);
        mem.word(slot + 16).store(seq, Ordering::Relaxed);
        mem.word(slot + 24).store(timestamp, Ordering::Relaxed);
        // The next record's header must not carry a stale stamp when a
        // reader reaches it (it is inside the reservation: `end` included it).
        mem.word((res.pos + size) & self.mask)
            .store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire stamp load in `peek`. A plain
        // store, not a locked one: the line is usually being polled by a
        // reader, and a locked op would stall until it is owned again.
        mem.word(slot).store(res.pos + 1, Ordering::Release);
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
        publish_progress(ctl, self.tail, self.seq);
        seq
    }
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
    ctl.progress.store((g | 1) + 1, Ordering::Release);
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
#[inline]
pub fn peek<M: RingMem>(mem: &M, cursor: u64, head: Option<&AtomicU64>) -> Peek {
    let cap = mem.capacity();
    let slot = cursor & (cap - 1);
    // Acquire: pairs with the stamp store in `commit` / `reserve`; the
    // header words and payload written before it are visible.
    let stamp = mem.word(slot).load(Ordering::Acquire);
    if stamp != cursor.wrapping_add(1) {
        if let Some(head) = head {
            if head.load(Ordering::Acquire) > cursor + cap {
                return Peek::Lagged;
            }
        }
        return Peek::Empty;
    }
    let w1 = mem.word(slot + 8).load(Ordering::Relaxed);
    let seq = mem.word(slot + 16).load(Ordering::Relaxed);
    let timestamp = mem.word(slot + 24).load(Ordering::Relaxed);
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

/// Overwrite policy: whether bytes of the record at `pos` read so far are
/// still the record's (no byte of it has been reused by the producer).
#[inline]
pub fn intact(head: &AtomicU64, pos: u64, cap: u64) -> bool {
    // Acquire fence: pairs with the Release fence in `reserve`; if any byte
    // read before this fence was written after the producer's fence, the
    // load below sees the `head` stored before that fence.
    fence(Ordering::Acquire);
    head.load(Ordering::Relaxed) <= pos + cap
}

/// Overwrite policy: a record boundary to continue at after being lapped —
/// the oldest checkpointed record that is still intact, leaving a quarter
/// of the ring as margin, else the tail.
pub fn resync<M: RingMem>(mem: &M, ctl: &RingCtl<'_>) -> u64 {
    let cap = mem.capacity();
    for _ in 0..8 {
        let h = ctl.head.load(Ordering::Acquire);
        let oldest = h.saturating_sub(cap) + cap / 4;
        let candidate = ctl
            .checkpoints
            .iter()
            // Acquire: pairs with the Release store in `commit`.
            .map(|c| c.load(Ordering::Acquire))
            .filter(|&c| c >= oldest && c < h)
            .min();
        if let Some(pos) = candidate {
            if let Peek::Record(_) | Peek::Padding { .. } = peek(mem, pos, Some(ctl.head)) {
                return pos;
            }
        }
    }
    // The tail is always a record boundary.
    ctl.tail.load(Ordering::Acquire)
}
