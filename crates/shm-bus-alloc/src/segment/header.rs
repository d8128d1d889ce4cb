//! The header format (the first page of every segment): its constants,
//! field layout, checksum, and the checks an opener applies to it.
//!
//! Writing the header and publishing `init_state` belong to the init state
//! machine in [`super::lifecycle`]; this file only knows what the fields are
//! and what valid values look like.

use std::mem::offset_of;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::liveness::ProcessId;
use crate::offset::ShmSafe;
use crate::os;

/// Magic number at offset 0 of every segment: the bytes `"SHM-BUS\x01"`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHM-BUS\x01");
/// Layout version this build reads and writes. Bumped on any change to the
/// header, the arena control block, block headers or the `ByteMap` layout.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes reserved for the header (the first page).
pub const HEADER_SIZE: u64 = 4096;
/// Maximum bytes of user configuration stored in the header.
pub const CONFIG_CAPACITY: usize = 256;
/// Number of root slots in the header.
pub const ROOT_SLOTS: usize = 16;
/// Smallest segment `create` accepts.
pub const MIN_SEGMENT_SIZE: u64 = 16 * 1024;
/// Default bound on how long `open` waits for a segment being initialised.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(3);

/// `init_state`: the object exists but the creator has not started writing
/// the header (fresh `ftruncate` zeroes).
pub const STATE_UNINIT: u32 = 0;
/// `init_state`: creator identity, magic and version are written; the
/// arena and the user's structures are being initialised.
pub const STATE_INITIALIZING: u32 = 0x1A17_0001;
/// `init_state`: fully initialised; published with Release.
pub const STATE_READY: u32 = 0x1A17_00FF;

/// The header, at offset 0. All fields are atomics so that a racing reader
/// (an opener polling a segment under construction) never performs a data
/// race; they are written once, before `init_state` becomes Ready, except
/// `init_state` itself.
#[repr(C)]
pub(crate) struct Header {
    pub(super) magic: AtomicU64,
    layout_version: AtomicU32,
    header_size: AtomicU32,
    segment_size: AtomicU64,
    pub(super) init_state: AtomicU32,
    flags: AtomicU32,
    creator_pid: AtomicU32,
    creator_reserved: AtomicU32,
    creator_start_time: AtomicU64,
    created_at_ns: AtomicU64,
    arena_offset: AtomicU64,
    arena_size: AtomicU64,
    config_len: AtomicU32,
    reserved0: AtomicU32,
    config: [AtomicU8; CONFIG_CAPACITY],
    roots: [AtomicU64; ROOT_SLOTS],
    checksum: AtomicU64,
    reserved: [AtomicU64; 453],
}
crate::assert_layout!(Header, size = 4096, align = 8);
// SAFETY: repr(C), atomics only, no implicit padding (the size assertion
// above equals the sum of the fields), every bit pattern valid.
unsafe impl ShmSafe for Header {}

/// Byte offsets of the header fields, for tools that dump a segment (and
/// tests that damage one on purpose). See the crate docs for the table.
pub mod layout {
    use super::*;
    /// `u64` magic, [`MAGIC`].
    pub const MAGIC: usize = offset_of!(Header, magic);
    /// `u32` layout version, [`LAYOUT_VERSION`].
    pub const LAYOUT_VERSION: usize = offset_of!(Header, layout_version);
    /// `u32` header size, [`HEADER_SIZE`].
    pub const HEADER_SIZE: usize = offset_of!(Header, header_size);
    /// `u64` segment size in bytes.
    pub const SEGMENT_SIZE: usize = offset_of!(Header, segment_size);
    /// `u32` init state.
    pub const INIT_STATE: usize = offset_of!(Header, init_state);
    /// `u32` flags, `0`.
    pub const FLAGS: usize = offset_of!(Header, flags);
    /// `u32` creator pid.
    pub const CREATOR_PID: usize = offset_of!(Header, creator_pid);
    /// `u64` creator start time (clock ticks after boot).
    pub const CREATOR_START_TIME: usize = offset_of!(Header, creator_start_time);
    /// `u64` creation time, ns since the Unix epoch.
    pub const CREATED_AT: usize = offset_of!(Header, created_at_ns);
    /// `u64` offset of the arena control block.
    pub const ARENA_OFFSET: usize = offset_of!(Header, arena_offset);
    /// `u64` bytes from the arena offset to the end of the segment.
    pub const ARENA_SIZE: usize = offset_of!(Header, arena_size);
    /// `u32` length of the user configuration.
    pub const CONFIG_LEN: usize = offset_of!(Header, config_len);
    /// `[u8; 256]` user configuration.
    pub const CONFIG: usize = offset_of!(Header, config);
    /// `[u64; 16]` root offsets (`0` = unset).
    pub const ROOTS: usize = offset_of!(Header, roots);
    /// `u64` FNV-1a checksum of every field above except `init_state`.
    pub const CHECKSUM: usize = offset_of!(Header, checksum);
}

/// FNV-1a, 64 bit.
fn fnv1a(bytes: impl IntoIterator<Item = u8>, seed: u64) -> u64 {
    let mut h = seed;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
const FNV_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// The header fields an opener keeps, once [`Header::validate`] accepted
/// them.
pub(super) struct ValidHeader {
    pub(super) creator: ProcessId,
    pub(super) created_at_ns: u64,
    pub(super) layout_version: u32,
    pub(super) arena_offset: u64,
    pub(super) config: Vec<u8>,
    pub(super) roots: [u64; ROOT_SLOTS],
}

impl Header {
    /// Checksum over the immutable fields (everything but `init_state` and
    /// the checksum itself).
    fn compute_checksum(&self) -> u64 {
        let r = Ordering::Relaxed;
        let mut words = vec![
            self.magic.load(r),
            self.layout_version.load(r) as u64,
            self.header_size.load(r) as u64,
            self.segment_size.load(r),
            self.flags.load(r) as u64,
            self.creator_pid.load(r) as u64,
            self.creator_reserved.load(r) as u64,
            self.creator_start_time.load(r),
            self.created_at_ns.load(r),
            self.arena_offset.load(r),
            self.arena_size.load(r),
            self.config_len.load(r) as u64,
            self.reserved0.load(r) as u64,
        ];
        words.extend(self.roots.iter().map(|x| x.load(r)));
        let h = fnv1a(words.iter().flat_map(|w| w.to_le_bytes()), FNV_SEED);
        fnv1a(self.config.iter().map(|b| b.load(r)), h)
    }

    /// The creator's identity as recorded (valid once Initializing).
    pub(super) fn creator(&self) -> ProcessId {
        ProcessId {
            pid: self.creator_pid.load(Ordering::Relaxed),
            reserved: 0,
            start_time: self.creator_start_time.load(Ordering::Relaxed),
        }
    }

    /// Writes every field but `init_state` for a fresh segment of `size`
    /// bytes created by `creator` (roots and checksum zero until Ready).
    ///
    /// All stores are Relaxed: they are published by the Release store of
    /// `init_state` that follows them in `create_inner`.
    pub(super) fn write_fields(
        &self,
        size: u64,
        arena_offset: u64,
        creator: ProcessId,
        created_at_ns: u64,
        config: &[u8],
    ) {
        let r = Ordering::Relaxed;
        self.magic.store(MAGIC, r);
        self.layout_version.store(LAYOUT_VERSION, r);
        self.header_size.store(HEADER_SIZE as u32, r);
        self.segment_size.store(size, r);
        self.flags.store(0, r);
        self.creator_pid.store(creator.pid, r);
        self.creator_reserved.store(0, r);
        self.creator_start_time.store(creator.start_time, r);
        self.created_at_ns.store(created_at_ns, r);
        self.arena_offset.store(arena_offset, r);
        self.arena_size.store(size - arena_offset, r);
        self.config_len.store(config.len() as u32, r);
        self.reserved0.store(0, r);
        for (i, b) in self.config.iter().enumerate() {
            b.store(config.get(i).copied().unwrap_or(0), r);
        }
        for root in &self.roots {
            root.store(0, r);
        }
        self.checksum.store(0, r);
        for w in &self.reserved {
            w.store(0, r);
        }
    }

    /// Records the roots set by the init closure and seals the header with
    /// its checksum. Relaxed: published by the Release store of Ready that
    /// follows in `create_inner`.
    pub(super) fn write_roots_and_checksum(&self, roots: [u64; ROOT_SLOTS]) {
        let r = Ordering::Relaxed;
        for (slot, v) in self.roots.iter().zip(roots) {
            slot.store(v, r);
        }
        self.checksum.store(self.compute_checksum(), r);
    }

    /// Checks every field of a Ready header of an object of `size` bytes
    /// and its checksum; returns what the segment handle keeps.
    ///
    /// Relaxed loads: the caller saw Ready with an Acquire load, which makes
    /// every field written before it visible.
    pub(super) fn validate(&self, size: u64) -> Result<ValidHeader> {
        let hdr = self;
        let r = Ordering::Relaxed;
        if hdr.magic.load(r) != MAGIC {
            return Err(Error::Corrupt { what: "magic" });
        }
        let version = hdr.layout_version.load(r);
        if version != LAYOUT_VERSION {
            return Err(Error::VersionMismatch {
                found: version,
                expected: LAYOUT_VERSION,
            });
        }
        if hdr.header_size.load(r) as u64 != HEADER_SIZE {
            return Err(Error::Corrupt {
                what: "header size",
            });
        }
        let seg_size = hdr.segment_size.load(r);
        if size < seg_size {
            return Err(Error::TooSmall {
                size,
                min: seg_size,
            });
        }
        if seg_size != size {
            return Err(Error::Corrupt {
                what: "segment size",
            });
        }
        if hdr.flags.load(r) != 0 || hdr.reserved0.load(r) != 0 {
            return Err(Error::Corrupt {
                what: "reserved header fields",
            });
        }
        let creator = hdr.creator();
        if creator.pid == 0 || creator.pid > i32::MAX as u32 || hdr.creator_reserved.load(r) != 0 {
            return Err(Error::Corrupt {
                what: "creator pid",
            });
        }
        let created_at_ns = hdr.created_at_ns.load(r);
        // Allow a day of clock skew between processes' views of "now".
        if created_at_ns == 0 || created_at_ns > os::unix_time_ns() + 86_400 * 1_000_000_000 {
            return Err(Error::Corrupt {
                what: "creation time",
            });
        }
        let arena_offset = hdr.arena_offset.load(r);
        if arena_offset != HEADER_SIZE {
            return Err(Error::Corrupt {
                what: "arena offset",
            });
        }
        if hdr.arena_size.load(r) != size - arena_offset {
            return Err(Error::Corrupt { what: "arena size" });
        }
        let config_len = hdr.config_len.load(r) as usize;
        if config_len > CONFIG_CAPACITY {
            return Err(Error::Corrupt {
                what: "config length",
            });
        }
        let mut roots = [0u64; ROOT_SLOTS];
        for (v, slot) in roots.iter_mut().zip(&hdr.roots) {
            *v = slot.load(r);
            if *v != 0 && (*v < arena_offset || *v >= size || *v % 8 != 0) {
                return Err(Error::Corrupt {
                    what: "root offset",
                });
            }
        }
        if hdr.checksum.load(r) != hdr.compute_checksum() {
            return Err(Error::Corrupt {
                what: "header checksum",
            });
        }
        let config = hdr.config[..config_len].iter().map(|b| b.load(r)).collect();
        Ok(ValidHeader {
            creator,
            created_at_ns,
            layout_version: version,
            arena_offset,
            config,
            roots,
        })
    }
}
