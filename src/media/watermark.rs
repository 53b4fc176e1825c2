//! Watermarks: the image a job or preset composites on its video, opened and decoded like
//! any untrusted input (the same refusals and limits, in the same sandbox), and the filters
//! that scale it to a share of each output's height and place it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use super::error::MediaError;
use super::ffi;
use super::input;
use crate::job::{Position, Watermark};
use crate::stop::StopToken;

/// A watermark for one output: the image (a local file) and where it goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overlay {
    pub image: PathBuf,
    pub placement: Watermark,
}

/// The largest image side accepted: a watermark is a small picture, and a huge one is a
/// way to make every frame's compositing slow.
const MAX_SIDE: u32 = 4096;

/// A decoded watermark, shared by every rendition that shows it.
pub(crate) struct Logo {
    pub picture: ff::frame::Video,
    pub placement: Watermark,
}

impl std::fmt::Debug for Logo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logo")
            .field("size", &(self.picture.width(), self.picture.height()))
            .field("placement", &self.placement)
            .finish()
    }
}

fn invalid(path: &Path, what: impl Into<String>) -> MediaError {
    MediaError::Watermark {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// Opens and decodes `overlay`'s image: one PNG or JPEG picture within [`MAX_SIDE`].
pub(crate) fn load(overlay: &Overlay, stop: &StopToken) -> Result<Arc<Logo>, MediaError> {
    let path = &overlay.image;
    let mut image = input::open(path, stop).map_err(|e| match e {
        MediaError::Stopped => e,
        // The error names the file first; the watermark's error names it once.
        other => {
            let text = other.to_string();
            let prefix = format!("{}: ", path.display());
            invalid(path, text.strip_prefix(&prefix).unwrap_or(&text))
        }
    })?;
    let (index, codec) = {
        let stream = image
            .ctx
            .streams()
            .find(|s| s.parameters().medium() == ff::media::Type::Video)
            .ok_or_else(|| invalid(path, "it holds no picture"))?;
        (stream.index(), ffi::stream_facts(&stream).codec)
    };
    if !matches!(codec.as_str(), "png" | "mjpeg") {
        return Err(invalid(
            path,
            format!("not a PNG or JPEG image (FFmpeg reads it as {codec})"),
        ));
    }
    let picture = first_picture(&mut image, index)?;
    if picture.width() > MAX_SIDE || picture.height() > MAX_SIDE {
        return Err(invalid(
            path,
            format!(
                "{}x{} is larger than a watermark may be ({MAX_SIDE}x{MAX_SIDE})",
                picture.width(),
                picture.height()
            ),
        ));
    }
    Ok(Arc::new(Logo {
        picture,
        placement: overlay.placement.clone(),
    }))
}

/// The first picture stream `index` of `image` decodes to.
fn first_picture(image: &mut input::Input, index: usize) -> Result<ff::frame::Video, MediaError> {
    let path = image.path.clone();
    let stream = image
        .ctx
        .stream(index)
        .ok_or_else(|| invalid(&path, "its picture stream vanished"))?;
    let mut decoder = ff::codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(|e| invalid(&path, format!("its picture cannot be decoded ({e})")))?;
    let mut frame = ff::frame::Video::empty();
    for (s, packet) in image.ctx.packets() {
        if s.index() != index {
            continue;
        }
        let _ = decoder.send_packet(&packet);
        if decoder.receive_frame(&mut frame).is_ok() {
            return Ok(frame);
        }
    }
    let _ = decoder.send_eof();
    match decoder.receive_frame(&mut frame) {
        Ok(()) => Ok(frame),
        Err(e) => Err(invalid(&path, format!("its picture does not decode ({e})"))),
    }
}

/// The graph description that runs `picture_chain` on the frames (`[in]`) and composites the
/// logo (`[pic]`) on the result, an output `frame` big, ending in `pixel_format` (`[out]`).
pub(crate) fn overlay_chain(
    picture_chain: &str,
    frame: (u32, u32),
    pixel_format: &str,
    placement: &Watermark,
) -> String {
    let height = f64::from(frame.1);
    let logo_height = ((height * placement.height_ratio).round() as u32).max(2);
    let m = (height * placement.margin).round() as u32;
    let (x, y) = match placement.position {
        Position::TopLeft => (format!("{m}"), format!("{m}")),
        Position::TopRight => (format!("W-w-{m}"), format!("{m}")),
        Position::BottomLeft => (format!("{m}"), format!("H-h-{m}")),
        Position::BottomRight => (format!("W-w-{m}"), format!("H-h-{m}")),
        Position::Center => ("(W-w)/2".to_string(), "(H-h)/2".to_string()),
    };
    format!(
        "[in]{picture_chain}[main];\
         [pic]scale=-1:{logo_height}:flags=bicubic,format=rgba,\
         colorchannelmixer=aa={opacity:.3}[logo];\
         [main][logo]overlay=x={x}:y={y}:format=auto,format={pixel_format}[out]",
        opacity = placement.opacity,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(position: Position) -> Watermark {
        Watermark {
            bucket: None,
            key: "logo.png".into(),
            position,
            margin: 0.05,
            opacity: 0.5,
            height_ratio: 0.2,
        }
    }

    #[test]
    fn the_logo_is_a_share_of_the_output_and_sits_where_asked() {
        let chain = overlay_chain(
            "scale=640:360",
            (640, 360),
            "yuv420p",
            &placed(Position::BottomRight),
        );
        assert_eq!(
            chain,
            "[in]scale=640:360[main];[pic]scale=-1:72:flags=bicubic,format=rgba,\
             colorchannelmixer=aa=0.500[logo];\
             [main][logo]overlay=x=W-w-18:y=H-h-18:format=auto,format=yuv420p[out]"
        );
        let top_left = overlay_chain("null", (1280, 720), "yuv420p", &placed(Position::TopLeft));
        assert!(top_left.contains("scale=-1:144:") && top_left.contains("overlay=x=36:y=36:"));
        let centre = overlay_chain("null", (1280, 720), "yuv420p", &placed(Position::Center));
        assert!(centre.contains("overlay=x=(W-w)/2:y=(H-h)/2:"), "{centre}");
    }
}
