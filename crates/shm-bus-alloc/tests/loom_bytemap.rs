//! Loom models of the `ByteMap` slot protocol, on heap memory pre-filled
//! with garbage.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p shm-bus-alloc --release --test loom_bytemap`
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shm_bus_alloc::Insert;
use shm_bus_alloc::model::Model;

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = None;
    b
}

/// Two writers insert the same key with different values: both end up
/// agreeing on one value, which is what a later reader sees.
#[test]
fn same_key_inserters_agree() {
    builder().check(|| {
        let m = Arc::new(Model::map(4, 16));
        let m2 = m.clone();
        let t = thread::spawn(move || m2.insert(2, b"topic", 200).unwrap().value(200));
        let mine = m.insert(1, b"topic", 100).unwrap().value(100);
        let theirs = t.join().unwrap();
        assert_eq!(mine, theirs);
        assert_eq!(m.get(b"topic").unwrap(), Some(mine));
        assert_eq!(m.count().unwrap(), 1);
    });
}

/// A reader racing an insert sees nothing or the complete entry, never a
/// torn one.
#[test]
fn reader_sees_absent_or_complete() {
    builder().check(|| {
        let m = Arc::new(Model::map(4, 16));
        let m2 = m.clone();
        let t = thread::spawn(move || m2.insert(2, b"k", 42).unwrap());
        let seen = m.get(b"k").unwrap();
        assert!(seen.is_none() || seen == Some(42), "{seen:?}");
        assert_eq!(t.join().unwrap(), Insert::Inserted);
        assert_eq!(m.get(b"k").unwrap(), Some(42));
    });
}

/// Distinct keys colliding in a two-slot map both land.
#[test]
fn colliding_keys_both_land() {
    builder().check(|| {
        let m = Arc::new(Model::map(2, 8));
        let m2 = m.clone();
        let t = thread::spawn(move || m2.insert(2, b"a", 1).unwrap());
        assert_eq!(m.insert(1, b"b", 2).unwrap(), Insert::Inserted);
        assert_eq!(t.join().unwrap(), Insert::Inserted);
        assert_eq!(m.get(b"a").unwrap(), Some(1));
        assert_eq!(m.get(b"b").unwrap(), Some(2));
    });
}

/// A writer died after claiming the key's slot: neither a reader nor two
/// racing writers hang, and the writers still agree.
#[test]
fn dead_writer_does_not_block() {
    builder().check(|| {
        let m = Arc::new(Model::map(4, 16));
        m.die_mid_insert(9, b"k");
        m.kill(9);
        assert_eq!(m.get(b"k").unwrap(), None);
        let m2 = m.clone();
        let t = thread::spawn(move || m2.insert(2, b"k", 2).unwrap().value(2));
        let a = m.insert(1, b"k", 1).unwrap().value(1);
        assert_eq!(a, t.join().unwrap());
        assert_eq!(m.remove(b"k").unwrap(), Some(a));
        assert_eq!(m.get(b"k").unwrap(), None);
    });
}
