//! EventEngine behaviour. Every in-process case runs on both transports:
//! the in-process queue and a bus (a unique segment, removed on drop).
//! Cross-process cases re-execute this binary in a child role.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use shm_bus_core::{Bus, BusConfig, PublishError};
use shm_bus_engine::{
    EngineError, EventEngine, EventHook, GetError, Handler, Message, SECOND_TIMER_TOPIC, TimerTick,
    Wait,
};

use shm_bus_testkit::{BusGuard, arg, arg_u64, spawn, unique};

/// Runs `case` on an in-process engine and on one over a fresh bus.
fn each_engine(tag: &str, capacity: usize, case: impl Fn(&str, &EventEngine)) {
    case("local", &EventEngine::new(capacity));
    let (name, _guard) = unique(tag);
    // The smallest ring that holds `capacity` small records (64 B each).
    let ring = (capacity as u64 * 64).next_power_of_two().max(4096);
    let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(ring)).unwrap();
    let engine = EventEngine::with_bus(&bus, "test").unwrap();
    case("bus", &engine);
}

/// A handler that appends `label` (and the captures) to `log`.
fn logger(log: &Arc<Mutex<Vec<String>>>, label: &str) -> Handler {
    let log = log.clone();
    let label = label.to_owned();
    Handler::named(label.clone(), move |m: &Message<'_>| {
        let caps: Vec<String> = m.captures().map(|(k, v)| format!("{k}={v}")).collect();
        log.lock()
            .unwrap()
            .push(format!("{label}:{}:{}", m.topic(), caps.join(",")));
    })
}

fn take(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn exact_hook_fires_first_then_matching_generic_hooks_in_registration_order() {
    each_engine("order", 64, |t, engine| {
        let log = Arc::new(Mutex::new(Vec::new()));
        engine
            .register_handler("md.{venue}.AAPL.+kind", logger(&log, "generic1"), false)
            .unwrap();
        engine
            .register_handler("md.XNAS.AAPL.trade", logger(&log, "exact-a"), false)
            .unwrap();
        engine
            .register_handler("md.**", logger(&log, "generic2"), false)
            .unwrap();
        engine
            .register_handler("md.XNAS.AAPL.trade", logger(&log, "exact-b"), false)
            .unwrap();
        engine
            .register_handler("md.(XNYS|BATS).**", logger(&log, "nomatch"), false)
            .unwrap();
        engine
            .put("md.XNAS.AAPL.trade", b"1", Wait::default())
            .unwrap();
        engine
            .put("md.XNAS.MSFT.trade", b"2", Wait::default())
            .unwrap();
        engine.put("other.topic", b"3", Wait::default()).unwrap();
        assert_eq!(engine.dispatch_pending().unwrap(), 3, "{t}");
        assert_eq!(
            take(&log),
            [
                "exact-a:md.XNAS.AAPL.trade:",
                "exact-b:md.XNAS.AAPL.trade:",
                "generic1:md.XNAS.AAPL.trade:venue=XNAS,kind=trade",
                "generic2:md.XNAS.AAPL.trade:",
                "generic2:md.XNAS.MSFT.trade:",
            ],
            "{t}"
        );
        let stats = engine.stats();
        assert_eq!(stats.dispatched, 3, "{t}");
        assert_eq!(stats.unhandled, 1, "{t}");
        assert_eq!(stats.handler_calls, 5, "{t}");
    });
}

#[test]
fn deduplicate_skips_a_handler_already_in_the_hook() {
    each_engine("dedup", 16, |t, engine| {
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let h = Handler::new(move |_m: &Message<'_>| {
            c.fetch_add(1, Ordering::Relaxed);
        });
        assert!(engine.register_handler("a.b", h.clone(), true).unwrap());
        assert!(
            !engine.register_handler("a.b", h.clone(), true).unwrap(),
            "{t}"
        );
        // Without dedup the same handler is added again and runs twice.
        assert!(engine.register_handler("a.{x}", h.clone(), false).unwrap());
        assert!(engine.register_handler("a.{x}", h.clone(), false).unwrap());
        assert_eq!(engine.get_hook("a.b").unwrap().unwrap().len(), 1);
        assert_eq!(engine.get_hook("a.{x}").unwrap().unwrap().len(), 2);
        engine.put("a.b", b"", Wait::default()).unwrap();
        engine.dispatch_pending().unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 3, "{t}");
        // Unregistering removes one registration; an empty hook goes away.
        assert!(engine.unregister_handler("a.{x}", &h).unwrap());
        assert_eq!(engine.get_hook("a.{x}").unwrap().unwrap().len(), 1);
        assert!(engine.unregister_handler("a.{x}", &h).unwrap());
        assert!(engine.get_hook("a.{x}").unwrap().is_none(), "{t}");
        assert!(!engine.unregister_handler("a.{x}", &h).unwrap());
        assert!(!engine.unregister_handler("never.registered", &h).unwrap());
        engine.put("a.b", b"", Wait::default()).unwrap();
        engine.dispatch_pending().unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 4, "{t}");
    });
}

#[test]
fn hooks_can_be_registered_listed_and_removed_whole() {
    each_engine("hooks", 16, |t, engine| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut hook = EventHook::new("jobs.+id.done").unwrap();
        assert!(!hook.is_exact());
        assert!(hook.add_handler(logger(&log, "h1"), false));
        assert!(hook.add_handler(logger(&log, "h2"), false));
        engine.register_hook(hook.clone()).unwrap();
        assert!(matches!(
            engine.register_hook(hook),
            Err(EngineError::HookExists { .. })
        ));
        engine
            .register_handler("jobs.7.done", logger(&log, "exact"), false)
            .unwrap();
        let topics: Vec<String> = engine.topics().iter().map(|t| t.to_string()).collect();
        // Topics are kept in canonical form (`+id` reads back as `{id}`).
        assert_eq!(topics, ["jobs.{id}.done", "jobs.7.done"], "{t}");
        assert_eq!(engine.event_hooks().len(), 2);
        let items = engine.items();
        assert_eq!(items[0].0.as_str(), "jobs.{id}.done");
        assert_eq!(items[0].1.handlers().len(), 2);
        assert_eq!(items[0].1.handlers()[1].name(), "h2");

        engine.put("jobs.7.done", b"", Wait::default()).unwrap();
        engine.dispatch_pending().unwrap();
        assert_eq!(
            take(&log),
            [
                "exact:jobs.7.done:",
                "h1:jobs.7.done:id=7",
                "h2:jobs.7.done:id=7"
            ],
            "{t}"
        );
        let removed = engine.unregister_hook("jobs.+id.done").unwrap();
        assert_eq!(removed.len(), 2);
        assert!(matches!(
            engine.unregister_hook("jobs.+id.done"),
            Err(EngineError::NoHook { .. })
        ));
        assert!(matches!(
            engine.get_hook("jobs..done"),
            Err(EngineError::InvalidTopic(_))
        ));
        engine.put("jobs.7.done", b"", Wait::default()).unwrap();
        engine.dispatch_pending().unwrap();
        assert_eq!(take(&log), ["exact:jobs.7.done:"], "{t}");
        engine.clear();
        assert!(engine.topics().is_empty());
        engine.put("jobs.7.done", b"", Wait::default()).unwrap();
        engine.dispatch_pending().unwrap();
        assert!(take(&log).is_empty(), "{t}");
    });
}

#[test]
fn a_handler_registered_after_dispatch_began_sees_the_next_event() {
    // The per-topic cache must be invalidated by registration changes.
    each_engine("cache", 16, |t, engine| {
        let log = Arc::new(Mutex::new(Vec::new()));
        engine
            .register_handler("x.y", logger(&log, "first"), false)
            .unwrap();
        engine.put("x.y", b"", Wait::default()).unwrap();
        engine.dispatch_pending().unwrap();
        engine
            .register_handler("x.{z}", logger(&log, "later"), false)
            .unwrap();
        engine.put("x.y", b"", Wait::default()).unwrap();
        engine.dispatch_pending().unwrap();
        assert_eq!(
            take(&log),
            ["first:x.y:", "first:x.y:", "later:x.y:z=y"],
            "{t}"
        );
    });
}

#[test]
fn a_panicking_handler_is_caught_counted_and_dispatch_goes_on() {
    each_engine("panic", 16, |t, engine| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let bad = Handler::named("bad", |m: &Message<'_>| {
            if m.payload() == b"boom" {
                panic!("handler failed on purpose");
            }
        });
        engine.register_handler("p.q", bad.clone(), false).unwrap();
        engine
            .register_handler("p.q", logger(&log, "after"), false)
            .unwrap();
        engine.put("p.q", b"boom", Wait::default()).unwrap();
        engine.put("p.q", b"fine", Wait::default()).unwrap();
        assert_eq!(engine.dispatch_pending().unwrap(), 2);
        assert_eq!(take(&log), ["after:p.q:", "after:p.q:"], "{t}");
        let stats = engine
            .get_hook("p.q")
            .unwrap()
            .unwrap()
            .stats(&bad)
            .unwrap();
        assert_eq!(stats.calls, 2, "{t}");
        assert_eq!(stats.failures, 1, "{t}");
        assert_eq!(engine.stats().handler_failures, 1, "{t}");
    });
}

#[test]
fn handler_statistics_count_calls_and_time() {
    each_engine("stats", 16, |t, engine| {
        let slow = Handler::new(|_m: &Message<'_>| std::thread::sleep(Duration::from_millis(2)));
        engine.register_handler("s.t", slow.clone(), false).unwrap();
        for _ in 0..3 {
            engine.put("s.t", b"", Wait::default()).unwrap();
        }
        engine.dispatch_pending().unwrap();
        let hook = engine.get_hook("s.t").unwrap().unwrap();
        let stats = hook.stats(&slow).unwrap();
        assert_eq!(stats.calls, 3, "{t}");
        assert_eq!(stats.failures, 0);
        assert!(
            stats.total_time >= Duration::from_millis(6),
            "{t}: {stats:?}"
        );
        assert_eq!(hook.all_stats().len(), 1);
    });
}

#[test]
fn payloads_arrive_as_bytes_pod_and_serde() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Order {
        id: u64,
        side: String,
    }
    each_engine("payload", 16, |t, engine| {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        engine
            .register_handler(
                "pay.{kind}",
                Handler::new(move |m: &Message<'_>| {
                    let text = match m.capture("kind").unwrap() {
                        "pod" => format!("{:?}", m.as_pod::<[u64; 2]>().unwrap()),
                        "serde" => format!("{:?}", m.decode::<Order>().unwrap()),
                        _ => String::from_utf8_lossy(m.payload()).into_owned(),
                    };
                    g.lock().unwrap().push(text);
                }),
                false,
            )
            .unwrap();
        engine.put("pay.bytes", b"hello", Wait::default()).unwrap();
        engine
            .put_pod("pay.pod", &[7u64, 9u64], Wait::default())
            .unwrap();
        let order = Order {
            id: 3,
            side: "buy".into(),
        };
        engine
            .publish("pay.serde", &order, Wait::default())
            .unwrap();
        engine.dispatch_pending().unwrap();
        assert_eq!(
            *got.lock().unwrap(),
            ["hello", "[7, 9]", r#"Order { id: 3, side: "buy" }"#],
            "{t}"
        );
    });
}

#[test]
fn put_and_get_answer_full_and_empty_as_told() {
    // Local: the queue holds 4 events. Bus: the ring holds 4096 bytes, 64
    // per small record.
    each_engine("full", 4, |t, engine| {
        assert!(matches!(
            engine.get(Wait::non_blocking()),
            Err(GetError::Empty)
        ));
        let before = Instant::now();
        assert!(matches!(
            engine.get(Wait::timeout(Duration::from_millis(30))),
            Err(GetError::Empty)
        ));
        assert!(before.elapsed() >= Duration::from_millis(30), "{t}");
        assert_eq!(engine.occupied(), 0, "{t}");
        let mut n = 0u64;
        loop {
            match engine.put("q.r", &n.to_le_bytes(), Wait::non_blocking()) {
                Ok(_) => n += 1,
                Err(PublishError::Full) => break,
                Err(e) => panic!("{t}: {e}"),
            }
            assert!(n <= 1 << 20, "{t}: never full");
        }
        assert!(n >= 4, "{t}: only {n} fit");
        assert!(engine.occupied() > 0, "{t}");
        assert!(engine.occupied() <= engine.capacity(), "{t}");
        let before = Instant::now();
        assert!(matches!(
            engine.put("q.r", b"x", Wait::timeout(Duration::from_millis(30))),
            Err(PublishError::Full)
        ));
        assert!(before.elapsed() >= Duration::from_millis(30), "{t}");
        // Nothing was lost: every accepted event comes out, in order.
        for i in 0..n {
            let m = engine.get(Wait::non_blocking()).unwrap();
            assert_eq!(m.topic(), "q.r");
            assert_eq!(m.payload(), i.to_le_bytes(), "{t}");
        }
        assert!(matches!(
            engine.get(Wait::non_blocking()),
            Err(GetError::Empty)
        ));
        // Bad input: typed errors, nothing queued.
        assert!(matches!(
            engine.put("q.{pattern}", b"", Wait::default()),
            Err(PublishError::Topic(_))
        ));
        assert!(matches!(
            engine.put("q..r", b"", Wait::default()),
            Err(PublishError::Topic(_))
        ));
        let big = vec![0; engine.max_payload() + 1];
        assert!(matches!(
            engine.put("q.r", &big, Wait::default()),
            Err(PublishError::PayloadTooLarge { .. })
        ));
        assert!(matches!(
            engine.get(Wait::non_blocking()),
            Err(GetError::Empty)
        ));
    });
}

#[test]
fn a_put_from_a_handler_never_waits_on_its_own_full_engine() {
    each_engine("selfput", 4, |t, engine| {
        let handle = engine.handle();
        let fulls = Arc::new(AtomicU64::new(0));
        let f = fulls.clone();
        engine
            .register_handler(
                "fan.out",
                Handler::new(move |_m: &Message<'_>| {
                    let engine = handle.upgrade().unwrap();
                    // Far more than fit: the overflow answers Full at once.
                    for _ in 0..10_000 {
                        if let Err(PublishError::Full) =
                            engine.put("fan.child", b"x", Wait::blocking())
                        {
                            f.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }),
                false,
            )
            .unwrap();
        engine.put("fan.out", b"", Wait::default()).unwrap();
        engine.dispatch_pending().unwrap();
        assert_eq!(fulls.load(Ordering::Relaxed), 1, "{t}");
    });
}

#[test]
fn start_stop_run_activate_deactivate() {
    each_engine("running", 64, |t, engine| {
        assert!(matches!(engine.run(), Err(EngineError::NotActive)));
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        engine
            .register_handler(
                "run.{n}",
                Handler::new(move |_m: &Message<'_>| {
                    s.fetch_add(1, Ordering::Relaxed);
                }),
                false,
            )
            .unwrap();
        engine.start().unwrap();
        assert!(engine.is_active() && engine.is_running(), "{t}");
        assert!(matches!(engine.start(), Err(EngineError::AlreadyRunning)));
        assert!(matches!(engine.run(), Err(EngineError::AlreadyRunning)));
        assert!(matches!(
            engine.get(Wait::non_blocking()),
            Err(GetError::Dispatching)
        ));
        for i in 0..100 {
            engine
                .put(&format!("run.{}", i % 7), b"", Wait::default())
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.load(Ordering::Relaxed) < 100 {
            assert!(Instant::now() < deadline, "{t}: watchdog");
            std::thread::sleep(Duration::from_millis(1));
        }
        engine.stop();
        assert!(!engine.is_active() && !engine.is_running(), "{t}");
        // Stopped: events wait in the queue.
        engine.put("run.x", b"", Wait::default()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(seen.load(Ordering::Relaxed), 100, "{t}");
        // `run` in this thread, ended by a handler that deactivates.
        let handle = engine.handle();
        engine
            .register_handler(
                "run.stop",
                Handler::new(move |_m: &Message<'_>| handle.upgrade().unwrap().deactivate()),
                false,
            )
            .unwrap();
        engine.put("run.stop", b"", Wait::default()).unwrap();
        engine.activate();
        engine.run().unwrap();
        assert!(!engine.is_active());
        assert_eq!(seen.load(Ordering::Relaxed), 102, "{t}");
        // Start again after a stop.
        engine.start().unwrap();
        engine.put("run.again", b"", Wait::default()).unwrap();
        while seen.load(Ordering::Relaxed) < 103 {
            assert!(Instant::now() < deadline, "{t}: watchdog");
            std::thread::sleep(Duration::from_millis(1));
        }
        engine.stop();
    });
}

#[test]
fn unregister_while_dispatching_takes_effect_from_the_next_event() {
    each_engine("unreg", 256, |t, engine| {
        // A handler that removes itself on its first call.
        let calls = Arc::new(AtomicU64::new(0));
        let slot: Arc<Mutex<Option<Handler>>> = Arc::default();
        let (c, me, handle) = (calls.clone(), slot.clone(), engine.handle());
        let once = Handler::new(move |_m: &Message<'_>| {
            c.fetch_add(1, Ordering::Relaxed);
            let h = me.lock().unwrap().clone().unwrap();
            assert!(
                handle
                    .upgrade()
                    .unwrap()
                    .unregister_handler("u.{x}", &h)
                    .unwrap()
            );
        });
        *slot.lock().unwrap() = Some(once.clone());
        engine.register_handler("u.{x}", once, false).unwrap();
        for _ in 0..3 {
            engine.put("u.v", b"", Wait::default()).unwrap();
        }
        engine.dispatch_pending().unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 1, "{t}");

        // Another thread churning registrations while the engine dispatches.
        let hits = Arc::new(AtomicUsize::new(0));
        let h2 = hits.clone();
        let steady = Handler::new(move |_m: &Message<'_>| {
            h2.fetch_add(1, Ordering::Relaxed);
        });
        engine.register_handler("u.**", steady, false).unwrap();
        engine.start().unwrap();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..200 {
                    let h = Handler::new(|_m: &Message<'_>| {});
                    engine
                        .register_handler(&format!("u.{{x{}}}", i % 5), h.clone(), false)
                        .unwrap();
                    assert!(
                        engine
                            .unregister_handler(&format!("u.{{x{}}}", i % 5), &h)
                            .unwrap()
                    );
                }
            });
            for _ in 0..200 {
                engine.put("u.v", b"", Wait::default()).unwrap();
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while hits.load(Ordering::Relaxed) < 200 {
            assert!(Instant::now() < deadline, "{t}: watchdog");
            std::thread::sleep(Duration::from_millis(1));
        }
        engine.stop();
        assert_eq!(hits.load(Ordering::Relaxed), 200, "{t}");
    });
}

#[test]
fn timers_tick_on_wall_clock_seconds_and_on_intervals_from_their_activation() {
    each_engine("timers", 256, |t, engine| {
        let ticks: Arc<Mutex<Vec<(String, TimerTick)>>> = Arc::default();
        let second = engine.get_timer(Duration::from_secs(1), None).unwrap();
        assert_eq!(second.as_str(), SECOND_TIMER_TOPIC);
        // Asking again gives the same timer.
        assert_eq!(
            engine.get_timer(Duration::from_secs(1), None).unwrap(),
            second
        );
        let activate = SystemTime::now() + Duration::from_millis(300);
        let fast = engine
            .get_timer(Duration::from_millis(200), Some(activate))
            .unwrap();
        assert_eq!(fast.as_str(), "EventEngine.Internal.Timer.200ms");
        assert_eq!(engine.timers().len(), 2);
        assert!(engine.get_timer(Duration::ZERO, None).is_err());
        let k = ticks.clone();
        engine
            .register_handler(
                "EventEngine.Internal.Timer.{which}",
                Handler::new(move |m: &Message<'_>| {
                    k.lock()
                        .unwrap()
                        .push((m.topic().to_owned(), *m.as_pod::<TimerTick>().unwrap()));
                }),
                false,
            )
            .unwrap();
        engine.start().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let have = ticks.lock().unwrap().clone();
            let seconds = have.iter().filter(|(t, _)| t == SECOND_TIMER_TOPIC).count();
            let fasts = have.iter().filter(|(t, _)| t == fast.as_str()).count();
            if seconds >= 2 && fasts >= 5 {
                break;
            }
            assert!(Instant::now() < deadline, "{t}: watchdog: {have:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        engine.stop();
        let have = ticks.lock().unwrap().clone();
        let start = activate
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        for (topic, tick) in &have {
            // Never early; the lateness bound is generous (loaded CI).
            assert!(tick.fired_ns >= tick.scheduled_ns, "{t}: {tick:?}");
            assert!(
                tick.fired_ns - tick.scheduled_ns < 2_000_000_000,
                "{t}: {tick:?}"
            );
            if topic == SECOND_TIMER_TOPIC {
                assert_eq!(tick.scheduled_ns % 1_000_000_000, 0, "{t}: {tick:?}");
                assert_eq!(tick.interval_ns, 1_000_000_000);
            } else {
                assert_eq!(tick.interval_ns, 200_000_000);
                assert!(tick.scheduled_ns >= start);
                assert_eq!(
                    (tick.scheduled_ns - start) % 200_000_000,
                    0,
                    "{t}: {tick:?}"
                );
            }
        }
        // Counts increase by one per tick, schedules strictly increase.
        for which in [SECOND_TIMER_TOPIC, fast.as_str()] {
            let mine: Vec<&TimerTick> = have
                .iter()
                .filter(|(t, _)| t == which)
                .map(|(_, k)| k)
                .collect();
            for w in mine.windows(2) {
                assert_eq!(w[1].count, w[0].count + 1, "{t}");
                assert!(w[1].scheduled_ns > w[0].scheduled_ns, "{t}");
            }
        }
    });
}

// ------------------------------------------------------ cross-process

#[test]
#[ignore = "the entry point of this binary's child processes (testkit::spawn)"]
fn child_entry() {
    let Ok(role) = std::env::var("SHM_BUS_ROLE") else {
        return; // not a child: nothing to do
    };
    match role.as_str() {
        "engine-worker" => engine_worker(),
        other => panic!("unknown role {other}"),
    }
}

/// A worker process: an engine over the bus with handlers on a pattern;
/// counts what it gets until `count` events or a `stop` event arrive.
fn engine_worker() {
    let bus = Bus::open(&arg("BUS")).unwrap();
    let engine = EventEngine::with_bus(&bus, "worker").unwrap();
    let expected = arg_u64("COUNT");
    let sum = Arc::new(AtomicU64::new(0));
    let n = Arc::new(AtomicU64::new(0));
    let (s, c) = (sum.clone(), n.clone());
    engine
        .register_handler(
            "orders.{venue}.+side",
            Handler::new(move |m: &Message<'_>| {
                assert_eq!(m.capture("venue"), Some("XNAS"));
                assert!(matches!(m.capture("side"), Some("buy" | "sell")));
                assert!(m.producer().is_some());
                s.fetch_add(*m.as_pod::<u64>().unwrap(), Ordering::Relaxed);
                c.fetch_add(1, Ordering::Relaxed);
            }),
            false,
        )
        .unwrap();
    let exact = Arc::new(AtomicU64::new(0));
    let e = exact.clone();
    engine
        .register_handler(
            "orders.XNAS.buy",
            Handler::new(move |_m: &Message<'_>| {
                e.fetch_add(1, Ordering::Relaxed);
            }),
            false,
        )
        .unwrap();
    engine.start().unwrap();
    println!("READY");
    let deadline = Instant::now() + Duration::from_secs(60);
    while n.load(Ordering::Relaxed) < expected {
        assert!(Instant::now() < deadline, "worker watchdog");
        std::thread::sleep(Duration::from_millis(1));
    }
    engine.stop();
    println!(
        "RESULT n={} sum={} exact={}",
        n.load(Ordering::Relaxed),
        sum.load(Ordering::Relaxed),
        exact.load(Ordering::Relaxed)
    );
}

#[test]
fn a_handler_in_another_process_receives_events_put_here() {
    let (name, _guard): (String, BusGuard) = unique("xproc");
    let bus = Bus::create(&name, BusConfig::default()).unwrap();
    const N: u64 = 20_000;
    let mut workers: Vec<_> = (0..2)
        .map(|_| {
            spawn(
                "engine-worker",
                &[("BUS", name.clone()), ("COUNT", N.to_string())],
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for w in &mut workers {
        w.wait_line("READY", deadline);
    }
    // This process only sends: an engine that also received would hold
    // the producers back (Block policy) until it dispatched.
    let engine = EventEngine::publisher_only(&bus, "feed").unwrap();
    let put = Wait::timeout(Duration::from_secs(30)); // a watchdog, not a bound
    let mut want_sum = 0;
    let mut buys = 0;
    for i in 0..N {
        let side = if i % 3 == 0 { "buy" } else { "sell" };
        buys += u64::from(side == "buy");
        engine
            .put_pod(&format!("orders.XNAS.{side}"), &i, put)
            .unwrap();
        // Not matched by the workers' patterns.
        if i % 100 == 0 {
            engine.put("orders.XNAS.buy.extra", b"", put).unwrap();
        }
        want_sum += i;
    }
    for w in &mut workers {
        let r = w.finish(deadline);
        assert_eq!(r["n"], N);
        assert_eq!(r["sum"], want_sum);
        assert_eq!(r["exact"], buys);
    }
    // The workers detached; a publisher-only engine has no subscriber.
    assert!(bus.info().subscribers.is_empty());
    assert!(matches!(
        engine.get(Wait::non_blocking()),
        Err(GetError::SendOnly)
    ));
    assert!(matches!(engine.start(), Err(EngineError::SendOnly)));
}

#[test]
fn timer_tick_payload_is_pod_and_topic_names_are_exact() {
    // A timer never fires on a deactivated engine.
    let engine = EventEngine::new(16);
    let topic = engine.get_timer(Duration::from_millis(10), None).unwrap();
    assert_eq!(topic.as_str(), "EventEngine.Internal.Timer.10ms");
    std::thread::sleep(Duration::from_millis(50));
    assert!(matches!(
        engine.get(Wait::non_blocking()),
        Err(GetError::Empty)
    ));
    engine.activate();
    let m = engine.get(Wait::timeout(Duration::from_secs(30))).unwrap();
    assert_eq!(m.topic(), topic.as_str());
    assert_eq!(m.as_pod::<TimerTick>().unwrap().interval_ns, 10_000_000);
}

#[test]
fn a_blocking_get_wakes_for_a_put_from_another_thread() {
    // A `get` that waits for ever (after spinning) must be woken by the
    // `put` that makes an event available; the watchdog catches a hang.
    each_engine("wake", 16, |t, engine| {
        // A detached thread, so that a hang fails the test instead of
        // hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = engine.handle();
        std::thread::spawn(move || {
            let engine = handle.upgrade().unwrap();
            let got = engine.get(Wait::blocking().with_max_spin(0));
            let _ = tx.send(got.map(|m| m.payload().to_vec()));
        });
        std::thread::sleep(Duration::from_millis(50));
        engine.put("w.x", b"late", Wait::default()).unwrap();
        let got = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{t}: watchdog: the blocked get was never woken"));
        assert_eq!(got.unwrap(), b"late", "{t}");
    });
}
