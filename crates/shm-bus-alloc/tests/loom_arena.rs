//! Loom models of the robust lock, its undo log and the arena, on heap
//! memory pre-filled with garbage.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p shm-bus-alloc --release --test loom_arena`
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shm_bus_alloc::model::Model;

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.max_branches = 100_000;
    b
}

/// Two actors allocate and free concurrently: mutual exclusion holds, no
/// block is handed out twice, the structure checks out afterwards.
#[test]
fn concurrent_alloc_free_is_exclusive() {
    builder().check(|| {
        let m = Arc::new(Model::arena(1024));
        let m2 = m.clone();
        let t = thread::spawn(move || {
            let p = m2.alloc(2, 40, 8).unwrap();
            m2.free(2, p).unwrap();
            p
        });
        let q = m.alloc(1, 40, 8).unwrap();
        let p = t.join().unwrap();
        // p was freed, so q may reuse it, but only if t freed it before.
        let again = m.alloc(1, 40, 8).unwrap();
        assert_ne!(again, q, "a live block was handed out twice");
        let _ = p;
        m.free(1, q).unwrap();
        m.free(1, again).unwrap();
        let s = m.check(1).unwrap();
        assert_eq!(s.used, 0);
    });
}

/// A holder died with a half-done allocation in its undo log; two actors
/// race to take over. Exactly one rolls back, both then allocate distinct
/// blocks, and the arena is exactly as before the dead holder's operation.
#[test]
fn dead_holder_is_recovered_exactly_once() {
    builder().check(|| {
        let m = Arc::new(Model::arena(1024));
        m.die_mid_alloc(9, 3);
        m.kill(9);
        let m2 = m.clone();
        let t = thread::spawn(move || m2.alloc(2, 40, 8).unwrap());
        let a = m.alloc(1, 40, 8).unwrap();
        let b = t.join().unwrap();
        assert_ne!(a, b);
        let s = m.check(1).unwrap();
        assert_eq!(s.recoveries, 1);
        assert_eq!(s.classes.iter().map(|c| c.live).sum::<u64>(), 2);
        m.free(1, a).unwrap();
        m.free(1, b).unwrap();
        assert_eq!(m.check(1).unwrap().used, 0);
    });
}
