"""PyEventEngine's ``MessagePayload``, ``EventHook`` and ``EventHookEx``."""

from __future__ import annotations

import inspect
import logging
import time
import traceback
from typing import Any, Callable, Iterator, Optional

from ._topic import Topic

__all__ = ["MessagePayload", "EventHook", "EventHookEx", "LOGGER"]

LOGGER = logging.getLogger("shm_bus")

_TOPIC = "topic"
_CAPTURES = "captures"
_TOPIC_UNEXPECTED = f"unexpected keyword argument '{_TOPIC}'"


class MessagePayload:
    """One event: its topic, positional and keyword arguments, and sequence id."""

    __slots__ = ("_topic", "_args", "_kwargs", "_seq_id", "_redelivered")

    def __init__(self, topic: Optional[Topic] = None, args: Optional[tuple] = None,
                 kwargs: Optional[dict] = None, alloc: bool = False) -> None:
        self._topic = topic
        self._args = args
        self._kwargs = kwargs
        self._seq_id = 0
        self._redelivered = False

    def __repr__(self) -> str:
        name = f'"{self._topic.value}"' if self._topic is not None else "NO_TOPIC"
        return f"<MessagePayload {name}>(seq_id={self._seq_id}, args={self._args}, kwargs={self._kwargs})"

    owner = property(lambda self: True, doc="Always True (the payload owns its data).")
    args_owner = property(lambda self: True)
    kwargs_owner = property(lambda self: True)

    @property
    def topic(self) -> Optional[Topic]:
        return self._topic

    @topic.setter
    def topic(self, value: Topic) -> None:
        self._topic = value

    @property
    def args(self) -> Optional[tuple]:
        return self._args

    @args.setter
    def args(self, value: tuple) -> None:
        self._args = value

    @property
    def kwargs(self) -> Optional[dict]:
        return self._kwargs

    @kwargs.setter
    def kwargs(self, value: dict) -> None:
        self._kwargs = value

    @property
    def kwargs_with_topic(self) -> Optional[dict]:
        """A copy of ``kwargs`` with ``topic`` added."""
        if self._kwargs is None:
            return None
        out = dict(self._kwargs)
        out[_TOPIC] = self._topic
        return out

    @property
    def seq_id(self) -> int:
        return self._seq_id

    @seq_id.setter
    def seq_id(self, value: int) -> None:
        self._seq_id = value

    @property
    def redelivered(self) -> bool:
        """Extension: from ``get`` on a worker-group engine, whether the event was
        handed out before to a member that died before finishing it."""
        return self._redelivered


def _make_payload(topic: Topic, args: tuple, kwargs: dict, seq_id: int) -> MessagePayload:
    m = MessagePayload(topic, args, kwargs)
    m._seq_id = seq_id
    return m


def _convention(fn: Callable) -> tuple:
    """(with_topic, with_captures) for a handler, decided once at registration:
    ``topic=`` goes to handlers with a ``topic`` parameter or ``**kwargs``;
    ``captures=`` (extension) only to handlers with a parameter named ``captures``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return (False, False)
    with_topic = any(p.name == _TOPIC or p.kind == p.VAR_KEYWORD for p in params)
    with_captures = any(p.name == _CAPTURES and p.kind != p.VAR_KEYWORD for p in params)
    return (with_topic, with_captures)


def _same(a: Callable, b: Callable) -> bool:
    """Identity, or equal bound methods (a new object on every attribute access;
    they compare equal when ``__self__`` is the same object and the function too)."""
    if a is b:
        return True
    if (inspect.ismethod(a) or inspect.isbuiltin(a)) and type(a) is type(b):
        try:
            return bool(a == b)
        except Exception:  # noqa: BLE001
            return False
    return False


class EventHook:
    """The handlers of one topic (or pattern).

    Handlers are called ``handler(*args, **kwargs)``, with ``topic=`` added when
    the handler accepts it (a ``topic`` parameter or ``**kwargs``). No-topic
    handlers run first, then with-topic handlers, each group in registration
    order. An exception in a handler is logged and the others still run.
    """

    __slots__ = ("topic", "logger", "retry_on_unexpected_topic", "_handlers", "_loggers", "__weakref__")

    def __init__(self, topic: Topic, logger: Optional[logging.Logger] = None,
                 retry_on_unexpected_topic: bool = False) -> None:
        if isinstance(topic, str):
            topic = Topic(topic)
        if not isinstance(topic, Topic):
            raise TypeError(f"topic must be a Topic, got {type(topic).__name__}")
        self.topic: Topic = topic
        self.logger: logging.Logger = logger if logger is not None else LOGGER.getChild("EventHook")
        self.retry_on_unexpected_topic = retry_on_unexpected_topic
        # (fn, with_topic, with_captures); replaced, never mutated, so a
        # dispatch in progress keeps the list it started with.
        self._handlers: list = []
        self._loggers: dict = {}

    # -- registration
    def add_handler(self, py_callable: Callable, logger: Optional[logging.Logger] = None,
                    deduplicate: bool = False) -> None:
        """Adds a handler (``deduplicate``: not if already present)."""
        if not callable(py_callable):
            raise TypeError(f"Handler must be callable, got {type(py_callable).__name__}")
        if deduplicate and py_callable in self:
            return
        with_topic, with_captures = _convention(py_callable)
        entry = (py_callable, with_topic, with_captures)
        handlers = list(self._handlers)
        if with_topic:
            handlers.append(entry)
        else:
            # no-topic handlers come first
            at = next((i for i, e in enumerate(handlers) if e[1]), len(handlers))
            handlers.insert(at, entry)
        if logger is not None:
            self._loggers[id(py_callable)] = logger
        self._handlers = handlers

    def remove_handler(self, py_callable: Callable) -> "EventHook":
        """Removes the first registration of ``py_callable``; returns self."""
        for i, e in enumerate(self._handlers):
            if _same(e[0], py_callable):
                self._handlers = self._handlers[:i] + self._handlers[i + 1:]
                if not any(_same(x[0], py_callable) for x in self._handlers):
                    self._loggers.pop(id(py_callable), None)
                return self
        self.logger.warning(f"{py_callable!r} is not registered in {self!r}")
        return self

    def clear(self) -> None:
        self._handlers = []
        self._loggers.clear()

    def __iadd__(self, handler: Callable) -> "EventHook":
        self.add_handler(handler, deduplicate=True)
        return self

    def __isub__(self, handler: Callable) -> "EventHook":
        self.remove_handler(handler)
        return self

    def __len__(self) -> int:
        return len(self._handlers)

    def __contains__(self, handler: Callable) -> bool:
        return any(_same(e[0], handler) for e in self._handlers)

    def __iter__(self) -> Iterator[Callable]:
        return iter([e[0] for e in self._handlers])

    def __repr__(self) -> str:
        return f'<{type(self).__name__} topic="{self.topic}" handlers={len(self._handlers)}>'

    @property
    def handlers(self) -> list:
        """``[{'fn', 'logger', 'idx', 'with_topic'}]``: no-topic handlers first."""
        return [
            {"fn": fn, "logger": self._loggers.get(id(fn), self.logger), "idx": i, "with_topic": wt}
            for i, (fn, wt, _wc) in enumerate(self._handlers)
        ]

    # -- dispatch
    def __call__(self, msg: MessagePayload) -> None:
        self.trigger(msg)

    def trigger(self, msg: MessagePayload) -> None:
        """Calls every handler with ``msg``'s arguments."""
        args = msg.args if msg.args is not None else ()
        kwargs = msg.kwargs if msg.kwargs is not None else {}
        self._fire(args, kwargs, msg.topic, None)

    def _captures(self, topic: Any, captures: Optional[dict]) -> dict:
        if captures is not None:
            return dict(captures)
        if isinstance(topic, Topic):
            return self.topic.match(topic).captures
        return {}

    def _call(self, entry: tuple, args: tuple, kwargs: dict, topic: Any, captures: Optional[dict]) -> None:
        fn, with_topic, with_captures = entry
        try:
            if with_topic or with_captures:
                kw = dict(kwargs)
                if with_topic:
                    kw[_TOPIC] = topic
                if with_captures:
                    kw[_CAPTURES] = self._captures(topic, captures)
                fn(*args, **kw)
            else:
                fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - a handler's failure never stops dispatch
            self._handler_failed(fn, with_topic, args, kwargs, topic, e)

    def _fire(self, args: tuple, kwargs: dict, topic: Any, captures: Optional[dict]) -> None:
        for entry in self._handlers:
            self._call(entry, args, kwargs, topic, captures)

    def _handler_failed(self, fn: Callable, with_topic: bool, args: tuple, kwargs: dict,
                        topic: Any, err: BaseException) -> None:
        if (self.retry_on_unexpected_topic and with_topic and isinstance(err, TypeError)
                and _TOPIC_UNEXPECTED in str(err)):
            try:
                fn(*args, **kwargs)
                return
            except Exception as e2:  # noqa: BLE001
                err = e2
        if not isinstance(err, Exception):
            raise err  # KeyboardInterrupt, SystemExit: not a handler failure
        logger = self._loggers.get(id(fn), self.logger)
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        logger.error(f"handler {fn!r} on {self.topic.value!r} failed:\n{text}")


class EventHookEx(EventHook):
    """An ``EventHook`` that times its handlers: ``get_stats(handler)`` gives
    ``{'calls', 'total_time'}``; ``stats`` iterates ``(handler, stats)``."""

    __slots__ = ("_stats",)

    def __init__(self, topic: Topic, logger: Optional[logging.Logger] = None,
                 retry_on_unexpected_topic: bool = False) -> None:
        super().__init__(topic, logger, retry_on_unexpected_topic)
        self._stats: dict = {}

    def _fire(self, args: tuple, kwargs: dict, topic: Any, captures: Optional[dict]) -> None:
        for entry in self._handlers:
            start = time.perf_counter()
            try:
                self._call(entry, args, kwargs, topic, captures)
            finally:
                s = self._stats.setdefault(id(entry[0]), {"calls": 0, "total_time": 0.0})
                s["calls"] += 1
                s["total_time"] += time.perf_counter() - start

    def get_stats(self, py_callable: Callable) -> Optional[dict]:
        if py_callable not in self:
            return None
        s = self._stats.get(id(py_callable))
        return dict(s) if s is not None else None

    @property
    def stats(self) -> Iterator[tuple]:
        for fn, _wt, _wc in self._handlers:
            s = self._stats.get(id(fn))
            if s is not None:
                yield fn, dict(s)

    handler_stats = stats

    def clear(self) -> None:
        super().clear()
        self._stats.clear()
