//! The latency floor when a message moves more than one cache line: a
//! ping-pong whose every one-way message writes `lines - 1` whole data
//! lines and then its flag word.
//!
//! A bus message moves more than the one line of [`ping_pong`]: a 64 B
//! shm-bus record and the next record's header span two cache lines when
//! the record starts on a line boundary and three when it starts mid-line.
//! This floor moves the same number of lines with no bus logic in the way,
//! so "bus / floor with as many lines" says what the bus itself costs and
//! "floor with two lines / floor with one" what the second line costs.
//!
//! # Layout
//!
//! ```text
//! offset 0        Ping's flag word  (its own 128-byte line pair)
//! offset 128      Echo's flag word  (its own 128-byte line pair)
//! offset 256      Ping's data area  (LINES_AREA_BYTES)
//! offset 256 + A  Echo's data area  (LINES_AREA_BYTES)
//! ```
//!
//! Message `seq` of a side goes to the next `lines - 1` lines of its data
//! area (stepping through the area as a ring does, so the lines are not
//! the same every time), each of their eight words set to `seq + 1`
//! (Relaxed), then its flag to `seq + 1` (Release). The receiver loads the
//! flag (Acquire) and checks the first word of each data line.
//!
//! [`ping_pong`]: crate::ping_pong

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ping_pong::Side;
use crate::{AttachError, LINE, check_region};

/// Bytes of one side's data area: 1 MiB.
pub const LINES_AREA_BYTES: usize = 1 << 20;
/// Bytes of memory a [`LinesPingPong`] needs: two flags, two data areas.
pub const LINES_PING_PONG_BYTES: usize = 2 * LINE + 2 * LINES_AREA_BYTES;
/// The most lines a message may move.
pub const MAX_LINES: usize = 8;
/// A cache line.
const CACHE_LINE: usize = 64;
const WORDS_PER_LINE: usize = CACHE_LINE / 8;

/// A received message whose data lines did not hold what its flag
/// announced: the floor's own check failed (never expected: it would
/// mean a store was seen before the one ordered ahead of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornMessage {
    /// The message's sequence number (from its flag).
    pub seq: u64,
    /// The data line that disagreed (0 is the first).
    pub line: usize,
    /// What that line's first word held (`seq + 1` was expected).
    pub found: u64,
}

impl fmt::Display for TornMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "floor message {} arrived with data line {} holding {} (not {})",
            self.seq,
            self.line,
            self.found,
            self.seq.wrapping_add(1)
        )
    }
}

impl std::error::Error for TornMessage {}

/// One end of either latency floor ([`PingPong`](crate::PingPong) or
/// [`LinesPingPong`]), for code that measures both the same way.
pub trait PingPongEnd {
    /// Sends `seq` (see the types' own `send`).
    fn send(&mut self, seq: u64);
    /// Polls once: what the other end sent last, if it changed since the
    /// last poll.
    ///
    /// # Errors
    ///
    /// [`TornMessage`] from a [`LinesPingPong`] whose data line disagreed
    /// with its flag (never from a one-line [`PingPong`](crate::PingPong)).
    fn poll(&mut self) -> Result<Option<u64>, TornMessage>;
}

impl<O> PingPongEnd for crate::PingPong<O> {
    #[inline]
    fn send(&mut self, seq: u64) {
        crate::PingPong::send(self, seq);
    }

    #[inline]
    fn poll(&mut self) -> Result<Option<u64>, TornMessage> {
        Ok(self.try_recv())
    }
}

impl<O> PingPongEnd for LinesPingPong<O> {
    #[inline]
    fn send(&mut self, seq: u64) {
        LinesPingPong::send(self, seq);
    }

    #[inline]
    fn poll(&mut self) -> Result<Option<u64>, TornMessage> {
        self.try_recv()
    }
}

/// One end of a ping-pong whose messages move `lines` cache lines.
pub struct LinesPingPong<O> {
    base: NonNull<u8>,
    /// Offsets of this side's flag and data area, and the other side's.
    out_flag: usize,
    in_flag: usize,
    out_area: usize,
    in_area: usize,
    /// Lines per message (1..=MAX_LINES).
    lines: usize,
    /// The flag value last seen from the other side.
    last: u64,
    /// Keeps the memory alive.
    _owner: O,
}

// SAFETY: an end only makes atomic accesses to the region, from whichever
// thread it runs on; the pointer stays valid as long as `_owner`, which
// moves with it (hence `O: Send`).
unsafe impl<O: Send> Send for LinesPingPong<O> {}

impl<O> LinesPingPong<O> {
    /// The `side` end at `base`, moving `lines` cache lines per message
    /// (clamped to `1..=`[`MAX_LINES`]), keeping `owner` (which keeps the
    /// memory mapped) until it is dropped.
    ///
    /// # Errors
    ///
    /// [`AttachError::Misaligned`] when `base` is not 64-byte aligned;
    /// [`AttachError::TooSmall`] when `len <` [`LINES_PING_PONG_BYTES`].
    ///
    /// # Safety
    ///
    /// `base` points to `len` bytes that stay valid for reads and writes
    /// for as long as `owner` lives, and whose first
    /// [`LINES_PING_PONG_BYTES`] are accessed by others (in any process)
    /// only atomically (as by another `LinesPingPong`) while this one
    /// lives.
    ///
    /// For the ping-pong to work (not for soundness): those bytes were
    /// zero before the first end was made, each side has one end, and both
    /// ends move the same number of lines.
    pub unsafe fn new(
        base: NonNull<u8>,
        len: usize,
        side: Side,
        lines: usize,
        owner: O,
    ) -> Result<LinesPingPong<O>, AttachError> {
        check_region(base, len, LINES_PING_PONG_BYTES)?;
        let (ping_area, echo_area) = (2 * LINE, 2 * LINE + LINES_AREA_BYTES);
        let (out_flag, in_flag, out_area, in_area) = match side {
            Side::Ping => (0, LINE, ping_area, echo_area),
            Side::Echo => (LINE, 0, echo_area, ping_area),
        };
        Ok(LinesPingPong {
            base,
            out_flag,
            in_flag,
            out_area,
            in_area,
            lines: lines.clamp(1, MAX_LINES),
            last: 0,
            _owner: owner,
        })
    }

    /// Lines per message.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Moves `lines` lines per message from now on (clamped to
    /// `1..=`[`MAX_LINES`]); the other end must switch at the same
    /// message.
    pub fn set_lines(&mut self, lines: usize) {
        self.lines = lines.clamp(1, MAX_LINES);
    }

    #[inline]
    fn word(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset % 8 == 0 && offset + 8 <= LINES_PING_PONG_BYTES);
        // SAFETY: every offset passed here is a flag (0 or LINE) or a word
        // of a data line inside one area (`data_line` keeps whole
        // messages inside it): inside the region (`new` checked `len >=
        // LINES_PING_PONG_BYTES`), 8-byte aligned (64-aligned base), only
        // accessed atomically (the contract of `new`), kept mapped by
        // `_owner` for as long as `self` lives.
        unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// Offset of data line `l` of message `seq` in the area at `area`.
    #[inline]
    fn data_line(&self, area: usize, seq: u64, l: usize) -> usize {
        let per = (self.lines - 1) * CACHE_LINE;
        // Whole messages per area: a message never crosses its end.
        let slots = (LINES_AREA_BYTES / per) as u64;
        area + (seq % slots) as usize * per + l * CACHE_LINE
    }

    /// Sends `seq` (any value but `u64::MAX`, which reads as "nothing
    /// sent"): its data lines, then its flag.
    #[inline]
    pub fn send(&mut self, seq: u64) {
        let v = seq.wrapping_add(1);
        for l in 0..self.lines - 1 {
            let at = self.data_line(self.out_area, seq, l);
            for i in 0..WORDS_PER_LINE {
                // Relaxed: published by the Release flag store below.
                self.word(at + 8 * i).store(v, Ordering::Relaxed);
            }
        }
        // Release: pairs with the Acquire flag load in the other end's
        // `try_recv`: the data lines are written before the flag is seen.
        self.word(self.out_flag).store(v, Ordering::Release);
    }

    /// Polls once: the sequence number the other end sent last, if its
    /// flag changed since the last poll, once the first word of each of
    /// its data lines has been read and checked.
    ///
    /// # Errors
    ///
    /// [`TornMessage`] when a data line does not hold the message (never
    /// expected; the flag is consumed either way).
    #[inline]
    pub fn try_recv(&mut self) -> Result<Option<u64>, TornMessage> {
        // Acquire: pairs with the Release flag store in the other end's
        // `send`.
        let v = self.word(self.in_flag).load(Ordering::Acquire);
        if v == self.last {
            return Ok(None);
        }
        self.last = v;
        let seq = v.wrapping_sub(1);
        for line in 0..self.lines - 1 {
            // Relaxed: ordered after the Acquire flag load.
            let found = self
                .word(self.data_line(self.in_area, seq, line))
                .load(Ordering::Relaxed);
            if found != v {
                return Err(TornMessage { seq, line, found });
            }
        }
        Ok(Some(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zeroed, 64-byte aligned heap region of `LINES_PING_PONG_BYTES`.
    fn region() -> (Vec<u128>, NonNull<u8>, usize) {
        let mut mem = vec![0u128; LINES_PING_PONG_BYTES / 16 + 4];
        let skew = mem.as_ptr().align_offset(64);
        let base = NonNull::new(mem[skew..].as_mut_ptr().cast::<u8>()).unwrap();
        let len = (mem.len() - skew) * 16;
        (mem, base, len)
    }

    #[test]
    fn messages_of_every_line_count_cross_both_ways_through_the_whole_area() {
        let (_mem, base, len) = region();
        // SAFETY: `mem` (zeroed) outlives both ends, its only users.
        let (mut ping, mut echo) = unsafe {
            (
                LinesPingPong::new(base, len, Side::Ping, 1, ()).unwrap(),
                LinesPingPong::new(base, len, Side::Echo, 1, ()).unwrap(),
            )
        };
        let mut seq = 0u64;
        for lines in 1..=MAX_LINES {
            ping.set_lines(lines);
            echo.set_lines(lines);
            // Enough messages to wrap the data area at 2 lines (16,384
            // messages per area) and at every other count (under Miri, a
            // few: the wrap is plain arithmetic, checked natively).
            for _ in 0..if cfg!(miri) { 40 } else { 20_000 } {
                assert_eq!(echo.try_recv(), Ok(None));
                ping.send(seq);
                assert_eq!(echo.try_recv(), Ok(Some(seq)));
                assert_eq!(ping.try_recv(), Ok(None));
                echo.send(seq);
                assert_eq!(ping.try_recv(), Ok(Some(seq)));
                seq += 1;
            }
        }
    }

    #[test]
    fn a_data_line_that_disagrees_with_its_flag_is_reported() {
        let (_mem, base, len) = region();
        // SAFETY: as above.
        let (mut ping, mut echo) = unsafe {
            (
                LinesPingPong::new(base, len, Side::Ping, 3, ()).unwrap(),
                LinesPingPong::new(base, len, Side::Echo, 3, ()).unwrap(),
            )
        };
        ping.send(5);
        // Spoil the second data line of message 5 behind the floor's back.
        let at = ping.data_line(ping.out_area, 5, 1);
        ping.word(at).store(99, Ordering::Relaxed);
        assert_eq!(
            echo.try_recv(),
            Err(TornMessage {
                seq: 5,
                line: 1,
                found: 99
            })
        );
        assert_eq!(echo.try_recv(), Ok(None));
    }

    #[test]
    fn short_or_misaligned_memory_is_refused() {
        let (_mem, base, len) = region();
        // SAFETY: refused before any access.
        let short =
            unsafe { LinesPingPong::new(base, LINES_PING_PONG_BYTES - 8, Side::Ping, 2, ()) };
        assert!(matches!(short, Err(AttachError::TooSmall { .. })));
        let skewed = NonNull::new(base.as_ptr().wrapping_add(8)).unwrap();
        // SAFETY: refused before any access.
        let bad = unsafe { LinesPingPong::new(skewed, len - 8, Side::Ping, 2, ()) };
        assert!(matches!(bad, Err(AttachError::Misaligned { .. })));
    }
}
