//! Criterion benchmarks of the topic language.
//!
//! Run: `cargo bench -p shm-bus-topic --bench topic`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use shm_bus_topic::{SubscriptionIndex, Topic, matches};

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for text in [
        "md.XNAS.AAPL.trade",
        "md.{venue}.+sym.(bid|ask)",
        "md.{venue}./^[A-Z]{1,5}$/.trade",
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(text), text, |b, t| {
            b.iter(|| Topic::parse(black_box(t)).unwrap())
        });
    }
    g.finish();
}

fn matching(c: &mut Criterion) {
    let topic = Topic::parse("md.XNAS.AAPL.trade").unwrap();
    let mut g = c.benchmark_group("match_4_parts");
    for (name, pattern) in [
        ("exact", "md.XNAS.AAPL.trade"),
        ("exact_mismatch", "md.XNAS.AAPL.quote"),
        ("wildcard", "md.{venue}.{sym}.{kind}"),
        ("range", "md.(XNYS|XNAS).(MSFT|AAPL).(trade|quote)"),
        ("regex", "md.XNAS./^[A-Z]{1,5}$/.trade"),
        ("rest", "md.**.trade"),
    ] {
        let p = Topic::parse(pattern).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| matches(black_box(&p), black_box(&topic)))
        });
    }
    let p = Topic::parse("md.{venue}.{sym}.{kind}").unwrap();
    g.bench_function("wildcard_with_captures", |b| {
        b.iter(|| black_box(&p).match_with(black_box(&topic)).matched())
    });
    g.finish();
}

/// `n` patterns that cannot match `md.XNAS.AAPL.trade`, spread over the
/// part kinds, plus the one that matches.
fn patterns(n: usize) -> Vec<Topic> {
    let mut v = vec![Topic::parse("md.{venue}.AAPL.(trade|quote)").unwrap()];
    for k in 1..n {
        let text = match k % 5 {
            0 => format!("md.XNAS.SYM{k}.trade"),
            1 => format!("md.{{venue}}.SYM{k}.{{kind}}"),
            2 => format!("md.(XNYS|V{k}).AAPL.trade"),
            3 => format!("svc{k}./^q[0-9]+$/.last"),
            _ => format!("log{k}.**"),
        };
        v.push(Topic::parse(&text).unwrap());
    }
    v
}

fn index_lookup(c: &mut Criterion) {
    let topic = Topic::parse("md.XNAS.AAPL.trade").unwrap();
    let mut g = c.benchmark_group("index_lookup");
    for n in [1usize, 100, 10_000, 100_000] {
        let mut index = SubscriptionIndex::new();
        for (i, p) in patterns(n).iter().enumerate() {
            index.insert(p, i as u32);
        }
        let mut out = Vec::new();
        index.query_into(&topic, &mut out);
        assert_eq!(out, vec![0], "exactly the one matching pattern");
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                index.query_into(black_box(&topic), &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse, matching, index_lookup);
criterion_main!(benches);
