//! The few CPython buffer-protocol calls the limited API of Python 3.9
//! lacks (they joined the stable ABI in 3.11, with the same layout and
//! symbols they always had), declared here so the package stays one abi3
//! wheel for Python >= 3.9.

use std::ffi::{c_char, c_int, c_void};

use pyo3::ffi::{Py_ssize_t, PyObject};
use pyo3::prelude::*;

/// `Py_buffer` (Include/pybuffer.h), unchanged since Python 3.3.
#[repr(C)]
pub(crate) struct PyBuffer {
    buf: *mut c_void,
    obj: *mut PyObject,
    len: Py_ssize_t,
    itemsize: Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut Py_ssize_t,
    strides: *mut Py_ssize_t,
    suboffsets: *mut Py_ssize_t,
    internal: *mut c_void,
}

/// `PyBUF_FORMAT | PyBUF_C_CONTIGUOUS`: a C-contiguous export with its
/// format and shape (Include/pybuffer.h).
const PYBUF_C_CONTIGUOUS_FORMAT: c_int = 0x0004 | 0x0020 | 0x0018;

unsafe extern "C" {
    fn PyObject_CheckBuffer(obj: *mut PyObject) -> c_int;
    fn PyObject_GetBuffer(obj: *mut PyObject, view: *mut PyBuffer, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut PyBuffer);
}

/// A buffer exported by a Python object (bytes, bytearray, memoryview,
/// a numpy array, ...), C-contiguous, held until dropped. While it is held
/// the exporter keeps the memory in place (a bytearray refuses to resize,
/// for instance), so the bytes may be read without the GIL.
pub(crate) struct Exported {
    view: Box<PyBuffer>,
}

// SAFETY: the export pins its memory until `PyBuffer_Release`; reading it
// from another thread is what the buffer protocol allows (the GIL guards
// the exporter's bookkeeping, which only `Drop` touches, under the GIL).
unsafe impl Send for Exported {}

impl Exported {
    /// Exports `obj`'s buffer, or `None` (no error set) when `obj` has no
    /// buffer or it is not C-contiguous.
    pub(crate) fn get(obj: &Bound<'_, PyAny>) -> Option<Exported> {
        // SAFETY: `obj` is a live object and we hold the GIL (`Bound`).
        if unsafe { PyObject_CheckBuffer(obj.as_ptr()) } == 0 {
            return None;
        }
        let mut view = Box::new(PyBuffer {
            buf: std::ptr::null_mut(),
            obj: std::ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: std::ptr::null_mut(),
            shape: std::ptr::null_mut(),
            strides: std::ptr::null_mut(),
            suboffsets: std::ptr::null_mut(),
            internal: std::ptr::null_mut(),
        });
        // SAFETY: `view` is a writable Py_buffer; GIL held. On failure
        // the exporter set an exception, which we clear (the caller falls
        // back to pickling).
        let rc = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *view, PYBUF_C_CONTIGUOUS_FORMAT) };
        if rc != 0 {
            let _ = PyErr::take(obj.py());
            return None;
        }
        Some(Exported { view })
    }

    /// The exported bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        if self.view.len <= 0 || self.view.buf.is_null() {
            return &[];
        }
        // SAFETY: a successful export guarantees `len` readable bytes at
        // `buf` (C-contiguous, as requested) until it is released in Drop.
        unsafe { std::slice::from_raw_parts(self.view.buf as *const u8, self.view.len as usize) }
    }

    /// The struct format (`"B"` when the exporter gave none).
    pub(crate) fn format(&self) -> &str {
        if self.view.format.is_null() {
            return "B";
        }
        // SAFETY: the exporter gives a NUL-terminated string valid while
        // the export is held.
        let c = unsafe { std::ffi::CStr::from_ptr(self.view.format) };
        c.to_str().unwrap_or("?")
    }

    /// The shape (empty for a scalar export).
    pub(crate) fn shape(&self) -> Vec<u64> {
        let n = self.view.ndim.max(0) as usize;
        if n == 0 || self.view.shape.is_null() {
            return Vec::new();
        }
        // SAFETY: with PyBUF_ND requested, `shape` points at `ndim` values
        // valid while the export is held.
        let s = unsafe { std::slice::from_raw_parts(self.view.shape, n) };
        s.iter().map(|&d| d.max(0) as u64).collect()
    }
}

impl Drop for Exported {
    fn drop(&mut self) {
        Python::attach(|_py| {
            // SAFETY: the view was filled by a successful
            // PyObject_GetBuffer and is released exactly once, GIL held.
            unsafe { PyBuffer_Release(&mut *self.view) };
        });
    }
}

/// A read-only memoryview over `bytes` (no owner object: the caller
/// guarantees the memory outlives every use, and `release()`s the view
/// before the memory may change).
pub(crate) fn memoryview_over<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: PyMemoryView_FromMemory is in the limited API; it does not
    // copy and keeps no reference; the pointer/length describe readable
    // memory (see the caller's contract). PyBUF_READ = 0x100.
    let ptr = unsafe {
        pyo3::ffi::PyMemoryView_FromMemory(
            bytes.as_ptr() as *mut c_char,
            bytes.len() as Py_ssize_t,
            0x100,
        )
    };
    // SAFETY: a new reference or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, ptr) }
}

/// Whether [`ManagedBuffer`] may read CPython's memoryview internals:
/// checked once at import by [`probe_layout`].
static LAYOUT_OK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The managed buffer behind a memoryview made by [`memoryview_over`]:
/// every view derived from it (a slice, a cast, `memoryview(mv)`, the
/// memoryview numpy.frombuffer keeps) shares it and counts in its
/// `exports`. CPython gives no API for this; the layout read here
/// (`PyMemoryViewObject.mbuf` right after the object header;
/// `_PyManagedBufferObject.exports` after its header and an int) has been
/// the same from 3.3 to 3.13, and [`probe_layout`] verifies it at import
/// (else nothing is read and escapes go unreported).
pub(crate) struct ManagedBuffer(Option<Py<PyAny>>);

const MV_MBUF_OFFSET: usize = 3 * std::mem::size_of::<usize>();
const MBUF_EXPORTS_OFFSET: usize = 3 * std::mem::size_of::<usize>();

impl ManagedBuffer {
    /// The managed buffer of `mv` (a memoryview), held strongly.
    pub(crate) fn of(mv: &Bound<'_, PyAny>) -> ManagedBuffer {
        if !LAYOUT_OK.load(std::sync::atomic::Ordering::Relaxed) {
            return ManagedBuffer(None);
        }
        // SAFETY: `mv` is a live memoryview (the caller made it with
        // memoryview_over); LAYOUT_OK says its `mbuf` field is a live
        // object pointer at this offset, which we take a new reference to.
        let mbuf = unsafe {
            let p = (mv.as_ptr() as *const u8).add(MV_MBUF_OFFSET) as *const *mut PyObject;
            let mbuf = *p;
            if mbuf.is_null() {
                return ManagedBuffer(None);
            }
            Bound::from_borrowed_ptr(mv.py(), mbuf).unbind()
        };
        ManagedBuffer(Some(mbuf))
    }

    /// Views still exporting the memory (0 once every view is released),
    /// or `None` when the layout is unknown.
    pub(crate) fn exports(&self) -> Option<isize> {
        let m = self.0.as_ref()?;
        // SAFETY: we hold a reference, so the managed buffer is alive;
        // LAYOUT_OK says `exports` is a Py_ssize_t at this offset.
        Some(unsafe { *((m.as_ptr() as *const u8).add(MBUF_EXPORTS_OFFSET) as *const Py_ssize_t) })
    }
}

/// Whether [`ManagedBuffer`] works in this interpreter.
pub(crate) fn detects_derived_views() -> bool {
    LAYOUT_OK.load(std::sync::atomic::Ordering::Relaxed)
}

/// Checks the layout [`ManagedBuffer`] relies on against this
/// interpreter's behaviour, and enables it if it holds.
pub(crate) fn probe_layout(py: Python<'_>) -> PyResult<bool> {
    let data = [0u8; 16];
    let mv = memoryview_over(py, &data)?;
    LAYOUT_OK.store(true, std::sync::atomic::Ordering::Relaxed);
    let m = ManagedBuffer::of(&mv);
    let ok = (|| -> PyResult<bool> {
        if m.exports() != Some(1) {
            return Ok(false);
        }
        let slice = mv.get_item(pyo3::types::PySlice::new(py, 1, 4, 1))?;
        if m.exports() != Some(2) {
            return Ok(false);
        }
        slice.call_method0("release")?;
        drop(slice);
        mv.call_method0("release")?;
        Ok(m.exports() == Some(0))
    })()
    .unwrap_or(false);
    LAYOUT_OK.store(ok, std::sync::atomic::Ordering::Relaxed);
    Ok(ok)
}
