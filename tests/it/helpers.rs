//! Shared test helpers: the fixture media (made once by `assets/make-fixtures.sh`), the job
//! spec the tests submit, temp directories, `ffprobe` as the reference, and the `ffarm` binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ffarm::job::{JobSpec, ObjectRef, OutputTarget};
use ffarm::media;
use ffarm::preset::{Preset, Presets};
use ffarm::progress::Progress;
use ffarm::stop::StopToken;
use serde_json::Value;

/// The fixture directory, made on first use (the script caches and locks itself).
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target/fixtures");
        let status = Command::new(root.join("assets/make-fixtures.sh"))
            .arg(&dir)
            .status()
            .expect("running assets/make-fixtures.sh");
        assert!(status.success(), "assets/make-fixtures.sh failed");
        dir
    })
}

pub fn valid(name: &str) -> PathBuf {
    let p = fixtures().join("valid").join(name);
    assert!(p.exists(), "missing fixture {}", p.display());
    p
}

pub fn malformed_dir() -> PathBuf {
    fixtures().join("malformed")
}

/// A still image the fixture script made (watermarks).
pub fn image(name: &str) -> PathBuf {
    fixtures().join("images").join(name)
}

pub fn valid_dir() -> PathBuf {
    fixtures().join("valid")
}

/// The job the tests submit: `key` in the bucket `media` through `h264-720p` to `out/`, three
/// attempts of an hour each, no destinations. A test that needs something else sets that
/// field on what this returns.
pub fn spec(key: &str) -> JobSpec {
    JobSpec {
        input: ObjectRef {
            bucket: "media".into(),
            key: key.into(),
        },
        preset: "h264-720p".into(),
        output: OutputTarget {
            bucket: "media".into(),
            prefix: "out/".into(),
        },
        priority: 0,
        max_attempts: 3,
        timeout_seconds: 3600,
        on_success: None,
        on_failure: None,
        trigger: None,
        overwrite: false,
        chunking: Default::default(),
        media: Default::default(),
    }
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ffarm-test-")
        .tempdir()
        .expect("creating a temp dir")
}

pub fn presets() -> &'static Presets {
    static P: OnceLock<Presets> = OnceLock::new();
    P.get_or_init(|| Presets::builtin(&media::caps::Ffmpeg).expect("shipped presets load"))
}

pub fn preset(name: &str) -> &'static Preset {
    presets().get(name).expect("known preset")
}

/// Transcodes without watching progress.
pub fn transcode(
    input: &Path,
    output: &Path,
    preset: &Preset,
) -> Result<media::TranscodeReport, media::MediaError> {
    media::transcode(
        input,
        output,
        preset,
        &StopToken::new(),
        &mut |_: &Progress| {},
    )
}

/// `ffprobe -show_format -show_streams` as JSON: the reference every check compares with.
pub fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .expect("running ffprobe (install the ffmpeg package)");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// ffprobe's streams of one kind ("video", "audio").
pub fn ffprobe_streams(probe: &Value, kind: &str) -> Vec<Value> {
    probe["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|s| s["codec_type"] == kind && s["disposition"]["attached_pic"] != 1)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Number of frames ffprobe counts by decoding a stream (`-count_frames`).
pub fn count_frames(path: &Path, selector: &str) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", selector])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("running ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

pub fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// "30000/1001" → 29.97.
pub fn rate(v: &Value) -> f64 {
    let s = v.as_str().unwrap_or("0/1");
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    let (n, d): (f64, f64) = (n.parse().unwrap_or(0.0), d.parse().unwrap_or(1.0));
    if d == 0.0 { 0.0 } else { n / d }
}

/// The path of the `ffarm` binary built for these tests.
pub fn ffarm_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ffarm"))
}

/// Files under `dir`, recursively, as paths relative to it (sorted).
pub fn files_under(dir: &Path) -> Vec<String> {
    paths_under(dir)
        .into_iter()
        .filter(|p| !p.ends_with('/'))
        .collect()
}

/// Files and directories under `dir`, recursively, relative to it (sorted; directories end
/// in `/`): what a run left behind, including directories it created.
pub fn paths_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(rel) = p.strip_prefix(base) else {
                continue;
            };
            if p.is_dir() {
                out.push(format!("{}/", rel.to_string_lossy()));
                walk(base, &p, out);
            } else {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The (start, duration) of every packet of one stream, per ffprobe, in seconds, sorted by
/// start; a packet whose container records no duration gets NaN.
pub fn packet_times(path: &Path, selector: &str) -> Vec<(f64, f64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", selector])
        .args([
            "-show_entries",
            "packet=pts_time,duration_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("running ffprobe");
    let mut times: Vec<(f64, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut fields = l.trim().trim_end_matches(',').split(',');
            let pts = fields.next()?.parse().ok()?;
            let duration = fields
                .next()
                .and_then(|d| d.parse().ok())
                .unwrap_or(f64::NAN);
            Some((pts, duration))
        })
        .collect();
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    times
}

/// How much media time a stream's packets span: from the first timestamp to where the last
/// packet ends (where the container records no duration, the last lasts as long as the
/// average packet). Works for every container, and for HLS playlists.
pub fn stream_extent(path: &Path, selector: &str) -> f64 {
    let times = packet_times(path, selector);
    let (Some(first), Some(last)) = (times.first(), times.last()) else {
        return f64::NAN;
    };
    let duration = if last.1.is_finite() {
        last.1
    } else if times.len() > 1 {
        (last.0 - first.0) / (times.len() - 1) as f64
    } else {
        0.0
    };
    last.0 + duration - first.0
}

/// Makes a farm process (or a client) independent of the account running the tests: no
/// inherited `FFARM_…` variable, and `HOME` set to `home`, so the shells exec sessions start
/// read no rc file of that account (an interactive bash running someone's `~/.bashrc` can
/// take seconds, or a minute when a tool it calls waits on a stale lock).
pub fn isolate(cmd: &mut std::process::Command, home: &Path) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FFARM_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home);
}

/// A program of the test tools `./dev.sh test` installs from PyPI (moto, schemathesis) into
/// the virtual environment `target/test-tools/venv` of this repository; the test fails, naming
/// the command that installs it, when it is missing.
pub fn test_tool(name: &str) -> PathBuf {
    let program = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-tools/venv/bin")
        .join(name);
    assert!(
        program.exists(),
        "{} missing: run ./dev.sh test (it installs the test tools)",
        program.display()
    );
    program
}

/// The URL `ffarm serve` (spawned with a piped stdout) prints on its first line, `ffarm
/// VERSION serving on URL`; its stdout stays drained afterwards so the server never writes
/// into a closed pipe. Fails if the banner does not come within 30 s.
pub fn serve_url(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("serve's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        for _ in lines {} // keep the pipe drained
    });
    let first = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .ok()
        .flatten()
        .and_then(Result::ok)
        .unwrap_or_default();
    first
        .strip_prefix(concat!("ffarm ", env!("CARGO_PKG_VERSION"), " serving on "))
        .unwrap_or_else(|| panic!("unexpected first line from ffarm serve: {first:?}"))
        .to_string()
}

/// x264 at its slowest on one thread: a 40 s clip takes minutes, so a task stays running while
/// a test works on it (the tests cancel it when done).
pub const SLOW_PRESET: &str = r#"description = "H.264 at the slowest settings (tests)"
container = "mp4"
[video]
codec = "h264"
encoder_preset = "placebo"
crf = 18
pixel_format = "yuv420p"
options = { threads = 1 }
[audio]
codec = "aac"
bitrate = "128k"
"#;

/// A temp directory of presets holding `SLOW_PRESET` as the preset `slow-test`.
pub fn slow_presets_dir() -> tempfile::TempDir {
    let dir = tempdir();
    std::fs::write(dir.path().join("slow-test.toml"), SLOW_PRESET).unwrap();
    dir
}
