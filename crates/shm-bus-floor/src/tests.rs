//! Unit tests of the floors as data structures, over heap memory, with
//! threads standing in for processes (the cross-process use is covered by
//! the CLI's `bench` tests and by compare/ runs).
//!
//! They also run under Miri (smaller counts and rings), without the
//! `segment` feature, whose test maps a real segment:
//! `cargo +nightly miri test -p shm-bus-floor --no-default-features`.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use crate::{
    AttachError, Consumer, HEADS_BYTES, LINE, LayoutError, MAX_CONSUMERS, PING_PONG_BYTES,
    PingPong, Producer, RingLayout, Side,
};

/// Page-aligned heap memory standing in for a shared mapping; the owner
/// handed to the handles.
struct Heap {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Heap {
    /// `len` bytes: zero, except that `fill` is written to the `pad`
    /// bytes after them (to catch accesses past the region).
    fn new(len: usize, pad: usize, fill: u8) -> Arc<Heap> {
        let layout = Layout::from_size_align(len + pad, 4096).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).unwrap();
        // SAFETY: `len .. len + pad` is inside the allocation.
        unsafe { ptr.as_ptr().add(len).write_bytes(fill, pad) };
        Arc::new(Heap { ptr, layout })
    }

    fn base(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The word at `offset` (8-aligned, in bounds), read atomically.
    fn load(&self, offset: usize) -> u64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.layout.size());
        // SAFETY: in bounds and aligned (asserted); every access to the
        // floors' words is atomic.
        unsafe { (*self.ptr.as_ptr().add(offset).cast::<AtomicU64>()).load(Ordering::Acquire) }
    }

    /// A copy of `len` bytes at `offset`. Only while no producer writes.
    fn bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        assert!(offset + len <= self.layout.size());
        let mut v = vec![0; len];
        // SAFETY: in bounds (asserted); the tests call this only when no
        // thread writes the memory.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), v.as_mut_ptr(), len)
        };
        v
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; no handle is left
        // (each holds an `Arc<Heap>`).
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

// SAFETY: plain heap memory, accessed by the floors' handles under their
// own protocol, from any thread.
unsafe impl Send for Heap {}
// SAFETY: as above; `&Heap` only offers atomic loads and copies made while
// nobody writes.
unsafe impl Sync for Heap {}

/// A zeroed heap ring for `layout`, its producer and consumers.
type HeapRing = (Arc<Heap>, Producer<Arc<Heap>>, Vec<Consumer<Arc<Heap>>>);

fn ring(layout: RingLayout) -> HeapRing {
    let heap = Heap::new(layout.bytes(), 4096, 0xA5);
    // SAFETY: the heap block outlives every handle (each holds the Arc);
    // only these handles, made with one layout, use it; one producer.
    let producer = unsafe { Producer::new(heap.base(), layout.bytes(), layout, heap.clone()) }
        .expect("attach producer");
    let consumers = (0..layout.consumers())
        .map(|c| {
            // SAFETY: as above.
            unsafe { Consumer::new(heap.base(), layout.bytes(), layout, c, heap.clone()) }
                .expect("attach consumer")
        })
        .collect();
    (heap, producer, consumers)
}

fn payload(size: usize, seq: u64) -> Vec<u8> {
    let mut p: Vec<u8> = (0..size).map(|i| i as u8 ^ 0x5A).collect();
    p[..8].copy_from_slice(&seq.to_le_bytes());
    p
}

#[test]
fn layout_rejects_impossible_inputs() {
    let cases: &[(usize, u64, usize, LayoutError)] = &[
        (0, 4096, 1, LayoutError::PayloadTooSmall { size: 0 }),
        (7, 4096, 1, LayoutError::PayloadTooSmall { size: 7 }),
        (64, 4096, 0, LayoutError::NoConsumers),
        (
            64,
            4096,
            MAX_CONSUMERS + 1,
            LayoutError::TooManyConsumers {
                consumers: MAX_CONSUMERS + 1,
                max: MAX_CONSUMERS,
            },
        ),
        (usize::MAX - 8, 4096, 1, LayoutError::TooLarge),
        (64, u64::MAX, 1, LayoutError::TooLarge),
    ];
    for &(size, ring, consumers, want) in cases {
        assert_eq!(
            RingLayout::new(size, ring, consumers),
            Err(want),
            "size {size}, ring {ring}, consumers {consumers}"
        );
        assert!(!want.to_string().is_empty());
    }
    assert!(RingLayout::new(8, 0, MAX_CONSUMERS).is_ok());
}

#[test]
fn layout_rounds_slots_to_cache_lines() {
    // (size, ring bytes, consumers) -> (slot bytes, slots, batch, bytes)
    type Case = ((usize, u64, usize), (usize, u64, u64, usize));
    let cases: &[Case] = &[
        ((64, 1 << 20, 1), (64, 16384, 256, HEADS_BYTES + (1 << 20))),
        ((8, 1 << 20, 2), (64, 16384, 256, HEADS_BYTES + (1 << 20))),
        ((65, 4096, 1), (128, 32, 1, HEADS_BYTES + 4096)),
        (
            (1024, 1 << 20, 2),
            (1024, 1024, 16, HEADS_BYTES + (1 << 20)),
        ),
        // Fewer than two slots' worth: two slots anyway.
        ((100, 100, 1), (128, 2, 1, HEADS_BYTES + 256)),
        ((8, 0, 1), (64, 2, 1, HEADS_BYTES + 128)),
    ];
    for &((size, ring, consumers), (slot, slots, batch, bytes)) in cases {
        let l = RingLayout::new(size, ring, consumers).unwrap();
        assert_eq!(
            (l.slot_bytes(), l.slots(), l.batch(), l.bytes()),
            (slot, slots, batch, bytes),
            "size {size}, ring {ring}"
        );
        assert_eq!((l.size(), l.consumers()), (size, consumers));
    }
}

#[test]
fn attach_checks_alignment_length_and_index() {
    let layout = RingLayout::new(64, 4096, 2).unwrap();
    let heap = Heap::new(layout.bytes() + 64, 0, 0);
    // Each call fails before touching the memory; the block outlives the
    // handles and nothing else uses it.
    let misaligned = NonNull::new(heap.base().as_ptr().wrapping_add(8)).unwrap();
    // SAFETY: as above.
    let r = unsafe { Producer::new(misaligned, layout.bytes(), layout, ()) };
    assert!(matches!(r, Err(AttachError::Misaligned { align: 64, .. })));
    // SAFETY: as above.
    let r = unsafe { Consumer::new(heap.base(), layout.bytes() - 1, layout, 0, ()) };
    assert!(matches!(r, Err(AttachError::TooSmall { needed, .. }) if needed == layout.bytes()));
    // SAFETY: as above.
    let r = unsafe { Consumer::new(heap.base(), layout.bytes(), layout, 2, ()) };
    assert!(matches!(
        r,
        Err(AttachError::NoSuchConsumer {
            index: 2,
            consumers: 2
        })
    ));
    // SAFETY: as above.
    let r = unsafe { PingPong::new(heap.base(), PING_PONG_BYTES - 1, Side::Ping, ()) };
    assert!(matches!(r, Err(AttachError::TooSmall { .. })));
    // SAFETY: as above.
    let r = unsafe { PingPong::new(misaligned, PING_PONG_BYTES, Side::Echo, ()) };
    assert!(matches!(r, Err(AttachError::Misaligned { .. })));
}

#[test]
fn message_is_flag_then_payload_after_its_first_eight_bytes() {
    let layout = RingLayout::new(100, 4096, 1).unwrap();
    let (heap, mut tx, mut rx) = ring(layout);
    let mut rx = rx.remove(0);
    assert_eq!(rx.try_recv(), None, "a fresh ring is empty");
    let p = payload(100, 0xDEAD_BEEF);
    assert!(tx.try_send(&p));
    assert_eq!(tx.sent(), 1);
    // The slot: the flag (sequence number 0, plus one), then the payload's
    // bytes 8..; its first 8 bytes are replaced by the flag.
    let slot = heap.bytes(HEADS_BYTES, 100);
    assert_eq!(&slot[..8], &1u64.to_le_bytes());
    assert_eq!(&slot[8..], &p[8..]);
    // Nothing written past the message in its slot.
    assert_eq!(heap.bytes(HEADS_BYTES + 100, 28), vec![0; 28]);
    assert_eq!(rx.try_recv(), Some(0));
    assert_eq!(rx.try_recv(), None);
    assert_eq!(rx.received(), 1);
}

#[test]
#[should_panic(expected = "exactly the layout's size")]
fn a_message_of_another_size_panics() {
    let (_heap, mut tx, _rx) = ring(RingLayout::new(64, 4096, 1).unwrap());
    tx.try_send(&[0; 63]);
}

#[test]
fn a_full_ring_waits_for_the_slowest_consumer() {
    // 4 slots, batch 1: each consumer publishes its head on every message.
    let layout = RingLayout::new(64, 256, 2).unwrap();
    assert_eq!((layout.slots(), layout.batch()), (4, 1));
    let (_heap, mut tx, mut rx) = ring(layout);
    let p = payload(64, 0);
    for _ in 0..4 {
        assert!(tx.try_send(&p));
    }
    assert!(!tx.try_send(&p), "full");
    for i in 0..4 {
        assert_eq!(rx[0].try_recv(), Some(i));
    }
    assert!(!tx.try_send(&p), "consumer 1 has read nothing");
    assert_eq!(rx[1].try_recv(), Some(0));
    assert!(tx.try_send(&p), "slot of message 0 is free");
    assert!(!tx.try_send(&p));
    assert_eq!(rx[0].try_recv(), Some(4));
    assert_eq!(rx[0].try_recv(), None);
    assert_eq!(tx.sent(), 5);
}

#[test]
fn heads_are_published_in_batches_or_when_caught_up() {
    // 256 slots: heads published every 4 messages.
    let layout = RingLayout::new(64, 256 * 64, 1).unwrap();
    assert_eq!(layout.batch(), 4);
    let (heap, mut tx, mut rx) = ring(layout);
    let mut rx = rx.remove(0);
    let head = || heap.load(LINE);
    let p = payload(64, 0);
    for _ in 0..256 {
        assert!(tx.try_send(&p));
    }
    for i in 0..3 {
        assert_eq!(rx.try_recv(), Some(i));
    }
    assert_eq!(head(), 0, "3 < batch: not published yet");
    assert!(!tx.try_send(&p), "the producer cannot see the reads yet");
    assert_eq!(rx.try_recv(), Some(3));
    assert_eq!(head(), 4, "published after a batch");
    assert!(tx.try_send(&p));
    for i in 4..257 {
        assert_eq!(rx.try_recv(), Some(i));
    }
    assert_eq!(head(), 256);
    assert_eq!(rx.try_recv(), None);
    assert_eq!(head(), 257, "published when caught up");
    // Nothing else in the header was written (heads are line 1 on).
    assert_eq!(heap.load(0), 0);
    assert_eq!(heap.load(2 * LINE), 0);
}

#[test]
fn every_consumer_gets_every_message_in_order_across_threads() {
    for (size, consumers) in [(8, 1), (64, 1), (200, 2), (4096, 3)] {
        // Under Miri, a few slots, so that the ring still fills and wraps.
        let ring_bytes = if cfg!(miri) { 512 } else { 64 * 1024 };
        let layout = RingLayout::new(size, ring_bytes, consumers).unwrap();
        let count = if cfg!(miri) {
            300
        } else {
            200_000u64.min(64 * 1024 * 1024 / size as u64)
        };
        let (_heap, mut tx, rx) = ring(layout);
        let readers: Vec<_> = rx
            .into_iter()
            .map(|mut rx| {
                thread::spawn(move || {
                    for i in 0..count {
                        let seq = loop {
                            if let Some(s) = rx.try_recv() {
                                break s;
                            }
                            thread::yield_now();
                        };
                        assert_eq!(seq, i);
                    }
                    assert_eq!(rx.try_recv(), None);
                })
            })
            .collect();
        let mut p = payload(size, 0);
        for i in 0..count {
            p[..8].copy_from_slice(&i.to_le_bytes());
            while !tx.try_send(&p) {
                thread::yield_now();
            }
        }
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(tx.sent(), count);
    }
}

#[test]
fn ping_pong_answers_each_round_trip() {
    let heap = Heap::new(PING_PONG_BYTES, 64, 0xA5);
    // SAFETY: the block outlives both ends (each holds the Arc); only the
    // two ends use it, atomically.
    let (mut ping, mut echo) = unsafe {
        (
            PingPong::new(heap.base(), PING_PONG_BYTES, Side::Ping, heap.clone()).unwrap(),
            PingPong::new(heap.base(), PING_PONG_BYTES, Side::Echo, heap.clone()).unwrap(),
        )
    };
    assert_eq!(echo.try_recv(), None, "nothing sent yet");
    ping.send(0);
    assert_eq!(echo.try_recv(), Some(0));
    assert_eq!(echo.try_recv(), None, "seen once");
    assert_eq!((heap.load(0), heap.load(LINE)), (1, 0));
    let count = if cfg!(miri) { 200 } else { 100_000u64 };
    let echo = thread::spawn(move || {
        echo.send(0);
        let mut answered = 1;
        while answered < count {
            if let Some(seq) = echo.try_recv() {
                echo.send(seq);
                answered += 1;
            } else {
                std::hint::spin_loop();
            }
        }
    });
    assert_eq!(
        std::iter::repeat_with(|| ping.try_recv())
            .find_map(|x| x)
            .unwrap(),
        0
    );
    for i in 1..count {
        ping.send(i);
        let got = loop {
            if let Some(s) = ping.try_recv() {
                break s;
            }
            std::hint::spin_loop();
        };
        assert_eq!(got, i);
    }
    echo.join().unwrap();
}

#[cfg(feature = "segment")]
#[test]
fn segment_floors_open_with_the_creators_layout() {
    use crate::segment::{self, SegmentError};
    use shm_bus_alloc::Segment;

    struct Unlink(String);
    impl Drop for Unlink {
        fn drop(&mut self) {
            let _ = Segment::unlink(&self.0);
        }
    }
    let name = format!("__floor-test-{}-ring", std::process::id());
    let _guard = Unlink(name.clone());
    let mut tx = segment::create_ring(&name, 200, 64 * 1024, 2).unwrap();
    let mut rx0 = segment::open_ring(&name, 0).unwrap();
    let mut rx1 = segment::open_ring(&name, 1).unwrap();
    assert_eq!(rx0.layout(), tx.layout());
    assert!(matches!(
        segment::open_ring(&name, 2),
        Err(SegmentError::Attach(AttachError::NoSuchConsumer { .. }))
    ));
    assert!(matches!(
        segment::open_ping_pong(&name),
        Err(SegmentError::WrongKind { .. })
    ));
    assert_eq!(rx0.try_recv(), None, "the arena block was zeroed");
    assert!(tx.try_send(&payload(200, 0)));
    assert_eq!((rx0.try_recv(), rx1.try_recv()), (Some(0), Some(0)));
    assert!(matches!(
        segment::create_ring(&name, 200, 4096, 1),
        Err(SegmentError::Segment(_))
    ));

    let name = format!("__floor-test-{}-pp", std::process::id());
    let _guard = Unlink(name.clone());
    let mut ping = segment::create_ping_pong(&name).unwrap();
    let mut echo = segment::open_ping_pong(&name).unwrap();
    assert_eq!(echo.try_recv(), None);
    ping.send(41);
    assert_eq!(echo.try_recv(), Some(41));
    echo.send(41);
    assert_eq!(ping.try_recv(), Some(41));
    assert!(matches!(
        segment::open_ring(&name, 0),
        Err(SegmentError::WrongKind { .. })
    ));
}
