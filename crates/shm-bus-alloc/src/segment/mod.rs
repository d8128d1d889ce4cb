//! The segment: one POSIX shared-memory object holding a header and an
//! arena. Split by concern:
//!
//! - [`header`]: the header format, its constants and its validation;
//! - [`name`]: which names are valid and the object name they map to;
//! - [`lifecycle`]: [`SegmentBuilder`], the create/open race and the init
//!   state machine, removal of a segment whose creator died;
//! - [`resolve`]: offsets to references, raw byte ranges ([`RawBytes`]);
//! - [`arena_api`]: [`Arena`] and [`Initializer`], the allocation API.
//!
//! This file holds the [`Segment`] handle itself and its accessors.

use std::fs::File;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memmap2::MmapRaw;

use crate::arena::{self, ArenaCore};
use crate::liveness::{OsOwners, ProcessId};
use crate::offset::Offset;

mod arena_api;
mod header;
mod lifecycle;
mod name;
mod resolve;

pub use arena_api::{Arena, Initializer};
use header::Header;
pub use header::{
    CONFIG_CAPACITY, DEFAULT_OPEN_TIMEOUT, HEADER_SIZE, LAYOUT_VERSION, MAGIC, MIN_SEGMENT_SIZE,
    ROOT_SLOTS, STATE_INITIALIZING, STATE_READY, STATE_UNINIT, layout,
};
pub use lifecycle::SegmentBuilder;
pub use name::validate_name;
pub use resolve::RawBytes;

/// Where the arena heap starts: after the control block, 64-aligned.
fn heap_start(arena_offset: u64) -> u64 {
    arena_offset + arena::CONTROL_BYTES.next_multiple_of(64)
}

/// A mapped, validated shm-bus segment. Owns the mapping; `Send + Sync`.
///
/// Dropping it unmaps the segment but does not remove it (see
/// [`Segment::unlink`]).
pub struct Segment {
    name: String,
    os_name: String,
    _file: File,
    map: MmapRaw,
    size: u64,
    arena_offset: u64,
    creator: ProcessId,
    created_at_ns: u64,
    layout_version: u32,
    config: Vec<u8>,
    roots: [u64; ROOT_SLOTS],
    is_creator: bool,
}

// The handle is shared across threads by core (`Send + Sync`).
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Segment>();
    assert_send_sync::<Arena<'static>>();
};

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("creator", &self.creator)
            .field("layout_version", &self.layout_version)
            .field("config_len", &self.config.len())
            .finish_non_exhaustive()
    }
}

impl Segment {
    fn header(&self) -> &Header {
        // SAFETY: every Segment maps at least HEADER_SIZE bytes (checked in
        // create/open); Header is ShmSafe; the mapping lives as long as self.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    pub(crate) fn arena_core(&self) -> ArenaCore<'_, Segment, OsOwners> {
        ArenaCore {
            mem: self,
            ctl: self.arena_offset,
            owners: &OsOwners,
        }
    }

    /// The bus name given at creation (without the `/shm-bus.` prefix).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The shared-memory object name, `/shm-bus.<name>`.
    pub fn os_name(&self) -> &str {
        &self.os_name
    }
    /// Size of the segment in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Whether this handle created the segment (as opposed to opening it).
    pub fn is_creator(&self) -> bool {
        self.is_creator
    }
    /// The process that created the segment.
    pub fn creator(&self) -> ProcessId {
        self.creator
    }
    /// When the segment was created.
    pub fn created_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.created_at_ns)
    }
    /// The segment's layout version (equal to [`LAYOUT_VERSION`] once open).
    pub fn layout_version(&self) -> u32 {
        self.layout_version
    }
    /// The configuration bytes given at creation.
    pub fn config(&self) -> &[u8] {
        &self.config
    }
    /// Root slot `index` as set by the creator's init closure, or `None`
    /// when unset or out of range.
    pub fn root<T>(&self, index: usize) -> Option<Offset<T>> {
        self.roots
            .get(index)
            .copied()
            .filter(|&v| v != 0)
            .map(Offset::new)
    }
    /// The arena of this segment.
    pub fn arena(&self) -> Arena<'_> {
        Arena { seg: self }
    }
    /// `[start, end)` of the arena region (control block and heap).
    pub fn arena_range(&self) -> (u64, u64) {
        (self.arena_offset, self.size)
    }
}
