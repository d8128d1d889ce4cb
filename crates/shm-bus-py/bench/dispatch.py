"""Python handler dispatch rate: shm_bus across processes vs PyEventEngine in-process.

    python bench/dispatch.py [--count 200000] [--rounds 3] [--size 64]
    python bench/dispatch.py --breakdown      # where a pickled event's time goes

Scenarios (each round runs every scenario once, interleaved, so both sides
see the same machine state):

- ``bytes/1``: ``put(topic, b"..." * size)``; one pattern hook
  ``md.{venue}.AAPL.trade``; handler ``h(payload)``.
- ``bytes/1000``: the same plus 999 registered patterns that do not match
  (``md.{venue}.SYM<i>.trade``).
- ``pickled/1``: ``put(topic, 189.98, 100, side="B")``; handler ``h(px, qty, side)``.

shm_bus: a producer process (this one) puts ``count`` events on a fresh bus;
a consumer process (``--role consumer``) dispatches them to its handler; the
rate is ``count`` / (last handled - first handled) in the consumer.
PyEventEngine 1.0.3 (if ``import event_engine`` works): the same puts and
handler in one process, its dispatch thread started, timed from the first
put to the last handled. Prints one JSON line per measurement and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TOPIC = "md.XNAS.AAPL.trade"
PATTERN = "md.{venue}.AAPL.trade"


def decoys(n: int) -> list:
    return [f"md.{{venue}}.SYM{i}.trade" for i in range(n)]


def consumer(bus: str, patterns: int, count: int, kind: str) -> None:
    from shm_bus import EventEngine

    eng = EventEngine(bus=bus, name="bench-consumer", create=False)
    n = 0
    first = 0.0

    if kind == "bytes":
        def h(payload):
            nonlocal n, first
            if n == 0:
                first = time.perf_counter()
            n += 1
            if n == count:
                eng.deactivate()
    else:
        def h(px, qty, side):
            nonlocal n, first
            if n == 0:
                first = time.perf_counter()
            n += 1
            if n == count:
                eng.deactivate()

    for p in decoys(patterns - 1):
        eng.register_handler(p, h)
    eng.register_handler(PATTERN, h)
    print("ready", flush=True)
    eng.run()
    last = time.perf_counter()
    print(json.dumps({"handled": n, "seconds": last - first}), flush=True)


def producer_put(eng, count: int, kind: str, payload: bytes) -> None:
    put = eng.put
    if kind == "bytes":
        for _ in range(count):
            put(TOPIC, payload)
    else:
        for _ in range(count):
            put(TOPIC, 189.98, 100, side="B")


def run_shm(count: int, patterns: int, kind: str, size: int) -> float:
    from shm_bus import Bus, EventEngine

    bus = f"bench-py-{os.getpid()}-{time.monotonic_ns()}"
    Bus.create(bus, ring_bytes=1 << 22)
    child = None
    try:
        child = subprocess.Popen(
            [sys.executable, __file__, "--role", "consumer", "--bus", bus, "--patterns", str(patterns),
             "--count", str(count), "--kind", kind],
            stdout=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"consumer did not start: {line!r}")
        prod = EventEngine(bus=bus, name="bench-producer", create=False, receive=False)
        producer_put(prod, count, kind, b"x" * size)
        out, _ = child.communicate(timeout=300)
        res = json.loads(out.strip().splitlines()[-1])
        if res["handled"] != count:
            raise RuntimeError(f"consumer handled {res['handled']} of {count}")
        return count / res["seconds"]
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        Bus.remove(bus)


def run_pee(count: int, patterns: int, kind: str, size: int) -> float:
    import threading

    from event_engine import EventEngine, Topic

    eng = EventEngine(capacity=4095)
    done = threading.Event()
    n = 0
    last = 0.0
    if kind == "bytes":
        def h(payload):
            nonlocal n, last
            n += 1
            if n == count:
                last = time.perf_counter()
                done.set()
    else:
        def h(px, qty, side):
            nonlocal n, last
            n += 1
            if n == count:
                last = time.perf_counter()
                done.set()
    for p in decoys(patterns - 1):
        eng.register_handler(Topic(p), h)
    eng.register_handler(Topic(PATTERN), h)
    eng.start()
    topic = Topic(TOPIC)
    payload = b"x" * size
    put = eng.put
    start = time.perf_counter()
    if kind == "bytes":
        for _ in range(count):
            put(topic, payload)
    else:
        for _ in range(count):
            put(topic, 189.98, 100, side="B")
    if not done.wait(300):
        raise RuntimeError(f"PyEventEngine handled {n} of {count}")
    eng.stop()
    return count / (last - start)


def breakdown(count: int, size: int) -> None:
    """Where a pickled event's time goes, each part timed alone in this process."""
    import pickle

    from shm_bus import Bus, EventEngine

    def rate(fn) -> float:
        best = 0.0
        for _ in range(5):  # best of 5, as timeit does
            t = time.perf_counter()
            fn()
            best = max(best, count / (time.perf_counter() - t))
        return best

    def loop(f, *args, **kwargs):
        def run():
            for _ in range(count):
                f(*args, **kwargs)
        return run

    def dispatch_only(kind: str) -> float:
        """The consumer's side alone: ``count`` events already in the ring,
        dispatched by ``run()`` in this process."""
        name = f"bench-py-do-{os.getpid()}"
        e = EventEngine(bus=name, name="do", ring_bytes=1 << 26)
        n = 0

        def count_one():
            nonlocal n
            n += 1
            if n == count:
                e.deactivate()

        def h_bytes(payload):
            count_one()

        def h_pickled(px, qty, side):
            count_one()
        e.register_handler(PATTERN, h_bytes if kind == "bytes" else h_pickled)
        for _ in range(count):
            if kind == "bytes":
                e.put(TOPIC, payload)
            else:
                e.put(TOPIC, 189.98, 100, side="B")
        t = time.perf_counter()
        e.run()
        r = count / (time.perf_counter() - t)
        del e
        Bus.remove(name)
        return r

    obj = ((189.98, 100), {"side": "B"})
    blob = pickle.dumps(obj, 5)
    bus = f"bench-py-bd-{os.getpid()}"
    eng = EventEngine(bus=bus, name="bd", receive=False)  # no subscriber: the ring never fills
    put = eng.put
    payload = b"x" * size

    def h(px, qty, side):
        pass

    parts = {
        "producer: pickle.dumps((args, kwargs), 5)": rate(loop(pickle.dumps, obj, 5)),
        "producer: put(topic, bytes), nobody reading": rate(loop(put, TOPIC, payload)),
        "producer: put(topic, 189.98, 100, side='B'), nobody reading":
            rate(loop(put, TOPIC, 189.98, 100, side="B")),
        "consumer: pickle.loads": rate(loop(pickle.loads, blob)),
        "consumer: python call h(px, qty, side=...)": rate(loop(h, 189.98, 100, side="B")),
        "consumer: run() over bytes events already in the ring": dispatch_only("bytes"),
        "consumer: run() over pickled events already in the ring": dispatch_only("pickled"),
    }
    Bus.remove(bus)
    print(f"pickled event breakdown, {len(blob)}-byte pickle, python {sys.version.split()[0]} (per second, alone):")
    for k, v in parts.items():
        print(f"  {k:62} {v:>12,.0f}/s  {1e9 / v:8.0f} ns")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="main")
    ap.add_argument("--bus")
    ap.add_argument("--patterns", type=int, default=1)
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--kind", default="bytes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--breakdown", action="store_true", help="time the parts of a pickled event instead")
    a = ap.parse_args()
    if a.breakdown:
        breakdown(a.count, a.size)
        return
    if a.role == "consumer":
        consumer(a.bus, a.patterns, a.count, a.kind)
        return
    try:
        import event_engine  # noqa: F401
        have_pee = True
    except ImportError:
        have_pee = False
    scenarios = [("bytes", 1), ("bytes", 1000), ("pickled", 1)]
    results: dict = {}
    for r in range(a.rounds):
        for kind, patterns in scenarios:
            n = a.count
            runs = [("shm_bus (2 processes)", run_shm)]
            if have_pee:
                runs.append(("PyEventEngine 1.0.3 (1 process)", run_pee))
            for name, fn in runs:
                rate = fn(n, patterns, kind, a.size)
                results.setdefault((kind, patterns, name), []).append(rate)
                print(json.dumps({"round": r, "kind": kind, "patterns": patterns, "impl": name,
                                  "count": n, "msgs_per_sec": round(rate)}), flush=True)
    print()
    print(f"python {sys.version.split()[0]}, {a.rounds} rounds, payload {a.size} B; median (min-max) msg/s")
    for (kind, patterns, name), rates in results.items():
        print(f"{kind:8} {patterns:5} patterns  {name:32} {statistics.median(rates):>12,.0f}"
              f"  ({min(rates):,.0f}-{max(rates):,.0f})")
    if have_pee:
        for kind, patterns in scenarios:
            ours = statistics.median(results[(kind, patterns, "shm_bus (2 processes)")])
            peer = statistics.median(results[(kind, patterns, "PyEventEngine 1.0.3 (1 process)")])
            print(f"ratio {kind}/{patterns}: {ours / peer:.2f}x")


if __name__ == "__main__":
    main()
