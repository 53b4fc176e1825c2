//! FFmpeg filter graphs between a source buffer and a sink: built from a real frame's
//! properties (not the container's claims), fed frames, drained of filtered frames. A graph
//! knows the shape it was built for, so a stream whose frames change shape mid-stream (size,
//! pixel format, sample rate, channel layout) gets a new graph, as the command line
//! reconfigures its filters, instead of a filter misreading the new frames.

use ffmpeg_next as ff;

use super::error::{MediaError, with_detail};
use super::ffi;

pub(crate) struct Graph {
    graph: ff::filter::Graph,
    description: String,
    input: Shape,
}

/// The properties of the frames a graph's source buffer is set up for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Video(VideoShape),
    Audio(AudioShape),
}

/// Video frames' size, pixel format and pixel aspect ratio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VideoShape {
    pub width: u32,
    pub height: u32,
    pub format: ff::format::Pixel,
    pub sar: (i32, i32),
}

impl VideoShape {
    pub fn of(frame: &ff::frame::Video) -> VideoShape {
        let sar = frame.aspect_ratio();
        VideoShape {
            width: frame.width(),
            height: frame.height(),
            format: frame.format(),
            sar: if sar.numerator() > 0 && sar.denominator() > 0 {
                (sar.numerator(), sar.denominator())
            } else {
                (1, 1)
            },
        }
    }
}

/// Audio frames' sample rate, sample format and channel layout ("stereo", "5.1"…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AudioShape {
    pub rate: u32,
    pub format: ff::format::Sample,
    pub layout: String,
}

impl AudioShape {
    pub fn of(frame: &ff::frame::Audio) -> AudioShape {
        AudioShape {
            rate: frame.rate(),
            format: frame.format(),
            layout: ffi::frame_channel_layout(frame),
        }
    }
}

/// A graph of two `buffer` sources, each `(label, arguments)`, and a `buffersink` labelled
/// `out`, joined by `chain` (which names the sources' labels and `[out]`).
fn two_sources(
    sources: &[(&str, String); 2],
    chain: &str,
) -> Result<ff::filter::Graph, MediaError> {
    let mark = ffi::log_mark();
    let fail = |e: ff::Error| MediaError::Filter {
        graph: chain.to_string(),
        reason: with_detail(&e, ffi::errors_since(mark)),
    };
    let (buffer, sink) = match (ff::filter::find("buffer"), ff::filter::find("buffersink")) {
        (Some(b), Some(s)) => (b, s),
        _ => return Err(fail(ff::Error::FilterNotFound)),
    };
    let mut graph = ff::filter::Graph::new();
    for (label, args) in sources {
        graph.add(&buffer, label, args).map_err(fail)?;
    }
    graph.add(&sink, "out", "").map_err(fail)?;
    graph
        .output(sources[0].0, 0)
        .and_then(|p| p.output(sources[1].0, 0))
        .and_then(|p| p.input("out", 0))
        .and_then(|p| p.parse(chain))
        .and_then(|()| graph.validate())
        .map_err(fail)?;
    Ok(graph)
}

/// A `buffer` source's arguments for frames of `shape`.
fn video_args(shape: &VideoShape, time_base: ff::Rational, rate: Option<ff::Rational>) -> String {
    let pix: ff::ffi::AVPixelFormat = shape.format.into();
    let mut args = format!(
        "video_size={}x{}:pix_fmt={}:time_base={}:pixel_aspect={}/{}",
        shape.width,
        shape.height,
        pix as i32,
        rational(time_base),
        shape.sar.0,
        shape.sar.1,
    );
    if let Some(fr) = rate.filter(|r| r.numerator() > 0 && r.denominator() > 0) {
        args.push_str(&format!(":frame_rate={}", rational(fr)));
    }
    args
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
        let shape = VideoShape::of(first);
        let args = video_args(&shape, time_base, frame_rate);
        Self::build("buffer", &args, "buffersink", chain, Shape::Video(shape))
    }

    /// A graph over two video streams, both timed in `time_base`: `chain` reads the frames
    /// of the first (shaped like `main`) as `[main]`, of the second (like `reference`) as
    /// `[ref]`, and ends in `[out]` (a comparison such as `ssim`). Feed each with
    /// [`Graph::push_to`]; pull the results from the sink as usual.
    pub fn video_pair(
        main: &ff::frame::Video,
        reference: &ff::frame::Video,
        time_base: ff::Rational,
        chain: &str,
    ) -> Result<Graph, MediaError> {
        let shape = VideoShape::of(main);
        let sources = [
            ("main", video_args(&shape, time_base, None)),
            (
                "ref",
                video_args(&VideoShape::of(reference), time_base, None),
            ),
        ];
        let graph = two_sources(&sources, chain)?;
        Ok(Graph {
            graph,
            description: chain.to_string(),
            input: Shape::Video(shape),
        })
    }

    /// Feeds a frame to the named source (None: ends that source's input).
    pub fn push_to(&mut self, source: &str, frame: Option<&ff::Frame>) -> Result<(), MediaError> {
        let mark = ffi::log_mark();
        let Some(mut src) = self.graph.get(source) else {
            return Ok(());
        };
        let mut src = src.source();
        match frame {
            Some(f) => src.add(f),
            None => src.flush(),
        }
        .map_err(|e| self.error(e, mark))
    }

    /// A video graph like [`Graph::video`] with a second source holding one still
    /// `picture` (a watermark): `chain` reads the frames as `[in]`, the picture as `[pic]`,
    /// and ends in `[out]`. The picture goes in at once, stamped with `first`'s time, and
    /// its source is closed: filters such as `overlay` keep showing it.
    pub fn video_with_picture(
        first: &ff::frame::Video,
        time_base: ff::Rational,
        frame_rate: Option<ff::Rational>,
        chain: &str,
        picture: &ff::frame::Video,
    ) -> Result<Graph, MediaError> {
        let shape = VideoShape::of(first);
        let sources = [
            ("in", video_args(&shape, time_base, frame_rate)),
            ("pic", video_args(&VideoShape::of(picture), time_base, None)),
        ];
        let mut g = Graph {
            graph: two_sources(&sources, chain)?,
            description: chain.to_string(),
            input: Shape::Video(shape),
        };
        let mut still = picture.clone();
        still.set_pts(first.pts());
        g.push_to("pic", Some(&still))?;
        g.push_to("pic", None)?;
        Ok(g)
    }

    /// An audio graph for frames of `shape` whose timestamps are in `time_base`;
    /// `frame_size` makes the sink emit frames of exactly that many samples.
    pub fn audio(
        shape: &AudioShape,
        time_base: ff::Rational,
        chain: &str,
        frame_size: Option<u32>,
    ) -> Result<Graph, MediaError> {
        let args = format!(
            "time_base={}:sample_rate={}:sample_fmt={}:channel_layout={}",
            rational(time_base),
            shape.rate,
            shape.format.name(),
            shape.layout,
        );
        let mut g = Self::build(
            "abuffer",
            &args,
            "abuffersink",
            chain,
            Shape::Audio(shape.clone()),
        )?;
        if let Some(n) = frame_size
            && let Some(mut sink) = g.graph.get("out")
        {
            ffi::buffersink_set_frame_size(&mut sink, n);
        }
        Ok(g)
    }

    /// Whether a video frame has the shape this graph was built for.
    pub fn accepts_video(&self, frame: &ff::frame::Video) -> bool {
        matches!(&self.input, Shape::Video(v) if *v == VideoShape::of(frame))
    }

    /// Whether audio frames of `shape` are what this graph was built for.
    pub fn accepts_audio(&self, shape: &AudioShape) -> bool {
        matches!(&self.input, Shape::Audio(a) if a == shape)
    }

    fn build(
        source: &str,
        args: &str,
        sink: &str,
        chain: &str,
        input: Shape,
    ) -> Result<Graph, MediaError> {
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
        Ok(Graph {
            graph,
            description,
            input,
        })
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
