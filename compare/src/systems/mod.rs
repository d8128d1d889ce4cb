//! The systems measured, behind three small traits so that every one runs
//! through the same timing loops (monomorphised: no dynamic dispatch in the
//! hot loops).

use anyhow::Result;
use serde::{Deserialize, Serialize};

pub mod floor;
pub mod iox;
pub mod shmbus;
pub mod uds;

#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    clap::ValueEnum,
)]
pub enum System {
    /// Bare shared memory: a cache-line ping-pong (latency) or a minimal
    /// SPSC ring (throughput).
    Floor,
    /// Latency only: the ping-pong moving two cache lines per message (a
    /// data line, then the flag), as a small shm-bus message does (its
    /// record and the next header): `shm_bus_floor::lines`.
    FloorTwoLines,
    ShmBus,
    /// Latency only: shm-bus with the next message loaned before waiting
    /// for the answer (an `OwnedLoan` kept between sends, re-loaned by
    /// `commit_and_reloan`), as iceoryx2's own benchmark pre-loans.
    ShmBusPreloaned,
    /// Throughput only: shm-bus with the producer publishing in bursts of
    /// [`BURST`] through `try_publish_many` and subscribers draining with
    /// `try_recv_many(BURST, ..)`.
    ShmBusBatched,
    Iceoryx2,
    /// Latency only: iceoryx2 with the next sample loaned before waiting
    /// for the answer, as iceoryx2's own benchmark does.
    Iceoryx2Preloaned,
    Uds,
}

impl System {
    /// The throughput workload's systems, in the order of a round (each
    /// round starts one further along); shm-bus's batch APIs are a
    /// separate row.
    pub const THROUGHPUT: [System; 5] = [
        System::Floor,
        System::ShmBus,
        System::ShmBusBatched,
        System::Iceoryx2,
        System::Uds,
    ];
    /// The latency workload also measures iceoryx2 the way its own
    /// benchmark does (pre-loaned), and shm-bus that way too.
    pub const LATENCY: [System; 7] = [
        System::Floor,
        System::FloorTwoLines,
        System::ShmBus,
        System::ShmBusPreloaned,
        System::Iceoryx2,
        System::Iceoryx2Preloaned,
        System::Uds,
    ];

    pub fn name(self) -> &'static str {
        match self {
            System::Floor => "floor",
            System::FloorTwoLines => "floor, 2 lines",
            System::ShmBus => "shm-bus",
            System::ShmBusPreloaned => "shm-bus, pre-loaned",
            System::ShmBusBatched => "shm-bus, bursts of 32",
            System::Iceoryx2 => "iceoryx2",
            System::Iceoryx2Preloaned => "iceoryx2, pre-loaned",
            System::Uds => "Unix socket",
        }
    }
}

/// One side of a ping-pong.
pub trait PingPong {
    /// Sends message `seq`: `size` bytes of which only the first 8 (the
    /// sequence number) are written, in place where the system allows it.
    fn send(&mut self, seq: u64) -> Result<()>;
    /// Polls once: the sequence number of the next message, if one is there.
    fn try_recv(&mut self) -> Result<Option<u64>>;
}

/// The producer of a throughput run.
pub trait Source {
    /// Tries to publish `payload` (its first 8 bytes are the sequence
    /// number), copying it once into the system. `Ok(false)`: no room yet,
    /// call again with the same payload.
    fn try_send(&mut self, payload: &[u8]) -> Result<bool>;
}

/// A subscriber of a throughput run.
pub trait Sink {
    /// Polls once: the sequence number of the next message, if one is there.
    fn try_recv(&mut self) -> Result<Option<u64>>;
}

/// Messages per burst of the batched throughput rows.
pub const BURST: usize = 32;

/// The producer of a batched throughput run (its own loop,
/// `throughput::produce_bursts`; the one-by-one systems keep theirs).
pub trait BurstSource {
    /// Tries to publish the payloads of `payloads` in order (each copied
    /// once into the system; the first 8 bytes of each are its sequence
    /// number) and returns how many leading ones it published: 0 when there
    /// is no room for the first (call again), else at least 1.
    fn try_send_burst(&mut self, payloads: &[&[u8]]) -> Result<usize>;
}

/// A subscriber of a batched throughput run.
pub trait BurstSink {
    /// Polls once: hands the sequence numbers of up to `limit` messages
    /// that are ready, in order, to `f`, and returns how many (0: none
    /// ready).
    fn try_recv_burst(&mut self, limit: usize, f: impl FnMut(u64)) -> Result<usize>;
}

/// Bytes of buffering every system gets for `size`-byte messages: the ring
/// shm-bus picks for that payload, [`BusConfig::ring_bytes_for`]: its
/// default 1 MiB while that holds eight records, else two records rounded
/// up to a power of two (4 MiB for 1 MiB payloads), so that a ring of
/// large messages is rewritten while still in cache instead of streaming
/// through memory. The floor ring, iceoryx2's subscriber buffer and the
/// ring-sized memcpy get the same bytes.
///
/// [`BusConfig::ring_bytes_for`]: shm_bus_core::BusConfig::ring_bytes_for
pub fn ring_for(size: usize) -> u64 {
    shm_bus_core::BusConfig::ring_bytes_for(size)
}

#[inline]
pub fn seq_of(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(b)
}
