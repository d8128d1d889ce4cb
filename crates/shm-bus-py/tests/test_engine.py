"""EventEngine / EventEngineEx / EventHook / MessagePayload, behaviour by
behaviour from PyEventEngine's API reference; every test runs in-process and
over a bus (one process here; tests/test_cross_process.py spans processes)."""

import logging
import threading
import time
from datetime import datetime, timedelta

import pytest

from shm_bus import (EVENT_ENGINE, Empty, EventEngine, EventEngineEx, EventHook, EventHookEx, Full,
                     MessagePayload, Topic, timer_topic)


@pytest.fixture(params=["local", "bus"])
def make(request, bus_name):
    engines = []

    def make_engine(cls=EventEngine, capacity=4095, **kw):
        if request.param == "bus":
            kw.setdefault("bus", bus_name)
            kw.setdefault("name", f"e{len(engines)}")
        e = cls(capacity, **kw)
        engines.append(e)
        return e

    make_engine.transport = request.param
    yield make_engine
    for e in engines:
        if e.active or e.engine is not None:
            e.stop()


def dispatch_all(e, expected, timeout=10.0):
    """Runs the engine until ``expected()`` holds (watchdog: ``timeout``)."""
    e.start()
    deadline = time.monotonic() + timeout
    while not expected():
        if time.monotonic() > deadline:
            e.stop()
            raise AssertionError("events were not dispatched in time")
        time.sleep(0.005)
    e.stop()


def test_put_get_roundtrip(make):
    e = make()
    e.put(Topic("a.b"), 1, "x", k=2)
    m = e.get(timeout=5)
    assert isinstance(m, MessagePayload)
    assert m.topic == Topic("a.b") and m.args == (1, "x") and m.kwargs == {"k": 2}
    assert m.kwargs_with_topic == {"k": 2, "topic": Topic("a.b")}
    assert m.owner and isinstance(m.seq_id, int)
    e.publish(Topic("a.c"), (3,), {})
    m = e.get(timeout=5)
    assert m.topic.value == "a.c" and m.args == (3,) and m.kwargs == {}


def test_put_pattern_is_value_error(make):
    e = make()
    with pytest.raises(ValueError):
        e.put(Topic("a.{x}"), 1)
    with pytest.raises(ValueError):
        e.publish(Topic("a.(b|c)"), (), {})


def test_get_empty(make):
    e = make()
    with pytest.raises(Empty):
        e.get(block=False)
    t = time.monotonic()
    with pytest.raises(Empty):
        e.get(timeout=0.1)
    assert time.monotonic() - t >= 0.09


def test_full_local_queue():
    e = EventEngine(capacity=2)
    e.put(Topic("a"), 1)
    e.put(Topic("a"), 2)
    assert e.occupied == 2 and e.capacity == 2
    with pytest.raises(Full):
        e.put(Topic("a"), 3, block=False)
    with pytest.raises(Full):
        e.put(Topic("a"), 3, timeout=0.05)
    assert e.get().args == (1,)
    e.put(Topic("a"), 3, block=False)


def test_full_bus_ring(bus_name):
    # a subscriber that never reads holds the ring: put answers Full
    e = EventEngine(bus=bus_name, name="slow", ring_bytes=4096)
    big = b"x" * 1000
    with pytest.raises(Full):
        for _ in range(100):
            e.put("a.b", big, block=False)
    with pytest.raises(Full):
        e.put("a.b", big, timeout=0.05)
    assert e.occupied > 0 and e.capacity == 4096
    assert e.get(timeout=1).args[0] == big


def test_receive_false_engine_never_holds_the_bus(bus_name):
    sender = EventEngine(bus=bus_name, name="sender", ring_bytes=4096, receive=False)
    for _ in range(1000):  # many rings' worth: nobody holds it back
        sender.put("a.b", b"y" * 100, block=False)
    with pytest.raises(RuntimeError):
        sender.get(block=False)
    with pytest.raises(RuntimeError):
        sender.start()


def test_calling_convention_and_order(make):
    e = make()
    calls = []

    def no_topic(x):
        calls.append(("no_topic", x))

    def with_topic(x, topic):
        calls.append(("with_topic", x, topic.value))

    def var_kw(x, **kw):
        calls.append(("var_kw", x, sorted(kw)))

    def caps(x, captures):
        calls.append(("caps", x, captures))

    e.register_handler(Topic("md.{venue}"), with_topic)
    e.register_handler(Topic("md.{venue}"), no_topic)
    e.register_handler(Topic("md.XNAS"), var_kw)
    e.register_handler(Topic("(md|x).XNAS"), caps)
    e.put(Topic("md.XNAS"), 7)
    dispatch_all(e, lambda: len(calls) == 4)
    # exact hook first; then pattern hooks in registration order; within a
    # hook, no-topic handlers before with-topic handlers
    assert calls == [
        ("var_kw", 7, ["topic"]),
        ("no_topic", 7),
        ("with_topic", 7, "md.XNAS"),
        ("caps", 7, {}),
    ]


def test_captures_for_pattern_handlers(make):
    e = make()
    got = []
    e.register_handler("md.{venue}.{sym}", lambda captures: got.append(captures))
    e.put("md.XNAS.AAPL")
    dispatch_all(e, lambda: got)
    assert got == [{"venue": "XNAS", "sym": "AAPL"}]


def test_handler_exception_is_logged_and_dispatch_goes_on(make, caplog):
    e = make()
    seen = []

    def bad(x):
        raise RuntimeError("boom")

    e.register_handler("a.b", bad)
    e.register_handler("a.b", lambda x: seen.append(x))
    e.register_handler("a.{c}", lambda x: seen.append(("p", x)))
    with caplog.at_level(logging.ERROR, logger="shm_bus"):
        e.put("a.b", 1)
        e.put("a.b", 2)
        dispatch_all(e, lambda: len(seen) == 4)
    assert seen == [1, ("p", 1), 2, ("p", 2)]
    assert sum("boom" in r.getMessage() for r in caplog.records) == 2


def test_register_unregister_hooks(make, caplog):
    e = make()
    h = lambda *a, **k: None  # noqa: E731
    e.register_handler(Topic("a.b"), h)
    e.register_handler(Topic("a.b"), h, deduplicate=True)
    assert len(e.get_hook(Topic("a.b"))) == 1
    e.register_handler(Topic("a.b"), h)
    assert len(e.get_hook("a.b")) == 2
    e.register_handler(Topic("a.{x}"), h)
    assert len(e) == 2
    assert [t.value for t in e.topics()] == ["a.b", "a.{x}"]
    assert [h.topic.value for h in e.event_hooks()] == ["a.b", "a.{x}"]
    assert [(t.value, type(hk).__name__) for t, hk in e.items()] == [("a.b", "EventHook"), ("a.{x}", "EventHook")]
    assert set(e.exact_topic_hook_map) == {"a.b"} and set(e.generic_topic_hook_map) == {"a.{x}"}
    assert [hk.topic.value for hk in e[Topic("a.b")]] == ["a.b", "a.{x}"]
    assert e[Topic("z")] == []
    e.unregister_handler(Topic("a.b"), h)
    e.unregister_handler(Topic("a.b"), h)
    with pytest.raises(KeyError):
        e.get_hook(Topic("a.b"))
    with caplog.at_level(logging.ERROR, logger="shm_bus"):
        e.unregister_handler(Topic("nope"), h)
    assert any("No EventHook" in r.getMessage() for r in caplog.records)
    hook = EventHook(Topic("q.r"))
    e.register_hook(hook)
    with pytest.raises(KeyError):
        e.register_hook(EventHook(Topic("q.r")))
    assert e.unregister_hook(Topic("q.r")) is hook
    with pytest.raises(KeyError):
        e.unregister_hook(Topic("q.r"))


def test_handlers_added_to_a_registered_hook_fire(make):
    e = make()
    hook = EventHook(Topic("a.b"))
    e.register_hook(hook)
    got = []
    hook += got.append
    hook += got.append  # += deduplicates
    e.put("a.b", 1)
    dispatch_all(e, lambda: got)
    assert got == [1]


def test_custom_hook_trigger_is_called(make):
    e = make()
    got = []

    class MyHook(EventHook):
        def trigger(self, msg):
            got.append((msg.topic.value, msg.args, msg.kwargs))

    e.register_hook(MyHook(Topic("a.{x}")))
    e.put("a.b", 1, k="v")
    dispatch_all(e, lambda: got)
    assert got == [("a.b", (1,), {"k": "v"})]


def test_clear_only_when_stopped(make, caplog):
    e = make()
    e.register_handler("a", print)
    e.activate()
    with caplog.at_level(logging.ERROR, logger="shm_bus"):
        e.clear()
    assert len(e) == 1
    e.deactivate()
    e.clear()
    assert len(e) == 0


def test_start_stop_active_run(make):
    e = make()
    assert not e.active
    e.start()
    assert e.active and e.engine is not None and e.engine.is_alive()
    t = time.monotonic()
    e.stop()
    assert not e.active and e.engine is None
    assert time.monotonic() - t < 5  # sanity only: stop wakes the loop (no 1 s poll)
    # run() in a thread, deactivate() from another
    got = []
    e.register_handler("a", lambda x: got.append(x))
    th = threading.Thread(target=e.run)
    th.start()
    e.put("a", 5)
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.005)
    e.deactivate()
    th.join(10)
    assert not th.is_alive() and got == [5]


def test_put_from_handler(make):
    e = make()
    got = []
    e.register_handler("a", lambda x: e.put("b", x + 1))
    e.register_handler("b", lambda x: got.append(x))
    e.put("a", 1)
    dispatch_all(e, lambda: got)
    assert got == [2]


def test_put_from_handler_on_a_full_ring_raises_full_instead_of_waiting(bus_name):
    e = EventEngine(bus=bus_name, name="self", ring_bytes=4096)
    outcome = []

    def fill(_mv):
        try:
            for _ in range(100):  # more than a ring: only this engine's dispatch would free it
                e.put("b", b"x" * 500)
            outcome.append("no Full")
        except Full as err:
            outcome.append(str(err))
        e.deactivate()

    e.register_handler("a", fill)
    e.put("a", b"go")
    th = threading.Thread(target=e.run, daemon=True)
    th.start()
    th.join(30)  # watchdog: a put waiting for its own dispatch would never return
    assert not th.is_alive(), "put from the dispatch thread waited for its own dispatch"
    assert len(outcome) == 1 and "dispatch thread" in outcome[0]


def test_get_from_another_thread_sees_put(make):
    """A blocking get releases the GIL: a put from another thread reaches it."""
    e = make()
    res = []
    th = threading.Thread(target=lambda: res.append(e.get(timeout=10)))
    th.start()
    time.sleep(0.1)
    e.put("x.y", 42)
    th.join(15)
    assert not th.is_alive() and res[0].args == (42,)


def test_event_hook_api():
    hook = EventHook(Topic("a.b"), retry_on_unexpected_topic=True)
    got = []

    def f(x, **kw):
        got.append(("f", x, kw["topic"].value))

    def g(x):
        got.append(("g", x))

    hook.add_handler(f)
    hook.add_handler(g)
    assert len(hook) == 2 and f in hook and list(hook) == [g, f]
    assert [(d["fn"], d["with_topic"], d["idx"]) for d in hook.handlers] == [(g, False, 0), (f, True, 1)]
    hook(MessagePayload(Topic("a.b"), (1,), {}))
    hook.trigger(MessagePayload(Topic("a.b"), (2,), {}))
    assert got == [("g", 1), ("f", 1, "a.b"), ("g", 2), ("f", 2, "a.b")]
    hook -= g
    assert g not in hook and len(hook) == 1
    assert hook.remove_handler(g) is hook  # unknown: warning, no error
    hook.clear()
    assert len(hook) == 0
    with pytest.raises(TypeError):
        hook.add_handler(3)
    assert "a.b" in repr(hook)


def test_retry_on_unexpected_topic():
    class Odd:
        # accepts **kwargs by signature but refuses topic=
        def __call__(self, *a, **kw):
            if "topic" in kw:
                raise TypeError("f() got an unexpected keyword argument 'topic'")
            got.append(a)

    got = []
    hook = EventHook(Topic("a"), retry_on_unexpected_topic=True)
    hook.add_handler(Odd())
    hook.trigger(MessagePayload(Topic("a"), (1,), {}))
    assert got == [(1,)]


def test_bound_methods_compare_by_identity_of_self_and_func():
    class C:
        def m(self, x):
            pass

    c = C()
    hook = EventHook(Topic("a"))
    hook.add_handler(c.m)
    assert c.m in hook  # a new bound method object each time
    hook.add_handler(c.m, deduplicate=True)
    assert len(hook) == 1
    hook.remove_handler(c.m)
    assert len(hook) == 0


def test_event_hook_ex_stats():
    hook = EventHookEx(Topic("a"))

    def slow(x):
        time.sleep(0.01)

    hook.add_handler(slow)
    hook.trigger(MessagePayload(Topic("a"), (1,), {}))
    hook.trigger(MessagePayload(Topic("a"), (1,), {}))
    s = hook.get_stats(slow)
    assert s["calls"] == 2 and s["total_time"] >= 0.02
    assert [(fn, st["calls"]) for fn, st in hook.stats] == [(slow, 2)]
    assert hook.get_stats(print) is None
    hook.clear()
    assert hook.get_stats(slow) is None


def test_engine_ex_uses_hook_ex_and_timer(make):
    e = make(EventEngineEx)
    ticks = []
    e.register_handler("a", lambda: None)
    assert isinstance(e.get_hook("a"), EventHookEx)
    with pytest.raises(RuntimeError):
        e.get_timer(0.05)
    e.start()
    topic = e.get_timer(0.05)
    assert topic.value == "EventEngine.Internal.Timer.50ms" and topic.is_exact and len(topic) == 4
    assert e.get_timer(0.05) == topic and len(e.timer) == 1
    e.register_handler(topic, lambda interval, trigger_time: ticks.append((interval, trigger_time)))
    deadline = time.monotonic() + 10
    while len(ticks) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    e.stop()
    assert len(ticks) >= 3 and ticks[0][0] == 0.05 and isinstance(ticks[0][1], datetime)
    assert ticks[1][1] - ticks[0][1] == timedelta(seconds=0.05)
    assert not any(t.is_alive() for t in e.timer.values())


def test_timer_topic_names():
    assert timer_topic(1) == "EventEngine.Internal.Timer.Second"
    assert timer_topic(60) == "EventEngine.Internal.Timer.Minute"
    assert timer_topic(5) == "EventEngine.Internal.Timer.5"
    assert timer_topic(0.25) == "EventEngine.Internal.Timer.250ms"
    assert timer_topic(1.5e-3) == "EventEngine.Internal.Timer.1500us"
    with pytest.raises(ValueError):
        timer_topic(0)


def test_global_engine_and_repr():
    assert isinstance(EVENT_ENGINE, EventEngineEx)
    assert "EventEngine" in repr(EventEngine())
    with pytest.raises(ValueError):
        EventEngine(capacity=0)
