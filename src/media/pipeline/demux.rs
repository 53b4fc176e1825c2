//! The demuxer thread: reads packets in file order, shifts them so the output starts at zero,
//! and hands each to its decoder lane or, for copied streams, straight to the muxers. The
//! stop flag is checked between packets, and every packet's time is held to the run's output
//! limit before anything downstream sees it: the output's timeline is the input's, so an
//! input whose timestamps run far past what it declares fails here, at its first such
//! packet, rather than after encoders or muxers have worked on (or choked on) the jump.

use crossbeam_channel::Sender;
use ffmpeg_next as ff;

use super::Shared;
use super::mux::MuxMsg;
use crate::media::error::{MediaError, with_detail};
use crate::media::ffi;
use crate::media::input::Input;
use crate::media::plan::{Plan, READ_PAST_US};

/// Where the packets of one input stream go.
/// Where one input stream's packets go: to its decoder lane, copied into muxers' slots, or
/// both (one output copies the stream that another encodes); nowhere when both are empty.
#[derive(Default)]
pub(crate) struct Route {
    pub decode: Option<Sender<ff::Packet>>,
    pub copy: Vec<(Sender<MuxMsg>, usize)>,
}

impl Route {
    fn ignored(&self) -> bool {
        self.decode.is_none() && self.copy.is_empty()
    }
}

/// Reads the input until its end, a stop, or every lane gone, routing each packet.
pub(crate) fn run(
    shared: &Shared,
    mut input: Input,
    mut routes: Vec<Route>,
    plan: &Plan,
    seek_us: Option<i64>,
) -> Result<(), MediaError> {
    let start_offset_us = plan.start_offset_us;
    let mut skips = plan.first_packet_skip.clone();
    let offsets: Vec<i64> = input
        .ctx
        .streams()
        .map(|s| rescale(start_offset_us, s.time_base()))
        .collect();
    let time_bases: Vec<ff::Rational> = input.ctx.streams().map(|s| s.time_base()).collect();
    if let Some(target) = seek_us {
        seek(&mut input, target + start_offset_us);
    }
    let mut packet = ff::Packet::empty();
    loop {
        if shared.aborted() || shared.enough() {
            break;
        }
        let mark = ffi::log_mark();
        match packet.read(&mut input.ctx) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            Err(ff::Error::Exit) => break,
            Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => continue,
            Err(e) => {
                return Err(MediaError::Demux {
                    path: input.path.clone(),
                    reason: with_detail(&e, ffi::errors_since(mark)),
                });
            }
        }
        shared.meter.input_pos.store(
            ffi::input_position(&input.ctx),
            std::sync::atomic::Ordering::Relaxed,
        );
        let index = packet.stream();
        let Some(route) = routes.get(index) else {
            continue;
        };
        if route.ignored() {
            continue;
        }
        if let Some(at) = skips.iter().position(|(i, _)| *i == index) {
            ffi::set_skip_samples(&mut packet, skips.swap_remove(at).1);
        }
        to_output_time(
            shared,
            &input,
            &mut packet,
            offsets[index],
            time_bases[index],
        )?;
        let place = plan
            .clip_us
            .map_or(InClip::Inside, |c| in_clip(&packet, time_bases[index], c));
        if place == InClip::WellPast {
            break;
        }
        let taken = std::mem::replace(&mut packet, ff::Packet::empty());
        if !deliver(route, taken, time_bases[index], place == InClip::Inside) {
            // A lane has gone (it failed or finished early): stop feeding it.
            close_route(std::mem::take(&mut routes[index]));
            if routes.iter().all(Route::ignored) {
                break;
            }
        }
    }
    close(routes);
    Ok(())
}

/// Seeks to the keyframe at or before `target` (µs); the decoder skips up to it.
fn seek(input: &mut Input, target: i64) {
    if input.ctx.seek(target, ..target + 1).is_err() {
        tracing::debug!("seek to {target} µs failed; decoding from the start");
    }
}

/// Shifts a packet by the stream's start `offset` and holds its end to the output limit.
fn to_output_time(
    shared: &Shared,
    input: &Input,
    packet: &mut ff::Packet,
    offset: i64,
    time_base: ff::Rational,
) -> Result<(), MediaError> {
    if offset != 0 {
        packet.set_pts(packet.pts().map(|t| t - offset));
        packet.set_dts(packet.dts().map(|t| t - offset));
    }
    if let Some(t) = packet.pts().or(packet.dts()) {
        let end = t.saturating_add(packet.duration().max(0));
        shared
            .limit
            .check(&input.path, end as f64 * f64::from(time_base))?;
    }
    Ok(())
}

/// Where a packet lies against a clip of `clip_us` (output time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InClip {
    Inside,
    /// Before or after it: decoded (the frames around a cut are needed to make its first
    /// ones), not copied.
    Outside,
    /// So far past its end that nothing after it can matter: reading ends.
    WellPast,
}

fn in_clip(packet: &ff::Packet, time_base: ff::Rational, clip_us: i64) -> InClip {
    let Some(t) = packet.pts().or(packet.dts()) else {
        return InClip::Inside;
    };
    let us = rescale_to_us(t, time_base);
    if us > clip_us.saturating_add(READ_PAST_US) {
        InClip::WellPast
    } else if us < 0 || us >= clip_us {
        InClip::Outside
    } else {
        InClip::Inside
    }
}

/// Hands a packet to its decoder lane, and a reference to each muxer it is copied to when
/// `copy` (it lies inside the run's clip); false when a receiver has gone.
fn deliver(route: &Route, packet: ff::Packet, time_base: ff::Rational, copy: bool) -> bool {
    let mut ok = true;
    for (tx, slot) in route.copy.iter().filter(|_| copy) {
        let msg = MuxMsg::Packet {
            slot: *slot,
            packet: ffi::packet_ref(&packet),
            time_base,
        };
        ok &= tx.send(msg).is_ok();
    }
    if let Some(tx) = &route.decode {
        ok &= tx.send(packet).is_ok();
    }
    ok
}

/// Dropping the routes closes every lane's input: they flush and finish. Copied streams'
/// muxers are told each slot has ended.
fn close(routes: Vec<Route>) {
    routes.into_iter().for_each(close_route);
}

fn close_route(route: Route) {
    for (tx, slot) in route.copy {
        let _ = tx.send(MuxMsg::End { slot });
    }
}

fn rescale_to_us(t: i64, tb: ff::Rational) -> i64 {
    use ff::Rescale;
    t.rescale(tb, ff::Rational::new(1, 1_000_000))
}

fn rescale(us: i64, tb: ff::Rational) -> i64 {
    use ff::Rescale;
    if us == 0 || tb.numerator() == 0 {
        return 0;
    }
    us.rescale(ff::Rational::new(1, 1_000_000), tb)
}
