//! iceoryx2 (crates.io), publish-subscribe over `ipc::Service` with `[u8]`
//! slice payloads, configured as its own `benchmarks/publish-subscribe`
//! does.
//!
//! - Latency (as iceoryx2's benchmark): two services, `a2b` and `b2a`,
//!   each with 1 publisher, 1 subscriber, `history_size(0)`,
//!   `subscriber_max_buffer_size(1)`, `enable_safe_overflow(true)`;
//!   publishers with `initial_max_slice_len(size)`. A message is
//!   `loan_slice_uninit(size)`, the first 8 bytes written, `assume_init`,
//!   `send`; receiving is `receive()` (one poll, busy-polled by the loop).
//!   As for every system here, the sample is loaned inside the timed round
//!   trip. The *pre-loaned* variant does as iceoryx2's benchmark does: it
//!   loans the next sample right after sending, so the loan overlaps the
//!   peer's work instead of delaying the next send.
//! - Throughput (lossless, so the same messages arrive as with the other
//!   systems): `enable_safe_overflow(false)`, `BackpressureStrategy::
//!   RetryUntilDelivered`, `history_size(0)`, a subscriber buffer of as
//!   many samples as the payload bytes of the ring the other systems get
//!   (`ring / size`, at least 2), `max_subscribers(K)`; the producer loans
//!   a slice and copies the payload in with `write_from_slice`.
//!
//! Every process of a run uses a config whose file prefix (`iox2cmp<pid>_`)
//! and root directory (`/tmp/shm-bus-compare-<pid>/`) are unique to the
//! run, so the orchestrator can remove whatever a killed process leaves.

use std::mem::MaybeUninit;

use anyhow::{Result, anyhow};
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;

use super::{PingPong, Sink, Source, System, seq_of};
use crate::proc::Spec;
use crate::shm::iceoryx2_root;

type Pub = Publisher<ipc::Service, [u8], ()>;
type Sub = Subscriber<ipc::Service, [u8], ()>;
type Factory = PortFactory<ipc::Service, [u8], ()>;

/// Errors of iceoryx2 as anyhow errors (by their Debug form, which names
/// the variant).
fn iox<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> anyhow::Error {
    move |e| anyhow!("iceoryx2 {what}: {e:?}")
}

fn node(spec: &Spec) -> Result<Node<ipc::Service>> {
    set_log_level(LogLevel::Error);
    let mut config = Config::default();
    config.global.prefix =
        FileName::new(format!("iox2cmp{}_", spec.pid).as_bytes()).map_err(iox("prefix"))?;
    config
        .global
        .set_root_path(&Path::new(iceoryx2_root(spec.pid).as_bytes()).map_err(iox("root path"))?);
    NodeBuilder::new()
        .config(&config)
        .create::<ipc::Service>()
        .map_err(iox("node"))
}

fn service_name(spec: &Spec, what: &str) -> Result<ServiceName> {
    ServiceName::new(&format!("cmp-{}-{what}", spec.session)).map_err(iox("service name"))
}

// ------------------------------------------------------------- latency

fn lat_service(node: &Node<ipc::Service>, name: ServiceName, create: bool) -> Result<Factory> {
    let builder = node
        .service_builder(&name)
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(1)
        .enable_safe_overflow(true);
    if create {
        builder.create().map_err(iox("create service"))
    } else {
        builder.open().map_err(iox("open service"))
    }
}

type Loaned = iceoryx2::sample_mut_uninit::SampleMutUninit<ipc::Service, [MaybeUninit<u8>], ()>;

pub struct Lat {
    // Field order = drop order: the loaned sample, ports, services, node.
    next: Option<Loaned>,
    publisher: Pub,
    subscriber: Sub,
    _services: [Factory; 2],
    _node: Node<ipc::Service>,
    size: usize,
    preload: bool,
}

impl Lat {
    pub fn create(spec: &Spec) -> Result<Lat> {
        Lat::new(spec, true)
    }

    pub fn open(spec: &Spec) -> Result<Lat> {
        Lat::new(spec, false)
    }

    fn new(spec: &Spec, ping_side: bool) -> Result<Lat> {
        let node = node(spec)?;
        let a2b = lat_service(&node, service_name(spec, "a2b")?, ping_side)?;
        let b2a = lat_service(&node, service_name(spec, "b2a")?, ping_side)?;
        let (out, inp) = if ping_side {
            (&a2b, &b2a)
        } else {
            (&b2a, &a2b)
        };
        let publisher = out
            .publisher_builder()
            .initial_max_slice_len(spec.size)
            .create()
            .map_err(iox("publisher"))?;
        let subscriber = inp
            .subscriber_builder()
            .create()
            .map_err(iox("subscriber"))?;
        Ok(Lat {
            next: None,
            publisher,
            subscriber,
            _services: [a2b, b2a],
            _node: node,
            size: spec.size,
            preload: spec.system == System::Iceoryx2Preloaned,
        })
    }
}

impl PingPong for Lat {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<()> {
        let mut sample = match self.next.take() {
            Some(sample) => sample,
            None => self
                .publisher
                .loan_slice_uninit(self.size)
                .map_err(iox("loan"))?,
        };
        for (dst, b) in sample.payload_mut()[..8].iter_mut().zip(seq.to_le_bytes()) {
            *dst = MaybeUninit::new(b);
        }
        // SAFETY: the payload lives in iceoryx2's data segment, a shared
        // mapping the kernel zero-filled when it was created and into which
        // only initialised bytes were ever written, so all of it holds
        // initialised `u8`s although only the first 8 were written here (as
        // iceoryx2's own benchmark sends loaned samples without writing).
        let sample = unsafe { sample.assume_init() };
        sample.send().map_err(iox("send"))?;
        if self.preload {
            self.next = Some(
                self.publisher
                    .loan_slice_uninit(self.size)
                    .map_err(iox("loan"))?,
            );
        }
        Ok(())
    }

    #[inline]
    fn try_recv(&mut self) -> Result<Option<u64>> {
        match self.subscriber.receive().map_err(iox("receive"))? {
            Some(sample) => Ok(Some(seq_of(sample.payload()))),
            None => Ok(None),
        }
    }
}

// ---------------------------------------------------------- throughput

fn buffer(spec: &Spec) -> usize {
    (spec.ring as usize / spec.size).max(2)
}

fn tput_service(spec: &Spec, node: &Node<ipc::Service>, create: bool) -> Result<Factory> {
    let builder = node
        .service_builder(&service_name(spec, "data")?)
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(spec.subscribers as usize)
        .history_size(0)
        .subscriber_max_buffer_size(buffer(spec))
        .enable_safe_overflow(false);
    if create {
        builder.create().map_err(iox("create service"))
    } else {
        builder.open().map_err(iox("open service"))
    }
}

pub struct Producer {
    publisher: Pub,
    _service: Factory,
    _node: Node<ipc::Service>,
}

impl Producer {
    pub fn create(spec: &Spec) -> Result<Producer> {
        let node = node(spec)?;
        let service = tput_service(spec, &node, true)?;
        let publisher = service
            .publisher_builder()
            .initial_max_slice_len(spec.size)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(iox("publisher"))?;
        Ok(Producer {
            publisher,
            _service: service,
            _node: node,
        })
    }
}

impl Source for Producer {
    #[inline]
    fn try_send(&mut self, payload: &[u8]) -> Result<bool> {
        let sample = match self.publisher.loan_slice_uninit(payload.len()) {
            Ok(s) => s,
            // Every chunk still held by subscribers: wait like the others.
            Err(iceoryx2::port::LoanError::OutOfMemory) => return Ok(false),
            Err(e) => return Err(iox("loan")(e)),
        };
        // `send` blocks (RetryUntilDelivered) while a subscriber's buffer
        // is full: iceoryx2's own wait (yield, then sleep).
        sample
            .write_from_slice(payload)
            .send()
            .map_err(iox("send"))?;
        Ok(true)
    }
}

pub struct Consumer {
    subscriber: Sub,
    _service: Factory,
    _node: Node<ipc::Service>,
}

impl Consumer {
    pub fn open(spec: &Spec) -> Result<Consumer> {
        let node = node(spec)?;
        let service = tput_service(spec, &node, false)?;
        let subscriber = service
            .subscriber_builder()
            .buffer_size(buffer(spec))
            .create()
            .map_err(iox("subscriber"))?;
        Ok(Consumer {
            subscriber,
            _service: service,
            _node: node,
        })
    }
}

impl Sink for Consumer {
    #[inline]
    fn try_recv(&mut self) -> Result<Option<u64>> {
        match self.subscriber.receive().map_err(iox("receive"))? {
            Some(sample) => Ok(Some(seq_of(sample.payload()))),
            None => Ok(None),
        }
    }
}
