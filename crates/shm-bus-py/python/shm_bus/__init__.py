"""shm_bus: PyEventEngine's API, in-process and across processes over a shm-bus bus.

Switch an existing PyEventEngine program by changing its import::

    from shm_bus import EventEngine, Topic          # was: from event_engine import ...

and reach other processes with ``EventEngine(bus="quotes", name="worker")``.
See docs/PYTHON.md.
"""

import atexit as _atexit

from ._native import Bus, BusError, Loan, Publisher, Sample, Subscriber, _interpreter_exiting

# Registered first, so it runs last among this package's exit hooks (they stop
# the engines' and bridges' threads): from then on, a thread still waiting in
# Rust parks instead of taking the GIL back during finalization.
_atexit.register(_interpreter_exiting)

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
    "SECOND_TIMER_TOPIC", "MINUTE_TIMER_TOPIC", "TIMER_TOPIC_PREFIX", "timer_topic",
]
