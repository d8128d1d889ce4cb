//! `shm_bus._native`: the Rust half of the Python package `shm_bus`
//! (PyEventEngine's API over the shm-bus bus). The Python half
//! (`python/shm_bus`) holds the API classes; this module holds the topic
//! language (`NativeTopic`), the bus side of an engine (`BusPort`: encode,
//! put, get, the dispatch loop) and the low-level bus classes.

mod bus;
mod codec;
mod errors;
mod ffi;
mod port;
mod topic;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<topic::NativeTopic>()?;
    m.add_function(wrap_pyfunction!(port::_interpreter_exiting, m)?)?;
    m.add_function(wrap_pyfunction!(port::_unparked_waiters, m)?)?;
    m.add_class::<port::BusPort>()?;
    m.add_class::<bus::PyBus>()?;
    m.add_class::<bus::PyPublisher>()?;
    m.add_class::<bus::PySubscriber>()?;
    m.add_class::<bus::PySample>()?;
    m.add_class::<bus::PyLoan>()?;
    m.add("Full", py.get_type::<errors::Full>())?;
    m.add("Empty", py.get_type::<errors::Empty>())?;
    m.add("BusError", py.get_type::<errors::BusError>())?;
    m.add("GroupError", py.get_type::<errors::GroupError>())?;
    m.add("GroupRemoved", py.get_type::<errors::GroupRemoved>())?;
    m.add("GroupFull", py.get_type::<errors::GroupFull>())?;
    m.add("TooManyGroups", py.get_type::<errors::TooManyGroups>())?;
    m.add("GroupMismatch", py.get_type::<errors::GroupMismatch>())?;
    m.add("MAGIC", pyo3::types::PyBytes::new(py, codec::MAGIC))?;
    // Whether views derived from a handler's memoryview are detected.
    m.add("DETECTS_DERIVED_VIEWS", ffi::probe_layout(py)?)?;
    Ok(())
}
