//! How `(args, kwargs)` travel in one bus record.
//!
//! - **Verbatim**: one positional argument that exports a flat byte
//!   buffer (bytes, bytearray, a 1-D `B` memoryview), no keyword
//!   arguments: the record's payload is exactly those bytes, written once
//!   into the ring. This is also what a Rust producer or
//!   `shm-bus publish` sends, and what they receive from Python.
//! - **Framed**: everything else starts with the 8-byte [`MAGIC`], then a
//!   kind byte:
//!   - `KIND_BUFFERS`: every positional argument exports a C-contiguous
//!     buffer (numpy arrays included), no keyword arguments: a table of
//!     `(offset, len, format, shape)` and the bytes, each at a multiple
//!     of 16; the receiver gets one read-only memoryview per argument,
//!     cast back to its format and shape.
//!   - `KIND_PICKLE`: `pickle.dumps((args, kwargs), protocol=5)`.
//!
//! A verbatim payload that happens to start with `MAGIC` is sent framed,
//! so Python to Python is never ambiguous. A payload from another
//! producer that starts with `MAGIC` but is not a valid frame is handed
//! over verbatim.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::ffi::{Exported, memoryview_over};

pub(crate) const MAGIC: &[u8; 8] = b"\x00SHMBPY\x01";
const KIND_PICKLE: u8 = 1;
const KIND_BUFFERS: u8 = 2;
const HEADER: usize = 16;
const DESC: usize = 64;
const MAX_DIMS: usize = 4;
const MAX_FORMAT: usize = 14;

/// What `put` writes.
pub(crate) enum Encoded {
    /// One flat buffer, written as it is.
    Verbatim(Exported),
    /// Verbatim bytes of a `bytes` object (no export needed).
    Bytes(Py<PyBytes>),
    /// A framed payload, assembled.
    Framed(Vec<u8>),
}

impl Encoded {
    pub(crate) fn bytes<'a>(&'a self, py: Python<'a>) -> &'a [u8] {
        match self {
            Encoded::Verbatim(e) => e.bytes(),
            Encoded::Bytes(b) => b.as_bytes(py),
            Encoded::Framed(v) => v,
        }
    }
}

static PICKLE_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PICKLE_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn pickle_fn<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let f = cell.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("pickle")?.getattr(name)?.unbind())
    })?;
    Ok(f.bind(py).clone())
}

fn flat(e: &Exported) -> bool {
    matches!(e.format(), "B" | "b" | "c") && e.shape().len() <= 1
}

/// Encodes `args` / `kwargs` (see the module docs).
pub(crate) fn encode(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Encoded> {
    let no_kwargs = kwargs.is_none_or(|k| k.is_empty());
    if no_kwargs && args.len() == 1 {
        let arg = args.get_item(0)?;
        if let Ok(b) = arg.cast::<PyBytes>() {
            if !b.as_bytes().starts_with(MAGIC) {
                return Ok(Encoded::Bytes(b.clone().unbind()));
            }
        }
    }
    if no_kwargs && !args.is_empty() && args.len() <= 255 {
        let mut exports = Vec::with_capacity(args.len());
        for arg in args.iter() {
            match Exported::get(&arg) {
                Some(e) => exports.push(e),
                None => break,
            }
        }
        if exports.len() == args.len() {
            if exports.len() == 1 && flat(&exports[0]) && !exports[0].bytes().starts_with(MAGIC) {
                return Ok(Encoded::Verbatim(exports.pop().expect("one export")));
            }
            if let Some(frame) = frame_buffers(&exports) {
                return Ok(Encoded::Framed(frame));
            }
        }
    }
    let empty;
    let kwargs = match kwargs {
        Some(k) => k.clone(),
        None => {
            empty = PyDict::new(py);
            empty
        }
    };
    let dumped = pickle_fn(py, &PICKLE_DUMPS, "dumps")?.call1(((args, kwargs), 5))?;
    let dumped = dumped.cast::<PyBytes>()?;
    let mut out = Vec::with_capacity(HEADER + dumped.as_bytes().len());
    out.extend_from_slice(MAGIC);
    out.push(KIND_PICKLE);
    out.resize(HEADER, 0);
    out.extend_from_slice(dumped.as_bytes());
    Ok(Encoded::Framed(out))
}

fn align16(n: usize) -> usize {
    (n + 15) & !15
}

fn frame_buffers(exports: &[Exported]) -> Option<Vec<u8>> {
    let table = HEADER + DESC * exports.len();
    let mut total = align16(table);
    for e in exports {
        if e.format().len() > MAX_FORMAT || e.shape().len() > MAX_DIMS {
            return None;
        }
        total = align16(total + e.bytes().len());
    }
    let mut out = vec![0u8; total];
    out[..8].copy_from_slice(MAGIC);
    out[8] = KIND_BUFFERS;
    out[9] = exports.len() as u8;
    let mut at = align16(table);
    for (i, e) in exports.iter().enumerate() {
        let d = HEADER + DESC * i;
        let data = e.bytes();
        out[d..d + 8].copy_from_slice(&(at as u64).to_le_bytes());
        out[d + 8..d + 16].copy_from_slice(&(data.len() as u64).to_le_bytes());
        let shape = e.shape();
        let fmt = e.format().as_bytes();
        out[d + 16] = shape.len() as u8;
        out[d + 17] = fmt.len() as u8;
        out[d + 18..d + 18 + fmt.len()].copy_from_slice(fmt);
        for (k, dim) in shape.iter().enumerate() {
            let s = d + 32 + 8 * k;
            out[s..s + 8].copy_from_slice(&dim.to_le_bytes());
        }
        out[at..at + data.len()].copy_from_slice(data);
        at = align16(at + data.len());
    }
    Some(out)
}

/// A buffer argument of a framed payload.
struct BufDesc<'a> {
    data: &'a [u8],
    format: &'a str,
    shape: Vec<u64>,
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn parse_buffers(payload: &[u8]) -> Option<Vec<BufDesc<'_>>> {
    let n = *payload.get(9)? as usize;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let d = HEADER + DESC * i;
        let off = usize::try_from(read_u64(payload, d)?).ok()?;
        let len = usize::try_from(read_u64(payload, d + 8)?).ok()?;
        let ndim = *payload.get(d + 16)? as usize;
        let flen = *payload.get(d + 17)? as usize;
        if ndim > MAX_DIMS || flen > MAX_FORMAT {
            return None;
        }
        let format = std::str::from_utf8(payload.get(d + 18..d + 18 + flen)?).ok()?;
        let shape = (0..ndim)
            .map(|k| read_u64(payload, d + 32 + 8 * k))
            .collect::<Option<Vec<u64>>>()?;
        let data = payload.get(off..off.checked_add(len)?)?;
        out.push(BufDesc {
            data,
            format,
            shape,
        });
    }
    Some(out)
}

/// Decoded arguments, and the memoryviews that must be released once the
/// handlers return (empty for an owned decode).
pub(crate) struct Decoded<'py> {
    pub(crate) args: Bound<'py, PyTuple>,
    /// `None` for no keyword arguments (no dict is made per event).
    pub(crate) kwargs: Option<Bound<'py, PyDict>>,
    pub(crate) views: Vec<Bound<'py, PyAny>>,
}

impl<'py> Decoded<'py> {
    /// The keyword arguments as a (new, if there were none) dict.
    pub(crate) fn kwargs_dict(&self, py: Python<'py>) -> Bound<'py, PyDict> {
        match &self.kwargs {
            Some(k) => k.clone(),
            None => PyDict::new(py),
        }
    }
}

/// Decodes a payload. With `owned`, memoryviews are over a private copy
/// (for `get`, whose result may be kept); otherwise they are over
/// `payload` itself and the caller must release them before the memory
/// may change.
///
/// # Errors
/// A pickled payload that does not unpickle to `(tuple, dict)`.
pub(crate) fn decode<'py>(py: Python<'py>, payload: &[u8], owned: bool) -> PyResult<Decoded<'py>> {
    let mut views = Vec::new();
    let base = |bytes: &[u8], views: &mut Vec<Bound<'py, PyAny>>| -> PyResult<Bound<'py, PyAny>> {
        if owned {
            let b = PyBytes::new(py, bytes);
            Ok(py.import("builtins")?.getattr("memoryview")?.call1((b,))?)
        } else {
            let mv = memoryview_over(py, bytes)?;
            views.push(mv.clone());
            Ok(mv)
        }
    };
    if payload.starts_with(MAGIC) && payload.len() >= HEADER {
        match payload[8] {
            KIND_PICKLE => {
                // pickle.loads copies what it builds: nothing it returns
                // refers to the ring.
                let data = &payload[HEADER..];
                let mv = memoryview_over(py, data)?;
                let loaded = pickle_fn(py, &PICKLE_LOADS, "loads")?.call1((&mv,));
                mv.call_method0("release")?;
                let loaded = loaded?;
                let (args, kwargs): (Bound<'py, PyTuple>, Bound<'py, PyDict>) = loaded
                    .extract()
                    .map_err(|_| PyValueError::new_err("pickled payload is not (args, kwargs)"))?;
                return Ok(Decoded {
                    args,
                    kwargs: Some(kwargs),
                    views,
                });
            }
            KIND_BUFFERS => {
                if let Some(descs) = parse_buffers(payload) {
                    let list = PyList::empty(py);
                    for d in descs {
                        let mv = base(d.data, &mut views)?;
                        let flat = matches!(d.format, "B") && d.shape.len() <= 1;
                        let mv = if flat {
                            mv
                        } else {
                            let cast = mv.call_method1("cast", (d.format, d.shape))?;
                            if !owned {
                                views.push(cast.clone());
                            }
                            cast
                        };
                        list.append(mv)?;
                    }
                    return Ok(Decoded {
                        args: list.to_tuple(),
                        kwargs: None,
                        views,
                    });
                }
            }
            _ => {}
        }
    }
    let mv = base(payload, &mut views)?;
    Ok(Decoded {
        args: PyTuple::new(py, [mv])?,
        kwargs: None,
        views,
    })
}
