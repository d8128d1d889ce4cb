//! One part of a topic, and the tokenizer that reads parts from text.

use std::fmt;
use std::hash::{Hash, Hasher};

use regex::Regex;

use crate::error::TopicError;

/// The kind of a [`Part`], without its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartKind {
    /// Matches the same bytes.
    Exact,
    /// `{name}` / `+name`: exactly one part, captured.
    Any,
    /// `(a|b)`: one part equal to one option.
    Range,
    /// `/regex/`: one part in which the regex finds a match.
    Pattern,
    /// `**`: zero or more parts.
    Rest,
}

impl PartKind {
    /// The kind's name as used in JSON output: `exact`, `any`, `range`,
    /// `pattern` or `rest`.
    pub fn as_str(self) -> &'static str {
        match self {
            PartKind::Exact => "exact",
            PartKind::Any => "any",
            PartKind::Range => "range",
            PartKind::Pattern => "pattern",
            PartKind::Rest => "rest",
        }
    }
}

/// A compiled `/regex/` part. Compiled once, when the part is made;
/// equality and hashing use the regex source.
#[derive(Clone)]
pub struct Pattern {
    regex: Regex,
}

impl Pattern {
    /// Compiles `source` with Rust's `regex` syntax.
    ///
    /// # Errors
    /// [`regex::Error`] when the regex does not compile.
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        Ok(Pattern {
            regex: Regex::new(source)?,
        })
    }

    /// The regex source, as written between the slashes.
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    /// The compiled regex.
    pub fn regex(&self) -> &Regex {
        &self.regex
    }

    /// Whether the regex finds a match anywhere in `text` (unanchored).
    #[inline]
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl Hash for Pattern {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.as_str())
    }
}

/// One part of a topic.
///
/// Parts made by the constructors ([`Part::exact`], [`Part::any`],
/// [`Part::range`], [`Part::pattern`]) are checked: each reads back from its
/// own literal as the same part, so a topic built from parts has a literal
/// that parses back to the same parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    /// Matches the same bytes.
    Exact(Box<str>),
    /// `{name}` or `+name`: exactly one part, captured as `name`.
    Any(Box<str>),
    /// `(a|b|…)`: one part equal to one of the options (never empty).
    Range(Box<[Box<str>]>),
    /// `/regex/`: one part the regex finds a match in.
    Pattern(Pattern),
    /// `**`: zero or more parts (an extension over PyEventEngine).
    Rest,
}

impl Part {
    /// An exact part. Fails when `text` is empty, contains `.`, or would be
    /// read back as another kind of part (such as `{x}`, `+x`, `(a|b)`,
    /// `/re/` or `**`).
    ///
    /// # Errors
    /// [`TopicError::EmptyPart`] or [`TopicError::NotAPart`].
    pub fn exact(text: &str) -> Result<Part, TopicError> {
        Part::Exact(text.into()).checked()
    }

    /// A wildcard `{name}`. Fails when `name` is empty or contains `.`.
    ///
    /// # Errors
    /// [`TopicError::NotAPart`].
    pub fn any(name: &str) -> Result<Part, TopicError> {
        if name.is_empty() {
            return Err(TopicError::NotAPart {
                position: 0,
                text: String::new(),
                reason: "a wildcard needs a non-empty name",
            });
        }
        Part::Any(name.into()).checked()
    }

    /// A range `(a|b|…)`. Empty options are dropped; none left is an error,
    /// and so is an option containing `.` or `|`.
    ///
    /// # Errors
    /// [`TopicError::EmptyRange`] or [`TopicError::NotAPart`].
    pub fn range<I, S>(options: I) -> Result<Part, TopicError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let options: Vec<Box<str>> = options
            .into_iter()
            .filter(|o| !o.as_ref().is_empty())
            .map(|o| o.as_ref().into())
            .collect();
        if options.is_empty() {
            return Err(TopicError::EmptyRange { position: 0 });
        }
        if let Some(bad) = options.iter().find(|o| o.contains(['|', '.'])) {
            return Err(TopicError::NotAPart {
                position: 0,
                text: bad.to_string(),
                reason: "a range option cannot contain `|` or `.`",
            });
        }
        Part::Range(options.into()).checked()
    }

    /// A `/regex/` part, compiled now.
    ///
    /// # Errors
    /// [`TopicError::InvalidRegex`] when it does not compile, and
    /// [`TopicError::NotAPart`] when it contains `/.` (which would end the
    /// part early when read back).
    pub fn pattern(regex: &str) -> Result<Part, TopicError> {
        let compiled = Pattern::new(regex).map_err(|e| TopicError::InvalidRegex {
            position: 0,
            regex: regex.to_owned(),
            reason: e.to_string(),
        })?;
        Part::Pattern(compiled).checked()
    }

    /// The rest part `**`.
    pub fn rest() -> Part {
        Part::Rest
    }

    /// Checks that the part reads back from its literal as itself.
    fn checked(self) -> Result<Part, TopicError> {
        let literal = self.to_string();
        match parse_parts(&literal) {
            Ok(parts) if parts.len() == 1 && parts[0] == self => Ok(self),
            Ok(parts) => Err(TopicError::NotAPart {
                position: 0,
                text: self.text_for_error(),
                reason: if parts.len() != 1 {
                    "a part cannot contain `.` (it would read as several parts)"
                } else {
                    match parts[0].kind() {
                        PartKind::Exact => "it would read back as a different exact part",
                        PartKind::Any => "it would read back as a `{name}` wildcard",
                        PartKind::Range => "it would read back as a `(a|b)` range",
                        PartKind::Pattern => "it would read back as a `/regex/` pattern",
                        PartKind::Rest => "it would read back as the `**` rest part",
                    }
                },
            }),
            Err(TopicError::EmptyPart { .. } | TopicError::Empty) if matches!(&self, Part::Exact(t) if t.is_empty()) => {
                Err(TopicError::EmptyPart { position: 0 })
            }
            Err(e) => Err(TopicError::NotAPart {
                position: e.position(),
                text: self.text_for_error(),
                reason: match e {
                    TopicError::EmptyPart { .. } | TopicError::Empty => {
                        "a part cannot contain `.` next to an empty part"
                    }
                    TopicError::UnclosedPattern { .. } => {
                        "it would read back as an unclosed `/regex/` pattern"
                    }
                    TopicError::EmptyRange { .. } => "it would read back as an empty range `()`",
                    _ => "it does not read back as a part",
                },
            }),
        }
    }

    fn text_for_error(&self) -> String {
        match self {
            Part::Exact(t) | Part::Any(t) => t.to_string(),
            Part::Pattern(p) => p.as_str().to_owned(),
            _ => self.to_string(),
        }
    }

    /// The part's kind.
    pub fn kind(&self) -> PartKind {
        match self {
            Part::Exact(_) => PartKind::Exact,
            Part::Any(_) => PartKind::Any,
            Part::Range(_) => PartKind::Range,
            Part::Pattern(_) => PartKind::Pattern,
            Part::Rest => PartKind::Rest,
        }
    }

    /// Whether this is an exact part.
    #[inline]
    pub fn is_exact(&self) -> bool {
        matches!(self, Part::Exact(_))
    }

    /// The text of an exact part.
    #[inline]
    pub fn as_exact(&self) -> Option<&str> {
        match self {
            Part::Exact(t) => Some(t),
            _ => None,
        }
    }

    /// Whether this part, on its own, matches the exact part `text`.
    /// [`Part::Rest`] answers `true` (it absorbs any exact part).
    #[inline]
    pub fn accepts(&self, text: &str) -> bool {
        match self {
            Part::Exact(t) => **t == *text,
            Part::Any(_) | Part::Rest => true,
            Part::Range(options) => options.iter().any(|o| **o == *text),
            Part::Pattern(p) => p.is_match(text),
        }
    }
}

impl fmt::Display for Part {
    /// The part's canonical literal: `text`, `{name}`, `(a|b)`, `/re/`, `**`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Exact(t) => f.write_str(t),
            Part::Any(name) => write!(f, "{{{name}}}"),
            Part::Range(options) => {
                f.write_str("(")?;
                for (i, o) in options.iter().enumerate() {
                    if i > 0 {
                        f.write_str("|")?;
                    }
                    f.write_str(o)?;
                }
                f.write_str(")")
            }
            Part::Pattern(p) => write!(f, "/{}/", p.as_str()),
            Part::Rest => f.write_str("**"),
        }
    }
}

/// Reads `text` into parts, as TOPICS.md's grammar says.
pub(crate) fn parse_parts(text: &str) -> Result<Vec<Part>, TopicError> {
    if text.is_empty() {
        return Err(TopicError::Empty);
    }
    let bytes = text.as_bytes();
    let mut parts = Vec::with_capacity(4);
    let mut start = 0;
    loop {
        let end; // byte index one past the part
        if bytes.get(start) == Some(&b'/') {
            // A pattern closes at the first `/` followed by `.` or the end.
            let close = (start + 1..bytes.len())
                .find(|&j| bytes[j] == b'/' && (j + 1 == bytes.len() || bytes[j + 1] == b'.'))
                .ok_or(TopicError::UnclosedPattern { position: start })?;
            let source = &text[start + 1..close];
            let pattern = Pattern::new(source).map_err(|e| TopicError::InvalidRegex {
                position: start,
                regex: source.to_owned(),
                reason: e.to_string(),
            })?;
            parts.push(Part::Pattern(pattern));
            end = close + 1;
        } else {
            end = memchr_dot(bytes, start).unwrap_or(bytes.len());
            if end == start {
                return Err(TopicError::EmptyPart { position: start });
            }
            parts.push(classify(&text[start..end], start)?);
        }
        if end == bytes.len() {
            return Ok(parts);
        }
        // bytes[end] is `.`; the next part starts after it and must exist.
        start = end + 1;
        if start == bytes.len() {
            return Err(TopicError::EmptyPart { position: start });
        }
    }
}

#[inline]
fn memchr_dot(bytes: &[u8], from: usize) -> Option<usize> {
    bytes[from..]
        .iter()
        .position(|&b| b == b'.')
        .map(|i| i + from)
}

/// Classifies one non-pattern token.
fn classify(token: &str, position: usize) -> Result<Part, TopicError> {
    let b = token.as_bytes();
    let n = b.len();
    if token == "**" {
        Ok(Part::Rest)
    } else if n > 2 && b[0] == b'{' && b[n - 1] == b'}' {
        Ok(Part::Any(token[1..n - 1].into()))
    } else if n > 1 && b[0] == b'+' {
        Ok(Part::Any(token[1..].into()))
    } else if n >= 2 && b[0] == b'(' && b[n - 1] == b')' {
        let options: Box<[Box<str>]> = token[1..n - 1]
            .split('|')
            .filter(|o| !o.is_empty())
            .map(Box::from)
            .collect();
        if options.is_empty() {
            Err(TopicError::EmptyRange { position })
        } else {
            Ok(Part::Range(options))
        }
    } else {
        Ok(Part::Exact(token.into()))
    }
}
