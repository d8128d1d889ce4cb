//! The floors: what bare shared memory costs between the same processes,
//! with no library in the way. Both are defined in `crates/shm-bus-floor`,
//! which `shm-bus bench` uses too, so the two measure against the same
//! floors; this file only maps the memory ([`Region`]) and adapts them to
//! the harness's traits.
//!
//! - Latency: `shm-bus-floor`'s cache-line ping-pong. Each side stores the
//!   sequence number in its own 8-byte word (128 bytes apart) and spins on
//!   the other's. Its two-line variant (`shm_bus_floor::lines`) first
//!   writes a whole data line per message, stepping through 1 MiB per
//!   direction, and the receiver checks it: the lines a small shm-bus
//!   message moves (its record, and the next header that the producer
//!   clears before committing).
//! - Throughput: `shm-bus-floor`'s ring of fixed 64-byte-aligned slots. A
//!   slot's first 8 bytes (the message's sequence number, plus one) are its
//!   commit flag: the producer writes the rest of the payload, then stores
//!   the flag (Release); a consumer polls the flag of its next slot, so no
//!   shared tail counter bounces between the cores (shm-bus's records carry
//!   a commit stamp the same way). Each consumer's `head` sits on its own
//!   lines, published every 1/64 of the ring and whenever it has caught up
//!   (as shm-bus publishes its cursors); the producer caches the slowest
//!   head. With two consumers, the same ring has two heads.
//! - The "single memcpy": one thread copying the payload over and over,
//!   either into one reused buffer or slot after slot through a shared
//!   mapping of the ring's size.

use std::time::Instant;

use anyhow::Result;
use shm_bus_floor::{
    LINES_PING_PONG_BYTES, LinesPingPong, PING_PONG_BYTES, PingPong, PingPongEnd, RingLayout, Side,
};

use super::{Sink, Source};
use crate::proc::Spec;
use crate::shm::Region;

// ------------------------------------------------------------- latency

/// One end of the ping-pong, in the run's floor mapping.
pub struct Lat(PingPong<Region>);

impl Lat {
    /// The ping side: creates the mapping.
    pub fn create(spec: &Spec) -> Result<Lat> {
        Lat::new(
            Region::create(&spec.floor_name(), PING_PONG_BYTES)?,
            Side::Ping,
        )
    }

    /// The echo side: opens the ping side's mapping.
    pub fn open(spec: &Spec) -> Result<Lat> {
        Lat::new(
            Region::open(&spec.floor_name(), PING_PONG_BYTES)?,
            Side::Echo,
        )
    }

    fn new(region: Region, side: Side) -> Result<Lat> {
        let (base, len) = (region.base(), region.len());
        // SAFETY: `region` is a shared mapping of `len` bytes, kept mapped
        // by the handle (its owner); it was zeroed by `ftruncate` at
        // creation, and the two processes of the run access it only through
        // the two ends of this ping-pong (one per side).
        Ok(Lat(unsafe { PingPong::new(base, len, side, region)? }))
    }
}

/// Either floor end, behind the harness's trait.
macro_rules! ping_pong_adapter {
    ($t:ty) => {
        impl super::PingPong for $t {
            #[inline]
            fn send(&mut self, seq: u64) -> Result<()> {
                PingPongEnd::send(&mut self.0, seq);
                Ok(())
            }

            #[inline]
            fn try_recv(&mut self) -> Result<Option<u64>> {
                Ok(self.0.poll()?)
            }
        }
    };
}

ping_pong_adapter!(Lat);
ping_pong_adapter!(LatLines);

/// One end of the ping-pong that moves `lines` cache lines per message,
/// in the run's floor mapping.
pub struct LatLines(LinesPingPong<Region>);

impl LatLines {
    /// The ping side: creates the mapping.
    pub fn create(spec: &Spec, lines: usize) -> Result<LatLines> {
        LatLines::new(
            Region::create(&spec.floor_name(), LINES_PING_PONG_BYTES)?,
            Side::Ping,
            lines,
        )
    }

    /// The echo side: opens the ping side's mapping.
    pub fn open(spec: &Spec, lines: usize) -> Result<LatLines> {
        LatLines::new(
            Region::open(&spec.floor_name(), LINES_PING_PONG_BYTES)?,
            Side::Echo,
            lines,
        )
    }

    fn new(region: Region, side: Side, lines: usize) -> Result<LatLines> {
        let (base, len) = (region.base(), region.len());
        // SAFETY: `region` is a shared mapping of `len` bytes, kept mapped
        // by the handle (its owner); it was zeroed by `ftruncate` at
        // creation, and the two processes of the run access it only through
        // the two ends of this ping-pong (one per side, both with `lines`).
        Ok(LatLines(unsafe {
            LinesPingPong::new(base, len, side, lines, region)?
        }))
    }
}

// ---------------------------------------------------------- throughput

fn layout(spec: &Spec) -> Result<RingLayout> {
    Ok(RingLayout::new(
        spec.size,
        spec.ring,
        spec.subscribers as usize,
    )?)
}

/// The ring's producer, in the run's floor mapping.
pub struct Producer(shm_bus_floor::Producer<Region>);

impl Producer {
    /// Creates the mapping (zeroed) and the ring's one producer.
    pub fn create(spec: &Spec) -> Result<Producer> {
        let layout = layout(spec)?;
        let region = Region::create(&spec.floor_name(), layout.bytes())?;
        let (base, len) = (region.base(), region.len());
        // SAFETY: `region` is a fresh shared mapping of `len` bytes, zeroed
        // by `ftruncate` and kept mapped by the producer (its owner). Only
        // this producer (the run's one `tput-pub` process) and the
        // subscribers' consumers, made from the same `Spec` and so with an
        // equal layout, use it.
        Ok(Producer(unsafe {
            shm_bus_floor::Producer::new(base, len, layout, region)?
        }))
    }
}

impl Source for Producer {
    #[inline]
    fn try_send(&mut self, payload: &[u8]) -> Result<bool> {
        Ok(self.0.try_send(payload))
    }
}

/// A consumer of the ring, in the run's floor mapping.
pub struct Consumer(shm_bus_floor::Consumer<Region>);

impl Consumer {
    /// Opens the producer's mapping as consumer `spec.index`.
    pub fn open(spec: &Spec) -> Result<Consumer> {
        let layout = layout(spec)?;
        let region = Region::open(&spec.floor_name(), layout.bytes())?;
        let (base, len) = (region.base(), region.len());
        // SAFETY: `region` maps the producer's object of `len` bytes, kept
        // mapped by the consumer (its owner); the producer made the ring
        // with the layout of the same `Spec`, and is its only producer.
        Ok(Consumer(unsafe {
            shm_bus_floor::Consumer::new(base, len, layout, spec.index as usize, region)?
        }))
    }
}

impl Sink for Consumer {
    #[inline]
    fn try_recv(&mut self) -> Result<Option<u64>> {
        Ok(self.0.try_recv())
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
