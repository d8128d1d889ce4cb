//! shm-bus, through its public API only.
//!
//! - Latency: one bus; the ping side publishes on `cmp.ping` and subscribes
//!   to `cmp.pong`, the echo side the reverse. A message is
//!   `loan(topic, size)`, the first 8 bytes written, `commit()`; receiving
//!   is `try_recv()` (one poll).
//! - Latency, pre-loaned (`System::ShmBusPreloaned`, the same bus and
//!   topics): the publisher lives in an `OwnedLoan` of the next message,
//!   kept between sends (the first send loans it). A message is the first
//!   8 bytes written into that loan, then `commit_and_reloan(size)`, which
//!   commits and at once loans the next message: the reservation happens
//!   right after the commit, while the peer answers, as the iceoryx2
//!   pre-loaned variant loans right after `send`.
//! - Throughput: `try_loan`, the payload copied in, `commit`; subscribers
//!   `try_recv`. Block policy (lossless), ring = [`ring_for`](super::ring_for).
//! - Throughput in bursts (`System::ShmBusBatched`, the same bus, producer
//!   and subscriber): a burst is `try_publish_many`, which publishes while
//!   the ring has room and says how many (none: `Ok(0)`, the harness waits
//!   as for every system, then sends the rest); subscribers
//!   `try_recv_many(limit, ..)`.

use anyhow::{Result, bail};
use shm_bus_core::{
    Bus, BusConfig, OwnedLoan, PublishError, Publisher, RecvError, Subscriber, TopicId,
};

use super::{BurstSink, BurstSource, PingPong, Sink, Source, seq_of};
use crate::proc::Spec;

fn config(spec: &Spec) -> Result<BusConfig> {
    let config = BusConfig::default().with_ring_bytes(spec.ring);
    if spec.size > config.max_payload() {
        bail!(
            "{} B does not fit a {} B ring (max {})",
            spec.size,
            spec.ring,
            config.max_payload()
        );
    }
    Ok(config)
}

#[inline]
fn poll(sub: &mut Subscriber) -> Result<Option<u64>> {
    match sub.try_recv() {
        Ok(sample) => Ok(Some(seq_of(sample.payload()))),
        Err(RecvError::Empty) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

// ------------------------------------------------------------- latency

pub struct Lat {
    // Field order = drop order: ports before the bus.
    publisher: Publisher,
    subscriber: Subscriber,
    topic: TopicId,
    size: usize,
    _bus: Bus,
}

impl Lat {
    pub fn create(spec: &Spec) -> Result<Lat> {
        let bus = Bus::create(&spec.bus_name(), config(spec)?)?;
        Lat::attach(bus, spec, "cmp.ping", "cmp.pong")
    }

    pub fn open(spec: &Spec) -> Result<Lat> {
        let bus = Bus::open(&spec.bus_name())?;
        Lat::attach(bus, spec, "cmp.pong", "cmp.ping")
    }

    fn attach(bus: Bus, spec: &Spec, out: &str, inp: &str) -> Result<Lat> {
        let mut publisher = bus.publisher("compare")?;
        let topic = publisher.topic_id(out)?;
        let mut subscriber = bus.subscriber("compare")?;
        subscriber.subscribe(inp)?;
        Ok(Lat {
            publisher,
            subscriber,
            topic,
            size: spec.size,
            _bus: bus,
        })
    }
}

impl PingPong for Lat {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<()> {
        let mut loan = self.publisher.loan(&self.topic, self.size)?;
        loan.as_mut_slice()[..8].copy_from_slice(&seq.to_le_bytes());
        loan.commit();
        Ok(())
    }

    #[inline]
    fn try_recv(&mut self) -> Result<Option<u64>> {
        poll(&mut self.subscriber)
    }
}

/// The pre-loaned variant's publisher: idle before the first send, then
/// always holding the next message's loan.
enum Next {
    /// Boxed as the loan holds it (a publisher is a few hundred bytes).
    Idle(Box<Publisher>),
    Loaned(OwnedLoan),
    /// Only inside `send` (a failed loan gives the publisher back).
    Gone,
}

pub struct LatPreloaned {
    // Field order = drop order: the loan (and its publisher) and the
    // subscriber before the bus. Dropping the loan publishes nothing.
    next: Next,
    subscriber: Subscriber,
    topic: TopicId,
    size: usize,
    _bus: Bus,
}

impl LatPreloaned {
    pub fn create(spec: &Spec) -> Result<LatPreloaned> {
        Ok(LatPreloaned::of(Lat::create(spec)?))
    }

    pub fn open(spec: &Spec) -> Result<LatPreloaned> {
        Ok(LatPreloaned::of(Lat::open(spec)?))
    }

    /// The same ports as the one-by-one variant; the first send loans.
    fn of(lat: Lat) -> LatPreloaned {
        let Lat {
            publisher,
            subscriber,
            topic,
            size,
            _bus,
        } = lat;
        LatPreloaned {
            next: Next::Idle(Box::new(publisher)),
            subscriber,
            topic,
            size,
            _bus,
        }
    }
}

impl PingPong for LatPreloaned {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<()> {
        let mut loan = match std::mem::replace(&mut self.next, Next::Gone) {
            Next::Loaned(loan) => loan,
            Next::Idle(publisher) => match (*publisher).into_loan(&self.topic, self.size) {
                Ok(loan) => loan,
                Err(e) => {
                    self.next = Next::Idle(e.publisher);
                    return Err(e.error.into());
                }
            },
            Next::Gone => bail!("pre-loaned publisher missing"),
        };
        loan.as_mut_slice()[..8].copy_from_slice(&seq.to_le_bytes());
        match loan.commit_and_reloan(self.size) {
            Ok((next, _)) => {
                self.next = Next::Loaned(next);
                Ok(())
            }
            Err(e) => {
                self.next = Next::Idle(e.publisher);
                Err(e.error.into())
            }
        }
    }

    #[inline]
    fn try_recv(&mut self) -> Result<Option<u64>> {
        poll(&mut self.subscriber)
    }
}

// ---------------------------------------------------------- throughput

pub struct Producer {
    publisher: Publisher,
    topic: TopicId,
    _bus: Bus,
}

impl Producer {
    pub fn create(spec: &Spec) -> Result<Producer> {
        let bus = Bus::create(&spec.bus_name(), config(spec)?)?;
        let mut publisher = bus.publisher("compare")?;
        let topic = publisher.topic_id("cmp.data")?;
        Ok(Producer {
            publisher,
            topic,
            _bus: bus,
        })
    }
}

impl Source for Producer {
    #[inline]
    fn try_send(&mut self, payload: &[u8]) -> Result<bool> {
        match self.publisher.try_loan(&self.topic, payload.len()) {
            Ok(mut loan) => {
                loan.as_mut_slice().copy_from_slice(payload);
                loan.commit();
                Ok(true)
            }
            Err(PublishError::Full) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl BurstSource for Producer {
    #[inline]
    fn try_send_burst(&mut self, payloads: &[&[u8]]) -> Result<usize> {
        // Publishes while there is room and says how many: the harness
        // waits (as for every system) when that is none.
        let n = self
            .publisher
            .try_publish_many(&self.topic, payloads.iter().copied())?;
        Ok(n as usize)
    }
}

pub struct Consumer {
    subscriber: Subscriber,
    _bus: Bus,
}

impl Consumer {
    pub fn open(spec: &Spec, pattern: &str) -> Result<Consumer> {
        let bus = Bus::open(&spec.bus_name())?;
        let mut subscriber = bus.subscriber("compare")?;
        subscriber.subscribe(pattern)?;
        Ok(Consumer {
            subscriber,
            _bus: bus,
        })
    }

    /// Adds a pattern (dispatch runs register many).
    pub fn subscribe(&mut self, pattern: &str) -> Result<()> {
        self.subscriber.subscribe(pattern)?;
        Ok(())
    }
}

impl Sink for Consumer {
    #[inline]
    fn try_recv(&mut self) -> Result<Option<u64>> {
        poll(&mut self.subscriber)
    }
}

impl BurstSink for Consumer {
    #[inline]
    fn try_recv_burst(&mut self, limit: usize, mut f: impl FnMut(u64)) -> Result<usize> {
        Ok(self
            .subscriber
            .try_recv_many(limit, |sample| f(seq_of(sample.payload())))?)
    }
}

/// Dispatch runs: a producer that cycles through many interned topics.
pub struct TopicProducer {
    publisher: Publisher,
    topics: Vec<TopicId>,
    _bus: Bus,
}

impl TopicProducer {
    pub fn create(spec: &Spec, max_topics: u32) -> Result<TopicProducer> {
        let config = config(spec)?.with_max_topics(max_topics);
        let bus = Bus::create(&spec.bus_name(), config)?;
        let publisher = bus.publisher("compare")?;
        Ok(TopicProducer {
            publisher,
            topics: Vec::new(),
            _bus: bus,
        })
    }

    pub fn intern(&mut self, topic: &str) -> Result<()> {
        let id = self.publisher.topic_id(topic)?;
        self.topics.push(id);
        Ok(())
    }

    /// Publishes `payload` on the `t`-th interned topic, if there is room.
    #[inline]
    pub fn try_send(&mut self, t: usize, payload: &[u8]) -> Result<bool> {
        match self.publisher.try_loan(&self.topics[t], payload.len()) {
            Ok(mut loan) => {
                loan.as_mut_slice().copy_from_slice(payload);
                loan.commit();
                Ok(true)
            }
            Err(PublishError::Full) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
