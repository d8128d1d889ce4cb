"""numba-style events (numba.core.event's API), in-process and across processes."""

import json
import os
import subprocess
import time

import pytest

from shm_bus import event as ev

from conftest import REPO


class Collect(ev.Listener):
    def __init__(self):
        self.seen = []

    def on_start(self, event):
        self.seen.append(("start", event.kind, event.data))

    def on_end(self, event):
        self.seen.append(("end", event.kind, event.data, event.is_failed))


def test_event_properties():
    e = ev.Event("app:compile", ev.EventStatus.START, data={"a": 1})
    assert e.kind == "app:compile" and e.status is ev.EventStatus.START
    assert e.is_start and not e.is_end and not e.is_failed and e.data == {"a": 1}
    try:
        raise ValueError("x")
    except ValueError as exc:
        details = (type(exc), exc, exc.__traceback__)
    f = ev.Event("app:compile", ev.EventStatus.END, exc_details=details)
    assert f.is_end and f.is_failed and f.exc_details[1].args == ("x",)
    assert not ev.Event("k", ev.EventStatus.END, exc_details=(None, None, None)).is_failed
    assert "app:compile" in repr(e)
    with pytest.raises(TypeError):
        ev.Event("k", "START")
    for bad in ["", "a..b", "a.{x}", "shm-bus:mine"]:
        with pytest.raises(ValueError):
            ev.Event(bad, ev.EventStatus.START)


def test_register_broadcast_unregister():
    c = Collect()
    ev.register("t:reg", c)
    ev.start_event("t:reg", data=1)
    ev.end_event("t:reg", data=2)
    ev.broadcast(ev.Event("t:other", ev.EventStatus.START))
    ev.unregister("t:reg", c)
    ev.start_event("t:reg")
    assert c.seen == [("start", "t:reg", 1), ("end", "t:reg", 2, False)]
    with pytest.raises(ValueError):
        ev.unregister("t:reg", c)
    with pytest.raises(TypeError):
        ev.register("t:reg", object())


def test_listener_is_abstract_and_notify_dispatches():
    with pytest.raises(TypeError):
        ev.Listener()
    c = Collect()
    c.notify(ev.Event("k", ev.EventStatus.START))
    c.notify(ev.Event("k", ev.EventStatus.END))
    assert [s[0] for s in c.seen] == ["start", "end"]


def test_trigger_event_and_install_listener():
    c = Collect()
    with ev.install_listener("t:trig", c) as got:
        assert got is c
        with ev.trigger_event("t:trig", data="d"):
            pass
        with pytest.raises(KeyError):
            with ev.trigger_event("t:trig"):
                raise KeyError("k")
    with ev.trigger_event("t:trig"):  # uninstalled: not seen
        pass
    assert c.seen == [("start", "t:trig", "d"), ("end", "t:trig", "d", False),
                      ("start", "t:trig", None), ("end", "t:trig", None, True)]


def test_recording_and_timing_listeners():
    with ev.install_recorder("t:rec") as rec:
        with ev.trigger_event("t:rec"):
            pass
    assert [e.status for _t, e in rec.buffer] == [ev.EventStatus.START, ev.EventStatus.END]
    assert all(isinstance(t, float) for t, _e in rec.buffer)
    tl = ev.TimingListener()
    assert not tl.done
    with pytest.raises(AttributeError):
        tl.duration
    with ev.install_listener("t:time", tl):
        with ev.trigger_event("t:time"):
            with ev.trigger_event("t:time"):  # nested: counted once
                time.sleep(0.02)
    assert tl.done and 0.02 <= tl.duration < 5
    durations = []
    with ev.install_timer("t:timer", durations.append):
        with ev.trigger_event("t:timer"):
            time.sleep(0.01)
    assert len(durations) == 1 and durations[0] >= 0.01


def test_wire_round_trip():
    for data in [None, b"raw", "text", {"a": [1, 2]}, b"\x00SHMBPY\x01rest"]:
        e = ev.Event("w:k", ev.EventStatus.END, data=data,
                     exc_details=(ValueError, ValueError("v"), None))
        d = ev.decode_wire("w:k", ev.encode_wire(e))
        assert d.kind == "w:k" and d.is_end and d.is_failed and d.remote and d.pid == os.getpid()
        assert d.monotonic_ns == e.monotonic_ns
        assert str(d.exc_details[1]) == "ValueError: v"
        expected = data.encode() if isinstance(data, str) else data
        assert d.data == expected
    with pytest.raises(ValueError):
        ev.decode_wire("w:k", b"\x05")


def _wait(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


CHILD = """
    import json, sys, time
    from shm_bus import event as ev
    bridge = ev.connect(sys.argv[1], name="child-events")
    rec = ev.RecordingListener()
    ev.register("py:reply", rec)
    print("ready", flush=True)
    sys.stdin.readline()                       # the parent's bridge is up
    with ev.trigger_event("py:work", data={"job": 7}):
        time.sleep(0.05)
    deadline = time.monotonic() + 20
    while len(rec.buffer) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    print(json.dumps([[e.kind, str(e.status), repr(e.data), e.remote, e.is_failed] for _t, e in rec.buffer]),
          flush=True)
    bridge.close()
"""


def test_events_between_python_processes(bus_name, child):
    bridge = ev.connect(bus_name, name="parent-events")
    rec, tl = ev.RecordingListener(), ev.TimingListener()
    try:
        ev.register("py:work", rec)
        ev.register("py:work", tl)
        c = child(CHILD, bus_name, stdin=True)
        c.expect_line("ready")
        c.proc.stdin.write("go\n")
        c.proc.stdin.flush()
        _wait(lambda: len(rec.buffer) == 2)
        start, end = (e for _t, e in rec.buffer)
        assert start.is_start and end.is_end and start.remote and start.pid == c.proc.pid
        assert start.data == {"job": 7}
        assert tl.done and tl.duration >= 0.05  # by the child's clock
        try:
            with ev.trigger_event("py:reply", data="ok"):
                raise RuntimeError("failed here")
        except RuntimeError:
            pass
        rc, out, err = c.finish(timeout=30)
        assert rc == 0, err
        got = json.loads(out.strip().splitlines()[-1])
        # str data travels as UTF-8 (what a Rust listener reads) and arrives as bytes
        assert got == [["py:reply", "EventStatus.START", "b'ok'", True, False],
                       ["py:reply", "EventStatus.END", "b'ok'", True, True]]
        assert bridge.forwarded == 2 and bridge.received == 2
    finally:
        bridge.close()
        ev.unregister("py:work", rec)
        ev.unregister("py:work", tl)


def _spans_example():
    env = os.environ.get("SHM_BUS_SPANS_EXAMPLE")
    if env:
        return env
    for p in (REPO / "target/release/examples/spans", REPO / "target/debug/examples/spans"):
        if p.exists():
            return str(p)
    return None


@pytest.mark.skipif(_spans_example() is None, reason="examples/spans is not built (cargo build --example spans)")
def test_rust_bridge_span_reaches_python_listeners(bus_name):
    from shm_bus import Bus
    Bus.create(bus_name)
    bridge = ev.connect(bus_name, name="py-events")
    rec, tl = ev.RecordingListener(), ev.TimingListener()
    ev.register("work:compile", rec)
    ev.register("work:compile", tl)
    proc = subprocess.Popen([_spans_example(), bus_name], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait(lambda: len(rec.buffer) == 2, timeout=30)
        start, end = (e for _t, e in rec.buffer)
        assert start.is_start and end.is_end and start.pid == proc.pid and start.remote
        assert start.data == b"module a" and not end.is_failed
        assert tl.duration >= 0.03  # the Rust child's span, by its clock
    finally:
        proc.kill()
        proc.wait()
        bridge.close()
        ev.unregister("work:compile", rec)
        ev.unregister("work:compile", tl)
