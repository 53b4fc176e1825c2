//! Rate control, as `[video]` and each HLS rendition write it: crf or quality on the codec's
//! scale, a target bit rate, and a VBV cap.

use super::check::Check;
use crate::preset::codecs::{QualityScale, VideoCodec};
use crate::preset::spec::Bitrate;
use crate::preset::{PresetError, RateControl};

/// The rate-control fields of one section, as written in the file.
pub(super) struct RateFields<'a> {
    pub crf: Option<i64>,
    pub quality: Option<i64>,
    pub bitrate: &'a Option<Bitrate>,
    pub max_bitrate: &'a Option<Bitrate>,
    pub buffer_size: &'a Option<Bitrate>,
}

/// The rate control `section` asks of `codec`: each field on its own, then the fields together.
pub(super) fn rate(
    c: &Check,
    section: &str,
    codec: VideoCodec,
    fields: RateFields,
) -> Result<RateControl, PresetError> {
    let rate = RateControl {
        crf: crf(c, section, codec, fields.crf)?,
        quality: quality(c, section, codec, fields.quality)?,
        bitrate: c.bitrate(&format!("{section}.bitrate"), fields.bitrate)?,
        max_bitrate: c.bitrate(&format!("{section}.max_bitrate"), fields.max_bitrate)?,
        buffer_size: c.bitrate(&format!("{section}.buffer_size"), fields.buffer_size)?,
    };
    fits_together(c, section, codec, &rate)?;
    Ok(rate)
}

/// `crf`, for codecs with a constant-rate-factor scale, within that scale.
fn crf(
    c: &Check,
    section: &str,
    codec: VideoCodec,
    crf: Option<i64>,
) -> Result<Option<u32>, PresetError> {
    match (crf, codec.quality()) {
        (None, _) => Ok(None),
        (Some(_), QualityScale::Qscale) => Err(c.err(
            &format!("{section}.crf"),
            format!("{} has no crf; use quality (1-31) or bitrate", codec.name()),
        )),
        (Some(v), QualityScale::Crf(lo, hi)) => c.int_in(
            &format!("{section}.crf"),
            Some(v),
            i64::from(lo),
            i64::from(hi),
        ),
    }
}

/// `quality`, for codecs with a fixed quantiser scale, from 1 to 31.
fn quality(
    c: &Check,
    section: &str,
    codec: VideoCodec,
    quality: Option<i64>,
) -> Result<Option<u32>, PresetError> {
    match (quality, codec.quality()) {
        (None, _) => Ok(None),
        (Some(v), QualityScale::Qscale) => c.int_in(&format!("{section}.quality"), Some(v), 1, 31),
        (Some(_), QualityScale::Crf(..)) => Err(c.err(
            &format!("{section}.quality"),
            format!("{} uses crf, not quality", codec.name()),
        )),
    }
}

/// The rules across fields: crf or bitrate (both only for libvpx, which caps a crf with the
/// bitrate), a VBV cap as max_bitrate with buffer_size, and a cap not below the target.
fn fits_together(
    c: &Check,
    section: &str,
    codec: VideoCodec,
    rate: &RateControl,
) -> Result<(), PresetError> {
    if rate.crf.is_some()
        && rate.bitrate.is_some()
        && codec != VideoCodec::Vp9
        && codec != VideoCodec::Vp8
    {
        return Err(c.err(
            section,
            "set crf or bitrate, not both (cap a crf with max_bitrate)",
        ));
    }
    if rate.max_bitrate.is_some() != rate.buffer_size.is_some() {
        return Err(c.err(section, "max_bitrate and buffer_size go together"));
    }
    if let (Some(b), Some(m)) = (rate.bitrate, rate.max_bitrate)
        && m < b
    {
        return Err(c.err(
            &format!("{section}.max_bitrate"),
            "must not be below bitrate",
        ));
    }
    Ok(())
}
