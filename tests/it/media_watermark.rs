//! Watermarks (`Edits::overlays`, a job's or preset's `watermark`): the image composited on
//! every video rendition, scaled to its share of each one's height, where it was asked and
//! as opaque as asked — judged by comparing decoded pixels at its place against an encode
//! without it — and an image that is not a usable picture refused by name.

use std::path::Path;
use std::process::Command;

use ffarm::job::{Position, Watermark};
use ffarm::media::{self, Edits, OutputSpec, Overlay};
use ffarm::progress::Progress;
use ffarm::stop::StopToken;

use crate::helpers::{ffprobe, ffprobe_streams, image, preset, tempdir, valid};

fn placement(position: Position, opacity: f64, height_ratio: f64) -> Watermark {
    Watermark {
        bucket: None,
        key: "logo.png".into(),
        position,
        margin: 0.05,
        opacity,
        height_ratio,
    }
}

fn encode(
    input: &Path,
    out: &Path,
    name: &str,
    overlay: Option<Overlay>,
) -> Result<media::TranscodeReport, media::MediaError> {
    let edits = Edits {
        overlays: vec![overlay],
        ..Edits::default()
    };
    media::transcode_many_then(
        input,
        &[OutputSpec {
            path: out,
            preset: preset(name),
        }],
        &edits,
        &StopToken::new(),
        &mut |_: &Progress| {},
        &mut |_| {},
    )
}

/// Picture `n` of `path`'s first video stream as RGB: width, height, pixels.
pub(crate) fn picture(path: &Path, n: u32) -> (u32, u32, Vec<u8>) {
    let v = &ffprobe_streams(&ffprobe(path), "video")[0];
    let (w, h) = (
        v["width"].as_u64().unwrap() as u32,
        v["height"].as_u64().unwrap() as u32,
    );
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vf", &format!("select=eq(n\\,{n})"), "-frames:v", "1"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert_eq!(
        out.stdout.len(),
        (w * h * 3) as usize,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (w, h, out.stdout)
}

/// The mean colour of the rectangle `(x, y, w, h)`, a little inside its edges (scaling
/// blends the borders).
pub(crate) fn mean(p: &(u32, u32, Vec<u8>), rect: (u32, u32, u32, u32)) -> [f64; 3] {
    let (width, _, px) = p;
    let (x0, y0, w, h) = rect;
    let (inset_x, inset_y) = (w / 6, h / 6);
    let mut sum = [0.0; 3];
    let mut n = 0.0;
    for y in y0 + inset_y..y0 + h - inset_y {
        for x in x0 + inset_x..x0 + w - inset_x {
            let i = ((y * width + x) * 3) as usize;
            for c in 0..3 {
                sum[c] += f64::from(px[i + c]);
            }
            n += 1.0;
        }
    }
    sum.map(|s| s / n)
}

pub(crate) fn near(a: [f64; 3], b: [f64; 3], tolerance: f64) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tolerance)
}

pub(crate) const MAGENTA: [f64; 3] = [255.0, 0.0, 255.0];

#[test]
fn the_watermark_shows_where_asked_and_as_opaque_as_asked() {
    let dir = tempdir();
    let input = valid("h264_aac.mp4"); // 640x360
    let plain = dir.path().join("plain.mp4");
    encode(&input, &plain, "h264-480p", None).unwrap();
    let base = picture(&plain, 10);
    let (w, h) = (base.0, base.1);
    // 20 % of the height: 72 px tall, 144 wide (the image is 2:1); margins 5 %: 18 px.
    let (lw, lh, m) = (144, 72, 18);
    let bottom_right = (w - lw - m, h - lh - m, lw, lh);
    let top_left = (m, m, lw, lh);
    for (position, opacity, at, elsewhere) in [
        (Position::BottomRight, 1.0, bottom_right, top_left),
        (Position::TopLeft, 1.0, top_left, bottom_right),
        (Position::BottomRight, 0.5, bottom_right, top_left),
    ] {
        let out = dir.path().join(format!("{position:?}-{opacity}.mp4"));
        let overlay = Overlay {
            image: image("logo.png"),
            placement: placement(position, opacity, 0.2),
        };
        encode(&input, &out, "h264-480p", Some(overlay)).unwrap();
        let marked = picture(&out, 10);
        let (got, under) = (mean(&marked, at), mean(&base, at));
        let want = if opacity == 1.0 {
            MAGENTA
        } else {
            [0, 1, 2].map(|c| under[c] * (1.0 - opacity) + MAGENTA[c] * opacity)
        };
        assert!(
            near(got, want, 20.0),
            "{position:?} {opacity}: {got:?} not {want:?}"
        );
        assert!(
            !near(under, want, 40.0),
            "the plain encode differs there: {under:?}"
        );
        let (a, b) = (mean(&marked, elsewhere), mean(&base, elsewhere));
        assert!(near(a, b, 6.0), "untouched elsewhere: {a:?} {b:?}");
    }
}

#[test]
fn a_transparent_image_keeps_its_transparency_and_every_rendition_is_marked() {
    let dir = tempdir();
    let input = valid("h264_aac_1080p.mp4");
    let out = dir.path().join("hls/index.m3u8");
    let overlay = Overlay {
        image: image("logo_half_clear.png"),
        placement: placement(Position::TopLeft, 1.0, 0.1),
    };
    encode(&input, &out, "hls-abr", Some(overlay.clone())).unwrap();
    let plain = dir.path().join("plain/index.m3u8");
    encode(&input, &plain, "hls-abr", None).unwrap();
    let mut variants: Vec<_> = std::fs::read_dir(dir.path().join("hls"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "m3u8") && !p.ends_with("index.m3u8"))
        .collect();
    variants.sort();
    assert!(variants.len() >= 2, "{variants:?}");
    for variant in variants {
        let name = variant.file_name().unwrap().to_owned();
        let (marked, base) = (
            picture(&variant, 5),
            picture(&plain.with_file_name(&name), 5),
        );
        let h = marked.1;
        let (lh, m) = (
            (f64::from(h) * 0.1).round() as u32,
            (f64::from(h) * 0.05).round() as u32,
        );
        // The image's left half is opaque magenta, its right half clear.
        let left = (m, m, lh, lh);
        let right = (m + lh, m, lh, lh);
        assert!(
            near(mean(&marked, left), MAGENTA, 25.0),
            "{name:?}: {:?}",
            mean(&marked, left)
        );
        let (a, b) = (mean(&marked, right), mean(&base, right));
        assert!(
            near(a, b, 8.0),
            "{name:?}: clear half shows the picture: {a:?} {b:?}"
        );
    }
}

#[test]
fn an_image_that_is_not_a_usable_picture_is_refused_by_name() {
    let dir = tempdir();
    let input = valid("h264_aac.mp4");
    for (name, says) in [
        ("not_an_image.png", "refused"),
        ("too_wide.png", "5000x64 is larger"),
        ("video.mp4", "not a PNG or JPEG image"),
        ("missing.png", "no such file"),
    ] {
        let out = dir.path().join("x.mp4");
        let overlay = Overlay {
            image: image(name),
            placement: placement(Position::Center, 1.0, 0.1),
        };
        let e = encode(&input, &out, "h264-480p", Some(overlay)).unwrap_err();
        assert_eq!(e.code(), "watermark-invalid", "{name}: {e}");
        assert!(
            e.to_string().contains(says) && e.to_string().contains(name),
            "{e}"
        );
        assert!(!out.exists());
    }
    // A JPEG works too.
    let out = dir.path().join("jpeg.mp4");
    let overlay = Overlay {
        image: image("logo.jpg"),
        placement: placement(Position::Center, 1.0, 0.1),
    };
    encode(&input, &out, "h264-480p", Some(overlay)).unwrap();
}

#[test]
fn transcode_takes_a_watermark_file() {
    let dir = tempdir();
    let out = dir.path().join("marked.mp4");
    let ran = Command::new(crate::helpers::ffarm_bin())
        .arg("transcode")
        .arg(valid("h264_aac.mp4"))
        .arg(&out)
        .args(["--preset", "h264-480p", "--watermark"])
        .arg(image("logo.png"))
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    // The default place: bottom right, a tenth of the height (36 px: 72 x 36), 3 % margins.
    let p = picture(&out, 10);
    let (w, h) = (p.0, p.1);
    assert!(near(
        mean(&p, (w - 72 - 11, h - 36 - 11, 72, 36)),
        MAGENTA,
        25.0
    ));
}
