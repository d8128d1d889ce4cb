"""PyEventEngine's ``EventEngine`` / ``EventEngineEx``, in-process or over a bus."""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
import weakref
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Iterator, Optional

from . import _native
from ._event import LOGGER, EventHook, EventHookEx, MessagePayload, _make_payload
from ._topic import Topic

__all__ = ["EventEngine", "EventEngineEx", "Full", "Empty", "BusError", "GroupRemoved",
           "SECOND_TIMER_TOPIC", "MINUTE_TIMER_TOPIC", "TIMER_TOPIC_PREFIX", "timer_topic"]

Full = _native.Full
Empty = _native.Empty
BusError = _native.BusError
GroupRemoved = _native.GroupRemoved

#: One wait slice: blocking calls wake this often to check Ctrl-C and ``stop``.
_SLICE = 0.05
DEFAULT_MQ_CAPACITY = 4095
DEFAULT_MQ_SPIN_LIMIT = 65535

SECOND_TIMER_TOPIC = "EventEngine.Internal.Timer.Second"
MINUTE_TIMER_TOPIC = "EventEngine.Internal.Timer.Minute"
TIMER_TOPIC_PREFIX = "EventEngine.Internal.Timer."


def timer_topic(interval: float) -> str:
    """The topic of the timer with ``interval`` seconds, as the Rust engine names it:
    ``Second``, ``Minute``, else whole seconds (``5``) or ``250ms`` / ``1500us`` /
    ``333ns`` (PyEventEngine's ``0.25`` would re-parse as two parts)."""
    ns = round(float(interval) * 1e9)
    if ns <= 0:
        raise ValueError(f"a timer interval must be positive, got {interval!r}")
    if ns == 1_000_000_000:
        return SECOND_TIMER_TOPIC
    if ns == 60_000_000_000:
        return MINUTE_TIMER_TOPIC
    if ns % 1_000_000_000 == 0:
        part = f"{ns // 1_000_000_000}"
    elif ns % 1_000_000 == 0:
        part = f"{ns // 1_000_000}ms"
    elif ns % 1_000 == 0:
        part = f"{ns // 1_000}us"
    else:
        part = f"{ns}ns"
    return TIMER_TOPIC_PREFIX + part


_running: "weakref.WeakSet[EventEngine]" = weakref.WeakSet()


@atexit.register
def _stop_running_engines() -> None:
    """Stops dispatch threads and timers before the interpreter finalizes (a daemon
    thread still waiting in Rust when it does would take the process down)."""
    for e in list(_running):
        try:
            e.deactivate()
            for t in [e.engine, *getattr(e, "timer", {}).values()]:
                if t is not None and t is not threading.current_thread():
                    t.join(5)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _topic(topic: Any) -> Topic:
    if isinstance(topic, Topic):
        return topic
    if isinstance(topic, str):
        return Topic(topic)
    raise TypeError(f"expected a Topic or str, got {type(topic).__name__}")


class EventEngine:
    """Routes events to the handlers registered on their topics.

    ``EventEngine(capacity=4095, logger=None)`` is PyEventEngine's in-process
    engine (a bounded queue; arguments are passed by reference).
    ``EventEngine(bus="quotes", name="worker")`` runs the same API over a bus:
    every engine on the bus receives every ``put`` from any process, from the
    moment it is made. An engine that receives holds the bus's producers back
    when it falls a ring behind (as PyEventEngine's queue fills up when nobody
    dispatches): a process that only puts passes ``receive=False``. Over a bus,
    arguments travel pickled (protocol 5), except buffers (bytes, bytearray,
    memoryview, numpy arrays), written once into the ring and handed to handlers
    as read-only memoryviews that are valid while the handler runs.

    ``EventEngine(bus="jobs", name="worker-1", group="workers", patterns=["jobs.**"])``
    makes the receiving side a member of a worker group instead: each event matching
    the group's patterns is dispatched by exactly one engine of the group, across
    processes; an event whose engine died before its handlers returned is dispatched
    again by another, with ``engine.redelivered`` True during its handlers
    (``mode="at-least-once"``, the default; ``"at-most-once"`` drops it instead).
    """

    _hook_class = EventHook

    def __init__(self, capacity: int = DEFAULT_MQ_CAPACITY, logger: Optional[logging.Logger] = None, *,
                 bus: Optional[str] = None, name: Optional[str] = None, create: bool = True,
                 ring_bytes: Optional[int] = None, policy: Optional[str] = None,
                 receive: bool = True, group: Optional[str] = None,
                 patterns: Optional[Iterable[Any]] = None, mode: str = "at-least-once",
                 claim_batch: int = 8) -> None:
        if not isinstance(capacity, int) or capacity <= 0:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        self.logger: logging.Logger = logger if logger is not None else LOGGER.getChild("EventEngine")
        self.engine: Optional[threading.Thread] = None
        self._exact: dict = {}
        self._generic: dict = {}
        self._routes: dict = {}
        self._seq_id = 0
        self._capacity = capacity
        self._dispatch_ident: Optional[int] = None
        self._port: Optional[_native.BusPort] = None
        self._active = False
        if bus is None and (group is not None or patterns is not None):
            raise ValueError("group= and patterns= need bus= (a worker group lives in a bus)")
        if bus is not None:
            self._port = _native.BusPort(bus, name or f"py-engine-{os.getpid()}", create, ring_bytes,
                                         policy, receive, group,
                                         None if patterns is None else list(patterns), mode,
                                         claim_batch)
            if type(self).put is EventEngine.put:
                # the bus side parses put's arguments itself: one call fewer
                self.put = self._port.put  # type: ignore[method-assign]
        else:
            self._queue: collections.deque = collections.deque()
            self._lock = threading.Lock()
            self._not_empty = threading.Condition(self._lock)
            self._not_full = threading.Condition(self._lock)

    # ------------------------------------------------------------------ state
    @property
    def active(self) -> bool:
        return self._port.active if self._port is not None else self._active

    @active.setter
    def active(self, value: bool) -> None:
        if self._port is not None:
            self._port.set_active(bool(value))
        else:
            self._active = bool(value)
            with self._lock:
                self._not_empty.notify_all()
                self._not_full.notify_all()

    @property
    def bus(self) -> Optional[str]:
        """The bus's name, or None in-process (extension)."""
        return self._port.bus_name if self._port is not None else None

    @property
    def group(self) -> Optional[str]:
        """The worker group of a group engine, else None (extension)."""
        return self._port.group if self._port is not None else None

    @property
    def redelivered(self) -> bool:
        """Read from a handler of a group engine (extension): whether the event being
        dispatched was handed out before to an engine that died before its handlers
        returned (at-least-once). Always False otherwise."""
        return self._port.redelivered if self._port is not None else False

    def __len__(self) -> int:
        return len(self._exact) + len(self._generic)

    def __repr__(self) -> str:
        status = "active" if self.active else "idle"
        where = f", bus={self.bus!r}" if self._port is not None else ""
        if self.group is not None:
            where += f", group={self.group!r}"
        return f"<{type(self).__name__} {status}>(capacity={self.capacity}{where})"

    # ------------------------------------------------------------- running
    def activate(self) -> None:
        self.active = True

    def deactivate(self) -> None:
        self.active = False

    def run(self) -> None:
        """Dispatches in the calling thread until ``deactivate``/``stop`` (activates
        the engine first if needed). Ctrl-C ends it with ``KeyboardInterrupt``."""
        if not self.active:
            self.activate()
        self._dispatch_ident = threading.get_ident()
        try:
            if self._port is not None:
                self._port.run(self._resolve, EventHook, _make_payload, self._on_error)
            else:
                while self.active:
                    msg = self._get_message(True, _SLICE, loop=False)
                    if msg is not None:
                        self._trigger(msg)
        finally:
            self._dispatch_ident = None

    def start(self) -> None:
        """Activates the engine and dispatches in a background thread."""
        if self.engine is not None and self.engine.is_alive():
            self.logger.warning(f"{self} already started!")
            return
        if self._port is not None:
            self._port.attach()
        self.activate()
        _running.add(self)
        self.engine = threading.Thread(target=self._run_thread, name="EventEngine", daemon=True)
        self.engine.start()

    def _run_thread(self) -> None:
        try:
            self.run()
        except GroupRemoved as e:
            # the dispatch thread ends: nothing more will arrive
            self.logger.error(f"{self}: {e}; the engine stopped dispatching")

    def stop(self) -> None:
        """Deactivates the engine and waits for its thread (at most one wait slice,
        50 ms, plus the handler running)."""
        if not self.active and self.engine is None:
            self.logger.warning("EventEngine already stopped!")
            return
        self.deactivate()
        t = self.engine
        if t is not None and t is not threading.current_thread():
            t.join()
            self.engine = None

    def clear(self) -> None:
        """Unregisters every hook (only while stopped; logs an error otherwise)."""
        if self.active:
            self.logger.error("EventEngine must be stopped before cleared!")
            return
        for hook in list(self._exact.values()) + list(self._generic.values()):
            hook.clear()
        self._exact.clear()
        self._generic.clear()
        self._changed()

    # --------------------------------------------------------- put / get
    def put(self, topic: Any, *args: Any, block: bool = True, max_spin: int = DEFAULT_MQ_SPIN_LIMIT,
            timeout: float = 0.0, **kwargs: Any) -> None:
        """Sends an event on an exact topic (``ValueError`` otherwise). ``Full`` when
        there is no room and ``block=False``, or after ``timeout`` seconds (> 0)."""
        self.publish(topic, args, kwargs, block, max_spin, timeout)

    def publish(self, topic: Any, args: tuple, kwargs: dict, block: bool = True,
                max_spin: int = DEFAULT_MQ_SPIN_LIMIT, timeout: float = 0.0) -> None:
        """``put`` with the arguments as a tuple and a dict."""
        if self._port is not None:
            self._port.publish(topic, tuple(args), dict(kwargs) if kwargs else None, block, timeout)
            return
        topic = _topic(topic)
        if not topic.is_exact:
            raise ValueError(f"Topic must be all of exact parts: {topic.value!r}")
        payload = MessagePayload(topic, tuple(args), dict(kwargs) if kwargs else {})
        deadline = time.monotonic() + timeout if timeout > 0 else None
        on_dispatcher = self._dispatch_ident == threading.get_ident()
        with self._not_full:
            while len(self._queue) >= self._capacity:
                if not block:
                    raise Full("the queue is full")
                if on_dispatcher:
                    raise Full("the queue is full and this put runs on the engine's dispatch thread")
                left = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
                if left <= 0:
                    raise Full(f"the queue stayed full for {timeout} s")
                self._not_full.wait(left)
            self._seq_id += 1
            payload._seq_id = self._seq_id
            self._queue.append(payload)
            self._not_empty.notify()

    def _get_message(self, block: bool, timeout: float, loop: bool = True) -> Optional[MessagePayload]:
        deadline = time.monotonic() + timeout if timeout > 0 else None
        with self._not_empty:
            while not self._queue:
                if not block:
                    return None
                if not loop and not self._active:
                    return None
                left = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
                if left <= 0:
                    return None
                self._not_empty.wait(left)
                if not loop:
                    break
            if not self._queue:
                return None
            msg = self._queue.popleft()
            self._not_full.notify()
            return msg

    def get(self, block: bool = True, max_spin: int = DEFAULT_MQ_SPIN_LIMIT, timeout: float = 0.0) -> MessagePayload:
        """Takes the next event without dispatching it. ``Empty`` when none is
        available (``block=False``) or none came within ``timeout`` seconds (> 0);
        ``timeout=0.0`` waits indefinitely. Ctrl-C interrupts the wait."""
        if self._port is not None:
            literal, args, kwargs, seq, redelivered = self._port.get(block, timeout)
            payload = _make_payload(Topic(literal), args, kwargs, seq)
            payload._redelivered = redelivered
            return payload
        msg = self._get_message(block, timeout)
        if msg is None:
            raise Empty("no event available" if not block else f"no event within {timeout} s")
        return msg

    # ------------------------------------------------------------ dispatch
    def _changed(self) -> None:
        self._routes = {}
        if self._port is not None:
            self._port.invalidate()

    def _resolve(self, literal: str) -> tuple:
        """(topic, [(hook, captures)]) for an event on ``literal``: the exact hook,
        then each matching generic hook in registration order."""
        topic = Topic(literal)
        hooks = []
        exact = self._exact.get(literal)
        if exact is not None:
            hooks.append((exact, {}))
        for hook in list(self._generic.values()):
            r = hook.topic.match(topic)
            if r.matched:
                hooks.append((hook, r.captures))
        return topic, hooks

    def _trigger(self, msg: MessagePayload) -> None:
        literal = msg.topic.value
        route = self._routes.get(literal)
        if route is None:
            route = self._resolve(literal)[1]
            self._routes[literal] = route
        args = msg.args if msg.args is not None else ()
        kwargs = msg.kwargs if msg.kwargs is not None else {}
        for hook, captures in route:
            if type(hook) is EventHook or type(hook) is EventHookEx:
                hook._fire(args, kwargs, msg.topic, captures)
            else:
                hook.trigger(msg)

    def _on_error(self, _hook: Any, text: str) -> None:
        self.logger.error(text)

    # ------------------------------------------------------------- hooks
    def _map(self, topic: Topic) -> dict:
        return self._exact if topic.is_exact else self._generic

    def register_hook(self, hook: EventHook) -> None:
        """Registers a hook; ``KeyError`` if its topic has one already."""
        m = self._map(hook.topic)
        if hook.topic.value in m:
            raise KeyError(f"Another EventHook already registered for {hook.topic.value}")
        m[hook.topic.value] = hook
        self._changed()

    def unregister_hook(self, topic: Any) -> EventHook:
        """Removes and returns the hook on ``topic``; ``KeyError`` if none."""
        topic = _topic(topic)
        m = self._map(topic)
        if topic.value not in m:
            raise KeyError(f"No EventHook registered for {topic.value}")
        hook = m.pop(topic.value)
        self._changed()
        return hook

    def register_handler(self, topic: Any, handler: Callable, deduplicate: bool = False) -> None:
        """Registers ``handler`` on ``topic`` (an exact topic or a pattern)."""
        topic = _topic(topic)
        m = self._map(topic)
        hook = m.get(topic.value)
        if hook is None:
            hook = self._hook_class(topic, self.logger)
            m[topic.value] = hook
            self._changed()
        hook.add_handler(handler, deduplicate=deduplicate)

    def unregister_handler(self, topic: Any, handler: Callable) -> None:
        """Removes ``handler`` from ``topic``'s hook (a hook left empty is removed);
        logs an error if ``topic`` has no hook."""
        topic = _topic(topic)
        m = self._map(topic)
        hook = m.get(topic.value)
        if hook is None:
            self.logger.error(f'No EventHook registered for "{topic.value}"')
            return
        hook.remove_handler(handler)
        if len(hook) == 0:
            del m[topic.value]
            self._changed()

    def get_hook(self, topic: Any) -> EventHook:
        topic = _topic(topic)
        hook = self._map(topic).get(topic.value)
        if hook is None:
            raise KeyError(f"No EventHook registered for {topic.value}")
        return hook

    def __getitem__(self, topic: Any) -> list:
        """The hooks an event on ``topic`` fires, in firing order."""
        topic = _topic(topic)
        return [h for h, _ in self._resolve(topic.value)[1]]

    def event_hooks(self) -> Iterator[EventHook]:
        yield from list(self._exact.values())
        yield from list(self._generic.values())

    def topics(self) -> Iterator[Topic]:
        for hook in self.event_hooks():
            yield hook.topic

    def items(self) -> Iterator[tuple]:
        for hook in self.event_hooks():
            yield hook.topic, hook

    @property
    def capacity(self) -> int:
        """Queue slots in-process; the ring's bytes over a bus."""
        return self._port.capacity if self._port is not None else self._capacity

    @property
    def occupied(self) -> int:
        """Queued events in-process; over a bus, bytes of this engine's ring not yet
        read by the slowest subscriber."""
        if self._port is not None:
            return self._port.occupied
        with self._lock:
            return len(self._queue)

    @property
    def seq_id(self) -> int:
        """Sequence id of the last event put (in-process)."""
        return self._seq_id

    @property
    def exact_topic_hook_map(self) -> dict:
        return dict(self._exact)

    @property
    def generic_topic_hook_map(self) -> dict:
        return dict(self._generic)

    @property
    def view_stats(self) -> tuple:
        """Over a bus (extension): (events handed over as memoryviews, events whose
        view had an export that outlived its handler)."""
        return self._port.view_stats if self._port is not None else (0, 0)


class EventEngineEx(EventEngine):
    """``EventEngine`` with timers; its hooks are ``EventHookEx`` (handler statistics)."""

    _hook_class = EventHookEx

    def __init__(self, capacity: int = DEFAULT_MQ_CAPACITY, logger: Optional[logging.Logger] = None,
                 **bus: Any) -> None:
        super().__init__(capacity, logger, **bus)
        self.timer: dict = {}

    def __repr__(self) -> str:
        status = "active" if self.active else "idle"
        return f"<{type(self).__name__} {status}>(capacity={self.capacity}, timers={list(self.timer)})"

    def _sleep_until(self, when: float) -> bool:
        """Sleeps until ``time.time() >= when`` in slices; False if deactivated."""
        while self.active:
            left = when - time.time()
            if left <= 0:
                return True
            time.sleep(min(left, _SLICE))
        return False

    def run_timer(self, interval: float, topic: Any, activate_time: Optional[datetime] = None) -> None:
        """Puts ``interval=``, ``trigger_time=`` on ``topic`` every ``interval``
        seconds from ``activate_time`` while active (blocking)."""
        if not self.active:
            raise RuntimeError("EventEngine must be started before getting timer!")
        if interval <= 0:
            raise ValueError(f"a timer interval must be positive, got {interval!r}")
        scheduled = activate_time if activate_time is not None else datetime.now()
        step = timedelta(seconds=interval)
        while self._sleep_until(scheduled.timestamp()):
            self.publish(topic, (), {"interval": interval, "trigger_time": scheduled})
            now = datetime.now()
            while scheduled <= now:
                scheduled += step

    def _aligned(self, topic: Any, period: int) -> None:
        if not self.active:
            raise RuntimeError("EventEngine must be started before getting timer!")
        while True:
            nxt = (time.time() // period + 1) * period
            if not self._sleep_until(nxt):
                return
            self.publish(topic, (), {"interval": period, "timestamp": nxt})

    def minute_timer(self, topic: Any) -> None:
        """Puts on ``topic`` at every wall-clock minute while active (blocking)."""
        self._aligned(topic, 60)

    def second_timer(self, topic: Any) -> None:
        """Puts on ``topic`` at every wall-clock second while active (blocking)."""
        self._aligned(topic, 1)

    def get_timer(self, interval: float, activate_time: Optional[datetime] = None) -> Topic:
        """Starts (once per interval) a timer thread and returns its topic."""
        if not self.active:
            raise RuntimeError("EventEngine must be started before getting timer!")
        topic = Topic(timer_topic(interval))
        if interval in self.timer and self.timer[interval].is_alive():
            return topic
        if interval == 1:
            t = threading.Thread(target=self.second_timer, args=(topic,), daemon=True)
        elif interval == 60:
            t = threading.Thread(target=self.minute_timer, args=(topic,), daemon=True)
        else:
            t = threading.Thread(target=self.run_timer, args=(interval, topic, activate_time), daemon=True)
        t.name = f"EventEngine.Timer.{interval}"
        _running.add(self)
        self.timer[interval] = t
        t.start()
        return topic

    def stop(self) -> None:
        """Stops the engine and its timers."""
        super().stop()
        for t in list(self.timer.values()):
            if t is not threading.current_thread():
                t.join()

    def clear(self) -> None:
        """Clears hooks and forgets stopped timers."""
        super().clear()
        if not self.active:
            self.timer.clear()
