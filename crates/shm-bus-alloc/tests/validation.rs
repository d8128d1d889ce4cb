//! Open validates everything: every header field set to garbage, truncated
//! and foreign objects, and the lifecycle errors each give their typed error.
#![cfg(not(loom))]

mod common;

use std::fs::OpenOptions;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use shm_bus_alloc::{
    ByteMap, Error, HEADER_SIZE, LAYOUT_VERSION, MapHeader, Offset, ProcessId, Segment, layout,
};

fn make(name: &SegName) -> Segment {
    Segment::builder(&name.0)
        .size(256 * 1024)
        .config(b"cfg")
        .debug_fill(0xA5)
        .create(|init| {
            let map = ByteMap::create(&init.arena(), 16, 256)?;
            init.set_root(0, map.offset())
        })
        .unwrap()
}

/// Overwrites `bytes` at `offset` of the segment's backing object.
fn poke(name: &SegName, offset: usize, bytes: &[u8]) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.dev_shm_path())
        .unwrap();
    let mut m = map_object(&f);
    m[offset..offset + bytes.len()].copy_from_slice(bytes);
    m.flush().unwrap();
}

fn map_object(f: &std::fs::File) -> memmap2::MmapMut {
    // SAFETY: the test owns this segment; no other process maps it now.
    unsafe { memmap2::MmapMut::map_mut(f).unwrap() }
}

fn open_fast(name: &SegName) -> Result<Segment, Error> {
    Segment::builder(&name.0)
        .open_timeout(Duration::from_millis(100))
        .open()
}

macro_rules! garbage_case {
    ($test:ident, $off:expr, $bytes:expr, $pat:pat) => {
        #[test]
        fn $test() {
            let name = SegName::new(stringify!($test));
            drop(make(&name));
            open_fast(&name).expect("pristine segment opens");
            poke(&name, $off, &$bytes);
            let r = open_fast(&name);
            assert!(matches!(r, Err($pat)), "{}: got {:?}", stringify!($test), r);
        }
    };
}

garbage_case!(
    garbage_magic,
    layout::MAGIC,
    *b"NOTSHMBS",
    Error::Corrupt { what: "magic" }
);
garbage_case!(
    wrong_version,
    layout::LAYOUT_VERSION,
    99u32.to_le_bytes(),
    Error::VersionMismatch {
        found: 99,
        expected: LAYOUT_VERSION
    }
);
garbage_case!(
    garbage_header_size,
    layout::HEADER_SIZE,
    7u32.to_le_bytes(),
    Error::Corrupt {
        what: "header size"
    }
);
garbage_case!(
    recorded_size_larger_than_object,
    layout::SEGMENT_SIZE,
    (1u64 << 40).to_le_bytes(),
    Error::TooSmall { .. }
);
garbage_case!(
    recorded_size_smaller_than_object,
    layout::SEGMENT_SIZE,
    8192u64.to_le_bytes(),
    Error::Corrupt {
        what: "segment size"
    }
);
garbage_case!(
    garbage_init_state,
    layout::INIT_STATE,
    0xdead_beefu32.to_le_bytes(),
    Error::Corrupt { what: "init state" }
);
garbage_case!(
    garbage_flags,
    layout::FLAGS,
    1u32.to_le_bytes(),
    Error::Corrupt {
        what: "reserved header fields"
    }
);
garbage_case!(
    zero_creator_pid,
    layout::CREATOR_PID,
    0u32.to_le_bytes(),
    Error::Corrupt {
        what: "creator pid"
    }
);
garbage_case!(
    garbage_creator_start_time,
    layout::CREATOR_START_TIME,
    [0xA5; 8],
    Error::Corrupt {
        what: "header checksum"
    }
);
garbage_case!(
    future_creation_time,
    layout::CREATED_AT,
    u64::MAX.to_le_bytes(),
    Error::Corrupt {
        what: "creation time"
    }
);
garbage_case!(
    garbage_arena_offset,
    layout::ARENA_OFFSET,
    12345u64.to_le_bytes(),
    Error::Corrupt {
        what: "arena offset"
    }
);
garbage_case!(
    garbage_arena_size,
    layout::ARENA_SIZE,
    12345u64.to_le_bytes(),
    Error::Corrupt { what: "arena size" }
);
garbage_case!(
    garbage_config_len,
    layout::CONFIG_LEN,
    1000u32.to_le_bytes(),
    Error::Corrupt {
        what: "config length"
    }
);
garbage_case!(
    garbage_config_byte,
    layout::CONFIG + 1,
    [b'X'],
    Error::Corrupt {
        what: "header checksum"
    }
);
garbage_case!(
    garbage_root,
    layout::ROOTS + 8,
    3u64.to_le_bytes(),
    Error::Corrupt {
        what: "root offset"
    }
);
garbage_case!(
    garbage_checksum,
    layout::CHECKSUM,
    [0xA5; 8],
    Error::Corrupt {
        what: "header checksum"
    }
);
garbage_case!(
    garbage_arena_magic,
    HEADER_SIZE as usize,
    [0xA5; 8],
    Error::Corrupt {
        what: "arena magic"
    }
);
garbage_case!(
    garbage_arena_bump,
    HEADER_SIZE as usize + 24,
    [0xA5; 8],
    Error::Corrupt {
        what: "arena bump pointer"
    }
);
garbage_case!(
    garbage_lock_log,
    HEADER_SIZE as usize + 64 + 8,
    [0xA5; 8],
    Error::Corrupt {
        what: "lock undo log"
    }
);

#[test]
fn truncated_segment_is_too_small() {
    let name = SegName::new("trunc");
    drop(make(&name));
    let f = OpenOptions::new()
        .write(true)
        .open(name.dev_shm_path())
        .unwrap();
    f.set_len(8192).unwrap();
    assert!(matches!(
        open_fast(&name),
        Err(Error::TooSmall { size: 8192, .. })
    ));
    f.set_len(100).unwrap();
    assert!(matches!(
        open_fast(&name),
        Err(Error::TooSmall {
            size: 100,
            min: HEADER_SIZE
        })
    ));
}

#[test]
fn foreign_object_is_corrupt() {
    let name = SegName::new("foreign");
    let junk: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(name.dev_shm_path(), junk).unwrap();
    assert!(matches!(
        open_fast(&name),
        Err(Error::Corrupt { what: "magic" })
    ));
}

#[test]
fn empty_object_from_a_creator_that_died_early_is_replaced() {
    let name = SegName::new("empty");
    std::fs::write(name.dev_shm_path(), b"").unwrap();
    assert!(matches!(
        open_fast(&name),
        Err(Error::CreatorDied { creator: None })
    ));
    let seg = Segment::builder(&name.0)
        .size(64 * 1024)
        .open_timeout(Duration::from_millis(100))
        .open_or_create(|_| Ok(()))
        .unwrap();
    assert!(seg.is_creator());
}

#[test]
fn lifecycle_errors_are_typed() {
    let name = SegName::new("life");
    assert!(matches!(
        Segment::open(&name.0),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        Segment::unlink(&name.0),
        Err(Error::NotFound { .. })
    ));
    let _seg = Segment::create(&name.0, 64 * 1024, 0o600).unwrap();
    assert!(matches!(
        Segment::create(&name.0, 64 * 1024, 0o600),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        Segment::create("a/b", 64 * 1024, 0o600),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Segment::create(&SegName::new("tiny").0, 4096, 0o600),
        Err(Error::TooSmall { .. })
    ));
    let meta = std::fs::metadata(name.dev_shm_path()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn permission_denied_is_typed() {
    let name = SegName::new("perm");
    drop(Segment::create(&name.0, 64 * 1024, 0o000).unwrap());
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("running as root: DAC checks are bypassed, PermissionDenied cannot be provoked");
        return;
    }
    assert!(matches!(
        Segment::open(&name.0),
        Err(Error::PermissionDenied { .. })
    ));
}

#[test]
fn failed_init_unlinks_the_half_made_segment() {
    let name = SegName::new("initfail");
    let r = Segment::builder(&name.0)
        .size(64 * 1024)
        .create(|_| Err(Error::InvalidArgument("nope")));
    assert!(matches!(r, Err(Error::InitFailed(_))));
    assert!(matches!(
        Segment::open(&name.0),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn config_roots_and_header_accessors_round_trip() {
    let name = SegName::new("roots");
    let created = Segment::builder(&name.0)
        .size(128 * 1024)
        .config(b"bus-config-v3")
        .debug_fill(0xA5)
        .create(|init| {
            assert_eq!(init.config(), b"bus-config-v3");
            let arena = init.arena();
            let counter = arena.alloc_value(AtomicU64::new(41))?;
            let table = arena.alloc_array_zeroed::<AtomicU64>(10)?;
            let map = ByteMap::create(&arena, 64, 1024)?;
            map.insert(b"hello", 7)?;
            init.set_root(0, map.offset())?;
            init.set_root(1, counter)?;
            init.set_root(2, table)?;
            assert!(init.set_root(16, table).is_err());
            Ok(())
        })
        .unwrap();
    let seg = Segment::open(&name.0).unwrap();
    assert_eq!(seg.config(), b"bus-config-v3");
    assert_eq!(seg.creator(), ProcessId::current());
    assert_eq!(seg.layout_version(), LAYOUT_VERSION);
    assert_eq!(seg.size(), 128 * 1024);
    assert_eq!(seg.name(), name.0);
    assert!(seg.created_at() <= std::time::SystemTime::now());
    assert!(created.is_creator() && !seg.is_creator());
    let counter = seg.resolve::<AtomicU64>(seg.root(1).unwrap()).unwrap();
    counter.fetch_add(1, Ordering::Relaxed);
    let again = created
        .resolve::<AtomicU64>(created.root(1).unwrap())
        .unwrap();
    assert_eq!(again.load(Ordering::Relaxed), 42);
    let table = seg
        .resolve_slice::<AtomicU64>(seg.root(2).unwrap(), 10)
        .unwrap();
    assert!(
        table.iter().all(|x| x.load(Ordering::Relaxed) == 0),
        "zeroed despite the 0xA5 fill"
    );
    let map = ByteMap::attach(&seg, seg.root::<MapHeader>(0).unwrap()).unwrap();
    assert_eq!(map.get(b"hello").unwrap(), Some(7));
    assert!(seg.root::<u8>(3).is_none());
}

#[test]
fn offsets_are_bounds_and_alignment_checked() {
    let name = SegName::new("bounds");
    let seg = make(&name);
    let bad = |r: Result<&AtomicU64, Error>| matches!(r, Err(Error::BadOffset { .. }));
    assert!(
        bad(seg.resolve(Offset::<AtomicU64>::new(0))),
        "the header is not resolvable"
    );
    assert!(bad(seg.resolve(Offset::<AtomicU64>::new(seg.size() - 4))));
    assert!(bad(seg.resolve(Offset::<AtomicU64>::new(u64::MAX - 3))));
    let ok = seg.arena().alloc(64, 8).unwrap();
    assert!(bad(seg.resolve(ok.cast::<AtomicU64>().byte_add(1).unwrap())));
    assert!(seg.resolve(ok.cast::<AtomicU64>()).is_ok());
    assert!(
        seg.resolve_slice(ok.cast::<AtomicU64>(), u64::MAX / 4)
            .is_err()
    );
    assert!(seg.bytes(ok, seg.size()).is_err());
    assert!(ByteMap::attach(&seg, ok.cast()).is_err(), "not a map");
    assert!(matches!(
        ByteMap::attach(&seg, Offset::<MapHeader>::new(seg.size())),
        Err(Error::BadOffset { .. })
    ));
}

#[test]
fn damaged_free_list_is_reported_not_followed() {
    let name = SegName::new("freelist");
    let seg = make(&name);
    let arena = seg.arena();
    let a = arena.alloc(100, 8).unwrap();
    arena.free(a).unwrap();
    // Scribble over the freed block's header (next pointer and tag).
    let hdr = seg.bytes(Offset::new(a.get() - 16), 16).unwrap();
    // SAFETY: the block is free and this test is the only user of the segment.
    unsafe { hdr.as_ptr().write_bytes(0xA5, 16) };
    assert!(matches!(
        arena.alloc(100, 8),
        Err(Error::Corrupt {
            what: "arena free list"
        })
    ));
    assert!(matches!(arena.check(), Err(Error::Corrupt { .. })));
    assert!(matches!(arena.free(a), Err(Error::InvalidFree { .. })));
}
