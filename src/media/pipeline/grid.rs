//! Frame-rate grids: a rendition's frames placed on the ticks of a fixed rate (a preset's
//! cap, or the base rate of a constant-rate output). Each tick gets the frame FFmpeg's `fps`
//! filter would show there — the last one whose timestamp rounds to it — but a tick no frame
//! rounds to stays empty instead of repeating the previous frame. So a cap never raises the
//! frame count, and a gap in the source's timestamps stays a gap (the muxer records the
//! frame as lasting longer) rather than becoming copies to encode.

use ff::Rescale;
use ffmpeg_next as ff;

pub(crate) struct Grid {
    /// One tick, the output time base: 1/rate.
    tick: ff::Rational,
    /// The latest frame and its tick, held until a frame for a later tick arrives.
    pending: Option<(i64, ff::frame::Video)>,
    emitted: bool,
}

impl Grid {
    pub fn new(rate: ff::Rational) -> Grid {
        Grid {
            tick: rate.invert(),
            pending: None,
            emitted: false,
        }
    }

    /// The time base of the frames coming out (one tick).
    pub fn time_base(&self) -> ff::Rational {
        self.tick
    }

    /// Takes a frame whose timestamp is in `time_base`; gives back the previous frame, with
    /// its tick as timestamp, once it is known that no later frame takes its tick.
    pub fn push(
        &mut self,
        frame: ff::frame::Video,
        time_base: ff::Rational,
    ) -> Option<ff::frame::Video> {
        let slot = match frame.pts() {
            Some(pts) => pts.rescale(time_base, self.tick),
            None => self.pending.as_ref().map_or(0, |(s, _)| s + 1),
        };
        match self.pending.replace((slot, frame)) {
            // A later frame for the same tick replaces the earlier, as in the `fps` filter.
            Some((held, _)) if held == slot => None,
            Some((held, previous)) => Some(self.out(held, previous)),
            None => None,
        }
    }

    /// The last frame at the end of the stream (`end_pts`, in `time_base`, is where the last
    /// frame ends). Like the `fps` filter, a frame that rounds onto the tick where the stream
    /// ends is left out, unless it is the only frame.
    pub fn finish(
        &mut self,
        end_pts: Option<i64>,
        time_base: ff::Rational,
    ) -> Option<ff::frame::Video> {
        let (slot, frame) = self.pending.take()?;
        if let Some(end) = end_pts
            && self.emitted
            && slot >= end.rescale(time_base, self.tick)
        {
            return None;
        }
        Some(self.out(slot, frame))
    }

    fn out(&mut self, slot: i64, mut frame: ff::frame::Video) -> ff::frame::Video {
        frame.set_pts(Some(slot));
        self.emitted = true;
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs frames at `times` (in `tb` units, the last one ending at `end`) through a grid
    /// of `rate`; the output timestamps (ticks).
    fn run(rate: (i32, i32), tb: (i32, i32), times: &[i64], end: i64) -> Vec<i64> {
        let (rate, tb) = (
            ff::Rational::new(rate.0, rate.1),
            ff::Rational::new(tb.0, tb.1),
        );
        let mut grid = Grid::new(rate);
        let mut out = Vec::new();
        for &t in times {
            let mut frame = ff::frame::Video::empty();
            frame.set_pts(Some(t));
            out.extend(grid.push(frame, tb).and_then(|f| f.pts()));
        }
        out.extend(grid.finish(Some(end), tb).and_then(|f| f.pts()));
        out
    }

    #[test]
    fn halving_keeps_the_frames_on_the_ticks() {
        // 2 s at 60 fps onto 30: 60 frames, one per tick, as the fps filter gives.
        let times: Vec<i64> = (0..120).collect();
        let out = run((30, 1), (1, 60), &times, 120);
        assert_eq!(out, (0..60).collect::<Vec<_>>());
    }

    #[test]
    fn uneven_ratios_fill_every_tick_once() {
        // 50 fps onto 30: 100 frames become 60.
        let times: Vec<i64> = (0..100).collect();
        assert_eq!(
            run((30, 1), (1, 50), &times, 100),
            (0..60).collect::<Vec<_>>()
        );
    }

    #[test]
    fn sparse_sources_are_never_padded() {
        // Variable rate on a 120 fps base, 45 fps on average (ticks 0, 3, 5 of every 8):
        // under a 60 fps cap every frame has a tick of its own, so all 135 stay.
        let times: Vec<i64> = (0..360).filter(|n| [0, 3, 5].contains(&(n % 8))).collect();
        assert_eq!(times.len(), 135);
        let out = run((60, 1), (1, 120), &times, 360);
        assert_eq!(out.len(), 135);
        assert!(out.windows(2).all(|w| w[0] < w[1]));
        // Under 30 fps, 90: never more than went in, never a tick twice.
        let out = run((30, 1), (1, 120), &times, 360);
        assert_eq!(out.len(), 90);
        assert!(out.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_timestamp_gap_stays_a_gap() {
        // One second at 25 fps, then the clock jumps by 100,000 s for another second.
        let mut times: Vec<i64> = (0..25).collect();
        times.extend((25..50).map(|n| n + 100_000 * 25));
        let out = run((25, 1), (1, 25), &times, 50 + 100_000 * 25);
        assert_eq!(out.len(), 50, "no frame is repeated to fill the gap");
        assert_eq!(out[25], 25 + 100_000 * 25);
    }

    #[test]
    fn a_single_frame_is_kept() {
        assert_eq!(run((30, 1), (1, 60), &[1], 2), vec![1]);
    }
}
