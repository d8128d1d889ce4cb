//! Handlers and hooks (PyEventEngine's `EventHook` / `EventHookEx`): a
//! hook is one topic or pattern with its handlers in registration order,
//! each with call statistics.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm_bus_topic::{Topic, TopicError};

use super::message::Message;

/// The function type of a handler.
pub type HandlerFn = dyn Fn(&Message<'_>) + Send + Sync + 'static;

/// A handler: a function of a [`Message`], with a name for logs and
/// statistics.
///
/// Closures have no identity of their own, so a `Handler` is a shared
/// handle and two handlers are the same when they are clones of one
/// `Handler` (what `deduplicate` and `unregister_handler` compare). Keep
/// the handle you registered to unregister it later.
#[derive(Clone)]
pub struct Handler(Arc<HandlerInner>);

struct HandlerInner {
    name: Box<str>,
    f: Box<HandlerFn>,
}

impl Handler {
    /// Wraps `f`; its name is the closure's type name.
    pub fn new<F>(f: F) -> Handler
    where
        F: Fn(&Message<'_>) + Send + Sync + 'static,
    {
        Handler::named(std::any::type_name::<F>(), f)
    }

    /// Wraps `f` under `name` (shown in logs when it panics).
    pub fn named<F>(name: impl Into<String>, f: F) -> Handler
    where
        F: Fn(&Message<'_>) + Send + Sync + 'static,
    {
        Handler(Arc::new(HandlerInner {
            name: name.into().into_boxed_str(),
            f: Box::new(f),
        }))
    }

    /// The handler's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Calls the handler (no panic catching, no statistics).
    pub fn call(&self, message: &Message<'_>) {
        (self.0.f)(message)
    }
}

impl PartialEq for Handler {
    fn eq(&self, other: &Handler) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Handler {}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Handler").field(&self.name()).finish()
    }
}

impl<F> From<F> for Handler
where
    F: Fn(&Message<'_>) + Send + Sync + 'static,
{
    fn from(f: F) -> Handler {
        Handler::new(f)
    }
}

/// Statistics of one handler in one hook (PyEventEngine's `EventHookEx`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandlerStats {
    /// Times it was called.
    pub calls: u64,
    /// Time spent in it, over all calls.
    pub total_time: Duration,
    /// Calls that panicked.
    pub failures: u64,
}

#[derive(Default)]
pub(crate) struct StatCell {
    calls: AtomicU64,
    nanos: AtomicU64,
    failures: AtomicU64,
}

impl StatCell {
    fn snapshot(&self) -> HandlerStats {
        // Relaxed: independent counters, read for reporting.
        HandlerStats {
            calls: self.calls.load(Ordering::Relaxed),
            total_time: Duration::from_nanos(self.nanos.load(Ordering::Relaxed)),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// A handler registered in a hook, with its statistics.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) handler: Handler,
    pub(crate) stats: Arc<StatCell>,
}

impl Entry {
    /// Runs the handler: a panic is caught, logged and counted. Returns
    /// whether it completed.
    #[inline]
    pub(crate) fn call(&self, message: &Message<'_>) -> bool {
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| self.handler.call(message)));
        let spent = start.elapsed().as_nanos() as u64;
        // Relaxed: statistics only.
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        self.stats.nanos.fetch_add(spent, Ordering::Relaxed);
        match result {
            Ok(()) => true,
            Err(panic) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    handler = self.handler.name(),
                    topic = message.topic(),
                    panic = panic_text(&*panic),
                    "event handler panicked; dispatch goes on"
                );
                false
            }
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

/// One topic or pattern and its handlers, in registration order.
///
/// A hook on an exact topic is an *exact hook*; on a pattern, a *generic
/// hook*. An event fires its exact hook and every generic hook whose
/// pattern matches it.
///
/// An `EventHook` obtained from an engine (`get_hook`, `event_hooks`) is a
/// copy of the registration: its statistics are live (shared with the
/// engine), but adding or removing handlers on the copy does not change
/// the engine; use the engine's `register_handler` / `unregister_handler`,
/// or `unregister_hook` then `register_hook`.
#[derive(Clone)]
pub struct EventHook {
    topic: Topic,
    pub(crate) entries: Vec<Entry>,
}

impl EventHook {
    /// An empty hook on `topic` (any topic of the language).
    ///
    /// # Errors
    /// The topic does not parse.
    pub fn new(topic: &str) -> Result<EventHook, TopicError> {
        Ok(EventHook::from_topic(Topic::parse(topic)?))
    }

    /// An empty hook on a parsed topic.
    pub fn from_topic(topic: Topic) -> EventHook {
        EventHook {
            topic,
            entries: Vec::new(),
        }
    }

    /// Its topic or pattern.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// Whether it is an exact hook (its topic has no wildcard).
    pub fn is_exact(&self) -> bool {
        self.topic.is_exact()
    }

    /// Appends `handler`. With `deduplicate`, a handler already in the
    /// hook is not added again. Returns whether it was added.
    pub fn add_handler(&mut self, handler: impl Into<Handler>, deduplicate: bool) -> bool {
        let handler = handler.into();
        if deduplicate && self.entries.iter().any(|e| e.handler == handler) {
            return false;
        }
        self.entries.push(Entry {
            handler,
            stats: Arc::default(),
        });
        true
    }

    /// Removes the first registration of `handler`. Returns whether it
    /// was there.
    pub fn remove_handler(&mut self, handler: &Handler) -> bool {
        match self.entries.iter().position(|e| e.handler == *handler) {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }

    /// Its handlers, in the order they run.
    pub fn handlers(&self) -> Vec<Handler> {
        self.entries.iter().map(|e| e.handler.clone()).collect()
    }

    /// Number of registrations.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it has no handler.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Statistics of `handler`'s first registration in this hook.
    pub fn stats(&self, handler: &Handler) -> Option<HandlerStats> {
        self.entries
            .iter()
            .find(|e| e.handler == *handler)
            .map(|e| e.stats.snapshot())
    }

    /// Statistics of every registration, in order.
    pub fn all_stats(&self) -> Vec<(Handler, HandlerStats)> {
        self.entries
            .iter()
            .map(|e| (e.handler.clone(), e.stats.snapshot()))
            .collect()
    }

    /// Runs every handler on `message`, in order, catching and counting
    /// panics. Returns how many completed.
    pub fn trigger(&self, message: &Message<'_>) -> usize {
        self.entries.iter().filter(|e| e.call(message)).count()
    }
}

impl std::fmt::Debug for EventHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHook")
            .field("topic", &self.topic.as_str())
            .field("handlers", &self.handlers())
            .finish()
    }
}
