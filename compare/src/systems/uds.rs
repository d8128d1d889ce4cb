//! A Unix domain socket: a connected `AF_UNIX` `SOCK_STREAM` pair between
//! the two processes (an abstract address, so there is no file to remove),
//! nonblocking on both sides and spun on `EAGAIN`, so it is busy-polled
//! like the shared-memory systems. Kernel-default socket buffers. It
//! necessarily copies: every message is one `write` of the whole payload
//! into the kernel and `read`s of the whole payload out of it.
//!
//! With two subscribers the producer holds one connection per subscriber
//! and writes every message to each.

use std::io::{ErrorKind, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

use anyhow::{Context, Result, bail};

use super::{PingPong, Sink, Source, seq_of};
use crate::proc::{Patience, Spec};

fn addr(spec: &Spec) -> Result<SocketAddr> {
    Ok(SocketAddr::from_abstract_name(spec.uds_name().as_bytes())?)
}

/// The creator's side before `GO`: bound and listening.
pub struct Listening(UnixListener);

pub fn listen(spec: &Spec) -> Result<Listening> {
    Ok(Listening(
        UnixListener::bind_addr(&addr(spec)?).context("binding the Unix socket")?,
    ))
}

impl Listening {
    /// Accepts `n` connections (already queued: attachers connect before
    /// they report READY).
    pub fn accept(self, n: u32) -> Result<Vec<UnixStream>> {
        let mut streams = Vec::new();
        for _ in 0..n {
            let (s, _) = self.0.accept()?;
            s.set_nonblocking(true)?;
            streams.push(s);
        }
        Ok(streams)
    }
}

pub fn connect(spec: &Spec) -> Result<UnixStream> {
    let s = UnixStream::connect_addr(&addr(spec)?).context("connecting the Unix socket")?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Reads one `size`-byte message in as many polls as it takes.
struct Reader {
    buf: Vec<u8>,
    have: usize,
}

impl Reader {
    fn new(size: usize) -> Reader {
        Reader {
            buf: vec![0; size],
            have: 0,
        }
    }

    #[inline]
    fn poll(&mut self, s: &mut UnixStream) -> Result<Option<u64>> {
        match s.read(&mut self.buf[self.have..]) {
            Ok(0) => bail!("the peer closed the socket"),
            Ok(n) => {
                self.have += n;
                if self.have == self.buf.len() {
                    self.have = 0;
                    Ok(Some(seq_of(&self.buf)))
                } else {
                    Ok(None)
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Writes as much of `data[*done..]` as the socket takes now; `true` once
/// all of it is written.
#[inline]
fn push(s: &mut UnixStream, data: &[u8], done: &mut usize) -> Result<bool> {
    while *done < data.len() {
        match s.write(&data[*done..]) {
            Ok(n) => *done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

// ------------------------------------------------------------- latency

pub struct Lat {
    stream: UnixStream,
    out: Vec<u8>,
    reader: Reader,
}

impl Lat {
    pub fn new(stream: UnixStream, size: usize) -> Lat {
        Lat {
            stream,
            out: vec![0; size],
            reader: Reader::new(size),
        }
    }
}

impl PingPong for Lat {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<()> {
        self.out[..8].copy_from_slice(&seq.to_le_bytes());
        let mut done = 0;
        let mut patience = Patience::new();
        while !push(&mut self.stream, &self.out, &mut done)? {
            patience.idle()?;
        }
        Ok(())
    }

    #[inline]
    fn try_recv(&mut self) -> Result<Option<u64>> {
        self.reader.poll(&mut self.stream)
    }
}

// ---------------------------------------------------------- throughput

pub struct Producer {
    streams: Vec<UnixStream>,
    done: Vec<usize>,
}

impl Producer {
    pub fn new(streams: Vec<UnixStream>) -> Producer {
        Producer {
            done: vec![0; streams.len()],
            streams,
        }
    }
}

impl Source for Producer {
    #[inline]
    fn try_send(&mut self, payload: &[u8]) -> Result<bool> {
        let mut all = true;
        for (s, done) in self.streams.iter_mut().zip(&mut self.done) {
            all &= push(s, payload, done)?;
        }
        if all {
            self.done.fill(0);
        }
        Ok(all)
    }
}

pub struct Consumer {
    stream: UnixStream,
    reader: Reader,
}

impl Consumer {
    pub fn new(stream: UnixStream, size: usize) -> Consumer {
        Consumer {
            stream,
            reader: Reader::new(size),
        }
    }
}

impl Sink for Consumer {
    #[inline]
    fn try_recv(&mut self) -> Result<Option<u64>> {
        self.reader.poll(&mut self.stream)
    }
}
