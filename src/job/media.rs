//! What a job asks of its media beyond its presets (`MediaOptions`): a clip of the input, a
//! watermark, quality figures, which audio tracks to keep and captions. Stored with the job
//! as one JSON column (`media`), shown flattened into the
//! job, and handed to the engine.

use serde::{Deserialize, Serialize};

/// A job's media options, flattened into the job's JSON (`"clip": {...}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MediaOptions {
    /// Only this part of the input is transcoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<Clip>,
    /// An image composited on every video output (over a preset's own watermark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<Watermark>,
    /// Measure each video output's SSIM and PSNR against the source (after the run: one
    /// more decode of the source and the output).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quality: bool,
    /// Which audio tracks to keep (over the presets' `[audio] languages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioChoice>,
    /// Caption files (SRT, ASS/SSA, WebVTT, from a bucket) carried into every output that
    /// holds text subtitles, before the input's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub captions: Vec<Caption>,
    /// Side files and burn-in for the captions, beyond what the presets say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitles: Option<SubtitleOptions>,
}

/// Which of the input's audio tracks a job keeps: those in `languages`, in that order (the
/// first kept is the default track). `"und"` stands for tracks that name no language.
/// Several kept tracks go into containers that hold several, and become alternate audio
/// renditions in HLS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioChoice {
    /// ISO 639 codes (`eng`, `fra`, `en`, `fre`), or `und`.
    pub languages: Vec<String>,
}

impl MediaOptions {
    pub fn is_empty(&self) -> bool {
        self.clip.is_none()
            && self.audio.is_none()
            && self.watermark.is_none()
            && !self.quality
            && self.captions.is_empty()
            && self.subtitles.is_none()
    }

    /// What is wrong with these options, naming the field.
    pub fn problem(&self) -> Option<String> {
        self.clip
            .as_ref()
            .and_then(Clip::problem)
            .or_else(|| self.watermark.as_ref().and_then(|w| w.problem("watermark")))
            .or_else(|| {
                self.audio
                    .as_ref()
                    .and_then(|a| super::language::choice("audio.languages", &a.languages).err())
            })
            .or_else(|| caption_problem(&self.captions))
    }

    /// The audio languages asked for, as canonical codes (None: the presets decide). Call
    /// after `problem` found nothing; a code that names no language is left out here.
    pub fn audio_languages(&self) -> Option<Vec<String>> {
        self.audio.as_ref().map(|a| {
            a.languages
                .iter()
                .filter_map(|c| super::language::canonical(c).map(str::to_string))
                .collect()
        })
    }

    /// Whether the job asks for captions (files, side files or burn-in): such jobs run whole.
    pub fn has_captions(&self) -> bool {
        !self.captions.is_empty() || self.subtitles.is_some_and(|s| s.side_files || s.burn_in)
    }
}

/// The most caption files one job may attach.
pub const MAX_CAPTION_FILES: usize = 16;

/// A caption file from a bucket: text subtitles in SRT, ASS/SSA or WebVTT. Untrusted input:
/// the engine opens it in its sandbox like the media.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Caption {
    /// The file's bucket; default: the input's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    pub key: String,
    /// ISO 639-2, three lowercase letters (`eng`, `fra`, `deu`): what MP4 and Matroska store
    /// and HLS players show.
    pub language: String,
    /// What players list it as; default: the language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Side files (`NAME.LANG.vtt` beside each output) and burn-in (the first caption track
/// rendered into the picture), for every output of the job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubtitleOptions {
    #[serde(default)]
    pub side_files: bool,
    #[serde(default)]
    pub burn_in: bool,
}

/// Whether `language` is an ISO 639-2 code as the containers store it: three lowercase
/// ASCII letters.
pub fn is_language_code(language: &str) -> bool {
    language.len() == 3 && language.bytes().all(|b| b.is_ascii_lowercase())
}

/// What is wrong with a job's caption files, naming the field.
fn caption_problem(captions: &[Caption]) -> Option<String> {
    if captions.len() > MAX_CAPTION_FILES {
        return Some(format!(
            "captions: {} files; at most {MAX_CAPTION_FILES}",
            captions.len()
        ));
    }
    captions.iter().enumerate().find_map(|(i, c)| {
        if c.key.trim().is_empty() {
            return Some(format!(
                "captions[{i}].key: name the caption file's object key"
            ));
        }
        if !is_language_code(&c.language) {
            return Some(format!(
                "captions[{i}].language: '{}' is not an ISO 639-2 code (three lowercase \
                 letters, e.g. eng)",
                c.language
            ));
        }
        match &c.name {
            Some(n) if n.trim().is_empty() || n.chars().count() > 100 => {
                Some(format!("captions[{i}].name: 1 to 100 characters"))
            }
            Some(n) if n.chars().any(|ch| ch.is_control() || ch == '"') => Some(format!(
                "captions[{i}].name: no quotes or control characters"
            )),
            _ => None,
        }
    })
}

/// An image (PNG or JPEG, from a bucket) composited on a video output, scaled to a share of
/// the output's height and placed in a corner or the centre. The image is untrusted input:
/// the engine opens it in its sandbox like any media.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Watermark {
    /// The image's bucket; default: the input's (a preset's watermark: required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    pub key: String,
    #[serde(default)]
    pub position: Position,
    /// The gap to the picture's edges, as a share of the output's height (0 to 0.5).
    #[serde(default = "default_margin")]
    pub margin: f64,
    /// 0 (invisible) to 1 (as the image is, its own transparency kept).
    #[serde(default = "default_opacity")]
    pub opacity: f64,
    /// The image's height as a share of the output's height (0.01 to 1).
    #[serde(default = "default_height_ratio")]
    pub height_ratio: f64,
}

fn default_margin() -> f64 {
    0.03
}

fn default_opacity() -> f64 {
    1.0
}

fn default_height_ratio() -> f64 {
    0.1
}

/// Where a watermark sits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Position {
    TopLeft,
    TopRight,
    BottomLeft,
    #[default]
    BottomRight,
    Center,
}

impl Watermark {
    /// The image `key` at the default place: bottom right, a tenth of the height, 3 % in.
    pub fn at_defaults(key: &str) -> Watermark {
        Watermark {
            bucket: None,
            key: key.to_string(),
            position: Position::default(),
            margin: default_margin(),
            opacity: default_opacity(),
            height_ratio: default_height_ratio(),
        }
    }

    /// What is wrong with it, naming the field under `at` (`watermark`, a preset's
    /// `[watermark]`).
    pub fn problem(&self, at: &str) -> Option<String> {
        let outside = |v: f64, lo: f64, hi: f64| !v.is_finite() || v < lo || v > hi;
        if self.key.trim().is_empty() {
            return Some(format!("{at}.key: name the image's object key"));
        }
        if outside(self.margin, 0.0, 0.5) {
            return Some(format!("{at}.margin: {} is not 0 to 0.5", self.margin));
        }
        if outside(self.opacity, 0.0, 1.0) {
            return Some(format!("{at}.opacity: {} is not 0 to 1", self.opacity));
        }
        if outside(self.height_ratio, 0.01, 1.0) {
            return Some(format!(
                "{at}.height_ratio: {} is not 0.01 to 1",
                self.height_ratio
            ));
        }
        None
    }
}

/// The part of the input a job transcodes, in seconds of the input's timeline (its first
/// frame is 0): from `start` (default 0) to `end` (default: the input's end). Frame-accurate
/// when re-encoding; the audio is cut to the same times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Clip {
    #[serde(default)]
    pub start: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
}

/// The shortest clip, in seconds: less than a frame at the slowest rates players accept
/// would make an output of no picture.
pub const MIN_CLIP_SECONDS: f64 = 0.1;

/// The latest start or end a clip may name: the engine's limit on any run (a day).
const MAX_CLIP_SECONDS: f64 = 86_400.0;

impl Clip {
    /// What is wrong with this clip, naming the field.
    pub fn problem(&self) -> Option<String> {
        let bad = |v: f64| !v.is_finite() || !(0.0..=MAX_CLIP_SECONDS).contains(&v);
        if bad(self.start) {
            return Some(format!(
                "clip.start: {} is not a time in seconds from 0 to {MAX_CLIP_SECONDS}",
                self.start
            ));
        }
        match self.end {
            Some(end) if bad(end) => Some(format!(
                "clip.end: {end} is not a time in seconds from 0 to {MAX_CLIP_SECONDS}"
            )),
            Some(end) if end - self.start < MIN_CLIP_SECONDS => Some(format!(
                "clip.end: {end} must come at least {MIN_CLIP_SECONDS} s after clip.start ({})",
                self.start
            )),
            _ => None,
        }
    }

    /// The clip inside an input of `duration` seconds (None: unknown): its start and
    /// length, or why it does not fit.
    pub fn within(&self, duration: Option<f64>) -> Result<(f64, Option<f64>), String> {
        if let Some(p) = self.problem() {
            return Err(p);
        }
        let Some(d) = duration else {
            return Ok((self.start, self.end.map(|e| e - self.start)));
        };
        if self.start + MIN_CLIP_SECONDS > d {
            return Err(format!(
                "clip.start: {} s is at or past the input's end ({d:.3} s)",
                self.start
            ));
        }
        match self.end {
            // A clip may end a little past the input's declared end (what a player shows as
            // the length is rounded): up to its last frame, not beyond.
            Some(end) if end > d + 0.5 => Err(format!(
                "clip.end: {end} s is past the input's end ({d:.3} s)"
            )),
            Some(end) => Ok((self.start, Some(end.min(d) - self.start))),
            None => Ok((self.start, Some(d - self.start))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(start: f64, end: Option<f64>) -> Clip {
        Clip { start, end }
    }

    #[test]
    fn a_clip_names_the_field_that_is_wrong() {
        assert!(clip(0.0, None).problem().is_none());
        assert!(clip(1.5, Some(3.0)).problem().is_none());
        let p = |c: Clip| c.problem().unwrap();
        assert!(p(clip(-1.0, None)).starts_with("clip.start"));
        assert!(p(clip(f64::NAN, None)).starts_with("clip.start"));
        assert!(p(clip(0.0, Some(f64::INFINITY))).starts_with("clip.end"));
        assert!(p(clip(5.0, Some(4.0))).contains("after clip.start"));
        assert!(p(clip(5.0, Some(5.05))).contains("after clip.start"));
    }

    #[test]
    fn a_clip_fits_the_input_or_says_why_not() {
        assert_eq!(
            clip(2.0, Some(5.0)).within(Some(10.0)),
            Ok((2.0, Some(3.0)))
        );
        assert_eq!(clip(2.0, None).within(Some(10.0)), Ok((2.0, Some(8.0))));
        assert_eq!(
            clip(2.0, Some(10.2)).within(Some(10.0)),
            Ok((2.0, Some(8.0)))
        );
        assert_eq!(clip(2.0, None).within(None), Ok((2.0, None)));
        let e = clip(10.0, None).within(Some(10.0)).unwrap_err();
        assert!(e.contains("clip.start") && e.contains("10.000"), "{e}");
        let e = clip(0.0, Some(12.0)).within(Some(10.0)).unwrap_err();
        assert!(
            e.contains("clip.end") && e.contains("past the input's end"),
            "{e}"
        );
    }

    #[test]
    fn caption_files_name_the_field_that_is_wrong() {
        let caption = |key: &str, language: &str| Caption {
            bucket: None,
            key: key.into(),
            language: language.into(),
            name: None,
        };
        let problem = |c: Vec<Caption>| {
            MediaOptions {
                captions: c,
                ..MediaOptions::default()
            }
            .problem()
        };
        assert_eq!(problem(vec![caption("a.srt", "eng")]), None);
        for bad in ["en", "EN", "english", "en-US", "e1g", ""] {
            let p = problem(vec![caption("a.srt", bad)]).unwrap();
            assert!(p.starts_with("captions[0].language"), "{bad}: {p}");
        }
        let p = problem(vec![caption("a.srt", "eng"), caption(" ", "fra")]).unwrap();
        assert!(p.starts_with("captions[1].key"), "{p}");
        let o: MediaOptions = serde_json::from_str(
            r#"{"captions":[{"key":"a.srt","language":"eng"}],"subtitles":{"burn_in":true}}"#,
        )
        .unwrap();
        assert!(o.has_captions() && !o.is_empty());
        assert!(serde_json::from_str::<Caption>(r#"{"key":"a","lang":"eng"}"#).is_err());
    }

    #[test]
    fn options_without_a_clip_are_empty_and_read_from_nothing() {
        let o: MediaOptions = serde_json::from_str("{}").unwrap();
        assert!(o.is_empty());
        assert_eq!(serde_json::to_string(&o).unwrap(), "{}");
        let o: MediaOptions = serde_json::from_str(r#"{"clip":{"start":1,"end":2}}"#).unwrap();
        assert_eq!(o.clip, Some(clip(1.0, Some(2.0))));
        assert!(serde_json::from_str::<Clip>(r#"{"from":1}"#).is_err());
    }
}
