//! The container a preset writes and the sections it takes: video and audio only where it
//! holds them, `[hls]` only for hls, `[poster]` only for jpg, `[storyboard]` only for
//! storyboard, subtitles only where they fit.

use super::audio::audio;
use super::check::Check;
use super::hls::hls;
use super::video::video;
use crate::preset::codecs::Container;
use crate::preset::spec;
use crate::preset::{
    AudioOutput, Captions, HlsLadder, PosterAt, PresetError, Storyboard, VideoOutput,
};

/// The container the file names.
pub(super) fn named(c: &Check, name: &str) -> Result<Container, PresetError> {
    Container::parse(name).ok_or_else(|| {
        let known: Vec<_> = Container::ALL.iter().map(|c| c.name()).collect();
        c.err(
            "container",
            format!("unknown container '{name}'; known: {}", known.join(", ")),
        )
    })
}

/// `[video]`, where the container holds video.
pub(super) fn video_section(
    c: &Check,
    container: Container,
    section: Option<&spec::VideoSpec>,
) -> Result<Option<VideoOutput>, PresetError> {
    match section {
        None => Ok(None),
        Some(_) if container.audio_only() => {
            Err(c.err("video", format!("container {container} holds no video")))
        }
        Some(v) => Ok(Some(video(c, container, v)?)),
    }
}

/// `[audio]`, where the container holds audio.
pub(super) fn audio_section(
    c: &Check,
    container: Container,
    section: Option<&spec::AudioSpec>,
) -> Result<Option<AudioOutput>, PresetError> {
    match section {
        None => Ok(None),
        Some(_) if container.picture() => {
            Err(c.err("audio", format!("container {container} holds no audio")))
        }
        Some(a) => Ok(Some(audio(c, container, a)?)),
    }
}

/// A preset writes at least one stream, and a picture needs video to encode it from.
pub(super) fn has_a_stream(
    c: &Check,
    container: Container,
    video: &Option<VideoOutput>,
    audio: &Option<AudioOutput>,
) -> Result<(), PresetError> {
    if video.is_none() && audio.is_none() {
        return Err(c.err("(file)", "a preset needs a [video] or an [audio] section"));
    }
    if container.picture() && !matches!(video, Some(VideoOutput::Encode(_))) {
        return Err(c.err(
            "video",
            format!("a {container} preset needs a [video] section that encodes (mjpeg)"),
        ));
    }
    Ok(())
}

/// `[hls]` for an hls container (6-second segments and one rendition when left out), which
/// must encode its video; no other container takes it.
pub(super) fn hls_section(
    c: &Check,
    container: Container,
    section: Option<&spec::HlsSpec>,
    video: &Option<VideoOutput>,
) -> Result<Option<HlsLadder>, PresetError> {
    let ladder = match (section, container) {
        (Some(h), c2) if c2.segmented() => Some(hls(c, h, container, video)?),
        (None, c2) if c2.segmented() => Some(HlsLadder {
            segment_seconds: 6.0,
            renditions: Vec::new(),
            encryption: None,
        }),
        (Some(_), other) => {
            return Err(c.err(
                "hls",
                format!("only an hls or cmaf container takes [hls] (this is {other})"),
            ));
        }
        (None, _) => None,
    };
    if container.segmented() && !matches!(video, Some(VideoOutput::Encode(_))) {
        return Err(c.err(
            "video",
            format!("an {container} preset must encode video (h264)"),
        ));
    }
    Ok(ladder)
}

/// `[poster]` for a jpg container (10% into the input when left out); no other takes it.
pub(super) fn poster_section(
    c: &Check,
    container: Container,
    section: Option<&spec::PosterSpec>,
) -> Result<Option<PosterAt>, PresetError> {
    match (section, container) {
        (Some(p), Container::Jpg) => Ok(Some(poster(c, p)?)),
        (None, Container::Jpg) => Ok(Some(PosterAt::Percent(10.0))),
        (Some(_), other) => Err(c.err(
            "poster",
            format!("only a jpg container takes [poster] (this is {other})"),
        )),
        (None, _) => Ok(None),
    }
}

/// Where the poster is taken: a share of the duration or a time, not both.
fn poster(c: &Check, p: &spec::PosterSpec) -> Result<PosterAt, PresetError> {
    match (p.at_percent, p.at_seconds) {
        (Some(_), Some(_)) => Err(c.err("poster", "set at_percent or at_seconds, not both")),
        (Some(pct), None) => Ok(PosterAt::Percent(
            c.float_in("poster.at_percent", Some(pct), 0.0, 100.0)?
                .unwrap_or(10.0),
        )),
        (None, Some(s)) => Ok(PosterAt::Seconds(
            c.float_in("poster.at_seconds", Some(s), 0.0, 172_800.0)?
                .unwrap_or(0.0),
        )),
        (None, None) => Ok(PosterAt::Percent(10.0)),
    }
}

/// `[storyboard]` for a storyboard container (defaults when left out); no other takes it.
pub(super) fn storyboard_section(
    c: &Check,
    container: Container,
    section: Option<&spec::StoryboardSpec>,
) -> Result<Option<Storyboard>, PresetError> {
    let spec = match (section, container) {
        (Some(s), Container::Storyboard) => s,
        (None, Container::Storyboard) => &spec::StoryboardSpec {
            interval_seconds: None,
            tile_width: None,
            columns: None,
            rows: None,
        },
        (Some(_), other) => {
            return Err(c.err(
                "storyboard",
                format!("only a storyboard container takes [storyboard] (this is {other})"),
            ));
        }
        (None, _) => return Ok(None),
    };
    let tile_width = c
        .int_in("storyboard.tile_width", spec.tile_width, 16, 1920)?
        .unwrap_or(160);
    let columns = c
        .int_in("storyboard.columns", spec.columns, 1, 50)?
        .unwrap_or(10);
    if tile_width * columns > 8192 {
        return Err(c.err(
            "storyboard",
            format!(
                "a sheet of {columns} thumbnails {tile_width} wide is {} pixels across; at \
                 most 8192",
                tile_width * columns
            ),
        ));
    }
    if tile_width % 2 != 0 {
        return Err(c.err(
            "storyboard.tile_width",
            format!("must be even (got {tile_width})"),
        ));
    }
    Ok(Some(Storyboard {
        interval_seconds: c
            .float_in(
                "storyboard.interval_seconds",
                spec.interval_seconds,
                0.1,
                3600.0,
            )?
            .unwrap_or(5.0),
        tile_width,
        columns,
        rows: c.int_in("storyboard.rows", spec.rows, 1, 50)?.unwrap_or(10),
    }))
}

/// `[subtitles]`: whether to copy subtitle streams, for containers that hold them, and what
/// becomes of text ones (converted, written beside, burnt in).
pub(super) fn subtitles_section(
    c: &Check,
    container: Container,
    video: &Option<VideoOutput>,
    section: Option<&spec::SubtitleSpec>,
) -> Result<(bool, Captions), PresetError> {
    let Some(s) = section else {
        return Ok((false, Captions::default()));
    };
    if container.audio_only() || container.picture() || container == Container::Storyboard {
        return Err(c.err(
            "subtitles",
            format!("container {container} holds no subtitles"),
        ));
    }
    let captions = Captions {
        convert: s.codec.as_deref() == Some("text"),
        side_files: s.side_files.unwrap_or(false),
        burn_in: s.burn_in.unwrap_or(false),
    };
    let copy = match s.codec.as_deref() {
        Some("copy") if container.segmented() => {
            return Err(c.err(
                "subtitles.codec",
                format!(
                    "{container} cannot carry copied subtitles (for HLS, \"text\" makes WebVTT \
                     renditions)"
                ),
            ));
        }
        Some("copy") => true,
        Some("text") if text_subtitles(container).is_none() => {
            return Err(c.err(
                "subtitles.codec",
                format!("container {container} holds no text subtitles"),
            ));
        }
        Some("text") => false,
        None if captions.is_none() => {
            return Err(c.err(
                "subtitles",
                "say what to do: codec = \"copy\" or \"text\", side_files or burn_in",
            ));
        }
        None => false,
        Some(other) => {
            return Err(c.err(
                "subtitles.codec",
                format!("\"copy\" or \"text\" (got '{other}')"),
            ));
        }
    };
    if captions.burn_in && !matches!(video, Some(VideoOutput::Encode(_))) {
        return Err(c.err(
            "subtitles.burn_in",
            "burning captions in needs the video encoded (a [video] section with a codec)",
        ));
    }
    Ok((copy, captions))
}

/// The text subtitle format a container carries converted captions in.
fn text_subtitles(container: Container) -> Option<&'static str> {
    match container {
        Container::Hls => Some("webvtt"),
        Container::Mp4 | Container::Mov => Some("mov_text"),
        Container::Mkv | Container::Webm => Some("webvtt"),
        _ => None,
    }
}
