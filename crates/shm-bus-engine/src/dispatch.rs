//! Registrations and the dispatch cache.
//!
//! The [`Registry`] holds the hooks in registration order: exact hooks in
//! a hash map by literal, generic hooks in a [`SubscriptionIndex`] (a trie
//! over topic parts). The [`Router`] keeps, per `TopicId`, the handlers
//! that an event on that topic fires, with the captures of each generic
//! hook's pattern: the registry is asked once per topic id, and after that
//! dispatch is an array index, whatever the number of registered
//! patterns. Every change of registrations bumps a generation number; the
//! router drops its cache when it sees a new one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;
use shm_bus_topic::{SubscriptionIndex, Topic, match_topics};

use super::hook::{Entry, EventHook};
use super::message::Message;

/// A registered hook: the hook, and its entries as one shared slice for
/// routes to clone cheaply.
struct Registered {
    hook: EventHook,
    entries: Arc<[Entry]>,
}

/// Every hook of an engine. Keys grow with each registration, so key
/// order is registration order.
#[derive(Default)]
pub(crate) struct Registry {
    hooks: std::collections::BTreeMap<u32, Registered>,
    by_literal: FxHashMap<Box<str>, u32>,
    generic: SubscriptionIndex<u32>,
    next_key: u32,
}

impl Registry {
    pub(crate) fn get(&self, topic: &Topic) -> Option<&EventHook> {
        let key = self.by_literal.get(topic.as_str())?;
        self.hooks.get(key).map(|r| &r.hook)
    }

    /// Adds a hook; `false` (and nothing changes) if `topic` has one.
    pub(crate) fn insert(&mut self, hook: EventHook) -> bool {
        if self.by_literal.contains_key(hook.topic().as_str()) {
            return false;
        }
        let key = self.next_key;
        self.next_key += 1;
        self.by_literal.insert(hook.topic().as_str().into(), key);
        if !hook.is_exact() {
            self.generic.insert(hook.topic(), key);
        }
        let entries = hook.entries.clone().into();
        self.hooks.insert(key, Registered { hook, entries });
        true
    }

    pub(crate) fn remove(&mut self, topic: &Topic) -> Option<EventHook> {
        let key = self.by_literal.remove(topic.as_str())?;
        let registered = self.hooks.remove(&key)?;
        if !registered.hook.is_exact() {
            self.generic.remove(registered.hook.topic(), key);
        }
        Some(registered.hook)
    }

    /// Changes the hook on `topic` (created if absent, removed when left
    /// empty) with `change`, returning what it returns.
    pub(crate) fn update<R>(
        &mut self,
        topic: &Topic,
        change: impl FnOnce(&mut EventHook) -> R,
    ) -> R {
        let key = match self.by_literal.get(topic.as_str()) {
            Some(&key) => key,
            None => {
                self.insert(EventHook::from_topic(topic.clone()));
                self.next_key - 1
            }
        };
        let Some(registered) = self.hooks.get_mut(&key) else {
            unreachable!("every key in by_literal has a hook")
        };
        let result = change(&mut registered.hook);
        if registered.hook.is_empty() {
            self.remove(topic);
        } else {
            registered.entries = registered.hook.entries.clone().into();
        }
        result
    }

    pub(crate) fn hooks(&self) -> impl Iterator<Item = &EventHook> {
        self.hooks.values().map(|r| &r.hook)
    }

    pub(crate) fn clear(&mut self) {
        *self = Registry {
            next_key: self.next_key,
            ..Registry::default()
        };
    }

    /// What an event on the exact topic `literal` fires: its exact hook,
    /// then every matching generic hook, in registration order.
    fn route(&self, literal: &str) -> Route {
        let mut hooks = Vec::new();
        let Ok(topic) = Topic::parse(literal) else {
            return Route {
                hooks: Box::new([]),
            };
        };
        let exact = self.by_literal.get(literal).copied();
        let mut keys = self.generic.query(&topic);
        if let Some(key) = exact {
            // Exact first, then generic ones in registration order.
            keys.insert(0, key);
        }
        for key in keys {
            let Some(registered) = self.hooks.get(&key) else {
                continue;
            };
            let captures = if registered.hook.is_exact() {
                Box::default()
            } else {
                match_topics(registered.hook.topic(), &topic)
                    .captures()
                    .iter()
                    .map(|&(k, v)| (Box::from(k), Box::from(v)))
                    .collect()
            };
            hooks.push(RouteHook {
                captures,
                entries: registered.entries.clone(),
            });
        }
        Route {
            hooks: hooks.into_boxed_slice(),
        }
    }
}

/// The hooks an event on one topic fires.
struct Route {
    hooks: Box<[RouteHook]>,
}

struct RouteHook {
    captures: Box<[(Box<str>, Box<str>)]>,
    entries: Arc<[Entry]>,
}

/// What one dispatch did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome {
    /// Handlers called.
    pub(crate) calls: u32,
    /// Of which panicked.
    pub(crate) failures: u32,
}

/// The per-`TopicId` cache of routes, owned by whoever dispatches.
#[derive(Default)]
pub(crate) struct Router {
    generation: u64,
    routes: Vec<Option<Route>>,
}

impl Router {
    /// Fires every handler `message` routes to. `registry` is locked only
    /// on the first sight of a topic id after a change; handlers run with
    /// no lock held, so they may (un)register: the change applies from
    /// the next event on.
    #[inline]
    pub(crate) fn dispatch(
        &mut self,
        registry: &std::sync::Mutex<Registry>,
        generation: &AtomicU64,
        message: Message<'_>,
    ) -> Outcome {
        // Acquire: pairs with the Release increment after a registration
        // change, so the registry read below sees that change.
        let current = generation.load(Ordering::Acquire);
        if current != self.generation {
            self.routes.clear();
            self.generation = current;
        }
        let i = message.topic_id.index();
        if self.routes.get(i).is_none_or(|r| r.is_none()) {
            let route = lock(registry).route(message.topic);
            if i >= self.routes.len() {
                self.routes.resize_with(i + 1, || None);
            }
            self.routes[i] = Some(route);
        }
        let Some(Some(route)) = self.routes.get(i) else {
            unreachable!("the route was just filled")
        };
        let mut outcome = Outcome::default();
        for hook in route.hooks.iter() {
            let message = Message {
                captures: &hook.captures,
                ..message
            };
            for entry in hook.entries.iter() {
                outcome.calls += 1;
                if !entry.call(&message) {
                    outcome.failures += 1;
                }
            }
        }
        outcome
    }
}

/// Locks a mutex of the engine. Its holders never panic while it is held
/// (handlers run without it), so a poisoned lock is still consistent.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
