//! Rate control, as `[video]` and each HLS rendition write it: crf or quality on the codec's
//! scale, a target bit rate, and a VBV cap.

use super::check::Check;
use crate::preset::codecs::{QualityScale, VideoCodec};
use crate::preset::spec::Bitrate;
use crate::preset::{PresetError, RateControl};

#[allow(clippy::too_many_arguments)] // one argument per rate-control field of the file
pub(super) fn rate(
    c: &Check,
    section: &str,
    codec: VideoCodec,
    crf: Option<i64>,
    quality: Option<i64>,
    bitrate: &Option<Bitrate>,
    max_bitrate: &Option<Bitrate>,
    buffer_size: &Option<Bitrate>,
) -> Result<RateControl, PresetError> {
    let crf = match (crf, codec.quality()) {
        (None, _) => None,
        (Some(_), QualityScale::Qscale) => {
            return Err(c.err(
                &format!("{section}.crf"),
                format!("{} has no crf; use quality (1-31) or bitrate", codec.name()),
            ));
        }
        (Some(v), QualityScale::Crf(lo, hi)) => c.int_in(
            &format!("{section}.crf"),
            Some(v),
            i64::from(lo),
            i64::from(hi),
        )?,
    };
    let quality = match (quality, codec.quality()) {
        (None, _) => None,
        (Some(v), QualityScale::Qscale) => {
            c.int_in(&format!("{section}.quality"), Some(v), 1, 31)?
        }
        (Some(_), QualityScale::Crf(..)) => {
            return Err(c.err(
                &format!("{section}.quality"),
                format!("{} uses crf, not quality", codec.name()),
            ));
        }
    };
    let bitrate = c.bitrate(&format!("{section}.bitrate"), bitrate)?;
    let max_bitrate = c.bitrate(&format!("{section}.max_bitrate"), max_bitrate)?;
    let buffer_size = c.bitrate(&format!("{section}.buffer_size"), buffer_size)?;
    if crf.is_some() && bitrate.is_some() && codec != VideoCodec::Vp9 && codec != VideoCodec::Vp8 {
        return Err(c.err(
            section,
            "set crf or bitrate, not both (cap a crf with max_bitrate)",
        ));
    }
    if max_bitrate.is_some() != buffer_size.is_some() {
        return Err(c.err(section, "max_bitrate and buffer_size go together"));
    }
    if let (Some(b), Some(m)) = (bitrate, max_bitrate)
        && m < b
    {
        return Err(c.err(
            &format!("{section}.max_bitrate"),
            "must not be below bitrate",
        ));
    }
    Ok(RateControl {
        crf,
        quality,
        bitrate,
        max_bitrate,
        buffer_size,
    })
}
