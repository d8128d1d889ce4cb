//! The shm-bus topic language.
//!
//! **What this crate is:** topics and patterns as plain values — parse
//! ([`Topic::parse`]), match with captures ([`matches()`],
//! [`match_topics`]), format ([`Topic::format`]), route many patterns at
//! once ([`SubscriptionIndex`]), and the [`TopicTable`] interface for
//! interning exact topics to dense [`TopicId`]s (with an in-process
//! [`LocalTopicTable`]).
//!
//! **What it is not:** it knows nothing of shared memory, segments,
//! buses, rings, processes or delivery. Every type here lives on the
//! ordinary heap of one process; the bus's shared-memory topic table is an
//! implementation of [`TopicTable`] in `shm-bus-core`, built on
//! `shm-bus-alloc`'s map. The crate has no `unsafe` code.
//!
//! **Where to start reading:** `topic.rs` ([`Topic`]: parsing, the
//! literal, formatting), then `part.rs` ([`Part`] and the tokenizer),
//! `matching.rs` (the matching rules and the search behind
//! [`match_topics`]), `index.rs` (the trie of [`SubscriptionIndex`]),
//! `table.rs` (interning) and `error.rs`.
//!
//! Messages on a bus are addressed by **topics**; subscribers select them
//! with **patterns**. Both are written in one language, compatible with
//! PyEventEngine's topics wherever that library's behaviour is well defined.
//!
//! # Syntax
//!
//! A topic is a non-empty sequence of **parts** separated by `.`.
//!
//! | part    | written                 | matches                                        |
//! |---------|-------------------------|------------------------------------------------|
//! | exact   | any other token         | the same bytes                                 |
//! | any     | `{name}` or `+name`     | exactly one part, captured as `name`           |
//! | range   | `(opt1\|opt2\|…)`        | one part equal to one option                   |
//! | pattern | `/regex/`               | one part the regex finds a match in (unanchored; anchor with `^…$`) |
//! | rest    | `**`                    | zero or more parts (an extension)              |
//!
//! - `{x` / `x}` / `{}` / a lone `+` are exact parts; a range must be the
//!   whole token; empty range options are dropped.
//! - A pattern opens at a `/` that starts the topic or follows `.`, and
//!   closes at the first `/` followed by `.` or by the end; the regex may
//!   contain `.` and `/` but not `/.`. It is compiled once, when parsed,
//!   with the syntax of Rust's [`regex`] crate.
//! - The **literal** of a topic is its canonical text (`+x` is written
//!   `{x}`, empty range options dropped); parsing a literal gives back the
//!   same parts. Topics compare and hash by literal.
//! - A topic is **exact** when every part is exact; only exact topics can
//!   be published.
//!
//! Invalid topics give a [`TopicError`] with the byte position: empty topic,
//! empty part (`a..b`, `.a`, `a.`), unclosed pattern (`/a`, `a./b`), a regex
//! that does not compile, a range with no options (`()`).
//!
//! ```
//! use shm_bus_topic::{Topic, TopicError};
//! assert_eq!(Topic::parse("a..b").unwrap_err(), TopicError::EmptyPart { position: 2 });
//! assert_eq!(Topic::parse("a./b").unwrap_err(), TopicError::UnclosedPattern { position: 2 });
//! assert_eq!(Topic::parse("(|)").unwrap_err(), TopicError::EmptyRange { position: 0 });
//! assert_eq!(Topic::parse("+x.(a||b)")?.as_str(), "{x}.(a|b)");
//! assert_eq!(Topic::parse("/v\\d.\\d/.x")?.len(), 2); // a regex may contain `.`
//! # Ok::<(), TopicError>(())
//! ```
//!
//! # Matching
//!
//! [`matches()`] / [`match_topics`] are symmetric: either side may be the
//! pattern. Equal literals match; otherwise parts are compared pairwise,
//! at least one side of each pair must be exact (two non-exact parts never
//! match each other), `**` on either side absorbs zero or more exact parts
//! of the other, and the lengths must agree after absorption. A match
//! yields **captures** (wildcard name → the exact text); when a name
//! appears twice the last one wins.
//!
//! # Formatting
//!
//! [`Topic::format`] / [`Topic::format_map`] replace `{name}` parts by exact
//! parts. A value must be non-empty, contain no `.`, and read back as an
//! exact part; a missing name is an error when strict and stays `{name}`
//! otherwise; a range, pattern or rest part makes formatting fail.
//!
//! # Differences from PyEventEngine, on purpose
//!
//! - Empty parts are errors (PyEventEngine drops them but keeps them in
//!   the literal).
//! - An invalid regex is a parse error (PyEventEngine never matches it).
//! - Regex dialect is Rust `regex` (`\d` is a digit), not POSIX ERE.
//! - A range with no options is an error.
//! - Formatting with an empty value, or one containing `.`, is an error.
//! - Matching never fails or panics.
//! - Formatting never changes what other topics mean (topics are values,
//!   not entries of a global interning map).
//!
//! # Routing many patterns
//!
//! [`SubscriptionIndex`] holds many patterns with caller-chosen ids and
//! answers which of them match an exact topic with a walk of a trie over
//! parts, so its cost does not grow with patterns that cannot match.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod index;
mod matching;
mod part;
mod table;
mod topic;

pub use error::{FormatError, TopicError};
pub use index::SubscriptionIndex;
pub use matching::{MatchNode, MatchResult, match_topics, matches};
pub use part::{Part, PartKind, Pattern};
pub use table::{InternError, LocalTopicTable, TopicId, TopicTable};
pub use topic::Topic;

impl Topic {
    /// Whether `self` and `other` match (symmetric); see [`matches()`].
    #[inline]
    pub fn matches(&self, other: &Topic) -> bool {
        matches(self, other)
    }

    /// Matches and explains; see [`match_topics`].
    pub fn match_with<'a>(&'a self, other: &'a Topic) -> MatchResult<'a> {
        match_topics(self, other)
    }
}
