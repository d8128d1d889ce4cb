//! EventEngine dispatch throughput with 1, 1,000 and 10,000 generic
//! handlers registered, exactly one of which matches the events.
//!
//! - `engine_local`: an in-process engine; one iteration puts one event
//!   and dispatches it (`put` + `dispatch_pending`), so it measures the
//!   queue, the per-topic route cache and the handler call (with its
//!   statistics and panic guard).
//! - `engine_bus`: the same over a bus (the engine's own publisher and
//!   subscriber, one process): ring write, receive, route, call.
//! - `linear_scan`: the reference: matching the event's topic against
//!   every pattern in turn, as PyEventEngine does (no queue, no call).
//!
//! Events cycle over 64 topics, all matched by the one matching pattern.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shm_bus_core::{Bus, BusConfig};
use shm_bus_engine::{EventEngine, Handler, Message, Wait};
use shm_bus_topic::{Topic, matches};

const SIZES: [usize; 3] = [1, 1_000, 10_000];

/// `n` generic patterns; the first matches every event topic, the others
/// (wildcards, ranges, regexes, `**`) match none.
fn patterns(n: usize) -> Vec<String> {
    let mut v = vec!["md.{venue}.+sym.(trade|quote)".to_owned()];
    for k in 1..n {
        v.push(match k % 5 {
            0 => format!("md.+v.SYM{k}.trade"),
            1 => format!("md.{{venue}}.SYM{k}.{{kind}}"),
            2 => format!("md.(XNYS|V{k}).AAPL.nope"),
            3 => format!("svc{k}./^q[0-9]+$/.last"),
            _ => format!("log{k}.**"),
        });
    }
    v
}

fn topics() -> Vec<String> {
    (0..64).map(|i| format!("md.XNAS.S{i}.trade")).collect()
}

fn register(engine: &EventEngine, n: usize, hits: &Arc<AtomicU64>) {
    for (i, p) in patterns(n).iter().enumerate() {
        let h = hits.clone();
        let handler = if i == 0 {
            Handler::new(move |m: &Message<'_>| {
                h.fetch_add(m.payload().len() as u64, Ordering::Relaxed);
            })
        } else {
            Handler::new(|_m: &Message<'_>| unreachable!("a non-matching pattern fired"))
        };
        engine.register_handler(p, handler, false).unwrap();
    }
}

/// Removes the bench's bus even when the bench panics.
struct Remove(Option<String>);

impl Drop for Remove {
    fn drop(&mut self) {
        if let Some(name) = &self.0 {
            let _ = Bus::remove(name);
        }
    }
}

fn run(c: &mut Criterion, group: &str, make: impl Fn() -> (EventEngine, Option<String>)) {
    let topics = topics();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        let (engine, bus) = make();
        let _remove = Remove(bus);
        let hits = Arc::new(AtomicU64::new(0));
        register(&engine, n, &hits);
        engine
            .put(&topics[0], b"8 bytes!", Wait::non_blocking())
            .unwrap();
        engine.dispatch_pending().unwrap();
        assert_eq!(
            hits.load(Ordering::Relaxed),
            8,
            "the one matching handler fired"
        );
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 63;
                engine
                    .put(&topics[i], b"8 bytes!", Wait::non_blocking())
                    .unwrap();
                engine.dispatch_pending().unwrap()
            })
        });
    }
    g.finish();
}

fn engine_local(c: &mut Criterion) {
    run(c, "engine_local", || (EventEngine::new(1024), None));
}

fn engine_bus(c: &mut Criterion) {
    run(c, "engine_bus", || {
        let name = format!("bench-engine-{}", std::process::id());
        let _ = Bus::remove(&name);
        let bus = Bus::create(&name, BusConfig::default()).unwrap();
        (EventEngine::with_bus(&bus, "bench").unwrap(), Some(name))
    });
}

fn linear_scan(c: &mut Criterion) {
    let topics: Vec<Topic> = topics().iter().map(|t| Topic::parse(t).unwrap()).collect();
    let mut g = c.benchmark_group("linear_scan");
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        let pats: Vec<Topic> = patterns(n)
            .iter()
            .map(|p| Topic::parse(p).unwrap())
            .collect();
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 63;
                let t = &topics[i];
                pats.iter().filter(|p| matches(p, black_box(t))).count()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, engine_local, engine_bus, linear_scan);
criterion_main!(benches);
