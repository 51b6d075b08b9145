//! Seeded generator of marketing-mix problems of any size (channels x periods).
//!
//! The generated problems are concave (every curve is concave with a finite slope at zero:
//! `hill` with `s = 1`, `exponential`, `log`; all three expressible in disciplined convex
//! programming, so CVXPY peers can solve them too), carry over spend with geometric
//! adstock when there are several periods, discount later periods slightly, and bound
//! each channel's total and per-period spend. They have no other rules, on purpose: the
//! rules then form a laminar family (entries within channels within the budget), over
//! which a linear function is maximized greedily, and that gives a certified bound on the
//! optimum without an LP solver (see [`crate::optimum::frank_wolfe_bound`]).
//!
//! The generator depends on nothing but `atlas-core` and the standard library (its random
//! numbers come from SplitMix64), so the same file also builds inside the criterion
//! benches at the repository root, and a seed gives the same problem on every platform.

use atlas_core::problem::{
    AdstockKind, AdstockSpec, BudgetMode, Channel, CurveSpec, ObjectiveKind, Problem,
};

/// The sizes of the suite, channels x periods, smallest first.
pub const SIZES: [(usize, usize); 5] = [(5, 1), (10, 13), (20, 52), (50, 52), (100, 104)];

/// The sizes `--quick` runs: the three smallest (up to 1,040 variables).
pub const QUICK_SIZES: [(usize, usize); 3] = [(5, 1), (10, 13), (20, 52)];

/// The seed the suite uses for every size, so that results compare across runs.
pub const SUITE_SEED: u64 = 20_240_601;

/// The name of the generated problem of this size: `mmm-{channels}x{periods}`.
pub fn name(channels: usize, periods: usize) -> String {
    format!("mmm-{channels}x{periods}")
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed, portable generator.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// A concave marketing-mix problem with `channels` channels over `periods` periods,
/// the same for the same arguments on every platform.
///
/// Budget `1e5` per variable, spent exactly. Each channel's curve is scaled so that its
/// average return at a reference spend lies between 1.5 and 4; about a third of the
/// channels have a minimum total; every channel has a maximum total and a per-period cap,
/// sized so the rules always admit an allocation (sum of minimums at most 30% of the
/// budget, sum of maximums at least 150% of it).
pub fn generate(channels: usize, periods: usize, seed: u64) -> Problem {
    let channels = channels.max(1);
    let periods = periods.max(1);
    // Mix the size into the seed so that sizes sharing a seed are unrelated problems.
    let mut rng = SplitMix64(
        seed ^ (channels as u64).wrapping_mul(0x0100_0000_01B3) ^ ((periods as u64) << 32),
    );
    let budget = 1e5 * (channels * periods) as f64;
    let per_channel = budget / channels as f64;
    let per_variable = budget / (channels * periods) as f64;
    let list = (0..channels)
        .map(|c| {
            let reference = per_variable * rng.range(0.5, 2.0);
            let k = reference * rng.range(0.5, 3.0);
            let roi = rng.range(1.5, 4.0);
            // `unit(a)` is the curve with beta = 1; beta sets the return at the reference.
            let response = match c % 3 {
                0 => {
                    let unit = reference / (reference + k);
                    CurveSpec::hill(roi * reference / unit, k, 1.0)
                }
                1 => {
                    let unit = 1.0 - (-reference / k).exp();
                    CurveSpec::exponential(roi * reference / unit, k)
                }
                _ => {
                    let unit = (1.0 + reference / k).ln();
                    CurveSpec::log(roi * reference / unit, k)
                }
            };
            let max = per_channel * rng.range(1.5, 4.5);
            let min = (rng.unit() < 1.0 / 3.0).then(|| per_channel * rng.range(0.05, 0.3));
            let adstock = (periods > 1).then(|| AdstockSpec {
                kind: AdstockKind::Geometric,
                decay: rng.range(0.1, 0.7),
                max_lag: 1 + (rng.next_u64() % 8) as usize,
                normalize: true,
            });
            Channel {
                min,
                max: Some(round_to(max, 1.0)),
                period_max: (periods > 1).then(|| round_to(2.5 * max / periods as f64, 1.0)),
                adstock,
                ..Channel::new(format!("ch{c:03}"), response)
            }
        })
        .map(|mut ch| {
            ch.min = ch.min.map(|m| round_to(m, 1.0));
            ch
        })
        .collect();
    Problem {
        name: name(channels, periods),
        periods,
        budget,
        budget_mode: BudgetMode::Exact,
        objective: ObjectiveKind::Response,
        margin: 1.0,
        target_response: None,
        discount: if periods > 1 { 0.002 } else { 0.0 },
        max_active_channels: None,
        channels: list,
        constraints: Vec::new(),
        model: None,
    }
}

/// Rounds `v` down to a multiple of `step` (bounds in files read better as whole amounts;
/// rounding down keeps a maximum within what the generator allowed).
fn round_to(v: f64, step: f64) -> f64 {
    (v / step).floor() * step
}
