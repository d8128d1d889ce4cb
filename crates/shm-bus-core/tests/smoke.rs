//! In-process checks of the API surface (cross-process behaviour is in
//! `tests/processes.rs`).

use std::time::Duration;

use shm_bus_core::{Bus, BusConfig, BusError, Policy, PublishError, RecvError};
use shm_bus_testkit::unique;

#[test]
fn publish_and_receive_in_one_process() {
    let (name, _c) = unique("smoke");
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(1 << 16)).unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("md.{venue}.AAPL").unwrap();
    let mut publ = bus.publisher("p").unwrap();
    publ.publish("md.XNAS.AAPL", b"hello").unwrap();
    publ.publish("md.XNAS.MSFT", b"skip me").unwrap();
    publ.publish("md.BATS.AAPL", b"").unwrap();
    {
        let s = sub.try_recv().unwrap();
        assert_eq!(s.topic(), "md.XNAS.AAPL");
        assert_eq!(s.payload(), b"hello");
        assert_eq!(s.sequence(), 0);
        assert_eq!(s.producer(), publ.id());
    }
    {
        let s = sub.try_recv().unwrap();
        assert_eq!(s.topic(), "md.BATS.AAPL");
        assert!(s.payload().is_empty());
        assert_eq!(s.sequence(), 2);
    }
    assert_eq!(sub.try_recv().unwrap_err(), RecvError::Empty);
    assert_eq!(
        sub.recv_timeout(Duration::from_millis(20)).unwrap_err(),
        RecvError::Timeout
    );
}

#[test]
fn wraps_many_times_with_padding() {
    let (name, _c) = unique("wrap");
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(4096)).unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("**").unwrap();
    let mut publ = bus.publisher("p").unwrap();
    for i in 0..5000u32 {
        let len = (i as usize * 7) % 300;
        let payload: Vec<u8> = (0..len).map(|k| (k as u32 ^ i) as u8).collect();
        publ.try_publish("a.b", &payload).unwrap();
        let s = sub.try_recv().unwrap();
        assert_eq!(s.payload(), &payload[..], "message {i}");
        assert_eq!(s.sequence(), i as u64);
    }
}

#[test]
fn block_policy_answers_full_and_frees_on_read() {
    let (name, _c) = unique("full");
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(4096)).unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("x").unwrap();
    let mut publ = bus.publisher("p").unwrap();
    let mut sent = 0;
    loop {
        match publ.try_publish("x", &[7; 100]) {
            Ok(_) => sent += 1,
            Err(PublishError::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(sent > 10);
    assert!(matches!(
        publ.publish_timeout("x", &[7; 100], Duration::from_millis(20)),
        Err(PublishError::Full)
    ));
    // Reading frees space (two records: the next one may need padding to
    // reach the ring's start).
    drop(sub.try_recv().unwrap());
    drop(sub.try_recv().unwrap());
    publ.try_publish("x", &[7; 100]).unwrap();
}

#[test]
fn bad_input_gets_typed_errors() {
    let (name, _c) = unique("bad");
    let bus = Bus::create(
        &name,
        BusConfig::default()
            .with_ring_bytes(4096)
            .with_max_topics(2)
            .with_max_subscribers(1),
    )
    .unwrap();
    let mut publ = bus.publisher("p").unwrap();
    assert!(matches!(
        publ.publish("md.{x}", b""),
        Err(PublishError::Topic(BusError::NotExact { .. }))
    ));
    assert!(matches!(
        publ.publish("a..b", b""),
        Err(PublishError::Topic(BusError::InvalidTopic(_)))
    ));
    let max = publ.max_payload();
    assert_eq!(max, 2048 - 32);
    assert!(matches!(
        publ.publish("a", &vec![0; max + 1]),
        Err(PublishError::PayloadTooLarge { len, max: m }) if len == max + 1 && m == max
    ));
    publ.publish("a", &vec![0; max]).unwrap();
    publ.publish("b", b"").unwrap();
    assert!(matches!(
        publ.publish("c", b""),
        Err(PublishError::Topic(BusError::TopicTableFull {
            capacity: 2
        }))
    ));
    publ.publish("a", b"still works").unwrap();
    let _s = bus.subscriber("one").unwrap();
    assert!(matches!(
        bus.subscriber("two"),
        Err(BusError::TooManySubscribers { max: 1 })
    ));
    assert!(matches!(
        Bus::open("no-such-bus-xyz"),
        Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. }))
    ));
    assert!(matches!(
        Bus::open_or_create(&name, BusConfig::default().with_ring_bytes(1 << 16)),
        Err(BusError::ConfigMismatch { .. })
    ));
    assert!(matches!(
        Bus::create("x", BusConfig::default().with_ring_bytes(1000)),
        Err(BusError::InvalidConfig(_))
    ));
}

#[test]
fn overwrite_policy_reports_exact_lag() {
    let (name, _c) = unique("lag");
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
    for i in 0..10u64 {
        publ.try_publish("t", &i.to_le_bytes()).unwrap();
    }
    assert_eq!(sub.try_recv().unwrap().sequence(), 0);
    for i in 10..1000u64 {
        publ.try_publish("t", &i.to_le_bytes()).unwrap();
    }
    let lag = match sub.try_recv() {
        Err(RecvError::Lagged(n)) => n,
        other => panic!("expected Lagged, got {other:?}"),
    };
    let s = sub.try_recv().unwrap();
    assert_eq!(s.sequence(), 1 + lag, "resumes right after what it missed");
    assert_eq!(
        u64::from_le_bytes(s.payload().try_into().unwrap()),
        s.sequence()
    );
    assert!(s.is_copy(), "under Overwrite a sample is a validated copy");
    let first = s.sequence();
    drop(s);
    let mut next = first + 1;
    while let Ok(s) = sub.try_recv() {
        assert_eq!(s.sequence(), next);
        next += 1;
    }
    assert_eq!(next, 1000);
    assert_eq!(sub.lagged(), lag);
}

#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Debug, PartialEq)]
#[repr(C)]
struct Quote {
    bid: f64,
    ask: f64,
    size: u64,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Order<'a> {
    id: u64,
    symbol: &'a str,
}

#[test]
fn typed_payloads() {
    let (name, _c) = unique("typed");
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(1 << 16)).unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("**").unwrap();
    let mut publ = bus.publisher("p").unwrap();
    let q = Quote {
        bid: 1.5,
        ask: 1.75,
        size: 100,
    };
    publ.publish_pod("q", &q).unwrap();
    publ.publish_serde(
        "o",
        &Order {
            id: 7,
            symbol: "AAPL",
        },
    )
    .unwrap();
    assert_eq!(sub.try_recv().unwrap().as_pod::<Quote>().unwrap(), &q);
    let s = sub.try_recv().unwrap();
    assert_eq!(
        s.decode::<Order>().unwrap(),
        Order {
            id: 7,
            symbol: "AAPL"
        }
    );
    assert!(s.as_pod::<Quote>().is_err());
    // Loans: dropping without commit publishes nothing.
    {
        let _uncommitted = publ.loan("q", 8).unwrap();
    }
    let mut loan = publ.loan("q", 3).unwrap();
    loan.as_mut_slice().copy_from_slice(b"abc");
    loan.commit();
    drop(s);
    assert_eq!(sub.try_recv().unwrap().payload(), b"abc");
}

fn segment_file(name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/shm-bus.{name}"))
        .unwrap()
}

#[test]
fn damaged_or_foreign_segments_get_typed_errors_and_disturb_nothing() {
    use std::os::unix::fs::FileExt;
    let (good, _g) = unique("good");
    let good_bus = Bus::create(&good, BusConfig::default().with_ring_bytes(4096)).unwrap();
    let mut good_pub = good_bus.publisher("p").unwrap();

    // Wrong layout version.
    let (name, _c) = unique("version");
    drop(Bus::create(&name, BusConfig::default().with_ring_bytes(4096)).unwrap());
    let f = segment_file(&name);
    f.write_at(
        &999u32.to_le_bytes(),
        shm_bus_alloc::layout::LAYOUT_VERSION as u64,
    )
    .unwrap();
    assert!(matches!(
        Bus::open(&name),
        Err(BusError::Segment(shm_bus_alloc::Error::VersionMismatch {
            found: 999,
            ..
        }))
    ));

    // A bus header field overwritten with garbage.
    let (name, _c2) = unique("hdr");
    drop(Bus::create(&name, BusConfig::default().with_ring_bytes(4096)).unwrap());
    let f = segment_file(&name);
    let mut root = [0u8; 8];
    f.read_at(&mut root, shm_bus_alloc::layout::ROOTS as u64)
        .unwrap();
    let bus_header = u64::from_le_bytes(root);
    f.write_at(&0xdead_beefu32.to_le_bytes(), bus_header + 16)
        .unwrap(); // max_producers
    assert!(matches!(Bus::open(&name), Err(BusError::Corrupt { .. })));

    // A segment that is not a bus at all (another user of the allocator).
    let (name, _c3) = unique("foreign");
    drop(shm_bus_alloc::Segment::create(&name, 1 << 20, 0o600).unwrap());
    assert!(matches!(Bus::open(&name), Err(BusError::NotABus)));

    // Truncated.
    let (name, _c4) = unique("trunc");
    drop(Bus::create(&name, BusConfig::default().with_ring_bytes(4096)).unwrap());
    segment_file(&name).set_len(8192).unwrap();
    assert!(matches!(Bus::open(&name), Err(BusError::Segment(_))));

    // None of it disturbed the healthy bus.
    good_pub.publish("still.fine", b"ok").unwrap();
    let info = Bus::open(&good).unwrap().info();
    assert_eq!(info.topics.len(), 1);
}

#[test]
fn introspection_reports_producers_subscribers_and_lag() {
    let (name, _c) = unique("info");
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(1 << 16)).unwrap();
    let mut sub = bus.subscriber("reader").unwrap();
    sub.subscribe("a.**").unwrap();
    let mut publ = bus.publisher("writer").unwrap();
    for _ in 0..10 {
        publ.publish("a.b", &[1; 64]).unwrap();
    }
    // Read everything: a caught-up subscriber publishes its cursor.
    for _ in 0..10 {
        drop(sub.try_recv().unwrap());
    }
    assert_eq!(sub.try_recv().unwrap_err(), RecvError::Empty);
    for _ in 0..5 {
        publ.publish("a.b", &[1; 64]).unwrap();
    }
    let info = bus.info();
    assert_eq!(info.config.ring_bytes, 1 << 16);
    assert_eq!(
        info.topics,
        vec![(shm_bus_core::TopicId(0), "a.b".to_owned())]
    );
    let p = &info.producers[0];
    assert_eq!(
        (p.name.as_str(), p.alive, p.published),
        ("writer", true, 15)
    );
    assert_eq!(p.tail, 15 * 96);
    let s = &info.subscribers[0];
    assert_eq!((s.name.as_str(), s.alive, s.received), ("reader", true, 10));
    assert_eq!(s.lag_bytes, 5 * 96, "five unread 96-byte records");
    assert!(info.arena.unwrap().used > 0);
    assert_eq!(
        bus.reap(),
        shm_bus_core::ReapReport::default(),
        "nobody is dead"
    );
}

#[test]
fn a_sample_held_while_the_producer_laps_keeps_its_payload() {
    let (name, _c) = unique("held");
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
    publ.try_publish("t", &0u64.to_le_bytes()).unwrap();
    {
        let held = sub.try_recv().unwrap();
        assert_eq!(held.sequence(), 0);
        // Lap the ring many times while the sample is held: its payload is
        // a validated copy, which the producer cannot touch.
        for i in 1..200u64 {
            publ.try_publish("t", &i.to_le_bytes()).unwrap();
        }
        assert_eq!(held.payload(), 0u64.to_le_bytes());
        assert_eq!(held.as_pod::<u64>().unwrap(), &0);
    }
    assert_eq!(sub.received(), 1);
    let n = match sub.try_recv() {
        Err(RecvError::Lagged(n)) => n,
        other => panic!("expected Lagged, got {other:?}"),
    };
    let next = sub.try_recv().unwrap();
    assert_eq!(next.sequence(), 1 + n, "the n records after 0 were missed");
    assert_eq!(
        u64::from_le_bytes(next.payload().try_into().unwrap()),
        1 + n
    );
    drop(next);
    assert_eq!(sub.lagged(), n);
    assert_eq!(sub.received(), 2);
}

#[test]
fn delivery_is_in_the_type_borrowed_needs_block() {
    use shm_bus_core::delivery::{Borrowed, Copied};
    let (name, _c) = unique("deliv-o");
    let lossy = Bus::create(
        &name,
        BusConfig::default()
            .with_ring_bytes(4096)
            .with_policy(Policy::Overwrite),
    )
    .unwrap();
    match lossy.subscriber_as::<Borrowed>("b") {
        Err(BusError::BorrowNeedsBlock { policy }) => assert_eq!(policy, Policy::Overwrite),
        other => panic!("expected BorrowNeedsBlock, got {other:?}"),
    }
    assert_eq!(lossy.info().subscribers.len(), 0, "nothing was attached");
    let (name, _c2) = unique("deliv-b");
    let lossless = Bus::create(&name, BusConfig::default().with_ring_bytes(4096)).unwrap();
    let mut borrowed = lossless.subscriber_as::<Borrowed>("b").unwrap();
    let mut copied = lossless.subscriber_as::<Copied>("c").unwrap();
    assert!(!borrowed.copies() && copied.copies());
    borrowed.subscribe("t").unwrap();
    copied.subscribe("t").unwrap();
    let mut publ = lossless.publisher("p").unwrap();
    publ.try_publish("t", b"same bytes").unwrap();
    let (b, c) = (borrowed.try_recv().unwrap(), copied.try_recv().unwrap());
    assert!(!b.is_copy() && c.is_copy());
    assert_eq!(b.payload(), b"same bytes");
    assert_eq!(c.payload(), b"same bytes");
}

#[test]
fn a_loan_under_overwrite_is_staged_and_committed_whole() {
    let (name, _c) = unique("loan-o");
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
    for round in 0..100u8 {
        let len = 1 + round as usize % 77;
        let mut loan = publ.loan("t", len).unwrap();
        assert_eq!(loan.as_mut_slice().as_ptr() as usize % 32, 0, "aligned");
        loan.as_mut_slice().fill(round);
        loan.commit();
        let s = sub.try_recv().unwrap();
        assert_eq!(s.payload(), vec![round; len], "round {round}");
    }
    // A loan dropped uncommitted publishes nothing.
    {
        let _uncommitted = publ.loan("t", 8).unwrap();
    }
    assert!(matches!(sub.try_recv(), Err(RecvError::Empty)));
}

#[test]
fn every_valid_topic_capacity_can_be_created_and_filled() {
    // The segment size must cover the arena's size-class rounding: above
    // ~21,800 topics it once did not, and `create` failed.
    for topics in [1_000u32, 21_900, 100_000, shm_bus_core::MAX_TOPICS] {
        let (name, _cleanup) = unique("topics");
        let config = BusConfig::default()
            .with_max_topics(topics)
            .with_max_producers(1)
            .with_max_subscribers(1);
        let bus = Bus::create(&name, config).unwrap_or_else(|e| panic!("{topics} topics: {e}"));
        if topics <= 100_000 {
            // Every id can be handed out; one more is a typed error.
            let mut publisher = bus.publisher("filler").unwrap();
            for i in 0..topics {
                publisher.topic_id(&format!("t.{i}")).unwrap();
            }
            assert!(matches!(
                publisher.topic_id("one.too.many"),
                Err(BusError::TopicTableFull { .. })
            ));
        }
    }
}

#[test]
fn a_config_mismatch_names_the_field_and_shows_the_mode_in_octal() {
    let (name, _c) = unique("mismatch");
    let _bus = Bus::create(
        &name,
        BusConfig::default()
            .with_ring_bytes(4096)
            .with_policy(Policy::Overwrite),
    )
    .unwrap();
    let err = Bus::open_or_create(&name, BusConfig::default().with_ring_bytes(1 << 16))
        .expect_err("a smaller ring and another policy");
    let text = err.to_string();
    assert!(
        text.contains("ring_bytes is 4096, at least 65536 was asked"),
        "{text}"
    );
    assert!(
        text.contains("policy is overwrite, block was asked"),
        "{text}"
    );
    assert!(!text.contains("max_topics"), "only what differs: {text}");
    let debug = format!("{:?}", BusConfig::default());
    assert!(debug.contains("mode: 0o600"), "{debug}");
}

#[test]
fn a_sample_gives_the_captures_of_the_pattern_that_matched() {
    let (name, _c) = unique("captures");
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(4096)).unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("md.{venue}.+sym").unwrap();
    sub.subscribe("md.XNAS.{ticker}").unwrap();
    sub.subscribe("news").unwrap();
    let mut publ = bus.publisher("p").unwrap();
    publ.publish("md.XNAS.AAPL", b"1").unwrap();
    publ.publish("news", b"2").unwrap();
    let s = sub.try_recv().unwrap();
    assert_eq!(
        s.captures(),
        [
            ("venue".to_owned(), "XNAS".to_owned()),
            ("sym".to_owned(), "AAPL".to_owned())
        ],
        "the pattern subscribed first wins"
    );
    assert_eq!(s.capture("sym").as_deref(), Some("AAPL"));
    assert_eq!(s.capture("ticker"), None);
    drop(s);
    let s = sub.try_recv().unwrap();
    assert!(s.captures().is_empty(), "an exact pattern captures nothing");
}

#[test]
fn a_removed_bus_is_noticed_by_the_processes_still_attached() {
    let (name, _c) = unique("removed");
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(4096)).unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("t").unwrap();
    let mut publ = bus.publisher("p").unwrap();
    publ.publish("t", b"before").unwrap();
    // A receiver asleep in another thread wakes when the bus is removed.
    let sleeper = {
        let bus = bus.clone();
        std::thread::spawn(move || {
            let mut s = bus.subscriber("sleeper").unwrap();
            s.subscribe("nothing.comes").unwrap();
            s.recv().map(|_| ()).unwrap_err()
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(!bus.is_removed());
    Bus::remove(&name).unwrap();
    assert!(bus.is_removed());
    assert_eq!(sleeper.join().unwrap(), RecvError::BusRemoved);
    // What was committed before is still delivered, then the removal.
    assert_eq!(sub.recv().unwrap().payload(), b"before");
    assert_eq!(
        sub.recv_timeout(Duration::from_secs(5)).unwrap_err(),
        RecvError::BusRemoved
    );
    // A publisher learns within 4096 publishes, or at once when it waits.
    let mut answer = None;
    for _ in 0..=4096 {
        match publ.try_publish("t", b"x") {
            Ok(_) | Err(PublishError::Full) => {}
            Err(e) => {
                answer = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(answer, Some(PublishError::BusRemoved)),
        "{answer:?}"
    );
    assert!(matches!(
        publ.publish_timeout("t", b"x", Duration::from_secs(5)),
        Err(PublishError::BusRemoved)
    ));
    assert!(Bus::open(&name).is_err(), "gone for new openers");
}

fn drain_sequences(sub: &mut shm_bus_core::Subscriber) -> Vec<u64> {
    let mut seqs = Vec::new();
    loop {
        match sub.try_recv() {
            Ok(s) => {
                assert_eq!(s.payload(), s.sequence().to_le_bytes().repeat(8), "intact");
                seqs.push(s.sequence());
            }
            Err(RecvError::Empty) => return seqs,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn history_lets_a_late_subscriber_start_with_what_the_ring_retains() {
    use shm_bus_core::Start;
    let (name, _c) = unique("history");
    let config = BusConfig::default()
        .with_ring_bytes(64 << 10)
        .with_history_bytes(16 << 10);
    assert_eq!(config.max_payload(), (32 << 10) - 32 - (16 << 10));
    let bus = Bus::create(&name, config).unwrap();
    let mut publ = bus.publisher("p").unwrap();
    assert!(matches!(
        publ.try_publish("t", &vec![0; config.max_payload() + 1]),
        Err(PublishError::PayloadTooLarge { .. })
    ));
    // 2,000 records of 96 bytes: the 64 KiB ring wrapped many times.
    for i in 0..2000u64 {
        publ.try_publish("t", &i.to_le_bytes().repeat(8)).unwrap();
    }
    let mut now = bus.subscriber_from("now", Start::Now).unwrap();
    now.subscribe("t").unwrap();
    assert!(
        drain_sequences(&mut now).is_empty(),
        "Start::Now: nothing old"
    );
    let mut old = bus.subscriber_from("old", Start::Oldest).unwrap();
    old.subscribe("t").unwrap();
    let seqs = drain_sequences(&mut old);
    let kept = (16 << 10) / 96;
    assert!(
        !seqs.is_empty() && seqs.len() <= kept + 1,
        "{} records of history (at most {kept})",
        seqs.len()
    );
    assert_eq!(*seqs.last().unwrap(), 1999, "up to the newest");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, no gap"
    );
    // Both keep receiving what comes next.
    publ.try_publish("t", &2000u64.to_le_bytes().repeat(8))
        .unwrap();
    assert_eq!(drain_sequences(&mut now), [2000]);
    assert_eq!(drain_sequences(&mut old), [2000]);
    // Without history, Block keeps nothing older for a late subscriber.
    let (plain, _c2) = unique("no-history");
    let bus = Bus::create(&plain, BusConfig::default().with_ring_bytes(4096)).unwrap();
    let mut publ = bus.publisher("p").unwrap();
    publ.try_publish("t", &7u64.to_le_bytes().repeat(8))
        .unwrap();
    let mut old = bus.subscriber_from("old", Start::Oldest).unwrap();
    old.subscribe("t").unwrap();
    assert!(drain_sequences(&mut old).is_empty());
}

#[test]
fn history_under_overwrite_is_what_the_ring_still_holds() {
    use shm_bus_core::Start;
    let (name, _c) = unique("history-ow");
    let bus = Bus::create(
        &name,
        BusConfig::default()
            .with_ring_bytes(4096)
            .with_policy(Policy::Overwrite),
    )
    .unwrap();
    let mut publ = bus.publisher("p").unwrap();
    for i in 0..500u64 {
        publ.try_publish("t", &i.to_le_bytes().repeat(8)).unwrap();
    }
    let mut old = bus.subscriber_from("old", Start::Oldest).unwrap();
    old.subscribe("t").unwrap();
    let seqs = drain_sequences(&mut old);
    assert!(seqs.len() > 1, "{seqs:?}");
    assert_eq!(*seqs.last().unwrap(), 499);
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no lag reported, no gap"
    );
}

#[test]
fn a_bad_history_is_a_config_error() {
    for history in [100, (4096 / 4) + 32] {
        assert!(matches!(
            BusConfig::default()
                .with_ring_bytes(4096)
                .with_history_bytes(history)
                .validate(),
            Err(BusError::InvalidConfig(_))
        ));
    }
}

#[test]
fn late_subscribers_from_oldest_never_read_a_record_being_overwritten() {
    use shm_bus_core::Start;
    // A producer publishing without pause (Block, with history) while
    // subscribers keep joining from the oldest retained record and reading
    // a while: every record they read is intact and in order.
    let (name, _c) = unique("history-race");
    let bus = Bus::create(
        &name,
        BusConfig::default()
            .with_ring_bytes(16 << 10)
            .with_history_bytes(4 << 10),
    )
    .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let (bus, stop) = (bus.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut publ = bus.publisher("p").unwrap();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match publ.publish_timeout(
                    "t",
                    &i.to_le_bytes().repeat(8),
                    Duration::from_millis(50),
                ) {
                    Ok(_) => i += 1,
                    Err(PublishError::Full) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            i
        })
    };
    let watchdog = std::time::Instant::now() + Duration::from_secs(60);
    for round in 0..200 {
        assert!(std::time::Instant::now() < watchdog, "watchdog");
        let mut sub = bus.subscriber_from("late", Start::Oldest).unwrap();
        sub.subscribe("t").unwrap();
        let mut last = None;
        for _ in 0..50 {
            match sub.recv_timeout(Duration::from_secs(5)) {
                Ok(s) => {
                    assert_eq!(
                        s.payload(),
                        s.sequence().to_le_bytes().repeat(8),
                        "round {round}: intact"
                    );
                    if let Some(prev) = last {
                        assert_eq!(s.sequence(), prev + 1, "round {round}: in order");
                    }
                    last = Some(s.sequence());
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(producer.join().unwrap() > 0);
}

#[test]
fn prefault_changes_no_byte_of_the_rings() {
    let (name, _c) = unique("prefault");
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(1 << 16)).unwrap();
    let mut sub = bus.subscriber("s").unwrap();
    sub.subscribe("t").unwrap();
    let mut publ = bus.publisher("p").unwrap();
    publ.publish("t", b"before").unwrap();
    // Another handle (as another process would have) prefaults while a
    // record is waiting to be read.
    let other = Bus::open(&name).unwrap();
    other.prefault().unwrap();
    bus.prefault().unwrap();
    publ.publish("t", b"after").unwrap();
    assert_eq!(sub.try_recv().unwrap().payload(), b"before");
    assert_eq!(sub.try_recv().unwrap().payload(), b"after");
    assert_eq!(sub.try_recv().unwrap_err(), RecvError::Empty);
}
