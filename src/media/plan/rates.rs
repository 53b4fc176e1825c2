//! A video source's frame rates, and the rate grid a rendition's frames are placed on.

use ffmpeg_next as ff;

use crate::media::input::Input;

/// A video stream's frame rates as FFmpeg reports them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SourceRates {
    /// `avg_frame_rate`: frames over time, the rate a viewer sees.
    pub average: Option<ff::Rational>,
    /// `r_frame_rate`: the base rate every timestamp fits on; above the average for a
    /// variable-rate stream.
    pub base: Option<ff::Rational>,
}

impl SourceRates {
    pub(super) fn of(input: &Input, index: usize) -> SourceRates {
        let sane = |r: ff::Rational| {
            (r.numerator() > 0 && r.denominator() > 0 && f64::from(r) < 1000.0).then_some(r)
        };
        match input.ctx.stream(index) {
            Some(s) => SourceRates {
                average: sane(s.avg_frame_rate()),
                base: sane(s.rate()),
            },
            None => SourceRates::default(),
        }
    }
}

/// The grid a rendition's frames go on ([`RenditionPlan::grid`]). A cap applies when the
/// source's real rate — its average, not the base rate a variable-rate stream's timestamps
/// are written in — is above it, or is unknown: frames are only ever dropped onto the cap's
/// grid, so capping an unknown rate cannot add any. Otherwise a constant-rate output gets the
/// base rate, on which every source frame has a tick of its own.
///
/// [`RenditionPlan::grid`]: super::RenditionPlan::grid
pub(super) fn frame_grid(
    cap: Option<ff::Rational>,
    rates: SourceRates,
    constant_rate: bool,
) -> Option<ff::Rational> {
    let capped = match (cap, rates.average) {
        (Some(c), Some(avg)) if f64::from(avg) > f64::from(c) * 1.001 => Some(c),
        (Some(c), None) => Some(c),
        _ => None,
    };
    capped.or_else(|| {
        constant_rate.then(|| {
            rates
                .base
                .or(rates.average)
                .unwrap_or(ff::Rational::new(25, 1))
        })
    })
}

pub(super) fn f64_to_rational(v: f64) -> ff::Rational {
    // Common NTSC rates keep their exact form.
    for (num, den) in [(24000, 1001), (30000, 1001), (60000, 1001)] {
        if (v - f64::from(num) / f64::from(den)).abs() < 0.005 {
            return ff::Rational::new(num, den);
        }
    }
    if (v - v.round()).abs() < 1e-9 {
        return ff::Rational::new(v.round() as i32, 1);
    }
    ff::Rational::new((v * 1000.0).round() as i32, 1000).reduce()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(num: i32, den: i32) -> ff::Rational {
        ff::Rational::new(num, den)
    }

    fn rates(average: Option<ff::Rational>, base: Option<ff::Rational>) -> SourceRates {
        SourceRates { average, base }
    }

    #[test]
    fn a_cap_applies_only_when_the_real_rate_is_above_it() {
        let cap = Some(r(60, 1));
        // Variable frame rate: timestamps on a 120 fps base, 45 fps on average. Capping at
        // 60 would only pad it with duplicates.
        assert_eq!(
            frame_grid(cap, rates(Some(r(45, 1)), Some(r(120, 1))), false),
            None
        );
        assert_eq!(
            frame_grid(cap, rates(Some(r(60, 1)), Some(r(60, 1))), false),
            None
        );
        assert_eq!(
            frame_grid(cap, rates(Some(r(60000, 1001)), None), false),
            None,
            "59.94 is within the cap"
        );
        assert_eq!(
            frame_grid(Some(r(30, 1)), rates(Some(r(50, 1)), Some(r(50, 1))), false),
            Some(r(30, 1))
        );
        assert_eq!(frame_grid(cap, rates(None, Some(r(120, 1))), false), cap);
        assert_eq!(frame_grid(None, rates(Some(r(120, 1)), None), false), None);
    }

    #[test]
    fn constant_rate_outputs_take_the_base_rate_unless_capped() {
        let vfr = rates(Some(r(45, 1)), Some(r(120, 1)));
        assert_eq!(frame_grid(None, vfr, true), Some(r(120, 1)));
        assert_eq!(frame_grid(Some(r(60, 1)), vfr, true), Some(r(120, 1)));
        assert_eq!(
            frame_grid(Some(r(30, 1)), vfr, true),
            Some(r(30, 1)),
            "a cap below the average still applies"
        );
        assert_eq!(frame_grid(None, rates(None, None), true), Some(r(25, 1)));
    }
}
