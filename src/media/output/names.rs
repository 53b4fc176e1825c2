//! The names a transcode's files take: an HLS output's folder, stem and top playlist, a
//! CMAF output's MPD, the `hls` muxer's segment names and options, and which staged files
//! are segments (published before the playlists naming them).

use std::path::{Path, PathBuf};

/// The file name of an ABR ladder's master playlist when the output is a directory, beside
/// its variant playlists (given a playlist path, the master is that file).
pub const MASTER_PLAYLIST: &str = "master.m3u8";

/// The file name of a CMAF output's DASH MPD when the output is a directory (given a
/// playlist path `NAME.m3u8`, it is `NAME.mpd` beside it).
pub const DASH_MANIFEST: &str = "manifest.mpd";

/// A CMAF output's MPD beside its top playlist: [`DASH_MANIFEST`] beside [`MASTER_PLAYLIST`],
/// else `NAME.mpd` beside `NAME.m3u8`.
pub(crate) fn mpd_name(top: &str) -> String {
    if top == MASTER_PLAYLIST {
        return DASH_MANIFEST.to_string();
    }
    format!("{}.mpd", top.strip_suffix(".m3u8").unwrap_or(top))
}

/// The options of one rendition's `hls` muxer writing `base.m3u8` in `dir`: MPEG-TS
/// segments `base_00000.ts` …, or for CMAF fragmented MP4 (`base_init.mp4`, then
/// `base_00000.m4s` …; playlist version 7 with `#EXT-X-MAP`).
pub(super) fn hls_options(
    dir: &Path,
    base: &str,
    segment_seconds: f64,
    cmaf: bool,
) -> Vec<(String, String)> {
    let extension = if cmaf { "m4s" } else { "ts" };
    let segments = dir.join(format!("{base}_%05d.{extension}"));
    let mut options = vec![
        ("hls_time".into(), format!("{segment_seconds}")),
        ("hls_list_size".into(), "0".into()),
        ("hls_playlist_type".into(), "vod".into()),
        (
            "hls_segment_type".into(),
            if cmaf { "fmp4" } else { "mpegts" }.into(),
        ),
        ("hls_flags".into(), "independent_segments".into()),
        (
            "hls_segment_filename".into(),
            segments.to_string_lossy().into_owned(),
        ),
    ];
    if cmaf {
        options.push(("hls_fmp4_init_filename".into(), format!("{base}_init.mp4")));
    }
    options
}

/// A media segment or an init segment, published before the playlists naming it.
pub(super) fn is_segment(name: &str) -> bool {
    name.ends_with(".ts") || name.ends_with(".m4s") || name.ends_with("_init.mp4")
}

/// Where `ffarm transcode` keeps the key of an encrypted HLS output at `output`: `NAME.key`
/// beside its playlists, named by them relatively (so the folder plays as it is).
pub fn local_key_file(output: &Path) -> PathBuf {
    let (dir, stem, _) = hls_names(output);
    dir.join(format!("{stem}.key"))
}

/// Where an HLS output at `output` goes: its directory, the stem every file name starts
/// with, and whether `output` names the top playlist (`x.m3u8`) rather than a directory
/// (where a ladder's master is `master.m3u8` and the stem `index`).
pub(crate) fn hls_names(output: &Path) -> (PathBuf, String, bool) {
    let is_playlist = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("m3u8"));
    let (dir, stem) = named_or_in(output, "m3u8");
    (dir, stem, is_playlist)
}

/// An output named by a path ending in `.EXT` (its folder and stem), or a folder (then the
/// stem is `index`).
pub(super) fn named_or_in(output: &Path, ext: &str) -> (PathBuf, String) {
    let named = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext));
    if !named {
        return (output.to_path_buf(), "index".into());
    }
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "index".into());
    (parent_dir(output), stem)
}

pub(super) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
