//! Quality figures for a video output: SSIM and PSNR of its pictures against the source's
//! (the same part of it, turned and deinterlaced as the encode was, scaled to the output's
//! size), by FFmpeg's `ssim` and `psnr` filters. One more decode of the source and of the
//! output, after the run, when a job or preset asks (`quality = true`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use ffmpeg_next as ff;

use super::error::MediaError;
use super::geometry::DEINTERLACE;
use super::graph::Graph;
use super::input::{self, Input};
use super::plan::{Plan, VideoPlan, VideoWork};
use super::verify;
use crate::job::Quality;
use crate::preset::Container;
use crate::stop::StopToken;

const MICROS: ff::Rational = ff::Rational(1, 1_000_000);

/// The part of the source an output was made from.
pub(crate) struct Reference<'a> {
    pub source: &'a Path,
    /// Its video stream.
    pub stream: usize,
    /// The source time (µs) the output's first picture was taken at or after.
    pub start_us: i64,
    /// How much of it the output covers (µs), when cut (a clip).
    pub length_us: Option<i64>,
    /// The filters the encode ran before scaling (deinterlace, rotation), if any.
    pub pre: Option<String>,
}

impl<'a> Reference<'a> {
    /// What the outputs of `plan`, read from `source`, were made from; None when the plan
    /// encodes no video.
    pub(crate) fn of(plan: &Plan, source: &'a Path) -> Option<Reference<'a>> {
        let VideoPlan {
            input,
            work:
                VideoWork::Encode {
                    deinterlace,
                    rotation,
                    ..
                },
        } = plan.video.as_ref()?
        else {
            return None;
        };
        let mut pre: Vec<&str> = Vec::new();
        if *deinterlace {
            pre.push(DEINTERLACE);
        }
        pre.extend(rotation.filters());
        Some(Reference {
            source,
            stream: *input,
            start_us: plan.start_offset_us,
            length_us: plan.clip_us.filter(|l| *l < i64::MAX),
            pre: (!pre.is_empty()).then(|| pre.join(",")),
        })
    }
}

/// The figures of one output (`top`, of `container`), per rendition (`renditions`: its
/// files' HLS rendition names, in order): nothing for a picture, a storyboard or no video.
pub(crate) fn measure_output(
    reference: &Reference,
    top: &Path,
    container: Container,
    renditions: &[Option<String>],
    stop: &StopToken,
    compared: &mut dyn FnMut(u64),
) -> Result<Vec<Quality>, MediaError> {
    if container.picture() || container == Container::Storyboard {
        return Ok(Vec::new());
    }
    let runs: Vec<(Vec<PathBuf>, Option<String>)> = if container.segmented() {
        let variants = verify::hls_variants(top)?;
        let names = renditions.iter().cloned().chain(std::iter::repeat(None));
        variants
            .iter()
            .zip(names)
            .map(|(v, name)| verify::hls_segments(v).map(|(segments, _)| (segments, name)))
            .collect::<Result<_, _>>()?
    } else {
        vec![(vec![top.to_path_buf()], None)]
    };
    let mut figures = Vec::new();
    for (files, name) in runs {
        let joined = join_fmp4(&files)?;
        let files = joined.as_ref().map_or(files, |j| vec![j.0.clone()]);
        figures.extend(measure(reference, files, name, stop, compared)?);
    }
    Ok(figures)
}

/// A hidden file that goes when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// CMAF segments (`.m4s`) read only after their init segment: a hidden copy of one
/// variant's init segment and segments joined (one fragmented MP4), beside them; None for
/// segments that read on their own (MPEG-TS).
fn join_fmp4(segments: &[PathBuf]) -> Result<Option<Scratch>, MediaError> {
    let Some(first) = segments
        .first()
        .filter(|f| f.extension().is_some_and(|e| e == "m4s"))
    else {
        return Ok(None);
    };
    let name = first.file_name().unwrap_or_default().to_string_lossy();
    let stem = name.rsplit_once('_').map_or(name.as_ref(), |(s, _)| s);
    let init = first.with_file_name(format!("{stem}_init.mp4"));
    let joined =
        Scratch(first.with_file_name(format!(".{stem}.{}.quality.mp4", std::process::id())));
    let mut bytes = std::fs::read(&init).map_err(|e| MediaError::io(&init, e))?;
    for s in segments {
        bytes.extend(std::fs::read(s).map_err(|e| MediaError::io(s, e))?);
    }
    std::fs::write(&joined.0, bytes).map_err(|e| MediaError::io(&joined.0, e))?;
    Ok(Some(joined))
}

/// SSIM and PSNR of the output made of `files` (one media file, or an HLS variant's
/// segments in order) against `reference`; None when either has no picture.
pub(crate) fn measure(
    reference: &Reference,
    files: Vec<PathBuf>,
    rendition: Option<String>,
    stop: &StopToken,
    compared: &mut dyn FnMut(u64),
) -> Result<Option<Quality>, MediaError> {
    let mut output = Frames::new(files.into(), None, 0, None, stop);
    let mut source = Frames::new(
        VecDeque::from([reference.source.to_path_buf()]),
        Some(reference.stream),
        reference.start_us,
        reference.length_us,
        stop,
    );
    let (Some(first), Some(first_ref)) = (output.next()?, source.next()?) else {
        return Ok(None);
    };
    let chain = compare_chain(&first, reference.pre.as_deref());
    let mut graph = Graph::video_pair(&first, &first_ref, MICROS, &chain)?;
    let mut sums = Sums::default();
    let (mut next_main, mut next_ref) = (Some(first), Some(first_ref));
    // Frames go in in time order, so each comparison has its reference at hand.
    loop {
        let main_first = match (&next_main, &next_ref) {
            (None, _) => break,
            (Some(_), None) => true,
            (Some(m), Some(r)) => m.pts() < r.pts(),
        };
        if main_first {
            graph.push_to("main", next_main.as_deref())?;
            next_main = output.next()?;
        } else {
            graph.push_to("ref", next_ref.as_deref())?;
            next_ref = source.next()?;
            if next_ref.is_none() {
                graph.push_to("ref", None)?;
            }
        }
        let before = sums.frames;
        sums.drain(&mut graph)?;
        if sums.frames / 25 != before / 25 {
            compared(sums.frames);
        }
    }
    graph.push_to("main", None)?;
    if next_ref.is_some() {
        graph.push_to("ref", None)?;
    }
    sums.drain(&mut graph)?;
    Ok(sums.quality(rendition))
}

/// The output's pictures (`[main]`) against the source's (`[ref]`) turned, scaled into the
/// output's size as the encode fitted them, both 8-bit 4:2:0: SSIM, then PSNR.
fn compare_chain(output: &ff::frame::Video, pre: Option<&str>) -> String {
    let (w, h) = (output.width(), output.height());
    let pre = pre.map(|p| format!("{p},")).unwrap_or_default();
    format!(
        "[main]setsar=1,format=yuv420p[m];\
         [ref]{pre}scale={w}:{h}:force_original_aspect_ratio=decrease:flags=bicubic,\
         pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p,split[r1][r2];\
         [m][r1]ssim[s];[s][r2]psnr[out]"
    )
}

/// Per-frame figures added up.
#[derive(Default)]
struct Sums {
    ssim: f64,
    mse: f64,
    frames: u64,
}

impl Sums {
    fn drain(&mut self, graph: &mut Graph) -> Result<(), MediaError> {
        let mut frame = ff::frame::Video::empty();
        while graph.pull(&mut frame)? {
            let meta = frame.metadata();
            let read = |k: &str| meta.get(k).and_then(|v| v.parse::<f64>().ok());
            if let (Some(ssim), Some(mse)) = (read("lavfi.ssim.All"), read("lavfi.psnr.mse_avg")) {
                self.ssim += ssim;
                self.mse += mse;
                self.frames += 1;
            }
        }
        Ok(())
    }

    /// The averages: SSIM over frames, PSNR from the mean squared error over frames (as the
    /// `psnr` filter's own summary), at most 100 dB (identical pictures).
    fn quality(&self, rendition: Option<String>) -> Option<Quality> {
        (self.frames > 0).then(|| {
            let n = self.frames as f64;
            let mse = self.mse / n;
            let psnr = if mse > 0.0 {
                (10.0 * (255.0 * 255.0 / mse).log10()).min(100.0)
            } else {
                100.0
            };
            Quality {
                rendition,
                ssim: self.ssim / n,
                psnr_db: psnr,
                frames: self.frames,
            }
        })
    }
}

/// The decoded pictures of a run of files (their timestamps continuing from one to the
/// next), timed in µs from the first kept picture; for a source, only those from `start_us`
/// for `length_us`.
struct Frames<'a> {
    files: VecDeque<PathBuf>,
    /// The stream to read (None: the best picture stream of each file).
    stream: Option<usize>,
    open: Option<Opened>,
    start_us: i64,
    length_us: Option<i64>,
    first_us: Option<i64>,
    stop: &'a StopToken,
}

struct Opened {
    input: Input,
    decoder: ff::decoder::Video,
    index: usize,
    time_base: ff::Rational,
    at_end: bool,
}

impl<'a> Frames<'a> {
    fn new(
        files: VecDeque<PathBuf>,
        stream: Option<usize>,
        start_us: i64,
        length_us: Option<i64>,
        stop: &'a StopToken,
    ) -> Frames<'a> {
        Frames {
            files,
            stream,
            open: None,
            start_us,
            length_us,
            first_us: None,
            stop,
        }
    }

    /// The next kept picture, timed; None at the end.
    fn next(&mut self) -> Result<Option<ff::frame::Video>, MediaError> {
        loop {
            if self.stop.is_stopped() {
                return Err(MediaError::Stopped);
            }
            let Some(frame) = self.decoded()? else {
                return Ok(None);
            };
            let Some(o) = &self.open else { continue };
            let Some(pts) = frame.timestamp() else {
                continue;
            };
            let us = ff::Rescale::rescale(&pts, o.time_base, MICROS) - self.start_us;
            if us < 0 {
                continue;
            }
            if self.length_us.is_some_and(|l| us >= l) {
                self.files.clear();
                self.open = None;
                return Ok(None);
            }
            let first = *self.first_us.get_or_insert(us);
            let mut frame = frame;
            frame.set_pts(Some(us - first));
            return Ok(Some(frame));
        }
    }

    /// The next decoded picture of the files, opening each in turn.
    fn decoded(&mut self) -> Result<Option<ff::frame::Video>, MediaError> {
        loop {
            if self.open.is_none() {
                let Some(path) = self.files.pop_front() else {
                    return Ok(None);
                };
                self.open = Some(open(&path, self.stream, self.start_us, self.stop)?);
            }
            let Some(o) = self.open.as_mut() else {
                continue;
            };
            let mut frame = ff::frame::Video::empty();
            if o.decoder.receive_frame(&mut frame).is_ok() {
                return Ok(Some(frame));
            }
            if o.at_end {
                self.open = None;
                continue;
            }
            feed(o);
        }
    }
}

/// Reads packets of the picture stream until one goes to the decoder, or sends its end.
fn feed(o: &mut Opened) {
    let mut packet = ff::Packet::empty();
    loop {
        match packet.read(&mut o.input.ctx) {
            Ok(()) if packet.stream() == o.index => {
                let _ = o.decoder.send_packet(&packet);
                return;
            }
            Ok(()) => continue,
            Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => continue,
            Err(_) => {
                let _ = o.decoder.send_eof();
                o.at_end = true;
                return;
            }
        }
    }
}

/// Opens `path`'s picture stream `index` (None: its best) for decoding, from the keyframe
/// before `start_us`.
fn open(
    path: &Path,
    index: Option<usize>,
    start_us: i64,
    stop: &StopToken,
) -> Result<Opened, MediaError> {
    let mut input = input::open(path, stop)?;
    let stream = match index {
        Some(i) => input.ctx.stream(i),
        None => input.ctx.streams().best(ff::media::Type::Video),
    }
    .ok_or_else(|| MediaError::Internal(format!("{}: no picture to compare", path.display())))?;
    let (index, time_base) = (stream.index(), stream.time_base());
    let decoder = ff::codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(|e| MediaError::Decode {
            path: path.to_path_buf(),
            stream: index,
            codec: "video".into(),
            reason: e.to_string(),
        })?;
    if start_us > 0 {
        let _ = input.ctx.seek(start_us, ..start_us + 1);
    }
    Ok(Opened {
        input,
        decoder,
        index,
        time_base,
        at_end: false,
    })
}
