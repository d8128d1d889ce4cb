//! [`Listeners`]: a registry of listeners by event kind (numba's
//! `register` / `unregister`), the scoped [`Installed`] guard and the
//! [`Trigger`] span guard.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use super::event::{Event, EventError, EventStatus, RESERVED_PREFIX, validate_kind};
use crate::lock;

/// Told of the events of the kinds it is registered for (numba's
/// `Listener`). Called from whichever thread broadcasts (or a bridge's
/// thread for events from other processes), so it must be `Send + Sync`.
pub trait Listener: Send + Sync {
    /// A START event.
    fn on_start(&self, event: &Event);
    /// An END event.
    fn on_end(&self, event: &Event);
    /// Dispatches on the status (override to see both in one place).
    fn notify(&self, event: &Event) {
        match event.status() {
            EventStatus::Start => self.on_start(event),
            EventStatus::End => self.on_end(event),
        }
    }
}

/// Sends local events elsewhere (a bridge to a bus).
pub(crate) trait Forward: Send + Sync {
    fn forward(&self, event: &Event);
}

/// Listeners by kind, in registration order.
type ByKind = HashMap<Box<str>, Vec<Arc<dyn Listener>>>;

#[derive(Default)]
struct Registry {
    by_kind: RwLock<ByKind>,
    forwards: Mutex<Vec<Weak<dyn Forward>>>,
}

/// A registry of listeners by kind. Cheap to clone (a shared handle).
/// [`Listeners::global`] is the process-wide one the free functions of
/// this module use.
#[derive(Clone, Default)]
pub struct Listeners(Arc<Registry>);

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<String> = read(&self.0.by_kind)
            .keys()
            .map(|k| k.to_string())
            .collect();
        f.debug_struct("Listeners").field("kinds", &kinds).finish()
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Listeners run without the lock held, so it is never poisoned while
    // half-updated.
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Compares listeners by address (closures and listeners have no other
/// identity).
fn same<L: ?Sized>(a: &Arc<dyn Listener>, b: &Arc<L>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

impl Listeners {
    /// An empty registry of its own.
    pub fn new() -> Listeners {
        Listeners::default()
    }

    /// The process-wide registry.
    pub fn global() -> &'static Listeners {
        static GLOBAL: OnceLock<Listeners> = OnceLock::new();
        GLOBAL.get_or_init(Listeners::new)
    }

    /// Registers `listener` for `kind` (numba's `register`).
    ///
    /// # Errors
    /// [`EventError::InvalidKind`].
    pub fn register(&self, kind: &str, listener: Arc<dyn Listener>) -> Result<(), EventError> {
        validate_kind(kind)?;
        write(&self.0.by_kind)
            .entry(kind.into())
            .or_default()
            .push(listener);
        Ok(())
    }

    /// Removes `listener` from `kind` (the same `Arc`). Returns whether it
    /// was registered.
    pub fn unregister<L: Listener + ?Sized>(&self, kind: &str, listener: &Arc<L>) -> bool {
        let mut by_kind = write(&self.0.by_kind);
        let Some(list) = by_kind.get_mut(kind) else {
            return false;
        };
        let Some(i) = list.iter().position(|l| same(l, listener)) else {
            return false;
        };
        list.remove(i);
        if list.is_empty() {
            by_kind.remove(kind);
        }
        true
    }

    /// The kinds with listeners.
    pub fn kinds(&self) -> Vec<String> {
        read(&self.0.by_kind)
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    /// Tells the listeners of `event`'s kind, here and (through bridges)
    /// in the other processes on the bus (numba's `broadcast`). A
    /// listener that panics is logged and skipped.
    pub fn broadcast(&self, event: &Event) {
        self.deliver(event);
        if event.kind().starts_with(RESERVED_PREFIX) {
            return;
        }
        let forwards: Vec<Arc<dyn Forward>> = {
            let mut forwards = lock(&self.0.forwards);
            forwards.retain(|f| f.strong_count() > 0);
            forwards.iter().filter_map(Weak::upgrade).collect()
        };
        for f in forwards {
            f.forward(event);
        }
    }

    /// Tells the listeners here only.
    pub(crate) fn deliver(&self, event: &Event) {
        let listeners: Vec<Arc<dyn Listener>> = match read(&self.0.by_kind).get(event.kind()) {
            Some(list) => list.clone(),
            None => return,
        };
        for l in listeners {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| l.notify(event))) {
                tracing::error!(
                    kind = event.kind(),
                    panic = crate::panic_text(&*panic),
                    "event listener panicked"
                );
            }
        }
    }

    pub(crate) fn add_forward(&self, forward: Weak<dyn Forward>) {
        lock(&self.0.forwards).push(forward);
    }

    /// Broadcasts a START of `kind` (numba's `start_event`).
    ///
    /// # Errors
    /// [`EventError::InvalidKind`].
    pub fn start_event(&self, kind: &str, data: impl Into<Vec<u8>>) -> Result<(), EventError> {
        self.broadcast(&Event::new(kind, EventStatus::Start, data)?);
        Ok(())
    }

    /// Broadcasts an END of `kind`, failed if `failure` is given (numba's
    /// `end_event`).
    ///
    /// # Errors
    /// [`EventError::InvalidKind`].
    pub fn end_event(
        &self,
        kind: &str,
        data: impl Into<Vec<u8>>,
        failure: Option<&str>,
    ) -> Result<(), EventError> {
        let mut event = Event::new(kind, EventStatus::End, data)?;
        if let Some(f) = failure {
            event = event.with_failure(f);
        }
        self.broadcast(&event);
        Ok(())
    }

    /// Broadcasts a START now and an END when the returned guard drops
    /// (numba's `trigger_event`); the END is marked failed if the guard
    /// drops during a panic, or after [`Trigger::fail`].
    ///
    /// # Errors
    /// [`EventError::InvalidKind`].
    pub fn trigger_event(
        &self,
        kind: &str,
        data: impl Into<Vec<u8>>,
    ) -> Result<Trigger<'_>, EventError> {
        let data = data.into();
        self.start_event(kind, data.clone())?;
        Ok(Trigger {
            listeners: self,
            kind: kind.into(),
            data,
            failure: None,
        })
    }

    /// Registers `listener` for `kind` until the returned guard drops
    /// (numba's `install_listener`). The guard derefs to the listener.
    ///
    /// # Errors
    /// [`EventError::InvalidKind`].
    pub fn install_listener<L: Listener + 'static>(
        &self,
        kind: &str,
        listener: Arc<L>,
    ) -> Result<Installed<'_, L>, EventError> {
        self.register(kind, listener.clone())?;
        Ok(Installed {
            listeners: self,
            kind: kind.into(),
            listener,
        })
    }
}

/// A span in progress ([`trigger_event`](super::trigger_event)): its END is broadcast on drop.
#[must_use = "the END event is emitted when the guard drops"]
pub struct Trigger<'a> {
    listeners: &'a Listeners,
    kind: String,
    data: Vec<u8>,
    failure: Option<String>,
}

impl Trigger<'_> {
    /// Marks the span failed: its END will carry `failure`.
    pub fn fail(&mut self, failure: impl Into<String>) {
        self.failure = Some(failure.into());
    }
}

impl Drop for Trigger<'_> {
    fn drop(&mut self) {
        let mut event =
            Event::unchecked(&self.kind, EventStatus::End, std::mem::take(&mut self.data));
        if let Some(f) = self.failure.take() {
            event = event.with_failure(f);
        } else if std::thread::panicking() {
            event = event.with_failure("panicked");
        }
        self.listeners.broadcast(&event);
    }
}

/// A listener installed for a scope ([`install_listener`](super::install_listener)).
#[must_use = "the listener is uninstalled when the guard drops"]
pub struct Installed<'a, L: Listener + 'static> {
    listeners: &'a Listeners,
    kind: String,
    listener: Arc<L>,
}

impl<L: Listener + 'static> Installed<'_, L> {
    /// The listener.
    pub fn listener(&self) -> &Arc<L> {
        &self.listener
    }
}

impl<L: Listener + 'static> std::ops::Deref for Installed<'_, L> {
    type Target = L;
    fn deref(&self) -> &L {
        &self.listener
    }
}

impl<L: Listener + 'static> Drop for Installed<'_, L> {
    fn drop(&mut self) {
        self.listeners.unregister(&self.kind, &self.listener);
    }
}
