//! FFmpeg filter graphs between a source buffer and a sink: built from the first frame's
//! real properties (not the container's claims), fed frames, drained of filtered frames.

use ffmpeg_next as ff;

use super::error::{MediaError, with_detail};
use super::ffi;

pub(crate) struct Graph {
    graph: ff::filter::Graph,
    description: String,
}

fn rational(r: ff::Rational) -> String {
    format!("{}/{}", r.numerator(), r.denominator().max(1))
}

impl Graph {
    /// A video graph for frames shaped like `first`, whose timestamps are in `time_base`.
    pub fn video(
        first: &ff::frame::Video,
        time_base: ff::Rational,
        frame_rate: Option<ff::Rational>,
        chain: &str,
    ) -> Result<Graph, MediaError> {
        let sar = first.aspect_ratio();
        let sar = if sar.numerator() > 0 && sar.denominator() > 0 {
            sar
        } else {
            ff::Rational::new(1, 1)
        };
        let pix: ff::ffi::AVPixelFormat = first.format().into();
        let mut args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={}:pixel_aspect={}",
            first.width(),
            first.height(),
            pix as i32,
            rational(time_base),
            rational(sar),
        );
        if let Some(fr) = frame_rate.filter(|r| r.numerator() > 0 && r.denominator() > 0) {
            args.push_str(&format!(":frame_rate={}", rational(fr)));
        }
        Self::build("buffer", &args, "buffersink", chain)
    }

    /// An audio graph for frames shaped like `first`, whose timestamps are in `time_base`;
    /// `frame_size` makes the sink emit frames of exactly that many samples.
    pub fn audio(
        first: &ff::frame::Audio,
        time_base: ff::Rational,
        chain: &str,
        frame_size: Option<u32>,
    ) -> Result<Graph, MediaError> {
        let args = format!(
            "time_base={}:sample_rate={}:sample_fmt={}:channel_layout={}",
            rational(time_base),
            first.rate(),
            first.format().name(),
            ffi::frame_channel_layout(first),
        );
        let mut g = Self::build("abuffer", &args, "abuffersink", chain)?;
        if let Some(n) = frame_size
            && let Some(mut sink) = g.graph.get("out")
        {
            ffi::buffersink_set_frame_size(&mut sink, n);
        }
        Ok(g)
    }

    fn build(source: &str, args: &str, sink: &str, chain: &str) -> Result<Graph, MediaError> {
        let description = chain.to_string();
        let mark = ffi::log_mark();
        let fail = |e: ff::Error| MediaError::Filter {
            graph: description.clone(),
            reason: with_detail(&e, ffi::errors_since(mark)),
        };
        let missing = |name: &str| MediaError::Filter {
            graph: description.clone(),
            reason: format!("this FFmpeg build has no '{name}' filter"),
        };
        let mut graph = ff::filter::Graph::new();
        let src = ff::filter::find(source).ok_or_else(|| missing(source))?;
        let dst = ff::filter::find(sink).ok_or_else(|| missing(sink))?;
        graph.add(&src, "in", args).map_err(fail)?;
        graph.add(&dst, "out", "").map_err(fail)?;
        graph
            .output("in", 0)
            .and_then(|p| p.input("out", 0))
            .and_then(|p| p.parse(chain))
            .map_err(fail)?;
        graph.validate().map_err(fail)?;
        Ok(Graph { graph, description })
    }

    fn error(&self, e: ff::Error, mark: u64) -> MediaError {
        MediaError::Filter {
            graph: self.description.clone(),
            reason: with_detail(&e, ffi::errors_since(mark)),
        }
    }

    /// Feeds a frame in; its data is moved into the graph.
    pub fn push(&mut self, frame: &ff::Frame) -> Result<(), MediaError> {
        let mark = ffi::log_mark();
        let Some(mut src) = self.graph.get("in") else {
            return Ok(());
        };
        src.source().add(frame).map_err(|e| self.error(e, mark))
    }

    /// Signals the end of input so the graph flushes what it holds. `end_pts`, the time the
    /// last frame ends, lets rate filters (`fps`) keep that frame.
    pub fn finish(&mut self, end_pts: Option<i64>) -> Result<(), MediaError> {
        let mark = ffi::log_mark();
        let Some(mut src) = self.graph.get("in") else {
            return Ok(());
        };
        let mut source = src.source();
        match end_pts {
            Some(pts) => source.close(pts),
            None => source.flush(),
        }
        .map_err(|e| self.error(e, mark))
    }

    /// Takes the next filtered frame into `out`; false when none is ready (or at the end).
    pub fn pull(&mut self, out: &mut ff::Frame) -> Result<bool, MediaError> {
        let mark = ffi::log_mark();
        let Some(mut sink) = self.graph.get("out") else {
            return Ok(false);
        };
        match sink.sink().frame(out) {
            Ok(()) => Ok(true),
            Err(ff::Error::Eof) => Ok(false),
            Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => Ok(false),
            Err(e) => Err(self.error(e, mark)),
        }
    }

    /// The time base of the frames coming out.
    pub fn output_time_base(&mut self) -> ff::Rational {
        self.graph
            .get("out")
            .map_or(ff::Rational::new(1, 1), |mut s| s.sink().time_base())
    }

    /// The frame rate of the frames coming out, when the graph knows it.
    pub fn output_frame_rate(&mut self) -> Option<ff::Rational> {
        let mut sink = self.graph.get("out")?;
        let r = ffi::buffersink_frame_rate(&mut sink);
        (r.numerator() > 0 && r.denominator() > 0).then_some(r)
    }
}
