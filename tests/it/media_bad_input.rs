//! Bad input: malformed files fail with FFmpeg's reason (no panic, no hang); playlists and
//! concat lists disguised as videos are refused without opening what they point at; absurd
//! sizes and durations are refused.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ffarm::media::{self, ErrorClass, MediaError};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::helpers::{files_under, malformed_dir, paths_under, preset, tempdir, transcode, valid};

/// Transcodes on a thread with a deadline, so a hang fails the test instead of stalling it.
fn transcode_within(
    input: &Path,
    output: &Path,
    limit: Duration,
) -> Result<media::TranscodeReport, MediaError> {
    let (input, output) = (input.to_path_buf(), output.to_path_buf());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(transcode(&input, &output, preset("h264-720p")));
    });
    rx.recv_timeout(limit)
        .expect("the transcode neither finished nor failed in time (hang)")
}

#[test]
fn every_malformed_fixture_fails_with_a_reason() {
    let expectations: &[(&str, &str, &str)] = &[
        ("empty.mp4", "input-empty", "empty"),
        ("text.mp4", "input-unreadable", "Invalid data"),
        ("random.mp4", "input-unreadable", "Invalid data"),
        ("truncated.mp4", "input-unreadable", "moov atom not found"),
        ("truncated_tail.mkv", "demux-failed", "ends early"),
        ("bitflip.mp4", "decode-failed", "packets failed"),
        (
            "timestamp_jump.mkv",
            "input-overrun",
            "where the container declares 2.00 s",
        ),
        (
            "subtitles_only.mkv",
            "input-no-streams",
            "no video or audio",
        ),
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(malformed_dir()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let (_, code, words) = expectations
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("no expectation for malformed fixture {name}"));
        let dir = tempdir();
        let started = Instant::now();
        let err = transcode_within(
            &entry.path(),
            &dir.path().join("made/for/it/o.mp4"),
            Duration::from_secs(60),
        )
        .expect_err(&name);
        let message = err.to_string();
        assert_eq!(err.code(), *code, "{name}: {message}");
        assert_eq!(
            err.class(),
            ErrorClass::InvalidInput,
            "{name}: a bad input is final"
        );
        assert!(
            message.contains(words),
            "{name}: '{message}' should say '{words}'"
        );
        assert!(
            message.contains(&name),
            "{name}: the message names the file: {message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name}: took {:?}",
            started.elapsed()
        );
        assert!(
            paths_under(dir.path()).is_empty(),
            "{name}: nothing left behind, not even the directories made for the output: {:?}",
            paths_under(dir.path())
        );
        seen += 1;
    }
    assert_eq!(seen, expectations.len());
}

#[test]
fn malformed_files_fail_the_cli_with_exit_code_1() {
    let dir = tempdir();
    let out = std::process::Command::new(crate::helpers::ffarm_bin())
        .args(["transcode", "--preset", "mp4"])
        .arg(malformed_dir().join("random.mp4"))
        .arg(dir.path().join("o.mp4"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error:") && stderr.contains("random.mp4"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A file the hostile input points at, watched for any open.
struct Watched {
    inotify: Inotify,
    path: PathBuf,
}

impl Watched {
    fn new(path: PathBuf) -> Self {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
        inotify
            .add_watch(&path, AddWatchFlags::IN_OPEN | AddWatchFlags::IN_ACCESS)
            .unwrap();
        Watched { inotify, path }
    }

    fn assert_untouched(&self) {
        match self.inotify.read_events() {
            Ok(events) => assert!(
                events.is_empty(),
                "{} was opened: {events:?}",
                self.path.display()
            ),
            Err(nix::errno::Errno::EAGAIN) => {}
            Err(e) => panic!("inotify: {e}"),
        }
    }
}

fn assert_refused(file: &Path, format: &str) {
    for result in [
        media::probe(file).map(|_| ()),
        transcode(file, &file.with_extension("out.mp4"), preset("mp4")).map(|_| ()),
    ] {
        match result {
            Err(e @ MediaError::Refused { .. }) => {
                assert!(e.to_string().contains(format), "{e}");
                assert_eq!(e.class(), ErrorClass::InvalidInput);
            }
            other => panic!("{}: expected a refusal, got {other:?}", file.display()),
        }
    }
}

#[test]
fn hls_playlist_pointing_at_a_local_file_is_refused_unopened() {
    let dir = tempdir();
    let secret = dir.path().join("secret.ts");
    std::fs::copy(valid("mpeg2_interlaced.ts"), &secret).unwrap();
    let evil = dir.path().join("holiday.mp4");
    std::fs::write(
        &evil,
        format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{}\n#EXTINF:10,\nfile://{}\n#EXT-X-ENDLIST\n",
            secret.display(),
            secret.display()
        ),
    )
    .unwrap();
    let watched = Watched::new(secret);
    assert_refused(&evil, "'hls'");
    watched.assert_untouched();
}

#[test]
fn hls_playlist_pointing_at_the_network_is_refused_without_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempdir();
    let evil = dir.path().join("clip.mov");
    std::fs::write(
        &evil,
        format!("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nhttp://127.0.0.1:{port}/seg.ts\n#EXT-X-ENDLIST\n"),
    )
    .unwrap();
    assert_refused(&evil, "'hls'");
    std::thread::sleep(Duration::from_millis(100));
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("FFmpeg connected to 127.0.0.1:{port}: {other:?}"),
    }
}

#[test]
fn concat_list_pointing_at_a_local_file_is_refused_unopened() {
    let dir = tempdir();
    let secret = dir.path().join("private.mp4");
    std::fs::copy(valid("h264_aac.mp4"), &secret).unwrap();
    let evil = dir.path().join("movie.mkv");
    std::fs::write(
        &evil,
        format!("ffconcat version 1.0\nfile '{}'\n", secret.display()),
    )
    .unwrap();
    let watched = Watched::new(secret);
    assert_refused(&evil, "'concat'");
    watched.assert_untouched();
}

#[test]
fn dash_manifest_disguised_as_video_is_refused() {
    let dir = tempdir();
    let evil = dir.path().join("film.mp4");
    std::fs::write(
        &evil,
        "<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\" \
         profiles=\"urn:mpeg:dash:profile:isoff-on-demand:2011\" \
         mediaPresentationDuration=\"PT10S\"><Period><AdaptationSet><Representation id=\"1\" \
         bandwidth=\"1000\"><BaseURL>http://127.0.0.1:9/x.mp4</BaseURL></Representation>\
         </AdaptationSet></Period></MPD>\n",
    )
    .unwrap();
    assert_refused(&evil, "'dash'");
}

#[test]
fn file_names_that_look_like_urls_stay_file_names() {
    let dir = tempdir();
    for name in [
        "concat:a.mp4|b.mp4",
        "http:example.mp4",
        "subfile,,start,0,end,10,,:x.mp4",
    ] {
        let path = dir.path().join(name);
        std::fs::copy(valid("h264_aac.mp4"), &path).unwrap();
        let probe = media::probe(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            probe.size_bytes,
            std::fs::metadata(&path).unwrap().len(),
            "{name}: read the file itself"
        );
    }
}

#[test]
fn absurd_dimensions_are_refused() {
    let dir = tempdir();
    let wide = dir.path().join("wide.y4m");
    let mut bytes = b"YUV4MPEG2 W20000 H1000 F25:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    bytes.extend(std::iter::repeat_n(0u8, 4096));
    std::fs::write(&wide, bytes).unwrap();
    let err = media::probe(&wide).unwrap_err();
    assert_eq!(err.code(), "input-limits", "{err}");
    assert!(err.to_string().contains("20000x1000"), "{err}");
}

#[test]
fn absurd_durations_are_refused() {
    let dir = tempdir();
    let mut bytes = std::fs::read(valid("hevc_aac.mkv")).unwrap();
    // Matroska Duration element (0x4489, 8-byte float, milliseconds): claim 10^9 seconds.
    let at = bytes
        .windows(3)
        .position(|w| w == [0x44, 0x89, 0x88])
        .expect("a Duration element");
    bytes[at + 3..at + 11].copy_from_slice(&1e12f64.to_be_bytes());
    let long = dir.path().join("forever.mkv");
    std::fs::write(&long, bytes).unwrap();
    let err = transcode(&long, &dir.path().join("o.mp4"), preset("mp4")).unwrap_err();
    assert_eq!(err.code(), "input-limits", "{err}");
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
}

#[test]
fn timestamps_running_past_the_declared_duration_fail_fast() {
    // The file says 2 s, but its clock jumps by 100,000 s after the first second. A
    // constant-rate output (MPEG-4 in AVI) or a rate cap used to fill that gap with millions
    // of repeated frames; a copy would write a 100,000 s file.
    let input = malformed_dir().join("timestamp_jump.mkv");
    for (name, output) in [
        ("avi", "o.avi"),
        ("h264-480p", "o.mp4"),
        ("remux-mkv", "o.mkv"),
        ("hls-abr", "ladder"),
    ] {
        let dir = tempdir();
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = dir.path().join(output);
        let input = input.clone();
        std::thread::spawn(move || {
            let _ = tx.send(transcode(&input, &out, preset(name)));
        });
        let err = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{name}: still running after 20 s"))
            .expect_err(name);
        assert_eq!(err.code(), "input-overrun", "{name}: {err}");
        assert_eq!(err.class(), ErrorClass::InvalidInput, "{name}");
        assert!(
            err.to_string().contains("timestamp_jump.mkv")
                && err.to_string().contains("declares 2.00 s"),
            "{name}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: took {:?}",
            started.elapsed()
        );
        assert!(paths_under(dir.path()).is_empty(), "{name}");
    }
}

#[test]
fn missing_input_and_bad_output_paths_are_clear() {
    let dir = tempdir();
    let err = transcode(
        &dir.path().join("nope.mp4"),
        &dir.path().join("o.mp4"),
        preset("mp4"),
    )
    .unwrap_err();
    assert_eq!(err.code(), "input-not-found");
    assert!(err.to_string().contains("nope.mp4"));
    // A single-file preset given a directory as output.
    let err = transcode(&valid("h264_aac.mp4"), dir.path(), preset("mp4")).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    // A directory as input.
    let err = media::probe(dir.path()).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn copying_a_codec_the_container_cannot_hold_is_refused() {
    let dir = tempdir();
    // remux-mov copies; MOV cannot hold VP9.
    let err = transcode(
        &valid("vp9_opus.webm"),
        &dir.path().join("o.mov"),
        preset("remux-mov"),
    )
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unsupported, "{err}");
    assert!(err.to_string().contains("vp9"), "{err}");
    assert!(files_under(dir.path()).is_empty());
}

/// Streams the container declares but whose packets cannot be found (found by fuzzing: an
/// MP4 whose chunk offsets box lost its type, a Matroska file whose first cluster's size
/// says zero) leave every output without a stream: an input with nothing in it, not a
/// muxer refusing the preset's streams.
#[test]
fn streams_without_packets_fail_as_an_input_with_nothing_to_transcode() {
    use crate::fuzz_mutate::{CLUSTER, boxes, elements, size_field};
    let dir = tempdir();
    let mut mp4 = std::fs::read(valid("video_only.mp4")).unwrap();
    let stco = boxes(&mp4)
        .into_iter()
        .find(|b| b.name() == "stco")
        .unwrap();
    mp4[stco.offset + 4..stco.offset + 8].copy_from_slice(b"meta");
    let no_offsets = dir.path().join("no_offsets.mp4");
    std::fs::write(&no_offsets, &mp4).unwrap();
    let mut mkv = std::fs::read(valid("av1_opus.mkv")).unwrap();
    let cluster = elements(&mkv)
        .into_iter()
        .find(|e| e.id == CLUSTER)
        .unwrap();
    let at = cluster.size_at;
    mkv[at..at + cluster.size_len].copy_from_slice(&size_field(cluster.size_len, 0));
    let empty_cluster = dir.path().join("empty_cluster.mkv");
    std::fs::write(&empty_cluster, &mkv).unwrap();
    for input in [&no_offsets, &empty_cluster] {
        for (name, out) in [("h264-480p", "o.mp4"), ("hls-720p", "hls/o.m3u8")] {
            let outputs = dir.path().join(format!("out-{name}"));
            let err = transcode(input, &outputs.join(out), preset(name)).unwrap_err();
            assert_eq!(
                (err.code(), err.class()),
                ("input-no-streams", ErrorClass::InvalidInput),
                "{} with {name}: {err}",
                input.display()
            );
            assert!(err.to_string().contains("no frame or sample"), "{err}");
            assert!(
                files_under(&outputs).is_empty(),
                "{name} left output behind"
            );
        }
    }
}
