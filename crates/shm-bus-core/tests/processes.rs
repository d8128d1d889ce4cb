//! Cross-process behaviour with real OS processes: the test binary
//! re-executes itself in a child role (`SHM_BUS_ROLE`). Every test uses a
//! unique bus name removed on drop, and a watchdog kills children that
//! overrun instead of asserting a runtime.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use shm_bus_core::{Bus, BusConfig, Policy, RecvError};
use shm_bus_topic::Topic;

use shm_bus_testkit::{Proc, arg, arg_u64, spawn, unique};

// ----------------------------------------------------- payload format

const VENUES: [&str; 3] = ["XNAS", "XNYS", "BATS"];
const SYMS: [&str; 4] = ["AAPL", "MSFT", "IBM", "GOOG"];
const KINDS: [&str; 2] = ["trade", "quote"];

fn topics() -> Vec<String> {
    let mut v = Vec::new();
    for a in VENUES {
        for b in SYMS {
            for c in KINDS {
                v.push(format!("md.{a}.{b}.{c}"));
            }
        }
    }
    v
}

fn topic_of(producer: u64, k: u64) -> usize {
    ((k * 7 + producer * 5) % 24) as usize
}

fn fnv(data: &[u8], mut h: u64) -> u64 {
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// `[producer u64][index u64][checksum u64][body…]`, body length varying.
fn make_payload(producer: u64, index: u64, topic: &str, buf: &mut Vec<u8>) {
    let body_len = (index.wrapping_mul(2654435761) % 200) as usize;
    buf.clear();
    buf.extend_from_slice(&producer.to_le_bytes());
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(&[0; 8]);
    buf.extend((0..body_len).map(|i| (i as u64 ^ index) as u8));
    let sum = fnv(
        &buf[24..],
        fnv(topic.as_bytes(), fnv(&buf[..16], 0xcbf2_9ce4_8422_2325)),
    );
    buf[16..24].copy_from_slice(&sum.to_le_bytes());
}

/// Returns `(producer, index)` when the payload is intact for `topic`.
fn check_payload(topic: &str, p: &[u8]) -> Option<(u64, u64)> {
    if p.len() < 24 {
        return None;
    }
    let producer = u64::from_le_bytes(p[..8].try_into().ok()?);
    let index = u64::from_le_bytes(p[8..16].try_into().ok()?);
    let sum = u64::from_le_bytes(p[16..24].try_into().ok()?);
    let want = fnv(
        &p[24..],
        fnv(topic.as_bytes(), fnv(&p[..16], 0xcbf2_9ce4_8422_2325)),
    );
    (sum == want).then_some((producer, index))
}

// -------------------------------------------------------------- roles

#[test]
#[ignore = "the entry point of this binary's child processes (testkit::spawn)"]
fn child_entry() {
    let Ok(role) = std::env::var("SHM_BUS_ROLE") else {
        return; // run as a normal test: nothing to do
    };
    match role.as_str() {
        "producer" => role_producer(),
        "subscriber" => role_subscriber(),
        "stall" => role_stall(),
        "endless_producer" => role_endless_producer(),
        "verifier" => role_verifier(),
        "lag_producer" => role_lag_producer(),
        "lag_subscriber" => role_lag_subscriber(),
        other => panic!("unknown role {other}"),
    }
}

fn role_producer() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let me = arg_u64("PRODUCER");
    let count = arg_u64("COUNT");
    let mut publ = bus.publisher(&format!("producer-{me}")).unwrap();
    let topics = topics();
    let ids: Vec<_> = topics.iter().map(|t| publ.topic_id(t).unwrap()).collect();
    let mut buf = Vec::new();
    for k in 0..count {
        let t = topic_of(me, k);
        make_payload(me, k, &topics[t], &mut buf);
        publ.publish(&ids[t], &buf).unwrap();
    }
    publ.publish("ctl.end", &me.to_le_bytes()).unwrap();
    println!("RESULT published={count}");
}

fn role_subscriber() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let pattern = arg("PATTERN");
    let producers = arg_u64("PRODUCERS");
    let mut sub = bus.subscriber(&format!("sub {pattern}")).unwrap();
    sub.subscribe(&pattern).unwrap();
    sub.subscribe("ctl.end").unwrap();
    println!("READY");
    let pat = Topic::parse(&pattern).unwrap();
    let mut next: HashMap<u64, u64> = HashMap::new();
    let mut ends = 0;
    let mut received = 0u64;
    let topics = topics();
    while ends < producers {
        let s = sub
            .recv_timeout(Duration::from_secs(60))
            .expect("events keep coming");
        if s.topic() == "ctl.end" {
            ends += 1;
            continue;
        }
        let topic = Topic::parse(s.topic()).unwrap();
        assert!(pat.matches(&topic), "{} delivered for {pattern}", s.topic());
        let (producer, index) = check_payload(s.topic(), s.payload()).expect("checksum");
        // Exactly the matching set, in order: the next matching index.
        let n = next.entry(producer).or_insert(0);
        while !pat.matches(&Topic::parse(&topics[topic_of(producer, *n)]).unwrap()) {
            *n += 1;
        }
        assert_eq!(
            index, *n,
            "producer {producer}: in order, no gap, no duplicate"
        );
        *n += 1;
        received += 1;
    }
    println!("RESULT received={received}");
}

fn role_stall() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let mut sub = bus.subscriber("stalled").unwrap();
    sub.subscribe("**").unwrap();
    println!("JOINED");
    for _ in 0..100 {
        drop(sub.recv_timeout(Duration::from_secs(60)).unwrap());
    }
    println!("READY stalled");
    // Never reads again, holding the producer back until killed.
    std::thread::sleep(Duration::from_secs(600));
}

fn role_endless_producer() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let mut publ = bus.publisher("endless").unwrap();
    let mut buf = Vec::new();
    println!("READY");
    for k in 0.. {
        let body = (k * 977) % 3000;
        make_payload(publ.id() as u64, k, "data", &mut buf);
        buf.resize(24 + body as usize, 0);
        let sum = {
            let mut b = buf.clone();
            b[16..24].fill(0);
            fnv(&b[24..], fnv(b"data", fnv(&b[..16], 0xcbf2_9ce4_8422_2325)))
        };
        buf[16..24].copy_from_slice(&sum.to_le_bytes());
        publ.publish("data", &buf).unwrap();
    }
}

fn role_verifier() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let mut sub = bus.subscriber("verifier").unwrap();
    sub.subscribe("data").unwrap();
    sub.subscribe("ctl.end").unwrap();
    println!("READY");
    let mut next_seq: HashMap<u32, u64> = HashMap::new();
    let mut verified = 0u64;
    loop {
        let s = sub
            .recv_timeout(Duration::from_secs(60))
            .expect("events keep coming");
        if s.topic() == "ctl.end" {
            break;
        }
        check_payload("data", s.payload()).expect("never a torn or corrupt record");
        let want = next_seq.entry(s.producer()).or_insert(s.sequence());
        assert_eq!(
            s.sequence(),
            *want,
            "ring sequence continues gap-free across producers"
        );
        *want += 1;
        verified += 1;
    }
    println!("RESULT verified={verified}");
}

fn role_lag_producer() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let count = arg_u64("COUNT");
    let mut publ = bus.publisher("fast").unwrap();
    for k in 0..count {
        publ.publish("tick", &k.to_le_bytes()).unwrap();
    }
    println!("RESULT published={count}");
}

fn role_lag_subscriber() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let count = arg_u64("COUNT");
    let go = arg("GO_FILE");
    let mut sub = bus.subscriber("slow").unwrap();
    sub.subscribe("tick").unwrap();
    println!("READY");
    let mut lag_events = Vec::new();
    let mut received = 0u64;
    let mut expected = 0u64;
    let mut stalled = false;
    loop {
        if received == 10 && !stalled {
            // Stall until the producer is done, having lapped us many times.
            stalled = true;
            while !std::path::Path::new(&go).exists() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let wait = if stalled { 300 } else { 60_000 };
        match sub.recv_timeout(Duration::from_millis(wait)) {
            Ok(s) => {
                // A validated copy: a record rewritten while copied is
                // reported in `Lagged(n)`, never returned.
                let v = u64::from_le_bytes(s.payload().try_into().unwrap());
                assert_eq!(v, expected, "continues right after what it missed");
                assert_eq!(s.sequence(), v);
                expected += 1;
                received += 1;
            }
            Err(RecvError::Lagged(n)) => {
                lag_events.push(n);
                expected += n;
            }
            Err(RecvError::Timeout) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(!lag_events.is_empty(), "a lapped subscriber is told");
    let lagged: u64 = lag_events.iter().sum();
    assert_eq!(
        received + lagged,
        count,
        "received + lagged accounts for every event"
    );
    assert_eq!(sub.lagged(), lagged);
    println!("RESULT received={received} lagged={lagged}");
}

// -------------------------------------------------------------- tests

#[test]
fn exactly_once_in_order_two_producers_three_patterns() {
    let (bus_name, _guard) = unique("exact");
    let bus = Bus::create(&bus_name, BusConfig::default().with_ring_bytes(1 << 20)).unwrap();
    let count: u64 = 1_000_000;
    let deadline = Instant::now() + Duration::from_secs(900);
    let patterns = [
        "md.XNAS.AAPL.trade",              // exact
        "md.{venue}.MSFT.+kind",           // wildcards
        "md.(XNYS|BATS).(AAPL|IBM).quote", // ranges
        "md./^X/./^[AG]/.trade",           // regexes
    ];
    let mut subs: Vec<Proc> = patterns
        .iter()
        .map(|p| {
            let mut c = spawn(
                "subscriber",
                &[
                    ("BUS", bus_name.clone()),
                    ("PATTERN", (*p).into()),
                    ("PRODUCERS", "2".into()),
                ],
            );
            c.wait_line("READY", deadline);
            c
        })
        .collect();
    let mut producers: Vec<Proc> = (0..2)
        .map(|p| {
            spawn(
                "producer",
                &[
                    ("BUS", bus_name.clone()),
                    ("PRODUCER", p.to_string()),
                    ("COUNT", count.to_string()),
                ],
            )
        })
        .collect();
    for p in &mut producers {
        assert_eq!(p.finish(deadline)["published"], count);
    }
    let topics = topics();
    for (c, p) in subs.iter_mut().zip(patterns) {
        let pat = Topic::parse(p).unwrap();
        let want: u64 = (0..2u64)
            .map(|prod| {
                (0..count)
                    .filter(|&k| pat.matches(&Topic::parse(&topics[topic_of(prod, k)]).unwrap()))
                    .count() as u64
            })
            .sum();
        assert!(want > 0, "{p} matches something");
        assert_eq!(
            c.finish(deadline)["received"],
            want,
            "subscriber {p} got exactly its set"
        );
    }
    let published: u64 = bus.info().producers.iter().map(|p| p.published).sum();
    assert_eq!(published, 2 * (count + 1));
}

#[test]
fn overwrite_stalled_subscriber_gets_exact_lag_then_continues() {
    let (bus_name, _guard) = unique("lag");
    let _bus = Bus::create(
        &bus_name,
        BusConfig::default()
            .with_ring_bytes(1 << 14)
            .with_policy(Policy::Overwrite),
    )
    .unwrap();
    let go = std::env::temp_dir().join(format!("{bus_name}.go"));
    let _ = std::fs::remove_file(&go);
    let deadline = Instant::now() + Duration::from_secs(300);
    let count = 200_000u64;
    let mut sub = spawn(
        "lag_subscriber",
        &[
            ("BUS", bus_name.clone()),
            ("COUNT", count.to_string()),
            ("GO_FILE", go.display().to_string()),
        ],
    );
    sub.wait_line("READY", deadline);
    let mut producer = spawn(
        "lag_producer",
        &[("BUS", bus_name.clone()), ("COUNT", count.to_string())],
    );
    producer.finish(deadline);
    std::fs::write(&go, b"go").unwrap();
    let r = sub.finish(deadline);
    let _ = std::fs::remove_file(&go);
    assert!(r["lagged"] > 0);
    assert_eq!(r["received"] + r["lagged"], count);
}

#[test]
fn sigkilled_subscriber_never_blocks_the_producer() {
    let (bus_name, _guard) = unique("killsub");
    let bus = Bus::create(&bus_name, BusConfig::default().with_ring_bytes(1 << 14)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let count = 100_000u64;
    let mut subs: Vec<Proc> = ["md.**", "md.{v}.{s}.trade"]
        .iter()
        .map(|p| {
            let mut c = spawn(
                "subscriber",
                &[
                    ("BUS", bus_name.clone()),
                    ("PATTERN", (*p).into()),
                    ("PRODUCERS", "1".into()),
                ],
            );
            c.wait_line("READY", deadline);
            c
        })
        .collect();
    let mut victim = spawn("stall", &[("BUS", bus_name.clone())]);
    victim.wait_line("JOINED", deadline);
    let mut producer = spawn(
        "producer",
        &[
            ("BUS", bus_name.clone()),
            ("PRODUCER", "0".into()),
            ("COUNT", count.to_string()),
        ],
    );
    victim.wait_line("READY", deadline);
    // Let the producer fill the 16 KiB ring and block on the stalled one.
    std::thread::sleep(Duration::from_millis(200));
    assert!(producer.is_running(), "held back by the stalled subscriber");
    victim.sigkill();
    assert_eq!(producer.finish(deadline)["published"], count);
    for c in &mut subs {
        assert!(c.finish(deadline)["received"] > 0);
    }
    // The dead subscriber's slot was reaped by the blocked producer.
    assert!(bus.info().subscribers.iter().all(|s| s.name != "stalled"));
}

/// A blocked publish looks for dead readers only once its limit has
/// stood still for a nap's length; that wait is counted across calls, so
/// publishes with timeouts shorter than a nap still get past a dead
/// subscriber.
#[test]
fn short_timeout_publishes_still_reap_a_sigkilled_subscriber() {
    let (bus_name, _guard) = unique("killsub-short");
    let bus = Bus::create(&bus_name, BusConfig::default().with_ring_bytes(1 << 14)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut victim = spawn("stall", &[("BUS", bus_name.clone())]);
    victim.wait_line("JOINED", deadline);
    let mut p = bus.publisher("short-timeouts").unwrap();
    let payload = [7u8; 256];
    // The 100 events it reads before it stalls; then fill the ring.
    for _ in 0..100 {
        p.publish("md.x", &payload).unwrap();
    }
    victim.wait_line("READY", deadline);
    while p.try_publish("md.x", &payload).is_ok() {
        assert!(Instant::now() < deadline, "watchdog: the ring never filled");
    }
    victim.sigkill();
    let mut tries = 0u64;
    loop {
        match p.publish_timeout("md.x", &payload, Duration::from_micros(200)) {
            Ok(_) => break,
            Err(shm_bus_core::PublishError::Full) => tries += 1,
            Err(e) => panic!("publish: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: still full after {tries} publishes of 200 µs"
        );
    }
    assert!(tries > 0, "the dead subscriber held the ring at first");
    assert!(bus.info().subscribers.iter().all(|s| s.name != "stalled"));
}

#[test]
fn sigkilled_producers_never_leave_torn_records() {
    let (bus_name, _guard) = unique("killprod");
    let bus = Bus::create(&bus_name, BusConfig::default().with_ring_bytes(1 << 16)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut verifier = spawn("verifier", &[("BUS", bus_name.clone())]);
    verifier.wait_line("READY", deadline);
    let mut seed = std::process::id() as u64 | 1;
    for round in 0..20 {
        let mut p = spawn("endless_producer", &[("BUS", bus_name.clone())]);
        p.wait_line("READY", deadline);
        // A random point in the stream (xorshift).
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(2_000 + seed % 30_000));
        p.sigkill();
        assert!(verifier.is_running(), "verifier alive after round {round}");
    }
    // A new producer continues on the same bus.
    let mut publ = bus.publisher("closer").unwrap();
    publ.publish("ctl.end", b"").unwrap();
    assert!(
        verifier.finish(deadline)["verified"] > 0,
        "the verifier saw only intact records"
    );
}
