//! Arena alloc+free pairs and ByteMap lookups, in one process.
//!
//! `cargo bench -p shm-bus-alloc --bench alloc -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shm_bus_alloc::{ByteMap, Segment};

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

fn benches(c: &mut Criterion) {
    let name = format!("bench-alloc-{}", std::process::id());
    let _guard = Unlink(name.clone());
    let seg = Segment::builder(&name)
        .size(16 << 20)
        .create(|init| {
            let map = ByteMap::create(&init.arena(), 2048, 64 * 1024)?;
            for i in 0..1000 {
                map.insert(format!("market/quote/SYM{i}").as_bytes(), i)?;
            }
            init.set_root(0, map.offset())
        })
        .expect("create segment");
    let arena = seg.arena();

    let mut g = c.benchmark_group("arena");
    g.throughput(Throughput::Elements(1));
    g.bench_function("alloc_free_pair_64B", |b| {
        b.iter(|| {
            let p = arena.alloc(black_box(64), 8).unwrap();
            arena.free(p).unwrap();
        })
    });
    g.bench_function("alloc_free_pair_mixed_sizes", |b| {
        let sizes = [24u64, 100, 700, 4000];
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 3;
            let p = arena.alloc(black_box(sizes[i]), 16).unwrap();
            arena.free(p).unwrap();
        })
    });
    g.finish();

    let map = ByteMap::attach(&seg, seg.root(0).unwrap()).unwrap();
    let mut g = c.benchmark_group("bytemap");
    g.bench_function("get_hit", |b| {
        let mut i = 0u64;
        let keys: Vec<Vec<u8>> = (0..1000)
            .map(|i| format!("market/quote/SYM{i}").into_bytes())
            .collect();
        b.iter(|| {
            i = (i + 1) % 1000;
            black_box(map.get(black_box(&keys[i as usize])).unwrap())
        })
    });
    g.bench_function("get_miss", |b| {
        let mut i = 0u64;
        let keys: Vec<Vec<u8>> = (0..1000)
            .map(|i| format!("market/trade/SYM{i}").into_bytes())
            .collect();
        b.iter(|| {
            i = (i + 1) % 1000;
            black_box(map.get(black_box(&keys[i as usize])).unwrap())
        })
    });
    g.finish();
}

criterion_group!(alloc, benches);
criterion_main!(alloc);
