"""numba-style events (``numba.core.event``), across processes.

The same API as numba: ``Event``, ``EventStatus``, ``Listener``,
``RecordingListener``, ``TimingListener``, ``register``/``unregister``,
``broadcast``, ``start_event``/``end_event``, ``trigger_event`` and
``install_listener``/``install_recorder``/``install_timer`` (context managers).

``connect(bus)`` adds what numba cannot do: every event broadcast in this
process is also published on ``EventEngine.Internal.Event.<kind>``, and events
broadcast by other processes' bridges (Python or Rust,
``shm_bus_engine::events::EventBridge``: the wire format is the same) reach the
listeners here. A span's duration is measured by the emitter's monotonic clock
(CLOCK_MONOTONIC is host-wide), so a ``TimingListener`` in one process times a
span emitted in another.
"""

from __future__ import annotations

import abc
import atexit
import enum
import os
import pickle
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

from . import _native

__all__ = [
    "EventStatus", "Event", "Listener", "RecordingListener", "TimingListener", "register",
    "unregister", "broadcast", "start_event", "end_event", "trigger_event", "install_listener",
    "install_recorder", "install_timer", "connect", "EventBridge", "EVENT_TOPIC_PREFIX",
]

EVENT_TOPIC_PREFIX = "EventEngine.Internal.Event."
_RESERVED = "shm-bus:"


class EventStatus(enum.Enum):
    """Status of an event."""

    START = enum.auto()
    END = enum.auto()


class Event:
    """An event: a ``kind``, a ``status``, optional ``data`` and, for a failed END,
    ``exc_details`` (the ``(type, value, traceback)`` of ``__exit__``). Events from
    another process carry its ``pid``; their ``exc_details`` is
    ``(RuntimeError, RuntimeError(text), None)``."""

    def __init__(self, kind: str, status: EventStatus, data: Any = None,
                 exc_details: Optional[tuple] = None) -> None:
        _validate_kind(kind)
        if not isinstance(status, EventStatus):
            raise TypeError(f"status must be an EventStatus, got {type(status).__name__}")
        self._kind = kind
        self._status = status
        self._data = data
        self._exc_details = exc_details if exc_details is not None and exc_details[0] is not None else None
        self.pid: int = os.getpid()
        self.timestamp: float = time.time()
        self.monotonic_ns: int = time.monotonic_ns()
        self.remote = False

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def status(self) -> EventStatus:
        return self._status

    @property
    def data(self) -> Any:
        return self._data

    @property
    def exc_details(self) -> Optional[tuple]:
        return self._exc_details

    @property
    def is_start(self) -> bool:
        return self._status is EventStatus.START

    @property
    def is_end(self) -> bool:
        return self._status is EventStatus.END

    @property
    def is_failed(self) -> bool:
        return self._exc_details is not None

    def __repr__(self) -> str:
        data = self._data if self._data is None else type(self._data).__qualname__
        where = f" pid={self.pid}" if self.remote else ""
        return f"Event({self._kind}, {self._status}, data: {data}, exc_details: {self._exc_details}{where})"

    __str__ = __repr__


def _validate_kind(kind: Any) -> None:
    if not isinstance(kind, str):
        raise TypeError(f"an event kind is a str, got {type(kind).__name__}")
    if not kind:
        raise ValueError("an event kind cannot be empty")
    if kind.startswith(_RESERVED):
        raise ValueError(f"kinds starting with {_RESERVED!r} are reserved for the bus's own events")
    from ._topic import Topic
    try:
        t = Topic(EVENT_TOPIC_PREFIX + kind)
    except ValueError as e:
        raise ValueError(f"event kind {kind!r} does not make a topic: {e}") from None
    if not t.is_exact:
        raise ValueError(f"event kind {kind!r} contains a wildcard, range, regex or '**'")


class Listener(abc.ABC):
    """Base class of listeners: ``notify`` calls ``on_start`` or ``on_end``."""

    @abc.abstractmethod
    def on_start(self, event: Event) -> None:
        """Called on a START event."""

    @abc.abstractmethod
    def on_end(self, event: Event) -> None:
        """Called on an END event."""

    def notify(self, event: Event) -> None:
        if event.is_start:
            self.on_start(event)
        elif event.is_end:
            self.on_end(event)
        else:
            raise AssertionError("unreachable")


class TimingListener(Listener):
    """Total time between START and END (outermost spans; nested ones count once).
    Uses the events' monotonic stamps, so remote spans time by the emitter's clock."""

    def __init__(self) -> None:
        self._depth = 0

    def on_start(self, event: Event) -> None:
        if self._depth == 0:
            self._ts = event.monotonic_ns
        self._depth += 1

    def on_end(self, event: Event) -> None:
        self._depth -= 1
        if self._depth == 0:
            last = getattr(self, "_duration", 0.0)
            self._duration = (event.monotonic_ns - self._ts) / 1e9 + last

    @property
    def done(self) -> bool:
        return hasattr(self, "_duration")

    @property
    def duration(self) -> float:
        """Seconds; ``AttributeError`` until a span ended (see ``done``)."""
        return self._duration


class RecordingListener(Listener):
    """Records ``(time.time(), event)`` pairs in ``.buffer``."""

    def __init__(self) -> None:
        self.buffer: list = []

    def on_start(self, event: Event) -> None:
        self.buffer.append((time.time(), event))

    def on_end(self, event: Event) -> None:
        self.buffer.append((time.time(), event))


_registry: dict = defaultdict(list)
_lock = threading.RLock()


def register(kind: str, listener: Listener) -> None:
    """Registers ``listener`` for events of ``kind``."""
    if not (isinstance(kind, str) and kind.startswith(_RESERVED)):
        _validate_kind(kind)
    if not isinstance(listener, Listener):
        raise TypeError("listener must be a Listener")
    with _lock:
        _registry[kind].append(listener)


def unregister(kind: str, listener: Listener) -> None:
    """Unregisters ``listener`` (``ValueError`` if it is not registered for ``kind``)."""
    with _lock:
        lst = _registry[kind]
        lst.remove(listener)
        if not lst:
            del _registry[kind]


def _deliver(event: Event) -> None:
    with _lock:
        listeners = list(_registry.get(event.kind, ()))
    for listener in listeners:
        listener.notify(event)


def broadcast(event: Event) -> None:
    """Tells every listener of ``event.kind``; forwards it through connected bridges."""
    _deliver(event)
    for bridge in list(_bridges):
        bridge._forward(event)


def start_event(kind: str, data: Any = None) -> None:
    broadcast(Event(kind=kind, status=EventStatus.START, data=data))


def end_event(kind: str, data: Any = None, exc_details: Optional[tuple] = None) -> None:
    broadcast(Event(kind=kind, status=EventStatus.END, data=data, exc_details=exc_details))


@contextmanager
def trigger_event(kind: str, data: Any = None) -> Iterator[None]:
    """START on entry, END on exit (failed, with the exception, if one escapes)."""
    start_event(kind, data=data)
    exc: Optional[tuple] = None
    try:
        yield
    except BaseException as e:
        exc = (type(e), e, e.__traceback__)
        raise
    finally:
        end_event(kind, data=data, exc_details=exc)


@contextmanager
def install_listener(kind: str, listener: Listener) -> Iterator[Listener]:
    """Registers ``listener`` for the duration of the block; yields it."""
    register(kind, listener)
    try:
        yield listener
    finally:
        unregister(kind, listener)


def install_recorder(kind: str):
    """``install_listener(kind, RecordingListener())``."""
    return install_listener(kind, RecordingListener())


@contextmanager
def install_timer(kind: str, callback: Callable[[float], None]) -> Iterator[TimingListener]:
    """Installs a ``TimingListener``; on success calls ``callback(duration)``."""
    tl = TimingListener()
    with install_listener(kind, tl):
        yield tl
    callback(tl.duration)


# ------------------------------------------------------------------- wire
# postcard encoding of the Rust bridge's `Wire { status, data, failure, pid,
# wall_ns, monotonic_ns }`: unsigned LEB128 varints, enum = variant index,
# bytes/str = varint length + bytes, Option = 0 | 1 + value.

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(b: memoryview, i: int) -> tuple:
    n = shift = 0
    while True:
        if i >= len(b) or shift > 63:
            raise ValueError("truncated varint")
        byte = b[i]
        i += 1
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return n, i
        shift += 7


_PICKLED = bytes(_native.MAGIC) + b"\x01" + bytes(7)


def _encode_data(data: Any) -> bytes:
    if data is None:
        return b""
    if isinstance(data, (bytes, bytearray, memoryview)):
        b = bytes(data)
        if not b.startswith(bytes(_native.MAGIC)):
            return b
    elif isinstance(data, str):
        return data.encode("utf-8")
    return _PICKLED + pickle.dumps(data, protocol=5)


def _decode_data(b: bytes) -> Any:
    if b.startswith(_PICKLED):
        return pickle.loads(b[len(_PICKLED):])
    return b if b else None


def encode_wire(event: Event) -> bytes:
    data = _encode_data(event.data)
    failure = None
    if event.exc_details is not None:
        et, ev, _tb = event.exc_details
        failure = f"{getattr(et, '__name__', et)}: {ev}"
    out = bytearray()
    out += _varint(0 if event.is_start else 1)
    out += _varint(len(data)) + data
    if failure is None:
        out.append(0)
    else:
        f = failure.encode("utf-8")
        out.append(1)
        out += _varint(len(f)) + f
    out += _varint(event.pid)
    out += _varint(int(event.timestamp * 1e9))
    out += _varint(event.monotonic_ns)
    return bytes(out)


def decode_wire(kind: str, payload: bytes) -> Event:
    b = memoryview(payload)
    status, i = _read_varint(b, 0)
    if status not in (0, 1):
        raise ValueError(f"bad status {status}")
    n, i = _read_varint(b, i)
    data = bytes(b[i:i + n])
    if len(data) != n:
        raise ValueError("truncated data")
    i += n
    failure = None
    if i >= len(b):
        raise ValueError("truncated")
    if b[i] == 1:
        n, i = _read_varint(b, i + 1)
        failure = bytes(b[i:i + n]).decode("utf-8", "replace")
        i += n
    elif b[i] == 0:
        i += 1
    else:
        raise ValueError("bad option tag")
    pid, i = _read_varint(b, i)
    wall_ns, i = _read_varint(b, i)
    mono_ns, i = _read_varint(b, i)
    exc = (RuntimeError, RuntimeError(failure), None) if failure is not None else None
    e = Event.__new__(Event)
    e._kind = kind
    e._status = EventStatus.START if status == 0 else EventStatus.END
    e._data = _decode_data(data)
    e._exc_details = exc
    e.pid = pid
    e.timestamp = wall_ns / 1e9
    e.monotonic_ns = mono_ns
    e.remote = True
    return e


_bridges: list = []


class EventBridge:
    """Carries events between this process and a bus (see the module docs).
    ``close()`` (or leaving a ``with`` block) disconnects it."""

    def __init__(self, bus: str, name: Optional[str] = None, create: bool = True) -> None:
        name = name or f"py-events-{os.getpid()}"
        self._bus = _native.Bus.open_or_create(bus) if create else _native.Bus.open(bus)
        self._pub = self._bus.publisher(name)
        self._sub = self._bus.subscriber(name, [EVENT_TOPIC_PREFIX + "**"])
        self._stop = threading.Event()
        self.forwarded = self.received = self.dropped = 0
        self._thread = threading.Thread(target=self._loop, name=f"EventBridge.{bus}", daemon=True)
        self._thread.start()
        _bridges.append(self)

    def _forward(self, event: Event) -> None:
        if event.remote:
            return
        try:
            self._pub.publish(EVENT_TOPIC_PREFIX + event.kind, encode_wire(event), timeout=0.1)
            self.forwarded += 1
        except _native.Full:
            self.dropped += 1

    def _loop(self) -> None:
        me = self._pub.id
        while not self._stop.is_set():
            try:
                s = self._sub.recv_timeout(0.02)
            except Exception:  # noqa: BLE001 - the bus was removed: stop forwarding
                return
            if s is None or s.producer == me:
                continue
            try:
                event = decode_wire(s.topic[len(EVENT_TOPIC_PREFIX):], bytes(s))
            except (ValueError, pickle.UnpicklingError, EOFError):
                continue
            self.received += 1
            _deliver(event)

    def close(self) -> None:
        if self in _bridges:
            _bridges.remove(self)
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> "EventBridge":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@atexit.register
def _close_bridges() -> None:
    """Stops bridge threads before the interpreter finalizes (a daemon thread
    still waiting in Rust when it does would take the process down)."""
    for b in list(_bridges):
        try:
            b.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def connect(bus: str, name: Optional[str] = None, create: bool = True) -> EventBridge:
    """Connects this process's events to ``bus``; returns the bridge."""
    return EventBridge(bus, name, create)
