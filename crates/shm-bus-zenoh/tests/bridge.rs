//! Two buses on this host stand in for two hosts: bus A ↔ bridge A ↔
//! Zenoh (loopback TCP) ↔ bridge B ↔ bus B, every bridge, producer and
//! consumer its own process.
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use shm_bus_core::Bus;

/// Events per direction in the big test (`SHM_BUS_ZENOH_EVENTS` overrides).
fn events() -> u64 {
    std::env::var("SHM_BUS_ZENOH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

const LONG: Duration = Duration::from_secs(900);

fn u(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("`{k}` missing in {v}"))
}

fn check_consumer(what: &str, got: &serde_json::Value, want: &BTreeMap<String, u64>) {
    assert_eq!(&per_topic(got), want, "{what}: per-topic counts: {got}");
    assert_eq!(u(got, "duplicates"), 0, "{what}: {got}");
    assert_eq!(u(got, "out_of_order"), 0, "{what}: {got}");
    assert_eq!(u(got, "corrupt"), 0, "{what}: {got}");
}

fn consumer(bus: &str, patterns: &[&str], expect: u64, what: &str) -> Proc {
    let expect = expect.to_string();
    let mut args = vec!["consume", bus, "--expect", &expect, "--idle", "60"];
    for p in patterns {
        args.extend_from_slice(&["--pattern", p]);
    }
    let mut c = spawn(PEER, &args, what);
    c.wait_out("ready", Duration::from_secs(60));
    c
}

fn producer(bus: &str, tag: u32, topics: &[&str], count: u64, extra: &[&str]) -> Proc {
    let (tag_s, count_s) = (tag.to_string(), count.to_string());
    let mut args = vec!["publish", bus, "--tag", &tag_s, "--count", &count_s];
    for t in topics {
        args.extend_from_slice(&["--topic", t]);
    }
    args.extend_from_slice(extra);
    spawn(PEER, &args, &format!("producer {tag}"))
}

#[test]
fn a_million_each_way_exact_sets_in_order_no_echo() {
    let n = events();
    let (a, b) = (bus("big-a"), bus("big-b"));
    let port = free_port();
    let listen = format!("tcp/127.0.0.1:{port}");
    let both = ["--export", "**", "--import", "**"];
    let mut ba = bridge(&a.0, "a", &[&both[..], &["--listen", &listen]].concat());
    let mut bb = bridge(&b.0, "b", &[&both[..], &["--connect", &listen]].concat());
    let (warm_ab, _) = warm_up(&a.0, &b.0, "warmup.ab");
    let (warm_ba, _) = warm_up(&b.0, &a.0, "warmup.ba");

    // A's producers (to B) and B's producers (to A): two each, so order
    // is checked per producer with several producers interleaved.
    let a1 = ["md.XNAS.AAPL", "md.XNAS.MSFT", "md.ARCX.AAPL"];
    let a2 = ["md.XNYS.GOOG", "md.ARCX.MSFT"];
    let b3 = ["ord.new.AAPL", "ord.cancel.MSFT"];
    let b4 = ["ord.new.GOOG", "fill.XNAS.AAPL"];
    let (na1, na2) = (n / 2, n - n / 2);
    let (nb3, nb4) = (n / 2, n - n / 2);
    let want = |pats: &[&str]| {
        merge(&[
            expected(&a1, na1, pats),
            expected(&a2, na2, pats),
            expected(&b3, nb3, pats),
            expected(&b4, nb4, pats),
        ])
    };
    let total = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();

    // On B: what crossed from A, with three kinds of patterns; and B's own
    // topics, which must arrive once (an echo would double them).
    let pats_b: [&[&str]; 4] = [
        &["md.**"],
        &["md.{venue}.AAPL"],
        &["md./^X/.(MSFT|GOOG)"],
        &["ord.**", "fill.**"],
    ];
    // On A: what crossed from B, and A's own topics.
    let pats_a: [&[&str]; 3] = [&["ord.**", "fill.**"], &["(ord|fill).{x}.AAPL"], &["md.**"]];
    let mut consumers = Vec::new();
    for (i, p) in pats_b.iter().enumerate() {
        let w = want(p);
        let c = consumer(&b.0, p, total(&w), &format!("consumer B{i} {p:?}"));
        consumers.push((c, w));
    }
    for (i, p) in pats_a.iter().enumerate() {
        let w = want(p);
        let c = consumer(&a.0, p, total(&w), &format!("consumer A{i} {p:?}"));
        consumers.push((c, w));
    }
    let mut producers = vec![
        producer(&a.0, 1, &a1, na1, &[]),
        producer(&a.0, 2, &a2, na2, &[]),
        producer(&b.0, 3, &b3, nb3, &[]),
        producer(&b.0, 4, &b4, nb4, &[]),
    ];
    for p in &mut producers {
        p.json(LONG);
    }
    for (c, w) in &mut consumers {
        let what = c.what.clone();
        let got = c.json(LONG);
        eprintln!("{what}: {got}");
        check_consumer(&what, &got, w);
    }

    // The bridges' own accounts: everything local exported once, nothing
    // imported exported again, nothing lost or duplicated.
    for (br, warm, local) in [(&mut ba, warm_ab, n), (&mut bb, warm_ba, n)] {
        br.terminate();
        let s = br.json(Duration::from_secs(60));
        eprintln!("{}: {s}", br.what);
        assert_eq!(u(&s, "exported"), local + warm, "{}: {s}", br.what);
        assert!(u(&s, "imported") >= n, "{}: {s}", br.what);
        assert_eq!(
            u(&s, "echo_suppressed"),
            u(&s, "imported"),
            "{}: every import seen again locally was not exported: {s}",
            br.what
        );
        for k in ["dropped", "duplicates", "gaps", "rejected"] {
            assert_eq!(u(&s, k), 0, "{}: {k}: {s}", br.what);
        }
    }
}

#[test]
fn a_restarted_bridge_reconnects_and_the_gap_is_counted() {
    let (a, b) = (bus("restart-a"), bus("restart-b"));
    let port = free_port();
    let ep = format!("tcp/127.0.0.1:{port}");
    // B listens and A connects: after B comes back, A must reconnect on
    // its own.
    let b_args = ["--import", "md.**", "--listen", &ep];
    let mut ba = bridge(&a.0, "a", &["--export", "md.**", "--connect", &ep]);
    let mut bb = bridge(&b.0, "b", &b_args);
    let (warm, warm_arrived) = warm_up(&a.0, &b.0, "md.warm");

    let count = 60_000;
    let topics = ["md.x", "md.y", "md.z"];
    let mut c = spawn(
        PEER,
        &[
            "consume",
            &b.0,
            "--pattern",
            "md.{t}",
            "--expect",
            "60000",
            "--idle",
            "8",
        ],
        "consumer on B",
    );
    c.wait_out("ready", Duration::from_secs(60));
    let mut p = producer(&a.0, 7, &topics, count, &["--rate", "10000"]);
    std::thread::sleep(Duration::from_millis(1500));
    bb.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let mut bb2 = bridge(&b.0, "b", &b_args);
    bb2.wait_err("link up", Duration::from_secs(60));
    p.json(LONG);
    let got = c.json(LONG);
    ba.terminate();
    let sa = ba.json(Duration::from_secs(60));
    bb2.terminate();
    let sb = bb2.json(Duration::from_secs(60));
    eprintln!("consumer: {got}\nbridge a: {sa}\nbridge b (restarted): {sb}");

    let received = u(&got, "received");
    assert_eq!(u(&got, "duplicates"), 0, "{got}");
    assert_eq!(u(&got, "out_of_order"), 0, "{got}");
    assert_eq!(u(&got, "corrupt"), 0, "{got}");
    assert!(
        received > 0 && received < count,
        "the outage lost events: {got}"
    );
    let lost = count - received;
    // Events put while no subscriber matched (B down, not yet back), plus
    // gaps seen by the restarted importer. What the kernel held in the
    // socket buffers when B was killed is lost without either side
    // knowing, and Zenoh's view of who subscribes changes a moment after
    // a link does, so the count is close, not exact: within 10% below
    // and 1% above here (a few dozen events of ~30,000).
    // (Warm-up events put before B's subscription was known are unrouted
    // too: those that did not arrive are taken off.)
    let counted = u(&sa, "unrouted") - (warm - warm_arrived) + u(&sb, "gaps");
    eprintln!("lost {lost}, counted {counted}");
    assert!(
        counted * 10 >= lost * 9 && counted * 100 <= lost * 101,
        "lost {lost}, counted {counted}"
    );
    // A exported everything (it cannot know B was gone until it was).
    assert_eq!(u(&sa, "exported"), count + warm, "{sa}");
    assert!(u(&sa, "link_downs") >= 1, "{sa}");
    assert_eq!(u(&sb, "duplicates"), 0, "{sb}");
}

#[test]
fn forbidden_characters_non_ascii_and_regex_parts_cross_exactly() {
    let (a, b) = (bus("chars-a"), bus("chars-b"));
    let port = free_port();
    let ep = format!("tcp/127.0.0.1:{port}");
    let topics = [
        "dev.a*b.x",
        "dev.$cfg.y?",
        "dev.#tag.@admin",
        "dev.p/q.100%",
        "dév.ünï.日本",
        "dev.XNAS.z",
        "dev.**x.%2A",
    ];
    let imports = ["dev./[*$#]/.**", "dév.**", "dev.(**x|none).{k}"];
    let mut ba = bridge(
        &a.0,
        "ta",
        &["--export", "dev.**", "--export", "dév.**", "--listen", &ep],
    );
    let mut b_args = vec!["--connect", ep.as_str()];
    for i in &imports {
        b_args.extend_from_slice(&["--import", i]);
    }
    let mut bb = bridge(&b.0, "tb", &b_args);
    warm_up(&a.0, &b.0, "dév.warm");

    // Both bridges show on their buses, named as such.
    let ia = Bus::open(&a.0).unwrap().info();
    assert!(
        ia.subscribers
            .iter()
            .any(|s| s.name == "zenoh:ta" && s.alive),
        "{:?}",
        ia.subscribers
    );
    let ib = Bus::open(&b.0).unwrap().info();
    assert!(
        ib.producers.iter().any(|p| p.name == "zenoh:tb" && p.alive),
        "{:?}",
        ib.producers
    );

    let count = 7 * 300;
    let want = expected(&topics, count, &imports);
    assert_eq!(want.len(), 5, "{want:?}");
    // One consumer with the import patterns, one with `**`: B receives
    // exactly what its patterns select, though Zenoh's coarse key
    // expressions (`dev/*/**`) carry more.
    let mut c1 = consumer(&b.0, &imports, want.values().sum(), "consumer B patterns");
    let mut c2 = consumer(&b.0, &["**"], want.values().sum(), "consumer B **");
    producer(&a.0, 1, &topics, count, &[]).json(LONG);
    check_consumer("patterns", &c1.json(LONG), &want);
    check_consumer("**", &c2.json(LONG), &want);
    ba.terminate();
    bb.terminate();
    let sa = ba.json(Duration::from_secs(60));
    let sb = bb.json(Duration::from_secs(60));
    eprintln!("a: {sa}\nb: {sb}");
    assert_eq!(u(&sb, "dropped"), 0, "{sb}");
    // `dev.XNAS.z` and `dev.p/q.100%` reach B's key expression `dev/*/**`
    // and are filtered by the topic language.
    assert_eq!(u(&sb, "filtered"), 2 * 300, "{sb}");
}

#[test]
fn bad_usage_exits_2_and_a_missing_bus_exits_1() {
    let a = bus("usage");
    let long = "n".repeat(40);
    let cases: &[(&[&str], i32, &str)] = &[
        (&[&a.0, "--export", "a..b"], 2, "not a valid topic"),
        (&[&a.0], 2, "nothing to bridge"),
        (
            &[&a.0, "--export", "**", "--listen", "nonsense"],
            2,
            "--listen",
        ),
        (&[&a.0, "--export", "**", "--name", &long], 2, "--name"),
        (
            &[&a.0, "--export", "**", "--config", "/nonexistent/z.json5"],
            2,
            "zenoh configuration",
        ),
        (&[&a.0, "--bogus"], 2, "--bogus"),
        (&[&a.0, "--export", "**", "--status", "0"], 2, "--status"),
        (
            &["zb-no-such-bus-here", "--export", "**"],
            1,
            "zb-no-such-bus-here",
        ),
    ];
    for (args, code, needle) in cases {
        let mut p = spawn(BRIDGE, args, &format!("bridge {args:?}"));
        let (status, _) = p.finish(Duration::from_secs(60));
        let err = p.stderr();
        assert_eq!(status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: stderr `{err}`");
        if *code == 2 && !args.contains(&"--bogus") {
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
        }
    }
}

/// A plain Zenoh application (this test process) puts on keys the bridge
/// imports: a key that is a topic is imported (without an attachment:
/// no sequence checks); keys that are not topics are refused and counted,
/// never guessed. The bridge takes its Zenoh settings from a config file.
#[test]
fn foreign_zenoh_samples_are_imported_or_refused_and_counted() {
    use zenoh::Wait;

    let b = bus("foreign");
    let port = free_port();
    let ep = format!("tcp/127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("zb-foreign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("zenoh.json5");
    std::fs::write(
        &cfg,
        format!(
            "{{ mode: \"peer\", listen: {{ endpoints: [\"{ep}\"] }}, \
             scouting: {{ multicast: {{ enabled: false }} }} }}"
        ),
    )
    .unwrap();
    let cfg_s = cfg.to_string_lossy().into_owned();
    let mut bb = bridge(
        &b.0,
        "fb",
        &["--config", &cfg_s, "--import", "dev.**", "--status", "0.2"],
    );
    let mut c = consumer(&b.0, &["dev.**"], 10, "consumer B");

    let mut zc = zenoh::Config::default();
    zc.insert_json5("mode", "\"peer\"").unwrap();
    zc.insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    zc.insert_json5("listen/endpoints", "[]").unwrap();
    zc.insert_json5("connect/endpoints", &format!("[\"{ep}\"]"))
        .unwrap();
    let z = zenoh::open(zc).wait().expect("zenoh session");
    let good = z.declare_publisher("dev/plain/%2Ax").wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !good.matching_status().wait().unwrap().matching() {
        assert!(std::time::Instant::now() < deadline, "watchdog: no match");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut payload = vec![0u8; 64];
    for i in 0..10 {
        shm_bus_zenoh::load::fill(&mut payload, 9, i, 0, 0);
        good.put(payload.clone()).wait().unwrap();
        // Not topics: a chunk with `.`, one that reads as a wildcard part,
        // a malformed escape.
        for bad in ["dev/a.b/c", "dev/{x}/y", "dev/%zz"] {
            z.put(bad, payload.clone()).wait().unwrap();
        }
    }
    let got = c.json(LONG);
    let want: BTreeMap<String, u64> = [("dev.plain.*x".to_owned(), 10)].into();
    check_consumer("consumer B", &got, &want);
    // The live counters on stderr (--status) show the imports.
    bb.wait_err("\"imported\":10,", Duration::from_secs(30));
    drop(good);
    let _ = z.close().wait();
    bb.terminate();
    let s = bb.json(Duration::from_secs(60));
    eprintln!("{s}");
    assert_eq!(u(&s, "imported"), 10, "{s}");
    assert_eq!(u(&s, "rejected"), 30, "{s}");
    assert_eq!(u(&s, "dropped"), 30, "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--create` makes a missing bus (with defaults) and takes an existing
/// one as it is, whatever its configuration; SIGTERM ends the bridge with
/// exit 0 and its counters.
#[test]
fn create_makes_a_missing_bus_and_takes_an_existing_one_as_it_is() {
    let fresh = BusGuard(format!("zb-create-{}", std::process::id()));
    let _ = Bus::remove(&fresh.0);
    let existing = BusGuard(format!("zb-create-small-{}", std::process::id()));
    let _ = Bus::remove(&existing.0);
    Bus::create(
        &existing.0,
        shm_bus_core::BusConfig::default()
            .with_ring_bytes(64 << 10)
            .with_max_subscribers(4),
    )
    .unwrap();
    for (bus, said) in [(&fresh.0, true), (&existing.0, false)] {
        let mut p = bridge(bus, "c", &["--export", "**", "--import", "**", "--create"]);
        let b = Bus::open(bus).expect("the bus exists");
        assert!(b.info().producers.iter().any(|p| p.name == "zenoh:c"));
        p.terminate();
        let s = p.json(Duration::from_secs(60));
        assert_eq!(u(&s, "exported"), 0, "{s}");
        assert_eq!(
            p.stderr().contains("created with defaults"),
            said,
            "{}",
            p.stderr()
        );
    }
    assert_eq!(
        Bus::open(&existing.0).unwrap().config().ring_bytes,
        64 << 10
    );
}

/// Removing the bus under a running bridge (idle, both directions) stops
/// it: exit 1, one line saying so.
#[test]
fn a_removed_bus_stops_the_bridge_with_exit_1() {
    let b = bus("removed");
    let mut p = bridge(&b.0, "r", &["--export", "**", "--import", "**"]);
    Bus::remove(&b.0).unwrap();
    let (status, _) = p.finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{}", p.stderr());
    assert!(p.stderr().contains("was removed"), "{}", p.stderr());
}
