//! Events and listeners (numba's model), in one process and across
//! processes through an `EventBridge`, and the bus's lifecycle events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_bus_core::delivery::AnyPolicy;
use shm_bus_core::{Bus, BusConfig, GroupMode, GroupOptions, Policy, RecvError};
use shm_bus_engine::events::{
    self, Event, EventBridge, EventError, EventStatus, GROUP_MEMBER_KIND, LAG_KIND, LOSS_KIND,
    Listener, Listeners, PRODUCER_KIND, REDELIVERY_KIND, RecordingListener, Role, SUBSCRIBER_KIND,
    TimingListener,
};

use shm_bus_testkit::{arg, spawn, unique};

/// Waits (with a watchdog) until `recorder` holds an event `pred` accepts.
fn wait_for(recorder: &RecordingListener, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(e) = recorder.events().into_iter().find(|e| pred(e)) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: no {what} in {:?}",
            recorder.events()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn listeners_see_start_and_end_of_their_kind_only() {
    let reg = Listeners::new();
    let rec = Arc::new(RecordingListener::new());
    let other = Arc::new(RecordingListener::new());
    reg.register("app:compile", rec.clone()).unwrap();
    reg.register("app:other", other.clone()).unwrap();
    reg.start_event("app:compile", b"f(x)".to_vec()).unwrap();
    reg.end_event("app:compile", b"f(x)".to_vec(), None)
        .unwrap();
    reg.end_event("app:compile", Vec::new(), Some("type error"))
        .unwrap();
    let got = rec.buffer();
    assert_eq!(got.len(), 3);
    assert!(got[0].1.is_start() && got[0].1.data_str() == Some("f(x)"));
    assert!(got[1].1.is_end() && !got[1].1.is_failed());
    assert_eq!(got[2].1.failure(), Some("type error"));
    assert!(
        got.windows(2).all(|w| w[0].0 <= w[1].0),
        "timestamps in order"
    );
    assert_eq!(got[0].1.pid(), std::process::id());
    assert!(other.is_empty());
    assert!(reg.unregister("app:compile", &rec));
    assert!(!reg.unregister("app:compile", &rec));
    reg.start_event("app:compile", Vec::new()).unwrap();
    assert_eq!(rec.len(), 3);
    assert_eq!(reg.kinds(), ["app:other"]);
}

#[test]
fn trigger_event_emits_end_on_drop_and_marks_it_failed_on_panic() {
    let reg = Listeners::new();
    let rec = Arc::new(RecordingListener::new());
    reg.register("app:span", rec.clone()).unwrap();
    {
        let _span = reg.trigger_event("app:span", b"ok".to_vec()).unwrap();
        assert_eq!(rec.len(), 1);
    }
    {
        let mut span = reg.trigger_event("app:span", Vec::new()).unwrap();
        span.fail("bad input");
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _span = reg.trigger_event("app:span", Vec::new()).unwrap();
        panic!("the work failed");
    }));
    assert!(r.is_err());
    let statuses: Vec<(EventStatus, Option<String>)> = rec
        .events()
        .iter()
        .map(|e| (e.status(), e.failure().map(str::to_owned)))
        .collect();
    assert_eq!(
        statuses,
        [
            (EventStatus::Start, None),
            (EventStatus::End, None),
            (EventStatus::Start, None),
            (EventStatus::End, Some("bad input".into())),
            (EventStatus::Start, None),
            (EventStatus::End, Some("panicked".into())),
        ]
    );
    assert_eq!(rec.events()[1].data_str(), Some("ok"));
}

#[test]
fn an_installed_listener_is_removed_at_the_end_of_its_scope() {
    // The process-wide registry and free functions, with a kind of our own.
    let kind = format!("test:install-{}", std::process::id());
    {
        let rec = events::install_recorder(&kind).unwrap();
        events::start_event(&kind, Vec::new()).unwrap();
        events::end_event(&kind, Vec::new(), None).unwrap();
        assert_eq!(rec.len(), 2);
    }
    let after = Arc::new(RecordingListener::new());
    events::register(&format!("{kind}-other"), after.clone()).unwrap();
    events::start_event(&kind, Vec::new()).unwrap();
    assert!(after.is_empty());
    assert!(events::unregister(&format!("{kind}-other"), &after));
    let timer = events::install_timer(&kind).unwrap();
    {
        let _span = events::trigger_event(&kind, Vec::new()).unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    assert!(timer.duration().unwrap() >= Duration::from_millis(3));
}

#[test]
fn timing_listener_counts_nested_spans_once_and_adds_up_spans() {
    let t = TimingListener::new();
    assert!(!t.done());
    assert_eq!(t.duration(), None);
    // An END without a START is ignored.
    t.notify(&Event::new("app:t", EventStatus::End, Vec::new()).unwrap());
    assert!(!t.done());
    // Two spans of real time, the second nested once.
    let reg = Listeners::new();
    let t = Arc::new(TimingListener::new());
    reg.register("app:t", t.clone()).unwrap();
    {
        let _outer = reg.trigger_event("app:t", Vec::new()).unwrap();
        {
            let _inner = reg.trigger_event("app:t", Vec::new()).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(!t.done(), "the inner END does not end the outer span");
        std::thread::sleep(Duration::from_millis(2));
    }
    let first = t.duration().unwrap();
    assert!(first >= Duration::from_millis(4));
    {
        let _again = reg.trigger_event("app:t", Vec::new()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(t.duration().unwrap() >= first + Duration::from_millis(2));
}

#[test]
fn bad_kinds_are_refused_with_a_reason() {
    let reg = Listeners::new();
    let rec = Arc::new(RecordingListener::new());
    for bad in [
        "",
        "a..b",
        "x.{y}",
        "(a|b)",
        "/re/",
        "**",
        "shm-bus:custom",
        "shm-bus:group",
    ] {
        match reg.register(bad, rec.clone()) {
            Err(EventError::InvalidKind { kind, reason }) => {
                assert_eq!(kind, bad);
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?}: {other:?}"),
        }
        assert!(reg.start_event(bad, Vec::new()).is_err());
        assert!(reg.trigger_event(bad, Vec::new()).is_err());
    }
    // The bus's own kinds can be listened to; dotted kinds are fine.
    for kind in events::LIFECYCLE_KINDS {
        reg.register(kind, rec.clone()).unwrap();
    }
    reg.register("app.stage.compile", rec.clone()).unwrap();
}

#[test]
fn a_panicking_listener_does_not_stop_the_others() {
    struct Boom;
    impl Listener for Boom {
        fn on_start(&self, _e: &Event) {
            panic!("listener failed on purpose");
        }
        fn on_end(&self, _e: &Event) {}
    }
    let reg = Listeners::new();
    let rec = Arc::new(RecordingListener::new());
    reg.register("app:p", Arc::new(Boom)).unwrap();
    reg.register("app:p", rec.clone()).unwrap();
    reg.start_event("app:p", Vec::new()).unwrap();
    assert_eq!(rec.len(), 1);
}

// ------------------------------------------------------ cross-process

#[test]
#[ignore = "the entry point of this binary's child processes (testkit::spawn)"]
fn child_entry() {
    let Ok(role) = std::env::var("SHM_BUS_ROLE") else {
        return;
    };
    let bus = Bus::open(&arg("BUS")).unwrap();
    match role.as_str() {
        // Process A: emits spans through the global registry's bridge.
        "spans" => {
            let bridge = EventBridge::connect(&bus).unwrap();
            {
                let _span = events::trigger_event("xproc:span", b"job 1".to_vec()).unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
            {
                let mut span = events::trigger_event("xproc:span", b"job 2".to_vec()).unwrap();
                span.fail("bad input");
            }
            assert_eq!(bridge.stats().forwarded, 4);
            println!("RESULT pid={}", std::process::id());
        }
        // Joins two groups (at-least-once and at-most-once), takes the
        // one event each hands it, and waits to be killed holding both.
        "group-holder" => {
            let mut again = bus.group_member("again", "holder", &["grp.t"]).unwrap();
            let options = GroupOptions {
                mode: GroupMode::AtMostOnce,
                claim_batch: 8,
            };
            let mut once = bus
                .group_member_with::<AnyPolicy>("once", "holder", &["grp.t"], options)
                .unwrap();
            println!("READY");
            let held = (again.recv().unwrap(), once.recv().unwrap());
            println!("HOLDING");
            std::thread::sleep(Duration::from_secs(120));
            drop(held);
        }
        // Attaches and waits to be killed.
        "member" => {
            let _publisher = bus.publisher("doomed-pub").unwrap();
            let _subscriber = bus.subscriber("doomed-sub").unwrap();
            println!("READY");
            std::thread::sleep(Duration::from_secs(120));
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_timing_listener_here_times_a_span_emitted_in_another_process() {
    let (name, _guard) = unique("ev-span");
    let bus = Bus::create(&name, BusConfig::default()).unwrap();
    let reg = Listeners::new();
    let timer = Arc::new(TimingListener::new());
    let rec = Arc::new(RecordingListener::new());
    reg.register("xproc:span", timer.clone()).unwrap();
    reg.register("xproc:span", rec.clone()).unwrap();
    let bridge = EventBridge::connect_with(&bus, &reg).unwrap();
    let mut a = spawn("spans", &[("BUS", name.clone())]);
    let result = a.finish(Instant::now() + Duration::from_secs(60));
    let failed = wait_for(&rec, "the failed END", |e| e.is_failed());
    let events = rec.events();
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(events.iter().all(|e| u64::from(e.pid()) == result["pid"]));
    assert_eq!(events[0].data_str(), Some("job 1"));
    assert_eq!(failed.failure(), Some("bad input"));
    // Timed by the emitter's clock: at least the 50 ms it slept.
    assert!(timer.duration().unwrap() >= Duration::from_millis(50));
    assert_eq!(bridge.stats().received, 4);
    assert_eq!(bridge.stats().forwarded, 0);
}

#[test]
fn lifecycle_events_tell_of_members_joining_leaving_and_dying() {
    let (name, _guard) = unique("ev-life");
    let bus = Bus::create(&name, BusConfig::default()).unwrap();
    let reg = Listeners::new();
    let rec = Arc::new(RecordingListener::new());
    reg.register(SUBSCRIBER_KIND, rec.clone()).unwrap();
    reg.register(PRODUCER_KIND, rec.clone()).unwrap();
    let _bridge = EventBridge::connect_with(&bus, &reg).unwrap();

    // A clean attach and detach here.
    let sub = bus.subscriber("polite").unwrap();
    wait_for(&rec, "polite START", |e| {
        e.is_start() && e.lifecycle().is_some_and(|l| l.name == "polite")
    });
    drop(sub);
    let left = wait_for(&rec, "polite END", |e| {
        e.is_end() && e.lifecycle().is_some_and(|l| l.name == "polite")
    });
    assert!(!left.is_failed(), "a detach is not a loss: {left:?}");

    // A process that attaches both roles and is SIGKILLed.
    let mut child = spawn("member", &[("BUS", name.clone())]);
    child.wait_line("READY", Instant::now() + Duration::from_secs(60));
    let pid = child.child.id();
    for (kind, role, member) in [
        (SUBSCRIBER_KIND, Role::Subscriber, "doomed-sub"),
        (PRODUCER_KIND, Role::Producer, "doomed-pub"),
    ] {
        let joined = wait_for(&rec, "member START", |e| {
            e.kind() == kind && e.is_start() && e.lifecycle().is_some_and(|l| l.pid == pid)
        });
        let l = joined.lifecycle().unwrap();
        assert_eq!(
            (l.role, l.name.as_str(), l.bus.as_str()),
            (role, member, name.as_str())
        );
    }
    child.sigkill();
    for kind in [SUBSCRIBER_KIND, PRODUCER_KIND] {
        let lost = wait_for(&rec, "member lost", |e| {
            e.kind() == kind && e.is_end() && e.lifecycle().is_some_and(|l| l.pid == pid)
        });
        assert_eq!(lost.failure(), Some(format!("process {pid} died").as_str()));
    }
    // The bridge reaped the dead subscriber's slot; each END came once.
    let ends = rec
        .events()
        .iter()
        .filter(|e| e.is_end() && e.lifecycle().is_some_and(|l| l.pid == pid))
        .count();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ends, 2);
    assert!(bus.info().subscribers.iter().all(|s| s.pid != pid));
}

#[test]
fn a_lag_event_carries_the_number_of_events_missed() {
    let (name, _guard) = unique("ev-lag");
    let config = BusConfig::default()
        .with_policy(Policy::Overwrite)
        .with_ring_bytes(4096);
    let bus = Bus::create(&name, config).unwrap();
    let reg = Listeners::new();
    let rec = Arc::new(RecordingListener::new());
    reg.register(LAG_KIND, rec.clone()).unwrap();
    let _bridge = EventBridge::connect_with(&bus, &reg).unwrap();
    let mut sub = bus.subscriber("slow").unwrap();
    sub.subscribe("lag.t").unwrap();
    let mut publisher = bus.publisher("fast").unwrap();
    for i in 0..1000u64 {
        publisher.publish("lag.t", &i.to_le_bytes()).unwrap();
    }
    let missed = match sub.try_recv() {
        Err(RecvError::Lagged(n)) => n,
        other => panic!("expected lag, got {other:?}"),
    };
    // (The bridge's own subscriber lags too, and says so: filter by name.)
    let lag = wait_for(&rec, "lag event", |e| {
        e.kind() == LAG_KIND && e.lifecycle().is_some_and(|l| l.name == "slow")
    });
    let l = lag.lifecycle().unwrap();
    assert_eq!(
        (l.role, l.name.as_str(), l.count),
        (Role::Subscriber, "slow", missed)
    );
    assert!(lag.is_end());
}

#[test]
fn lifecycle_events_tell_of_group_members_joining_leaving_dying_and_redeliveries() {
    let (name, _guard) = unique("ev-group");
    let bus = Bus::create(&name, BusConfig::default()).unwrap();
    let reg = Listeners::new();
    let rec = Arc::new(RecordingListener::new());
    for kind in [GROUP_MEMBER_KIND, REDELIVERY_KIND, LOSS_KIND] {
        reg.register(kind, rec.clone()).unwrap();
    }
    let _bridge = EventBridge::connect_with(&bus, &reg).unwrap();
    let member = |e: &Event, status: EventStatus, group: &str, who: &str| {
        e.kind() == GROUP_MEMBER_KIND
            && e.status() == status
            && e.lifecycle().is_some_and(|l| {
                l.role == Role::GroupMember && l.group.as_deref() == Some(group) && l.name == who
            })
    };

    // A clean join and leave here.
    let polite = bus.group_member("again", "polite", &["grp.t"]).unwrap();
    let joined = wait_for(&rec, "polite START", |e| {
        member(e, EventStatus::Start, "again", "polite")
    });
    let l = joined.lifecycle().unwrap();
    assert_eq!((l.pid, l.bus.as_str()), (std::process::id(), name.as_str()));
    drop(polite);
    let left = wait_for(&rec, "polite END", |e| {
        member(e, EventStatus::End, "again", "polite")
    });
    assert!(!left.is_failed(), "a leave is not a loss: {left:?}");

    // A process that joins both groups, takes an event of each and is
    // SIGKILLed holding them.
    let mut child = spawn("group-holder", &[("BUS", name.clone())]);
    let deadline = Instant::now() + Duration::from_secs(60);
    child.wait_line("READY", deadline);
    let pid = child.child.id();
    let mut publisher = bus.publisher("feed").unwrap();
    publisher.publish("grp.t", b"job").unwrap();
    child.wait_line("HOLDING", deadline);
    for group in ["again", "once"] {
        let joined = wait_for(&rec, "holder START", |e| {
            member(e, EventStatus::Start, group, "holder")
        });
        assert_eq!(joined.lifecycle().unwrap().pid, pid);
    }
    child.sigkill();
    for group in ["again", "once"] {
        let lost = wait_for(&rec, "holder lost", |e| {
            member(e, EventStatus::End, group, "holder")
        });
        assert_eq!(lost.failure(), Some(format!("process {pid} died").as_str()));
    }
    // Nothing was redelivered or lost yet: only adoption does that.
    assert!(rec.events().iter().all(|e| e.kind() == GROUP_MEMBER_KIND));

    // Members here adopt the dead one's work: handed out again in the
    // at-least-once group, dropped in the at-most-once one.
    let mut again = bus.group_member("again", "rescuer", &[]).unwrap();
    let sample = again.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(sample.redelivered());
    assert_eq!(sample.payload(), b"job");
    drop(sample);
    let options = GroupOptions {
        mode: GroupMode::AtMostOnce,
        claim_batch: 8,
    };
    let mut once = bus
        .group_member_with::<AnyPolicy>("once", "rescuer", &[], options)
        .unwrap();
    while bus.groups().iter().all(|g| g.lost == 0) {
        assert!(
            Instant::now() < deadline,
            "watchdog: the loss was not counted"
        );
        assert!(matches!(once.try_recv(), Err(RecvError::Empty)));
        std::thread::sleep(Duration::from_millis(5));
    }
    for (kind, group) in [(REDELIVERY_KIND, "again"), (LOSS_KIND, "once")] {
        let e = wait_for(&rec, kind, |e| e.kind() == kind);
        let l = e.lifecycle().unwrap();
        assert_eq!(
            (l.role, l.name.as_str(), l.group.as_deref(), l.count, l.pid),
            (Role::Group, group, Some(group), 1, 0)
        );
        assert!(e.is_end() && !e.is_failed());
    }
    // Each END of the dead member came once; the rescuers joined.
    std::thread::sleep(Duration::from_millis(200));
    let events = rec.events();
    let ends = events
        .iter()
        .filter(|e| e.is_end() && e.lifecycle().is_some_and(|l| l.pid == pid))
        .count();
    assert_eq!(ends, 2, "{events:?}");
    for group in ["again", "once"] {
        assert!(
            events
                .iter()
                .any(|e| member(e, EventStatus::Start, group, "rescuer"))
        );
    }
}
