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
    ShmBus,
    Iceoryx2,
    /// Latency only: iceoryx2 with the next sample loaned before waiting
    /// for the answer, as iceoryx2's own benchmark does.
    Iceoryx2Preloaned,
    Uds,
}

impl System {
    /// In the order of a round (each round starts one further along).
    pub const ALL: [System; 4] = [System::Floor, System::ShmBus, System::Iceoryx2, System::Uds];
    /// The latency workload also measures iceoryx2 the way its own
    /// benchmark does.
    pub const LATENCY: [System; 5] = [
        System::Floor,
        System::ShmBus,
        System::Iceoryx2,
        System::Iceoryx2Preloaned,
        System::Uds,
    ];

    pub fn name(self) -> &'static str {
        match self {
            System::Floor => "floor",
            System::ShmBus => "shm-bus",
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

/// Bytes of buffering every system gets for `size`-byte messages: several
/// messages, at least 1 MiB (a power of two, as shm-bus needs; shm-bus
/// needs at least 2 × payload + 64).
pub fn ring_for(size: usize) -> u64 {
    ((size as u64 + 64) * 8).next_power_of_two().max(1 << 20)
}

#[inline]
pub fn seq_of(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(b)
}
