//! HLS master playlists: one `#EXT-X-STREAM-INF` per rendition with the bandwidth measured
//! from the segments actually written, the resolution, the frame rate and RFC 6381 codecs;
//! WebVTT subtitle renditions (a `SUBTITLES` group) and their media playlists.

use std::path::Path;

use super::error::MediaError;

/// What the master playlist says about one rendition.
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    /// The media playlist's file name, relative to the master.
    pub uri: String,
    /// Width and height, for a rendition with video (none for audio only).
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
    /// RFC 6381 codec strings, e.g. "avc1.640028", "mp4a.40.2".
    pub codecs: Vec<String>,
    /// Its segments are fragmented MP4 (CMAF), not MPEG-TS.
    pub fmp4: bool,
}

/// A media playlist's segments: (duration in seconds, file name).
pub(crate) fn segments(playlist: &str) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    let mut pending: Option<f64> = None;
    for line in playlist.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            pending = rest.split(',').next().and_then(|d| d.trim().parse().ok());
        } else if !line.is_empty() && !line.starts_with('#') {
            if let Some(d) = pending.take() {
                out.push((d, line.to_string()));
            }
        }
    }
    out
}

/// The init segment an fMP4 media playlist names (`#EXT-X-MAP:URI="…"`).
pub(crate) fn init_segment(playlist: &str) -> Option<String> {
    playlist.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("#EXT-X-MAP:")?;
        let uri = rest.split("URI=\"").nth(1)?;
        Some(uri.split('"').next()?.to_string())
    })
}

/// Peak and average bits per second of a staged media playlist's segments.
fn measure(playlist_path: &Path) -> Result<(u64, u64), MediaError> {
    let text =
        std::fs::read_to_string(playlist_path).map_err(|e| MediaError::io(playlist_path, e))?;
    let dir = playlist_path.parent().unwrap_or(Path::new("."));
    Ok(bit_rates(segments(&text).into_iter().map(
        |(duration, name)| {
            let size = std::fs::metadata(dir.join(&name))
                .map(|m| m.len())
                .unwrap_or(0);
            (duration, size)
        },
    )))
}

/// Peak and average bits per second of segments given as (duration in seconds, bytes).
pub(crate) fn bit_rates(segments: impl IntoIterator<Item = (f64, u64)>) -> (u64, u64) {
    let mut peak = 0f64;
    let (mut bytes, mut seconds) = (0u64, 0f64);
    for (duration, size) in segments {
        bytes += size;
        seconds += duration;
        if duration > 0.0 {
            peak = peak.max(size as f64 * 8.0 / duration);
        }
    }
    let average = if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds
    } else {
        0.0
    };
    (peak.ceil() as u64, average.ceil() as u64)
}

/// An alternate audio rendition the master's variants refer to (an `AUDIO` group).
#[derive(Debug, Clone)]
pub(crate) struct AudioRendition {
    pub uri: String,
    pub codecs: Vec<String>,
    pub channels: Option<u32>,
    pub language: Option<String>,
    /// What players show for it.
    pub name: String,
    /// Played when none of the group matches the viewer's language.
    pub default: bool,
}

impl AudioRendition {
    /// The rendition as a DASH manifest lists it: a Representation without a picture.
    pub(crate) fn as_variant(&self, fmp4: bool) -> Variant {
        Variant {
            uri: self.uri.clone(),
            resolution: None,
            frame_rate: None,
            codecs: self.codecs.clone(),
            fmp4,
        }
    }
}

/// The group name of the audio renditions in a master playlist.
const AUDIO_GROUP: &str = "audio";

/// A variant and its (peak, average) bits per second.
pub(crate) type Measured = (Variant, (u64, u64));

/// An audio rendition and its (peak, average) bits per second.
pub(crate) type MeasuredAudio = (AudioRendition, (u64, u64));

/// Each audio rendition with its (peak, average) bit rate, measured from its playlist in
/// `dir`.
pub(crate) fn measure_audio(
    dir: &Path,
    audio: &[AudioRendition],
) -> Result<Vec<MeasuredAudio>, MediaError> {
    let mut measured = Vec::with_capacity(audio.len());
    for a in audio {
        measured.push((a.clone(), measure(&dir.join(&a.uri))?));
    }
    Ok(measured)
}

/// Each variant with its (peak, average) bit rate, measured from its playlist in `dir`.
pub(crate) fn measure_all(dir: &Path, variants: &[Variant]) -> Result<Vec<Measured>, MediaError> {
    let mut measured = Vec::with_capacity(variants.len());
    for v in variants {
        measured.push((v.clone(), measure(&dir.join(&v.uri))?));
    }
    Ok(measured)
}

/// Writes the master playlist to `path` from each variant's (peak, average) bit rate and,
/// when the variants' audio is in renditions of its own, those renditions and their bit
/// rates (the largest added to every variant's, as players need the whole), and the
/// subtitle renditions every variant names.
pub(crate) fn write_master_of(
    path: &Path,
    variants: &[Measured],
    audio: &[MeasuredAudio],
    subtitles: &[SubtitleRendition],
) -> Result<(), MediaError> {
    // Version 7 for fMP4 variants (`#EXT-X-MAP` in media playlists), as they are.
    let fmp4 = variants.iter().any(|(v, _)| v.fmp4);
    let version = if fmp4 { 7 } else { 3 };
    let mut text = format!("#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (a, _) in audio {
        text.push_str(&audio_media(a));
    }
    let audio_peak = audio.iter().map(|(_, r)| r.0).max().unwrap_or(0);
    let audio_average = audio.iter().map(|(_, r)| r.1).max().unwrap_or(0);
    let mut audio_codecs: Vec<&String> = Vec::new();
    for c in audio.iter().flat_map(|(a, _)| a.codecs.iter()) {
        if !audio_codecs.contains(&c) {
            audio_codecs.push(c);
        }
    }
    let mut measured: Vec<&(Variant, (u64, u64))> = variants.iter().collect();
    // Players try the first rendition first: list the highest bandwidth first.
    measured.sort_by_key(|(_, bandwidth)| std::cmp::Reverse(bandwidth.0));
    for (v, (peak, average)) in measured {
        text.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={}",
            peak + audio_peak,
            average + audio_average
        ));
        if let Some((width, height)) = v.resolution {
            text.push_str(&format!(",RESOLUTION={width}x{height}"));
        }
        if let Some(fps) = v.frame_rate {
            text.push_str(&format!(",FRAME-RATE={fps:.3}"));
        }
        let codecs: Vec<&str> = v
            .codecs
            .iter()
            .chain(audio_codecs.iter().copied())
            .map(String::as_str)
            .collect();
        if !codecs.is_empty() {
            text.push_str(&format!(",CODECS=\"{}\"", codecs.join(",")));
        }
        if !audio.is_empty() {
            text.push_str(&format!(",AUDIO=\"{AUDIO_GROUP}\""));
        }
        text.push('\n');
        text.push_str(&v.uri);
        text.push('\n');
    }
    let text = with_subtitles(&text, subtitles);
    std::fs::write(path, text).map_err(|e| MediaError::io(path, e))
}

/// The `#EXT-X-MEDIA` line of an audio rendition.
fn audio_media(a: &AudioRendition) -> String {
    let yes_no = |b: bool| if b { "YES" } else { "NO" };
    let mut line = format!(
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{AUDIO_GROUP}\",NAME=\"{}\",DEFAULT={},\
         AUTOSELECT=YES",
        a.name.replace('"', "'"),
        yes_no(a.default)
    );
    if let Some(lang) = &a.language {
        line.push_str(&format!(",LANGUAGE=\"{lang}\""));
    }
    if let Some(ch) = a.channels {
        line.push_str(&format!(",CHANNELS=\"{ch}\""));
    }
    line.push_str(&format!(",URI=\"{}\"\n", a.uri));
    line
}

/// A WebVTT rendition every variant of the master refers to (a `SUBTITLES` group).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SubtitleRendition {
    /// Its media playlist's file name, relative to the master.
    pub uri: String,
    pub name: String,
    pub language: Option<String>,
}

/// The group name of the subtitle renditions in a master playlist.
pub(crate) const SUBTITLE_GROUP: &str = "subs";

/// A master playlist's text with `subtitles` added: an `#EXT-X-MEDIA:TYPE=SUBTITLES` per
/// rendition, and every variant naming the group.
pub(crate) fn with_subtitles(master: &str, subtitles: &[SubtitleRendition]) -> String {
    if subtitles.is_empty() {
        return master.to_string();
    }
    let quoted = |v: &str| v.replace('"', "'").replace(['\n', '\r'], " ");
    let mut media = String::new();
    for (i, s) in subtitles.iter().enumerate() {
        media.push_str(&format!(
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"{SUBTITLE_GROUP}\",NAME=\"{}\",\
             DEFAULT={},AUTOSELECT=YES",
            quoted(&s.name),
            if i == 0 { "YES" } else { "NO" },
        ));
        if let Some(lang) = &s.language {
            media.push_str(&format!(",LANGUAGE=\"{}\"", quoted(lang)));
        }
        media.push_str(&format!(",URI=\"{}\"\n", s.uri));
    }
    let mut out = String::new();
    let mut placed = false;
    for line in master.lines() {
        let variant = line.starts_with("#EXT-X-STREAM-INF:");
        if !placed && (variant || line.starts_with("#EXT-X-MEDIA:")) {
            out.push_str(&media);
            placed = true;
        }
        out.push_str(line);
        if variant {
            out.push_str(&format!(",SUBTITLES=\"{SUBTITLE_GROUP}\""));
        }
        out.push('\n');
    }
    out
}

/// A subtitle rendition's media playlist: its one WebVTT file spanning the whole
/// `duration` (seconds), a valid segmentation of a VOD rendition.
pub(crate) fn subtitle_playlist(vtt: &str, duration: f64) -> String {
    format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:{duration:.3},\n{vtt}\n#EXT-X-ENDLIST\n",
        duration.ceil().max(1.0) as u64
    )
}

/// The RFC 6381 string for H.264 ("avc1.PPCCLL"), read from the sequence parameter set in
/// an Annex B packet: profile_idc, the constraint flags and level_idc, exactly as coded.
/// An `avcC` record (extradata starting with version 1) carries the same three bytes.
pub(crate) fn avc_codec_string(annexb: &[u8]) -> Option<String> {
    if annexb.len() >= 4 && annexb[0] == 1 {
        let (p, c, l) = (annexb[1], annexb[2], annexb[3]);
        return Some(format!("avc1.{p:02x}{c:02x}{l:02x}"));
    }
    let mut i = 0;
    while i + 3 < annexb.len() {
        if annexb[i] == 0 && annexb[i + 1] == 0 && annexb[i + 2] == 1 {
            let nal = i + 3;
            if annexb[nal] & 0x1f == 7 && nal + 3 < annexb.len() {
                let (p, c, l) = (annexb[nal + 1], annexb[nal + 2], annexb[nal + 3]);
                return Some(format!("avc1.{p:02x}{c:02x}{l:02x}"));
            }
            i = nal;
        } else {
            i += 1;
        }
    }
    None
}

/// The URI lines of a playlist.
pub(crate) fn uris(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The sum of a media playlist's `#EXTINF` durations.
pub(crate) fn playlist_length(text: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|v| v.split(',').next()?.trim().parse::<f64>().ok())
        .sum()
}

/// The playlists a master names in `#EXT-X-MEDIA` tags of `TYPE=kind` (`URI="…"`): the
/// audio or subtitle renditions variants refer to by group.
pub(crate) fn media_uris(master: &str, kind: &str) -> Vec<String> {
    let kind = format!("TYPE={kind}");
    master
        .lines()
        .filter_map(|l| l.trim().strip_prefix("#EXT-X-MEDIA:"))
        .filter(|attrs| attrs.split(',').any(|a| a == kind))
        .filter_map(|l| {
            l.split("URI=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(str::to_string)
        })
        .collect()
}

/// The IV of a media playlist's first segment: `IV=0x…` on its `#EXT-X-KEY`, else the
/// media sequence number (`#EXT-X-MEDIA-SEQUENCE`, 0 when absent) as a 128-bit big-endian
/// number.
pub(crate) fn segment_iv(text: &str) -> [u8; 16] {
    let given = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-KEY:"))
        .find_map(|attrs| attrs.split(',').find_map(|a| a.strip_prefix("IV=0x")));
    if let Some(hex) = given.filter(|h| h.len() == 32) {
        let mut iv = [0u8; 16];
        for (i, byte) in iv.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
        return iv;
    }
    let sequence: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let mut iv = [0u8; 16];
    iv[8..].copy_from_slice(&sequence.to_be_bytes());
    iv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_segments_from_a_media_playlist() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.000000,\na_00000.ts\n\
                    #EXTINF:2.5,\na_00001.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(
            segments(text),
            vec![
                (6.0, "a_00000.ts".to_string()),
                (2.5, "a_00001.ts".to_string())
            ]
        );
    }

    #[test]
    fn master_playlists_describe_video_and_audio_only_renditions() {
        let dir = tempfile::tempdir().unwrap();
        // One 4-second segment each: 4000 bytes of video, 1000 of audio.
        for (name, bytes) in [("v", 4000), ("a", 1000)] {
            let playlist = format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\n{name}_00000.ts\n\
                 #EXT-X-ENDLIST\n"
            );
            std::fs::write(dir.path().join(format!("{name}.m3u8")), playlist).unwrap();
            std::fs::write(
                dir.path().join(format!("{name}_00000.ts")),
                vec![0u8; bytes],
            )
            .unwrap();
        }
        let master = dir.path().join("master.m3u8");
        let variants = [
            Variant {
                uri: "a.m3u8".into(),
                resolution: None,
                frame_rate: None,
                codecs: vec!["mp4a.40.2".into()],
                fmp4: false,
            },
            Variant {
                uri: "v.m3u8".into(),
                resolution: Some((1280, 720)),
                frame_rate: Some(30.0),
                codecs: vec!["avc1.64001f".into(), "mp4a.40.2".into()],
                fmp4: false,
            },
        ];
        write_master_of(
            &master,
            &measure_all(dir.path(), &variants).unwrap(),
            &[],
            &[],
        )
        .unwrap();
        let text = std::fs::read_to_string(&master).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[3],
            "#EXT-X-STREAM-INF:BANDWIDTH=8000,AVERAGE-BANDWIDTH=8000,RESOLUTION=1280x720,\
             FRAME-RATE=30.000,CODECS=\"avc1.64001f,mp4a.40.2\""
        );
        assert_eq!(lines[4], "v.m3u8");
        assert_eq!(
            lines[5],
            "#EXT-X-STREAM-INF:BANDWIDTH=2000,AVERAGE-BANDWIDTH=2000,CODECS=\"mp4a.40.2\"",
            "no RESOLUTION without video"
        );
    }

    #[test]
    fn subtitle_renditions_join_the_master_and_every_variant_names_them() {
        let master = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
                      #EXT-X-STREAM-INF:BANDWIDTH=8000\nv.m3u8\n\
                      #EXT-X-STREAM-INF:BANDWIDTH=2000\nw.m3u8\n";
        let subs = [
            SubtitleRendition {
                uri: "s0.m3u8".into(),
                name: "English".into(),
                language: Some("eng".into()),
            },
            SubtitleRendition {
                uri: "s1.m3u8".into(),
                name: "Fr \"q\"".into(),
                language: None,
            },
        ];
        let text = with_subtitles(master, &subs);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[3],
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"English\",DEFAULT=YES,\
             AUTOSELECT=YES,LANGUAGE=\"eng\",URI=\"s0.m3u8\""
        );
        assert_eq!(
            lines[4],
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"Fr 'q'\",DEFAULT=NO,\
             AUTOSELECT=YES,URI=\"s1.m3u8\""
        );
        assert_eq!(
            lines[5],
            "#EXT-X-STREAM-INF:BANDWIDTH=8000,SUBTITLES=\"subs\""
        );
        assert_eq!(lines[8], "w.m3u8");
        assert_eq!(with_subtitles(master, &[]), master);
        let playlist = subtitle_playlist("s0.vtt", 4.02);
        assert!(playlist.contains("#EXT-X-TARGETDURATION:5\n#EXT-X-MEDIA-SEQUENCE:0"));
        assert_eq!(segments(&playlist), vec![(4.02, "s0.vtt".to_string())]);
    }

    #[test]
    fn playlist_lengths_uris_and_ivs() {
        let text = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:6.000000,\na_00001.ts\n\
                    #EXTINF:2.5,\na_00002.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(playlist_length(text), 8.5);
        assert_eq!(uris(text).collect::<Vec<_>>(), ["a_00001.ts", "a_00002.ts"]);
        assert_eq!(segment_iv(text)[15], 3);
        let given = "#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=0x000102030405060708090a0b0c0d0e0f\n";
        assert_eq!(segment_iv(given)[1], 1);
        let master = "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",URI=\"a.m3u8\"\nv.m3u8\n";
        assert_eq!(media_uris(master, "AUDIO"), ["a.m3u8"]);
        assert!(media_uris(master, "SUBTITLES").is_empty());
    }

    #[test]
    fn init_segments_come_from_ext_x_map() {
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI=\"i_init.mp4\"\n#EXTINF:6,\na.m4s\n";
        assert_eq!(init_segment(text).as_deref(), Some("i_init.mp4"));
        assert_eq!(init_segment("#EXTM3U\n#EXTINF:6,\na.ts\n"), None);
    }

    #[test]
    fn avc_codec_string_comes_from_the_sps() {
        // AUD, then an SPS for High profile (100), no constraints, level 3.1.
        let packet = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac,
        ];
        assert_eq!(avc_codec_string(&packet).as_deref(), Some("avc1.64001f"));
        assert_eq!(avc_codec_string(&[0, 0, 1, 0x65, 1, 2, 3, 4]), None);
        assert_eq!(
            avc_codec_string(&[1, 0x4d, 0x40, 0x1e, 0xff]).as_deref(),
            Some("avc1.4d401e")
        );
    }
}
