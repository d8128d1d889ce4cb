//! PyEventEngine's `EventEngine` and numba-style events, across processes,
//! over the shm-bus bus.
//!
//! This crate is the layer the seeds' users know: [`EventEngine`] (hooks,
//! handlers with statistics, a per-topic dispatch cache, `put`/`get` with
//! PyEventEngine's `block` / `max_spin` / `timeout`, timers) and
//! [`events`] (numba's `Event`, `Listener`, `trigger_event`, carried between
//! processes by an [`events::EventBridge`]).
//!
//! It is **not** the bus: it uses only the public API of `shm-bus-core`
//! (publishers, subscribers, members) and `shm-bus-topic` (topics, the
//! subscription index), and holds no `unsafe` code. Start reading at
//! [`EventEngine`] (`engine.rs`), then `dispatch.rs` for how an event finds
//! its handlers, then [`events`].
//!
//! # The engine
//!
//! An engine receives events, and fires the handlers registered on their
//! topics. It runs over a bus (events from every process attached to it;
//! handlers in one process fire for events put in another), or in-process
//! with no segment at all (the same API, over a bounded queue).
//!
//! ```
//! use shm_bus_engine::{EventEngine, Handler, Wait};
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! let engine = EventEngine::new(1024); // in-process; EventEngine::with_bus for a bus
//! let seen = Arc::new(AtomicU64::new(0));
//! let counter = seen.clone();
//! engine.register_handler(
//!     "md.{venue}.AAPL.(trade|quote)",
//!     Handler::new(move |m| {
//!         assert_eq!(m.capture("venue"), Some("XNAS"));
//!         counter.fetch_add(m.payload().len() as u64, Ordering::Relaxed);
//!     }),
//!     false,
//! )?;
//! engine.put("md.XNAS.AAPL.trade", b"189.98", Wait::default())?;
//! engine.dispatch_pending()?; // or engine.start() for a dispatch thread
//! assert_eq!(seen.load(Ordering::Relaxed), 6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Hooks
//!
//! Handlers live in hooks, one per topic or pattern. An event fires its
//! *exact hook* (the hook on its literal topic) first, then every
//! *generic hook* (a pattern) that matches it, in the order the hooks were
//! registered; within a hook, handlers run in registration order. A
//! handler on a pattern receives the pattern's captures.
//!
//! ## Dispatch cost
//!
//! The engine keeps, per topic id, the handlers an event on that topic
//! fires: the hooks are consulted (through a trie, not a scan) once per
//! topic id after each registration change, and after that dispatch is an
//! array index, however many patterns are registered.
//!
//! ## Failures
//!
//! A handler that panics is caught, logged (`tracing`) and counted in its
//! statistics and the engine's; dispatch goes on. Registration changes
//! made while an event is being dispatched (from a handler or another
//! thread) apply from the next event on.
//!
//! ## Over a bus
//!
//! The engine attaches one publisher (for `put`) and one subscriber that
//! receives every event on the bus, as PyEventEngine's queue receives every
//! put: `get` returns any event, and events with no matching hook are
//! dropped by dispatch. Payloads are handed to handlers in place, borrowed
//! from the ring (under the Overwrite policy they are copied first and
//! checked, so a handler never sees a torn payload). A `put` from inside a
//! handler never blocks on the engine's own dispatch: where it would have
//! to wait, it answers [`PublishError::Full`](shm_bus_core::PublishError::Full) at once.
//!
//! ## Over a worker group
//!
//! [`EventEngine::with_group`] makes the receiving side a member of a
//! worker group instead: each event matching the group's patterns is
//! dispatched by exactly one engine of the group, across processes. An
//! event is finished when its handlers have returned (the sample is
//! dropped after dispatch, never before), so an engine that dies while a
//! handler runs leaves the event to another engine, which dispatches it
//! again with [`Message::redelivered`] set (at-least-once; an at-most-once
//! group drops it instead). A group removed with force ends the engine's
//! dispatch with [`EngineError::GroupRemoved`] and its `get` with
//! [`GetError::GroupRemoved`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dispatch;
mod engine;
mod error;
pub mod events;
mod hook;
mod message;
mod queue;
mod run;
mod timer;
mod transport;
mod wait;

pub use engine::{EngineHandle, EventEngine};
pub use error::{EngineError, EngineStats, GetError};
pub use hook::{EventHook, Handler, HandlerFn, HandlerStats};
pub use message::{Message, OwnedMessage};
pub use timer::{MINUTE_TIMER_TOPIC, SECOND_TIMER_TOPIC, TIMER_TOPIC_PREFIX, TimerTick};
pub use wait::Wait;

pub(crate) use dispatch::lock;
pub(crate) use hook::panic_text;
