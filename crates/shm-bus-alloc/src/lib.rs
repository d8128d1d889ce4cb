//! The ground every shared structure of shm-bus stands on: the POSIX
//! shared-memory segment (create, open, validate, unlink), typed
//! segment-relative offsets, an arena allocator usable from several
//! processes at once, and [`ByteMap`], the open-addressing hash map that
//! interns topics.
//!
//! **What this crate is not:** it knows nothing of topics, rings,
//! publishers, subscribers or delivery; those are `shm-bus-core`'s, built
//! on the roots, blocks and maps this crate hands out. [`ByteMap`] maps
//! byte strings to integers without knowing they are topics. The crate
//! also makes no claim about what lives in the blocks beyond [`ShmSafe`].
//!
//! **Where to start reading:** `segment/mod.rs` ([`Segment`], and the list
//! of its files: header format, names, the create/open race, resolving
//! offsets, the [`Arena`] handle), then `offset.rs` ([`Offset`],
//! [`ShmSafe`]), `arena.rs` (the allocator algorithm), `lock.rs` (the
//! robust lock and undo log), `bytemap.rs`, and `liveness.rs` (telling a
//! dead process from a live one). `os.rs` holds every OS call; `mem.rs`
//! and `sync.rs` are what lets loom and Miri run the algorithms on heap
//! memory.
//!
//! # Quick start
//!
//! ```no_run
//! use shm_bus_alloc::{ByteMap, MapHeader, Segment};
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! # fn main() -> Result<(), shm_bus_alloc::Error> {
//! // Creator (or whoever wins the race): config + init closure + roots.
//! let seg = Segment::builder("demo")
//!     .size(4 << 20)
//!     .config(b"my-bus v1")
//!     .open_or_create(|init| {
//!         let arena = init.arena();
//!         let topics = ByteMap::create(&arena, 1024, 64 * 1024)?;
//!         let counter = arena.alloc_value(AtomicU64::new(0))?;
//!         init.set_root(0, topics.offset())?;
//!         init.set_root(1, counter)
//!     })?;
//! assert_eq!(seg.config(), b"my-bus v1");
//!
//! // Any process: resolve roots, use the structures.
//! let topics = ByteMap::attach(&seg, seg.root::<MapHeader>(0).unwrap())?;
//! let id = topics.insert(b"market/quote/AAPL", 7)?.value(7);
//! let counter: &AtomicU64 = seg.resolve(seg.root(1).unwrap())?;
//! counter.fetch_add(1, Ordering::Relaxed);
//! let block = seg.arena().alloc(4096, 64)?;      // Offset<u8>
//! let raw = seg.bytes(block, 4096)?;              // raw range for a ring
//! # let _ = (id, raw);
//! seg.arena().free(block)?;
//! # Ok(()) }
//! ```
//!
//! # Segment layout
//!
//! One shared-memory object `/shm-bus.<name>` (in `/dev/shm`), mapped at
//! whatever address the OS picks; everything inside refers to everything
//! else by [`Offset`] from the base.
//!
//! | offset              | size      | content                                                 |
//! |---------------------|-----------|---------------------------------------------------------|
//! | 0                   | 4096      | header (below)                                          |
//! | 4096                | 3,632     | arena control block: magic, heap bounds, bump, counters, robust lock + undo log, per-class free-list heads and counts |
//! | 4096 + 3,648        | rest      | heap: blocks `[16-byte header][payload]`                |
//!
//! Header (all fields little-endian atomics; offsets in [`layout`]):
//!
//! | offset | type        | field                                                            |
//! |--------|-------------|------------------------------------------------------------------|
//! | 0      | `u64`       | magic `"SHM-BUS\x01"` ([`MAGIC`])                                |
//! | 8      | `u32`       | layout version ([`LAYOUT_VERSION`])                              |
//! | 12     | `u32`       | header size (4096)                                               |
//! | 16     | `u64`       | segment size in bytes                                            |
//! | 24     | `u32`       | init state: `0` Uninit, [`STATE_INITIALIZING`], [`STATE_READY`] |
//! | 28     | `u32`       | flags (0)                                                        |
//! | 32     | `u32`+`u32` | creator pid, reserved (0)                                        |
//! | 40     | `u64`       | creator start time (clock ticks after boot)                      |
//! | 48     | `u64`       | creation time, ns since the Unix epoch                           |
//! | 56     | `u64`       | arena offset (4096)                                              |
//! | 64     | `u64`       | arena size (segment size − 4096)                                 |
//! | 72     | `u32`+`u32` | config length (≤ 256), reserved (0)                              |
//! | 80     | `[u8; 256]` | user configuration                                               |
//! | 336    | `[u64; 16]` | root offsets (0 = unset)                                         |
//! | 464    | `u64`       | FNV-1a checksum of every field above except the init state       |
//! | 472    | …           | reserved (0) up to 4096                                          |
//!
//! # Init state machine
//!
//! ```text
//!   shm_open(O_CREAT|O_EXCL), flock(LOCK_EX), ftruncate   (object reads as zeroes: Uninit)
//!        │  write magic, version, sizes, creator (pid, start time), config
//!        ▼
//!   Initializing   (Release store)   arena initialised, init closure runs,
//!        │                            roots + checksum written
//!        ▼
//!   Ready          (Release store)   flock released
//! ```
//!
//! Openers load the state with Acquire and:
//! - **Ready** → validate every header field, the checksum and the arena
//!   control block, then map.
//! - **Initializing** → if the recorded creator (pid + start time) is dead:
//!   [`Error::CreatorDied`] at once; else wait (bounded, default
//!   [`DEFAULT_OPEN_TIMEOUT`], see [`SegmentBuilder::open_timeout`]) →
//!   [`Error::HangsInCreation`].
//! - **Uninit** (or size 0) → wait; at the deadline, if nobody holds the
//!   creation flock the creator died before recording itself →
//!   `CreatorDied { creator: None }`, else `HangsInCreation`.
//! - anything else → [`Error::Corrupt`].
//!
//! If the init closure returns an error or panics, the creator unlinks the
//! half-made segment ([`Error::InitFailed`]). [`SegmentBuilder::open_or_create`]
//! removes a segment whose creator died (under an exclusive flock on that
//! object, and only if the name still refers to it) and creates it afresh.
//!
//! # Errors and when they happen
//!
//! | error | when |
//! |-------|------|
//! | [`Error::NotFound`] | `open`/`unlink` of a name that does not exist |
//! | [`Error::AlreadyExists`] | `create` of an existing name (`O_EXCL`) |
//! | [`Error::PermissionDenied`] | the OS refuses access (mode, owner) |
//! | [`Error::VersionMismatch`] | the segment has another layout version |
//! | [`Error::Corrupt`] | any field, checksum, free list, map slot fails validation |
//! | [`Error::TooSmall`] | object shorter than its header records, or a partial header |
//! | [`Error::HangsInCreation`] | still initialising after the open timeout |
//! | [`Error::CreatorDied`] | the creator died before Ready |
//! | [`Error::OutOfMemory`], [`Error::InvalidFree`] | arena |
//! | [`Error::Full`] | `ByteMap` slots or key space exhausted |
//! | [`Error::BadOffset`] | an offset out of the arena or misaligned |
//! | [`Error::Io`] | any other OS error, kept as its `io::Error` source |
//!
//! # Arena
//!
//! 140 size classes (16, 32, 48, 64, then four per doubling up to 2^40 bytes,
//! ≤ 25 % rounding above 64 B), one free list per class, blocks carved from
//! a bump region. Each block has a 16-byte header (`tag` = magic, state,
//! class; `next` while free), so `free` needs only the offset and detects
//! double frees. Alignment up to [`MAX_ALIGN`] is honoured: a free block is
//! reused only if it is suitably aligned (the first 8 on the list are
//! tried), otherwise a new block is carved at an aligned address (padding
//! counted in `wasted`). There is no splitting or coalescing: a freed block
//! is reused by its own class — right for a bus, whose tables and rings are
//! allocated once or recycled at the same size. Statistics ([`ArenaStats`])
//! are atomics read without the lock.
//!
//! # Crash recovery
//!
//! The arena has one lock whose owner word holds the holder's owner token
//! (pid + low 30 bits of its start time, see [`ProcessId`]). A waiter that
//! finds the holder dead (`/proc/PID/stat` gone, zombie, or a different
//! start time) takes the lock over with a CAS. Every metadata store inside
//! the lock is journaled in an undo log in the lock record *before* it is
//! made; the log is emptied at the commit point. The new holder rolls back
//! whatever the dead one left in the log, so every allocator operation is
//! all-or-nothing with respect to a SIGKILL at any instant: an interrupted
//! `alloc` never happened, an interrupted `free` leaves the block allocated
//! (leaked, its owner is dead). No block is ever handed out twice and no
//! list is left half-linked. Unit tests kill an operation after every one of
//! its stores; a multi-process test SIGKILLs a real holder.
//!
//! `ByteMap` needs no lock: a writer that dies mid-insert leaves its slot
//! busy with its token; other writers retire it to a tombstone once they
//! find the writer dead, readers never wait for it (see the [`bytemap`]
//! module docs).
//!
//! Processes are assumed to cooperate: the segment may be damaged (and that
//! is detected), but a process that scribbles over structures while others
//! use them, or truncates the object under them (SIGBUS), is out of scope.
//!
//! # Model checking
//!
//! The lock, undo log, arena and `ByteMap` are written against an internal
//! memory trait, with atomics from a `sync` shim; under `--cfg loom` they run
//! on heap memory pre-filled with garbage:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p shm-bus-alloc --release --test loom_arena --test loom_bytemap
//! ```
#![warn(missing_docs)]
// Under loom only the algorithms are built; the segment code is not.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
pub use segment::{
    Arena, CONFIG_CAPACITY, DEFAULT_OPEN_TIMEOUT, HEADER_SIZE, Initializer, LAYOUT_VERSION, MAGIC,
    MIN_SEGMENT_SIZE, ROOT_SLOTS, RawBytes, STATE_INITIALIZING, STATE_READY, STATE_UNINIT, Segment,
    SegmentBuilder, layout, validate_name,
};

mod arena;
pub mod bytemap;
#[cfg(all(test, not(loom)))]
mod damage_tests;
mod error;
mod liveness;
pub mod lock;
mod mem;
#[cfg(all(test, not(loom)))]
mod miri_tests;
mod offset;
mod os;
mod sync;

pub use arena::{
    ArenaStats, BLOCK_HEADER, ClassStats, MAX_ALIGN, NUM_CLASSES, class_of, class_size,
};
#[cfg(not(loom))]
pub use bytemap::{ByteMap, Iter};
pub use bytemap::{Insert, MapHeader, MapStats};
pub use error::{Error, Result};
pub use liveness::{OsOwners, Owners, ProcessId};
#[cfg(loom)]
pub use mem::HeapMem;
pub use mem::Mem;
pub use offset::{Offset, ShmSafe};

/// Loom-only: the algorithms on heap memory (see `tests/loom_*.rs`).
#[cfg(loom)]
pub mod model;
