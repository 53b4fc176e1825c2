//! The cancellation token a caller uses to stop a running transcode or transfer. FFmpeg-free:
//! the engine checks it between packets, bucket transfers between parts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A cheap, cloneable flag. The engine checks it between packets and frames, and FFmpeg's
/// I/O interrupt callback checks it inside blocking reads, so a stop takes effect promptly.
#[derive(Debug, Clone, Default)]
pub struct StopToken(Arc<AtomicBool>);

impl StopToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests the stop. Idempotent.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
