"""Worker groups: Bus.group_member, Bus.groups, Bus.remove_group and EventEngine(group=...),
across processes (events split exactly once; a killed member's held event redelivered)."""

import gc
import json
import signal
import time

import pytest

from shm_bus import (Bus, BusError, Empty, EventEngine, GroupError, GroupMismatch, GroupRemoved,
                     TooManyGroups)

N = 400


def wait_until(pred, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"watchdog: {what}")
        time.sleep(0.005)


def group_done(bus: Bus) -> int:
    return sum(g["done"] for g in bus.groups())


# A member process: takes its share of group "jobs" until the group has finished
# argv[3] events, then prints what it received.
MEMBER = """
    import json, sys, time
    from shm_bus import Bus
    bus = Bus.open(sys.argv[1])
    m = bus.group_member("jobs", sys.argv[2], ["jobs.{kind}"])
    got, flagged = [], 0
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while sum(g["done"] for g in bus.groups()) < int(sys.argv[3]):
        assert time.monotonic() < deadline, "member watchdog"
        s = m.recv_timeout(0.02)
        if s is not None:
            with s:                                  # finished at the end of the block
                got.append(int.from_bytes(bytes(s.payload), "little"))
                flagged += s.redelivered
                time.sleep(0.001)                    # some work: one member cannot take it all
    m.close()
    print(json.dumps({"got": got, "flagged": flagged}), flush=True)
"""

# The same with an engine: a handler per event.
ENGINE_MEMBER = """
    import json, sys, time
    from shm_bus import Bus, EventEngine
    bus = Bus.open(sys.argv[1])
    eng = EventEngine(bus=sys.argv[1], name=sys.argv[2], group="jobs", patterns=["jobs.{kind}"])
    got, flagged, strays = [], [], []
    def on_job(payload, captures):
        got.append(int.from_bytes(bytes(payload), "little"))
        flagged.append(eng.redelivered)
        assert captures["kind"] in ("a", "b")
        time.sleep(0.001)                            # some work: one engine cannot take it all
    eng.register_handler("jobs.{kind}", on_job)
    eng.register_handler("other.**", lambda *a: strays.append(a))   # not the group's: never fires
    eng.start()
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while sum(g["done"] for g in bus.groups()) < int(sys.argv[3]):
        assert time.monotonic() < deadline, "member watchdog"
        time.sleep(0.005)
    eng.stop()
    print(json.dumps({"got": got, "flagged": sum(flagged), "strays": len(strays), "group": eng.group}),
          flush=True)
"""


def split_exactly_once(bus_name, child, code):
    bus = Bus.create(bus_name)
    members = [child(code, bus_name, f"worker-{i}", str(N)) for i in range(2)]
    for m in members:
        m.expect_line("ready")
    pub = bus.publisher("feed")
    for i in range(N):
        pub.publish("jobs.a" if i % 2 else "jobs.b", i.to_bytes(8, "little"))
        if i % 100 == 0:
            pub.publish("other.x", b"not the group's")
    results = []
    for m in members:
        rc, out, err = m.finish()
        assert rc == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    sets = [set(r["got"]) for r in results]
    for r, s in zip(results, sets):
        assert len(s) == len(r["got"]), "a member received an event twice"
        assert r["flagged"] == 0, "nobody died: nothing is redelivered"
    assert not sets[0] & sets[1], "an event went to both members"
    assert sets[0] | sets[1] == set(range(N))
    assert all(sets), f"split {len(sets[0])} / {len(sets[1])}"   # both worked
    [g] = bus.groups()
    assert (g["done"], g["redelivered"], g["lost"], g["members"]) == (N, 0, 0, [])
    return results


def test_two_member_processes_receive_every_event_exactly_once(bus_name, child):
    split_exactly_once(bus_name, child, MEMBER)


def test_two_engine_processes_in_a_group_handle_every_event_exactly_once(bus_name, child):
    results = split_exactly_once(bus_name, child, ENGINE_MEMBER)
    assert all(r["strays"] == 0 and r["group"] == "jobs" for r in results)


def test_a_killed_members_held_event_is_redelivered_flagged(bus_name, child):
    bus = Bus.create(bus_name)
    doomed = child("""
        import os, signal, sys
        from shm_bus import Bus
        m = Bus.open(sys.argv[1]).group_member("jobs", "doomed", ["jobs.**"])
        print("ready", flush=True)
        s = m.recv()                                 # held: not finished
        print(bytes(s.payload).decode(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """, bus_name)
    doomed.expect_line("ready")
    pub = bus.publisher("feed")
    for i in range(5):
        pub.publish(f"jobs.{i}", f"job-{i}".encode())
    doomed.expect_line("job-0")
    rc, _out, _err = doomed.finish()
    assert rc == -signal.SIGKILL
    [g] = bus.groups()
    [dead] = g["members"]
    assert (dead["name"], dead["pid"], dead["alive"], dead["busy"]) == ("doomed", doomed.proc.pid, False, True)
    assert g["done"] == 0
    rescuer = bus.group_member("jobs", "rescuer")    # no patterns: the group's
    got = []
    for _ in range(5):
        s = rescuer.recv_timeout(30)
        assert s is not None, "watchdog: the dead member's work was not adopted"
        got.append((bytes(s.payload).decode(), s.redelivered, s.topic))
    # the one it held comes again, flagged; the rest of its claim was never handed out
    assert got == [("job-0", True, "jobs.0")] + [(f"job-{i}", False, f"jobs.{i}") for i in range(1, 5)]
    rescuer.try_recv()                               # finishes the last one
    assert rescuer.redelivered == 1
    wait_until(lambda: group_done(bus) == 5, what="all five finished")
    [g] = bus.groups()
    assert (g["redelivered"], g["lost"]) == (1, 0)
    assert [m["name"] for m in g["members"]] == ["rescuer"]


def test_an_engine_killed_in_its_handler_leaves_the_event_to_be_redelivered(bus_name, child):
    bus = Bus.create(bus_name)
    doomed = child("""
        import os, signal, sys
        from shm_bus import EventEngine
        eng = EventEngine(bus=sys.argv[1], name="doomed", group="jobs", patterns=["jobs.**"])
        def handler(job):
            print(job, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)     # dies before the handler returns
        eng.register_handler("jobs.**", handler)
        print("ready", flush=True)
        eng.run()
    """, bus_name)
    doomed.expect_line("ready")
    feed = EventEngine(bus=bus_name, name="feed", receive=False)
    feed.put("jobs.x", "job-1")
    doomed.expect_line("job-1")
    assert doomed.finish()[0] == -signal.SIGKILL
    rescuer = EventEngine(bus=bus_name, name="rescuer", group="jobs")
    assert rescuer.group == "jobs"
    m = rescuer.get(timeout=30)
    assert (m.topic.value, m.args, m.redelivered) == ("jobs.x", ("job-1",), True)
    feed.put("jobs.y", "job-2")
    m = rescuer.get(timeout=30)
    assert (m.args, m.redelivered) == (("job-2",), False)
    assert bus.groups()[0]["redelivered"] == 1


def test_groups_describes_groups_and_members(bus_name):
    bus = Bus.create(bus_name, max_groups=2, max_group_members=4)
    assert (bus.config["max_groups"], bus.config["max_group_members"]) == (2, 4)
    assert bus.groups() == []
    m = bus.group_member("fills", "w1", ["orders.+venue.fill", "orders.**"], mode="at-most-once",
                         claim_batch=2)
    assert (m.group, m.patterns) == ("fills", ["orders.**", "orders.{venue}.fill"])
    pub = bus.publisher("feed")
    for i in range(3):
        pub.publish("orders.X.fill", bytes([i]))
    s = m.recv_timeout(30)
    [g] = bus.groups()
    assert set(g) == {"slot", "name", "mode", "patterns", "members", "redelivered", "lost", "lagged",
                      "claimed", "done", "claims", "backlog", "removing", "created_ns"}
    assert (g["name"], g["mode"], g["patterns"]) == ("fills", "at-most-once", ["orders.**", "orders.{venue}.fill"])
    assert (g["claimed"], g["done"], g["claims"], g["backlog"], g["removing"]) == (1, 0, 1, 3, False)
    assert abs(g["created_ns"] / 1e9 - time.time()) < 60
    [w] = g["members"]
    assert w == {"slot": 0, "pid": __import__("os").getpid(), "name": "w1", "alive": True,
                 "adopted": False, "claimed": 1, "done": 0, "busy": True}
    # finishing: done(), with-blocks, a collected sample, the next receive
    s.done()
    assert bus.groups()[0]["done"] == 1
    s.done()                                         # once only
    with m.recv_timeout(30) as s2:
        assert bytes(s2) == b"\x01"
    assert bus.groups()[0]["done"] == 2
    s3 = m.recv_timeout(30)
    assert bytes(s3) == b"\x02" and not s3.redelivered
    del s3
    gc.collect()
    assert bus.groups()[0]["done"] == 3
    assert m.counters == (3, 0)
    assert m.try_recv() is None

    # joining with other patterns or another mode
    with pytest.raises(GroupMismatch) as e:
        bus.group_member("fills", "w2", ["orders.**"])
    assert (e.value.group, e.value.patterns, e.value.mode) == ("fills", ["orders.**", "orders.{venue}.fill"], None)
    with pytest.raises(GroupMismatch) as e:
        bus.group_member("fills", "w2")              # the group's patterns, but at-least-once
    assert (e.value.mode, e.value.patterns) == ("at-most-once", None)
    assert isinstance(e.value, GroupError) and isinstance(e.value, BusError)
    with pytest.raises(ValueError):
        bus.group_member("bad name!", "w")
    with pytest.raises(ValueError):
        bus.group_member("g2", "w", ["jobs.**"], mode="exactly-once")
    with pytest.raises(TypeError):
        bus.group_member("g2", "w", "jobs.**")     # one str, not a list
    with pytest.raises(GroupMismatch):
        bus.group_member("new-group", "w")          # creating needs patterns
    other = bus.group_member("g2", "w", ["jobs.**"])
    with pytest.raises(TooManyGroups):
        bus.group_member("g3", "w", ["jobs.**"])
    other.close()
    other.close()                                    # idempotent
    with pytest.raises(RuntimeError):
        other.try_recv()
    assert bus.remove_group("g2") == ("removed", [])
    assert [g["name"] for g in bus.groups()] == ["fills"]


def test_remove_group_in_use_evicted_and_removed(bus_name):
    bus = Bus.create(bus_name)
    assert bus.remove_group("nope") == ("not-found", [])
    m = bus.group_member("g", "w", ["t.**"])
    pid = __import__("os").getpid()
    assert bus.remove_group("g") == ("in-use", [pid])
    assert bus.groups()[0]["removing"] is False
    assert bus.remove_group("g", force=True) == ("evicted", [pid])
    assert bus.groups()[0]["removing"] is True
    # the member notices at a receive that consults the group (within milliseconds)
    deadline = time.monotonic() + 30
    with pytest.raises(GroupRemoved) as e:
        while time.monotonic() < deadline:
            m.try_recv()
    assert e.value.group == "g"
    with pytest.raises(GroupRemoved):
        m.recv()
    m.close()                                        # the last member gone: the slot is freed
    assert bus.groups() == []
    assert bus.remove_group("g") == ("not-found", [])
    # a group whose only member left is removed at once
    bus.group_member("g", "w", ["t.**"]).close()
    assert bus.remove_group("g") == ("removed", [])


def test_group_engine_arguments_and_removal(bus_name):
    with pytest.raises(ValueError):
        EventEngine(group="g")                       # no bus
    with pytest.raises(ValueError):
        EventEngine(bus=bus_name, name="x", group="g", patterns=["t.**"], receive=False)
    with pytest.raises(ValueError):
        EventEngine(bus=bus_name, name="x", patterns=["t.**"])   # patterns without a group
    eng = EventEngine(bus=bus_name, name="solo", group="g", patterns=["t.{x}"], claim_batch=1)
    assert eng.group == "g" and EventEngine().group is None
    assert "group='g'" in repr(eng)
    eng.put("t.a", 1)
    eng.put("u.a", 2)                                # not the group's
    m = eng.get(timeout=30)
    assert (m.topic.value, m.args, m.redelivered) == ("t.a", (1,), False)
    with pytest.raises(Empty):
        eng.get(block=False)
    seen = []
    eng.register_handler("t.{x}", lambda v: seen.append((v, eng.redelivered)))
    eng.put("t.b", 3)
    Bus.open(bus_name).remove_group("g", force=True)
    # run dispatches what it was handed, then raises: the group is gone
    with pytest.raises(GroupRemoved):
        eng.run()
    assert not eng.active
    assert seen in ([], [(3, False)])
