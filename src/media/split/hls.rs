//! HLS outputs of a split job. Every video part writes its renditions' final media segments
//! itself (MPEG-TS, cut on the keyframes the encoder forces at the segment boundaries,
//! numbered as the whole output numbers them) and lists them; the audio part, which encodes
//! the whole input's audio once, writes the audio rendition the variants share; the assembly
//! only writes playlists: each variant's and the audio's from the pieces' lists, then the
//! master, last. Decision 0070.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Layout;
use crate::media::error::MediaError;
use crate::media::hls::{self, AudioRendition, Variant};
use crate::media::output::{MASTER_PLAYLIST, MuxTarget, OutputFile, OutputKind};
use crate::media::pipeline::TranscodeReport;
use crate::media::pipeline::Written;
use crate::media::plan::Plan;
use crate::preset::Preset;

/// Timestamps of a split HLS output move this much later, so that no piece starts with a
/// negative one (B-frame delay, AAC priming), which a muxer would shift on its own in the
/// first piece and not in the others.
const HLS_SHIFT_US: i64 = 1_000_000;

/// The name the audio rendition's files start with (after the output's stem).
const AUDIO: &str = "audio";

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
fn video_list(dir: &Path, output: usize) -> PathBuf {
    dir.join(format!("hls_{output}.json"))
}

/// The list the audio part writes.
fn audio_list(dir: &Path) -> PathBuf {
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

fn read_json(path: &Path) -> Result<Piece, MediaError> {
    let text = std::fs::read(path).map_err(|e| MediaError::Part {
        path: path.to_path_buf(),
        reason: format!("the piece's segment list is missing ({e})"),
    })?;
    serde_json::from_slice(&text).map_err(|e| MediaError::Part {
        path: path.to_path_buf(),
        reason: format!("the piece's segment list is unreadable ({e})"),
    })
}

/// A segment of the output: which piece wrote it (a video part's index, None for the audio)
/// and under which name, and the name it is published as.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub piece: Option<usize>,
    pub file: String,
    pub name: String,
    pub bytes: u64,
}

/// What the assembly of a split HLS output made: the segments to place (in the order they
/// are published), the playlists it wrote in the output directory (variants and the audio's,
/// then the top playlist, last), and the length it covers.
#[derive(Debug)]
pub struct HlsAssembly {
    pub segments: Vec<Placed>,
    pub playlists: Vec<OutputFile>,
    pub seconds: f64,
    /// The video frames the parts encoded.
    pub frames: u64,
}

/// The names of an HLS output at `output`: its directory, the stem every file starts with,
/// and whether the top playlist is named after the output (`x.m3u8`) or is `master.m3u8`.
fn names(output: &Path) -> (PathBuf, String, Option<String>) {
    let is_playlist = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("m3u8"));
    if !is_playlist {
        return (output.to_path_buf(), "index".into(), None);
    }
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "index".into());
    let dir = output.parent().map(Path::to_path_buf).unwrap_or_default();
    let top = format!("{stem}.m3u8");
    (dir, stem, Some(top))
}

/// Writes the playlists of a split HLS output at `output` from the pieces' lists (every
/// part's in `part_dirs`, the audio's in `audio_dir`; each piece's stamp checked), and says
/// where each segment goes. The segments themselves stay where the pieces wrote them.
pub fn assemble_hls(
    layout: &Layout,
    preset: &Preset,
    part_dirs: &[PathBuf],
    audio_dir: Option<&Path>,
    output: &Path,
) -> Result<HlsAssembly, MediaError> {
    let frames = super::assemble::check_pieces(layout, preset, part_dirs, audio_dir)?;
    let plan = layout.plan.restore(preset)?;
    let mut made = playlists(layout, &plan, part_dirs, audio_dir, output)?;
    made.frames = frames;
    Ok(made)
}

/// [`assemble_hls`], then copies every segment from its piece's folder beside the playlists:
/// the whole output in one directory, as `transcode` writes it.
pub(super) fn assemble_here(
    layout: &Layout,
    preset: &Preset,
    part_dirs: &[PathBuf],
    audio_dir: Option<&Path>,
    output: &Path,
) -> Result<TranscodeReport, MediaError> {
    let started = std::time::Instant::now();
    let made = assemble_hls(layout, preset, part_dirs, audio_dir, output)?;
    let (dir, ..) = names(output);
    let mut outputs = Vec::with_capacity(made.segments.len() + made.playlists.len());
    for s in &made.segments {
        let from = match s.piece {
            Some(i) => part_dirs[i].join(&s.file),
            None => audio_dir.unwrap_or(Path::new(".")).join(&s.file),
        };
        let to = dir.join(&s.name);
        std::fs::copy(&from, &to).map_err(|e| MediaError::io(&from, e))?;
        outputs.push(output_file(to, OutputKind::Segment));
    }
    outputs.extend(made.playlists);
    Ok(TranscodeReport {
        outputs,
        input: layout.input.clone(),
        frames: made.frames,
        out_time_seconds: made.seconds,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

fn playlists(
    layout: &Layout,
    plan: &Plan,
    part_dirs: &[PathBuf],
    audio_dir: Option<&Path>,
    output: &Path,
) -> Result<HlsAssembly, MediaError> {
    let (dir, stem, named_top) = names(output);
    std::fs::create_dir_all(&dir).map_err(|e| MediaError::io(&dir, e))?;
    let renditions = plan.renditions();
    let ladder = renditions.iter().any(Option::is_some);
    let audio = match audio_dir {
        Some(a) if layout.has_audio => Some((read_json(&audio_list(a))?, a.to_path_buf())),
        _ => None,
    };
    // With one rendition and no audio the top playlist is the media playlist itself.
    let master = ladder || audio.is_some();
    let mut made = Made::default();
    let mut variants = Vec::new();
    for (o, rendition) in renditions.iter().enumerate() {
        let base = match (rendition, master) {
            (Some(name), _) => format!("{stem}_{name}"),
            (None, true) => format!("{stem}_video"),
            (None, false) => stem.clone(),
        };
        let pieces = part_dirs
            .iter()
            .map(|d| read_json(&video_list(d, o)))
            .collect::<Result<Vec<_>, _>>()?;
        let first = pieces.first().cloned().unwrap_or_default();
        let variant = Variant {
            uri: format!("{base}.m3u8"),
            resolution: first.resolution,
            frame_rate: first.frame_rate,
            codecs: first.codecs,
        };
        let rate = made.rendition(&dir, &base, &pieces, part_dirs, true)?;
        variants.push((variant, rate));
    }
    let audio = match audio {
        Some((piece, a)) => {
            let base = format!("{stem}_{AUDIO}");
            let rate = made.rendition(&dir, &base, std::slice::from_ref(&piece), &[a], false)?;
            let rendition = AudioRendition {
                uri: format!("{base}.m3u8"),
                codecs: piece.codecs,
                channels: audio_channels(plan),
                language: audio_language(plan),
            };
            Some((rendition, rate))
        }
        None => None,
    };
    if master {
        let top = named_top.unwrap_or_else(|| MASTER_PLAYLIST.to_string());
        let path = dir.join(top);
        hls::write_master_of(&path, &variants, audio.as_ref())?;
        made.playlists
            .push(output_file(path, OutputKind::MasterPlaylist));
    }
    Ok(HlsAssembly {
        segments: made.segments,
        playlists: made.playlists,
        seconds: made.seconds,
        frames: 0,
    })
}

/// What the assembly has made so far.
#[derive(Default)]
struct Made {
    segments: Vec<Placed>,
    playlists: Vec<OutputFile>,
    seconds: f64,
}

impl Made {
    /// Writes one rendition's media playlist from its pieces' lists, places its segments
    /// (from video parts when `video`, else from the audio) and returns its peak and
    /// average bit rates.
    fn rendition(
        &mut self,
        dir: &Path,
        base: &str,
        pieces: &[Piece],
        dirs: &[PathBuf],
        video: bool,
    ) -> Result<(u64, u64), MediaError> {
        let entries = join_lists(pieces, base, dirs)?;
        let path = dir.join(format!("{base}.m3u8"));
        write_media_playlist(&path, &entries)?;
        self.playlists.push(output_file(path, OutputKind::Playlist));
        self.seconds = self.seconds.max(entries.iter().map(|e| e.duration).sum());
        let rate = hls::bit_rates(entries.iter().map(|e| (e.duration, e.bytes)));
        self.segments.extend(entries.into_iter().map(|e| Placed {
            piece: video.then_some(e.piece),
            file: e.file,
            name: e.name,
            bytes: e.bytes,
        }));
        Ok(rate)
    }
}

/// One line of a media playlist, and where its segment comes from.
#[derive(Debug)]
struct Entry {
    name: String,
    duration: f64,
    /// The piece that wrote it (its index in the list given) and its file name there.
    piece: usize,
    file: String,
    bytes: u64,
}

/// The pieces' segments of one rendition in order, with their final names and durations
/// (from one segment's start to the next one's; the last to its end).
fn join_lists(pieces: &[Piece], base: &str, dirs: &[PathBuf]) -> Result<Vec<Entry>, MediaError> {
    let all: Vec<(usize, &Listed)> = pieces
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.segments.iter().map(move |s| (i, s)))
        .collect();
    let mut out = Vec::with_capacity(all.len());
    for (n, &(i, s)) in all.iter().enumerate() {
        if let Some(&(_, prev)) = n.checked_sub(1).and_then(|p| all.get(p))
            && (s.number <= prev.number || s.start <= prev.start)
        {
            return Err(MediaError::Part {
                path: dirs.get(i).cloned().unwrap_or_default(),
                reason: format!(
                    "segment {} ({:.3} s) does not follow segment {} ({:.3} s)",
                    s.number, s.start, prev.number, prev.start
                ),
            });
        }
        let end = all.get(n + 1).map_or(s.end, |(_, next)| next.start);
        out.push(Entry {
            name: format!("{base}_{:05}.ts", s.number),
            duration: (end - s.start).max(0.0),
            piece: i,
            file: s.file.clone(),
            bytes: s.bytes,
        });
    }
    if out.is_empty() {
        return Err(MediaError::Part {
            path: dirs.first().cloned().unwrap_or_default(),
            reason: format!("no piece wrote a segment of {base}"),
        });
    }
    Ok(out)
}

/// A media playlist as FFmpeg's HLS muxer writes one for video on demand.
fn write_media_playlist(path: &Path, entries: &[Entry]) -> Result<(), MediaError> {
    let target = entries
        .iter()
        .map(|e| e.duration.round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    );
    for e in entries {
        text.push_str(&format!("#EXTINF:{:.6},\n{}\n", e.duration, e.name));
    }
    text.push_str("#EXT-X-ENDLIST\n");
    std::fs::write(path, text).map_err(|e| MediaError::io(path, e))
}

fn output_file(path: PathBuf, kind: OutputKind) -> OutputFile {
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    OutputFile { path, kind, bytes }
}

/// The channels of the audio the plan encodes (its first encoder's).
fn audio_channels(plan: &Plan) -> Option<u32> {
    use crate::media::plan::AudioWork;
    plan.audio.iter().find_map(|a| match &a.work {
        AudioWork::Encode { groups } => groups.first().and_then(|(spec, _)| spec.channels),
        AudioWork::Copy { .. } => None,
    })
}

/// The language of the first output's audio stream, when the input names one.
fn audio_language(plan: &Plan) -> Option<String> {
    use crate::media::plan::AudioWork;
    let target = plan.audio.iter().find_map(|a| match &a.work {
        AudioWork::Encode { groups } => groups.first().and_then(|(_, t)| t.first().copied()),
        AudioWork::Copy { targets } => targets.first().copied(),
    })?;
    plan.outputs
        .get(target.output)?
        .slots
        .get(target.slot)?
        .language
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(number: u64, start: f64, end: f64) -> Listed {
        Listed {
            file: format!("seg_0_{number:05}.ts"),
            number,
            start,
            end,
            bytes: 1000,
        }
    }

    fn piece(segments: Vec<Listed>) -> Piece {
        Piece {
            segments,
            ..Piece::default()
        }
    }

    #[test]
    fn lists_join_across_parts_with_durations_to_the_next_start() {
        let parts = [
            piece(vec![listed(0, 1.0, 7.0), listed(1, 7.0, 13.0)]),
            piece(vec![listed(2, 13.033, 19.0), listed(3, 19.0, 21.5)]),
        ];
        let entries = join_lists(&parts, "x_720p", &[]).unwrap();
        let got: Vec<(String, f64, usize)> = entries
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    (e.duration * 1000.0).round() / 1000.0,
                    e.piece,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("x_720p_00000.ts".to_string(), 6.0, 0),
                ("x_720p_00001.ts".to_string(), 6.033, 0),
                ("x_720p_00002.ts".to_string(), 5.967, 1),
                ("x_720p_00003.ts".to_string(), 2.5, 1),
            ]
        );
    }

    #[test]
    fn lists_that_run_back_or_are_empty_are_refused_by_name() {
        let dirs = [PathBuf::from("parts/0"), PathBuf::from("parts/1")];
        let back = [
            piece(vec![listed(0, 1.0, 7.0), listed(1, 7.0, 13.0)]),
            piece(vec![listed(1, 13.0, 19.0)]),
        ];
        let err = join_lists(&back, "x", &dirs).unwrap_err().to_string();
        assert!(
            err.contains("segment 1") && err.contains("does not follow"),
            "{err}"
        );
        assert!(err.contains("parts/1"), "{err}");
        let err = join_lists(&[piece(vec![])], "x", &dirs)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no piece wrote a segment of x"), "{err}");
    }

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

    #[test]
    fn media_playlists_are_written_as_the_hls_muxer_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.m3u8");
        let entries = [
            (6.006, "x_00000.ts"),
            (6.4, "x_00001.ts"),
            (1.5, "x_00002.ts"),
        ]
        .map(|(duration, name)| Entry {
            name: name.into(),
            duration,
            piece: 0,
            file: String::new(),
            bytes: 0,
        });
        write_media_playlist(&path, &entries).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXTINF:6.006000,\n\
             x_00000.ts\n#EXTINF:6.400000,\nx_00001.ts\n#EXTINF:1.500000,\nx_00002.ts\n\
             #EXT-X-ENDLIST\n"
        );
        assert_eq!(crate::media::hls::segments(&text).len(), 3);
    }
}
