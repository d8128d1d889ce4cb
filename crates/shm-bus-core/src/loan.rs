//! Loans: bytes reserved in a publisher's ring for one record, filled in
//! place, then committed. [`Loan`] borrows its publisher; [`OwnedLoan`]
//! holds it, so a loan can be kept between calls (pre-loaning: reserve the
//! next record before its data exists, as iceoryx2's benchmark does, and
//! only write and commit when it does).
//!
//! Either way one reservation exists at a time: a `Loan` borrows the
//! publisher mutably, an `OwnedLoan` owns it, so the compiler rules out a
//! second reservation of the same bytes.

use std::ops::DerefMut;

use shm_bus_topic::TopicId;

use crate::error::PublishError;
use crate::publisher::{AsTopic, Publisher, Wait};
use crate::ring::Reservation;

/// Bytes loaned inside the ring for one record. Write the payload, then
/// [`commit`](Loan::commit); dropping it uncommitted publishes nothing.
pub type Loan<'a> = LoanOf<&'a mut Publisher>;

/// A loan that owns its publisher: it can be stored and kept across calls
/// (a ping-pong that pre-loans its next message while it waits for the
/// answer). Get one with [`Publisher::into_loan`]; [`commit`](Self::commit)
/// or [`cancel`](Self::cancel) gives the publisher back, and
/// [`commit_and_reloan`](Self::commit_and_reloan) loans the next record at
/// once. Dropping it publishes nothing and drops the publisher. The
/// publisher is boxed: a loan moves on every commit and re-loan, and a
/// publisher is a few hundred bytes.
pub type OwnedLoan = LoanOf<Box<Publisher>>;

/// A reserved, not yet committed record of publisher `P` (`&mut
/// Publisher`: a [`Loan`]; `Box<Publisher>`: an [`OwnedLoan`]).
pub struct LoanOf<P: DerefMut<Target = Publisher>> {
    publisher: P,
    res: Reservation,
    topic: TopicId,
}

impl<P: DerefMut<Target = Publisher>> LoanOf<P> {
    pub(crate) fn new(publisher: P, res: Reservation, topic: TopicId) -> Self {
        LoanOf {
            publisher,
            res,
            topic,
        }
    }

    /// The loaned payload bytes: inside the shared ring under Block policy
    /// (zero copy), in the publisher's staging buffer under Overwrite
    /// (copied into the ring with atomic word stores at commit, because a
    /// lapped reader may be reading those ring bytes). Their initial
    /// content is unspecified; they are 32-byte aligned.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.publisher.loan_bytes(&self.res)
    }

    /// The payload length.
    pub fn len(&self) -> usize {
        self.res.len as usize
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.res.len == 0
    }

    /// The topic id the record will carry.
    pub fn topic_id(&self) -> TopicId {
        self.topic
    }

    /// The publisher that holds the loaned bytes.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }
}

impl LoanOf<&mut Publisher> {
    /// Publishes the record. Returns its sequence number.
    #[inline]
    pub fn commit(self) -> u64 {
        self.publisher.commit_loan(self.res, self.topic)
    }
}

impl std::fmt::Debug for OwnedLoan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedLoan")
            .field("publisher", &self.publisher)
            .field("len", &self.res.len)
            .field("topic", &self.topic)
            .finish()
    }
}

/// Why [`Publisher::into_loan`] (or a re-loan) failed, with the publisher,
/// which is not lost.
#[derive(Debug)]
pub struct OwnedLoanError {
    /// The publisher, as it was before the attempt (a re-loan's record was
    /// committed).
    pub publisher: Box<Publisher>,
    /// What went wrong.
    pub error: PublishError,
}

impl std::fmt::Display for OwnedLoanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for OwnedLoanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl Publisher {
    /// Loans `len` bytes for a record on `topic`, as [`loan`](Self::loan)
    /// does, in a loan that owns this publisher. Blocks while the ring is
    /// full (Block policy).
    ///
    /// # Errors
    /// As [`loan`](Self::loan); the publisher comes back in the error.
    pub fn into_loan(
        self,
        topic: &(impl AsTopic + ?Sized),
        len: usize,
    ) -> Result<OwnedLoan, OwnedLoanError> {
        self.into_loan_with(topic, len, Wait::Forever)
    }

    /// Like [`into_loan`](Self::into_loan), but answers
    /// [`PublishError::Full`] at once when the ring is full.
    ///
    /// # Errors
    /// As [`try_loan`](Self::try_loan); the publisher comes back in the
    /// error.
    pub fn try_into_loan(
        self,
        topic: &(impl AsTopic + ?Sized),
        len: usize,
    ) -> Result<OwnedLoan, OwnedLoanError> {
        self.into_loan_with(topic, len, Wait::No)
    }

    fn into_loan_with(
        self,
        topic: &(impl AsTopic + ?Sized),
        len: usize,
        wait: Wait,
    ) -> Result<OwnedLoan, OwnedLoanError> {
        let mut publisher = Box::new(self);
        let reserved = topic
            .topic_id(&mut publisher)
            .map_err(PublishError::from)
            .and_then(|topic| Ok((topic, publisher.reserve_loan(len, wait)?)));
        match reserved {
            Ok((topic, res)) => Ok(OwnedLoan::new(publisher, res, topic)),
            Err(error) => Err(OwnedLoanError { publisher, error }),
        }
    }
}

impl OwnedLoan {
    /// Publishes the record; gives back the publisher and the record's
    /// sequence number.
    #[inline]
    pub fn commit(mut self) -> (Publisher, u64) {
        let seq = self.publisher.commit_loan(self.res, self.topic);
        (*self.publisher, seq)
    }

    /// Publishes the record and loans `len` bytes for the next one on the
    /// same topic (blocking while the ring is full). Returns the new loan
    /// and the committed record's sequence number.
    ///
    /// # Errors
    /// As [`Publisher::into_loan`]; the record was committed and the
    /// publisher comes back in the error.
    #[inline]
    pub fn commit_and_reloan(mut self, len: usize) -> Result<(OwnedLoan, u64), OwnedLoanError> {
        let seq = self.publisher.commit_loan(self.res, self.topic);
        match self.publisher.reserve_loan(len, Wait::Forever) {
            Ok(res) => {
                self.res = res;
                Ok((self, seq))
            }
            Err(error) => Err(OwnedLoanError {
                publisher: self.publisher,
                error,
            }),
        }
    }

    /// Gives the publisher back without publishing anything.
    pub fn cancel(self) -> Publisher {
        *self.publisher
    }
}
