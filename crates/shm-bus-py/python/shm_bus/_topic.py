"""PyEventEngine's topic classes over the Rust topic language (shm-bus-topic).

``Topic`` holds a parsed ``NativeTopic``; parsing, matching and formatting are
done in Rust, so the language is exactly the bus's (docs/TOPICS.md).
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Any, Iterable, Iterator, Optional

from ._native import NativeTopic

__all__ = [
    "TopicType", "TopicPart", "TopicPartExact", "TopicPartAny", "TopicPartRange",
    "TopicPartPattern", "TopicPartRest", "TopicMatchResult", "Topic",
]


class TopicType(IntEnum):
    """Kinds of topic parts (``TOPIC_PART_REST`` is an extension: ``**``)."""

    TOPIC_PART_EXACT = 0
    TOPIC_PART_ANY = 1
    TOPIC_PART_RANGE = 2
    TOPIC_PART_PATTERN = 3
    TOPIC_PART_REST = 4


class TopicPart:
    """One part of a topic. Use a subclass; ``next()`` walks the topic."""

    __slots__ = ("_topic", "_index")
    _ttype: TopicType

    def __init__(self, *args: Any, alloc: bool = False, **kwargs: Any) -> None:
        if type(self) is TopicPart:
            raise TypeError("TopicPart is abstract: use TopicPartExact, TopicPartAny, "
                            "TopicPartRange or TopicPartPattern")
        self._topic: Optional[Topic] = None
        self._index = 0

    def next(self) -> "TopicPart":
        """The next part of the topic this part belongs to; ``StopIteration`` after the last."""
        t = self._topic
        if t is None or self._index + 1 >= len(t._parts):
            raise StopIteration
        return t._parts[self._index + 1]

    @property
    def owner(self) -> bool:
        return True

    @property
    def ttype(self) -> TopicType:
        return self._ttype

    @property
    def addr(self) -> int:
        return id(self)

    def _native(self) -> tuple:
        raise NotImplementedError

    @property
    def literal(self) -> str:
        """The part as written in a topic (extension)."""
        return Topic.from_parts([self]).value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TopicPart) and self._native() == other._native()

    def __hash__(self) -> int:
        k, v = self._native()
        return hash((k, tuple(v) if isinstance(v, list) else v))

    def _attached(self, topic: "Topic", index: int) -> "TopicPart":
        self._topic, self._index = topic, index
        return self


class TopicPartExact(TopicPart):
    """An exact part: matches the same text."""

    __slots__ = ("_part",)
    _ttype = TopicType.TOPIC_PART_EXACT

    def __init__(self, part: Optional[str] = None, *args: Any, alloc: bool = False, **kwargs: Any) -> None:
        super().__init__()
        if part is None:
            if not alloc:
                raise ValueError("TopicPartExact needs its text")
            part = ""
        self._part = str(part)

    @property
    def part(self) -> str:
        return self._part

    def __len__(self) -> int:
        return len(self._part.encode("utf-8"))

    def __repr__(self) -> str:
        return f'<TopicPartExact>(topic="{self._part}")'

    def _native(self) -> tuple:
        return (0, self._part)


class TopicPartAny(TopicPart):
    """A named wildcard ``{name}`` (or ``+name``): matches one part, captured as ``name``."""

    __slots__ = ("_name",)
    _ttype = TopicType.TOPIC_PART_ANY

    def __init__(self, name: Optional[str] = None, *args: Any, alloc: bool = False, **kwargs: Any) -> None:
        super().__init__()
        if name is None:
            raise ValueError("TopicPartAny needs a name")
        self._name = str(name)

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f'<TopicPartAny>(name="{self._name}")'

    def _native(self) -> tuple:
        return (1, self._name)


class TopicPartRange(TopicPart):
    """A range ``(a|b|c)``: matches one part equal to one option."""

    __slots__ = ("_options",)
    _ttype = TopicType.TOPIC_PART_RANGE

    def __init__(self, options: Optional[list] = None, *args: Any, alloc: bool = False, **kwargs: Any) -> None:
        super().__init__()
        self._options = [str(o) for o in (options or [])]

    def options(self) -> Iterator[str]:
        yield from self._options

    def __len__(self) -> int:
        return len(self._options)

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __repr__(self) -> str:
        return f"<TopicPartRange>(n={len(self._options)}, options={self._options})"

    def _native(self) -> tuple:
        return (2, list(self._options))


class TopicPartPattern(TopicPart):
    """A regex part ``/regex/``: matches one part the regex finds a match in
    (Rust ``regex`` syntax, unanchored)."""

    __slots__ = ("_pattern",)
    _ttype = TopicType.TOPIC_PART_PATTERN

    def __init__(self, regex: Optional[str] = None, *args: Any, alloc: bool = False, **kwargs: Any) -> None:
        super().__init__()
        if regex is None:
            raise ValueError("TopicPartPattern needs a regex")
        self._pattern = str(regex)

    @property
    def pattern(self) -> str:
        return self._pattern

    @property
    def regex(self) -> "re.Pattern[str]":
        """The regex compiled by Python's ``re`` (matching itself is done by Rust's
        ``regex``; the two agree on common syntax)."""
        return re.compile(self._pattern)

    def __repr__(self) -> str:
        return f'<TopicPartPattern>(regex="{self._pattern}")'

    def _native(self) -> tuple:
        return (3, self._pattern)


class TopicPartRest(TopicPart):
    """``**``: zero or more parts (extension; not in PyEventEngine)."""

    __slots__ = ()
    _ttype = TopicType.TOPIC_PART_REST

    def __repr__(self) -> str:
        return "<TopicPartRest>"

    def _native(self) -> tuple:
        return (4, "**")


_PART_CLASSES = {0: TopicPartExact, 1: TopicPartAny, 2: TopicPartRange, 3: TopicPartPattern}


def _part_from_native(kind: int, value: Any) -> TopicPart:
    if kind == 4:
        return TopicPartRest()
    return _PART_CLASSES[kind](value)


class TopicMatchResult:
    """The per-part result of ``Topic.match``: nodes with ``matched``,
    ``part_a``, ``part_b`` and ``literal``; true when the topics match.
    ``captures`` (extension) maps wildcard names to what they matched."""

    __slots__ = ("_nodes", "_matched", "_captures")

    def __init__(self, n_parts: int = 0, alloc: bool = False, allocator: Any = None, **kwargs: Any) -> None:
        self._nodes: list = [
            {"matched": False, "part_a": None, "part_b": None, "literal": None} for _ in range(n_parts)
        ]
        self._matched = False
        self._captures: dict = {}

    @classmethod
    def _build(cls, a: "Topic", b: "Topic") -> "TopicMatchResult":
        r = cls()
        if a._n is None or b._n is None:
            return r
        matched, nodes, captures = a._n.match_(b._n)
        pa, pb = a._parts, b._parts
        r._nodes = [
            {
                "matched": m,
                "part_a": pa[ia] if ia is not None else None,
                "part_b": pb[ib] if ib is not None else None,
                "literal": lit,
            }
            for (m, ia, ib, lit) in nodes
        ]
        r._matched = matched
        r._captures = captures
        return r

    def __repr__(self) -> str:
        status = "success" if self._matched else "failed"
        return f"<TopicMatchResult {status}>(nodes={len(self._nodes)})"

    def __bool__(self) -> bool:
        return self._matched

    def __len__(self) -> int:
        return len(self._nodes)

    def __getitem__(self, idx: int) -> dict:
        return dict(self._nodes[idx])

    def __iter__(self) -> Iterator[dict]:
        return (dict(n) for n in self._nodes)

    def to_dict(self) -> dict:
        """``{literal: part_b}`` for the nodes that have both."""
        return {n["literal"]: n["part_b"] for n in self._nodes if n["literal"] and n["part_b"] is not None}

    @property
    def owner(self) -> bool:
        return True

    @property
    def length(self) -> int:
        return len(self._nodes)

    @property
    def matched(self) -> bool:
        return self._matched

    @property
    def captures(self) -> dict:
        return dict(self._captures)


def _as_topic(topic: Any) -> "Topic":
    if isinstance(topic, Topic):
        return topic
    if isinstance(topic, str):
        return Topic(topic)
    raise TypeError(f"expected a Topic or str, got {type(topic).__name__}")


class Topic:
    """A topic or pattern: ``md.{venue}.(AAPL|MSFT).trade``, ``log./^err/``, ``a.**``.

    An invalid topic raises ``ValueError``. Two topics are equal when their
    canonical literals are (``+x`` and ``{x}`` are the same part).
    """

    __slots__ = ("_n", "_parts", "_v", "__weakref__")

    def __init__(self, topic: Optional[str] = None, *args: Any, alloc: bool = True,
                 allocator: Any = None, **kwargs: Any) -> None:
        self._n: Optional[NativeTopic] = None
        self._parts: list = []
        self._v = ""
        if topic is not None:
            if isinstance(topic, Topic):
                topic = topic.value
            self._set(NativeTopic.parse(str(topic)))

    def _set(self, n: Optional[NativeTopic]) -> "Topic":
        self._n = n
        # one str object per literal: the bus side caches topic ids by identity
        self._v = "" if n is None else n.literal
        self._parts = [] if n is None else [
            _part_from_native(k, v)._attached(self, i) for i, (k, v) in enumerate(n.parts())
        ]
        return self

    @classmethod
    def _from_native(cls, n: NativeTopic) -> "Topic":
        t = cls.__new__(cls)
        t._set(n)
        return t

    # -- building
    @classmethod
    def from_parts(cls, topic_parts: Iterable[TopicPart]) -> "Topic":
        """A topic from parts; checked like a parsed one (``ValueError``)."""
        parts = list(topic_parts)
        for p in parts:
            if not isinstance(p, TopicPart):
                raise TypeError(f"expected TopicPart, got {type(p).__name__}")
        if not parts:
            return cls()
        return cls._from_native(NativeTopic.from_parts([p._native() for p in parts]))

    @classmethod
    def join(cls, topic_parts: Iterable[str]) -> "Topic":
        """An exact topic from literal parts (each must be a valid exact part)."""
        items = [str(p) for p in topic_parts]
        if not items:
            return cls()
        return cls._from_native(NativeTopic.join(items))

    def append(self, topic_part: TopicPart) -> "Topic":
        """Appends a part in place; returns self."""
        if not isinstance(topic_part, TopicPart):
            raise TypeError(f"expected TopicPart, got {type(topic_part).__name__}")
        parts = [p._native() for p in self._parts] + [topic_part._native()]
        return self._set(NativeTopic.from_parts(parts))

    def _extended(self, other: Any) -> list:
        if isinstance(other, Topic):
            extra = [p._native() for p in other._parts]
        elif isinstance(other, TopicPart):
            extra = [other._native()]
        else:
            raise TypeError(f"cannot add {type(other).__name__} to a Topic")
        return [p._native() for p in self._parts] + extra

    def __add__(self, topic: Any) -> "Topic":
        parts = self._extended(topic)
        return Topic._from_native(NativeTopic.from_parts(parts)) if parts else Topic()

    def __iadd__(self, topic: Any) -> "Topic":
        parts = self._extended(topic)
        return self._set(NativeTopic.from_parts(parts) if parts else None)

    def update_literal(self) -> "Topic":
        """Rebuilds the literal from the parts (they are immutable here, so it never changes)."""
        return self

    # -- matching / formatting
    def match(self, other: Any) -> TopicMatchResult:
        """Matches against another topic (either side may be the pattern)."""
        return TopicMatchResult._build(self, _as_topic(other))

    def format(self, **kwargs: Any) -> "Topic":
        """Replaces every ``{name}``; ``KeyError`` when one has no value, ``ValueError``
        for a bad value or a part that cannot be formatted."""
        return self.format_map(kwargs, strict=True)

    def format_map(self, mapping: dict, internalized: bool = True, strict: bool = False) -> "Topic":
        """Replaces the ``{name}`` parts found in ``mapping``; a missing name is a
        ``KeyError`` when ``strict``, else the part stays."""
        if self._n is None:
            return Topic()
        return Topic._from_native(self._n.format_map(mapping, strict))

    def __call__(self, **kwargs: Any) -> "Topic":
        return self.format(**kwargs)

    # -- properties and protocol
    @property
    def value(self) -> str:
        return self._v

    @value.setter
    def value(self, text: str) -> None:
        self._set(NativeTopic.parse(str(text)))

    @property
    def is_exact(self) -> bool:
        return self._n is not None and self._n.is_exact

    @property
    def owner(self) -> bool:
        return True

    @property
    def addr(self) -> int:
        return id(self)

    def __len__(self) -> int:
        return len(self._parts)

    def __iter__(self) -> Iterator[TopicPart]:
        return iter(list(self._parts))

    def __getitem__(self, idx: int) -> TopicPart:
        return self._parts[idx]

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Topic):
            return self.value == other.value
        return False

    def __repr__(self) -> str:
        kind = "Exact" if self.is_exact else "Generic"
        return f'<{type(self).__name__} {kind}>(value="{self.value}", n_parts={len(self._parts)})'

    def __str__(self) -> str:
        return self.value

    def __reduce__(self):
        return (Topic, (self.value,)) if self._n is not None else (Topic, ())
