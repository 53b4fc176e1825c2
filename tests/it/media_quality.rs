//! Quality figures (`Edits::quality`, a job's or preset's `quality = true`): each video
//! output's SSIM and PSNR against the source, which agree with the `ffmpeg` command line's
//! `ssim` and `psnr` filters on the same pictures, fall as the encode gets worse, and are
//! given per rendition of an HLS ladder — never for a picture.

use std::path::Path;
use std::process::Command;

use ffarm::media::{self, Edits, OutputSpec};
use ffarm::preset::{Preset, Presets};
use ffarm::progress::Progress;
use ffarm::stop::StopToken;

use crate::helpers::{preset, tempdir, valid};

fn h264_at(dir: &Path, crf: u32) -> Preset {
    let name = format!("crf{crf}");
    let text = format!(
        "description = \"test\"\ncontainer = \"mp4\"\n[video]\ncodec = \"h264\"\n\
         crf = {crf}\nencoder_preset = \"ultrafast\"\nmax_height = 240\n[audio]\ncodec = \"aac\"\n"
    );
    std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
    let presets = Presets::load(Some(dir), &media::caps::Ffmpeg).unwrap();
    presets.get(&name).unwrap().clone()
}

fn measured(input: &Path, outputs: &[OutputSpec]) -> Vec<Vec<ffarm::job::Quality>> {
    let edits = Edits {
        quality: true,
        ..Edits::default()
    };
    let report = media::transcode_many_then(
        input,
        outputs,
        &edits,
        &StopToken::new(),
        &mut |_: &Progress| {},
        &mut |_| {},
    )
    .unwrap();
    report.checks.into_iter().map(|c| c.quality).collect()
}

/// The command line's SSIM ("All") and PSNR ("average") of `output` against `source`
/// scaled to `w`×`h`.
fn cli_figures(output: &Path, source: &Path, w: u32, h: u32) -> (f64, f64) {
    let run = |filter: &str, key: &str| -> f64 {
        let graph = format!(
            "[0:v]setsar=1,format=yuv420p[m];[1:v]scale={w}:{h}:flags=bicubic,setsar=1,\
             format=yuv420p[r];[m][r]{filter}"
        );
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-i"])
            .arg(output)
            .arg("-i")
            .arg(source)
            .args(["-lavfi", &graph, "-f", "null", "-"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        let at = text.rfind(key).unwrap_or_else(|| panic!("{key} in {text}"));
        text[at + key.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (run("ssim", "All:"), run("psnr", "average:"))
}

#[test]
fn figures_agree_with_the_command_line_and_fall_with_the_quality() {
    let dir = tempdir();
    let source = valid("h264_aac.mp4"); // 640x360, 60 frames
    let (good, poor) = (h264_at(dir.path(), 18), h264_at(dir.path(), 45));
    let (a, b) = (dir.path().join("good.mp4"), dir.path().join("poor.mp4"));
    let figures = measured(
        &source,
        &[
            OutputSpec {
                path: &a,
                preset: &good,
            },
            OutputSpec {
                path: &b,
                preset: &poor,
            },
        ],
    );
    let (g, p) = (&figures[0][0], &figures[1][0]);
    assert_eq!((g.frames, p.frames), (60, 60), "{g:?} {p:?}");
    assert!(
        g.ssim > p.ssim + 0.02 && g.psnr_db > p.psnr_db + 3.0,
        "{g:?} {p:?}"
    );
    assert!(g.ssim > 0.9 && g.ssim <= 1.0 && g.psnr_db > 30.0, "{g:?}");
    for (q, file) in [(g, &a), (p, &b)] {
        let (ssim, psnr) = cli_figures(file, &source, 426, 240);
        assert!(
            (q.ssim - ssim).abs() < 0.005,
            "{q:?} against the CLI's SSIM {ssim}"
        );
        assert!(
            (q.psnr_db - psnr).abs() < 0.3,
            "{q:?} against the CLI's PSNR {psnr}"
        );
    }
}

#[test]
fn a_ladder_has_figures_per_rendition_and_a_poster_none() {
    let dir = tempdir();
    let source = valid("h264_aac_1080p.mp4"); // 2 s at 25 fps
    let (hls, jpg) = (dir.path().join("hls/index.m3u8"), dir.path().join("p.jpg"));
    let figures = measured(
        &source,
        &[
            OutputSpec {
                path: &hls,
                preset: preset("hls-abr"),
            },
            OutputSpec {
                path: &jpg,
                preset: preset("poster-jpg"),
            },
        ],
    );
    let names: Vec<_> = figures[0].iter().map(|q| q.rendition.clone()).collect();
    assert_eq!(
        names,
        [
            Some("1080p".into()),
            Some("720p".into()),
            Some("480p".into())
        ]
    );
    for q in &figures[0] {
        assert_eq!(q.frames, 50, "{q:?}");
        assert!(q.ssim > 0.85 && q.psnr_db > 28.0, "{q:?}");
    }
    assert!(
        figures[1].is_empty(),
        "a poster has no figures: {:?}",
        figures[1]
    );
}
