//! The floors in an `shm-bus-alloc` [`Segment`], behind safe constructors
//! (feature `segment`; what `shm-bus bench` uses).
//!
//! A floor segment holds one floor in a zeroed, page-aligned arena block
//! (root slot 0). Its kind and, for a ring, its layout are stored in the
//! segment's configuration bytes at creation, so every opener uses the
//! creator's layout. The creator is the ring's one producer (or the
//! ping-pong's [`Side::Ping`]); openers are consumers (or [`Side::Echo`]).
//! The handles own their [`Segment`], which keeps the mapping alive;
//! removing the name (`Segment::unlink`) is the caller's business.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use shm_bus_alloc::{Offset, Segment};

use crate::{AttachError, Consumer, LayoutError, PING_PONG_BYTES, PingPong, Producer, RingLayout};
use crate::{LINES_PING_PONG_BYTES, LinesPingPong};
use crate::{Side, ring::HEADS_BYTES};

/// Configuration tag of a ring segment, followed by `size`, `ring_bytes`
/// and `consumers` (little-endian u64s).
const RING_TAG: &[u8; 16] = b"shm-bus-floor/r1";
/// Configuration tag of a ping-pong segment.
const PING_PONG_TAG: &[u8; 16] = b"shm-bus-floor/p1";
/// Configuration tag of a lines ping-pong segment.
const LINES_TAG: &[u8; 16] = b"shm-bus-floor/l1";

/// Why a floor segment could not be created or opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum SegmentError {
    /// Creating, opening or allocating in the segment failed (it does not
    /// exist, already exists, is damaged, …).
    Segment(shm_bus_alloc::Error),
    /// The layout asked for (or stored in the segment) is impossible.
    Layout(LayoutError),
    /// The handle could not be made over the segment's memory.
    Attach(AttachError),
    /// The segment does not hold this kind of floor.
    WrongKind {
        /// The segment's name.
        name: String,
    },
}

impl fmt::Display for SegmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentError::Segment(e) => write!(f, "floor segment: {e}"),
            SegmentError::Layout(e) => e.fmt(f),
            SegmentError::Attach(e) => e.fmt(f),
            SegmentError::WrongKind { name } => {
                write!(f, "segment {name:?} does not hold this kind of floor")
            }
        }
    }
}

impl std::error::Error for SegmentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SegmentError::Segment(e) => Some(e),
            SegmentError::Layout(e) => Some(e),
            SegmentError::Attach(e) => Some(e),
            SegmentError::WrongKind { .. } => None,
        }
    }
}

impl From<shm_bus_alloc::Error> for SegmentError {
    fn from(e: shm_bus_alloc::Error) -> Self {
        SegmentError::Segment(e)
    }
}

impl From<LayoutError> for SegmentError {
    fn from(e: LayoutError) -> Self {
        SegmentError::Layout(e)
    }
}

impl From<AttachError> for SegmentError {
    fn from(e: AttachError) -> Self {
        SegmentError::Attach(e)
    }
}

/// Creates segment `name` holding a ring of `size`-byte messages in about
/// `ring_bytes` of slots for `consumers` consumers (see [`RingLayout::new`]),
/// and returns its producer.
pub fn create_ring(
    name: &str,
    size: usize,
    ring_bytes: u64,
    consumers: usize,
) -> Result<Producer<Segment>, SegmentError> {
    let layout = RingLayout::new(size, ring_bytes, consumers)?;
    let mut config = RING_TAG.to_vec();
    for v in [size as u64, ring_bytes, consumers as u64] {
        config.extend_from_slice(&v.to_le_bytes());
    }
    let seg = create(name, layout.bytes(), &config)?;
    let (base, len) = region(&seg, layout.bytes())?;
    // SAFETY: `base..base + len` is the floor's block in `seg`'s mapping,
    // valid for reads and writes while `seg` (the owner) lives. The
    // segment was just created (O_EXCL) and zeroed for this ring; its
    // configuration makes every opener use this layout, and openers only
    // make consumers (`open_ring`), so this is its one producer.
    Ok(unsafe { Producer::new(base, len, layout, seg)? })
}

/// Opens the ring segment `name` (made by [`create_ring`]) as its
/// consumer `index`.
pub fn open_ring(name: &str, index: usize) -> Result<Consumer<Segment>, SegmentError> {
    let seg = Segment::open(name)?;
    let config = seg.config();
    let wrong = || SegmentError::WrongKind {
        name: name.to_owned(),
    };
    let params = config.strip_prefix(RING_TAG).ok_or_else(wrong)?;
    if params.len() != 24 {
        return Err(wrong());
    }
    let at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&params[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    let size = usize::try_from(at(0)).map_err(|_| LayoutError::TooLarge)?;
    let consumers = usize::try_from(at(2)).map_err(|_| LayoutError::TooLarge)?;
    let layout = RingLayout::new(size, at(1), consumers)?;
    let (base, len) = region(&seg, layout.bytes())?;
    // SAFETY: `base..base + len` lies in `seg`'s mapping (bounds checked by
    // `region`), valid while `seg` (the owner) lives; the creator laid out
    // and zeroed this ring with the layout read back from the segment's
    // configuration, and is its only producer.
    Ok(unsafe { Consumer::new(base, len, layout, index, seg)? })
}

/// Creates segment `name` holding a ping-pong, and returns its
/// [`Side::Ping`] end.
pub fn create_ping_pong(name: &str) -> Result<PingPong<Segment>, SegmentError> {
    let seg = create(name, PING_PONG_BYTES, PING_PONG_TAG)?;
    ping_pong(seg, Side::Ping)
}

/// Opens the ping-pong segment `name` (made by [`create_ping_pong`]) as
/// its [`Side::Echo`] end.
pub fn open_ping_pong(name: &str) -> Result<PingPong<Segment>, SegmentError> {
    let seg = Segment::open(name)?;
    if seg.config() != PING_PONG_TAG {
        return Err(SegmentError::WrongKind {
            name: name.to_owned(),
        });
    }
    ping_pong(seg, Side::Echo)
}

/// Creates segment `name` holding a [`LinesPingPong`], and returns its
/// [`Side::Ping`] end, moving `lines` lines per message.
pub fn create_lines_ping_pong(
    name: &str,
    lines: usize,
) -> Result<LinesPingPong<Segment>, SegmentError> {
    let seg = create(name, LINES_PING_PONG_BYTES, LINES_TAG)?;
    lines_ping_pong(seg, Side::Ping, lines)
}

/// Opens the segment `name` made by [`create_lines_ping_pong`] as its
/// [`Side::Echo`] end, moving `lines` lines per message.
pub fn open_lines_ping_pong(
    name: &str,
    lines: usize,
) -> Result<LinesPingPong<Segment>, SegmentError> {
    let seg = Segment::open(name)?;
    if seg.config() != LINES_TAG {
        return Err(SegmentError::WrongKind {
            name: name.to_owned(),
        });
    }
    lines_ping_pong(seg, Side::Echo, lines)
}

fn lines_ping_pong(
    seg: Segment,
    side: Side,
    lines: usize,
) -> Result<LinesPingPong<Segment>, SegmentError> {
    let (base, len) = region(&seg, LINES_PING_PONG_BYTES)?;
    // SAFETY: `base..base + len` lies in `seg`'s mapping, valid while `seg`
    // (the owner) lives; the block was zeroed at creation and is only ever
    // accessed through `LinesPingPong`s, which make atomic accesses only.
    Ok(unsafe { LinesPingPong::new(base, len, side, lines, seg)? })
}

fn ping_pong(seg: Segment, side: Side) -> Result<PingPong<Segment>, SegmentError> {
    let (base, len) = region(&seg, PING_PONG_BYTES)?;
    // SAFETY: `base..base + len` lies in `seg`'s mapping, valid while `seg`
    // (the owner) lives; the block was zeroed at creation and is only ever
    // accessed through `PingPong`s, which make atomic accesses only.
    Ok(unsafe { PingPong::new(base, len, side, seg)? })
}

/// Creates segment `name` with a zeroed, page-aligned block of `len` bytes
/// at root 0.
fn create(name: &str, len: usize, config: &[u8]) -> Result<Segment, SegmentError> {
    let block = len.next_multiple_of(HEADS_BYTES) as u64;
    let seg = Segment::builder(name)
        .size(block + (1 << 20))
        .config(config)
        .create(|init| {
            let off = init.arena().alloc(block, HEADS_BYTES as u64)?;
            // Zero the block (the arena hands out garbage).
            let words: &[AtomicU64] = init
                .segment()
                .resolve_slice(Offset::new(off.get()), block / 8)?;
            for w in words {
                // Relaxed: nobody else sees the segment before `create`
                // publishes it as Ready, which orders these stores before
                // any opener's accesses.
                w.store(0, Ordering::Relaxed);
            }
            init.set_root(0, off)
        })?;
    Ok(seg)
}

/// The floor's block in `seg`: its base and `len`, bounds-checked.
fn region(seg: &Segment, len: usize) -> Result<(NonNull<u8>, usize), SegmentError> {
    let off = seg.root::<u8>(0).ok_or(shm_bus_alloc::Error::Corrupt {
        what: "floor segment root",
    })?;
    let bytes = seg.bytes(off, len as u64)?;
    let base = NonNull::new(bytes.as_ptr()).ok_or(shm_bus_alloc::Error::Corrupt {
        what: "floor segment mapping",
    })?;
    Ok((base, bytes.len()))
}
