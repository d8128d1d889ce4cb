//! The batch APIs: `Publisher::publish_many`, `Subscriber::try_recv_many`
//! and `recv_many` (in one process: these check the API's contract; the
//! cross-process protocol underneath is the one `tests/processes.rs` runs).

use std::time::Duration;

use shm_bus_core::{Bus, BusConfig, Policy, PublishError, RecvError};
use shm_bus_testkit::unique;

fn payload(i: u32) -> Vec<u8> {
    let mut p = i.to_le_bytes().to_vec();
    p.resize(8 + (i as usize % 50), i as u8);
    p
}

#[test]
fn bursts_arrive_whole_in_order_and_filtered() {
    let (name, _c) = unique("batch");
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(1 << 16)).unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("md.{x}").unwrap();
    let mut publ = bus.publisher("p").unwrap();
    let wanted: Vec<Vec<u8>> = (0..100).map(payload).collect();
    let skipped: Vec<Vec<u8>> = (1000..1010).map(payload).collect();
    assert_eq!(
        publ.publish_many("md.a", wanted[..50].iter().map(Vec::as_slice))
            .unwrap(),
        50
    );
    assert_eq!(
        publ.publish_many("other", skipped.iter().map(Vec::as_slice))
            .unwrap(),
        10
    );
    assert_eq!(
        publ.publish_many("md.b", wanted[50..].iter().map(Vec::as_slice))
            .unwrap(),
        50
    );
    assert_eq!(publ.publish_many("md.c", std::iter::empty()).unwrap(), 0);

    let mut got: Vec<(String, Vec<u8>, u64)> = Vec::new();
    let mut take = |limit| {
        sub.try_recv_many(limit, |s| {
            got.push((s.topic().to_owned(), s.payload().to_vec(), s.sequence()))
        })
    };
    assert_eq!(take(0).unwrap(), 0);
    assert_eq!(take(30).unwrap(), 30);
    assert_eq!(
        take(1000).unwrap(),
        70,
        "the rest, passing the skipped topic"
    );
    assert_eq!(take(10).unwrap(), 0, "nothing ready: Ok(0), not Empty");
    let payloads: Vec<Vec<u8>> = got.iter().map(|g| g.1.clone()).collect();
    assert_eq!(payloads, wanted);
    assert!(got[..50].iter().all(|g| g.0 == "md.a"));
    assert!(got[50..].iter().all(|g| g.0 == "md.b"));
    let seqs: Vec<u64> = got.iter().map(|g| g.2).collect();
    let expected: Vec<u64> = (0..50).chain(60..110).collect();
    assert_eq!(
        seqs, expected,
        "producer sequence numbers, gaps where topics were skipped"
    );
    assert_eq!(sub.received(), 100);
}

#[test]
fn recv_many_waits_for_the_first_then_drains() {
    let (name, _c) = unique("batch-wait");
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(1 << 16)).unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("t").unwrap();
    let mut publ = bus.publisher("p").unwrap();
    let burst: Vec<Vec<u8>> = (0..5).map(payload).collect();
    publ.publish_many("t", burst.iter().map(Vec::as_slice))
        .unwrap();
    let mut n = 0;
    assert_eq!(sub.recv_many(3, |_| n += 1).unwrap(), 3);
    assert_eq!(sub.recv_many(100, |_| n += 1).unwrap(), 2);
    assert_eq!(n, 5);
    assert_eq!(sub.recv_many(0, |_| n += 1).unwrap(), 0);
    assert_eq!(
        sub.recv_timeout(Duration::from_millis(10)).unwrap_err(),
        RecvError::Timeout
    );
}

#[test]
fn an_error_after_some_deliveries_comes_with_the_next_receive() {
    let (name, _c) = unique("batch-lag");
    let bus = Bus::create(
        &name,
        BusConfig::default()
            .with_ring_bytes(4096)
            .with_policy(Policy::Overwrite),
    )
    .unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("t").unwrap();
    let mut publ = bus.publisher("p").unwrap();
    publ.publish("t", &payload(0)).unwrap();
    publ.publish("t", &payload(1)).unwrap();
    // While the first sample is handled, the producer laps the subscriber
    // (Overwrite): the second is lost, found after the first was delivered.
    let mut lapped = false;
    let n = sub
        .try_recv_many(10, |s| {
            assert_eq!(s.payload(), payload(0));
            if !lapped {
                lapped = true;
                for i in 0..200 {
                    publ.publish("t", &payload(2 + i)).unwrap();
                }
            }
        })
        .unwrap();
    assert_eq!(n, 1, "the batch stops at the error");
    match sub.try_recv() {
        Err(RecvError::Lagged(missed)) => assert!(missed > 0),
        Err(other) => panic!("expected Lagged, got {other:?}"),
        Ok(s) => panic!("expected Lagged, got a sample of {} bytes", s.len()),
    }
    // And receiving goes on after it.
    let s = sub.try_recv().unwrap();
    assert_eq!(s.payload().len(), payload(s.sequence() as u32).len());
}

#[test]
fn publish_many_stops_at_the_first_failure() {
    let (name, _c) = unique("batch-fail");
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(4096)).unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("t").unwrap();
    let mut publ = bus.publisher("p").unwrap();
    let big = vec![0u8; publ.max_payload() + 1];
    let items: Vec<&[u8]> = vec![b"one", b"two", &big, b"four"];
    assert!(matches!(
        publ.publish_many("t", items),
        Err(PublishError::PayloadTooLarge { .. })
    ));
    let mut got = Vec::new();
    sub.try_recv_many(10, |s| got.push(s.payload().to_vec()))
        .unwrap();
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn an_owned_loan_is_kept_filled_committed_and_reloaned() {
    let (name, _c) = unique("owned-loan");
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(4096)).unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("t").unwrap();
    let publ = bus.publisher("p").unwrap();
    // Pre-loan, keep the loan in a struct, fill it later.
    struct Pinger {
        next: shm_bus_core::OwnedLoan,
    }
    let mut pinger = Pinger {
        next: publ.into_loan("t", 16).unwrap(),
    };
    assert_eq!(pinger.next.len(), 16);
    assert_eq!(
        sub.try_recv().unwrap_err(),
        RecvError::Empty,
        "a loan is not a record"
    );
    for i in 0..300u64 {
        let mut loan = pinger.next;
        loan.as_mut_slice()[..8].copy_from_slice(&i.to_le_bytes());
        let (next, seq) = loan.commit_and_reloan(16).unwrap();
        assert_eq!(seq, i);
        pinger.next = next;
        let s = sub.try_recv().unwrap();
        assert_eq!(
            s.payload()[..8],
            i.to_le_bytes(),
            "300 records wrap the 4 KiB ring"
        );
    }
    // Cancelled: nothing published, the publisher comes back and works.
    let mut publ = pinger.next.cancel();
    assert_eq!(sub.try_recv().unwrap_err(), RecvError::Empty);
    publ.publish("t", b"after").unwrap();
    assert_eq!(sub.try_recv().unwrap().payload(), b"after");
    // A failed loan gives the publisher back.
    let err = publ.try_into_loan("t", 1 << 20).unwrap_err();
    assert!(matches!(err.error, PublishError::PayloadTooLarge { .. }));
    let (publ, seq) = err.publisher.into_loan("t", 0).unwrap().commit();
    assert_eq!(seq, 301);
    drop(publ);
    assert!(sub.try_recv().unwrap().is_empty());
}

#[test]
fn an_owned_loan_under_overwrite_is_staged_then_copied() {
    let (name, _c) = unique("owned-loan-ow");
    let bus = Bus::create(
        &name,
        BusConfig::default()
            .with_ring_bytes(4096)
            .with_policy(Policy::Overwrite),
    )
    .unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("t").unwrap();
    let mut loan = bus.publisher("p").unwrap().into_loan("t", 5).unwrap();
    loan.as_mut_slice().copy_from_slice(b"hello");
    let (_publ, _) = loan.commit();
    assert_eq!(sub.try_recv().unwrap().payload(), b"hello");
}

#[test]
fn try_publish_many_stops_where_the_ring_is_full_and_goes_on_later() {
    let (name, _c) = unique("batch-full");
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(4096)).unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("t").unwrap();
    let mut publ = bus.publisher("p").unwrap();
    // 96-byte records: a 4 KiB ring holds fewer than 100 of them.
    let all: Vec<Vec<u8>> = (0..100u32)
        .map(|i| [i.to_le_bytes(); 16].concat())
        .collect();
    let first = publ
        .try_publish_many("t", all.iter().map(Vec::as_slice))
        .unwrap() as usize;
    assert!((1..100).contains(&first), "{first}");
    let mut got = Vec::new();
    let mut sent = first;
    while sent < all.len() {
        let read = sub
            .try_recv_many(1000, |s| got.push(s.payload().to_vec()))
            .unwrap();
        assert!(read > 0, "what was published is readable");
        let n = publ
            .try_publish_many("t", all[sent..].iter().map(Vec::as_slice))
            .unwrap() as usize;
        assert!(n > 0, "room again once read");
        sent += n;
    }
    sub.try_recv_many(1000, |s| got.push(s.payload().to_vec()))
        .unwrap();
    assert_eq!(got, all, "each once, in order");
}
