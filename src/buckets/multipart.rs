//! Multipart uploads: a large file sent as whole parts, a few at a time, then completed. The
//! caller aborts the upload whenever this fails, so no parts are left behind.

use std::path::Path;

use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::{Access, BucketError, OnBytes, PART_SIZE, storage_error};

/// Parts uploading at once in a multipart upload.
const PARTS_IN_FLIGHT: usize = 4;

/// Sends `src` as the parts of `upload` and completes it. The caller aborts the upload if
/// this fails.
pub(super) async fn send_parts(
    upload: &mut dyn object_store::MultipartUpload,
    bucket: &str,
    key: &str,
    src: &Path,
    size: u64,
    stop: &crate::stop::StopToken,
    on_bytes: OnBytes<'_>,
) -> Result<u64, BucketError> {
    use futures_util::stream::FuturesUnordered;
    let io = |e| BucketError::Io {
        path: src.to_path_buf(),
        source: e,
    };
    let storage = |e| storage_error(bucket, key, Access::Write, e);
    let mut file = tokio::fs::File::open(src).await.map_err(io)?;
    let mut in_flight = FuturesUnordered::new();
    let mut done = 0u64;
    loop {
        if stop.is_stopped() {
            return Err(BucketError::Stopped);
        }
        // Every part but the last must be whole (stores refuse parts under 5 MiB).
        let mut part = vec![0u8; PART_SIZE];
        let mut n = 0;
        while n < PART_SIZE {
            match file.read(&mut part[n..]).await.map_err(io)? {
                0 => break,
                got => n += got,
            }
        }
        if n == 0 {
            break;
        }
        part.truncate(n);
        while in_flight.len() >= PARTS_IN_FLIGHT {
            in_flight.next().await.transpose().map_err(storage)?;
        }
        in_flight.push(upload.put_part(part.into()));
        done += n as u64;
        on_bytes(done, Some(size));
        if n < PART_SIZE {
            break;
        }
    }
    while let Some(sent) = in_flight.next().await {
        sent.map_err(storage)?;
    }
    if done != size {
        return Err(io(std::io::Error::other(format!(
            "changed while it was being uploaded ({done} bytes read, {size} expected)"
        ))));
    }
    upload.complete().await.map_err(storage)?;
    Ok(done)
}
