//! Bare POSIX shared memory for the floors (`shm-bus-floor` over a
//! [`Region`]), and the sweeper that leaves `/dev/shm` (and iceoryx2's
//! directory) as clean as the run found them.

use std::ffi::CString;
use std::ptr::NonNull;

use anyhow::{Context, Result, bail};

/// A mapped POSIX shared-memory object. The creator unlinks it on drop;
/// the orchestrator's [`Sweeper`] removes it if a creator dies.
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    name: CString,
    owner: bool,
}

impl Region {
    /// Creates `name` (which must not exist) with `len` zeroed bytes.
    pub fn create(name: &str, len: usize) -> Result<Region> {
        Region::map(name, len, true)
    }

    /// Opens `name`, created by another process with the same `len`.
    pub fn open(name: &str, len: usize) -> Result<Region> {
        Region::map(name, len, false)
    }

    fn map(name: &str, len: usize, create: bool) -> Result<Region> {
        let cname = CString::new(name)?;
        let flags = if create {
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR
        } else {
            libc::O_RDWR
        };
        // SAFETY: `cname` is NUL-terminated; shm_open copies it.
        let fd = unsafe { libc::shm_open(cname.as_ptr(), flags, 0o600) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("shm_open {name}"));
        }
        let fail = |what: &str| {
            let e = std::io::Error::last_os_error();
            // SAFETY: `fd` is ours and open; the name is NUL-terminated.
            unsafe {
                libc::close(fd);
                if create {
                    libc::shm_unlink(cname.as_ptr());
                }
            }
            Err(e).with_context(|| format!("{what} {name}"))
        };
        // SAFETY: plain syscall on our fd.
        if create && unsafe { libc::ftruncate(fd, len as libc::off_t) } != 0 {
            return fail("ftruncate");
        }
        // SAFETY: a fresh shared mapping of our fd; the kernel picks the
        // address. The object is `len` bytes (set above, or by the creator).
        // Not pre-faulted: like the systems' own segments, pages are faulted
        // in on first touch.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return fail("mmap");
        }
        // SAFETY: the mapping keeps the object alive; the fd is no longer needed.
        unsafe { libc::close(fd) };
        let Some(ptr) = NonNull::new(ptr.cast::<u8>()) else {
            bail!("mmap returned null");
        };
        Ok(Region {
            ptr,
            len,
            name: cname,
            owner: create,
        })
    }

    /// The start of the mapping (page aligned), valid for `len()` bytes
    /// while `self` lives.
    pub fn base(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Pointer to byte `offset` (the caller keeps its accesses in bounds
    /// and synchronises them through the control words).
    pub fn at(&self, offset: usize) -> *mut u8 {
        assert!(offset <= self.len, "offset out of the region");
        // SAFETY: in bounds (asserted).
        unsafe { self.ptr.as_ptr().add(offset) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping made in `map`; nothing borrows
        // from it any more (borrows of `word` end with `self`).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
            if self.owner {
                libc::shm_unlink(self.name.as_ptr());
            }
        }
    }
}

// The mapping is shared memory accessed through atomics and raw pointers.
// SAFETY: `Region` owns its mapping; moving it to another thread is fine.
unsafe impl Send for Region {}

/// Names in `/dev/shm` this run may create: shm-bus buses, floors and
/// iceoryx2's files (all carry the orchestrator's pid).
pub fn shm_prefixes(pid: u32) -> [String; 3] {
    [
        format!("shm-bus.cmp{pid}-"),
        format!("cmpfloor{pid}-"),
        format!("iox2cmp{pid}_"),
    ]
}

/// iceoryx2's root directory for this run (its config points there).
pub fn iceoryx2_root(pid: u32) -> String {
    format!("/tmp/shm-bus-compare-{pid}/")
}

/// Removes everything this run (orchestrator `pid`) may have left behind;
/// returns how many entries it removed.
pub fn sweep(pid: u32) -> usize {
    let prefixes = shm_prefixes(pid);
    let mut removed = 0;
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if prefixes.iter().any(|p| name.starts_with(p.as_str()))
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    let root = iceoryx2_root(pid);
    if std::fs::metadata(&root).is_ok() && std::fs::remove_dir_all(&root).is_ok() {
        removed += 1;
    }
    removed
}

/// Removes what earlier runs left behind when they were killed outright
/// (SIGKILL leaves no chance to clean up): names carrying the pid of a
/// process that is no longer a running `shm-bus-compare`.
pub fn sweep_stale() -> usize {
    // Alive: a process of that name that is not a zombie.
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.contains("(shm-bus-compare)")
                && stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    };
    let pid_after = |name: &str, prefix: &str| -> Option<u32> {
        let rest = name.strip_prefix(prefix)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let mut dead = std::collections::BTreeSet::new();
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            for prefix in ["shm-bus.cmp", "cmpfloor", "iox2cmp"] {
                if let Some(pid) = pid_after(&name, prefix) {
                    if !alive(pid) {
                        dead.insert(pid);
                    }
                }
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir("/tmp") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = pid_after(&name, "shm-bus-compare-") {
                if !alive(pid) {
                    dead.insert(pid);
                }
            }
        }
    }
    dead.into_iter().map(sweep).sum()
}

/// Sweeps on drop: at the end of the run, on error and on interruption.
pub struct Sweeper(pub u32);

impl Drop for Sweeper {
    fn drop(&mut self) {
        sweep(self.0);
    }
}
