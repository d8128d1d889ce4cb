//! Engines over a worker group (`EventEngine::with_group`): events split
//! exactly once across engine processes, an event whose engine died in a
//! handler dispatched again flagged redelivered, group removal as a typed
//! error. Cross-process cases re-execute this binary in a child role.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shm_bus_core::{Bus, BusConfig, GroupMode, GroupOptions, GroupRemoval};
use shm_bus_engine::{EngineError, EventEngine, GetError, Handler, Message, Wait};

use shm_bus_testkit::{arg, arg_u64, spawn, unique};

/// Payloads (u64) handled, with their redelivered flag.
type Log = Arc<Mutex<Vec<(u64, bool)>>>;

fn recorder(log: &Log) -> Handler {
    let log = log.clone();
    Handler::new(move |m: &Message<'_>| {
        log.lock()
            .unwrap()
            .push((*m.as_pod::<u64>().unwrap(), m.redelivered()));
    })
}

/// Dispatches on `engine` until `log` holds `n` entries (watchdog).
fn dispatch_until(engine: &EventEngine, log: &Log, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "watchdog: {:?}", log.lock());
        engine.dispatch_pending().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ------------------------------------------------------ child processes

#[test]
#[ignore = "the entry point of this binary's child processes (testkit::spawn)"]
fn child_entry() {
    let Ok(role) = std::env::var("SHM_BUS_ROLE") else {
        return; // not a child: nothing to do
    };
    match role.as_str() {
        "group-worker" => group_worker(),
        "group-stuck" => group_stuck(),
        other => panic!("unknown role {other}"),
    }
}

/// An engine in group `jobs` that handles events until the group has
/// finished `COUNT`, writing each payload it handled to `OUT`.
fn group_worker() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let name = arg("NAME");
    let engine = EventEngine::with_group(&bus, "jobs", &name, &["jobs.{kind}"]).unwrap();
    assert_eq!(engine.group(), Some("jobs"));
    let log: Log = Arc::default();
    engine
        .register_handler("jobs.{kind}", recorder(&log), false)
        .unwrap();
    // Some work now and then, so that one engine cannot take every claim.
    engine
        .register_handler(
            "jobs.{kind}",
            Handler::new(|m: &Message<'_>| {
                if m.as_pod::<u64>().unwrap() % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }),
            false,
        )
        .unwrap();
    // Not the group's patterns: never dispatched by a group engine.
    let strays = Arc::new(AtomicU64::new(0));
    let s = strays.clone();
    engine
        .register_handler(
            "other.**",
            Handler::new(move |_m: &Message<'_>| {
                s.fetch_add(1, Ordering::Relaxed);
            }),
            false,
        )
        .unwrap();
    engine.start().unwrap();
    println!("READY");
    let expected = arg_u64("COUNT");
    let deadline = Instant::now() + Duration::from_secs(60);
    // The group's `done` counts events whose handlers returned, in every
    // member: all are finished when it reaches COUNT.
    while bus.groups().iter().map(|g| g.done).sum::<u64>() < expected {
        assert!(Instant::now() < deadline, "worker watchdog");
        std::thread::sleep(Duration::from_millis(2));
    }
    engine.stop();
    let log = log.lock().unwrap();
    let mut out = std::fs::File::create(arg("OUT")).unwrap();
    for (v, redelivered) in log.iter() {
        assert!(!redelivered, "nobody died: nothing is redelivered");
        writeln!(out, "{v}").unwrap();
    }
    println!(
        "RESULT n={} strays={}",
        log.len(),
        strays.load(Ordering::Relaxed)
    );
}

/// An engine in group `jobs` whose handler announces the event and never
/// returns: the parent kills it there.
fn group_stuck() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let engine = EventEngine::with_group(&bus, "jobs", "stuck", &["jobs.{kind}"]).unwrap();
    engine
        .register_handler(
            "jobs.{kind}",
            Handler::new(|m: &Message<'_>| {
                println!("HANDLING {}", m.as_pod::<u64>().unwrap());
                std::thread::sleep(Duration::from_secs(120));
            }),
            false,
        )
        .unwrap();
    engine.start().unwrap();
    println!("READY");
    std::thread::sleep(Duration::from_secs(120));
}

// ---------------------------------------------------------------- tests

#[test]
fn two_engine_processes_in_a_group_handle_every_event_exactly_once() {
    let (name, _guard) = unique("grp-split");
    let bus = Bus::create(&name, BusConfig::default()).unwrap();
    const N: u64 = 20_000;
    let dir = std::env::temp_dir();
    let outs: Vec<_> = (0..2)
        .map(|i| dir.join(format!("{name}-worker{i}.txt")))
        .collect();
    struct RemoveFiles(Vec<std::path::PathBuf>);
    impl Drop for RemoveFiles {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let _files = RemoveFiles(outs.clone());
    let mut workers: Vec<_> = outs
        .iter()
        .enumerate()
        .map(|(i, out)| {
            spawn(
                "group-worker",
                &[
                    ("BUS", name.clone()),
                    ("NAME", format!("worker-{i}")),
                    ("COUNT", N.to_string()),
                    ("OUT", out.display().to_string()),
                ],
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for w in &mut workers {
        w.wait_line("READY", deadline);
    }
    let feed = EventEngine::publisher_only(&bus, "feed").unwrap();
    let put = Wait::timeout(Duration::from_secs(30)); // a watchdog, not a bound
    for i in 0..N {
        let kind = if i % 2 == 0 { "a" } else { "b" };
        feed.put_pod(&format!("jobs.{kind}"), &i, put).unwrap();
        if i % 1000 == 0 {
            // Outside the group's patterns: no member receives it.
            feed.put_pod("other.x", &i, put).unwrap();
        }
    }
    let mut sets = Vec::new();
    for (w, out) in workers.iter_mut().zip(&outs) {
        let r = w.finish(deadline);
        assert_eq!(r["strays"], 0);
        let handled: Vec<u64> = std::fs::read_to_string(out)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(handled.len() as u64, r["n"]);
        let set: BTreeSet<u64> = handled.iter().copied().collect();
        assert_eq!(set.len(), handled.len(), "a worker handled an event twice");
        sets.push(set);
    }
    assert!(
        sets[0].intersection(&sets[1]).next().is_none(),
        "an event was handled by both engines"
    );
    let union: BTreeSet<u64> = sets[0].union(&sets[1]).copied().collect();
    assert_eq!(union, (0..N).collect::<BTreeSet<u64>>());
    // Both worked (claims of 8 events: neither can take them all).
    assert!(
        sets.iter().all(|s| !s.is_empty()),
        "split {} / {}",
        sets[0].len(),
        sets[1].len()
    );
    let g = &bus.groups()[0];
    assert_eq!((g.done, g.redelivered, g.lost), (N, 0, 0));
    assert!(g.members.is_empty(), "the workers left: {:?}", g.members);
}

#[test]
fn an_event_whose_engine_died_in_a_handler_is_dispatched_again_flagged_redelivered() {
    let (name, _guard) = unique("grp-redeliver");
    let bus = Bus::create(&name, BusConfig::default()).unwrap();
    let mut stuck = spawn("group-stuck", &[("BUS", name.clone())]);
    let deadline = Instant::now() + Duration::from_secs(60);
    stuck.wait_line("READY", deadline);
    let feed = EventEngine::publisher_only(&bus, "feed").unwrap();
    for i in 0..3u64 {
        feed.put_pod("jobs.a", &(100 + i), Wait::default()).unwrap();
    }
    // Killed while its handler runs on the first event: the event is not
    // finished (the sample is dropped only after the handlers return).
    stuck.wait_line("HANDLING 100", deadline);
    stuck.sigkill();
    let rescuer = EventEngine::with_group(&bus, "jobs", "rescuer", &[]).unwrap();
    let log: Log = Arc::default();
    rescuer
        .register_handler("jobs.**", recorder(&log), false)
        .unwrap();
    dispatch_until(&rescuer, &log, 3);
    // The one being handled comes again flagged; the rest of the dead
    // engine's claim was never handed out: not flagged.
    assert_eq!(
        *log.lock().unwrap(),
        [(100, true), (101, false), (102, false)]
    );
    feed.put_pod("jobs.b", &7u64, Wait::default()).unwrap();
    dispatch_until(&rescuer, &log, 4);
    assert_eq!(log.lock().unwrap()[3], (7, false));
    let g = &bus.groups()[0];
    assert_eq!((g.redelivered, g.lost, g.done), (1, 0, 4));
}

#[test]
fn get_on_a_group_engine_carries_the_flag_and_removal_is_a_typed_error() {
    let (name, _guard) = unique("grp-get");
    let bus = Bus::create(&name, BusConfig::default()).unwrap();
    let engine = EventEngine::with_group_options(
        &bus,
        "g",
        "getter",
        &["t.{x}"],
        GroupOptions {
            mode: GroupMode::AtLeastOnce,
            claim_batch: 1,
        },
    )
    .unwrap();
    assert_eq!(engine.group(), Some("g"));
    // A plain engine is in no group.
    assert_eq!(EventEngine::new(4).group(), None);
    engine.put_pod("t.a", &1u64, Wait::default()).unwrap();
    engine.put_pod("u.a", &2u64, Wait::default()).unwrap(); // not the group's
    let m = engine.get(Wait::non_blocking()).unwrap();
    assert_eq!((m.topic(), *m.as_pod::<u64>().unwrap()), ("t.a", 1));
    assert!(!m.redelivered() && !m.as_message().redelivered());
    assert_eq!(
        engine.get(Wait::non_blocking()).err(),
        Some(GetError::Empty)
    );
    assert_eq!(
        engine.get(Wait::timeout(Duration::from_millis(20))).err(),
        Some(GetError::Empty)
    );
    // A second member with another mode is refused.
    assert!(matches!(
        EventEngine::with_group_options(
            &bus,
            "g",
            "other",
            &[],
            GroupOptions {
                mode: GroupMode::AtMostOnce,
                claim_batch: 8,
            },
        ),
        Err(EngineError::Bus(
            shm_bus_core::BusError::GroupModeMismatch { .. }
        ))
    ));
    // Removal with a live member needs force; then every receive says so.
    assert_eq!(
        bus.remove_group("g", false).unwrap(),
        GroupRemoval::InUse(vec![std::process::id()])
    );
    assert_eq!(
        bus.remove_group("g", true).unwrap(),
        GroupRemoval::Evicted(vec![std::process::id()])
    );
    // (The member notices at a receive that looks at the group: one that
    // finds no record at any cursor may answer Empty a little longer.)
    let removed = GetError::GroupRemoved { group: "g".into() };
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        match engine.get(Wait::non_blocking()) {
            Err(GetError::Empty) => {
                assert!(Instant::now() < deadline, "watchdog: removal not seen");
                std::thread::sleep(Duration::from_millis(1));
            }
            other => break other.err(),
        }
    };
    assert_eq!(first, Some(removed.clone()));
    assert_eq!(
        engine.get(Wait::non_blocking()).err(),
        Some(removed.clone())
    );
    assert_eq!(engine.get(Wait::default()).err(), Some(removed));
    let is_removed = |r: Result<(), EngineError>| matches!(r, Err(EngineError::GroupRemoved { group }) if group == "g");
    assert!(is_removed(engine.dispatch_pending().map(drop)));
    assert!(is_removed(engine.start()));
    engine.activate();
    assert!(is_removed(engine.run()));
}

#[test]
fn a_group_engines_dispatch_loop_stops_with_an_error_when_the_group_is_removed() {
    let (name, _guard) = unique("grp-run");
    let bus = Bus::create(&name, BusConfig::default()).unwrap();
    let engine = EventEngine::with_group(&bus, "g", "runner", &["t.**"]).unwrap();
    let log: Log = Arc::default();
    engine
        .register_handler("t.**", recorder(&log), false)
        .unwrap();
    engine.put_pod("t.a", &5u64, Wait::default()).unwrap();
    let handle = engine.handle();
    let (tx, rx) = std::sync::mpsc::channel();
    // A detached thread, so that a hang fails the test instead of hanging it.
    std::thread::spawn(move || {
        let engine = handle.upgrade().unwrap();
        engine.activate();
        let _ = tx.send(engine.run());
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "watchdog: nothing dispatched");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(*log.lock().unwrap(), [(5, false)]);
    assert!(matches!(
        bus.remove_group("g", true).unwrap(),
        GroupRemoval::Evicted(_)
    ));
    let ended = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("watchdog: run did not return after the group was removed");
    assert!(
        matches!(&ended, Err(EngineError::GroupRemoved { group }) if group == "g"),
        "{ended:?}"
    );
    assert!(!engine.is_active());
}
