//! Matching two topics: `matches` (a fast yes/no) and `match_topics`
//! (the detailed answer with per-position nodes and captures).
//!
//! # Rules
//!
//! Matching is symmetric: either side may be the pattern.
//!
//! 1. Equal literals match (so a pattern matches itself).
//! 2. Otherwise parts are compared pairwise. At each position at least one
//!    side must be exact; two non-exact parts never match each other.
//!    `**` on either side absorbs zero or more *exact* parts of the other.
//! 3. The lengths must agree after `**` absorption.

use crate::part::Part;
use crate::topic::Topic;

/// Whether `a` and `b` match. Never allocates when neither side has `**`.
///
/// ```
/// use shm_bus_topic::{Topic, matches};
/// let p = Topic::parse("md.{venue}./^[A-Z]+$/")?;
/// assert!(matches(&p, &Topic::parse("md.XNAS.AAPL")?));
/// assert!(matches(&Topic::parse("md.XNAS.AAPL")?, &p)); // symmetric
/// assert!(!matches(&p, &Topic::parse("md.XNAS.aapl")?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn matches(a: &Topic, b: &Topic) -> bool {
    if a.as_str() == b.as_str() {
        return true;
    }
    let (pa, pb) = (a.parts(), b.parts());
    if !a.has_rest() && !b.has_rest() {
        return pa.len() == pb.len() && pa.iter().zip(pb).all(|(x, y)| pair(x, y));
    }
    let mut memo = Memo::new(pa.len(), pb.len());
    search(pa, pb, 0, 0, &mut memo, &mut NoRecord)
}

/// Whether an exact topic given as its parts matches `pattern`.
/// Used by the subscription index's slow path and by tests.
pub(crate) fn pair(x: &Part, y: &Part) -> bool {
    match (x, y) {
        (Part::Exact(a), Part::Exact(b)) => a == b,
        (Part::Exact(t), other) | (other, Part::Exact(t)) => {
            !matches!(other, Part::Rest) && other.accepts(t)
        }
        _ => false,
    }
}

/// One compared position of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchNode<'a> {
    /// Whether this position matched.
    pub matched: bool,
    /// The part of `a` compared here (`None` when `a` ran out).
    pub a: Option<&'a Part>,
    /// The part of `b` compared here (`None` when `b` ran out).
    pub b: Option<&'a Part>,
    /// The exact text at this position: the exact side's literal, or `a`'s
    /// literal when neither is exact.
    pub literal: &'a str,
}

/// The detailed answer of [`match_topics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchResult<'a> {
    matched: bool,
    nodes: Vec<MatchNode<'a>>,
    captures: Vec<(&'a str, &'a str)>,
}

impl<'a> MatchResult<'a> {
    /// Whether the topics match.
    pub fn matched(&self) -> bool {
        self.matched
    }

    /// The compared positions: on a match, the whole alignment (a `**`
    /// gives one node per part it absorbed); on a mismatch, the furthest
    /// alignment tried, ending with the failing position.
    pub fn nodes(&self) -> &[MatchNode<'a>] {
        &self.nodes
    }

    /// Captures in position order, `(name, text)`; a name may repeat.
    /// Empty when the topics do not match.
    pub fn captures(&self) -> &[(&'a str, &'a str)] {
        &self.captures
    }

    /// The text captured by `name`; when a name appears twice, the last
    /// one wins.
    pub fn capture(&self, name: &str) -> Option<&'a str> {
        self.captures
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
    }

    /// Captures as a sorted map (last one wins for repeated names).
    pub fn captures_map(&self) -> std::collections::BTreeMap<&'a str, &'a str> {
        self.captures.iter().copied().collect()
    }
}

/// Matches `a` against `b` and explains the answer.
///
/// ```
/// use shm_bus_topic::{Topic, match_topics};
/// let p = Topic::parse("log.**.{level}")?;
/// let t = Topic::parse("log.api.v2.error")?;
/// let m = match_topics(&p, &t);
/// assert!(m.matched());
/// assert_eq!(m.capture("level"), Some("error"));
/// assert_eq!(m.nodes().len(), 4); // log, api (by **), v2 (by **), error
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn match_topics<'a>(a: &'a Topic, b: &'a Topic) -> MatchResult<'a> {
    if a.as_str() == b.as_str() {
        let nodes = a
            .iter()
            .zip(b.iter())
            .map(|(x, y)| MatchNode {
                matched: true,
                a: Some(x),
                b: Some(y),
                literal: literal_of(x, y),
            })
            .collect();
        return MatchResult {
            matched: true,
            nodes,
            captures: Vec::new(),
        };
    }
    let (pa, pb) = (a.parts(), b.parts());
    let mut memo = Memo::new(pa.len(), pb.len());
    let mut rec = Recorder::default();
    let matched = search(pa, pb, 0, 0, &mut memo, &mut rec);
    let path = if matched { rec.path } else { rec.best };
    let nodes: Vec<MatchNode<'a>> = path
        .iter()
        .map(|s| {
            let x = s.i.map(|i| &pa[i]);
            let y = s.j.map(|j| &pb[j]);
            MatchNode {
                matched: s.ok,
                a: x,
                b: y,
                literal: match (x, y) {
                    (Some(x), Some(y)) => literal_of(x, y),
                    (Some(p), None) | (None, Some(p)) => p.as_exact().unwrap_or(""),
                    (None, None) => "",
                },
            }
        })
        .collect();
    let captures = if matched {
        nodes
            .iter()
            .filter_map(|n| match (n.a, n.b) {
                (Some(Part::Any(name)), Some(Part::Exact(t)))
                | (Some(Part::Exact(t)), Some(Part::Any(name))) => Some((&**name, &**t)),
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    MatchResult {
        matched,
        nodes,
        captures,
    }
}

fn literal_of<'a>(x: &'a Part, y: &'a Part) -> &'a str {
    // Neither side exact: the wildcard name or `**` of the first side.
    let fallback = match x {
        Part::Any(n) => n,
        Part::Rest => "**",
        _ => "",
    };
    x.as_exact().or_else(|| y.as_exact()).unwrap_or(fallback)
}

/// Failed (i, j) states, so the search with `**` stays O(len(a)·len(b)).
struct Memo {
    width: usize,
    failed: Vec<bool>,
}

impl Memo {
    fn new(la: usize, lb: usize) -> Self {
        Memo {
            width: lb + 1,
            failed: Vec::new(),
        }
        .sized(la + 1)
    }

    fn sized(mut self, rows: usize) -> Self {
        self.failed = vec![false; rows * self.width];
        self
    }

    fn failed(&self, i: usize, j: usize) -> bool {
        self.failed[i * self.width + j]
    }

    fn mark(&mut self, i: usize, j: usize) {
        self.failed[i * self.width + j] = true;
    }
}

#[derive(Clone, Copy)]
struct Step {
    i: Option<usize>,
    j: Option<usize>,
    ok: bool,
}

trait Record {
    fn push(&mut self, step: Step);
    fn pop(&mut self);
    /// The search failed here; `failing` is the step that did not match.
    fn dead_end(&mut self, failing: Option<Step>);
}

struct NoRecord;

impl Record for NoRecord {
    #[inline]
    fn push(&mut self, _: Step) {}
    #[inline]
    fn pop(&mut self) {}
    #[inline]
    fn dead_end(&mut self, _: Option<Step>) {}
}

#[derive(Default)]
struct Recorder {
    path: Vec<Step>,
    best: Vec<Step>,
}

impl Record for Recorder {
    fn push(&mut self, step: Step) {
        self.path.push(step);
    }
    fn pop(&mut self) {
        self.path.pop();
    }
    fn dead_end(&mut self, failing: Option<Step>) {
        let len = self.path.len() + usize::from(failing.is_some());
        if len >= self.best.len() {
            self.best.clear();
            self.best.extend_from_slice(&self.path);
            self.best.extend(failing);
        }
    }
}

/// Depth-first search over alignments of `a[i..]` and `b[j..]`.
fn search<R: Record>(
    a: &[Part],
    b: &[Part],
    i: usize,
    j: usize,
    memo: &mut Memo,
    rec: &mut R,
) -> bool {
    if memo.failed(i, j) {
        return false;
    }
    let found = search_inner(a, b, i, j, memo, rec);
    if !found {
        memo.mark(i, j);
    }
    found
}

fn search_inner<R: Record>(
    a: &[Part],
    b: &[Part],
    i: usize,
    j: usize,
    memo: &mut Memo,
    rec: &mut R,
) -> bool {
    let a_rest = matches!(a.get(i), Some(Part::Rest));
    let b_rest = matches!(b.get(j), Some(Part::Rest));
    if a_rest || b_rest {
        if a_rest && absorb(a, b, i, j, memo, rec, false) {
            return true;
        }
        if b_rest && absorb(b, a, j, i, memo, rec, true) {
            return true;
        }
        return false;
    }
    match (a.get(i), b.get(j)) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            let step = Step {
                i: Some(i),
                j: Some(j),
                ok: pair(x, y),
            };
            if !step.ok {
                rec.dead_end(Some(step));
                return false;
            }
            rec.push(step);
            if search(a, b, i + 1, j + 1, memo, rec) {
                return true;
            }
            rec.pop();
            false
        }
        (Some(_), None) => {
            rec.dead_end(Some(Step {
                i: Some(i),
                j: None,
                ok: false,
            }));
            false
        }
        (None, Some(_)) => {
            rec.dead_end(Some(Step {
                i: None,
                j: Some(j),
                ok: false,
            }));
            false
        }
    }
}

/// `rest_side[r]` is `**`; it absorbs `k >= 0` exact parts of `other`
/// starting at `o`. `swapped` says whether `rest_side` is `b`.
#[allow(clippy::too_many_arguments)]
fn absorb<R: Record>(
    rest_side: &[Part],
    other: &[Part],
    r: usize,
    o: usize,
    memo: &mut Memo,
    rec: &mut R,
    swapped: bool,
) -> bool {
    let step = |k: usize| {
        if swapped {
            Step {
                i: Some(k),
                j: Some(r),
                ok: true,
            }
        } else {
            Step {
                i: Some(r),
                j: Some(k),
                ok: true,
            }
        }
    };
    let mut k = o;
    loop {
        let found = if swapped {
            search(other, rest_side, k, r + 1, memo, rec)
        } else {
            search(rest_side, other, r + 1, k, memo, rec)
        };
        if found {
            return true;
        }
        // Absorb one more part of `other`, which must be exact.
        match other.get(k) {
            Some(p) if p.is_exact() => {
                rec.push(step(k));
                k += 1;
            }
            _ => break,
        }
    }
    for _ in o..k {
        rec.pop();
    }
    false
}
