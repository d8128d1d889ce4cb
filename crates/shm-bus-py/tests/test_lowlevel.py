"""The low-level bus: Bus, Publisher, Subscriber, Sample, Loan."""

import time

import pytest

from shm_bus import Bus, BusError, Full


def test_create_open_config_remove(bus_name):
    with pytest.raises(BusError):
        Bus.open(bus_name)
    b = Bus.create(bus_name, ring_bytes=1 << 16, max_topics=64, policy="block")
    c = b.config
    assert c["ring_bytes"] == 1 << 16 and c["max_topics"] == 64 and c["policy"] == "block"
    assert c["max_payload"] > 0 and b.name == bus_name and not b.removed
    with pytest.raises(BusError):
        Bus.create(bus_name)
    assert Bus.open(bus_name).config == c
    assert Bus.open_or_create(bus_name).config == c
    Bus.remove(bus_name)
    assert b.removed
    with pytest.raises(ValueError):
        Bus.create(bus_name, ring_bytes=1000)
    with pytest.raises(ValueError):
        Bus.create(bus_name, policy="sometimes")


def test_publish_subscribe_sample(bus_name):
    b = Bus.create(bus_name)
    sub = b.subscriber("s", ["md.{venue}.(AAPL|MSFT)"])
    assert sub.patterns == ["md.{venue}.(AAPL|MSFT)"]
    pub = b.publisher("p")
    seq = pub.publish("md.XNAS.AAPL", b"189.98")
    pub.publish("md.XNAS.IBM", b"ignored")
    pub.publish("md.ARCX.MSFT", bytearray(b"410"))
    s = sub.recv()
    assert s.topic == "md.XNAS.AAPL" and s.captures == {"venue": "XNAS"} and s.sequence == seq
    assert s.producer == pub.id and isinstance(s.topic_id, int)
    assert abs(s.timestamp / 1e9 - time.time()) < 60
    mv = s.payload
    assert isinstance(mv, memoryview) and mv.readonly and bytes(mv) == b"189.98" and bytes(s) == b"189.98"
    assert len(s) == 6 and "md.XNAS.AAPL" in repr(s)
    s2 = sub.recv_timeout(5)
    assert s2.topic == "md.ARCX.MSFT" and bytes(s2.payload) == b"410"
    assert sub.try_recv() is None
    assert sub.recv_timeout(0.05) is None
    assert sub.counters[0] == 2
    assert sub.subscribe("log.**") and not sub.subscribe("log.**")
    assert sub.unsubscribe("log.**") and not sub.unsubscribe("log.**")
    roles = {(r, n) for r, _slot, _pid, n, alive in b.members() if alive}
    assert ("producer", "p") in roles and ("subscriber", "s") in roles


def test_publish_errors(bus_name):
    b = Bus.create(bus_name, ring_bytes=4096)
    pub = b.publisher("p")
    with pytest.raises(ValueError):
        pub.publish("md.{x}", b"")
    with pytest.raises(ValueError):
        pub.publish("a..b", b"")
    with pytest.raises(TypeError):
        pub.publish("a", "text is not a buffer")
    with pytest.raises(ValueError):
        pub.publish("a", b"x" * (pub.max_payload + 1))
    slow = b.subscriber("slow", ["**"])  # never reads  # noqa: F841
    with pytest.raises(Full):
        for _ in range(100):
            pub.publish("a", b"x" * 512, block=False)
    with pytest.raises(Full):
        pub.publish("a", b"x" * 512, timeout=0.05)
    assert pub.backlog > 0


def test_loan(bus_name):
    b = Bus.create(bus_name)
    sub = b.subscriber("s", ["l.**"])
    pub = b.publisher("p")
    loan = pub.loan("l.x", 4)
    loan.buffer[:] = b"abcd"
    assert loan.topic == "l.x" and not loan.committed
    pub.commit(loan)
    assert loan.committed
    with pytest.raises(RuntimeError):
        pub.commit(loan)
    with pytest.raises(RuntimeError):
        loan.buffer
    assert bytes(sub.recv().payload) == b"abcd"
    with pytest.raises(ValueError):
        pub.loan("l.x", pub.max_payload + 1)


def test_numpy_payload(bus_name):
    np = pytest.importorskip("numpy")
    b = Bus.create(bus_name)
    sub = b.subscriber("s", ["n"])
    b.publisher("p").publish("n", np.arange(4, dtype=np.int32))
    got = np.frombuffer(sub.recv().payload, dtype=np.int32)
    assert got.tolist() == [0, 1, 2, 3]
    with pytest.raises(TypeError):  # not C-contiguous
        b.publisher("q").publish("n", np.arange(8)[::2])


def test_from_oldest_history(bus_name):
    b = Bus.create(bus_name, history_bytes=4096)
    pub = b.publisher("p")
    for i in range(3):
        pub.publish("h", b"%d" % i)
    late = b.subscriber("late", ["h"], from_oldest=True)
    assert [bytes(late.recv_timeout(5)) for _ in range(3)] == [b"0", b"1", b"2"]


def test_iteration(bus_name):
    b = Bus.create(bus_name)
    sub = b.subscriber("s", ["i"])
    pub = b.publisher("p")
    for i in range(3):
        pub.publish("i", b"%d" % i)
    it = iter(sub)
    assert [bytes(next(it)) for _ in range(3)] == [b"0", b"1", b"2"]
