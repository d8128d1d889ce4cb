//! Exceptions and how the bus's errors map to them.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use shm_bus_core::{BusError as CoreBusError, PublishError};

create_exception!(
    shm_bus,
    Full,
    PyException,
    "No room: the queue (in-process) or the ring (over a bus) stayed full."
);
create_exception!(
    shm_bus,
    Empty,
    PyException,
    "No event arrived (non-blocking get, or the timeout ran out)."
);
create_exception!(
    shm_bus,
    BusError,
    PyException,
    "A bus could not be opened, created or attached to, or it was removed."
);

pub(crate) fn bus_error(e: CoreBusError) -> PyErr {
    match e {
        CoreBusError::InvalidTopic(_)
        | CoreBusError::NotExact { .. }
        | CoreBusError::TopicTooLong { .. } => PyValueError::new_err(e.to_string()),
        CoreBusError::InvalidConfig(_) => PyValueError::new_err(e.to_string()),
        other => BusError::new_err(other.to_string()),
    }
}

pub(crate) fn publish_error(e: PublishError) -> PyErr {
    match e {
        PublishError::Full => Full::new_err(e.to_string()),
        PublishError::PayloadTooLarge { .. } => PyValueError::new_err(e.to_string()),
        PublishError::Topic(b) => bus_error(b),
        other => BusError::new_err(other.to_string()),
    }
}
