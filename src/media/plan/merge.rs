//! One plan from several presets' plans over the same input (a job with many outputs): their
//! output files side by side, each used stream read and decoded once and fanned out to every
//! preset's encoders, audio encoders with the same settings shared, and a poster made from
//! the same decode (its rendition picks its one frame).

use super::{AudioPlan, AudioWork, CopyPlan, OutputPlan, Plan, Target, VideoPlan, VideoWork};
use crate::media::error::MediaError;

/// Merges `plans` (one per preset, in order) into one. A single plan is returned as it is.
pub(crate) fn merge(plans: Vec<Plan>) -> Result<Plan, MediaError> {
    let mut plans = plans.into_iter();
    let Some(mut merged) = plans.next() else {
        return Err(MediaError::Internal("no plan to merge".into()));
    };
    let mut rest = plans.peekable();
    if rest.peek().is_none() {
        return Ok(merged);
    }
    picked_poster(&mut merged);
    for mut plan in rest {
        retarget(&mut plan, merged.outputs.len());
        picked_poster(&mut plan);
        merged.outputs.append(&mut plan.outputs);
        merge_video(&mut merged, plan.video)?;
        for audio in plan.audio {
            merge_audio(&mut merged, audio);
        }
        for copy in plan.copies {
            add_copy(&mut merged.copies, copy);
        }
    }
    Ok(merged)
}

/// A poster plan reads from its picture's time on; beside other outputs it reads everything
/// with them, and its rendition picks the frame instead.
fn picked_poster(plan: &mut Plan) {
    let Some(at) = plan.poster_at.take() else {
        return;
    };
    if let Some(VideoPlan {
        work: VideoWork::Encode { renditions, .. },
        ..
    }) = &mut plan.video
    {
        for r in renditions {
            r.pick_at = Some(at);
        }
    }
}

/// Moves every target of `plan` by `offset` output files.
fn retarget(plan: &mut Plan, offset: usize) {
    let shift = |t: &mut Target| t.output += offset;
    if let Some(v) = &mut plan.video {
        match &mut v.work {
            VideoWork::Copy { targets } => targets.iter_mut().for_each(shift),
            VideoWork::Encode { renditions, .. } => {
                renditions.iter_mut().for_each(|r| shift(&mut r.target))
            }
        }
    }
    for a in &mut plan.audio {
        match &mut a.work {
            AudioWork::Copy { targets } => targets.iter_mut().for_each(shift),
            AudioWork::Encode { groups } => groups
                .iter_mut()
                .for_each(|(_, targets)| targets.iter_mut().for_each(shift)),
        }
    }
    for c in &mut plan.copies {
        c.targets.iter_mut().for_each(shift);
    }
}

/// Adds a plan's video: renditions join the one decoder; a copy joins the other copies of
/// the stream (beside the decoder, when another preset encodes it).
fn merge_video(merged: &mut Plan, video: Option<VideoPlan>) -> Result<(), MediaError> {
    let Some(video) = video else {
        return Ok(());
    };
    let Some(into) = &mut merged.video else {
        merged.video = Some(video);
        return Ok(());
    };
    if into.input != video.input {
        return Err(MediaError::Internal(format!(
            "presets chose different video streams (#{} and #{})",
            into.input, video.input
        )));
    }
    let input = video.input;
    match (&mut into.work, video.work) {
        (
            VideoWork::Encode { renditions, .. },
            VideoWork::Encode {
                renditions: more, ..
            },
        ) => {
            renditions.extend(more);
        }
        (VideoWork::Copy { targets }, VideoWork::Copy { targets: more }) => targets.extend(more),
        (VideoWork::Encode { .. }, VideoWork::Copy { targets }) => {
            add_copy(&mut merged.copies, CopyPlan { input, targets });
        }
        (VideoWork::Copy { targets }, encode @ VideoWork::Encode { .. }) => {
            let targets = std::mem::take(targets);
            into.work = encode;
            add_copy(&mut merged.copies, CopyPlan { input, targets });
        }
    }
    Ok(())
}

/// Adds one audio stream's plan: encoder groups with the same settings (loudness included)
/// and the same header placement share their encoder; copies join the stream's other copies.
fn merge_audio(merged: &mut Plan, audio: AudioPlan) {
    let outputs = &merged.outputs;
    let Some(into) = merged.audio.iter_mut().find(|a| a.input == audio.input) else {
        merged.audio.push(audio);
        return;
    };
    let input = audio.input;
    match (&mut into.work, audio.work) {
        (AudioWork::Encode { groups }, AudioWork::Encode { groups: more }) => {
            for (spec, targets) in more {
                let header = global_header(outputs, &targets);
                match groups
                    .iter_mut()
                    .find(|(s, t)| *s == spec && global_header(outputs, t) == header)
                {
                    Some((_, shared)) => shared.extend(targets),
                    None => groups.push((spec, targets)),
                }
            }
        }
        (AudioWork::Copy { targets }, AudioWork::Copy { targets: more }) => targets.extend(more),
        (AudioWork::Encode { .. }, AudioWork::Copy { targets }) => {
            add_copy(&mut merged.copies, CopyPlan { input, targets });
        }
        (AudioWork::Copy { targets }, encode @ AudioWork::Encode { .. }) => {
            let targets = std::mem::take(targets);
            into.work = encode;
            add_copy(&mut merged.copies, CopyPlan { input, targets });
        }
    }
}

/// Whether the outputs `targets` go to want codec headers out of band.
fn global_header(outputs: &[OutputPlan], targets: &[Target]) -> bool {
    targets
        .first()
        .is_some_and(|t| outputs[t.output].global_header)
}

/// Adds copied targets of an input stream, beside its other copies.
fn add_copy(copies: &mut Vec<CopyPlan>, copy: CopyPlan) {
    match copies.iter_mut().find(|c| c.input == copy.input) {
        Some(c) => c.targets.extend(copy.targets),
        None => copies.push(copy),
    }
}
