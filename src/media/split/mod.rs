//! Split jobs: one long video encoded in parts by many workers. `layout` chooses the cut
//! points (input keyframes; for HLS, segment boundaries) and writes down the whole input's
//! plan; `cut` copies each part's packets into a source of its own; `encode_part` encodes one
//! part's frames, `encode_audio` the whole input's audio once; `assemble` joins the parts'
//! bitstreams (no re-encode) with the audio into what `transcode` would have written.
//! Decision 0068 explains the choices.

mod assemble;
mod cut;
mod encode;
mod hls;
mod keyframes;
mod segments;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::MediaError;
pub use super::plan::SavedPlan;
use super::probe::ProbeReport;
use crate::preset::Preset;
pub use assemble::assemble;
pub use cut::cut;
pub use encode::{encode_audio, encode_part};
pub use hls::{HlsAssembly, Placed, assemble_hls};
pub use keyframes::layout;

/// How an input is split: serialisable, it is `SplitPlan::detail` and every part task gets it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Layout {
    /// `[start_us, end_us)` of the output's timeline per video part; the first starts at 0
    /// and the last ends at `duration_us`, and each part keeps every frame in its range.
    pub ranges: Vec<(i64, i64)>,
    pub duration_us: i64,
    /// The input has streams besides video that the output carries (audio, subtitles): the
    /// audio part runs, from `src/rest.nut`.
    pub has_audio: bool,
    /// The preset the layout was made for.
    pub preset: String,
    /// For HLS: the segment length every cut is a multiple of (µs).
    pub segment_us: Option<i64>,
    /// The input streams (by index) that go to `src/rest.nut`, in that file's order.
    pub rest_streams: Vec<usize>,
    /// Per rest stream, the priming samples its decoder drops from the first packet: the
    /// input's demuxer says so in a packet mark NUT cannot hold.
    pub rest_skip_samples: Vec<u32>,
    /// The whole input's plan: every part sets up its filters and encoders from it.
    pub plan: SavedPlan,
    /// What the input holds (the assembly's report names it).
    pub input: ProbeReport,
}

impl Layout {
    /// A short fingerprint of the layout, stamped on what the parts make so the assembly
    /// can refuse a piece made for another layout.
    pub fn fingerprint(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        // FNV-1a: stable across builds and platforms, unlike the standard hasher.
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("{hash:016x}")
    }

    /// The frames part `seq` keeps: the first part from the very start, the last to the end.
    fn keep_us(&self, seq: usize) -> (i64, i64) {
        let (start, end) = self.ranges[seq];
        let from = if seq == 0 { i64::MIN } else { start };
        let until = if seq + 1 == self.ranges.len() {
            i64::MAX
        } else {
            end
        };
        (from, until)
    }
}

/// Timestamps in the cut sources are moved this far later (plus the input's own start
/// offset removed), so no packet in them is negative and no muxer shifts one file's
/// timestamps on its own. Every reader takes it off again.
const SOURCE_SHIFT_US: i64 = 10_000_000;

/// The file part `seq`'s source is cut to, under `dir`.
pub fn source_path(dir: &Path, seq: usize) -> PathBuf {
    dir.join("src").join(format!("{seq}.nut"))
}

/// The file the non-video streams are cut to, under `dir`.
pub fn rest_path(dir: &Path) -> PathBuf {
    dir.join("src").join("rest.nut")
}

/// What a part made for output file `output` of the plan (its video).
fn video_file(dir: &Path, output: usize) -> PathBuf {
    dir.join(format!("video_{output}.nut"))
}

/// What the audio part made for output file `output` of the plan (its other streams).
fn audio_file(dir: &Path, output: usize) -> PathBuf {
    dir.join(format!("audio_{output}.nut"))
}

/// The stamp beside what a part or the audio made: the layout and the piece it belongs to.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Stamp {
    layout: String,
    /// The part's seq, or None for the audio.
    seq: Option<usize>,
    /// Video frames the part encoded (0 for the audio).
    frames: u64,
}

const STAMP: &str = "piece.json";

impl Stamp {
    fn write(&self, dir: &Path) -> Result<(), MediaError> {
        let path = dir.join(STAMP);
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| MediaError::Internal(format!("writing {}: {e}", path.display())))?;
        std::fs::write(&path, text).map_err(|e| MediaError::io(&path, e))
    }

    /// Reads the stamp in `dir` and checks it belongs to `layout` as piece `seq`.
    fn check(dir: &Path, layout: &Layout, seq: Option<usize>) -> Result<Stamp, MediaError> {
        let path = dir.join(STAMP);
        let what = match seq {
            Some(s) => format!("part {s}"),
            None => "the audio".to_string(),
        };
        let part_error = |reason: String| MediaError::Part {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read(&path)
            .map_err(|e| part_error(format!("{what} has not finished here ({e})")))?;
        let stamp: Stamp = serde_json::from_slice(&text)
            .map_err(|e| part_error(format!("{what}'s stamp is unreadable ({e})")))?;
        if stamp.layout != layout.fingerprint() {
            return Err(part_error(format!(
                "{what} was made for another layout ({}, not {})",
                stamp.layout,
                layout.fingerprint()
            )));
        }
        if stamp.seq != seq {
            return Err(part_error(format!(
                "this is not {what} (its stamp says {:?})",
                stamp.seq
            )));
        }
        Ok(stamp)
    }
}

/// Every part and the audio (when the input has any) finished for this layout; returns the
/// frames the parts encoded.
fn check_pieces(
    layout: &Layout,
    preset: &Preset,
    part_dirs: &[PathBuf],
    audio_dir: Option<&Path>,
) -> Result<u64, MediaError> {
    if layout.preset != preset.name {
        return Err(MediaError::Unsupported(format!(
            "this split layout was made for preset {}, not {}",
            layout.preset, preset.name
        )));
    }
    if part_dirs.len() != layout.ranges.len() {
        return Err(MediaError::Part {
            path: part_dirs.first().cloned().unwrap_or_default(),
            reason: format!(
                "{} part directories given for a layout of {} parts",
                part_dirs.len(),
                layout.ranges.len()
            ),
        });
    }
    let mut frames = 0;
    for (seq, dir) in part_dirs.iter().enumerate() {
        frames += Stamp::check(dir, layout, Some(seq))?.frames;
    }
    match (layout.has_audio, audio_dir) {
        (true, Some(dir)) => {
            Stamp::check(dir, layout, None)?;
        }
        (true, None) => {
            return Err(MediaError::Part {
                path: PathBuf::from("audio"),
                reason: "the input has audio, but no audio directory was given".into(),
            });
        }
        (false, _) => {}
    }
    Ok(frames)
}

/// Moves a finished file from its staging name to its own.
fn publish(staged: &Path, path: &Path) -> Result<(), MediaError> {
    std::fs::rename(staged, path).map_err(|e| MediaError::io(path, e))
}

/// A hidden staging name beside `path`.
fn staging(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}
