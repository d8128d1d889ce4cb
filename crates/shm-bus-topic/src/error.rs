//! Errors of parsing, building and formatting topics.

use std::fmt;

/// Why a topic (or a part given to a builder) is invalid.
///
/// Every variant carries the byte position in the text where the problem
/// starts, so a caller can point at it. [`TopicError::kind`] names the
/// variant in `snake_case` for machine-readable output.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic text is empty. A topic has at least one part.
    Empty,
    /// A part is empty: two dots in a row (`a..b`), a leading dot (`.a`) or
    /// a trailing dot (`a.`).
    EmptyPart {
        /// Byte position of the empty part.
        position: usize,
    },
    /// A `/regex/` part opened but never closed: a pattern closes at the
    /// first `/` that is followed by `.` or ends the topic.
    UnclosedPattern {
        /// Byte position of the opening `/`.
        position: usize,
    },
    /// The regex of a `/regex/` part does not compile.
    InvalidRegex {
        /// Byte position of the opening `/`.
        position: usize,
        /// The regex source as written.
        regex: String,
        /// What the regex compiler said.
        reason: String,
    },
    /// A `(a|b)` range has no options once empty options are dropped.
    EmptyRange {
        /// Byte position of the range part.
        position: usize,
    },
    /// A builder was handed text that would not read back as the part it
    /// was meant to be (for example an exact part `{x}`, which reads as a
    /// wildcard, or a part containing `.`).
    NotAPart {
        /// Byte position inside the text given to the builder.
        position: usize,
        /// The text given.
        text: String,
        /// What the text would have been read as, or why it is no part.
        reason: &'static str,
    },
}

impl TopicError {
    /// The variant's name in `snake_case`, stable for scripts.
    pub fn kind(&self) -> &'static str {
        match self {
            TopicError::Empty => "empty_topic",
            TopicError::EmptyPart { .. } => "empty_part",
            TopicError::UnclosedPattern { .. } => "unclosed_pattern",
            TopicError::InvalidRegex { .. } => "invalid_regex",
            TopicError::EmptyRange { .. } => "empty_range",
            TopicError::NotAPart { .. } => "not_a_part",
        }
    }

    /// Byte position where the problem starts.
    pub fn position(&self) -> usize {
        match self {
            TopicError::Empty => 0,
            TopicError::EmptyPart { position }
            | TopicError::UnclosedPattern { position }
            | TopicError::InvalidRegex { position, .. }
            | TopicError::EmptyRange { position }
            | TopicError::NotAPart { position, .. } => *position,
        }
    }

    pub(crate) fn shifted(mut self, by: usize) -> Self {
        match &mut self {
            TopicError::Empty => {}
            TopicError::EmptyPart { position }
            | TopicError::UnclosedPattern { position }
            | TopicError::InvalidRegex { position, .. }
            | TopicError::EmptyRange { position }
            | TopicError::NotAPart { position, .. } => *position += by,
        }
        self
    }
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Empty => write!(
                f,
                "empty topic: a topic needs at least one part, e.g. `ticker.AAPL`"
            ),
            TopicError::EmptyPart { position } => write!(
                f,
                "empty part at byte {position}: parts are separated by single dots; \
                 remove the extra `.` (write `a.b`, not `a..b`, `.a` or `a.`)"
            ),
            TopicError::UnclosedPattern { position } => write!(
                f,
                "unclosed pattern at byte {position}: a `/regex/` part must end with `/` \
                 followed by `.` or the end of the topic (write `/^a+$/`)"
            ),
            TopicError::InvalidRegex {
                position,
                regex,
                reason,
            } => {
                let first = reason.lines().last().unwrap_or(reason).trim();
                write!(
                    f,
                    "invalid regex `{regex}` at byte {position}: {first} \
                     (syntax of Rust's `regex` crate)"
                )
            }
            TopicError::EmptyRange { position } => write!(
                f,
                "range with no options at byte {position}: write at least one option, \
                 e.g. `(bid|ask)`"
            ),
            TopicError::NotAPart {
                position,
                text,
                reason,
            } => write!(
                f,
                "`{text}` is not a valid part (byte {position}): {reason}"
            ),
        }
    }
}

impl std::error::Error for TopicError {}

/// Why [`Topic::format`](crate::Topic::format) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// Strict formatting and the mapping has no value for a wildcard.
    MissingValue {
        /// The wildcard's name.
        name: String,
    },
    /// A value is empty, contains `.`, or would not read back as an exact
    /// part (such as `**` or `{x}`).
    InvalidValue {
        /// The wildcard's name.
        name: String,
        /// The offending value.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The topic has a range, pattern or rest part, which cannot be
    /// formatted.
    NotFormattable {
        /// Index of the part.
        index: usize,
        /// The part's literal.
        part: String,
    },
}

impl FormatError {
    /// The variant's name in `snake_case`, stable for scripts.
    pub fn kind(&self) -> &'static str {
        match self {
            FormatError::MissingValue { .. } => "missing_value",
            FormatError::InvalidValue { .. } => "invalid_value",
            FormatError::NotFormattable { .. } => "not_formattable",
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::MissingValue { name } => write!(
                f,
                "no value for wildcard `{{{name}}}`: pass `{name}=VALUE`, or format non-strictly to keep it"
            ),
            FormatError::InvalidValue {
                name,
                value,
                reason,
            } => write!(f, "value `{value}` for `{{{name}}}` is invalid: {reason}"),
            FormatError::NotFormattable { index, part } => write!(
                f,
                "part {index} `{part}` cannot be formatted: only `{{name}}` / `+name` wildcards are \
                 replaced; ranges, patterns and `**` make formatting fail"
            ),
        }
    }
}

impl std::error::Error for FormatError {}
