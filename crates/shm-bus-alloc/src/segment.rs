//! The segment: create, open, validate, unlink; header; typed access.

use std::fs::File;
use std::marker::PhantomData;
use std::mem::offset_of;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memmap2::{MmapOptions, MmapRaw};

use crate::arena::{self, ArenaCore, ArenaStats};
use crate::error::{Error, Result};
use crate::liveness::{OsOwners, ProcessId};
use crate::mem::Mem;
use crate::offset::{Offset, ShmSafe};
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
    magic: AtomicU64,
    layout_version: AtomicU32,
    header_size: AtomicU32,
    segment_size: AtomicU64,
    init_state: AtomicU32,
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

/// Where the arena heap starts: after the control block, 64-aligned.
fn heap_start(arena_offset: u64) -> u64 {
    arena_offset + arena::CONTROL_BYTES.next_multiple_of(64)
}

/// FNV-1a, 64 bit.
pub(crate) fn fnv1a(bytes: impl IntoIterator<Item = u8>, seed: u64) -> u64 {
    let mut h = seed;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
const FNV_SEED: u64 = 0xcbf2_9ce4_8422_2325;

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

    fn creator(&self) -> ProcessId {
        ProcessId {
            pid: self.creator_pid.load(Ordering::Relaxed),
            reserved: 0,
            start_time: self.creator_start_time.load(Ordering::Relaxed),
        }
    }
}

/// Checks that `name` can name a segment: 1..=200 bytes, no `/` or NUL,
/// not `.` or `..`. Every constructor applies it; tools can check a name
/// up front with it.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the rule.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 200
        || name.contains('/')
        || name.contains('\0')
        || name == "."
        || name == ".."
    {
        return Err(Error::InvalidArgument(
            "segment name must be 1..=200 bytes without '/' or NUL",
        ));
    }
    Ok(())
}

fn os_name(name: &str) -> Result<String> {
    validate_name(name)?;
    Ok(format!("/shm-bus.{name}"))
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

/// How to create or open a segment. Obtain with [`Segment::builder`].
#[derive(Clone, Debug)]
pub struct SegmentBuilder {
    name: String,
    size: u64,
    mode: u32,
    config: Vec<u8>,
    open_timeout: Duration,
    fill: Option<u8>,
}

/// Given to the init closure of [`SegmentBuilder::create`]: the arena of the
/// segment under construction and its root slots.
pub struct Initializer<'s> {
    seg: &'s Segment,
    roots: [u64; ROOT_SLOTS],
}

impl<'s> Initializer<'s> {
    /// The segment being initialised (for [`Segment::resolve`]).
    pub fn segment(&self) -> &'s Segment {
        self.seg
    }
    /// Its arena.
    pub fn arena(&self) -> Arena<'s> {
        self.seg.arena()
    }
    /// The configuration bytes passed to the builder.
    pub fn config(&self) -> &'s [u8] {
        &self.seg.config
    }
    /// Records `off` in root slot `index` (`0..ROOT_SLOTS`); openers read it
    /// with [`Segment::root`]. `off` must lie in the arena.
    pub fn set_root<T>(&mut self, index: usize, off: Offset<T>) -> Result<()> {
        if index >= ROOT_SLOTS {
            return Err(Error::InvalidArgument("root index out of range"));
        }
        if off.get() < self.seg.arena_offset || off.get() >= self.seg.size || off.get() % 8 != 0 {
            return Err(Error::BadOffset {
                offset: off.get(),
                len: 0,
                align: 8,
            });
        }
        self.roots[index] = off.get();
        Ok(())
    }
}

impl SegmentBuilder {
    /// Total size of the segment in bytes (rounded up to the page size).
    /// Default 1 MiB. Only used when creating.
    pub fn size(mut self, size: u64) -> Self {
        self.size = size;
        self
    }
    /// Permission bits of a created segment. Default `0o600`.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
    /// User configuration (up to [`CONFIG_CAPACITY`] bytes) stored in the
    /// header at creation and returned by [`Segment::config`] on open.
    pub fn config(mut self, config: &[u8]) -> Self {
        self.config = config.to_vec();
        self
    }
    /// How long `open` waits for a segment that is still being initialised
    /// before failing with [`Error::HangsInCreation`]. Default
    /// [`DEFAULT_OPEN_TIMEOUT`].
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }
    /// Fills the whole arena with `byte` before initialising it. A testing
    /// aid: proves that nothing relies on the zeroes `ftruncate` provides.
    pub fn debug_fill(mut self, byte: u8) -> Self {
        self.fill = Some(byte);
        self
    }

    /// Creates the segment (`O_EXCL`), runs `init`, then publishes it as
    /// Ready. If `init` fails or panics, the half-made segment is unlinked.
    ///
    /// Errors: [`Error::AlreadyExists`], [`Error::PermissionDenied`],
    /// [`Error::TooSmall`], [`Error::InvalidArgument`],
    /// [`Error::InitFailed`], [`Error::Io`].
    pub fn create<F>(&self, init: F) -> Result<Segment>
    where
        F: FnOnce(&mut Initializer<'_>) -> Result<()>,
    {
        let mut init = Some(init);
        self.create_inner(&mut init)
    }

    fn create_inner<F>(&self, init: &mut Option<F>) -> Result<Segment>
    where
        F: FnOnce(&mut Initializer<'_>) -> Result<()>,
    {
        let os_name = os_name(&self.name)?;
        if self.config.len() > CONFIG_CAPACITY {
            return Err(Error::InvalidArgument("config longer than 256 bytes"));
        }
        let page = os::page_size();
        let size = self
            .size
            .checked_next_multiple_of(page)
            .ok_or(Error::InvalidArgument("segment size too large"))?;
        if size < MIN_SEGMENT_SIZE {
            return Err(Error::TooSmall {
                size,
                min: MIN_SEGMENT_SIZE,
            });
        }
        let file =
            os::shm_create_excl(&os_name, self.mode).map_err(|e| Error::from_os(&os_name, e))?;
        let mut cleanup = UnlinkOnDrop(Some(os_name.clone()));
        // Held until Ready: openers use it to tell a dead creator from a
        // slow one before the header names the creator.
        os::flock(&file, os::FlockOp::Exclusive)?;
        os::ftruncate(&file, size)?;
        let map = MmapOptions::new().len(size as usize).map_raw(&file)?;
        // SAFETY: the mapping is at least HEADER_SIZE (>= size_of::<Header>())
        // bytes, page-aligned, and lives as long as `map`; Header is ShmSafe.
        let hdr = unsafe { &*(map.as_ptr() as *const Header) };
        let me = ProcessId::current();
        let arena_offset = HEADER_SIZE;
        let r = Ordering::Relaxed;
        hdr.magic.store(MAGIC, r);
        hdr.layout_version.store(LAYOUT_VERSION, r);
        hdr.header_size.store(HEADER_SIZE as u32, r);
        hdr.segment_size.store(size, r);
        hdr.flags.store(0, r);
        hdr.creator_pid.store(me.pid, r);
        hdr.creator_reserved.store(0, r);
        hdr.creator_start_time.store(me.start_time, r);
        let created_at_ns = os::unix_time_ns();
        hdr.created_at_ns.store(created_at_ns, r);
        hdr.arena_offset.store(arena_offset, r);
        hdr.arena_size.store(size - arena_offset, r);
        hdr.config_len.store(self.config.len() as u32, r);
        hdr.reserved0.store(0, r);
        for (i, b) in hdr.config.iter().enumerate() {
            b.store(self.config.get(i).copied().unwrap_or(0), r);
        }
        for root in &hdr.roots {
            root.store(0, r);
        }
        hdr.checksum.store(0, r);
        for w in &hdr.reserved {
            w.store(0, r);
        }
        // Release: pairs with the Acquire load of `init_state` in `open`, so
        // an opener that sees Initializing also sees the creator identity.
        hdr.init_state.store(STATE_INITIALIZING, Ordering::Release);

        if let Some(byte) = self.fill {
            // SAFETY: [arena_offset, size) lies inside the mapping; no one
            // else touches the arena before Ready.
            unsafe {
                map.as_mut_ptr()
                    .add(arena_offset as usize)
                    .write_bytes(byte, (size - arena_offset) as usize)
            };
        }
        let mut seg = Segment {
            name: self.name.clone(),
            os_name: os_name.clone(),
            _file: file,
            map,
            size,
            arena_offset,
            creator: me,
            created_at_ns,
            layout_version: LAYOUT_VERSION,
            config: self.config.clone(),
            roots: [0; ROOT_SLOTS],
            is_creator: true,
        };
        seg.arena_core().init(heap_start(arena_offset), size)?;

        let init = init
            .take()
            .ok_or(Error::InvalidArgument("init closure already used"))?;
        let mut initializer = Initializer {
            seg: &seg,
            roots: [0; ROOT_SLOTS],
        };
        init(&mut initializer).map_err(|e| Error::InitFailed(Box::new(e)))?;
        let roots = initializer.roots;
        let hdr = seg.header();
        for (slot, v) in hdr.roots.iter().zip(roots) {
            slot.store(v, r);
        }
        hdr.checksum.store(hdr.compute_checksum(), r);
        // Release: pairs with the Acquire load of `init_state` in `open`;
        // the header, the arena and everything `init` wrote are visible to
        // whoever sees Ready.
        hdr.init_state.store(STATE_READY, Ordering::Release);
        seg.roots = roots;
        os::flock(&seg._file, os::FlockOp::Unlock)?;
        cleanup.0 = None;
        Ok(seg)
    }

    /// Opens an existing segment and validates it, waiting up to the open
    /// timeout for one still being initialised.
    ///
    /// Errors: [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::TooSmall`], [`Error::VersionMismatch`], [`Error::Corrupt`],
    /// [`Error::HangsInCreation`], [`Error::CreatorDied`], [`Error::Io`].
    pub fn open(&self) -> Result<Segment> {
        self.open_inner().map_err(|f| f.err)
    }

    /// Opens the segment, or creates it (running `init`) if it does not
    /// exist. Correct when several processes race: exactly one creates,
    /// the others wait for Ready and open. A segment whose creator died
    /// during initialisation is removed and created afresh. An existing
    /// segment is opened whatever size the builder asks for.
    pub fn open_or_create<F>(&self, init: F) -> Result<Segment>
    where
        F: FnOnce(&mut Initializer<'_>) -> Result<()>,
    {
        let mut init = Some(init);
        let mut last = None;
        for _ in 0..16 {
            match self.create_inner(&mut init) {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            match self.open_inner() {
                Ok(seg) => return Ok(seg),
                Err(OpenFail {
                    err: Error::NotFound { .. },
                    ..
                }) => continue,
                Err(OpenFail {
                    err: err @ Error::CreatorDied { .. },
                    stale: Some(file),
                }) => {
                    remove_stale(&os_name(&self.name)?, &file)?;
                    last = Some(err);
                }
                Err(f) => return Err(f.err),
            }
        }
        Err(last.unwrap_or(Error::Corrupt {
            what: "segment keeps disappearing during open_or_create",
        }))
    }

    fn open_inner(&self) -> std::result::Result<Segment, OpenFail> {
        let os_name = os_name(&self.name)?;
        let file = os::shm_open_rw(&os_name).map_err(|e| Error::from_os(&os_name, e))?;
        let start = Instant::now();
        let deadline = start + self.open_timeout;
        let mut pause = Duration::from_micros(20);
        loop {
            let (size, _, _) = os::fstat(&file)?;
            let mut stalled = true; // no header yet, or Uninit
            if size >= HEADER_SIZE {
                let map = MmapOptions::new().len(size as usize).map_raw(&file)?;
                // SAFETY: the mapping holds at least HEADER_SIZE bytes,
                // page-aligned; Header is ShmSafe; `map` outlives `hdr`.
                let hdr = unsafe { &*(map.as_ptr() as *const Header) };
                // Acquire pairs with the Release stores of `init_state` in
                // `create_inner`.
                let state = hdr.init_state.load(Ordering::Acquire);
                let magic = hdr.magic.load(Ordering::Relaxed);
                match state {
                    STATE_READY => {
                        return Segment::validate(self, os_name, file, map, size)
                            .map_err(OpenFail::from);
                    }
                    STATE_INITIALIZING => {
                        if magic != MAGIC {
                            return Err(Error::Corrupt { what: "magic" }.into());
                        }
                        let creator = hdr.creator();
                        if !creator.is_alive() {
                            return Err(OpenFail {
                                err: Error::CreatorDied {
                                    creator: Some(creator),
                                },
                                stale: Some(file),
                            });
                        }
                        stalled = false;
                    }
                    STATE_UNINIT if magic == 0 || magic == MAGIC => {}
                    _ => {
                        let what = if magic != MAGIC {
                            "magic"
                        } else {
                            "init state"
                        };
                        return Err(Error::Corrupt { what }.into());
                    }
                }
            } else if size > 0 {
                // Creators size the object in one ftruncate: a partial
                // header is a truncated or foreign object.
                return Err(Error::TooSmall {
                    size,
                    min: HEADER_SIZE,
                }
                .into());
            }
            if Instant::now() >= deadline {
                // Nobody holds the creation lock: the creator died before it
                // wrote its identity.
                if stalled && os::flock(&file, os::FlockOp::TryShared)? {
                    os::flock(&file, os::FlockOp::Unlock)?;
                    return Err(OpenFail {
                        err: Error::CreatorDied { creator: None },
                        stale: Some(file),
                    });
                }
                return Err(Error::HangsInCreation {
                    waited_ms: start.elapsed().as_millis() as u64,
                }
                .into());
            }
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }
}

/// Removes a segment whose creator died, if `stale` (an open handle on the
/// inode judged stale) is still what the name refers to. Serialised by an
/// exclusive flock on the stale inode, so two racing removers cannot both
/// act, and a segment created meanwhile under the same name is never hit.
fn remove_stale(os_name: &str, stale: &File) -> Result<()> {
    if !os::flock(stale, os::FlockOp::TryExclusive)? {
        // Someone else is creating or removing; let the caller retry open.
        return Ok(());
    }
    let result = (|| {
        let (_, dev, ino) = os::fstat(stale)?;
        let current = match os::shm_open_rw(os_name) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(Error::from_os(os_name, e)),
        };
        let (_, cdev, cino) = os::fstat(&current)?;
        if (dev, ino) == (cdev, cino) {
            match os::shm_unlink(os_name) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(Error::from_os(os_name, e)),
            }
        }
        Ok(())
    })();
    os::flock(stale, os::FlockOp::Unlock)?;
    result
}

struct OpenFail {
    err: Error,
    stale: Option<File>,
}
impl From<Error> for OpenFail {
    fn from(err: Error) -> Self {
        OpenFail { err, stale: None }
    }
}
impl From<std::io::Error> for OpenFail {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e).into()
    }
}

struct UnlinkOnDrop(Option<String>);
impl Drop for UnlinkOnDrop {
    fn drop(&mut self) {
        if let Some(name) = self.0.take() {
            let _ = os::shm_unlink(&name);
        }
    }
}

impl Segment {
    /// A builder for creating or opening segment `name` (object
    /// `/shm-bus.<name>`).
    pub fn builder(name: &str) -> SegmentBuilder {
        SegmentBuilder {
            name: name.to_owned(),
            size: 1 << 20,
            mode: 0o600,
            config: Vec::new(),
            open_timeout: DEFAULT_OPEN_TIMEOUT,
            fill: None,
        }
    }

    /// Creates segment `name` of `size` bytes with permission bits `mode`
    /// (`O_EXCL`), with no configuration and no roots.
    pub fn create(name: &str, size: u64, mode: u32) -> Result<Segment> {
        Segment::builder(name)
            .size(size)
            .mode(mode)
            .create(|_| Ok(()))
    }

    /// Opens and validates segment `name` with the default timeout.
    pub fn open(name: &str) -> Result<Segment> {
        Segment::builder(name).open()
    }

    /// Opens segment `name`, or creates it with `size` and `mode`.
    pub fn open_or_create(name: &str, size: u64, mode: u32) -> Result<Segment> {
        Segment::builder(name)
            .size(size)
            .mode(mode)
            .open_or_create(|_| Ok(()))
    }

    /// Removes the name `/shm-bus.<name>`. Processes that have the segment
    /// mapped keep using it; it is freed when the last one unmaps it.
    ///
    /// Errors: [`Error::NotFound`], [`Error::PermissionDenied`], [`Error::Io`].
    pub fn unlink(name: &str) -> Result<()> {
        let os_name = os_name(name)?;
        os::shm_unlink(&os_name).map_err(|e| Error::from_os(&os_name, e))
    }

    fn validate(
        b: &SegmentBuilder,
        os_name: String,
        file: File,
        map: MmapRaw,
        size: u64,
    ) -> Result<Segment> {
        // SAFETY: `open_inner` only calls this with a mapping of at least
        // HEADER_SIZE bytes; Header is ShmSafe.
        let hdr = unsafe { &*(map.as_ptr() as *const Header) };
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
        let seg = Segment {
            name: b.name.clone(),
            os_name,
            _file: file,
            map,
            size,
            arena_offset,
            creator,
            created_at_ns,
            layout_version: version,
            config,
            roots,
            is_creator: false,
        };
        let arena = seg.arena_core();
        arena.validate()?;
        arena.validate_heap(heap_start(arena_offset), size)?;
        Ok(seg)
    }

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

    fn check_range(&self, off: u64, len: u64, align: u64) -> Result<()> {
        let bad = Error::BadOffset {
            offset: off,
            len,
            align,
        };
        let end = off.checked_add(len).ok_or(Error::BadOffset {
            offset: off,
            len,
            align,
        })?;
        if off < self.arena_offset || end > self.size || off % align != 0 {
            return Err(bad);
        }
        Ok(())
    }

    /// Resolves `off` to a shared reference, after checking that the whole
    /// `T` lies inside the arena and `off` is aligned for `T`.
    ///
    /// Only shared references are handed out: types in the segment mutate
    /// through atomics.
    pub fn resolve<T: ShmSafe>(&self, off: Offset<T>) -> Result<&T> {
        self.check_range(off.get(), size_of::<T>() as u64, align_of::<T>() as u64)?;
        // SAFETY: in bounds of the live mapping and aligned (checked above);
        // T is ShmSafe, so any bytes there are a valid T and sharing it
        // across threads and processes is sound; the mapping outlives &self.
        Ok(unsafe { &*(self.map.as_ptr().add(off.get() as usize) as *const T) })
    }

    /// Resolves `count` consecutive `T`s starting at `off`, with the same
    /// checks as [`Segment::resolve`].
    pub fn resolve_slice<T: ShmSafe>(&self, off: Offset<T>, count: u64) -> Result<&[T]> {
        let len = count
            .checked_mul(size_of::<T>() as u64)
            .ok_or(Error::BadOffset {
                offset: off.get(),
                len: u64::MAX,
                align: align_of::<T>() as u64,
            })?;
        self.check_range(off.get(), len, align_of::<T>() as u64)?;
        // SAFETY: as in `resolve`, for `count` elements (range checked).
        Ok(unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(off.get() as usize) as *const T,
                count as usize,
            )
        })
    }

    /// A raw byte range inside the arena (e.g. a ring's payload area),
    /// bounds-checked. See [`RawBytes`] for the rules of its use.
    pub fn bytes(&self, off: Offset<u8>, len: u64) -> Result<RawBytes<'_>> {
        self.check_range(off.get(), len, 1)?;
        // SAFETY: off is inside the mapping (checked), so the pointer is in
        // bounds and non-null (the mapping base is non-null).
        let ptr = unsafe { NonNull::new_unchecked(self.map.as_mut_ptr().add(off.get() as usize)) };
        Ok(RawBytes {
            ptr,
            len: len as usize,
            _seg: PhantomData,
        })
    }
}

impl Mem for Segment {
    fn word(&self, off: u64) -> Option<&AtomicU64> {
        if off % 8 != 0 || off.checked_add(8)? > self.size {
            return None;
        }
        // SAFETY: 8-aligned and in bounds of the live mapping; AtomicU64 is
        // valid for any bits and meant for shared mutation.
        Some(unsafe { &*(self.map.as_ptr().add(off as usize) as *const AtomicU64) })
    }

    fn bytes(&self, off: u64, len: u64) -> Option<*mut u8> {
        if off.checked_add(len)? > self.size {
            return None;
        }
        Some(self.map.as_mut_ptr().wrapping_add(off as usize))
    }
}

/// A bounds-checked raw byte range inside the segment, valid while the
/// [`Segment`] it came from is alive.
///
/// The bytes are shared with every process that maps the segment, so this
/// type hands out only a raw pointer. Reading or writing through it is the
/// caller's `unsafe` responsibility: a protocol (e.g. a ring's tail published
/// with Release and read with Acquire) must guarantee that no byte is
/// written by one party while another reads or writes it.
#[derive(Clone, Copy, Debug)]
pub struct RawBytes<'s> {
    ptr: NonNull<u8>,
    len: usize,
    _seg: PhantomData<&'s Segment>,
}

impl RawBytes<'_> {
    /// Start of the range in this process's mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

// SAFETY: RawBytes is a pointer into a shared mapping that is itself Sync;
// it grants no access by itself (every access is the caller's unsafe code).
unsafe impl Send for RawBytes<'_> {}
// SAFETY: as above.
unsafe impl Sync for RawBytes<'_> {}

/// The arena of a segment: allocate and free from any process. Obtain with
/// [`Segment::arena`] or [`Initializer::arena`].
#[derive(Clone, Copy, Debug)]
pub struct Arena<'s> {
    seg: &'s Segment,
}

impl<'s> Arena<'s> {
    /// Allocates `size` bytes aligned to `align` (a power of two, at most
    /// [`MAX_ALIGN`](crate::MAX_ALIGN)). The content is unspecified (garbage);
    /// use the typed helpers for initialised memory.
    ///
    /// Errors: [`Error::OutOfMemory`], [`Error::InvalidArgument`],
    /// [`Error::Corrupt`] (a damaged free list is reported, never followed).
    pub fn alloc(&self, size: u64, align: u64) -> Result<Offset<u8>> {
        self.seg.arena_core().alloc(size, align).map(Offset::new)
    }

    /// Frees the block at `off`, as returned by an `alloc*` method of this
    /// arena (from any process).
    ///
    /// Errors: [`Error::InvalidFree`] for double frees and offsets that are
    /// not blocks; the arena is unchanged.
    pub fn free<T>(&self, off: Offset<T>) -> Result<()> {
        self.seg.arena_core().free(off.get())
    }

    /// Usable bytes of the live block at `off` (at least what was asked).
    pub fn block_size<T>(&self, off: Offset<T>) -> Result<u64> {
        self.seg.arena_core().block_size(off.get())
    }

    /// Statistics, read without taking the lock.
    pub fn stats(&self) -> Result<ArenaStats> {
        self.seg.arena_core().stats()
    }

    /// Takes the lock (recovering a dead holder's operation) and verifies
    /// every free list and counter; returns the statistics.
    pub fn check(&self) -> Result<ArenaStats> {
        self.seg.arena_core().check()
    }

    /// Allocates room for a `T` and moves `value` into it.
    pub fn alloc_value<T: ShmSafe>(&self, value: T) -> Result<Offset<T>> {
        let off = self.alloc(size_of::<T>() as u64, align_of::<T>() as u64)?;
        let raw = self.seg.bytes(off, size_of::<T>() as u64)?;
        // SAFETY: the block was just allocated, so no other party knows its
        // offset yet; it is in bounds and aligned for T (alloc honours
        // align_of::<T>()).
        unsafe { (raw.as_ptr() as *mut T).write(value) };
        Ok(off.cast())
    }

    /// Allocates `[T; n]` (at least one byte) with every byte explicitly set
    /// to zero (a valid `T` for every `ShmSafe` type).
    pub fn alloc_array_zeroed<T: ShmSafe>(&self, n: u64) -> Result<Offset<T>> {
        let bytes = n
            .checked_mul(size_of::<T>() as u64)
            .ok_or(Error::OutOfMemory {
                requested: u64::MAX,
            })?;
        let off = self.alloc(bytes, align_of::<T>() as u64)?;
        let raw = self.seg.bytes(off, bytes)?;
        // SAFETY: freshly allocated, exclusively ours, in bounds (checked).
        unsafe { raw.as_ptr().write_bytes(0, raw.len()) };
        Ok(off.cast())
    }

    /// Allocates a zeroed `T`.
    pub fn alloc_zeroed<T: ShmSafe>(&self) -> Result<Offset<T>> {
        self.alloc_array_zeroed(1)
    }

    /// Allocates `[T; n]` with element `i` set to `f(i)`.
    pub fn alloc_array_with<T: ShmSafe>(
        &self,
        n: u64,
        mut f: impl FnMut(u64) -> T,
    ) -> Result<Offset<T>> {
        let off: Offset<T> = self.alloc_array_zeroed(n)?;
        for i in 0..n {
            let elem = off.element(i).ok_or(Error::OutOfMemory {
                requested: u64::MAX,
            })?;
            let raw = self.seg.bytes(elem.cast(), size_of::<T>() as u64)?;
            // SAFETY: inside our fresh block, aligned (array of T at an
            // aligned base), no other party knows the block yet.
            unsafe { (raw.as_ptr() as *mut T).write(f(i)) };
        }
        Ok(off)
    }

    /// Testing aid for crash-recovery tests, not part of the API: takes the
    /// allocator lock, makes part of an allocation's journaled stores, calls
    /// `stall` (which is expected never to return, e.g. to wait for
    /// SIGKILL) and, should it return, abandons the lock as a dead process
    /// would.
    #[doc(hidden)]
    pub fn __stall_holding_lock(&self, stores: usize, stall: impl FnOnce()) -> Result<()> {
        self.seg.arena_core().stall_mid_carve(stores, stall)
    }

    /// The segment this arena belongs to.
    pub fn segment(&self) -> &'s Segment {
        self.seg
    }
}
