//! HDR side data as FFmpeg lays it out: a mastering display's colour volume
//! (`AVMasteringDisplayMetadata`, SMPTE ST 2086) and the content light level
//! (`AVContentLightMetadata`, CTA-861.3), which the bindings leave out. Read from decoded
//! frames, attached to output streams.

use std::ptr;

use ff::ffi as sys;
use ff::frame::side_data::Type;
use ffmpeg_next as ff;

/// A mastering display's colour volume: CIE 1931 xy of its red, green and blue primaries and
/// of its white point, and its luminance range in cd/m², each a rational as FFmpeg keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasteringDisplay {
    /// Red, green, blue; each `[x, y]`.
    pub primaries: [[(i32, i32); 2]; 3],
    pub white_point: [(i32, i32); 2],
    pub min_luminance: (i32, i32),
    pub max_luminance: (i32, i32),
}

/// The content's light level in cd/m²: its brightest pixel and its brightest frame average.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentLight {
    pub max_cll: u32,
    pub max_fall: u32,
}

/// `AVMasteringDisplayMetadata`: ten rationals (six primaries, the white point, minimum and
/// maximum luminance), then `has_primaries` and `has_luminance`.
const MASTERING_INTS: usize = 22;
/// `AVContentLightMetadata`: `MaxCLL`, `MaxFALL`.
const LIGHT_INTS: usize = 2;

fn ints(bytes: &[u8], count: usize) -> Option<Vec<i32>> {
    if bytes.len() < count * 4 {
        return None;
    }
    Some(
        bytes[..count * 4]
            .chunks_exact(4)
            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// The mastering display a frame says it was graded on, when it gives both primaries and
/// luminance (encoders need the whole volume).
pub fn frame_mastering_display(frame: &ff::Frame) -> Option<MasteringDisplay> {
    let sd = frame.side_data(Type::MasteringDisplayMetadata)?;
    let v = ints(sd.data(), MASTERING_INTS)?;
    if v[20] == 0 || v[21] == 0 {
        return None;
    }
    let q = |i: usize| (v[2 * i], v[2 * i + 1]);
    Some(MasteringDisplay {
        primaries: [[q(0), q(1)], [q(2), q(3)], [q(4), q(5)]],
        white_point: [q(6), q(7)],
        min_luminance: q(8),
        max_luminance: q(9),
    })
}

/// The content light level a frame carries.
pub fn frame_content_light(frame: &ff::Frame) -> Option<ContentLight> {
    let sd = frame.side_data(Type::ContentLightLevel)?;
    let v = ints(sd.data(), LIGHT_INTS)?;
    Some(ContentLight {
        max_cll: v[0] as u32,
        max_fall: v[1] as u32,
    })
}

fn mastering_bytes(m: &MasteringDisplay) -> Vec<u8> {
    let p = m.primaries;
    let rationals = [
        p[0][0],
        p[0][1],
        p[1][0],
        p[1][1],
        p[2][0],
        p[2][1],
        m.white_point[0],
        m.white_point[1],
        m.min_luminance,
        m.max_luminance,
    ];
    rationals
        .iter()
        .flat_map(|(n, d)| [*n, *d])
        .chain([1, 1])
        .flat_map(i32::to_ne_bytes)
        .collect()
}

/// Attaches mastering-display and light-level metadata to an output stream before its header
/// is written (Matroska and MP4 write them into the container).
pub fn set_stream_hdr_metadata(
    stream: &mut ff::format::stream::StreamMut,
    mastering: Option<&MasteringDisplay>,
    light: Option<&ContentLight>,
) {
    let blocks = [
        (
            sys::AVPacketSideDataType::AV_PKT_DATA_MASTERING_DISPLAY_METADATA,
            mastering.map(mastering_bytes),
        ),
        (
            sys::AVPacketSideDataType::AV_PKT_DATA_CONTENT_LIGHT_LEVEL,
            light.map(|l| {
                [l.max_cll, l.max_fall]
                    .into_iter()
                    .flat_map(u32::to_ne_bytes)
                    .collect()
            }),
        ),
    ];
    for (kind, bytes) in blocks {
        let Some(bytes) = bytes else { continue };
        // SAFETY: the stream belongs to an output context whose header is not yet written;
        // FFmpeg allocates exactly `bytes.len()` bytes, which are filled here.
        unsafe {
            let sd = sys::av_stream_new_side_data(stream.as_mut_ptr(), kind, bytes.len());
            if !sd.is_null() {
                ptr::copy_nonoverlapping(bytes.as_ptr(), sd, bytes.len());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mastering_display_bytes_follow_ffmpegs_layout() {
        let m = MasteringDisplay {
            primaries: [[(1, 2), (3, 4)], [(5, 6), (7, 8)], [(9, 10), (11, 12)]],
            white_point: [(13, 14), (15, 16)],
            min_luminance: (17, 18),
            max_luminance: (19, 20),
        };
        let v = ints(&mastering_bytes(&m), MASTERING_INTS).unwrap();
        assert_eq!(v[..20], (1..=20).collect::<Vec<i32>>()[..]);
        assert_eq!(v[20..], [1, 1]);
    }
}
