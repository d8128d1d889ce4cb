//! Table-driven tests of the topic language (TOPICS.md, rule by rule).
//!
//! Every match case runs through the direct matcher in both directions, the
//! detailed matcher, and the `SubscriptionIndex` (alone and among unrelated
//! patterns), and all must agree.

use std::collections::{BTreeMap, HashMap};

use shm_bus_topic::{
    FormatError, LocalTopicTable, Part, PartKind, SubscriptionIndex, Topic, TopicError, TopicId,
    TopicTable, match_topics, matches,
};

fn t(s: &str) -> Topic {
    Topic::parse(s).unwrap_or_else(|e| panic!("`{s}` should parse: {e}"))
}

/// Patterns that match none of the topics used below, to check the index
/// answers the same in a crowd.
fn crowd() -> Vec<Topic> {
    [
        "zz.{a}",
        "zz.**",
        "(zz|yy).x",
        "/^zz$/.b",
        "q.q.q.q.q.q",
        "{a}.{b}.{c}.{d}.{e}.{f}.{g}",
    ]
    .iter()
    .map(|s| t(s))
    .collect()
}

fn index_says(pattern: &Topic, topic: &Topic) -> bool {
    let mut index = SubscriptionIndex::new();
    index.insert(pattern, 0u32);
    let alone = index.query(topic) == vec![0];
    for (i, p) in crowd().iter().enumerate() {
        index.insert(p, 1 + i as u32);
    }
    let crowded = index.query(topic).contains(&0);
    assert_eq!(
        alone, crowded,
        "index alone vs crowded: {pattern} ~ {topic}"
    );
    // Removing the crowd leaves the same answer.
    for (i, p) in crowd().iter().enumerate() {
        assert!(index.remove(p, 1 + i as u32));
    }
    assert_eq!(index.query(topic) == vec![0], alone);
    alone
}

/// Asserts `a ~ b` is `expected` by every implementation, and the captures.
fn check(a: &str, b: &str, expected: bool, captures: &[(&str, &str)]) {
    let (ta, tb) = (t(a), t(b));
    assert_eq!(matches(&ta, &tb), expected, "matches({a}, {b})");
    assert_eq!(matches(&tb, &ta), expected, "matches({b}, {a})");
    let r = match_topics(&ta, &tb);
    assert_eq!(r.matched(), expected, "match_topics({a}, {b})");
    assert_eq!(
        match_topics(&tb, &ta).matched(),
        expected,
        "match_topics({b}, {a})"
    );
    let want: BTreeMap<&str, &str> = captures.iter().copied().collect();
    assert_eq!(r.captures_map(), want, "captures of {a} ~ {b}");
    assert_eq!(
        match_topics(&tb, &ta).captures_map(),
        want,
        "captures of {b} ~ {a}"
    );
    if tb.is_exact() {
        assert_eq!(
            index_says(&ta, &tb),
            expected,
            "index: pattern {a}, topic {b}"
        );
    }
    if ta.is_exact() {
        assert_eq!(
            index_says(&tb, &ta),
            expected,
            "index: pattern {b}, topic {a}"
        );
    }
}

macro_rules! yes {
    ($a:expr, $b:expr $(, $name:expr => $val:expr)* $(,)?) => {
        check($a, $b, true, &[$(($name, $val)),*])
    };
}

macro_rules! no {
    ($a:expr, $b:expr) => {
        check($a, $b, false, &[])
    };
}

// ---------------------------------------------------------------- parsing

#[test]
fn parses_every_part_kind() {
    let topic = t("md.{venue}.+sym.(bid|ask)./^[A-Z]+$/.**");
    let kinds: Vec<PartKind> = topic.iter().map(Part::kind).collect();
    assert_eq!(
        kinds,
        [
            PartKind::Exact,
            PartKind::Any,
            PartKind::Any,
            PartKind::Range,
            PartKind::Pattern,
            PartKind::Rest
        ]
    );
    assert_eq!(topic[1], Part::Any("venue".into()));
    assert_eq!(topic[2], Part::Any("sym".into()));
    assert_eq!(
        topic[3],
        Part::Range(vec!["bid".into(), "ask".into()].into())
    );
    assert!(matches!(&topic[4], Part::Pattern(p) if p.as_str() == "^[A-Z]+$"));
    assert_eq!(topic.as_str(), "md.{venue}.{sym}.(bid|ask)./^[A-Z]+$/.**");
    assert!(!topic.is_exact());
}

#[test]
fn near_miss_tokens_are_exact() {
    for s in [
        "{x", "x}", "{}", "+", "(a", "a)", "a(b|c)", "*", "***", "x/y", "a/",
    ] {
        let topic = t(s);
        assert_eq!(topic.len(), 1, "{s}");
        assert_eq!(topic[0], Part::Exact(s.into()), "{s} is exact");
        assert!(topic.is_exact());
    }
}

#[test]
fn wildcard_names() {
    assert_eq!(t("{a b}")[0], Part::Any("a b".into()));
    assert_eq!(t("++")[0], Part::Any("+".into()));
    assert_eq!(t("{{x}}")[0], Part::Any("{x}".into()));
    // `+name` is written canonically as `{name}`; both are the same topic.
    assert_eq!(t("a.+x"), t("a.{x}"));
    assert_eq!(t("a.+x").as_str(), "a.{x}");
}

#[test]
fn ranges_drop_empty_options() {
    assert_eq!(t("(a||b|)").as_str(), "(a|b)");
    assert_eq!(t("(|a)")[0], Part::Range(vec!["a".into()].into()));
}

#[test]
fn pattern_boundaries() {
    // A regex may contain `.` and `/`, but closes at the first `/.` or `/` at the end.
    let topic = t("/a.b/.c");
    assert_eq!(topic.len(), 2);
    assert!(matches!(&topic[0], Part::Pattern(p) if p.as_str() == "a.b"));
    let topic = t("x./a/b/");
    assert!(matches!(&topic[1], Part::Pattern(p) if p.as_str() == "a/b"));
    let topic = t("/a/.b/");
    assert_eq!(topic[1], Part::Exact("b/".into()));
    // `/` opens a pattern only at the start of a part.
    assert_eq!(t("a/b/.c")[0], Part::Exact("a/b/".into()));
    // The empty regex is valid and matches any part.
    assert!(matches(&t("//.x"), &t("anything.x")));
}

#[test]
fn invalid_topics_name_the_problem_and_position() {
    let cases: &[(&str, &str, usize)] = &[
        ("", "empty_topic", 0),
        ("a..b", "empty_part", 2),
        (".a", "empty_part", 0),
        ("a.", "empty_part", 2),
        (".", "empty_part", 0),
        ("/a", "unclosed_pattern", 0),
        ("a./b", "unclosed_pattern", 2),
        ("/a/b", "unclosed_pattern", 0),
        ("x./a/.", "empty_part", 6),
        ("a./(/", "invalid_regex", 2),
        ("()", "empty_range", 0),
        ("a.(|)", "empty_range", 2),
    ];
    for &(text, kind, position) in cases {
        let err = Topic::parse(text).expect_err(text);
        assert_eq!(err.kind(), kind, "{text}: {err}");
        assert_eq!(err.position(), position, "{text}: {err}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn errors_say_how_to_fix() {
    let msg = Topic::parse("a..b").unwrap_err().to_string();
    assert!(msg.contains("byte 2") && msg.contains("a.b"), "{msg}");
    let msg = Topic::parse("x./[/").unwrap_err().to_string();
    assert!(msg.contains("invalid regex `[`"), "{msg}");
    let msg = Topic::parse("()").unwrap_err().to_string();
    assert!(msg.contains("(bid|ask)"), "{msg}");
}

#[test]
fn literal_round_trips() {
    for s in [
        "a",
        "a.b.c",
        "+x.{y}",
        "(a|b).c",
        "/a.b/./c/",
        "/x//./y/",
        "**",
        "a.**.b",
        "{{x}}",
        "(a)|b)",
    ] {
        let topic = t(s);
        let again = t(topic.as_str());
        assert_eq!(topic.parts(), again.parts(), "{s}");
        assert_eq!(topic.as_str(), again.as_str(), "{s}");
    }
}

#[test]
fn topic_accessors() {
    let topic = t("a.{b}.c");
    assert_eq!(topic.len(), 3);
    assert!(!topic.is_empty());
    assert_eq!(topic.get(2), Some(&Part::Exact("c".into())));
    assert_eq!(topic.get(3), None);
    assert_eq!(topic.iter().count(), 3);
    assert_eq!(topic.wildcard_names().collect::<Vec<_>>(), ["b"]);
    assert_eq!(format!("{topic:?}"), "Topic(\"a.{b}.c\")");
    let mut set = std::collections::HashSet::new();
    set.insert(t("a.+b.c"));
    assert!(set.contains(&topic), "hash + eq by literal");
}

// --------------------------------------------------------------- building

#[test]
fn join_builds_exact_topics() {
    assert_eq!(Topic::join(["a", "b"]).unwrap().as_str(), "a.b");
    assert!(Topic::join(["a", "b"]).unwrap().is_exact());
    let cases: &[(&[&str], &str, usize)] = &[
        (&[], "empty_topic", 0),
        (&["a", ""], "empty_part", 2),
        (&["a", "b.c"], "not_a_part", 2),
        (&["a", "{x}"], "not_a_part", 2),
        (&["+x"], "not_a_part", 0),
        (&["**"], "not_a_part", 0),
        (&["(a|b)"], "not_a_part", 0),
        (&["/re/"], "not_a_part", 0),
        (&["/re"], "not_a_part", 0),
    ];
    for (parts, kind, position) in cases {
        let err = Topic::join(parts.iter()).expect_err(&format!("{parts:?}"));
        assert_eq!(err.kind(), *kind, "{parts:?}: {err}");
        assert_eq!(err.position(), *position, "{parts:?}: {err}");
    }
}

#[test]
fn from_parts_and_append() {
    let topic = Topic::from_parts([
        Part::exact("md").unwrap(),
        Part::any("venue").unwrap(),
        Part::range(["bid", "", "ask"]).unwrap(),
        Part::pattern("^[A-Z]+$").unwrap(),
        Part::rest(),
    ])
    .unwrap();
    assert_eq!(topic.as_str(), "md.{venue}.(bid|ask)./^[A-Z]+$/.**");
    assert_eq!(t(topic.as_str()).parts(), topic.parts());

    let longer = t("a").append(Part::exact("b").unwrap()).unwrap();
    assert_eq!(longer.as_str(), "a.b");
    // Hand-built parts are checked too.
    assert_eq!(
        t("a").append(Part::Exact("b.c".into())).unwrap_err().kind(),
        "not_a_part"
    );
    assert_eq!(
        Topic::from_parts([Part::Any("".into())])
            .unwrap_err()
            .kind(),
        "not_a_part"
    );
    assert_eq!(Topic::from_parts([]).unwrap_err(), TopicError::Empty);
    assert_eq!(Part::any("").unwrap_err().kind(), "not_a_part");
    assert_eq!(Part::range(["", ""]).unwrap_err().kind(), "empty_range");
    assert_eq!(Part::range(["a|b"]).unwrap_err().kind(), "not_a_part");
    assert_eq!(Part::pattern("(").unwrap_err().kind(), "invalid_regex");
    assert_eq!(Part::pattern("a/.b").unwrap_err().kind(), "not_a_part");
    assert_eq!(Part::exact("").unwrap_err().kind(), "empty_part");
}

#[test]
fn add_operators_concatenate() {
    let a = t("a.{x}");
    let b = t("(c|d).**");
    assert_eq!((&a + &b).as_str(), "a.{x}.(c|d).**");
    let mut c = a.clone();
    c += &b;
    assert_eq!(c, &a + &b);
    c += t("e");
    assert_eq!(c.as_str(), "a.{x}.(c|d).**.e");
    assert_eq!((a + b).len(), 4);
}

// ------------------------------------------------------------- formatting

#[test]
fn format_strict_and_lenient() {
    let topic = t("md.{venue}.+sym");
    assert_eq!(
        topic
            .format([("venue", "XNAS"), ("sym", "AAPL")])
            .unwrap()
            .as_str(),
        "md.XNAS.AAPL"
    );
    assert!(
        topic
            .format([("venue", "XNAS"), ("sym", "AAPL")])
            .unwrap()
            .is_exact()
    );
    let err = topic.format([("venue", "XNAS")]).unwrap_err();
    assert_eq!(err, FormatError::MissingValue { name: "sym".into() });
    let mut map = HashMap::new();
    map.insert("venue", "XNAS");
    assert_eq!(
        topic.format_map(&map, false).unwrap().as_str(),
        "md.XNAS.{sym}"
    );
    assert_eq!(
        topic.format_map(&map, true).unwrap_err().kind(),
        "missing_value"
    );
    // The same name twice takes the same value.
    assert_eq!(t("{a}.{a}").format([("a", "x")]).unwrap().as_str(), "x.x");
}

#[test]
fn format_refuses_bad_values_and_parts() {
    let topic = t("md.{venue}");
    for bad in ["", "a.b", "{x}", "**", "(a|b)", "/re/", "+x"] {
        let err = topic.format([("venue", bad)]).unwrap_err();
        assert_eq!(err.kind(), "invalid_value", "value `{bad}`: {err}");
    }
    for s in ["a.(b|c).{x}", "a./re/.{x}", "a.**.{x}"] {
        let err = t(s).format([("x", "1")]).unwrap_err();
        assert_eq!(err.kind(), "not_formattable", "{s}");
        // Also when not strict.
        assert_eq!(
            t(s).format_map(&HashMap::<String, String>::new(), false)
                .unwrap_err()
                .kind(),
            "not_formattable"
        );
    }
}

#[test]
fn formatting_never_changes_other_topics() {
    // PyEventEngine's interning map could be overwritten by a formatted
    // result; here topics are values.
    let pattern = t("a.{x}");
    let before = pattern.to_string();
    let formatted = pattern.format([("x", "b")]).unwrap();
    assert_eq!(pattern.as_str(), before);
    assert_eq!(t("a.{x}").as_str(), "a.{x}");
    assert_eq!(formatted.as_str(), "a.b");
}

// --------------------------------------------------------------- matching

#[test]
fn rule_1_equal_literals_match() {
    yes!("a.b", "a.b");
    yes!("a.{x}", "a.{x}"); // a pattern matches itself
    yes!("a.+x", "a.{x}"); // same literal
    yes!("(a|b).**", "(a|b).**");
    yes!("/^a$/", "/^a$/");
}

#[test]
fn exact_parts() {
    no!("a.b", "a.c");
    no!("a.b", "a");
    no!("a", "a.b");
    yes!("ümlaut.ok", "ümlaut.ok");
}

#[test]
fn wildcards_capture() {
    yes!("md.{venue}.AAPL", "md.XNAS.AAPL", "venue" => "XNAS");
    yes!("md.+venue.+sym", "md.XNAS.AAPL", "venue" => "XNAS", "sym" => "AAPL");
    no!("md.{venue}", "md.XNAS.AAPL");
    no!("md.{venue}.AAPL", "md.XNAS.MSFT");
    // Last one wins for a repeated name.
    yes!("{x}.{x}", "a.b", "x" => "b");
    let (p, q) = (t("{x}.{x}"), t("a.b"));
    let r = match_topics(&p, &q);
    assert_eq!(r.captures(), &[("x", "a"), ("x", "b")]);
    assert_eq!(r.capture("x"), Some("b"));
}

#[test]
fn two_non_exact_parts_never_match() {
    no!("a.{x}", "a.{y}");
    no!("a.{x}", "a.(b|c)");
    no!("a.(b|c)", "a./b/");
    no!("a./b/", "a./c/");
    no!("a.{x}", "a.**.{y}");
    // ...but captures flow from both sides when each is paired with an exact part.
    yes!("{x}.b", "a.{y}", "x" => "a", "y" => "b");
}

#[test]
fn ranges() {
    yes!("md.(bid|ask)", "md.bid");
    yes!("md.(bid|ask)", "md.ask");
    no!("md.(bid|ask)", "md.trade");
    no!("md.(bid|ask)", "md.bi");
}

#[test]
fn regex_parts_search_unanchored() {
    yes!("md./[0-9]/", "md.a1b");
    no!("md./^[0-9]+$/", "md.a1b");
    yes!("md./^[0-9]+$/", "md.123");
    yes!(r"v./\d/", "v.7"); // Rust regex dialect: \d is a digit
    yes!("/a.c/", "abc"); // `.` inside a regex
    no!("/^a.c$/", "abcd");
}

#[test]
fn rest_absorbs_zero_or_more() {
    yes!("log.**", "log");
    yes!("log.**", "log.a");
    yes!("log.**", "log.a.b.c");
    yes!("**", "x.y");
    yes!("**", "x");
    yes!("a.**.z", "a.z");
    yes!("a.**.z", "a.b.c.z");
    no!("a.**.z", "a.b.c");
    yes!("**.{last}", "a.b.c", "last" => "c");
    yes!("a.**.**.b", "a.x.y.b");
    yes!("**.x.**", "a.x.b.x.c");
    no!("**.x.**", "a.b.c");
    // `**` against `**`: each absorbs only exact parts of the other.
    yes!("a.**", "**.b");
    no!("**", "{x}");
}

#[test]
fn nodes_explain_the_match() {
    let (p, q) = (t("a.{x}.c"), t("a.b.d"));
    let r = match_topics(&p, &q);
    assert!(!r.matched());
    let got: Vec<(bool, &str)> = r.nodes().iter().map(|n| (n.matched, n.literal)).collect();
    assert_eq!(got, [(true, "a"), (true, "b"), (false, "c")]);
    assert!(r.captures().is_empty(), "no captures without a match");

    let (p, q) = (t("a.**.c"), t("a.b.b2.c"));
    let r = match_topics(&p, &q);
    assert!(r.matched());
    let got: Vec<&str> = r.nodes().iter().map(|n| n.literal).collect();
    assert_eq!(got, ["a", "b", "b2", "c"]);
    assert_eq!(r.nodes()[1].a, Some(&Part::Rest));

    // Length mismatch: a final node with one side missing.
    let (p, q) = (t("a.b"), t("a.b.c"));
    let r = match_topics(&p, &q);
    let last = r.nodes().last().unwrap();
    assert!(!last.matched && last.a.is_none() && last.b == Some(&Part::Exact("c".into())));
}

// -------------------------------------------- differences from PyEventEngine

#[test]
fn difference_empty_parts_are_errors() {
    assert_eq!(Topic::parse("a..b").unwrap_err().kind(), "empty_part");
}

#[test]
fn difference_invalid_regex_is_a_parse_error() {
    assert_eq!(Topic::parse("a./[/").unwrap_err().kind(), "invalid_regex");
}

#[test]
fn difference_rust_regex_dialect() {
    yes!(r"/^\d+$/", "123");
    no!(r"/^\d+$/", "d");
}

#[test]
fn difference_range_with_no_options_is_an_error() {
    assert_eq!(Topic::parse("a.()").unwrap_err().kind(), "empty_range");
}

#[test]
fn difference_format_with_empty_or_dotted_value_fails() {
    let p = t("a.{x}");
    assert_eq!(p.format([("x", "")]).unwrap_err().kind(), "invalid_value");
    assert_eq!(
        p.format([("x", "b.c")]).unwrap_err().kind(),
        "invalid_value"
    );
}

#[test]
fn difference_matching_never_fails() {
    // Odd but valid inputs on both sides never panic.
    for a in ["**", "{x}", "//", "(a)", "a.**.**", "+x.+x"] {
        for b in ["**", "x", "a.b.c", "//", "{y}.{y}"] {
            let _ = matches(&t(a), &t(b));
            let _ = match_topics(&t(a), &t(b)).nodes().len();
        }
    }
}

// ------------------------------------------------------ subscription index

#[test]
fn index_insert_query_remove() {
    let mut index = SubscriptionIndex::new();
    assert!(index.insert(&t("md.{v}.AAPL"), 1));
    assert!(index.insert(&t("md.XNAS.(AAPL|MSFT)"), 2));
    assert!(index.insert(&t("md.**"), 3));
    assert!(index.insert(&t("md./^X/.AAPL"), 4));
    assert!(index.insert(&t("md.XNAS.AAPL"), 5));
    assert!(!index.insert(&t("md.XNAS.AAPL"), 5), "same pair twice");
    assert!(
        index.insert(&t("md.XNAS.AAPL"), 6),
        "same pattern, other id"
    );
    assert_eq!(index.len(), 6);
    assert_eq!(index.query(&t("md.XNAS.AAPL")), [1, 2, 3, 4, 5, 6]);
    assert_eq!(index.query(&t("md.BATS.AAPL")), [1, 3]);
    assert_eq!(index.query(&t("md")), [3]);
    assert!(index.query(&t("other")).is_empty());

    assert!(index.remove(&t("md.**"), 3));
    assert!(!index.remove(&t("md.**"), 3));
    assert!(!index.remove(&t("never.registered"), 1));
    assert_eq!(index.query(&t("md.XNAS.AAPL")), [1, 2, 4, 5, 6]);
    assert!(index.remove(&t("md.XNAS.AAPL"), 5));
    assert_eq!(index.query(&t("md.XNAS.AAPL")), [1, 2, 4, 6]);
    assert_eq!(index.len(), 4);
    assert_eq!(index.iter().count(), 4);
    index.clear();
    assert!(index.is_empty());
    assert!(index.query(&t("md.XNAS.AAPL")).is_empty());
}

#[test]
fn index_deduplicates_ids_reached_twice() {
    let mut index = SubscriptionIndex::new();
    index.insert(&t("**.x.**"), 7u8);
    index.insert(&t("a.{b}"), 7);
    assert_eq!(index.query(&t("x.x.x")), [7]);
    assert_eq!(index.query(&t("a.x")), [7]);
}

#[test]
fn index_shares_and_prunes_range_nodes() {
    let mut index = SubscriptionIndex::new();
    index.insert(&t("(a|b).x"), 1u32);
    index.insert(&t("(b|c).x"), 2);
    index.insert(&t("(a|b).y"), 3);
    assert_eq!(index.query(&t("b.x")), [1, 2]);
    assert_eq!(index.query(&t("a.y")), [3]);
    index.remove(&t("(a|b).x"), 1);
    index.remove(&t("(a|b).y"), 3);
    assert!(index.query(&t("a.x")).is_empty());
    assert_eq!(index.query(&t("b.x")), [2]);
    index.insert(&t("(a|b).x"), 1);
    assert_eq!(index.query(&t("a.x")), [1]);
}

#[test]
fn index_query_with_a_pattern_uses_the_symmetric_rule() {
    let mut index = SubscriptionIndex::new();
    index.insert(&t("md.XNAS.AAPL"), 1u32);
    index.insert(&t("md.{v}.MSFT"), 2);
    assert_eq!(index.query(&t("md.{x}.AAPL")), [1]);
    assert_eq!(index.query_parts_into_vec(&["md", "X", "MSFT"]), [2]);
}

trait QueryParts {
    fn query_parts_into_vec(&self, parts: &[&str]) -> Vec<u32>;
}

impl QueryParts for SubscriptionIndex<u32> {
    fn query_parts_into_vec(&self, parts: &[&str]) -> Vec<u32> {
        let mut out = vec![99];
        self.query_parts_into(parts, &mut out);
        out
    }
}

// ------------------------------------------------------------ topic table

#[test]
fn local_topic_table_interns_once() {
    let table = LocalTopicTable::with_capacity(2);
    let a = table.intern(&t("a.b")).unwrap();
    assert_eq!(table.intern(&t("a.b")).unwrap(), a);
    let b = table.intern(&t("a.c")).unwrap();
    assert_ne!(a, b);
    assert_eq!(table.literal(a), Some("a.b"));
    assert_eq!(table.id_of("a.c"), Some(b));
    assert_eq!(table.id_of("zz"), None);
    assert_eq!(table.literal(TopicId(9)), None);
    assert_eq!(table.len(), 2);
    assert_eq!(
        table.intern(&t("a.d")).unwrap_err().to_string(),
        "topic table full (2 topics): create the bus with a larger max-topics"
    );
    assert!(
        table
            .intern(&t("a.{x}"))
            .unwrap_err()
            .to_string()
            .contains("pattern")
    );
    assert_eq!(table.len(), 2, "failed interns change nothing");
}

#[test]
fn local_topic_table_is_consistent_across_threads() {
    let table = LocalTopicTable::with_capacity(64);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for i in 0..32 {
                    let id = table.intern(&t(&format!("x.{i}"))).unwrap();
                    assert_eq!(table.literal(id), Some(format!("x.{i}").as_str()));
                }
            });
        }
    });
    assert_eq!(table.len(), 32);
}
