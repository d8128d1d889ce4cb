//! The floors: what bare shared memory costs between the same processes,
//! with no library in the way.
//!
//! - Latency: a cache-line ping-pong. Each side stores the sequence number
//!   in its own 8-byte word (128 bytes apart) and spins on the other's.
//! - Throughput: a minimal SPSC ring of fixed 64-byte-aligned slots. A
//!   message's first 8 bytes (its sequence number, plus one) are its commit
//!   flag: the producer writes the rest of the payload, then stores the
//!   flag (Release); a consumer polls the flag of its next slot, so no
//!   shared tail counter bounces between the cores (shm-bus's records carry
//!   a commit stamp the same way). Each consumer's `head` sits on its own
//!   line, published every 1/64 of the ring and whenever it has caught up
//!   (as shm-bus publishes its cursors); the producer caches the slowest
//!   head. With two consumers, the same ring has two heads.
//! - The "single memcpy": one thread copying the payload over and over,
//!   either into one reused buffer or slot after slot through a shared
//!   mapping of the ring's size.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};

use super::{PingPong, Sink, Source};
use crate::proc::Spec;
use crate::shm::{LINE, Region};

// ------------------------------------------------------------- latency

pub struct Lat {
    _region: Region,
    out: NonNull<AtomicU64>,
    inp: NonNull<AtomicU64>,
    last: u64,
}

impl Lat {
    pub fn create(spec: &Spec) -> Result<Lat> {
        Lat::new(Region::create(&spec.floor_name(), 2 * LINE)?, 0, 1)
    }

    pub fn open(spec: &Spec) -> Result<Lat> {
        Lat::new(Region::open(&spec.floor_name(), 2 * LINE)?, 1, 0)
    }

    fn new(region: Region, out: usize, inp: usize) -> Result<Lat> {
        Ok(Lat {
            out: NonNull::from(region.word(out)),
            inp: NonNull::from(region.word(inp)),
            _region: region,
            last: 0,
        })
    }
}

impl PingPong for Lat {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<()> {
        // SAFETY: points into `_region`, which lives as long as `self`.
        let out = unsafe { self.out.as_ref() };
        // Release: pairs with the peer's Acquire load in `try_recv`.
        out.store(seq + 1, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn try_recv(&mut self) -> Result<Option<u64>> {
        // SAFETY: points into `_region`, which lives as long as `self`.
        let inp = unsafe { self.inp.as_ref() };
        // Acquire: pairs with the peer's Release store in `send`.
        let v = inp.load(Ordering::Acquire);
        if v != self.last {
            self.last = v;
            Ok(Some(v - 1))
        } else {
            Ok(None)
        }
    }
}

// ---------------------------------------------------------- throughput

/// The consumers' heads (one line each) fill the first page; the slots
/// follow.
const DATA: usize = 4096;

struct Layout {
    slot: usize,
    slots: u64,
}

impl Layout {
    fn of(spec: &Spec) -> Result<Layout> {
        if (spec.subscribers as usize + 1) * LINE > DATA {
            bail!("too many consumers for the floor ring");
        }
        if spec.size < 8 {
            bail!("payloads carry an 8-byte sequence number");
        }
        let slot = spec.size.div_ceil(64) * 64;
        let slots = (spec.ring / slot as u64).max(2);
        Ok(Layout { slot, slots })
    }

    fn bytes(&self) -> usize {
        DATA + self.slot * self.slots as usize
    }

    /// The commit flag of slot `idx`: its first 8 bytes.
    fn flag(&self, region: &Region, idx: u64) -> NonNull<AtomicU64> {
        let p = region.at(DATA + idx as usize * self.slot);
        // SAFETY (of later dereferences): inside the region, 64-byte aligned
        // (page-aligned mapping, DATA and slot multiples of 64), accessed
        // atomically by every process; `NonNull` because `at` never returns
        // null for a live mapping.
        NonNull::new(p.cast::<AtomicU64>()).expect("mapping is not null")
    }
}

pub struct Producer {
    region: Region,
    layout: Layout,
    consumers: usize,
    tail: u64,
    min_head: u64,
    idx: u64,
}

impl Producer {
    pub fn create(spec: &Spec) -> Result<Producer> {
        let layout = Layout::of(spec)?;
        Ok(Producer {
            region: Region::create(&spec.floor_name(), layout.bytes())?,
            layout,
            consumers: spec.subscribers as usize,
            tail: 0,
            min_head: 0,
            idx: 0,
        })
    }
}

impl Source for Producer {
    #[inline]
    fn try_send(&mut self, payload: &[u8]) -> Result<bool> {
        if self.tail - self.min_head >= self.layout.slots {
            let mut min = u64::MAX;
            for c in 0..self.consumers {
                // Acquire: pairs with the consumer's Release store of its
                // head, so its reads of the slot are done before we reuse it.
                min = min.min(self.region.word(1 + c).load(Ordering::Acquire));
            }
            self.min_head = min;
            if self.tail - self.min_head >= self.layout.slots {
                return Ok(false);
            }
        }
        let flag = self.layout.flag(&self.region, self.idx);
        let seq = super::seq_of(payload);
        let dst = flag.as_ptr().cast::<u8>();
        let head = payload.len().min(64);
        // SAFETY: the slot lies inside the region and holds `payload.len()`
        // bytes; no consumer reads it: every head is past its previous use
        // (checked above) and its flag does not yet announce `seq`. The
        // payload after the flag is copied in two parts so that the bulk
        // copy starts 64-byte aligned (a misaligned `rep movsb` is slower).
        unsafe {
            std::ptr::copy_nonoverlapping(payload.as_ptr().add(8), dst.add(8), head - 8);
            if payload.len() > 64 {
                std::ptr::copy_nonoverlapping(
                    payload.as_ptr().add(64),
                    dst.add(64),
                    payload.len() - 64,
                );
            }
        }
        // SAFETY: see `Layout::flag`.
        let flag = unsafe { flag.as_ref() };
        // Release: pairs with the consumers' Acquire load of the flag: the
        // rest of the payload is visible before the message is.
        flag.store(seq + 1, Ordering::Release);
        self.tail += 1;
        self.idx += 1;
        if self.idx == self.layout.slots {
            self.idx = 0;
        }
        Ok(true)
    }
}

pub struct Consumer {
    region: Region,
    layout: Layout,
    me: usize,
    next: u64,
    idx: u64,
    /// The head as last published, and how often to publish it.
    published: u64,
    batch: u64,
}

impl Consumer {
    pub fn open(spec: &Spec) -> Result<Consumer> {
        let layout = Layout::of(spec)?;
        Ok(Consumer {
            region: Region::open(&spec.floor_name(), layout.bytes())?,
            me: spec.index as usize,
            next: 0,
            idx: 0,
            published: 0,
            batch: (layout.slots / 64).max(1),
            layout,
        })
    }

    #[inline]
    fn publish(&mut self) {
        if self.published != self.next {
            self.published = self.next;
            // Release: pairs with the producer's Acquire load of the heads:
            // our reads of the slots before `next` are done before it
            // reuses them.
            self.region
                .word(1 + self.me)
                .store(self.next, Ordering::Release);
        }
    }
}

impl Sink for Consumer {
    #[inline]
    fn try_recv(&mut self) -> Result<Option<u64>> {
        let flag = self.layout.flag(&self.region, self.idx);
        // SAFETY: see `Layout::flag`.
        let flag = unsafe { flag.as_ref() };
        // Acquire: pairs with the producer's Release store of the flag.
        let f = flag.load(Ordering::Acquire);
        if f != self.next + 1 {
            // Caught up: let the producer reuse everything read so far.
            self.publish();
            return Ok(None);
        }
        self.next += 1;
        self.idx += 1;
        if self.idx == self.layout.slots {
            self.idx = 0;
        }
        if self.next - self.published >= self.batch {
            self.publish();
        }
        Ok(Some(f - 1))
    }
}

// --------------------------------------------------------------- memcpy

/// The single-memcpy reference: one thread copies `count` payloads of
/// `size` bytes into a fresh shared mapping of `bytes` bytes, slot after
/// slot (with `bytes == size`, always into the same buffer). Returns
/// payloads per second.
pub fn memcpy_rate(name: &str, size: usize, count: u64, bytes: u64) -> Result<f64> {
    let slots = (bytes as usize / size).max(1);
    let region = Region::create(name, slots * size)?;
    let mut payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut idx = 0;
    let start = Instant::now();
    for i in 0..count {
        payload[..8].copy_from_slice(&i.to_le_bytes());
        let dst = region.at(idx * size);
        // SAFETY: slot `idx` < `slots` lies inside the region; this thread
        // is its only user.
        unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), dst, size) };
        idx += 1;
        if idx == slots {
            idx = 0;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(region.at(0));
    drop(region);
    Ok(count as f64 / secs)
}
