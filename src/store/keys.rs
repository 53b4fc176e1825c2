//! What both stores share about segment keys (decision 0082): a stored key is 16 bytes, or
//! the row is damaged.

use super::{Result, StoreError};
use crate::job::KEY_BYTES;

/// A key as stored, checked.
pub(crate) fn stored_key(id: &str, bytes: &[u8]) -> Result<[u8; KEY_BYTES]> {
    bytes.try_into().map_err(|_| {
        StoreError::Backend(format!(
            "job '{id}': its stored segment key has {} bytes, not {KEY_BYTES}",
            bytes.len()
        ))
    })
}
