//! Picture geometry: the output size for a frame under a preset's limits, how a picture that
//! changes size mid-stream fits the size already chosen, the filters that scale into it, and
//! those that turn a rotated or interlaced source upright and progressive. Pure functions,
//! unit-tested.

/// A quarter-turn rotation the display matrix asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Rotation {
    None,
    Clockwise90,
    Half,
    CounterClockwise90,
}

impl Rotation {
    /// From ffprobe's display-matrix `rotation` (degrees, counter-clockwise), rounded to the
    /// nearest quarter turn as the `ffmpeg` command line's autorotate does.
    pub fn from_display_degrees(degrees: Option<f64>) -> Rotation {
        let Some(d) = degrees.filter(|d| d.is_finite()) else {
            return Rotation::None;
        };
        let theta = (-d).rem_euclid(360.0);
        match ((theta / 90.0).round() as i64).rem_euclid(4) {
            1 => Rotation::Clockwise90,
            2 => Rotation::Half,
            3 => Rotation::CounterClockwise90,
            _ => Rotation::None,
        }
    }

    /// The filters that apply the rotation to the pixels.
    pub fn filters(self) -> &'static [&'static str] {
        match self {
            Rotation::None => &[],
            Rotation::Clockwise90 => &["transpose=clock"],
            Rotation::Half => &["hflip", "vflip"],
            Rotation::CounterClockwise90 => &["transpose=cclock"],
        }
    }
}

/// The deinterlacer used when a source is interlaced: yadif, one frame per frame, field order
/// from the frames, touching only frames marked interlaced.
pub(crate) const DEINTERLACE: &str = "yadif=mode=send_frame:parity=auto:deint=interlaced";

/// The size a `width`×`height` picture (pixel aspect `sar`, already rotated upright) becomes
/// under optional limits: the display aspect is kept, nothing grows beyond the source in
/// either direction, both sides are even, and pixels come out square.
pub(crate) fn fit(
    width: u32,
    height: u32,
    sar: (i32, i32),
    max_width: Option<u32>,
    max_height: Option<u32>,
) -> (u32, u32) {
    let (w, h) = (f64::from(width.max(2)), f64::from(height.max(2)));
    let box_w = max_width.map_or(w, |m| w.min(f64::from(m)));
    let box_h = max_height.map_or(h, |m| h.min(f64::from(m)));
    inside(display_aspect(width, height, sar), box_w, box_h)
}

/// The size a `width`×`height` picture (pixel aspect `sar`) takes inside an output frame of
/// `frame` pixels that was fixed before it arrived (the source changed size mid-stream): its
/// display aspect kept, as large as fits — up or down, since the frame's size is already
/// decided — with even sides. The rest of the frame is padded ([`picture_chain`]).
pub(crate) fn fit_into(width: u32, height: u32, sar: (i32, i32), frame: (u32, u32)) -> (u32, u32) {
    let (box_w, box_h) = (f64::from(frame.0.max(2)), f64::from(frame.1.max(2)));
    inside(display_aspect(width, height, sar), box_w, box_h)
}

/// The display aspect (width over height) of a `width`×`height` picture of pixel aspect
/// `sar` (square when unknown).
fn display_aspect(width: u32, height: u32, sar: (i32, i32)) -> f64 {
    let (w, h) = (f64::from(width.max(2)), f64::from(height.max(2)));
    let sar = if sar.0 > 0 && sar.1 > 0 {
        f64::from(sar.0) / f64::from(sar.1)
    } else {
        1.0
    };
    w * sar / h
}

/// The largest even size of display aspect `aspect` inside a `box_w`×`box_h` box.
fn inside(aspect: f64, box_w: f64, box_h: f64) -> (u32, u32) {
    let (out_w, out_h) = if box_w / box_h > aspect {
        (box_h * aspect, box_h)
    } else {
        (box_w, box_w / aspect)
    };
    (even_within(out_w, box_w), even_within(out_h, box_h))
}

/// The filters that turn a decoded picture into a rendition's: scaled to `size` with square
/// pixels, centred on black in a `frame` that is larger (after a mid-stream size change),
/// optionally resampled to `fps` (the command line's spelling of a rate cap), and converted
/// to `pixel_format`.
pub(crate) fn picture_chain(
    size: (u32, u32),
    frame: (u32, u32),
    pixel_format: &str,
    fps: Option<(i32, i32)>,
) -> String {
    let mut chain = format!("scale={}:{}:flags=bicubic,setsar=1", size.0, size.1);
    if size != frame {
        // Even offsets keep chroma planes aligned for subsampled formats.
        let x = (frame.0.saturating_sub(size.0) / 2) & !1;
        let y = (frame.1.saturating_sub(size.1) / 2) & !1;
        chain.push_str(&format!(",pad={}:{}:{x}:{y}:color=black", frame.0, frame.1));
    }
    if let Some((num, den)) = fps {
        chain.push_str(&format!(",fps={num}/{den}"));
    }
    chain.push_str(&format!(",format={pixel_format}"));
    chain
}

/// Rounds to the nearest even integer, stepping down when that would exceed `limit`.
fn even_within(v: f64, limit: f64) -> u32 {
    let mut e = ((v / 2.0).round() * 2.0) as u32;
    if f64::from(e) > limit {
        e = e.saturating_sub(2);
    }
    e.max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downscales_keeping_aspect() {
        assert_eq!(fit(1920, 1080, (1, 1), Some(1280), Some(720)), (1280, 720));
        assert_eq!(fit(1920, 800, (1, 1), Some(1280), Some(720)), (1280, 534));
        assert_eq!(fit(1440, 1080, (1, 1), Some(1280), Some(720)), (960, 720));
    }

    #[test]
    fn never_upscales() {
        assert_eq!(fit(640, 360, (1, 1), Some(1920), Some(1080)), (640, 360));
        assert_eq!(fit(320, 240, (1, 1), None, None), (320, 240));
    }

    #[test]
    fn odd_sizes_become_even_without_growing() {
        assert_eq!(fit(641, 361, (1, 1), None, None), (640, 360));
        assert_eq!(fit(3, 3, (1, 1), None, None), (2, 2));
    }

    #[test]
    fn anamorphic_becomes_square_pixels_without_growing() {
        // 720x480 at 32:27 displays as 16:9: keep the width, shrink the height (405 → 406).
        assert_eq!(fit(720, 480, (32, 27), None, None), (720, 406));
        // 4:3 DV (8:9): keep the height, shrink the width.
        assert_eq!(fit(720, 480, (8, 9), None, None), (640, 480));
    }

    #[test]
    fn portrait_sources_fit_the_box() {
        assert_eq!(fit(360, 640, (1, 1), Some(1280), Some(720)), (360, 640));
        assert_eq!(fit(1080, 1920, (1, 1), Some(1280), Some(720)), (406, 720));
    }

    #[test]
    fn a_picture_that_changes_size_fits_the_frame_already_chosen() {
        // Larger and wider: scaled down to the frame's width, letterboxed.
        assert_eq!(fit_into(640, 360, (1, 1), (320, 240)), (320, 180));
        // Smaller with the same aspect: scaled up to fill the frame.
        assert_eq!(fit_into(160, 120, (1, 1), (320, 240)), (320, 240));
        // Portrait into landscape: pillarboxed, even sides.
        assert_eq!(fit_into(360, 640, (1, 1), (640, 360)), (202, 360));
        // Anamorphic storage is displayed at its aspect.
        assert_eq!(fit_into(720, 480, (32, 27), (640, 360)), (640, 360));
    }

    #[test]
    fn picture_chains_pad_only_what_does_not_fill_the_frame() {
        assert_eq!(
            picture_chain((1280, 720), (1280, 720), "yuv420p", None),
            "scale=1280:720:flags=bicubic,setsar=1,format=yuv420p"
        );
        assert_eq!(
            picture_chain((320, 180), (320, 240), "yuv420p", Some((30, 1))),
            "scale=320:180:flags=bicubic,setsar=1,pad=320:240:0:30:color=black,fps=30/1,\
             format=yuv420p"
        );
        // Odd margins round down to even offsets.
        assert!(
            picture_chain((202, 360), (640, 360), "yuv420p", None).contains("pad=640:360:218:0")
        );
    }

    #[test]
    fn rotation_follows_the_command_line() {
        assert_eq!(Rotation::from_display_degrees(None), Rotation::None);
        assert_eq!(
            Rotation::from_display_degrees(Some(-90.0)),
            Rotation::Clockwise90
        );
        assert_eq!(
            Rotation::from_display_degrees(Some(90.0)),
            Rotation::CounterClockwise90
        );
        assert_eq!(Rotation::from_display_degrees(Some(180.0)), Rotation::Half);
        assert_eq!(Rotation::from_display_degrees(Some(-180.0)), Rotation::Half);
        assert_eq!(Rotation::from_display_degrees(Some(0.4)), Rotation::None);
    }
}
