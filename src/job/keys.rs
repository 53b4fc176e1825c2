//! A job's HLS segment key (decision 0082): 16 random bytes made once when a job that
//! encrypts is first run, kept by the store, never shown in the job's JSON, and given to the
//! engine with the URI players fetch it from.

use serde::{Deserialize, Serialize};

/// The length of an AES-128 key.
pub const KEY_BYTES: usize = 16;

/// A segment key and the URI `#EXT-X-KEY` names for it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentKey {
    pub key: [u8; KEY_BYTES],
    pub uri: String,
}

impl SegmentKey {
    /// 16 bytes from the operating system's random generator.
    pub fn generate() -> Result<[u8; KEY_BYTES], getrandom::Error> {
        let mut key = [0u8; KEY_BYTES];
        getrandom::fill(&mut key)?;
        Ok(key)
    }

    /// The key as 32 lowercase hex digits (FFmpeg's `hls_enc_key`, `openssl enc -K`).
    pub fn hex(&self) -> String {
        self.key.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key from the bytes a store kept, if they are a key.
    pub fn from_stored(bytes: &[u8], uri: String) -> Option<SegmentKey> {
        Some(SegmentKey {
            key: bytes.try_into().ok()?,
            uri,
        })
    }
}

/// The key's bytes never reach a log line.
impl std::fmt::Debug for SegmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentKey")
            .field("key", &"<16 bytes>")
            .field("uri", &self.uri)
            .finish()
    }
}

/// The URI of job `job`'s key from the configured template (`{job}` replaced).
pub fn key_uri(template: &str, job: &str) -> String {
    template.replace("{job}", job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_written_as_hex() {
        let (a, b) = (
            SegmentKey::generate().unwrap(),
            SegmentKey::generate().unwrap(),
        );
        assert_ne!(a, b);
        let key = SegmentKey::from_stored(&[0xab; 16], "k".into()).unwrap();
        assert_eq!(key.hex(), "ab".repeat(16));
        assert!(SegmentKey::from_stored(&[1; 15], "k".into()).is_none());
        assert!(!format!("{key:?}").contains("ab"));
        assert_eq!(key_uri("/v1/jobs/{job}/key", "j1"), "/v1/jobs/j1/key");
    }
}
