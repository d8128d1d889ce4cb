//! Property tests: display → parse round-trips, match symmetry, and the
//! subscription index agreeing with the direct matcher.

use proptest::prelude::*;
use shm_bus_topic::{Part, SubscriptionIndex, Topic, matches};

/// Exact tokens from a small alphabet so that random patterns often match.
fn exact_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[abc]{1,2}",
        1 => "[a-z0-9_\\-{}()+*/|]{1,4}",
    ]
}

fn part() -> impl Strategy<Value = Part> {
    prop_oneof![
        6 => exact_text().prop_filter_map("reads as another kind", |s| Part::exact(&s).ok()),
        2 => "[xyz]{1,2}".prop_map(|n| Part::any(&n).unwrap()),
        2 => prop::collection::vec("[abc]{1,2}", 1..4).prop_map(|o| Part::range(o).unwrap()),
        1 => prop::sample::select(vec!["^a", "b$", "a|c", "^[ab]+$", ".", "c.", "a/b", ""])
            .prop_map(|r| Part::pattern(r).unwrap()),
        1 => Just(Part::Rest),
    ]
}

fn topic() -> impl Strategy<Value = Topic> {
    prop::collection::vec(part(), 1..6).prop_map(|p| Topic::from_parts(p).unwrap())
}

fn exact_topic() -> impl Strategy<Value = Topic> {
    prop::collection::vec("[abc]{1,2}", 1..6).prop_map(|p| Topic::join(p).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn display_parse_round_trips(topic in topic()) {
        let again = Topic::parse(topic.as_str()).unwrap();
        prop_assert_eq!(again.parts(), topic.parts());
        prop_assert_eq!(again.as_str(), topic.as_str());
    }

    #[test]
    fn parse_never_panics_and_accepted_text_round_trips(text in "[a-c.{}()|+*/\\\\^$]{0,12}") {
        if let Ok(topic) = Topic::parse(&text) {
            let again = Topic::parse(topic.as_str()).unwrap();
            prop_assert_eq!(again.parts(), topic.parts());
        }
    }

    #[test]
    fn match_is_symmetric(a in topic(), b in topic()) {
        prop_assert_eq!(matches(&a, &b), matches(&b, &a));
        prop_assert_eq!(a.match_with(&b).matched(), matches(&a, &b));
        prop_assert_eq!(b.match_with(&a).matched(), matches(&a, &b));
    }

    #[test]
    fn match_with_exact_is_symmetric(a in topic(), b in exact_topic()) {
        let m = matches(&a, &b);
        prop_assert_eq!(m, matches(&b, &a));
        prop_assert_eq!(a.match_with(&b).matched(), m);
        // A match with an exact topic captures exactly the wildcard names.
        if m {
            let r = a.match_with(&b);
            let mut names: Vec<&str> = a.wildcard_names().collect();
            names.sort_unstable();
            names.dedup();
            let captured: Vec<&str> = r.captures_map().keys().copied().collect();
            prop_assert_eq!(captured, names);
        }
    }

    #[test]
    fn index_agrees_with_matcher(
        patterns in prop::collection::vec(topic(), 0..40),
        queries in prop::collection::vec(exact_topic(), 1..20),
        removed in prop::collection::vec(any::<bool>(), 40),
    ) {
        let mut index = SubscriptionIndex::new();
        for (i, p) in patterns.iter().enumerate() {
            index.insert(p, i);
        }
        for (i, p) in patterns.iter().enumerate() {
            if removed[i] {
                prop_assert!(index.remove(p, i));
            }
        }
        for q in &queries {
            let want: Vec<usize> = patterns
                .iter()
                .enumerate()
                .filter(|(i, p)| !removed[*i] && matches(p, q))
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(index.query(q), want, "query {}", q);
        }
    }
}
