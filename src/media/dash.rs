//! A CMAF output's DASH MPD (decision 0081): one Representation per rendition (video ones
//! in one AdaptationSet, the audio rendition in another), naming the same init and media
//! segments as its HLS media playlist (`SegmentList` with a
//! `SegmentTimeline` built from the playlist's durations), with the bandwidth measured from
//! the segments and the codecs, size and frame rate the master playlist gives. And the MPD
//! read back: the files each Representation names, for the output check.

use std::path::Path;

use quick_xml::escape::escape;
use quick_xml::events::Event;

use super::error::MediaError;
use super::hls::{self, Measured, Variant};

/// Timeline units per second.
const TIMESCALE: u64 = 1000;

/// One Representation: the rendition's media playlist read, and what the master says of it.
struct Representation<'a> {
    variant: &'a Variant,
    bandwidth: u64,
    init: String,
    /// (duration in seconds, file name) per segment.
    segments: Vec<(f64, String)>,
}

/// Writes the MPD to `path` from the staged media playlists beside it (each variant's
/// `uri`); every playlist must name its init segment (`#EXT-X-MAP`).
pub(crate) fn write_mpd(
    path: &Path,
    variants: &[Measured],
    segment_seconds: f64,
) -> Result<(), MediaError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut representations = Vec::with_capacity(variants.len());
    for (variant, (peak, _)) in variants {
        let playlist = dir.join(&variant.uri);
        let text = std::fs::read_to_string(&playlist).map_err(|e| MediaError::io(&playlist, e))?;
        let init = hls::init_segment(&text).ok_or_else(|| {
            MediaError::Unsupported(format!(
                "{}: the fMP4 playlist names no init segment (#EXT-X-MAP)",
                playlist.display()
            ))
        })?;
        representations.push(Representation {
            variant,
            bandwidth: *peak,
            init,
            segments: hls::segments(&text),
        });
    }
    let text = mpd(&representations, segment_seconds);
    std::fs::write(path, text).map_err(|e| MediaError::io(path, e))
}

/// The MPD's text: one AdaptationSet for the video renditions and, when the audio is a
/// rendition of its own, one for it.
fn mpd(representations: &[Representation], segment_seconds: f64) -> String {
    let duration = representations
        .iter()
        .map(|r| r.segments.iter().map(|(d, _)| d).sum::<f64>())
        .fold(0.0, f64::max);
    let mut text = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-main:2011\" type=\"static\" \
         mediaPresentationDuration=\"{}\" minBufferTime=\"{}\">\n\
         \x20 <Period id=\"0\" start=\"PT0S\">\n",
        iso_duration(duration),
        iso_duration(segment_seconds),
    );
    let (video, audio): (Vec<&Representation>, Vec<&Representation>) = representations
        .iter()
        .partition(|r| r.variant.resolution.is_some());
    for (id, (kind, mut set)) in [("video", video), ("audio", audio)]
        .into_iter()
        .filter(|(_, set)| !set.is_empty())
        .enumerate()
    {
        text.push_str(&format!(
            "    <AdaptationSet id=\"{id}\" contentType=\"{kind}\" mimeType=\"{kind}/mp4\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">\n"
        ));
        set.sort_by_key(|r| r.bandwidth);
        for r in set {
            representation(&mut text, r);
        }
        text.push_str("    </AdaptationSet>\n");
    }
    text.push_str("  </Period>\n</MPD>\n");
    text
}

/// One `<Representation>` with its `<SegmentList>`.
fn representation(text: &mut String, r: &Representation) {
    let id = r
        .variant
        .uri
        .strip_suffix(".m3u8")
        .unwrap_or(&r.variant.uri);
    text.push_str(&format!(
        "      <Representation id=\"{}\" bandwidth=\"{}\"",
        escape(id),
        r.bandwidth.max(1)
    ));
    if !r.variant.codecs.is_empty() {
        text.push_str(&format!(
            " codecs=\"{}\"",
            escape(r.variant.codecs.join(",").as_str())
        ));
    }
    if let Some((width, height)) = r.variant.resolution {
        text.push_str(&format!(" width=\"{width}\" height=\"{height}\""));
    }
    if let Some(fps) = r.variant.frame_rate.filter(|f| *f > 0.0) {
        text.push_str(&format!(" frameRate=\"{}\"", frame_rate(fps)));
    }
    text.push_str(&format!(
        ">\n        <SegmentList timescale=\"{TIMESCALE}\">\n          \
         <Initialization sourceURL=\"{}\"/>\n          <SegmentTimeline>\n",
        escape(r.init.as_str())
    ));
    for (start, duration, repeat) in timeline(&r.segments) {
        text.push_str(&format!("            <S t=\"{start}\" d=\"{duration}\""));
        if repeat > 0 {
            text.push_str(&format!(" r=\"{repeat}\""));
        }
        text.push_str("/>\n");
    }
    text.push_str("          </SegmentTimeline>\n");
    for (_, name) in &r.segments {
        text.push_str(&format!(
            "          <SegmentURL media=\"{}\"/>\n",
            escape(name.as_str())
        ));
    }
    text.push_str("        </SegmentList>\n      </Representation>\n");
}

/// The segments as `(t, d, r)` runs in [`TIMESCALE`] units: each segment's start and end
/// rounded from the running sum of the durations, so rounding never drifts.
fn timeline(segments: &[(f64, String)]) -> Vec<(u64, u64, u32)> {
    let mut runs: Vec<(u64, u64, u32)> = Vec::new();
    let mut elapsed = 0.0;
    for (duration, _) in segments {
        let start = (elapsed * TIMESCALE as f64).round() as u64;
        elapsed += duration;
        let end = (elapsed * TIMESCALE as f64).round() as u64;
        let d = end.saturating_sub(start);
        match runs.last_mut() {
            Some((_, last, repeat)) if *last == d => *repeat += 1,
            _ => runs.push((start, d, 0)),
        }
    }
    runs
}

/// A frame rate as DASH writes it: an integer, or a fraction over 1001 (29.97 →
/// `30000/1001`).
fn frame_rate(fps: f64) -> String {
    let whole = fps.round();
    if (fps - whole).abs() < 0.001 {
        format!("{}", whole as u64)
    } else {
        format!("{}/1001", (fps * 1001.0).round() as u64)
    }
}

/// Seconds as an ISO 8601 duration (`PT12.480S`).
fn iso_duration(seconds: f64) -> String {
    format!("PT{:.3}S", seconds.max(0.0))
}

/// What an MPD names, per Representation: its id and its files (the init segment first).
#[derive(Debug, PartialEq)]
pub(crate) struct Named {
    pub id: String,
    pub files: Vec<String>,
}

/// Reads an MPD: every Representation and the files its `SegmentList` names. An MPD that is
/// not well-formed XML, or whose Representations describe segments some other way
/// (`SegmentTemplate`, `BaseURL` alone), is an error saying so.
pub(crate) fn named_files(text: &str) -> Result<Vec<Named>, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut named: Vec<Named> = Vec::new();
    let mut saw_mpd = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("it is not well-formed XML: {e}"))?;
        let element = match &event {
            Event::Start(e) | Event::Empty(e) => e,
            Event::Eof => break,
            _ => continue,
        };
        let attribute = |name: &[u8]| -> Result<Option<String>, String> {
            for a in element.attributes() {
                let a = a.map_err(|e| format!("it is not well-formed XML: {e}"))?;
                if a.key.local_name().as_ref() == name {
                    let value = a
                        .normalized_value(quick_xml::XmlVersion::default())
                        .map_err(|e| format!("it is not well-formed XML: {e}"))?;
                    return Ok(Some(value.into_owned()));
                }
            }
            Ok(None)
        };
        match element.local_name().as_ref() {
            b"MPD" => saw_mpd = true,
            b"Representation" => named.push(Named {
                id: attribute(b"id")?.unwrap_or_default(),
                files: Vec::new(),
            }),
            b"SegmentTemplate" => {
                return Err("it describes segments by a SegmentTemplate, not a list".into());
            }
            tag @ (b"Initialization" | b"SegmentURL") => {
                let key: &[u8] = if tag == b"SegmentURL" {
                    b"media"
                } else {
                    b"sourceURL"
                };
                let (Some(file), Some(rep)) = (attribute(key)?, named.last_mut()) else {
                    return Err("a segment is named outside a Representation".into());
                };
                rep.files.push(file);
            }
            _ => {}
        }
    }
    if !saw_mpd {
        return Err("it has no MPD element".into());
    }
    Ok(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timelines_join_equal_segments_and_do_not_drift() {
        let segments: Vec<(f64, String)> = [6.006, 6.006, 6.006, 2.5]
            .iter()
            .map(|d| (*d, String::new()))
            .collect();
        assert_eq!(timeline(&segments), vec![(0, 6006, 2), (18018, 2500, 0)]);
        let thirds: Vec<(f64, String)> = (0..3).map(|_| (1.0 / 3.0, String::new())).collect();
        let runs = timeline(&thirds);
        let total: u64 = runs.iter().map(|(_, d, r)| d * u64::from(r + 1)).sum();
        assert_eq!(total, 1000);
    }

    #[test]
    fn frame_rates_and_durations() {
        assert_eq!(frame_rate(30.0), "30");
        assert_eq!(frame_rate(29.97003), "30000/1001");
        assert_eq!(iso_duration(12.48), "PT12.480S");
    }

    #[test]
    fn an_mpd_written_is_read_back() {
        let variant = Variant {
            uri: "a&b_720p.m3u8".into(),
            resolution: Some((1280, 720)),
            frame_rate: Some(25.0),
            codecs: vec!["avc1.64001f".into(), "mp4a.40.2".into()],
            fmp4: true,
        };
        let rep = Representation {
            variant: &variant,
            bandwidth: 900_000,
            init: "a&b_720p_init.mp4".into(),
            segments: vec![(6.0, "a&b_720p_00000.m4s".into()), (1.5, "x.m4s".into())],
        };
        let text = mpd(&[rep], 6.0);
        assert!(
            text.contains("mediaPresentationDuration=\"PT7.500S\""),
            "{text}"
        );
        assert!(text.contains("codecs=\"avc1.64001f,mp4a.40.2\""), "{text}");
        let named = named_files(&text).unwrap();
        assert_eq!(
            named,
            vec![Named {
                id: "a&b_720p".into(),
                files: vec![
                    "a&b_720p_init.mp4".into(),
                    "a&b_720p_00000.m4s".into(),
                    "x.m4s".into()
                ],
            }]
        );
        assert!(named_files("<MPD><Period>").is_ok_and(|n| n.is_empty()));
        assert!(named_files("<MPD><Period></MPD>").is_err());
        assert!(named_files("<html/>").is_err());
    }
}
