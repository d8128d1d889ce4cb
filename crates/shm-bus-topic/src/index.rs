//! [`SubscriptionIndex`]: many patterns, one query.
//!
//! A trie over topic parts. Each node has
//!
//! - exact children in a hash map (one lookup per query part),
//! - one child for every `{name}` wildcard (names do not affect matching),
//! - range children, reached through a hash map from each option to the
//!   ranges holding it (one lookup, whatever the number of ranges),
//! - regex children, each tried on the query part (one per distinct regex
//!   at that position of that prefix),
//! - one `**` child, which absorbs zero or more query parts.
//!
//! So a query visits only the branches whose prefix matches: its cost does
//! not grow with patterns that diverge from the query at an exact part or a
//! range. Regexes sharing one trie node are tried one after another.

use std::hash::Hash;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::matching::matches;
use crate::part::{Part, Pattern};
use crate::topic::Topic;

type NodeId = usize;

struct Node<Id> {
    exact: FxHashMap<Box<str>, NodeId>,
    any: Option<NodeId>,
    /// range literal → child
    ranges: FxHashMap<Box<str>, NodeId>,
    /// option → the range children holding it
    range_options: FxHashMap<Box<str>, Vec<NodeId>>,
    patterns: Vec<(Pattern, NodeId)>,
    rest: Option<NodeId>,
    /// Ids of patterns ending at this node.
    terminal: Vec<Id>,
}

impl<Id> Default for Node<Id> {
    fn default() -> Self {
        Node {
            exact: FxHashMap::default(),
            any: None,
            ranges: FxHashMap::default(),
            range_options: FxHashMap::default(),
            patterns: Vec::new(),
            rest: None,
            terminal: Vec::new(),
        }
    }
}

impl<Id> Node<Id> {
    fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.any.is_none()
            && self.ranges.is_empty()
            && self.patterns.is_empty()
            && self.rest.is_none()
            && self.terminal.is_empty()
    }
}

/// Patterns, each with a caller-chosen id; a query with an exact topic
/// returns the ids of every pattern that matches it.
///
/// ```
/// use shm_bus_topic::{SubscriptionIndex, Topic};
///
/// let mut index = SubscriptionIndex::new();
/// index.insert(&Topic::parse("md.{venue}.AAPL")?, 1);
/// index.insert(&Topic::parse("md.XNAS.(AAPL|MSFT)")?, 2);
/// index.insert(&Topic::parse("log.**")?, 3);
///
/// assert_eq!(index.query(&Topic::parse("md.XNAS.AAPL")?), vec![1, 2]);
/// assert_eq!(index.query(&Topic::parse("log.api.error")?), vec![3]);
/// assert!(index.query(&Topic::parse("md.XNAS.IBM")?).is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SubscriptionIndex<Id> {
    nodes: Vec<Node<Id>>,
    free: Vec<NodeId>,
    /// Every registered (pattern, ids), for `len`, iteration and queries
    /// with non-exact topics.
    patterns: FxHashMap<Topic, Vec<Id>>,
    len: usize,
}

impl<Id: Copy + Ord + Hash> Default for SubscriptionIndex<Id> {
    fn default() -> Self {
        Self::new()
    }
}

const ROOT: NodeId = 0;

impl<Id: Copy + Ord + Hash> SubscriptionIndex<Id> {
    /// An empty index.
    pub fn new() -> Self {
        SubscriptionIndex {
            nodes: vec![Node::default()],
            free: Vec::new(),
            patterns: FxHashMap::default(),
            len: 0,
        }
    }

    /// Number of (pattern, id) entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no pattern is registered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Iterates over `(pattern, id)` entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Topic, Id)> {
        self.patterns
            .iter()
            .flat_map(|(t, ids)| ids.iter().map(move |id| (t, *id)))
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    fn new_node(&mut self) -> NodeId {
        if let Some(id) = self.free.pop() {
            self.nodes[id] = Node::default();
            id
        } else {
            self.nodes.push(Node::default());
            self.nodes.len() - 1
        }
    }

    /// Registers `pattern` under `id`. Returns `false` (and changes
    /// nothing) when that exact (pattern, id) pair is already registered.
    /// A pattern may be registered under several ids and an id under
    /// several patterns.
    pub fn insert(&mut self, pattern: &Topic, id: Id) -> bool {
        let ids = self.patterns.entry(pattern.clone()).or_default();
        if ids.contains(&id) {
            return false;
        }
        ids.push(id);
        let mut node = ROOT;
        for part in pattern.iter() {
            node = self.child_or_insert(node, part);
        }
        self.nodes[node].terminal.push(id);
        self.len += 1;
        true
    }

    fn child_or_insert(&mut self, node: NodeId, part: &Part) -> NodeId {
        if let Some(child) = self.child(node, part) {
            return child;
        }
        let child = self.new_node();
        let n = &mut self.nodes[node];
        match part {
            Part::Exact(t) => {
                n.exact.insert(t.clone(), child);
            }
            Part::Any(_) => n.any = Some(child),
            Part::Range(options) => {
                n.ranges.insert(part.to_string().into(), child);
                for o in options.iter() {
                    let holders = n.range_options.entry(o.clone()).or_default();
                    if !holders.contains(&child) {
                        holders.push(child);
                    }
                }
            }
            Part::Pattern(p) => n.patterns.push((p.clone(), child)),
            Part::Rest => n.rest = Some(child),
        }
        child
    }

    fn child(&self, node: NodeId, part: &Part) -> Option<NodeId> {
        let n = &self.nodes[node];
        match part {
            Part::Exact(t) => n.exact.get(t).copied(),
            Part::Any(_) => n.any,
            Part::Range(_) => n.ranges.get(part.to_string().as_str()).copied(),
            Part::Pattern(p) => n.patterns.iter().find(|(q, _)| q == p).map(|(_, c)| *c),
            Part::Rest => n.rest,
        }
    }

    /// Removes the (pattern, id) entry. Returns whether it was there.
    pub fn remove(&mut self, pattern: &Topic, id: Id) -> bool {
        let Some(ids) = self.patterns.get_mut(pattern) else {
            return false;
        };
        let Some(pos) = ids.iter().position(|x| *x == id) else {
            return false;
        };
        ids.swap_remove(pos);
        if ids.is_empty() {
            self.patterns.remove(pattern);
        }
        self.remove_path(ROOT, pattern.parts(), id);
        self.len -= 1;
        true
    }

    /// Removes `id` at the end of `parts` below `node`; prunes nodes left
    /// empty. Returns whether `node` is now empty.
    fn remove_path(&mut self, node: NodeId, parts: &[Part], id: Id) -> bool {
        match parts.split_first() {
            None => {
                let t = &mut self.nodes[node].terminal;
                if let Some(pos) = t.iter().position(|x| *x == id) {
                    t.remove(pos);
                }
            }
            Some((part, tail)) => {
                let Some(child) = self.child(node, part) else {
                    return false;
                };
                if self.remove_path(child, tail, id) {
                    self.unlink_child(node, part, child);
                    self.free.push(child);
                }
            }
        }
        node != ROOT && self.nodes[node].is_empty()
    }

    fn unlink_child(&mut self, node: NodeId, part: &Part, child: NodeId) {
        let n = &mut self.nodes[node];
        match part {
            Part::Exact(t) => {
                n.exact.remove(t);
            }
            Part::Any(_) => n.any = None,
            Part::Range(options) => {
                n.ranges.remove(part.to_string().as_str());
                for o in options.iter() {
                    if let Some(holders) = n.range_options.get_mut(o) {
                        holders.retain(|c| *c != child);
                        if holders.is_empty() {
                            n.range_options.remove(o);
                        }
                    }
                }
            }
            Part::Pattern(_) => n.patterns.retain(|(_, c)| *c != child),
            Part::Rest => n.rest = None,
        }
    }

    /// Ids of every pattern matching `topic`, sorted and without repeats.
    pub fn query(&self, topic: &Topic) -> Vec<Id> {
        let mut out = Vec::new();
        self.query_into(topic, &mut out);
        out
    }

    /// Like [`query`](Self::query), appending to `out` (cleared first) to
    /// reuse its allocation.
    ///
    /// An exact `topic` walks the trie. A topic with wildcards is matched
    /// against every registered pattern with [`matches()`] (the symmetric
    /// rule), which costs a scan; the bus only queries exact topics.
    pub fn query_into(&self, topic: &Topic, out: &mut Vec<Id>) {
        out.clear();
        if topic.is_exact() {
            self.walk(topic.parts(), out);
        } else {
            for (pattern, ids) in &self.patterns {
                if matches(pattern, topic) {
                    out.extend_from_slice(ids);
                }
            }
            out.sort_unstable();
            out.dedup();
        }
    }

    /// Queries with the parts of an exact topic, given as strings (no
    /// parsing needed). Appends to `out` (cleared first), sorted, without
    /// repeats.
    pub fn query_parts_into(&self, parts: &[&str], out: &mut Vec<Id>) {
        out.clear();
        self.walk(parts, out);
    }

    fn walk<P: PartText + ?Sized>(&self, parts: &P, out: &mut Vec<Id>) {
        let mut walk = Walk {
            nodes: &self.nodes,
            parts,
            out,
            seen_rest: None,
        };
        walk.visit(ROOT, 0);
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }
}

/// The text of the query's parts, whether given as strings or as the
/// (exact) parts of a topic.
trait PartText {
    fn count(&self) -> usize;
    fn text(&self, i: usize) -> Option<&str>;
}

impl PartText for [&str] {
    fn count(&self) -> usize {
        self.len()
    }
    fn text(&self, i: usize) -> Option<&str> {
        self.get(i).copied()
    }
}

impl PartText for [Part] {
    fn count(&self) -> usize {
        self.len()
    }
    fn text(&self, i: usize) -> Option<&str> {
        // Only exact topics reach the walk, so every part is exact.
        self.get(i).map(|p| p.as_exact().unwrap_or_default())
    }
}

struct Walk<'a, Id, P: ?Sized> {
    nodes: &'a [Node<Id>],
    parts: &'a P,
    out: &'a mut Vec<Id>,
    /// (node, position) pairs already visited after a `**`: paths through
    /// `**` can reach one state several ways.
    seen_rest: Option<FxHashSet<(NodeId, usize)>>,
}

impl<Id: Copy, P: PartText + ?Sized> Walk<'_, Id, P> {
    fn visit(&mut self, node: NodeId, i: usize) {
        let n = &self.nodes[node];
        if let Some(rest) = n.rest {
            // `**` absorbs zero or more parts: continue at every suffix.
            for k in i..=self.parts.count() {
                if self
                    .seen_rest
                    .get_or_insert_with(FxHashSet::default)
                    .insert((rest, k))
                {
                    self.visit(rest, k);
                }
            }
        }
        let Some(part) = self.parts.text(i) else {
            self.out.extend_from_slice(&n.terminal);
            return;
        };
        if let Some(&c) = n.exact.get(part) {
            self.visit(c, i + 1);
        }
        if let Some(c) = n.any {
            self.visit(c, i + 1);
        }
        if let Some(holders) = n.range_options.get(part) {
            for &c in holders {
                self.visit(c, i + 1);
            }
        }
        for (p, c) in &n.patterns {
            if p.is_match(part) {
                self.visit(*c, i + 1);
            }
        }
    }
}
