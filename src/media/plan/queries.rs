//! What a plan says of itself once made (the renditions and streams each output carries,
//! which outputs are picked pictures) and the changes made to it after planning: a
//! watermark or burnt-in captions on its moving-picture renditions, caption streams.

use std::sync::Arc;

use super::{AudioMember, AudioWork, CaptionPlan, Plan, SlotInfo, Target, VideoPlan, VideoWork};
use crate::media::captions::Track;
use crate::media::probe::ProbeReport;
use crate::media::watermark::Logo;

impl Plan {
    /// Composites `logo` on every moving-picture rendition (not posters or storyboards: a
    /// watermark marks the video).
    pub fn watermark(&mut self, logo: &Arc<Logo>) {
        if let Some(VideoPlan {
            work: VideoWork::Encode { renditions, .. },
            ..
        }) = &mut self.video
        {
            for r in renditions.iter_mut().filter(|r| r.tiles.is_none()) {
                r.logo = Some(logo.clone());
            }
        }
    }

    /// Renders the ASS script at `script` into every moving-picture rendition (burnt-in
    /// captions; not posters or storyboards).
    pub fn burn_in(&mut self, script: &std::path::Path) {
        if let Some(VideoPlan {
            work: VideoWork::Encode { renditions, .. },
            ..
        }) = &mut self.video
        {
            for r in renditions
                .iter_mut()
                .filter(|r| r.tiles.is_none() && r.pick_at.is_none())
            {
                r.burn = Some(script.to_path_buf());
            }
        }
    }

    /// An HLS output of one rendition named `name`, so it is written as a ladder of one,
    /// with a master playlist (which its caption renditions need).
    pub fn as_ladder(&mut self, name: &str) {
        if let [only] = self.outputs.as_mut_slice()
            && only.rendition.is_none()
        {
            only.rendition = Some(name.to_string());
        }
    }

    /// Adds `track` (on the output's timeline) to output file `output` as a text subtitle
    /// stream encoded with `encoder`, after its other streams.
    pub fn caption(&mut self, output: usize, track: Track, encoder: &'static str) {
        let Some(o) = self.outputs.get_mut(output) else {
            return;
        };
        let slot = o.slots.len();
        o.slots.push(SlotInfo {
            language: track.language.clone(),
            default: false,
        });
        self.captions.push(CaptionPlan {
            track,
            encoder,
            target: Target { output, slot },
        });
    }

    /// Per output file, the HLS rendition it carries.
    pub fn renditions(&self) -> Vec<Option<String>> {
        self.outputs.iter().map(|o| o.rendition.clone()).collect()
    }

    /// Per output file, whether it is an alternate audio rendition of an HLS master.
    pub fn audio_members(&self) -> Vec<Option<AudioMember>> {
        self.outputs
            .iter()
            .map(|o| o.audio_member.clone())
            .collect()
    }

    /// Whether output file `output` carries video, and audio (copied streams' kinds read
    /// from `probe`).
    pub fn carries(&self, output: usize, probe: &ProbeReport) -> (bool, bool) {
        let to_it = |t: &Target| t.output == output;
        let mut video = match &self.video {
            Some(VideoPlan {
                work: VideoWork::Encode { renditions, .. },
                ..
            }) => renditions.iter().any(|r| to_it(&r.target)),
            Some(VideoPlan {
                work: VideoWork::Copy { targets },
                ..
            }) => targets.iter().any(to_it),
            None => false,
        };
        let mut audio = self.audio.iter().any(|a| match &a.work {
            AudioWork::Copy { targets } => targets.iter().any(to_it),
            AudioWork::Encode { groups } => groups.iter().any(|(_, t)| t.iter().any(to_it)),
        });
        for c in self.copies.iter().filter(|c| c.targets.iter().any(to_it)) {
            match probe.streams.get(c.input).map(|s| s.kind.as_str()) {
                Some("video") => video = true,
                Some("audio") => audio = true,
                _ => {}
            }
        }
        (video, audio)
    }

    /// The outputs of picked frames (posters beside other outputs, storyboards), whose
    /// pictures' times say nothing of how far the run has got.
    pub fn picked_outputs(&self) -> Vec<usize> {
        match &self.video {
            Some(VideoPlan {
                work: VideoWork::Encode { renditions, .. },
                ..
            }) => renditions
                .iter()
                .filter(|r| r.pick_at.is_some() || r.tiles.is_some())
                .map(|r| r.target.output)
                .collect(),
            _ => Vec::new(),
        }
    }
}
