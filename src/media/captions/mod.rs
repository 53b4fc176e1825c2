//! Captions (decision 0080): text subtitle tracks — the input's own text streams (SRT,
//! ASS/SSA, mov_text, WebVTT) and caption files a job attaches — decoded once, before the
//! run, into ASS events held in memory, then encoded for each place they go: WebVTT
//! renditions of HLS and side files, mov_text streams in MP4/MOV, WebVTT in Matroska/WebM,
//! and an ASS file libass burns into the picture.

mod read;
mod write;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub(crate) use read::{file_track, source_tracks};
pub(crate) use write::{MILLISECONDS, encoded, write_ass, write_webvtt};

/// A caption file given with a transcode (fetched from a bucket, or named on the command
/// line): a local file and its language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionFile {
    pub path: PathBuf,
    /// ISO 639-2 (three letters: `eng`, `fra`).
    pub language: String,
    /// What players show for it; default: the language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What a transcode does with captions beyond its presets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptionEdits {
    /// Caption files, carried like the input's text streams (before them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<CaptionFile>,
    /// Write `NAME.LANG.vtt` beside every output.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub side_files: bool,
    /// Render the first caption track into every video output's picture.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub burn_in: bool,
}

impl CaptionEdits {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && !self.side_files && !self.burn_in
    }
}

/// The most cues a run keeps in memory, all tracks together.
const MAX_CUES: usize = 200_000;
/// The most caption text a run keeps in memory, all tracks together.
const MAX_TEXT_BYTES: usize = 32 << 20;

/// One caption track, decoded: ASS events on the input's timeline.
#[derive(Debug, Clone, Default)]
pub(crate) struct Track {
    /// ISO 639-2, when known.
    pub language: Option<String>,
    /// Its title, when it has one.
    pub name: Option<String>,
    /// Where it came from, for messages: "input stream #2", "caption file x.srt".
    pub source: String,
    /// The ASS header its decoder made (styles, play resolution).
    pub header: String,
    pub cues: Vec<Cue>,
}

/// One caption event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cue {
    pub start_us: i64,
    pub end_us: i64,
    /// The ASS event as FFmpeg's decoders give it: `ReadOrder,Layer,Style,Name,MarginL,
    /// MarginR,MarginV,Effect,Text`.
    pub text: String,
}

impl Track {
    /// The name players show: its title, else its language, else "Captions N".
    pub fn display_name(&self, n: usize) -> String {
        self.name
            .clone()
            .or_else(|| self.language.clone())
            .unwrap_or_else(|| format!("Captions {}", n + 1))
    }

    /// The track on an output's timeline: `offset_us` (the output's zero on the input's
    /// timeline) subtracted, cues before it or past `length_us` dropped, the rest cut to fit.
    pub fn on_timeline(&self, offset_us: i64, length_us: Option<i64>) -> Track {
        let end = length_us.unwrap_or(i64::MAX);
        let cues = self
            .cues
            .iter()
            .filter_map(|c| {
                let (s, e) = (c.start_us - offset_us, c.end_us - offset_us);
                (e > 0 && s < end).then(|| Cue {
                    start_us: s.max(0),
                    end_us: e.min(end),
                    text: c.text.clone(),
                })
            })
            .collect();
        Track {
            cues,
            ..self.clone()
        }
    }
}

/// The filter that renders the ASS script at `script` into the picture (libass), its path
/// escaped for an option value and again for the filter graph.
pub(crate) fn burn_filter(script: &std::path::Path) -> String {
    let path = script.to_string_lossy();
    let mut value = String::new();
    for ch in path.chars() {
        if matches!(ch, '\\' | '\'' | ':') {
            value.push('\\');
        }
        value.push(ch);
    }
    let mut graph = String::new();
    for ch in value.chars() {
        if matches!(ch, '\\' | '\'' | '[' | ']' | ',' | ';') {
            graph.push('\\');
        }
        graph.push(ch);
    }
    format!("ass=filename={graph}")
}

/// The ISO 639-2 codes whose terminology (T) and bibliographic (B) forms differ, as (T, B).
const TERMINOLOGY_TO_BIBLIOGRAPHIC: [(&str, &str); 20] = [
    ("bod", "tib"),
    ("ces", "cze"),
    ("cym", "wel"),
    ("deu", "ger"),
    ("ell", "gre"),
    ("eus", "baq"),
    ("fas", "per"),
    ("fra", "fre"),
    ("hye", "arm"),
    ("isl", "ice"),
    ("kat", "geo"),
    ("mkd", "mac"),
    ("mri", "mao"),
    ("msa", "may"),
    ("mya", "bur"),
    ("nld", "dut"),
    ("ron", "rum"),
    ("slk", "slo"),
    ("sqi", "alb"),
    ("zho", "chi"),
];

/// A language code as QuickTime (MOV) can store it: FFmpeg writes MOV languages as
/// Macintosh codes and knows them by their bibliographic ISO 639-2 names (`ger`, not `deu`);
/// MP4 and Matroska take either.
pub(crate) fn quicktime_language(code: &str) -> &str {
    TERMINOLOGY_TO_BIBLIOGRAPHIC
        .iter()
        .find(|(t, _)| *t == code)
        .map_or(code, |(_, b)| b)
}

/// Whether FFmpeg decodes this subtitle codec to text (rather than pictures).
pub(crate) fn is_text_codec(codec: &str) -> bool {
    matches!(
        codec,
        "subrip"
            | "srt"
            | "ass"
            | "ssa"
            | "webvtt"
            | "mov_text"
            | "text"
            | "microdvd"
            | "subviewer"
    )
}

/// The text subtitle codec a container carries converted captions in, when it carries them.
pub(crate) fn text_codec_for(muxer: &str) -> Option<&'static str> {
    match muxer {
        "mp4" | "mov" => Some("mov_text"),
        "matroska" | "webm" => Some("webvtt"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cue(s: i64, e: i64) -> Cue {
        Cue {
            start_us: s,
            end_us: e,
            text: "0,0,Default,,0,0,0,,x".into(),
        }
    }

    #[test]
    fn a_track_moves_to_the_output_timeline_and_is_cut_to_its_length() {
        let track = Track {
            cues: vec![
                cue(0, 1_000_000),
                cue(1_500_000, 3_000_000),
                cue(5_000_000, 6_000_000),
            ],
            ..Track::default()
        };
        let moved = track.on_timeline(1_000_000, Some(3_000_000));
        let times: Vec<(i64, i64)> = moved.cues.iter().map(|c| (c.start_us, c.end_us)).collect();
        assert_eq!(times, vec![(500_000, 2_000_000)]);
        assert_eq!(track.on_timeline(0, None).cues.len(), 3);
    }

    #[test]
    fn a_burn_in_script_path_is_escaped_twice() {
        assert_eq!(
            burn_filter(std::path::Path::new("/w/out/.a.mp4.1-0.ass")),
            "ass=filename=/w/out/.a.mp4.1-0.ass"
        );
        assert_eq!(
            burn_filter(std::path::Path::new("/w/it's:x,y.ass")),
            "ass=filename=/w/it\\\\\\'s\\\\:x\\,y.ass"
        );
    }

    #[test]
    fn text_codecs_are_told_from_pictures() {
        assert!(is_text_codec("subrip") && is_text_codec("mov_text") && is_text_codec("ass"));
        assert!(!is_text_codec("hdmv_pgs_subtitle") && !is_text_codec("dvb_subtitle"));
        assert_eq!(text_codec_for("mp4"), Some("mov_text"));
        assert_eq!(text_codec_for("mpegts"), None);
        assert_eq!(quicktime_language("deu"), "ger");
        assert_eq!(quicktime_language("eng"), "eng");
    }
}
