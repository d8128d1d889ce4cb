//! Topic ↔ Zenoh key expression.
//!
//! # The mapping
//!
//! | topic | key expression |
//! |---|---|
//! | part separator `.` | chunk separator `/` |
//! | exact part | the same text, with `%`, `/`, `*`, `$`, `?`, `#` percent-escaped (`%25`, `%2F`, `%2A`, `%24`, `%3F`, `%23`), and a leading `@` escaped as `%40` (Zenoh reads a chunk starting with `@` as *verbatim*: no wildcard matches it) |
//! | `{name}`, `+name`, `(a\|b)`, `/regex/` | `*` (Zenoh filters coarsely; the bridge filters precisely with the topic language on arrival) |
//! | `**` | `**` |
//!
//! Everything else, non-ASCII text included, passes through unchanged:
//! Zenoh keys are UTF-8. So `md.XNAS.AAPL` ↔ `md/XNAS/AAPL`,
//! `a.b*c.ünï` ↔ `a/b%2Ac/ünï`, `md.{venue}.(AAPL|MSFT).**` → `md/*/*/**`.
//!
//! Every exact topic maps to exactly one key, and decoding that key gives
//! the topic back ([`key_to_topic`]). The reverse is partial: a key put by
//! another Zenoh application may not be a topic (a chunk holding `.`, a
//! malformed escape, a chunk that reads as a pattern such as `{x}`); the
//! bridge refuses those with a [`MapError`] and counts them, it never
//! guesses.

use shm_bus_topic::{Part, Topic, TopicError};
use zenoh::key_expr::OwnedKeyExpr;

/// Why a topic or a key cannot be carried across.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapError {
    /// The text is not a topic of the topic language.
    #[error("`{text}` is not a valid topic: {source}")]
    InvalidTopic {
        /// The text.
        text: String,
        /// What the parser said.
        source: TopicError,
    },
    /// A topic that must be exact (published, or arriving from Zenoh) is
    /// a pattern.
    #[error("`{topic}` is a pattern, not an exact topic")]
    NotExact {
        /// The topic.
        topic: String,
    },
    /// The key's chunk cannot be a topic part (it holds `.`, or a `%` not
    /// followed by two hex digits, or escapes that do not decode to UTF-8).
    #[error("key `{key}` is not a topic: chunk `{chunk}` {why}")]
    BadChunk {
        /// The whole key.
        key: String,
        /// The offending chunk.
        chunk: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A key holds wildcards where an exact topic is expected.
    #[error("key `{key}` has wildcards: only concrete keys carry events")]
    WildKey {
        /// The key.
        key: String,
    },
    /// Zenoh refused the key built from a topic (a bug in this mapping if
    /// it ever happens; reported, never ignored).
    #[error("Zenoh refuses key `{key}` built from topic `{topic}`: {reason}")]
    Refused {
        /// The topic.
        topic: String,
        /// The key.
        key: String,
        /// Zenoh's reason.
        reason: String,
    },
}

/// Escapes one exact part into one key chunk.
fn escape_part(part: &str, out: &mut String) {
    for (i, c) in part.char_indices() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '*' => out.push_str("%2A"),
            '$' => out.push_str("%24"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            '@' if i == 0 => out.push_str("%40"),
            c => out.push(c),
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one key chunk into the text of one topic part.
fn unescape_chunk(key: &str, chunk: &str) -> Result<String, MapError> {
    let bad = |why| MapError::BadChunk {
        key: key.to_owned(),
        chunk: chunk.to_owned(),
        why,
    };
    if chunk.contains('.') {
        return Err(bad("holds `.`, the topic part separator"));
    }
    if !chunk.contains('%') {
        return Ok(chunk.to_owned());
    }
    let bytes = chunk.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex);
            let lo = bytes.get(i + 2).copied().and_then(hex);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(bad("has a `%` not followed by two hex digits")),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).map_err(|_| bad("has escapes that are not UTF-8"))?;
    if text.contains('.') {
        return Err(bad("decodes to text holding `.`"));
    }
    Ok(text)
}

fn refuse(topic: &Topic, key: String, e: impl std::fmt::Display) -> MapError {
    MapError::Refused {
        topic: topic.as_str().to_owned(),
        key,
        reason: e.to_string(),
    }
}

/// The key expression of an exact topic, as the exporting bridge puts it.
///
/// # Errors
/// [`MapError::NotExact`] for a pattern; [`MapError::Refused`] if Zenoh
/// refuses the key (not expected for any exact topic).
pub fn topic_to_key(topic: &Topic) -> Result<OwnedKeyExpr, MapError> {
    if !topic.is_exact() {
        return Err(MapError::NotExact {
            topic: topic.as_str().to_owned(),
        });
    }
    let mut key = String::with_capacity(topic.as_str().len() + 8);
    for (i, part) in topic.iter().enumerate() {
        if i > 0 {
            key.push('/');
        }
        // Exact (checked above).
        escape_part(part.as_exact().unwrap_or_default(), &mut key);
    }
    OwnedKeyExpr::new(key.clone()).map_err(|e| refuse(topic, key, e))
}

/// The key expression a pattern subscribes to on Zenoh: exact parts
/// escaped, every other part `*`, `**` kept; then made canonical
/// (`**/**` → `**`, `**/*` → `*/**`). It matches every key of every topic
/// the pattern matches, and possibly more: the bridge filters precisely
/// on arrival.
///
/// # Errors
/// [`MapError::Refused`] if Zenoh refuses the key (not expected).
pub fn pattern_to_key(pattern: &Topic) -> Result<OwnedKeyExpr, MapError> {
    let mut key = String::with_capacity(pattern.as_str().len() + 8);
    for (i, part) in pattern.iter().enumerate() {
        if i > 0 {
            key.push('/');
        }
        match part {
            Part::Rest => key.push_str("**"),
            p => match p.as_exact() {
                Some(text) => escape_part(text, &mut key),
                None => key.push('*'),
            },
        }
    }
    OwnedKeyExpr::autocanonize(key.clone()).map_err(|e| refuse(pattern, key, e))
}

/// The exact topic a concrete key carries (the inverse of
/// [`topic_to_key`]).
///
/// # Errors
/// [`MapError::WildKey`], [`MapError::BadChunk`],
/// [`MapError::InvalidTopic`] (e.g. a chunk that decodes to an empty
/// part), [`MapError::NotExact`] (a chunk that reads as a pattern part,
/// such as `{x}` or `(a|b)`, put by another Zenoh application).
pub fn key_to_topic(key: &str) -> Result<Topic, MapError> {
    let mut text = String::with_capacity(key.len());
    for (i, chunk) in key.split('/').enumerate() {
        if chunk.contains('*') || chunk.contains('$') {
            return Err(MapError::WildKey {
                key: key.to_owned(),
            });
        }
        if i > 0 {
            text.push('.');
        }
        text.push_str(&unescape_chunk(key, chunk)?);
    }
    let topic = Topic::parse(&text).map_err(|source| MapError::InvalidTopic {
        text: text.clone(),
        source,
    })?;
    if !topic.is_exact() {
        return Err(MapError::NotExact { topic: text });
    }
    Ok(topic)
}

/// Parses a pattern given on the command line.
///
/// # Errors
/// [`MapError::InvalidTopic`].
pub fn parse_pattern(text: &str) -> Result<Topic, MapError> {
    Topic::parse(text).map_err(|source| MapError::InvalidTopic {
        text: text.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zenoh::key_expr::keyexpr;

    fn t(s: &str) -> Topic {
        Topic::parse(s).unwrap()
    }

    /// (topic, key): both directions.
    const EXACT: &[(&str, &str)] = &[
        ("md.XNAS.AAPL", "md/XNAS/AAPL"),
        ("a", "a"),
        ("a.b*c.d", "a/b%2Ac/d"),
        ("x.$y.q?.h#", "x/%24y/q%3F/h%23"),
        ("x.**z", "x/%2A%2Az"),
        ("a.b/c", "a/b%2Fc"),
        ("a.100%", "a/100%25"),
        ("a.%2A", "a/%252A"),
        ("a.@admin.x@y", "a/%40admin/x@y"),
        ("ünï.日本.😀", "ünï/日本/😀"),
        ("a.{x.b", "a/{x/b"),
        ("a.+", "a/+"),
    ];

    #[test]
    fn exact_topics_round_trip() {
        for (topic, key) in EXACT {
            let k = topic_to_key(&t(topic)).unwrap();
            assert_eq!(k.as_str(), *key, "topic {topic}");
            assert_eq!(key_to_topic(k.as_str()).unwrap().as_str(), *topic);
        }
    }

    #[test]
    fn patterns_map_coarsely_and_cover_their_topics() {
        let cases: &[(&str, &str)] = &[
            ("md.{venue}.(AAPL|MSFT).trade", "md/*/*/trade"),
            ("md./^X/.**", "md/*/**"),
            ("**", "**"),
            ("a.**.**", "a/**"),
            ("a.**.{x}", "a/*/**"),
            ("a*.+k", "a%2A/*"),
            ("ü.**", "ü/**"),
        ];
        for (pattern, key) in cases {
            assert_eq!(pattern_to_key(&t(pattern)).unwrap().as_str(), *key);
        }
        // Every topic a pattern matches has a key its key expression
        // includes (Zenoh never filters out what the bridge would keep).
        let pairs = [
            ("md.{venue}.(AAPL|MSFT).trade", "md.XNAS.AAPL.trade"),
            ("md./^X/.**", "md.XNAS"),
            ("md./^X/.**", "md.X*.a.b"),
            ("a.**", "a"),
            ("a*.+k", "a*.@q"),
            ("**", "@x.y"),
        ];
        for (pattern, topic) in pairs {
            let p = t(pattern);
            assert!(p.matches(&t(topic)), "{pattern} ~ {topic}");
            let pk = pattern_to_key(&p).unwrap();
            let tk = topic_to_key(&t(topic)).unwrap();
            assert!(pk.includes(&tk), "{pk} includes {tk}");
        }
    }

    #[test]
    fn foreign_keys_that_are_not_topics_are_refused() {
        for key in [
            "a/b.c", "a/%zz", "a/%2", "a/%2E", "a/%FF", "a/{x}", "a/(p|q)",
        ] {
            let e = key_to_topic(key).unwrap_err();
            assert!(
                matches!(
                    e,
                    MapError::BadChunk { .. }
                        | MapError::NotExact { .. }
                        | MapError::InvalidTopic { .. }
                ),
                "{key}: {e}"
            );
        }
        assert!(matches!(
            key_to_topic("a/*").unwrap_err(),
            MapError::WildKey { .. }
        ));
        // Keys Zenoh accepts but that read as a pattern part.
        assert!(keyexpr::new("a/{x}").is_ok());
    }

    #[test]
    fn exact_topic_required_for_export() {
        assert!(matches!(
            topic_to_key(&t("a.{x}")).unwrap_err(),
            MapError::NotExact { .. }
        ));
    }
}
