//! HDR pictures: which pictures are HDR (a PQ or HLG transfer, said by the frames or, where
//! they say nothing, by the stream), the filters that tone-map them to BT.709 SDR or tag the
//! ones kept HDR, and the mastering-display and light-level metadata a kept picture carries
//! on to its encoder and container (decision 0077). Pure but for reading a frame's tags.

use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use super::ffi::{self, ContentLight, MasteringDisplay};
use crate::preset::HdrMode;

/// The transfer functions that make a picture HDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HdrTransfer {
    /// SMPTE ST 2084, the perceptual quantizer: HDR10, HDR10+, Dolby Vision's base layer.
    Pq,
    /// ARIB STD-B67, hybrid log-gamma: broadcast HDR.
    Hlg,
}

impl HdrTransfer {
    /// From FFmpeg's (and ffprobe's) name for a transfer.
    pub fn from_name(name: &str) -> Option<HdrTransfer> {
        match name {
            "smpte2084" => Some(HdrTransfer::Pq),
            "arib-std-b67" => Some(HdrTransfer::Hlg),
            _ => None,
        }
    }

    /// FFmpeg's name, which zscale and setparams take too.
    pub fn name(self) -> &'static str {
        match self {
            HdrTransfer::Pq => "smpte2084",
            HdrTransfer::Hlg => "arib-std-b67",
        }
    }

    /// How people call it: "PQ" or "HLG".
    pub fn label(self) -> &'static str {
        match self {
            HdrTransfer::Pq => "PQ",
            HdrTransfer::Hlg => "HLG",
        }
    }
}

/// Primaries and matrices zscale converts from; anything else is taken as BT.2020's.
const PRIMARIES: &[&str] = &[
    "bt2020",
    "bt709",
    "smpte432",
    "smpte431",
    "smpte170m",
    "bt470bg",
];
const MATRICES: &[&str] = &[
    "bt2020nc",
    "bt2020c",
    "bt709",
    "ictcp",
    "smpte170m",
    "bt470bg",
];

/// How an HDR picture is coded, in the names FFmpeg, ffprobe, zscale and setparams share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HdrColour {
    pub transfer: HdrTransfer,
    pub primaries: String,
    pub matrix: String,
    /// "tv" (limited) or "pc" (full).
    pub range: String,
}

/// A picture's colour tags as names; None where it leaves one unspecified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tags<'a> {
    pub transfer: Option<&'a str>,
    pub primaries: Option<&'a str>,
    pub matrix: Option<&'a str>,
    pub range: Option<&'a str>,
}

impl Tags<'static> {
    /// A decoded frame's tags.
    pub fn of(frame: &ff::frame::Video) -> Tags<'static> {
        let said = |n: Option<&'static str>| n.filter(|n| !matches!(*n, "unknown" | "reserved"));
        Tags {
            transfer: said(frame.color_transfer_characteristic().name()),
            primaries: said(frame.color_primaries().name()),
            matrix: said(frame.color_space().name()),
            range: said(frame.color_range().name()),
        }
    }
}

impl HdrColour {
    /// The colour of pictures tagged `tags`, when their transfer is PQ or HLG. Primaries and
    /// matrix that are unspecified (or ones zscale cannot convert) are taken as BT.2020's,
    /// which is what HDR video uses, and an unspecified range as limited.
    pub fn from_tags(tags: &Tags) -> Option<HdrColour> {
        let transfer = HdrTransfer::from_name(tags.transfer?)?;
        let pick = |name: Option<&str>, known: &[&str]| {
            name.filter(|n| known.contains(n))
                .unwrap_or(known[0])
                .to_string()
        };
        Some(HdrColour {
            transfer,
            primaries: pick(tags.primaries, PRIMARIES),
            matrix: pick(tags.matrix, MATRICES),
            range: pick(tags.range, &["tv", "pc"]),
        })
    }

    /// The colour of a decoded frame: its own tags, and where its transfer is unspecified,
    /// the stream's (`stream`: what the container or the codec headers said). A frame that
    /// names a transfer of its own is taken at its word.
    pub fn of_frame(frame: &ff::frame::Video, stream: Option<&HdrColour>) -> Option<HdrColour> {
        let tags = Tags::of(frame);
        match (tags.transfer, stream) {
            (Some(_), _) => HdrColour::from_tags(&tags),
            (None, Some(s)) => HdrColour::from_tags(&Tags {
                transfer: Some(s.transfer.name()),
                primaries: tags.primaries.or(Some(&s.primaries)),
                matrix: tags.matrix.or(Some(&s.matrix)),
                range: tags.range.or(Some(&s.range)),
            }),
            (None, None) => None,
        }
    }

    /// The filters that turn such pictures into BT.709 SDR. zscale takes the picture to
    /// linear light with 100 cd/m² as 1.0 (its input described explicitly, since frames
    /// may not say), converts the primaries to BT.709 in 32-bit float, `tonemap` compresses
    /// what lies above SDR white with Möbius (the identity up to 30 % of it, then a smooth
    /// roll-off to the peak the frames' light-level or mastering metadata give, or
    /// 1,000 cd/m²), keeping saturation, and zscale applies BT.709's transfer and matrix in
    /// limited range and tags the frames so, which the encoder then writes. The result is
    /// 10-bit 4:4:4, which every rendition's scaler takes to its own size and format.
    pub fn tonemap_chain(&self) -> String {
        format!(
            "zscale=tin={t}:pin={p}:min={m}:rin={r}:t=linear:npl=100:p={p},format=gbrpf32le,\
             zscale=p=bt709,tonemap=tonemap=mobius:desat=0,zscale=t=bt709:m=bt709:r=tv,\
             format=yuv444p10le",
            t = self.transfer.name(),
            p = self.primaries,
            m = self.matrix,
            r = self.range,
        )
    }

    /// The filter that tags pictures with this colour (kept HDR whose frames do not say).
    pub fn tag_chain(&self) -> String {
        format!(
            "setparams=color_trc={}:color_primaries={}:colorspace={}:range={}",
            self.transfer.name(),
            self.primaries,
            self.matrix,
            self.range
        )
    }
}

/// Whether a picture tone-mapping is done once, before the renditions' scalers: when every
/// rendition tone-maps (there is one at least).
pub(crate) fn tonemap_once(modes: impl IntoIterator<Item = HdrMode>) -> bool {
    let mut any = false;
    for mode in modes {
        if mode != HdrMode::Tonemap {
            return false;
        }
        any = true;
    }
    any
}

/// The filters a rendition puts before its scaler, for a picture of `frame`'s colour
/// (`stream`: what the stream said): a tone map, a tag for kept HDR whose frames do not say,
/// or none (an SDR picture, or one already tone-mapped).
pub(crate) fn rendition_filters(
    mode: HdrMode,
    frame: &ff::frame::Video,
    stream: Option<&HdrColour>,
) -> Option<String> {
    match mode {
        HdrMode::Tonemap => HdrColour::of_frame(frame, stream).map(|c| c.tonemap_chain()),
        HdrMode::Keep if Tags::of(frame).transfer.is_none() => stream.map(HdrColour::tag_chain),
        HdrMode::Keep => None,
    }
}

/// The same, decided from the stream alone (the equivalent command line's filters).
pub(crate) fn planned_filters(mode: HdrMode, stream: Option<&HdrColour>) -> Option<String> {
    let s = stream?;
    Some(match mode {
        HdrMode::Tonemap => s.tonemap_chain(),
        HdrMode::Keep => s.tag_chain(),
    })
}

/// What an HDR picture says about the display it was graded on and its brightness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HdrMetadata {
    pub mastering: Option<MasteringDisplay>,
    pub light: Option<ContentLight>,
}

impl HdrMetadata {
    /// The metadata a kept HDR frame carries (nothing for an SDR or tone-mapped one).
    pub fn of_frame(frame: &ff::frame::Video) -> HdrMetadata {
        let hdr = Tags::of(frame)
            .transfer
            .and_then(HdrTransfer::from_name)
            .is_some();
        if !hdr {
            return HdrMetadata::default();
        }
        HdrMetadata {
            mastering: ffi::frame_mastering_display(frame),
            light: ffi::frame_content_light(frame),
        }
    }

    /// x265's spelling (`master-display=G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min):max-cll=C,F`,
    /// chromaticities in 0.00002 and luminance in 0.0001 cd/m² steps), or None when there is
    /// nothing to say. libx265 in this FFmpeg does not read the frames' side data itself.
    pub fn x265_params(&self) -> Option<String> {
        let mut params = Vec::new();
        if let Some(m) = &self.mastering {
            let xy =
                |p: [(i32, i32); 2]| format!("({},{})", units(p[0], 50_000), units(p[1], 50_000));
            let [r, g, b] = m.primaries;
            params.push(format!(
                "master-display=G{}B{}R{}WP{}L({},{})",
                xy(g),
                xy(b),
                xy(r),
                xy(m.white_point),
                units(m.max_luminance, 10_000),
                units(m.min_luminance, 10_000),
            ));
        }
        if let Some(l) = &self.light {
            params.push(format!("max-cll={},{}", l.max_cll, l.max_fall));
        }
        (!params.is_empty()).then(|| params.join(":"))
    }
}

/// A rational in steps of 1/`per`, rounded.
fn units((num, den): (i32, i32), per: i64) -> i64 {
    if den == 0 {
        return 0;
    }
    (i64::from(num) * per + i64::from(den) / 2).div_euclid(i64::from(den))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags<'a>(t: &'a str, p: Option<&'a str>, m: Option<&'a str>) -> Tags<'a> {
        Tags {
            transfer: Some(t),
            primaries: p,
            matrix: m,
            range: None,
        }
    }

    #[test]
    fn only_pq_and_hlg_are_hdr() {
        assert!(HdrColour::from_tags(&tags("bt709", None, None)).is_none());
        assert!(HdrColour::from_tags(&tags("bt2020-10", Some("bt2020"), None)).is_none());
        assert!(HdrColour::from_tags(&Tags::default()).is_none());
        let pq = HdrColour::from_tags(&tags("smpte2084", Some("bt2020"), Some("bt2020nc")));
        assert_eq!(pq.map(|c| c.transfer), Some(HdrTransfer::Pq));
    }

    #[test]
    fn what_hdr_pictures_leave_out_is_taken_as_bt2020_limited() {
        let c = HdrColour::from_tags(&tags("arib-std-b67", None, Some("gbr"))).unwrap();
        assert_eq!(
            (c.primaries.as_str(), c.matrix.as_str(), c.range.as_str()),
            ("bt2020", "bt2020nc", "tv")
        );
    }

    #[test]
    fn the_tone_map_names_its_input_and_ends_in_bt709() {
        let c = HdrColour::from_tags(&tags("arib-std-b67", Some("bt2020"), None)).unwrap();
        let chain = c.tonemap_chain();
        assert!(
            chain.starts_with(
                "zscale=tin=arib-std-b67:pin=bt2020:min=bt2020nc:rin=tv:t=linear:npl=100:p=bt2020,"
            ),
            "{chain}"
        );
        assert!(chain.contains("tonemap=tonemap=mobius:desat=0"), "{chain}");
        assert!(
            chain.ends_with("zscale=t=bt709:m=bt709:r=tv,format=yuv444p10le"),
            "{chain}"
        );
        assert_eq!(
            c.tag_chain(),
            "setparams=color_trc=arib-std-b67:color_primaries=bt2020:colorspace=bt2020nc:range=tv"
        );
    }

    #[test]
    fn the_tone_map_runs_once_only_when_every_rendition_wants_it() {
        use HdrMode::{Keep, Tonemap};
        assert!(tonemap_once([Tonemap, Tonemap, Tonemap]));
        assert!(!tonemap_once([Tonemap, Keep]));
        assert!(!tonemap_once([]));
    }

    #[test]
    fn the_plan_alone_decides_the_command_lines_filters() {
        let pq = HdrColour::from_tags(&tags("smpte2084", None, None));
        assert!(planned_filters(HdrMode::Tonemap, None).is_none());
        assert!(planned_filters(HdrMode::Keep, None).is_none());
        let t = planned_filters(HdrMode::Tonemap, pq.as_ref()).unwrap();
        assert!(t.contains("tin=smpte2084"), "{t}");
        let k = planned_filters(HdrMode::Keep, pq.as_ref()).unwrap();
        assert!(k.starts_with("setparams=color_trc=smpte2084"), "{k}");
    }

    fn frame(transfer: ff::color::TransferCharacteristic) -> ff::frame::Video {
        let mut f = ff::frame::Video::new(ff::format::Pixel::YUV420P10LE, 16, 16);
        f.set_color_transfer_characteristic(transfer);
        f
    }

    #[test]
    fn frames_that_say_nothing_are_taken_as_the_stream_says() {
        use ff::color::TransferCharacteristic as T;
        let pq = HdrColour::from_tags(&tags("smpte2084", Some("bt2020"), Some("bt2020nc")));
        let untagged = frame(T::Unspecified);
        let c = HdrColour::of_frame(&untagged, pq.as_ref()).unwrap();
        assert_eq!(c.transfer, HdrTransfer::Pq);
        assert!(HdrColour::of_frame(&untagged, None).is_none());
        // A frame that names its transfer is taken at its word, either way.
        assert!(HdrColour::of_frame(&frame(T::BT709), pq.as_ref()).is_none());
        let hlg = HdrColour::of_frame(&frame(T::ARIB_STD_B67), None).unwrap();
        assert_eq!(hlg.transfer, HdrTransfer::Hlg);
        // Kept HDR is tagged only where the frames do not say.
        assert!(rendition_filters(HdrMode::Keep, &untagged, pq.as_ref()).is_some());
        assert!(rendition_filters(HdrMode::Keep, &frame(T::SMPTE2084), pq.as_ref()).is_none());
        assert!(rendition_filters(HdrMode::Tonemap, &frame(T::BT709), pq.as_ref()).is_none());
    }

    #[test]
    fn x265_takes_the_metadata_in_its_own_units() {
        // The usual HDR10 master: P3 primaries in D65, 1000 cd/m² peak, 0.0001 black.
        let m = MasteringDisplay {
            primaries: [
                [(34_000, 50_000), (16_000, 50_000)],
                [(13_250, 50_000), (34_500, 50_000)],
                [(7_500, 50_000), (3_000, 50_000)],
            ],
            white_point: [(15_635, 50_000), (16_450, 50_000)],
            min_luminance: (1, 10_000),
            max_luminance: (1_000, 1),
        };
        let meta = HdrMetadata {
            mastering: Some(m),
            light: Some(ContentLight {
                max_cll: 1000,
                max_fall: 400,
            }),
        };
        assert_eq!(
            meta.x265_params().unwrap(),
            "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)\
             L(10000000,1):max-cll=1000,400"
        );
        assert_eq!(HdrMetadata::default().x265_params(), None);
    }
}
