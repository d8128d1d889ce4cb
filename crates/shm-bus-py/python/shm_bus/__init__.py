"""shm_bus: PyEventEngine's API, in-process and across processes over a shm-bus bus.

Switch an existing PyEventEngine program by changing its import::

    from shm_bus import EventEngine, Topic          # was: from event_engine import ...

and reach other processes with ``EventEngine(bus="quotes", name="worker")``.
See docs/PYTHON.md.
"""

import atexit as _atexit
import time as _time

from . import _native
from ._native import (Bus, BusError, GroupError, GroupFull, GroupMismatch, GroupRemoved, Loan,
                      Publisher, Sample, Subscriber, TooManyGroups)


def _park_waiting_threads() -> None:
    """Registered first, so it runs last among this package's exit hooks (they
    stop the engines', timers' and bridges' threads). Only daemon threads are
    left then; one still waiting in Rust would be ended by CPython's
    finalization with pthread_exit, which must not unwind through Rust frames.
    From here on such a thread parks instead; this waits (sleeping, so they can
    take the GIL back and park on their next wait) until all have, at most
    0.2 s."""
    _native._interpreter_exiting()
    deadline = _time.monotonic() + 0.2
    while _native._unparked_waiters() and _time.monotonic() < deadline:
        _time.sleep(0.001)


_atexit.register(_park_waiting_threads)

from ._topic import (Topic, TopicMatchResult, TopicPart, TopicPartAny, TopicPartExact,
                     TopicPartPattern, TopicPartRange, TopicPartRest, TopicType)
from ._event import EventHook, EventHookEx, MessagePayload, LOGGER
from ._engine import (EventEngine, EventEngineEx, Empty, Full, MINUTE_TIMER_TOPIC,
                      SECOND_TIMER_TOPIC, TIMER_TOPIC_PREFIX, timer_topic)
from . import event

#: A process-wide in-process engine (not started), as PyEventEngine offers.
EVENT_ENGINE = EventEngineEx()

__all__ = [
    "Topic", "TopicType", "TopicPart", "TopicPartExact", "TopicPartAny", "TopicPartRange",
    "TopicPartPattern", "TopicPartRest", "TopicMatchResult", "MessagePayload", "EventHook",
    "EventHookEx", "EventEngine", "EventEngineEx", "EVENT_ENGINE", "Full", "Empty", "BusError",
    "Bus", "Publisher", "Subscriber", "Sample", "Loan", "event", "LOGGER",
    "GroupError", "GroupRemoved", "GroupFull", "GroupMismatch", "TooManyGroups",
    "SECOND_TIMER_TOPIC", "MINUTE_TIMER_TOPIC", "TIMER_TOPIC_PREFIX", "timer_topic",
]
