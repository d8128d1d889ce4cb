//! Reading payloads as values: the rules [`Sample::as_pod`](crate::Sample::as_pod)
//! and [`Sample::decode`](crate::Sample::decode) use, for layers that hold
//! payload bytes of their own (the engine's messages, a recorder).

use crate::error::PayloadError;

/// Views `bytes` as a `T` in place: exactly `size_of::<T>()` bytes,
/// aligned for `T` (ring payloads and subscriber copies are 32-byte
/// aligned).
///
/// # Errors
/// [`PayloadError::Size`] or [`PayloadError::Align`].
pub fn view_pod<T: bytemuck::Pod>(bytes: &[u8]) -> Result<&T, PayloadError> {
    if bytes.len() != size_of::<T>() {
        return Err(PayloadError::Size {
            len: bytes.len(),
            size: size_of::<T>(),
        });
    }
    bytemuck::try_from_bytes(bytes).map_err(|_| PayloadError::Align {
        align: align_of::<T>(),
    })
}

/// Decodes a postcard-encoded value (what
/// [`Publisher::publish_serde`](crate::Publisher::publish_serde) wrote). The
/// value may borrow from `bytes`.
///
/// # Errors
/// [`PayloadError::Decode`].
pub fn decode<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, PayloadError> {
    Ok(postcard::from_bytes(bytes)?)
}
