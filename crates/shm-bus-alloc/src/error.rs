//! The crate's error type.

use std::io;

use crate::liveness::ProcessId;

/// Everything that can go wrong with a segment, an offset, the arena or a
/// `ByteMap`. Damaged, foreign or half-made segments always end up here —
/// never in a panic, a hang or undefined behaviour.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `open`: no segment of that name exists. Nothing was changed.
    #[error("shared-memory segment {name:?} does not exist")]
    NotFound {
        /// The shared-memory object name (`/shm-bus.<name>`).
        name: String,
    },
    /// `create`: a segment of that name already exists (`O_EXCL`). The
    /// existing segment was not touched.
    #[error("shared-memory segment {name:?} already exists")]
    AlreadyExists {
        /// The shared-memory object name.
        name: String,
    },
    /// The OS refused access (`EACCES`/`EPERM`): the segment belongs to
    /// another user or its mode forbids us.
    #[error("permission denied for shared-memory segment {name:?}")]
    PermissionDenied {
        /// The shared-memory object name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `open`: the segment was made by an incompatible build of this crate.
    /// It is left as is; unlink it only if no process still uses it.
    #[error("segment layout version {found}, this build expects {expected}")]
    VersionMismatch {
        /// Layout version stored in the segment.
        found: u32,
        /// [`LAYOUT_VERSION`](crate::LAYOUT_VERSION) of this build.
        expected: u32,
    },
    /// A structure in the segment fails validation: `what` names the field
    /// or structure (e.g. `"magic"`, `"header checksum"`, `"arena free
    /// list"`). The operation had no effect.
    #[error("segment is corrupt: {what}")]
    Corrupt {
        /// Which field or structure is damaged.
        what: &'static str,
    },
    /// The segment (or a requested size) is smaller than the minimum, or the
    /// object was truncated below the size its header records.
    #[error("segment is too small: {size} bytes, need at least {min}")]
    TooSmall {
        /// Actual size in bytes.
        size: u64,
        /// Minimum size in bytes.
        min: u64,
    },
    /// `open`: the segment was still being initialised by a live creator
    /// when the open timeout ran out. Retry later or raise the timeout.
    #[error("segment is still being created after {waited_ms} ms")]
    HangsInCreation {
        /// How long we waited, in milliseconds.
        waited_ms: u64,
    },
    /// `open`: the creator died before finishing initialisation. The
    /// segment is unusable; `open_or_create` removes and recreates it,
    /// [`Segment::unlink`](crate::Segment::unlink) removes it.
    #[error("the creator of the segment ({creator:?}) died during initialisation")]
    CreatorDied {
        /// The creator, if it got as far as recording itself.
        creator: Option<ProcessId>,
    },
    /// The init closure passed to `create` failed; the half-made segment was
    /// unlinked. Carries the closure's error.
    #[error("segment initialisation failed: {0}")]
    InitFailed(#[source] Box<Error>),
    /// An offset (plus length) lies outside the arena or is misaligned for
    /// the requested type.
    #[error("bad offset {offset:#x} (len {len}, align {align}) for this segment")]
    BadOffset {
        /// The offending offset.
        offset: u64,
        /// Bytes that were to be accessed.
        len: u64,
        /// Required alignment.
        align: u64,
    },
    /// The arena has no block of the needed size left. Nothing was
    /// allocated.
    #[error("arena out of memory: {requested} bytes requested")]
    OutOfMemory {
        /// The requested size in bytes.
        requested: u64,
    },
    /// `free` of an offset that is not a live allocation (double free, or
    /// never allocated). The arena was not changed.
    #[error("invalid free of offset {offset:#x}: {reason}")]
    InvalidFree {
        /// The offset passed to `free`.
        offset: u64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A fixed-capacity structure is full (`ByteMap` slots or key space,
    /// root slots). Nothing was inserted.
    #[error("{what} is full")]
    Full {
        /// Which structure.
        what: &'static str,
    },
    /// An argument is out of range (bad name, zero size, alignment not a
    /// power of two or above the maximum, config too long, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// Any other OS error, kept as its source.
    #[error("I/O error on shared-memory segment")]
    Io(#[from] io::Error),
}

impl Error {
    /// Maps an `io::Error` from an OS call on object `name` to the typed
    /// variant when there is one.
    pub(crate) fn from_os(name: &str, e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::ENOENT) => Error::NotFound {
                name: name.to_owned(),
            },
            Some(libc::EEXIST) => Error::AlreadyExists {
                name: name.to_owned(),
            },
            Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied {
                name: name.to_owned(),
                source: e,
            },
            _ => Error::Io(e),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
