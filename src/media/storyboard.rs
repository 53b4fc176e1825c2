//! A storyboard's WebVTT file: one cue per thumbnail, `k × interval` to the next start (the
//! last ends with the video), pointing at its place in its sheet as
//! `NAME_SSS.jpg#xywh=x,y,w,h` — the form video.js, Mux's and PeerTube's players read for
//! scrubbing previews.

use std::fmt::Write as _;
use std::path::Path;

use super::error::MediaError;
use crate::preset::Storyboard;

/// What the cues are written from.
pub(crate) struct Sheets<'a> {
    /// The sheets' file names are `{stem}_001.jpg`, `{stem}_002.jpg` …
    pub stem: &'a str,
    /// Thumbnails tiled, in order.
    pub count: u64,
    /// A sheet's size in pixels (every sheet is the same size).
    pub sheet: (u32, u32),
    pub grid: Storyboard,
    /// The video's length, when known: where the last cue ends.
    pub duration: Option<f64>,
}

/// Writes the cues of `sheets` to `path`.
pub(crate) fn write_cues(path: &Path, sheets: &Sheets) -> Result<(), MediaError> {
    std::fs::write(path, cues(sheets)).map_err(|e| MediaError::io(path, e))
}

/// The WebVTT text.
pub(crate) fn cues(s: &Sheets) -> String {
    let per_sheet = u64::from(s.grid.columns * s.grid.rows).max(1);
    let tile = (
        s.sheet.0 / s.grid.columns.max(1),
        s.sheet.1 / s.grid.rows.max(1),
    );
    let mut text = String::from("WEBVTT\n");
    for k in 0..s.count {
        let start = k as f64 * s.grid.interval_seconds;
        let mut end = start + s.grid.interval_seconds;
        if k + 1 == s.count
            && let Some(d) = s.duration.filter(|d| *d > start)
        {
            end = end.min(d);
        }
        let (sheet, at) = (k / per_sheet + 1, k % per_sheet);
        let column = (at % u64::from(s.grid.columns)) as u32;
        let row = (at / u64::from(s.grid.columns)) as u32;
        let _ = write!(
            text,
            "\n{} --> {}\n{}_{sheet:03}.jpg#xywh={},{},{},{}\n",
            timestamp(start),
            timestamp(end),
            s.stem,
            column * tile.0,
            row * tile.1,
            tile.0,
            tile.1
        );
    }
    text
}

/// `HH:MM:SS.mmm`.
fn timestamp(seconds: f64) -> String {
    let ms = (seconds * 1000.0).round().max(0.0) as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cues_walk_the_grid_and_end_with_the_video() {
        let text = cues(&Sheets {
            stem: "clip",
            count: 5,
            sheet: (320, 180),
            grid: Storyboard {
                interval_seconds: 2.0,
                tile_width: 160,
                columns: 2,
                rows: 2,
            },
            duration: Some(9.5),
        });
        let want = "WEBVTT\n\
            \n00:00:00.000 --> 00:00:02.000\nclip_001.jpg#xywh=0,0,160,90\n\
            \n00:00:02.000 --> 00:00:04.000\nclip_001.jpg#xywh=160,0,160,90\n\
            \n00:00:04.000 --> 00:00:06.000\nclip_001.jpg#xywh=0,90,160,90\n\
            \n00:00:06.000 --> 00:00:08.000\nclip_001.jpg#xywh=160,90,160,90\n\
            \n00:00:08.000 --> 00:00:09.500\nclip_002.jpg#xywh=0,0,160,90\n";
        assert_eq!(text, want);
        assert_eq!(timestamp(3725.25), "01:02:05.250");
    }
}
