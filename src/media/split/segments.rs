//! What a split HLS job's pieces write besides their segments: the segment muxer's targets
//! (MPEG-TS cut at the HLS boundaries, numbered as the whole output numbers them, every piece
//! on one shifted timeline) and the list of what each wrote (`hls_N.json`, `hls_audio.json`:
//! file, number, start, end, size, and what the master says of the stream), read back by the
//! assembly (`hls.rs`). Decision 0070.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Layout;
use crate::media::error::MediaError;
use crate::media::output::MuxTarget;
use crate::media::pipeline::Written;
use crate::media::plan::Plan;

/// Timestamps of a split HLS output move this much later, so that no piece starts with a
/// negative one (B-frame delay, AAC priming), which a muxer would shift on its own in the
/// first piece and not in the others.
const HLS_SHIFT_US: i64 = 1_000_000;

/// The name the audio rendition's files start with (after the output's stem).
pub(super) const AUDIO: &str = "audio";

/// One media segment a piece wrote.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Listed {
    /// Its file name in the piece's folder.
    pub file: String,
    /// Its number in the rendition (as the whole output numbers them).
    pub number: u64,
    /// Its first and end time (seconds, on the shifted timeline).
    pub start: f64,
    pub end: f64,
    pub bytes: u64,
}

/// What a piece wrote for one playlist: its segments and what the master says of them.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Piece {
    pub segments: Vec<Listed>,
    pub codecs: Vec<String>,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
}

/// The list a video part writes for output file `output` of the plan.
pub(super) fn video_list(dir: &Path, output: usize) -> PathBuf {
    dir.join(format!("hls_{output}.json"))
}

/// The list the audio part writes.
pub(super) fn audio_list(dir: &Path) -> PathBuf {
    dir.join("hls_audio.json")
}

/// The segment muxer's targets for video part `seq`: per output file of the plan, MPEG-TS
/// segments split at the HLS boundaries inside the part, numbered from the boundary it
/// starts on.
pub(super) fn video_targets(
    layout: &Layout,
    plan: &Plan,
    seq: usize,
    dir: &Path,
) -> Vec<MuxTarget> {
    let segment_us = layout.segment_us.unwrap_or(6_000_000).max(1);
    let (start, end) = layout.ranges[seq];
    let first = if seq == 0 { 0 } else { start / segment_us };
    let inner: Vec<i64> = ((first + 1)..)
        .map(|k| k * segment_us)
        .take_while(|&t| t < end)
        .collect();
    (0..plan.outputs.len())
        .map(|o| segment_target(dir, &format!("seg_{o}"), first, &inner, end))
        .collect()
}

/// The segment muxer's target for the audio rendition: the whole input, split at every HLS
/// boundary.
pub(super) fn audio_target(layout: &Layout, dir: &Path) -> MuxTarget {
    let segment_us = layout.segment_us.unwrap_or(6_000_000).max(1);
    let end = layout.duration_us;
    let inner: Vec<i64> = (1..)
        .map(|k| k * segment_us)
        .take_while(|&t| t < end)
        .collect();
    segment_target(dir, AUDIO, 0, &inner, end)
}

fn segment_target(dir: &Path, name: &str, first: i64, cuts_us: &[i64], end_us: i64) -> MuxTarget {
    let seconds = |us: i64| format!("{:.6}", (us + HLS_SHIFT_US) as f64 / 1e6);
    // Without an inner boundary, one far beyond the end: the muxer's default is 2 s.
    let times = if cuts_us.is_empty() {
        seconds(end_us + 3_600_000_000)
    } else {
        cuts_us
            .iter()
            .map(|&t| seconds(t))
            .collect::<Vec<_>>()
            .join(",")
    };
    let list = dir.join(format!("{name}.csv"));
    MuxTarget {
        path: dir.join(format!("{name}_%05d.ts")),
        muxer: "segment",
        options: vec![
            ("segment_format".into(), "mpegts".into()),
            ("segment_times".into(), times),
            // A forced keyframe sits at or just after its boundary.
            ("segment_time_delta".into(), "0.001".into()),
            ("segment_start_number".into(), first.to_string()),
            ("segment_list".into(), list.to_string_lossy().into_owned()),
            ("segment_list_type".into(), "csv".into()),
            ("output_ts_offset".into(), format!("{HLS_SHIFT_US}us")),
        ],
    }
}

/// After a video part's run: writes each output file's list beside its segments.
pub(super) fn list_video(
    layout: &Layout,
    seq: usize,
    dir: &Path,
    summaries: &[Written],
) -> Result<(), MediaError> {
    let start = layout.ranges[seq].0;
    for (o, written) in summaries.iter().enumerate() {
        let mut piece = read_csv(dir, &format!("seg_{o}"), start)?;
        let streams = written.clone().unwrap_or_default();
        if let Some(v) = streams.iter().find(|s| s.width > 0) {
            piece.resolution = Some((v.width, v.height));
            piece.frame_rate = v.frame_rate;
        }
        piece.codecs = streams
            .iter()
            .filter_map(|s| s.codec_string.clone())
            .collect();
        write_json(&video_list(dir, o), &piece)?;
    }
    Ok(())
}

/// After the audio part's run: writes the audio rendition's list.
pub(super) fn list_audio(dir: &Path, summaries: &[Written]) -> Result<(), MediaError> {
    let mut piece = read_csv(dir, AUDIO, 0)?;
    piece.codecs = summaries
        .iter()
        .flat_map(|w| w.clone().unwrap_or_default())
        .filter_map(|s| s.codec_string)
        .collect();
    write_json(&audio_list(dir), &piece)
}

/// The segment muxer's CSV list (`file,start,end` per segment) with each file's size. The
/// muxer lists its first segment as starting at 0: it starts at `first_us` of the output.
fn read_csv(dir: &Path, name: &str, first_us: i64) -> Result<Piece, MediaError> {
    let path = dir.join(format!("{name}.csv"));
    let text = std::fs::read_to_string(&path).map_err(|e| MediaError::io(&path, e))?;
    let bad = |line: &str| MediaError::Part {
        path: path.clone(),
        reason: format!("an unreadable segment entry {line:?}"),
    };
    let mut piece = Piece::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.rsplitn(3, ',');
        let (Some(end), Some(start), Some(file)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad(line));
        };
        let file = file.rsplit('/').next().unwrap_or(file).to_string();
        let number = file
            .trim_end_matches(".ts")
            .rsplit('_')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad(line))?;
        let seg = dir.join(&file);
        let bytes = std::fs::metadata(&seg)
            .map_err(|e| MediaError::io(&seg, e))?
            .len();
        piece.segments.push(Listed {
            file,
            number,
            start: start.trim().parse().map_err(|_| bad(line))?,
            end: end.trim().parse().map_err(|_| bad(line))?,
            bytes,
        });
    }
    if let Some(first) = piece.segments.first_mut() {
        first.start = (first_us + HLS_SHIFT_US) as f64 / 1e6;
    }
    std::fs::remove_file(&path).map_err(|e| MediaError::io(&path, e))?;
    Ok(piece)
}

fn write_json(path: &Path, piece: &Piece) -> Result<(), MediaError> {
    let text = serde_json::to_vec_pretty(piece)
        .map_err(|e| MediaError::Internal(format!("writing {}: {e}", path.display())))?;
    std::fs::write(path, text).map_err(|e| MediaError::io(path, e))
}

pub(super) fn read_json(path: &Path) -> Result<Piece, MediaError> {
    let text = std::fs::read(path).map_err(|e| MediaError::Part {
        path: path.to_path_buf(),
        reason: format!("the piece's segment list is missing ({e})"),
    })?;
    serde_json::from_slice(&text).map_err(|e| MediaError::Part {
        path: path.to_path_buf(),
        reason: format!("the piece's segment list is unreadable ({e})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_broken_list_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_json(&dir.path().join("hls_0.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("segment list is missing"), "{err}");
        std::fs::write(dir.path().join("hls_0.json"), "{not json").unwrap();
        let err = read_json(&dir.path().join("hls_0.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("segment list is unreadable"), "{err}");
        std::fs::write(dir.path().join("seg_0.csv"), "seg_0_00003.ts,0.0\n").unwrap();
        let err = read_csv(dir.path(), "seg_0", 0).unwrap_err().to_string();
        assert!(err.contains("unreadable segment entry"), "{err}");
    }

    #[test]
    fn the_csv_list_gets_sizes_and_the_first_start() {
        let dir = tempfile::tempdir().unwrap();
        for n in [4, 5] {
            std::fs::write(
                dir.path().join(format!("seg_0_{n:05}.ts")),
                vec![0u8; 188 * n],
            )
            .unwrap();
        }
        std::fs::write(
            dir.path().join("seg_0.csv"),
            "seg_0_00004.ts,0.000000,31.000000\nseg_0_00005.ts,31.000000,37.000000\n",
        )
        .unwrap();
        let piece = read_csv(dir.path(), "seg_0", 24_000_000).unwrap();
        assert_eq!(
            piece.segments,
            vec![
                Listed {
                    file: "seg_0_00004.ts".into(),
                    number: 4,
                    start: 25.0,
                    end: 31.0,
                    bytes: 752,
                },
                Listed {
                    file: "seg_0_00005.ts".into(),
                    number: 5,
                    start: 31.0,
                    end: 37.0,
                    bytes: 940,
                },
            ]
        );
        assert!(
            !dir.path().join("seg_0.csv").exists(),
            "the CSV gives way to the list"
        );
    }
}
