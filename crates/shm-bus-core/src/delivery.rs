//! How a subscriber hands out payloads — the policy's guarantee, in the
//! type of the [`Subscriber`](crate::Subscriber) and its
//! [`Sample`](crate::Sample).
//!
//! Under [`Policy::Block`] a producer never reuses a record before every
//! subscriber's cursor has passed it, so a sample can borrow its payload
//! in the ring (zero copy). Under [`Policy::Overwrite`] a producer that
//! laps a reader rewrites bytes the reader may be looking at: handing out
//! a reference to them would be a data race, whatever is checked
//! afterwards. There a sample holds a *validated copy*: the payload is
//! copied out of the ring with atomic word loads, checked against the
//! producer's overwrite mark (a seqlock), and handed out only if nothing
//! was rewritten. A record rewritten while it was copied is never returned:
//! the next receive reports it in [`RecvError::Lagged`](crate::RecvError).
//!
//! | delivery | Block bus | Overwrite bus |
//! |---|---|---|
//! | [`Borrowed`] | payload borrowed in the ring | refused: [`BusError::BorrowNeedsBlock`] |
//! | [`Copied`] | validated private copy | validated private copy |
//! | [`AnyPolicy`] (what [`Bus::subscriber`](crate::Bus::subscriber) gives) | payload borrowed in the ring | validated private copy |
//!
//! Every payload a sample hands out stays unchanged while the sample
//! lives, whatever the delivery: `payload()`, `as_pod()` and `decode()`
//! (which may borrow `&str`s from the payload) are sound for all three.
//! The copy lives in the subscriber (one buffer, reused), 32-byte aligned
//! like the ring, so `as_pod` works the same on either.

use crate::config::Policy;
use crate::error::BusError;

mod sealed {
    pub trait Sealed {}
}

/// A delivery mode of a [`Subscriber`](crate::Subscriber): [`Borrowed`],
/// [`Copied`] or [`AnyPolicy`]. Sealed.
pub trait Delivery: sealed::Sealed + Send + Sync + 'static {
    /// Whether samples on a bus of `policy` are copies (`Ok(true)`),
    /// borrows (`Ok(false)`), or this mode cannot serve that policy.
    #[doc(hidden)]
    fn copies(policy: Policy) -> Result<bool, BusError>;
}

/// Zero copy: samples borrow their payload in the producer's ring. Only on
/// [`Policy::Block`] buses, where the producer cannot reuse a record before
/// the sample is dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Borrowed;

/// Samples hold a validated private copy of their payload, on any bus.
#[derive(Debug, Clone, Copy, Default)]
pub struct Copied;

/// Whatever the bus's policy allows: borrowed under [`Policy::Block`], a
/// validated copy under [`Policy::Overwrite`]. The default, and what code
/// that serves buses of either policy uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyPolicy;

impl sealed::Sealed for Borrowed {}
impl sealed::Sealed for Copied {}
impl sealed::Sealed for AnyPolicy {}

impl Delivery for Borrowed {
    fn copies(policy: Policy) -> Result<bool, BusError> {
        match policy {
            Policy::Block => Ok(false),
            Policy::Overwrite => Err(BusError::BorrowNeedsBlock { policy }),
        }
    }
}

impl Delivery for Copied {
    fn copies(_: Policy) -> Result<bool, BusError> {
        Ok(true)
    }
}

impl Delivery for AnyPolicy {
    fn copies(policy: Policy) -> Result<bool, BusError> {
        Ok(policy == Policy::Overwrite)
    }
}
