//! The floors: bare shared memory between the same processes as the bus
//! measurement, no bus code involved. [`Floor`] is raw memory in a
//! segment (control words on their own cache lines, plus data); the
//! throughput floor is a bare SPSC ring in it. The latency floor (a
//! cache-line ping-pong) is run by `latency.rs` on a [`Floor`].
//!
//! The SPSC ring copies payloads with raw pointers, as a hand-written
//! ring would: this is the one place outside `crate::os` where the CLI
//! uses `unsafe`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use shm_bus_alloc::{Offset, Segment};

use crate::BadInput;
use crate::peer::{Peer, unique};

/// Raw shared memory for the floors: `words` u64s, each on its own cache
/// line, plus `bytes` of data.
pub(super) struct Floor {
    seg: Segment,
    base: u64,
    bytes: u64,
}

const LINE: u64 = 128; // two cache lines: no adjacent-line prefetch sharing

impl Floor {
    pub(super) fn create(name: &str, words: u64, bytes: u64) -> Result<Floor> {
        let total = words * LINE + bytes;
        let seg = Segment::builder(name)
            .size(total + (1 << 20))
            .create(|init| {
                let off = init.arena().alloc(total, 4096)?;
                // Zero the control words (the arena hands out garbage).
                for w in 0..words {
                    let word: &AtomicU64 =
                        init.segment().resolve(Offset::new(off.get() + w * LINE))?;
                    word.store(0, Ordering::Relaxed);
                }
                init.set_root(0, off)
            })?;
        Floor::attach(seg, words, bytes)
    }

    pub(super) fn open(name: &str, words: u64, bytes: u64) -> Result<Floor> {
        Floor::attach(Segment::open(name)?, words, bytes)
    }

    fn attach(seg: Segment, words: u64, bytes: u64) -> Result<Floor> {
        let base = seg
            .root::<u8>(0)
            .context("floor segment has no root")?
            .get();
        seg.bytes(Offset::new(base), words * LINE + bytes)?;
        Ok(Floor {
            base: base + words * LINE,
            seg,
            bytes,
        })
    }

    pub(super) fn word(&self, i: u64) -> &AtomicU64 {
        self.seg
            .resolve(Offset::new(self.base - (i + 1) * LINE))
            .expect("floor word in bounds (checked at attach)")
    }

    fn data(&self) -> *mut u8 {
        self.seg
            .bytes(Offset::new(self.base), self.bytes)
            .expect("floor data in bounds (checked at attach)")
            .as_ptr()
    }
}

/// Floor: a bare SPSC ring of fixed slots, between this process and a
/// child; the producer writes the whole payload, the consumer reads the
/// sequence number.
pub(super) fn floor_throughput(size: usize, count: u64, ring: u64) -> Result<f64> {
    let slot = (size as u64).div_ceil(64) * 64;
    let slots = (ring / slot).max(2);
    let name = unique("tputfloor");
    let floor = Floor::create(&name.0, 3, slots * slot)?;
    let mut peer = Peer::spawn(
        "bench-floor-sink",
        &[
            name.0.clone(),
            size.to_string(),
            count.to_string(),
            ring.to_string(),
        ],
    )?;
    if peer.line(Duration::from_secs(30))? != "READY" {
        bail!("floor consumer did not start");
    }
    let (head, tail, done) = (floor.word(0), floor.word(1), floor.word(2));
    let data = floor.data();
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let start = Instant::now();
    let mut head_cache = 0u64;
    for i in 0..count {
        while i - head_cache >= slots {
            // Acquire: pairs with the consumer's Release store of `head`.
            head_cache = head.load(Ordering::Acquire);
        }
        // SAFETY: slot `i % slots` lies inside the data region (checked at
        // attach) and the consumer has released it (`head` > i - slots).
        unsafe {
            let dst = data.add(((i % slots) * slot) as usize);
            std::ptr::copy_nonoverlapping(payload.as_ptr(), dst, size);
            std::ptr::copy_nonoverlapping(i.to_le_bytes().as_ptr(), dst, 8);
        }
        // Release: pairs with the consumer's Acquire load of `tail`.
        tail.store(i + 1, Ordering::Release);
    }
    // Acquire: pairs with the consumer's Release store of `done`.
    while done.load(Ordering::Acquire) == 0 {
        if start.elapsed() > Duration::from_secs(120) {
            bail!("floor consumer did not finish");
        }
        std::hint::spin_loop();
    }
    let secs = start.elapsed().as_secs_f64();
    peer.wait(Duration::from_secs(30))?;
    Ok(count as f64 / secs)
}

pub(super) fn floor_sink(args: &[String]) -> Result<ExitCode> {
    let [name, size, count, ring] = args else {
        bail!(BadInput("bench-floor-sink NAME SIZE COUNT RING".into()));
    };
    let (size, count, ring): (u64, u64, u64) = (size.parse()?, count.parse()?, ring.parse()?);
    let slot = size.div_ceil(64) * 64;
    let slots = (ring / slot).max(2);
    let floor = Floor::open(name, 3, slots * slot)?;
    let (head, tail, done) = (floor.word(0), floor.word(1), floor.word(2));
    let data = floor.data();
    println!("READY");
    std::io::stdout().flush()?;
    let mut tail_cache = 0u64;
    let idle = Instant::now();
    for i in 0..count {
        while tail_cache <= i {
            // Acquire: pairs with the producer's Release store of `tail`.
            tail_cache = tail.load(Ordering::Acquire);
            if tail_cache <= i && idle.elapsed() > Duration::from_secs(120) {
                bail!("floor producer stopped");
            }
        }
        let mut seq = [0u8; 8];
        // SAFETY: slot `i % slots` is inside the data region and was
        // published by the producer's Release store of `tail` > i.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.add(((i % slots) * slot) as usize),
                seq.as_mut_ptr(),
                8,
            )
        };
        if u64::from_le_bytes(seq) != i {
            bail!(
                "floor ring delivered {} instead of {i}",
                u64::from_le_bytes(seq)
            );
        }
        // Release: pairs with the producer's Acquire load of `head`.
        head.store(i + 1, Ordering::Release);
    }
    // Release: pairs with the producer's Acquire load of `done`.
    done.store(1, Ordering::Release);
    Ok(ExitCode::SUCCESS)
}
