//! What the engine's check found of each output (`media::verify`), put on the published
//! object that stands for that output, so the job carries it.

use std::path::Path;

use crate::job::{OutputChecked, OutputObject};
use crate::media::TranscodeReport;

/// Puts each check of `report` on the object whose key `key_of` its path has.
pub(super) fn attach(
    published: &mut [OutputObject],
    report: &TranscodeReport,
    key_of: impl Fn(&Path) -> String,
) {
    for check in &report.checks {
        let key = key_of(&check.path);
        if let Some(object) = published.iter_mut().find(|o| o.key == key) {
            object.check = Some(OutputChecked {
                duration_seconds: check.duration_seconds,
                streams: check.streams.clone(),
                files: check.files,
                input_damage: report.input_damage,
                quality: check.quality.clone(),
                loudness: check.loudness.clone(),
            });
        }
    }
}
