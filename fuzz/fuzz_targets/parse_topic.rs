//! Fuzzes the topic parser with a round-trip property: whatever parses
//! has a literal that parses back to the same parts, matches itself, and
//! matches symmetrically. Nothing may panic.
//!
//! Run: `cargo +nightly fuzz run parse_topic` (from the repository root).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shm_bus_topic::{SubscriptionIndex, Topic, matches};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Split the input into a topic and a second topic to match against.
    let (first, second) = text.split_once('\n').unwrap_or((text, "a.b.c"));
    let Ok(topic) = Topic::parse(first) else {
        return;
    };
    let again = Topic::parse(topic.as_str()).expect("a literal always parses");
    assert_eq!(again.parts(), topic.parts(), "literal round-trips");
    assert_eq!(again.as_str(), topic.as_str());
    assert!(matches(&topic, &topic), "a topic matches itself");
    let _ = topic.format([("x", "1")]);
    if let Ok(other) = Topic::parse(second) {
        let m = matches(&topic, &other);
        assert_eq!(m, matches(&other, &topic), "match is symmetric");
        assert_eq!(m, topic.match_with(&other).matched());
        if other.is_exact() {
            let mut index = SubscriptionIndex::new();
            index.insert(&topic, 0u8);
            assert_eq!(index.query(&other).contains(&0), m, "index agrees");
        }
    }
});
