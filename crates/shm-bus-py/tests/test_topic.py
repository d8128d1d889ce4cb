"""Topic classes, behaviour by behaviour, from PyEventEngine's API reference
(and TOPICS.md where the two differ on purpose)."""

import pickle

import pytest

from shm_bus import (Topic, TopicMatchResult, TopicPart, TopicPartAny, TopicPartExact,
                     TopicPartPattern, TopicPartRange, TopicPartRest, TopicType)


def test_topic_type_values():
    assert TopicType.TOPIC_PART_EXACT == 0
    assert TopicType.TOPIC_PART_ANY == 1
    assert TopicType.TOPIC_PART_RANGE == 2
    assert TopicType.TOPIC_PART_PATTERN == 3


def test_parse_parts_and_properties():
    t = Topic("md.{venue}.(AAPL|MSFT)./^T/.trade")
    assert len(t) == 5
    kinds = [p.ttype for p in t]
    assert kinds == [TopicType.TOPIC_PART_EXACT, TopicType.TOPIC_PART_ANY, TopicType.TOPIC_PART_RANGE,
                     TopicType.TOPIC_PART_PATTERN, TopicType.TOPIC_PART_EXACT]
    assert isinstance(t[0], TopicPartExact) and t[0].part == "md" and len(t[0]) == 2
    assert isinstance(t[1], TopicPartAny) and t[1].name == "venue"
    assert isinstance(t[2], TopicPartRange) and list(t[2].options()) == ["AAPL", "MSFT"] and len(t[2]) == 2
    assert list(iter(t[2])) == ["AAPL", "MSFT"]
    assert isinstance(t[3], TopicPartPattern) and t[3].pattern == "^T" and t[3].regex.search("TX")
    assert t[-1].part == "trade"
    assert not t.is_exact and Topic("a.b").is_exact
    assert t.owner is True and isinstance(t.addr, int)
    assert str(t) == t.value == "md.{venue}.(AAPL|MSFT)./^T/.trade"
    assert "Generic" in repr(t) and "Exact" in repr(Topic("a.b"))
    with pytest.raises(IndexError):
        t[5]


def test_part_next_walks_the_topic():
    t = Topic("a.{b}.c")
    p = t[0]
    assert p.next().name == "b"
    assert p.next().next().part == "c"
    with pytest.raises(StopIteration):
        t[2].next()
    assert all(p.owner for p in t) and all(isinstance(p.addr, int) for p in t)


@pytest.mark.parametrize("bad", ["", "a..b", ".a", "a.", "/a", "a./b", "a./(/", "a.()"])
def test_invalid_topics_raise_value_error(bad):
    with pytest.raises(ValueError):
        Topic(bad)


def test_equality_hash_and_plus_wildcards():
    assert Topic("a.b") == Topic("a.b")
    assert Topic("a.b") != Topic("a.c")
    assert hash(Topic("a.b")) == hash(Topic("a.b"))
    assert Topic("a.+x") == Topic("a.{x}")  # one canonical literal (TOPICS.md)
    assert Topic("a.+x").value == "a.{x}"
    assert Topic("a.b") != "a.b"
    assert len({Topic("a.b"), Topic("a.b"), Topic("a.c")}) == 2


def test_value_setter_reparses():
    t = Topic("a.b")
    t.value = "x.{y}"
    assert len(t) == 2 and not t.is_exact and t[1].name == "y"
    with pytest.raises(ValueError):
        t.value = "a..b"
    assert t.value == "x.{y}"


def test_match_result_nodes_and_captures():
    pattern = Topic("md.{venue}.(AAPL|MSFT).trade")
    topic = Topic("md.XNAS.AAPL.trade")
    r = pattern.match(topic)
    assert isinstance(r, TopicMatchResult)
    assert r and r.matched and r.length == 4 and len(r) == 4
    n = r[1]
    assert n["matched"] is True and n["literal"] == "XNAS"
    assert isinstance(n["part_a"], TopicPartAny) and isinstance(n["part_b"], TopicPartExact)
    assert [x["matched"] for x in r] == [True, True, True, True]
    assert r[-1]["literal"] == "trade"
    assert r.captures == {"venue": "XNAS"}
    d = r.to_dict()
    assert d["XNAS"].part == "XNAS" and set(d) == {"md", "XNAS", "AAPL", "trade"}
    assert "success" in repr(r)
    # symmetric
    assert topic.match(pattern).matched
    miss = pattern.match(Topic("md.XNAS.IBM.trade"))
    assert not miss and not miss.matched and "failed" in repr(miss)
    assert not pattern.match(Topic("md.XNAS.AAPL")).matched
    # accepts str too
    assert pattern.match("md.X.MSFT.trade").captures == {"venue": "X"}


def test_match_regex_rest_and_two_patterns():
    assert Topic("log./^err/").match(Topic("log.error")).matched
    assert not Topic("log./^err/").match(Topic("log.warn")).matched
    assert Topic("a.**").match(Topic("a.b.c")).matched
    assert Topic("a.**").match(Topic("a")).matched
    assert not Topic("a.{x}").match(Topic("a.{y}")).matched  # two non-exact parts never match
    assert Topic("a.{x}").match(Topic("a.{x}")).matched  # equal literals match


def test_format_and_call_and_format_map():
    t = Topic("md.{venue}.{sym}.trade")
    f = t.format(venue="XNAS", sym="AAPL")
    assert f.value == "md.XNAS.AAPL.trade" and f.is_exact
    assert t(venue="A", sym="B").value == "md.A.B.trade"
    with pytest.raises(KeyError):
        t.format(venue="XNAS")
    partial = t.format_map({"venue": "XNAS"})
    assert partial.value == "md.XNAS.{sym}.trade" and not partial.is_exact
    with pytest.raises(KeyError):
        t.format_map({"venue": "XNAS"}, strict=True)
    assert t.format_map({"venue": "X", "sym": "Y", "other": "z"}).value == "md.X.Y.trade"
    assert t.format_map({"venue": "X", "sym": "Y"}, internalized=False).is_exact
    for bad in ["", "a.b", "{x}", "(a|b)", "**"]:
        with pytest.raises(ValueError):
            t.format(venue=bad, sym="S")
    with pytest.raises(ValueError):
        Topic("md.(a|b).{x}").format(x="1")
    assert t.value == "md.{venue}.{sym}.trade"  # formatting never changes the original


def test_join_from_parts_append_add_iadd():
    t = Topic.join(["md", "XNAS", "AAPL"])
    assert t.value == "md.XNAS.AAPL" and t.is_exact
    with pytest.raises(ValueError):
        Topic.join(["a", "", "b"])
    with pytest.raises(ValueError):
        Topic.join(["a", "x.y"])
    parts = [TopicPartExact("md"), TopicPartAny("venue"), TopicPartRange(["A", "B"]),
             TopicPartPattern("^T"), TopicPartRest()]
    g = Topic.from_parts(parts)
    assert g.value == "md.{venue}.(A|B)./^T/.**"
    with pytest.raises(ValueError):
        Topic.from_parts([TopicPartRange([])])
    with pytest.raises(TypeError):
        Topic.from_parts(["md"])
    a = Topic("a")
    b = a + TopicPartExact("b")
    assert b.value == "a.b" and a.value == "a"  # + copies
    c = a + Topic("x.{y}")
    assert c.value == "a.x.{y}"
    same = a
    a += TopicPartAny("z")
    assert a is same and a.value == "a.{z}"
    a += Topic("q")
    assert a.value == "a.{z}.q"
    r = a.append(TopicPartExact("end"))
    assert r is a and a.value == "a.{z}.q.end" and a.update_literal() is a
    with pytest.raises(TypeError):
        a + 3
    e = Topic()
    assert e.value == "" and len(e) == 0
    e.append(TopicPartExact("first"))
    assert e.value == "first"


def test_part_constructors_and_alloc_keyword():
    assert TopicPartExact("x", alloc=True).part == "x"
    assert TopicPartAny("n", alloc=True).name == "n"
    assert TopicPartRange(["a"], alloc=True).options().__next__() == "a"
    assert TopicPartPattern("r", alloc=True).pattern == "r"
    assert Topic("a.b", alloc=True, allocator=None).value == "a.b"
    assert TopicMatchResult(n_parts=2, alloc=True).length == 2
    with pytest.raises(TypeError):
        TopicPart()
    assert "TopicPartExact" in repr(TopicPartExact("x"))


def test_topic_pickles():
    t = Topic("md.{venue}.x")
    assert pickle.loads(pickle.dumps(t)) == t
