//! HLS outputs of a split job, assembled. Every video part writes its renditions' final media
//! segments itself and the audio part the audio rendition the variants share (what they
//! write and list: `segments.rs`); the assembly only writes playlists: each variant's and the
//! audio's from the pieces' lists, then the master, last, and says which piece's file becomes
//! which segment of the output. Decision 0070.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Layout;
use super::segments::{AUDIO, Listed, Piece, audio_list, read_json, video_list};
use crate::media::error::MediaError;
use crate::media::hls::{self, AudioRendition, Variant};
use crate::media::output::{MASTER_PLAYLIST, OutputFile, OutputKind, hls_names};
use crate::media::pipeline::TranscodeReport;
use crate::media::plan::Plan;
use crate::media::verify::{self, Expect, OutputCheck};
use crate::preset::Preset;

/// A segment of the output: which piece wrote it (a video part's index, None for the audio)
/// and under which name, and the name it is published as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placed {
    pub piece: Option<usize>,
    pub file: String,
    pub name: String,
    pub bytes: u64,
}

/// What the assembly of a split HLS output made: the segments to place (in the order they
/// are published), the playlists it wrote in the output directory (variants and the audio's,
/// then the top playlist, last), and the length it covers.
#[derive(Debug, Serialize, Deserialize)]
pub struct HlsAssembly {
    pub segments: Vec<Placed>,
    pub playlists: Vec<OutputFile>,
    pub seconds: f64,
    /// The video frames the parts encoded.
    pub frames: u64,
    /// What reading the playlists back found (every segment they name among the pieces,
    /// each variant as long as the input).
    #[serde(default)]
    pub check: Option<OutputCheck>,
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
    let frames = super::check_pieces(layout, preset, part_dirs, audio_dir)?;
    let plan = layout.plan.restore(preset)?;
    let mut made = playlists(layout, &plan, part_dirs, audio_dir, output)?;
    made.frames = frames;
    made.check = Some(check_assembly(layout, &plan, &made, part_dirs, audio_dir)?);
    Ok(made)
}

/// Reads the written playlists back as a whole transcode's are checked: every segment a
/// variant names is one the pieces wrote, and each variant lasts as long as the input.
/// (The variants carry the video; the audio is a rendition of its own.)
fn check_assembly(
    layout: &Layout,
    plan: &Plan,
    made: &HlsAssembly,
    part_dirs: &[PathBuf],
    audio_dir: Option<&Path>,
) -> Result<OutputCheck, MediaError> {
    let top = made
        .playlists
        .last()
        .map(|p| p.path.clone())
        .ok_or_else(|| MediaError::Internal("the assembly wrote no playlist".into()))?;
    let locate = |named: &Path| -> Option<PathBuf> {
        let name = named.file_name()?;
        let placed = made
            .segments
            .iter()
            .find(|s| Path::new(&s.name).file_name() == Some(name))?;
        Some(match placed.piece {
            Some(i) => part_dirs.get(i)?.join(&placed.file),
            None => audio_dir?.join(&placed.file),
        })
    };
    let (video, _) = plan.carries(0, &layout.input);
    let expect = Expect::of(&layout.input, video, false, plan.duration_trusted);
    // The parts' segments are files here when the pieces were gathered whole (`ffarm`
    // locally); a worker gathers only their lists and copies the segments on publishing.
    let local = made.segments.iter().all(|s| match s.piece {
        Some(i) => part_dirs.get(i).is_some_and(|d| d.join(&s.file).is_file()),
        None => audio_dir.is_some_and(|d| d.join(&s.file).is_file()),
    });
    verify::check_hls_placed(&top, &expect, &locate, local)
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
    let (dir, ..) = hls_names(output);
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
        checks: made.check.into_iter().collect(),
        input_damage: 0,
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
    let (dir, stem, is_playlist) = hls_names(output);
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
            fmp4: false,
        };
        let rate = made.rendition(&dir, &base, &pieces, part_dirs, true)?;
        variants.push((variant, rate));
    }
    let audio = match audio {
        Some((piece, a)) => {
            let base = format!("{stem}_{AUDIO}");
            let rate = made.rendition(&dir, &base, std::slice::from_ref(&piece), &[a], false)?;
            let language = audio_language(plan);
            let rendition = AudioRendition {
                uri: format!("{base}.m3u8"),
                codecs: piece.codecs,
                channels: audio_channels(plan),
                name: language
                    .as_deref()
                    .map_or_else(|| "Audio".into(), crate::job::language::name),
                language,
                default: true,
            };
            Some((rendition, rate))
        }
        None => None,
    };
    if master {
        let top = if is_playlist {
            format!("{stem}.m3u8")
        } else {
            MASTER_PLAYLIST.to_string()
        };
        let path = dir.join(top);
        hls::write_master_of(&path, &variants, audio.as_slice(), &[])?;
        made.playlists
            .push(output_file(path, OutputKind::MasterPlaylist));
    }
    Ok(HlsAssembly {
        segments: made.segments,
        playlists: made.playlists,
        seconds: made.seconds,
        frames: 0,
        check: None,
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
