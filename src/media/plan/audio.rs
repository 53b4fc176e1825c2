//! Which audio tracks a transcode keeps and where each goes: every track, or the main one
//! when the container holds fewer; or those in the languages asked for, in that order. In
//! HLS, several kept tracks become alternate audio renditions (an `AUDIO` group): each its
//! own audio-only media playlist, the video variants carrying no audio of their own; in
//! CMAF, every kept track does.

use super::ladder::Ladder;
use super::{AudioPlan, AudioWork};
use super::{OutputPlan, Target, add_slot, slot_info, stream_codec_id};
use crate::job::language;
use crate::media::encode;
use crate::media::error::MediaError;
use crate::media::ffi;
use crate::media::input::Input;
use crate::media::probe::{ProbeReport, StreamReport};
use crate::preset::{AudioEncoding, AudioOutput, Container, Preset};

/// An output file that is one alternate audio rendition of an HLS master.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AudioMember {
    /// The track's language (canonical ISO 639 code); None when it names none.
    pub language: Option<String>,
    /// What players show for it ("English").
    pub name: String,
    /// The rendition players pick when the viewer's language is not among them.
    pub default: bool,
}

/// The audio streams to keep, in the order they go into each output (the first is the
/// default track).
pub(super) fn sources<'p>(
    input: &Input,
    probe: &'p ProbeReport,
    preset: &Preset,
) -> Result<Vec<&'p StreamReport>, MediaError> {
    let all: Vec<_> = probe.audio().collect();
    if preset.audio.is_none() || all.is_empty() {
        return Ok(Vec::new());
    }
    if preset.audio_languages.is_empty() {
        return Ok(by_container(all, preset.container));
    }
    let chosen = by_language(&all, &preset.audio_languages);
    if chosen.is_empty() {
        return Err(MediaError::AudioLanguage {
            path: input.path.clone(),
            what: missing(&all, &preset.audio_languages),
        });
    }
    let room = if separate_renditions(preset, chosen.len(), probe) {
        usize::MAX
    } else {
        preset.container.max_audio_tracks()
    };
    if chosen.len() > room {
        tracing::warn!(
            "{} holds {room} audio track(s): keeping the first of {} in {}",
            preset.container,
            chosen.len(),
            preset.audio_languages.join(", ")
        );
    }
    Ok(chosen.into_iter().take(room).collect())
}

/// All the tracks, or the main one (the default, else the first) when the container holds
/// fewer.
fn by_container(all: Vec<&StreamReport>, container: Container) -> Vec<&StreamReport> {
    if container.max_audio_tracks() >= all.len() {
        all
    } else {
        let main = all.iter().find(|s| s.default).or(all.first()).copied();
        main.into_iter()
            .take(container.max_audio_tracks())
            .collect()
    }
}

/// The tracks in the languages wanted: language by language in the order asked, each
/// language's tracks in the input's order.
fn by_language<'p>(all: &[&'p StreamReport], wanted: &[String]) -> Vec<&'p StreamReport> {
    wanted
        .iter()
        .flat_map(|w| {
            let w = language::canonical(w).unwrap_or(w);
            all.iter()
                .filter(move |s| language::of_track(s.language.as_deref()) == w)
                .copied()
        })
        .collect()
}

/// What the input has, for the error when none of it is wanted.
fn missing(all: &[&StreamReport], wanted: &[String]) -> String {
    let has: Vec<String> = all
        .iter()
        .map(|s| format!("#{} {}", s.index, language::of_track(s.language.as_deref())))
        .collect();
    format!(
        "asked for {}; the input's audio tracks are {}",
        wanted.join(", "),
        has.join(", ")
    )
}

/// Whether kept tracks become audio renditions of their own, beside video (an audio-only
/// input keeps its first track): in HLS when there are several; in CMAF always, as DASH and
/// CMAF players expect one track per file (decision 0081).
pub(super) fn separate_renditions(preset: &Preset, kept: usize, probe: &ProbeReport) -> bool {
    let apart = match preset.container {
        Container::Hls => kept > 1,
        Container::Cmaf => kept > 0,
        _ => false,
    };
    apart && preset.video.is_some() && probe.video().is_some()
}

/// One output file per kept track, after the video outputs; a video output without a
/// ladder's name is called `video` (its playlist is no longer the top one).
pub(super) fn add_renditions(
    outputs: &mut Vec<OutputPlan>,
    sources: &[&StreamReport],
    global_header: bool,
    hvc1: bool,
) {
    for o in outputs.iter_mut() {
        o.rendition.get_or_insert_with(|| "video".into());
    }
    let (mut files, mut titles): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for (i, s) in sources.iter().enumerate() {
        let code = language::of_track(s.language.as_deref());
        // One track is simply `audio`; several are told apart by language (and index).
        let file = match sources.len() {
            1 => "audio".to_string(),
            _ => unique(&files, format!("audio_{code}"), |n| {
                format!("audio_{code}_{n}")
            }),
        };
        files.push(file.clone());
        // A group's NAMEs must differ (RFC 8216): "English", "English 2".
        let title = rendition_title(s, code);
        let title = unique(&titles, title.clone(), |n| format!("{title} {n}"));
        titles.push(title.clone());
        let known = (code != language::UNDETERMINED).then(|| code.to_string());
        outputs.push(OutputPlan {
            rendition: Some(file),
            slots: Vec::new(),
            global_header,
            hvc1,
            audio_member: Some(AudioMember {
                name: title,
                language: known,
                default: i == 0,
            }),
        });
    }
}

/// `first`, or the first of `nth(2)`, `nth(3)`… that `used` does not hold yet.
fn unique(used: &[String], first: String, nth: impl Fn(usize) -> String) -> String {
    if !used.contains(&first) {
        return first;
    }
    (2..).map(nth).find(|n| !used.contains(n)).unwrap_or(first)
}

/// What players show for a rendition: the track's own title, else its language's name
/// (`Audio` for one that names none).
fn rendition_title(s: &StreamReport, code: &str) -> String {
    let fallback = || match code {
        language::UNDETERMINED => "Audio".to_string(),
        _ => language::name(code),
    };
    s.title
        .clone()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(fallback)
}

/// What becomes of each kept audio stream: copied or encoded into every output (the first
/// is every output's default track), or, as HLS renditions, each into its own output.
pub(super) fn plan(
    input: &Input,
    sources: &[&StreamReport],
    preset: &Preset,
    ladder: &Ladder,
    outputs: &mut [OutputPlan],
) -> Result<Vec<AudioPlan>, MediaError> {
    let Some(preset_audio) = &preset.audio else {
        return Ok(Vec::new());
    };
    let own: Vec<usize> = (0..outputs.len())
        .filter(|o| outputs[*o].audio_member.is_some())
        .collect();
    let mut audio = Vec::new();
    for (i, sa) in sources.iter().enumerate() {
        let into: Vec<usize> = match own.get(i) {
            Some(o) => vec![*o],
            None => (0..outputs.len()).collect(),
        };
        let work = match preset_audio {
            AudioOutput::Copy => copy(input, sa, i == 0, preset, &into, outputs)?,
            AudioOutput::Encode(a) => encode(sa, i == 0, a, ladder, &into, outputs),
        };
        audio.push(AudioPlan {
            input: sa.index,
            work,
        });
    }
    Ok(audio)
}

/// An audio stream copied into outputs `into`, when the container can hold its codec.
fn copy(
    input: &Input,
    sa: &StreamReport,
    first: bool,
    preset: &Preset,
    into: &[usize],
    outputs: &mut [OutputPlan],
) -> Result<AudioWork, MediaError> {
    let container = preset.container;
    let codec_id = stream_codec_id(input, sa.index);
    if ffi::muxer_supports(container.muxer(), codec_id) == Some(false) {
        return Err(MediaError::Unsupported(format!(
            "preset {}: cannot copy {} audio into {container}",
            preset.name, sa.codec
        )));
    }
    let targets = into
        .iter()
        .map(|&o| {
            let own = outputs[o].audio_member.is_some();
            add_slot(outputs, o, slot_info(sa, first || own))
        })
        .collect();
    Ok(AudioWork::Copy { targets })
}

/// An audio stream encoded for outputs `into`: renditions that ask for the same audio bit
/// rate share one encoder; an audio rendition of its own takes the best any rung asks for.
fn encode(
    sa: &StreamReport,
    first: bool,
    a: &AudioEncoding,
    ladder: &Ladder,
    into: &[usize],
    outputs: &mut [OutputPlan],
) -> AudioWork {
    let mut groups: Vec<(Option<u64>, Vec<Target>)> = Vec::new();
    for &o in into {
        let bitrate = match outputs[o].audio_member {
            Some(_) => ladder.audio_bitrates.iter().flatten().max().copied(),
            None => ladder.audio_bitrates.get(o).copied().flatten(),
        };
        let own = outputs[o].audio_member.is_some();
        let target = add_slot(outputs, o, slot_info(sa, first || own));
        match groups.iter_mut().find(|(b, _)| *b == bitrate) {
            Some((_, targets)) => targets.push(target),
            None => groups.push((bitrate, vec![target])),
        }
    }
    AudioWork::Encode {
        groups: groups
            .into_iter()
            .map(|(bitrate, targets)| (encode::audio_spec(a, bitrate), targets))
            .collect(),
    }
}
