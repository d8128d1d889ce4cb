//! Exceptions and how the bus's errors map to them.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use shm_bus_core::{BusError as CoreBusError, PublishError, RecvError};

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
create_exception!(
    shm_bus,
    GroupError,
    BusError,
    "A worker-group operation failed; `group` names the group (None when unknown)."
);
create_exception!(
    shm_bus,
    GroupRemoved,
    GroupError,
    "The worker group was removed (Bus.remove_group with force=True): its members receive \
     nothing more."
);
create_exception!(
    shm_bus,
    GroupFull,
    GroupError,
    "Every member slot of the worker group is held (by live members, or by work dead ones left)."
);
create_exception!(
    shm_bus,
    TooManyGroups,
    GroupError,
    "Every group slot of the bus is in use: remove a group, or create the bus with more \
     max_groups."
);
create_exception!(
    shm_bus,
    GroupMismatch,
    GroupError,
    "Joining a worker group with patterns or a mode other than the group's; `patterns` / `mode` \
     hold the group's."
);

/// `exc(text)` with attributes set on the exception object.
fn with_attrs<'a>(
    err: PyErr,
    attrs: impl FnOnce(Python<'_>) -> Vec<(&'a str, Py<PyAny>)>,
) -> PyErr {
    Python::attach(|py| {
        let value = err.value(py);
        for (k, v) in attrs(py) {
            // Setting an attribute on a fresh exception object cannot fail
            // in practice; if it did, the exception still says what happened.
            let _ = value.setattr(k, v);
        }
    });
    err
}

/// A group error of class `E` about `group`.
fn group_err<E: pyo3::PyTypeInfo>(text: String, group: Option<&str>) -> PyErr {
    let err = PyErr::new::<E, _>(text);
    let group = group.map(str::to_owned);
    with_attrs(err, |py| {
        vec![(
            "group",
            group
                .into_pyobject(py)
                .map_or_else(|_| py.None(), |g| g.into_any().unbind()),
        )]
    })
}

/// `GroupRemoved` for a member of `group` (if known).
pub(crate) fn group_removed(group: Option<&str>) -> PyErr {
    let text = match group {
        Some(g) => format!("worker group `{g}` was removed"),
        None => RecvError::GroupRemoved.to_string(),
    };
    group_err::<GroupRemoved>(text, group)
}

pub(crate) fn bus_error(e: CoreBusError) -> PyErr {
    let text = e.to_string();
    match e {
        CoreBusError::InvalidTopic(_)
        | CoreBusError::NotExact { .. }
        | CoreBusError::TopicTooLong { .. }
        | CoreBusError::InvalidGroupName { .. }
        | CoreBusError::GroupPatternsTooLong { .. } => PyValueError::new_err(text),
        CoreBusError::InvalidConfig(_) => PyValueError::new_err(text),
        CoreBusError::TooManyGroups { .. } => group_err::<TooManyGroups>(text, None),
        CoreBusError::GroupFull { group } => group_err::<GroupFull>(text, Some(&group)),
        CoreBusError::GroupRemoved { group } => group_err::<GroupRemoved>(text, Some(&group)),
        CoreBusError::GroupPatternMismatch { group, has } => {
            let err = group_err::<GroupMismatch>(text, Some(&group));
            with_attrs(err, |py| {
                vec![
                    (
                        "patterns",
                        has.into_pyobject(py)
                            .map_or_else(|_| py.None(), |p| p.into_any().unbind()),
                    ),
                    ("mode", py.None()),
                ]
            })
        }
        CoreBusError::GroupModeMismatch { group, has } => {
            let err = group_err::<GroupMismatch>(text, Some(&group));
            with_attrs(err, |py| {
                vec![
                    (
                        "mode",
                        has.as_str()
                            .into_pyobject(py)
                            .map_or_else(|_| py.None(), |m| m.into_any().unbind()),
                    ),
                    ("patterns", py.None()),
                ]
            })
        }
        _ => BusError::new_err(text),
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
