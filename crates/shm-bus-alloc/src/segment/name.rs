//! Segment names: the rule a bus name must follow and the POSIX object
//! name it maps to.

use crate::error::{Error, Result};

/// Checks that `name` can name a segment: 1..=200 bytes, no `/` or NUL,
/// not `.` or `..`. Every constructor applies it; tools can check a name
/// up front with it.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the rule.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 200
        || name.contains('/')
        || name.contains('\0')
        || name == "."
        || name == ".."
    {
        return Err(Error::InvalidArgument(
            "segment name must be 1..=200 bytes without '/' or NUL",
        ));
    }
    Ok(())
}

/// The shared-memory object name of segment `name`: `/shm-bus.<name>`.
pub(super) fn os_name(name: &str) -> Result<String> {
    validate_name(name)?;
    Ok(format!("/shm-bus.{name}"))
}
