//! The bus itself: the shared topic table, one single-producer /
//! multi-consumer ring per producer, zero-copy publish and receive,
//! waiting and waking, liveness and reaping of dead peers, and the
//! `EventEngine`, timer and listener APIs built on top.
//!
//! This crate is built on `shm-bus-alloc` (the segment) and
//! `shm-bus-topic` (the topic language).
#![warn(missing_docs)]
