//! [`Topic`]: a parsed topic with its canonical literal.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::{Add, AddAssign, Index};
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{FormatError, TopicError};
use crate::part::{Part, PartKind, parse_parts};

struct Inner {
    literal: Box<str>,
    parts: Box<[Part]>,
    exact: bool,
    has_rest: bool,
}

/// A parsed topic: a non-empty sequence of [`Part`]s and its canonical
/// literal.
///
/// Cloning is cheap (one reference count). Equality and hashing use the
/// canonical literal, so `a.{x}` and `a.+x` are the same topic.
///
/// ```
/// use shm_bus_topic::Topic;
///
/// let t: Topic = "md.+venue.(bid|ask)".parse()?;
/// assert_eq!(t.to_string(), "md.{venue}.(bid|ask)");
/// assert!(!t.is_exact());
/// assert_eq!(t.len(), 3);
///
/// let q = Topic::parse("md.XNAS.bid")?;
/// let m = t.match_with(&q);
/// assert!(m.matched());
/// assert_eq!(m.capture("venue"), Some("XNAS"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Topic {
    inner: Arc<Inner>,
}

impl Topic {
    /// Parses `text` (see the crate docs for the grammar).
    ///
    /// # Errors
    /// A [`TopicError`] naming the problem and its byte position.
    pub fn parse(text: &str) -> Result<Topic, TopicError> {
        let parts = parse_parts(text)?;
        Ok(Topic::from_checked_parts(parts.into()))
    }

    /// Builds an exact topic from literal parts: `join(["a", "b"])` is
    /// `a.b`. Every item becomes an exact part, so an item that is empty,
    /// contains `.`, or would read back as another kind of part (`{x}`,
    /// `**`, …) is an error.
    ///
    /// # Errors
    /// [`TopicError::Empty`] for no items; the item's error otherwise, with
    /// the position of the item in the joined text.
    pub fn join<I, S>(parts: I) -> Result<Topic, TopicError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut built = Vec::new();
        let mut offset = 0;
        for item in parts {
            let item = item.as_ref();
            built.push(Part::exact(item).map_err(|e| e.shifted(offset))?);
            offset += item.len() + 1;
        }
        Topic::from_parts(built)
    }

    /// Builds a topic from typed parts. Parts made by [`Part`]'s
    /// constructors are already checked; parts built by hand are checked
    /// here.
    ///
    /// # Errors
    /// [`TopicError::Empty`] for no parts; the part's error otherwise.
    pub fn from_parts<I>(parts: I) -> Result<Topic, TopicError>
    where
        I: IntoIterator<Item = Part>,
    {
        let parts: Vec<Part> = parts.into_iter().collect();
        if parts.is_empty() {
            return Err(TopicError::Empty);
        }
        let mut offset = 0;
        for part in &parts {
            let literal = part.to_string();
            let reread = parse_parts(&literal).map_err(|e| e.shifted(offset))?;
            if reread.len() != 1 || reread[0] != *part {
                let checked = match part {
                    Part::Exact(t) => Part::exact(t),
                    Part::Any(n) => Part::any(n),
                    Part::Range(o) => Part::range(o.iter()),
                    Part::Pattern(p) => Part::pattern(p.as_str()),
                    Part::Rest => Ok(Part::Rest),
                };
                return Err(checked
                    .err()
                    .unwrap_or(TopicError::NotAPart {
                        position: 0,
                        text: literal.clone(),
                        reason: "it does not read back as the same part",
                    })
                    .shifted(offset));
            }
            offset += literal.len() + 1;
        }
        Ok(Topic::from_checked_parts(parts.into()))
    }

    fn from_checked_parts(parts: Box<[Part]>) -> Topic {
        let mut literal = String::new();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                literal.push('.');
            }
            use fmt::Write as _;
            // Writing to a String cannot fail.
            let _ = write!(literal, "{p}");
        }
        let exact = parts.iter().all(Part::is_exact);
        let has_rest = parts.iter().any(|p| matches!(p, Part::Rest));
        Topic {
            inner: Arc::new(Inner {
                literal: literal.into(),
                parts,
                exact,
                has_rest,
            }),
        }
    }

    /// The canonical literal; parsing it gives back the same parts.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.inner.literal
    }

    /// The parts.
    #[inline]
    pub fn parts(&self) -> &[Part] {
        &self.inner.parts
    }

    /// Whether every part is exact. Only exact topics can be published.
    #[inline]
    pub fn is_exact(&self) -> bool {
        self.inner.exact
    }

    /// Whether some part is `**`.
    #[inline]
    pub fn has_rest(&self) -> bool {
        self.inner.has_rest
    }

    /// Number of parts (at least 1).
    #[inline]
    pub fn len(&self) -> usize {
        self.inner.parts.len()
    }

    /// Always `false`: a topic has at least one part.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.inner.parts.is_empty()
    }

    /// Iterates over the parts.
    pub fn iter(&self) -> std::slice::Iter<'_, Part> {
        self.inner.parts.iter()
    }

    /// The part at `index`, if any.
    pub fn get(&self, index: usize) -> Option<&Part> {
        self.inner.parts.get(index)
    }

    /// Returns a topic with `part` added at the end.
    ///
    /// # Errors
    /// The part's error if it was built by hand and does not read back as
    /// itself.
    pub fn append(&self, part: Part) -> Result<Topic, TopicError> {
        Topic::from_parts(self.iter().cloned().chain(std::iter::once(part)))
    }

    /// Returns the concatenation of `self` and `other`.
    pub fn concat(&self, other: &Topic) -> Topic {
        Topic::from_checked_parts(self.iter().chain(other.iter()).cloned().collect())
    }

    /// Strict formatting with `(name, value)` pairs: every `{name}` must
    /// have a value.
    ///
    /// ```
    /// use shm_bus_topic::Topic;
    /// let t = Topic::parse("md.{venue}.{sym}")?;
    /// assert_eq!(t.format([("venue", "XNAS"), ("sym", "AAPL")])?.as_str(), "md.XNAS.AAPL");
    /// assert!(t.format([("venue", "XNAS")]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// See [`Topic::format_with`].
    pub fn format<I, K, V>(&self, pairs: I) -> Result<Topic, FormatError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let pairs: Vec<(K, V)> = pairs.into_iter().collect();
        self.format_with(true, |name| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k.as_ref() == name)
                .map(|(_, v)| v.as_ref())
        })
    }

    /// Formats with a map; `strict` decides whether a missing name is an
    /// error or stays `{name}`.
    ///
    /// # Errors
    /// See [`Topic::format_with`].
    pub fn format_map<K, V, S>(
        &self,
        mapping: &HashMap<K, V, S>,
        strict: bool,
    ) -> Result<Topic, FormatError>
    where
        K: Borrow<str> + Hash + Eq,
        V: AsRef<str>,
        S: BuildHasher,
    {
        self.format_with(strict, |name| mapping.get(name).map(AsRef::as_ref))
    }

    /// Replaces every `{name}` part for which `lookup` has a value by an
    /// exact part holding it.
    ///
    /// # Errors
    /// - [`FormatError::NotFormattable`] when the topic has a range,
    ///   pattern or rest part;
    /// - [`FormatError::InvalidValue`] when a value is empty, contains `.`,
    ///   or would read back as something other than an exact part;
    /// - [`FormatError::MissingValue`] when `strict` and a name has no value.
    pub fn format_with<'v, F>(&self, strict: bool, mut lookup: F) -> Result<Topic, FormatError>
    where
        F: FnMut(&str) -> Option<&'v str>,
    {
        let mut parts = Vec::with_capacity(self.len());
        for (index, part) in self.iter().enumerate() {
            match part {
                Part::Exact(_) => parts.push(part.clone()),
                Part::Any(name) => match lookup(name) {
                    Some(value) => {
                        let exact = Part::exact(value).map_err(|e| FormatError::InvalidValue {
                            name: name.to_string(),
                            value: value.to_owned(),
                            reason: match e {
                                TopicError::EmptyPart { .. } => "a value cannot be empty",
                                TopicError::NotAPart { reason, .. } => reason,
                                _ => "it does not read back as an exact part",
                            },
                        })?;
                        parts.push(exact);
                    }
                    None if strict => {
                        return Err(FormatError::MissingValue {
                            name: name.to_string(),
                        });
                    }
                    None => parts.push(part.clone()),
                },
                Part::Range(_) | Part::Pattern(_) | Part::Rest => {
                    return Err(FormatError::NotFormattable {
                        index,
                        part: part.to_string(),
                    });
                }
            }
        }
        Ok(Topic::from_checked_parts(parts.into()))
    }

    /// Names of the `{name}` wildcards, in order (repeats included).
    pub fn wildcard_names(&self) -> impl Iterator<Item = &str> {
        self.iter().filter_map(|p| match p {
            Part::Any(n) => Some(&**n),
            _ => None,
        })
    }

    /// Counts parts of each kind; handy for diagnostics.
    pub fn count_kind(&self, kind: PartKind) -> usize {
        self.iter().filter(|p| p.kind() == kind).count()
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic({:?})", self.as_str())
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.as_str() == other.as_str()
    }
}

impl Eq for Topic {}

impl Hash for Topic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for Topic {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Topic {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for Topic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Topic::parse(s)
    }
}

impl TryFrom<&str> for Topic {
    type Error = TopicError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Topic::parse(s)
    }
}

impl Index<usize> for Topic {
    type Output = Part;
    fn index(&self, index: usize) -> &Part {
        &self.inner.parts[index]
    }
}

impl<'a> IntoIterator for &'a Topic {
    type Item = &'a Part;
    type IntoIter = std::slice::Iter<'a, Part>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// `a + b` concatenates two topics.
impl Add<&Topic> for &Topic {
    type Output = Topic;
    fn add(self, rhs: &Topic) -> Topic {
        self.concat(rhs)
    }
}

/// `a + b` concatenates two topics.
impl Add<Topic> for Topic {
    type Output = Topic;
    fn add(self, rhs: Topic) -> Topic {
        self.concat(&rhs)
    }
}

/// `a += b` appends the parts of `b`.
impl AddAssign<&Topic> for Topic {
    fn add_assign(&mut self, rhs: &Topic) {
        *self = self.concat(rhs);
    }
}

/// `a += b` appends the parts of `b`.
impl AddAssign<Topic> for Topic {
    fn add_assign(&mut self, rhs: Topic) {
        *self = self.concat(&rhs);
    }
}
