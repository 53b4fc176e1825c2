//! Where a transcode writes: everything goes to a hidden staging name beside the final one
//! and is moved into place only when the run succeeds, so no partly written file is ever
//! visible under its final name. For HLS the segments move first, then the variant
//! playlists, then the playlist that names them all. A run that stops or fails leaves
//! nothing behind: its staged files go, and so does every directory it created.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

mod names;

use super::error::MediaError;
use crate::job::SegmentKey;
use crate::preset::{Container, Preset};
pub use names::{MASTER_PLAYLIST, local_key_file};
pub(crate) use names::{hls_names, mpd_name};
use names::{hls_options, is_segment, named_or_in, parent_dir};

/// What an output file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// A single media file (mp4, mkv, mp3…).
    Media,
    /// A JPEG picture.
    Picture,
    /// An HLS media segment.
    Segment,
    /// An HLS media (variant) playlist.
    Playlist,
    /// The HLS master playlist naming every rendition.
    MasterPlaylist,
    /// A CMAF output's DASH MPD, naming the same init and media segments as its playlists.
    Manifest,
    /// A storyboard's WebVTT file, whose cues point into its sheets (pictures).
    Cues,
    /// A caption track written beside the output (`NAME.LANG.vtt`).
    Captions,
}

/// One file a transcode produced, in the order it must be published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFile {
    pub path: PathBuf,
    pub kind: OutputKind,
    pub bytes: u64,
}

/// One muxer's file: where it writes while staging, and with which options.
#[derive(Debug, Clone)]
pub(crate) struct MuxTarget {
    pub path: PathBuf,
    pub muxer: &'static str,
    pub options: Vec<(String, String)>,
}

/// The staging area for one transcode.
#[derive(Debug)]
pub(crate) struct Layout {
    final_dir: PathBuf,
    staging: Staging,
    pub targets: Vec<MuxTarget>,
    /// Directories this run created for its outputs, deepest first.
    created: Vec<PathBuf>,
    /// Files that hold a segment key (hidden, beside the staging area, never published):
    /// removed however the run ends.
    secrets: Vec<PathBuf>,
    settled: bool,
}

#[derive(Debug)]
enum Staging {
    File {
        temp: PathBuf,
        final_path: PathBuf,
    },
    Dir {
        temp_dir: PathBuf,
        /// The name every file in it starts with.
        stem: String,
        /// The playlist that names the others: the media playlist of a single rendition,
        /// or the master of a ladder; a storyboard's WebVTT file.
        top: String,
        ladder: bool,
        /// A storyboard's sheets and cues, rather than HLS.
        storyboard: bool,
        /// CMAF: the DASH MPD's file name, published with the top playlist.
        dash: Option<String>,
    },
}

/// Makes a layout's directories (unless it is only being described), remembering the ones
/// that did not exist, so a run that fails can take them away again.
struct Dirs {
    create: bool,
    /// Deepest first.
    made: Vec<PathBuf>,
}

impl Dirs {
    fn make(&mut self, dir: &Path) -> Result<(), MediaError> {
        if !self.create {
            return Ok(());
        }
        let mut missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .map(Path::to_path_buf)
            .collect();
        std::fs::create_dir_all(dir).map_err(|e| MediaError::io(dir, e))?;
        // Made after the ones before, so deeper: they go first.
        missing.append(&mut self.made);
        self.made = missing;
        Ok(())
    }
}

static STAGING_SEQ: AtomicU64 = AtomicU64::new(0);

fn staging_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        STAGING_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl Layout {
    /// Plans the files for writing `preset` to `output`. For HLS, `output` is the playlist
    /// path (`…/name.m3u8`) or a directory (the name is then `index`). One rendition is
    /// written as `name.m3u8`; a ladder's variant playlists as `name_RENDITION.m3u8`, with
    /// the master playlist beside them: the playlist path itself, or [`MASTER_PLAYLIST`] in
    /// a directory. The file asked for is always the one to play, and ladders written beside
    /// each other under different names never share a master.
    pub fn new(
        output: &Path,
        preset: &Preset,
        renditions: &[Option<String>],
    ) -> Result<Layout, MediaError> {
        Self::build(output, preset, renditions, true)
    }

    /// The same names as [`Layout::new`], without creating any directory (for describing a
    /// run rather than making one).
    pub fn describe(
        output: &Path,
        preset: &Preset,
        renditions: &[Option<String>],
    ) -> Result<Layout, MediaError> {
        let mut layout = Self::build(output, preset, renditions, false)?;
        layout.settled = true;
        Ok(layout)
    }

    fn build(
        output: &Path,
        preset: &Preset,
        renditions: &[Option<String>],
        create: bool,
    ) -> Result<Layout, MediaError> {
        super::utf8_path(output)?;
        let mut dirs = Dirs {
            create,
            made: Vec::new(),
        };
        if preset.container.segmented() || preset.container == Container::Storyboard {
            let layout = if preset.container.segmented() {
                Self::hls(output, preset, renditions, &mut dirs)
            } else {
                Self::storyboard(output, &mut dirs)
            };
            if layout.is_err() {
                remove_dirs(&dirs.made);
            }
            return layout;
        }
        if output.is_dir() || output.as_os_str().to_string_lossy().ends_with('/') {
            return Err(MediaError::Unsupported(format!(
                "{}: preset {} writes one {} file; give a file path, not a directory",
                output.display(),
                preset.name,
                preset.container
            )));
        }
        let final_dir = parent_dir(output);
        dirs.make(&final_dir)?;
        let name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        let temp = final_dir.join(format!(".{name}.{}.partial", staging_suffix()));
        let options = preset
            .container
            .muxer_options()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Layout {
            final_dir,
            targets: vec![MuxTarget {
                path: temp.clone(),
                muxer: preset.container.muxer(),
                options,
            }],
            staging: Staging::File {
                temp,
                final_path: output.to_path_buf(),
            },
            created: dirs.made,
            secrets: Vec::new(),
            settled: false,
        })
    }

    fn hls(
        output: &Path,
        preset: &Preset,
        renditions: &[Option<String>],
        dirs: &mut Dirs,
    ) -> Result<Layout, MediaError> {
        let (final_dir, stem, is_playlist) = hls_names(output);
        dirs.make(&final_dir)?;
        let temp_dir = final_dir.join(format!(".{stem}.{}.partial", staging_suffix()));
        dirs.make(&temp_dir)?;
        let ladder = renditions.iter().any(Option::is_some);
        let top = if ladder && !is_playlist {
            MASTER_PLAYLIST.to_string()
        } else {
            format!("{stem}.m3u8")
        };
        let segment_seconds = preset.hls.as_ref().map_or(6.0, |h| h.segment_seconds);
        let cmaf = preset.container == Container::Cmaf;
        let targets = renditions
            .iter()
            .map(|r| {
                let base = match r {
                    Some(name) => format!("{stem}_{name}"),
                    None => stem.clone(),
                };
                MuxTarget {
                    path: temp_dir.join(format!("{base}.m3u8")),
                    muxer: "hls",
                    options: hls_options(&temp_dir, &base, segment_seconds, cmaf),
                }
            })
            .collect();
        let dash = cmaf.then(|| mpd_name(&top));
        Ok(Layout {
            final_dir,
            targets,
            staging: Staging::Dir {
                temp_dir,
                stem,
                top,
                ladder,
                storyboard: false,
                dash,
            },
            created: std::mem::take(&mut dirs.made),
            secrets: Vec::new(),
            settled: false,
        })
    }

    /// Has every HLS muxer encrypt its segments with `key` (AES-128-CBC, the IV the
    /// segment's sequence number, as HLS defines when `#EXT-X-KEY` gives none), naming
    /// `key.uri` in `#EXT-X-KEY`. FFmpeg reads the key from a key info file and a key file
    /// written here, hidden beside the staging area and removed when the run ends (given the
    /// key as an option, FFmpeg 5.1 would write it to the key URI).
    pub fn encrypt(&mut self, key: &SegmentKey) -> Result<(), MediaError> {
        let Staging::Dir { temp_dir, .. } = &self.staging else {
            return Ok(());
        };
        let base = temp_dir.to_string_lossy().into_owned();
        let key_file = PathBuf::from(format!("{base}.key"));
        let info_file = PathBuf::from(format!("{base}.keyinfo"));
        self.secrets.extend([key_file.clone(), info_file.clone()]);
        if key.uri.contains(['\n', '\r']) {
            return Err(MediaError::Unsupported(format!(
                "the key URI {:?} has a line break",
                key.uri
            )));
        }
        write_private(&key_file, &key.key)?;
        let info = format!("{}\n{}\n", key.uri, key_file.to_string_lossy());
        write_private(&info_file, info.as_bytes())?;
        let info_path = info_file.to_string_lossy().into_owned();
        for target in self.targets.iter_mut().filter(|t| t.muxer == "hls") {
            target
                .options
                .push(("hls_key_info_file".to_string(), info_path.clone()));
        }
        Ok(())
    }

    /// A storyboard at `output` (`…/name.vtt`): sheets `name_001.jpg`, `name_002.jpg` … and
    /// the WebVTT file beside them, written once the sheets are (`write_cues`).
    fn storyboard(output: &Path, dirs: &mut Dirs) -> Result<Layout, MediaError> {
        let (final_dir, stem) = named_or_in(output, "vtt");
        dirs.make(&final_dir)?;
        let temp_dir = final_dir.join(format!(".{stem}.{}.partial", staging_suffix()));
        dirs.make(&temp_dir)?;
        Ok(Layout {
            final_dir,
            targets: vec![MuxTarget {
                path: temp_dir.join(format!("{stem}_%03d.jpg")),
                muxer: "image2",
                options: Vec::new(),
            }],
            staging: Staging::Dir {
                temp_dir,
                top: format!("{stem}.vtt"),
                stem,
                ladder: false,
                storyboard: true,
                dash: None,
            },
            created: std::mem::take(&mut dirs.made),
            secrets: Vec::new(),
            settled: false,
        })
    }

    /// A storyboard's WebVTT file while staging, and the name its sheets are numbered from.
    pub fn staged_cues(&self) -> Option<(PathBuf, String)> {
        match &self.staging {
            Staging::Dir {
                temp_dir,
                top,
                storyboard: true,
                ..
            } => {
                let stem = top.strip_suffix(".vtt").unwrap_or(top).to_string();
                Some((temp_dir.join(top), stem))
            }
            _ => None,
        }
    }

    /// The file that stands for the whole output once published: the media file, the top
    /// playlist, or a storyboard's cues.
    pub fn top_path(&self) -> PathBuf {
        match &self.staging {
            Staging::File { final_path, .. } => final_path.clone(),
            Staging::Dir { top, .. } => self.final_dir.join(top),
        }
    }

    /// Where a staged file will be published.
    pub fn published_path(&self, staged: &Path) -> PathBuf {
        match &self.staging {
            Staging::File { final_path, .. } => final_path.clone(),
            Staging::Dir { .. } => self.final_dir.join(staged.file_name().unwrap_or_default()),
        }
    }

    /// An HLS output's staging directory and the stem its files are named with.
    pub fn staged_hls(&self) -> Option<(PathBuf, String)> {
        match &self.staging {
            Staging::Dir {
                temp_dir,
                stem,
                storyboard: false,
                ..
            } => Some((temp_dir.clone(), stem.clone())),
            _ => None,
        }
    }

    /// A hidden file beside the output, named for it, for the run's own use (an ASS script
    /// to burn in): `.NAME.PID-N.EXT`; the caller removes it.
    pub fn scratch_path(&self, ext: &str) -> PathBuf {
        let name = self
            .top_path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        self.final_dir
            .join(format!(".{name}.{}.{ext}", staging_suffix()))
    }

    /// The path of the HLS master playlist while staging, for a ladder.
    pub fn staged_master(&self) -> Option<PathBuf> {
        match &self.staging {
            Staging::Dir {
                temp_dir,
                top,
                ladder: true,
                ..
            } => Some(temp_dir.join(top)),
            _ => None,
        }
    }

    /// The path of a CMAF output's DASH MPD while staging.
    pub fn staged_manifest(&self) -> Option<PathBuf> {
        match &self.staging {
            Staging::Dir {
                temp_dir,
                dash: Some(name),
                ..
            } => Some(temp_dir.join(name)),
            _ => None,
        }
    }

    /// Moves everything into place, segments first and the master playlist last, and lists
    /// the published files in that order.
    pub fn commit(mut self, picture: bool) -> Result<Vec<OutputFile>, MediaError> {
        self.settled = true;
        match &self.staging {
            Staging::File { temp, final_path } => {
                std::fs::rename(temp, final_path).map_err(|e| MediaError::io(final_path, e))?;
                let bytes = file_size(final_path);
                Ok(vec![OutputFile {
                    path: final_path.clone(),
                    kind: if picture {
                        OutputKind::Picture
                    } else {
                        OutputKind::Media
                    },
                    bytes,
                }])
            }
            Staging::Dir {
                temp_dir,
                top,
                ladder,
                storyboard,
                dash,
                ..
            } => {
                let mut entries: Vec<(u8, String)> = std::fs::read_dir(temp_dir)
                    .map_err(|e| MediaError::io(temp_dir, e))?
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .map(|name| {
                        let segment = is_segment(&name)
                            || name.ends_with(".jpg")
                            || (name.ends_with(".vtt") && !*storyboard);
                        let rank = if segment {
                            0
                        } else if dash.as_ref() == Some(&name) {
                            3
                        } else if (*ladder || *storyboard) && name == *top {
                            2
                        } else {
                            1
                        };
                        (rank, name)
                    })
                    .collect();
                entries.sort();
                let mut out = Vec::with_capacity(entries.len());
                for (rank, name) in entries {
                    let from = temp_dir.join(&name);
                    let to = self.final_dir.join(&name);
                    std::fs::rename(&from, &to).map_err(|e| MediaError::io(&to, e))?;
                    out.push(OutputFile {
                        bytes: file_size(&to),
                        path: to,
                        kind: match (rank, *storyboard) {
                            (0, true) => OutputKind::Picture,
                            (0, false) => OutputKind::Segment,
                            (2, true) => OutputKind::Cues,
                            (2, false) => OutputKind::MasterPlaylist,
                            (3, _) => OutputKind::Manifest,
                            _ => OutputKind::Playlist,
                        },
                    });
                }
                let _ = std::fs::remove_dir(temp_dir);
                remove_secrets(&self.secrets);
                Ok(out)
            }
        }
    }

    /// Removes everything staged.
    pub fn discard(mut self) {
        self.remove_staged();
        self.settled = true;
    }

    fn remove_staged(&mut self) {
        match &self.staging {
            Staging::File { temp, .. } => {
                let _ = std::fs::remove_file(temp);
            }
            Staging::Dir { temp_dir, .. } => {
                let _ = std::fs::remove_dir_all(temp_dir);
            }
        }
        remove_secrets(&self.secrets);
        remove_dirs(&self.created);
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), MediaError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| MediaError::io(path, e))?;
    file.write_all(bytes).map_err(|e| MediaError::io(path, e))
}

fn remove_secrets(files: &[PathBuf]) {
    for file in files {
        let _ = std::fs::remove_file(file);
    }
}

/// Removes directories a run created, deepest first; one that something else has put a file
/// in meanwhile is not empty and stays.
fn remove_dirs(dirs: &[PathBuf]) {
    for dir in dirs {
        let _ = std::fs::remove_dir(dir);
    }
}

impl Drop for Layout {
    fn drop(&mut self) {
        if !self.settled {
            self.remove_staged();
        }
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
