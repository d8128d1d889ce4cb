//! Creating and opening a segment: the builder, the create/open race and
//! the init state machine (see the crate docs, "Init state machine"), and
//! the removal of a segment whose creator died.

use std::fs::File;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use super::header::{
    CONFIG_CAPACITY, DEFAULT_OPEN_TIMEOUT, HEADER_SIZE, Header, LAYOUT_VERSION, MAGIC,
    MIN_SEGMENT_SIZE, ROOT_SLOTS, STATE_INITIALIZING, STATE_READY, STATE_UNINIT,
};
use super::name::os_name;
use super::{Initializer, Segment, heap_start};
use crate::error::{Error, Result};
use crate::liveness::ProcessId;
use crate::os;

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
        let created_at_ns = os::unix_time_ns();
        hdr.write_fields(size, arena_offset, me, created_at_ns, &self.config);
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
        hdr.write_roots_and_checksum(roots);
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

    /// Builds the handle of a Ready segment after validating its header
    /// and the arena control block.
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
        let hdr = hdr.validate(size)?;
        let seg = Segment {
            name: b.name.clone(),
            os_name,
            _file: file,
            map,
            size,
            arena_offset: hdr.arena_offset,
            creator: hdr.creator,
            created_at_ns: hdr.created_at_ns,
            layout_version: hdr.layout_version,
            config: hdr.config,
            roots: hdr.roots,
            is_creator: false,
        };
        let arena = seg.arena_core();
        arena.validate()?;
        arena.validate_heap(heap_start(seg.arena_offset), seg.size)?;
        Ok(seg)
    }
}
