//! Piecewise-linear interpolation of a response curve with a stated maximum error.
//!
//! Breakpoints are placed greedily from the left: each segment is made as long as its
//! chord stays within the tolerance of the curve, so they crowd where the curvature is
//! large and thin out where the curve is nearly straight. The curve is split at its
//! inflection point (S-curves), so that every segment lies on a piece where the curve is
//! either convex or concave; there the chord error is found exactly, at the point where
//! the curve's slope equals the chord's.

use atlas_core::Curve;

/// Bisection steps for the tangent point and for the segment end (each halves an
/// interval; 80 take any double-precision interval below rounding).
const BISECTION_STEPS: usize = 80;

/// A piecewise-linear interpolant of a curve on `[points[0], points[n]]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pwl {
    /// Breakpoints, increasing.
    pub points: Vec<f64>,
    /// The curve's values at the breakpoints.
    pub values: Vec<f64>,
    /// The largest distance between the curve and the interpolant at any point the
    /// variable can take (on a spend grid, segments between neighbouring grid points
    /// contain no such point and count zero).
    pub max_error: f64,
    /// Leading segments whose order the solver must enforce with binaries: the slopes of
    /// the segments from this index on do not increase, so a maximizing solver fills them
    /// in order by itself (the concave part); the ones before do (the convex part).
    pub ordered_prefix: usize,
}

impl Pwl {
    /// Number of segments.
    pub fn segments(&self) -> usize {
        self.points.len().saturating_sub(1)
    }

    /// Length of segment `k`.
    pub fn length(&self, k: usize) -> f64 {
        self.points[k + 1] - self.points[k]
    }

    /// Slope of segment `k`.
    pub fn slope(&self, k: usize) -> f64 {
        (self.values[k + 1] - self.values[k]) / self.length(k)
    }

    /// The interpolant at `a` (clamped to the range).
    #[cfg(test)]
    pub fn value(&self, a: f64) -> f64 {
        let n = self.points.len();
        if a <= self.points[0] || n == 1 {
            return self.values[0];
        }
        for k in 0..n - 1 {
            if a <= self.points[k + 1] {
                return self.values[k] + self.slope(k) * (a - self.points[k]);
            }
        }
        self.values[n - 1]
    }
}

/// Why no interpolant could be built.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TooManySegments {
    pub segments: usize,
}

/// The inflection point of an S-curve (`hill` with `s > 1`), where it turns from convex
/// to concave; `None` for curves concave everywhere.
pub(crate) fn inflection(curve: &Curve) -> Option<f64> {
    match *curve {
        Curve::Hill { k, s, .. } if s > 1.0 => Some(k * ((s - 1.0) / (s + 1.0)).powf(1.0 / s)),
        _ => None,
    }
}

/// Interpolates `curve` on `[lo, hi]` within `tol` (absolute, in the curve's units).
///
/// With `grid = Some(g)` the variable only takes multiples of `g` (a spend unit without
/// carry-over): breakpoints are then grid points, and when the grid has at most
/// `full_grid` segments every grid point is a breakpoint, which makes the interpolant
/// exact wherever the variable can be. More than `max_segments` segments is an error (a
/// guard against tolerances far below what the curve's range needs).
pub(crate) fn interpolate(
    curve: &Curve,
    lo: f64,
    hi: f64,
    tol: f64,
    grid: Option<f64>,
    full_grid: usize,
    max_segments: usize,
) -> Result<Pwl, TooManySegments> {
    let (lo, hi) = match grid {
        Some(g) => (snap_up(lo, g), snap_down(hi, g).max(snap_up(lo, g))),
        None => (lo, hi.max(lo)),
    };
    let mut points = vec![lo];
    if hi > lo {
        if let Some(g) = grid.filter(|&g| ((hi - lo) / g).round() as usize <= full_grid) {
            let n = ((hi - lo) / g).round() as usize;
            points.extend((1..=n).map(|i| if i == n { hi } else { lo + i as f64 * g }));
        } else {
            // Pieces on which the curvature keeps its sign.
            let mut cuts = vec![lo];
            if let Some(c) = inflection(curve).filter(|&c| c > lo && c < hi) {
                match grid {
                    // Grid points on either side of the inflection: the segment between
                    // them holds no reachable point.
                    Some(g) => {
                        let below = snap_down(c, g).max(lo);
                        let above = snap_up(c, g).min(hi);
                        for p in [below, above] {
                            if p > *cuts.last().unwrap_or(&lo) && p < hi {
                                cuts.push(p);
                            }
                        }
                    }
                    None => cuts.push(c),
                }
            }
            cuts.push(hi);
            for w in cuts.windows(2) {
                let (p0, p1) = (w[0], w[1]);
                if p1 <= p0 {
                    continue;
                }
                let adjacent = grid.is_some_and(|g| ((p1 - p0) / g).round() <= 1.0);
                if adjacent || chord_error(curve, p0, p1) <= tol {
                    points.push(p1);
                    continue;
                }
                let mut p = p0;
                while p < p1 {
                    let q = segment_end(curve, p, p1, tol, grid);
                    points.push(q);
                    p = q;
                    if points.len() > max_segments + 1 {
                        return Err(TooManySegments {
                            segments: points.len() - 1,
                        });
                    }
                }
            }
        }
    }
    let values: Vec<f64> = points.iter().map(|&a| curve.value(a)).collect();
    let max_error = (0..points.len().saturating_sub(1))
        .map(|k| {
            let (p, q) = (points[k], points[k + 1]);
            if grid.is_some_and(|g| ((q - p) / g).round() <= 1.0) {
                0.0
            } else {
                chord_error(curve, p, q)
            }
        })
        .fold(0.0, f64::max);
    let mut pwl = Pwl {
        points,
        values,
        max_error,
        ordered_prefix: 0,
    };
    pwl.ordered_prefix = ordered_prefix(&pwl);
    Ok(pwl)
}

/// The first segment from which the slopes do not increase (beyond rounding).
fn ordered_prefix(pwl: &Pwl) -> usize {
    let n = pwl.segments();
    let mut first = n;
    while first > 1 {
        let (a, b) = (pwl.slope(first - 2), pwl.slope(first - 1));
        // Equal slopes (up to rounding) may be filled in any order at the same value.
        if b > a + 1e-12 * a.abs().max(b.abs()) {
            break;
        }
        first -= 1;
    }
    if n == 0 {
        0
    } else {
        first - 1
    }
}

fn snap_up(v: f64, g: f64) -> f64 {
    // A hair of tolerance: bounds computed in floating point sit a rounding error off
    // their grid point.
    (v / g - 1e-9).ceil() * g
}

fn snap_down(v: f64, g: f64) -> f64 {
    (v / g + 1e-9).floor() * g
}

/// The longest segment from `p` (up to `end`) whose chord stays within `tol`; on a grid,
/// the farthest grid point that does, and at least the next grid point.
fn segment_end(curve: &Curve, p: f64, end: f64, tol: f64, grid: Option<f64>) -> f64 {
    if chord_error(curve, p, end) <= tol {
        return end;
    }
    match grid {
        Some(g) => {
            // Grid steps from p: the error grows with the segment's length on a piece of
            // one curvature sign, so bisect on the number of steps.
            let steps = ((end - p) / g).round() as u64;
            let (mut ok, mut bad) = (1u64, steps);
            while bad - ok > 1 {
                let mid = ok + (bad - ok) / 2;
                if chord_error(curve, p, p + mid as f64 * g) <= tol {
                    ok = mid;
                } else {
                    bad = mid;
                }
            }
            if ok >= steps {
                end
            } else {
                p + ok as f64 * g
            }
        }
        None => {
            let (mut ok, mut bad) = (p, end);
            for _ in 0..BISECTION_STEPS {
                let mid = 0.5 * (ok + bad);
                if mid <= ok || mid >= bad {
                    break;
                }
                if chord_error(curve, p, mid) <= tol {
                    ok = mid;
                } else {
                    bad = mid;
                }
            }
            // Always advance, by at least a relative rounding step.
            let min_step = 1e-12 * (end - p).max(p.abs());
            if ok - p < min_step {
                (p + min_step).min(end)
            } else {
                ok
            }
        }
    }
}

/// The largest distance between `curve` and its chord on `[p, q]`, where the curve keeps
/// one curvature sign: at the point where its slope equals the chord's (found by bisection,
/// the slope being monotone there).
pub(crate) fn chord_error(curve: &Curve, p: f64, q: f64) -> f64 {
    if q <= p {
        return 0.0;
    }
    let (fp, fq) = (curve.value(p), curve.value(q));
    let slope = (fq - fp) / (q - p);
    let gap = |a: f64| (curve.value(a) - (fp + slope * (a - p))).abs();
    // Slope decreasing (concave piece) or increasing (convex piece) between p and q.
    let decreasing = curve.derivative(p) >= curve.derivative(q);
    let (mut a, mut b) = (p, q);
    for _ in 0..BISECTION_STEPS {
        let m = 0.5 * (a + b);
        if m <= a || m >= b {
            break;
        }
        let above = curve.derivative(m) > slope;
        if above == decreasing {
            a = m;
        } else {
            b = m;
        }
    }
    // The maximum sits at the tangent point; the midpoint guards against slopes that are
    // flat to rounding over the whole piece.
    gap(0.5 * (a + b)).max(gap(a)).max(gap(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curves() -> Vec<Curve> {
        vec![
            Curve::Hill {
                beta: 2.0,
                k: 0.3,
                s: 2.5,
            },
            Curve::Hill {
                beta: 1.0,
                k: 0.2,
                s: 1.0,
            },
            Curve::Exponential { beta: 1.5, k: 0.1 },
            Curve::Logistic {
                beta: 1.0,
                lam: 12.0,
            },
            Curve::Log { beta: 0.5, k: 0.05 },
            Curve::Power {
                beta: 1.0,
                alpha: 0.4,
            },
            Curve::Linear { beta: 3.0 },
        ]
    }

    /// Largest distance over a dense sample, for comparison with the stated error.
    fn sampled_error(curve: &Curve, pwl: &Pwl, grid: Option<f64>) -> f64 {
        let (lo, hi) = (pwl.points[0], *pwl.points.last().unwrap());
        let n = 20_000;
        (0..=n)
            .map(|i| {
                let mut a = lo + (hi - lo) * i as f64 / n as f64;
                if let Some(g) = grid {
                    a = (a / g).round() * g;
                }
                (curve.value(a) - pwl.value(a)).abs()
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn error_stays_within_tolerance_and_is_reported() {
        for c in curves() {
            for tol in [1e-2, 1e-3, 1e-5] {
                let pwl = interpolate(&c, 0.0, 1.0, tol, None, 0, 10_000).unwrap();
                let sampled = sampled_error(&c, &pwl, None);
                assert!(
                    pwl.max_error <= tol * (1.0 + 1e-9),
                    "{c:?}: {} > {tol}",
                    pwl.max_error
                );
                assert!(
                    sampled <= pwl.max_error * (1.0 + 1e-6) + 1e-15,
                    "{c:?}: sampled {sampled} above stated {}",
                    pwl.max_error
                );
                // Breakpoints at the curve's values, on the range.
                assert_eq!(pwl.points[0], 0.0);
                assert_eq!(*pwl.points.last().unwrap(), 1.0);
                for (p, v) in pwl.points.iter().zip(&pwl.values) {
                    assert_eq!(*v, c.value(*p));
                }
            }
        }
    }

    #[test]
    fn breakpoints_follow_curvature() {
        // Exponential with k = 0.1: the optimal density of breakpoints goes like
        // sqrt(f'') ~ exp(-a / 2k), which puts about 5 times more of them on the first
        // tenth of the range than on the last half.
        let c = Curve::Exponential { beta: 1.0, k: 0.1 };
        let pwl = interpolate(&c, 0.0, 1.0, 1e-5, None, 0, 10_000).unwrap();
        let first = pwl.points.iter().filter(|&&p| p <= 0.1).count();
        let last = pwl.points.iter().filter(|&&p| p >= 0.5).count();
        assert!(first > 4 * last, "{first} vs {last}");
        // A quarter of the error needs about twice the segments (chord error ~ h^2).
        let finer = interpolate(&c, 0.0, 1.0, 0.25e-5, None, 0, 10_000).unwrap();
        let ratio = finer.segments() as f64 / pwl.segments() as f64;
        assert!((1.6..2.5).contains(&ratio), "{ratio}");
        // A straight line needs one segment.
        let line = interpolate(
            &Curve::Linear { beta: 2.0 },
            0.0,
            5.0,
            1e-9,
            None,
            0,
            10_000,
        )
        .unwrap();
        assert_eq!(line.segments(), 1);
        assert_eq!(line.ordered_prefix, 0);
    }

    #[test]
    fn binaries_only_on_the_convex_part() {
        let c = Curve::Hill {
            beta: 2.0,
            k: 0.3,
            s: 2.5,
        };
        let infl = inflection(&c).unwrap();
        // By hand: k ((s - 1) / (s + 1))^(1 / s).
        assert!((infl - 0.3 * (1.5f64 / 3.5).powf(0.4)).abs() < 1e-15);
        let pwl = interpolate(&c, 0.0, 1.0, 1e-4, None, 0, 10_000).unwrap();
        assert!(pwl.points.contains(&infl), "the inflection is a breakpoint");
        let m = pwl.ordered_prefix;
        assert!(m > 0);
        // The ordered prefix ends at the inflection point, or one segment before it when
        // the last convex chord is steeper than the first concave one.
        assert!(pwl.points[m] <= infl, "{} vs {infl}", pwl.points[m]);
        for k in m..pwl.segments() - 1 {
            assert!(pwl.slope(k + 1) <= pwl.slope(k));
        }
        // Concave curves need none.
        for c in curves().into_iter().filter(|c| c.is_concave()) {
            assert_eq!(
                interpolate(&c, 0.0, 1.0, 1e-4, None, 0, 10_000)
                    .unwrap()
                    .ordered_prefix,
                0,
                "{c:?}"
            );
        }
        // Starting past the inflection: no binaries either.
        assert_eq!(
            interpolate(&c, 0.5, 1.0, 1e-4, None, 0, 10_000)
                .unwrap()
                .ordered_prefix,
            0
        );
    }

    #[test]
    fn spend_grid_is_respected_and_full_grids_are_exact() {
        let c = Curve::Hill {
            beta: 2.0,
            k: 0.3,
            s: 2.5,
        };
        let g = 0.025;
        // 40 grid segments: within the full-grid limit, every grid point is a breakpoint.
        let full = interpolate(&c, 0.0, 1.0, 1e-2, Some(g), 64, 10_000).unwrap();
        assert_eq!(full.segments(), 40);
        assert_eq!(full.max_error, 0.0);
        assert_eq!(sampled_error(&c, &full, Some(g)), 0.0);
        // Above the limit: breakpoints on the grid, error within tolerance on it.
        let sparse = interpolate(&c, 0.0, 1.0, 1e-3, Some(g), 10, 10_000).unwrap();
        assert!(sparse.segments() < 40);
        for p in &sparse.points {
            assert!((p / g - (p / g).round()).abs() < 1e-9, "{p} off the grid");
        }
        assert!(sparse.max_error <= 1e-3);
        assert!(sampled_error(&c, &sparse, Some(g)) <= sparse.max_error + 1e-15);
        // Bounds off the grid are snapped inward.
        let inner = interpolate(&c, 0.01, 0.99, 1e-3, Some(g), 64, 10_000).unwrap();
        assert!((inner.points[0] - 0.025).abs() < 1e-15);
        assert!((inner.points.last().unwrap() - 0.975).abs() < 1e-12);
    }

    #[test]
    fn degenerate_ranges() {
        let c = Curve::Log { beta: 1.0, k: 0.1 };
        let point = interpolate(&c, 0.3, 0.3, 1e-3, None, 0, 10_000).unwrap();
        assert_eq!(point.segments(), 0);
        assert_eq!(point.max_error, 0.0);
        assert_eq!(point.ordered_prefix, 0);
    }

    #[test]
    fn absurd_tolerances_are_refused() {
        let c = Curve::Power {
            beta: 1.0,
            alpha: 0.5,
        };
        assert_eq!(
            interpolate(&c, 0.0, 1.0, 1e-300, None, 0, 100),
            Err(TooManySegments { segments: 101 })
        );
    }
}
