"""Python handler dispatch rate: shm_bus across processes vs PyEventEngine in-process.

    python bench/dispatch.py [--count 200000] [--rounds 3] [--size 64]

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="main")
    ap.add_argument("--bus")
    ap.add_argument("--patterns", type=int, default=1)
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--kind", default="bytes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=64)
    a = ap.parse_args()
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
