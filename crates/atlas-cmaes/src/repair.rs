//! The map from search points (the unit cube) onto the feasible set.
//!
//! A cube point `v` becomes the box point `z = l + v (h - l)` (the core's [`CubeMap`]).
//! Without linear rows, `z` is projected exactly onto bounds plus budget (the core's
//! projection, microseconds). With rows, the core's map (projection onto bounds plus
//! budget, then the exact projection onto the rows by its dual Newton method) takes about
//! half a millisecond per point on `retail_q4.toml` (200 rows); CMA-ES evaluates hundreds
//! of thousands of points there, and a cheaper map halves the run (measured: the
//! `retail_q4` test takes twice as long with the exact map). So the rows are met by a
//! *radial repair* instead: a few Dykstra sweeps toward the rows, `y = P_box,budget`, then
//! `x = c + t (y - c)` with the largest `t` in `[0, 1]` that satisfies every row, where `c`
//! is a fixed point strictly inside the rows (found once, by projecting the start onto the
//! rows tightened by a margin). `x` satisfies bounds and budget (a convex combination of two
//! points that do) and every row, costs a few passes over the rows, depends continuously
//! on `z`, and is `y` itself when `y` is feasible, so the map still reaches every feasible
//! point. When no strictly interior point exists (e.g. rows that fix a total exactly), the
//! core's exact map is used.
//!
//! The squared distance `|z - x|^2` is returned so that the search can penalize it.

use atlas_core::blackbox::CubeMap;
use atlas_core::feasible::ProjectionFailure;
use atlas_core::{Evaluator, FeasibleSet, ProjectionWorkspace, Scaled};

/// Warm-start state of one sample slot.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slot {
    workspace: ProjectionWorkspace,
    tau: Option<f64>,
}

/// A point strictly inside every row, with the rows' values there.
#[derive(Debug, Clone)]
struct Center {
    x: Vec<f64>,
    values: Vec<f64>,
}

/// How rows are met.
#[derive(Debug, Clone)]
enum Rows {
    /// No rows: bounds and budget only.
    None,
    /// Radial repair toward an interior point.
    Radial(Center),
    /// The core's exact projection onto the whole set.
    Exact,
}

/// Cube points to feasible scaled allocations.
pub(crate) struct FeasibleMap<'a> {
    cube: CubeMap<'a>,
    set: &'a FeasibleSet,
    rows: Rows,
}

/// Margins tried for the interior point, as a fraction of the average variable's share of
/// the budget times the row's coefficient mass.
const MARGINS: [f64; 5] = [0.05, 0.01, 1e-3, 1e-4, 1e-5];

impl<'a> FeasibleMap<'a> {
    pub(crate) fn new(problem: &'a Scaled) -> Self {
        let set = problem.feasible_set();
        let rows = if set.rows().is_empty() {
            Rows::None
        } else {
            match interior_point(set, problem.start()) {
                Some(center) => Rows::Radial(center),
                None => Rows::Exact,
            }
        };
        Self {
            cube: CubeMap::new(problem),
            set,
            rows,
        }
    }

    /// Whether rows are met by radial repair (else exactly projected, or absent).
    #[cfg(test)]
    pub(crate) fn is_radial(&self) -> bool {
        matches!(self.rows, Rows::Radial(_))
    }

    /// A cube point that maps to the feasible scaled allocation `x`.
    pub(crate) fn inverse(&self, x: &[f64]) -> Vec<f64> {
        self.cube.inverse(x)
    }

    /// Maps `v` (clamped into the cube) onto the feasible set into `out`; returns the
    /// squared distance from the box point.
    pub(crate) fn map(
        &self,
        ev: &Evaluator<'_>,
        v: &[f64],
        out: &mut [f64],
        slot: &mut Slot,
    ) -> Result<f64, ProjectionFailure> {
        let mut z = vec![0.0; v.len()];
        self.cube.to_box(v, &mut z);
        match &self.rows {
            Rows::Exact => {
                let mut on_budget = vec![0.0; z.len()];
                slot.tau = Some(ev.project_box_budget(&z, &mut on_budget, slot.tau).tau);
                ev.project(&on_budget, out, &mut slot.workspace)?;
            }
            Rows::None => {
                slot.tau = Some(ev.project_box_budget(&z, out, slot.tau).tau);
            }
            Rows::Radial(center) => {
                let mut approx = vec![0.0; z.len()];
                ev.constraint_work(|| dykstra(self.set, &z, &mut approx));
                slot.tau = Some(ev.project_box_budget(&approx, out, slot.tau).tau);
                ev.constraint_work(|| self.repair(center, out));
            }
        }
        Ok(z.iter()
            .zip(out.iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum())
    }

    /// `y <- c + t (y - c)` with the largest `t <= 1` that meets every row.
    fn repair(&self, center: &Center, y: &mut [f64]) {
        let rows = self.set.rows();
        let (lower, upper) = (rows.lower(), rows.upper());
        let mut t = 1.0f64;
        for (i, &rc) in center.values.iter().enumerate() {
            let ry = rows.dot(i, y);
            if ry > upper[i] {
                t = t.min((upper[i] - rc) / (ry - rc));
            } else if ry < lower[i] {
                t = t.min((lower[i] - rc) / (ry - rc));
            }
        }
        if t < 1.0 {
            let t = t.max(0.0);
            for (yi, ci) in y.iter_mut().zip(&center.x) {
                *yi = ci + t * (*yi - ci);
            }
        }
    }
}

/// A point of `set` strictly inside every row (by a margin), or `None`.
fn interior_point(set: &FeasibleSet, start: &[f64]) -> Option<Center> {
    let rows = set.rows();
    let n = set.dim().max(1);
    let unit = set.budget() / n as f64;
    for kappa in MARGINS {
        let margin = |i: usize| kappa * unit * rows.row(i).1.iter().map(|c| c.abs()).sum::<f64>();
        let strictly_inside = |x: &[f64]| {
            (0..rows.len()).all(|i| {
                let r = rows.dot(i, x);
                let m = 0.5 * margin(i);
                r > rows.lower()[i] + m && r < rows.upper()[i] - m
            })
        };
        let candidate = if strictly_inside(start) {
            Some(start.to_vec())
        } else {
            let mut tight = FeasibleSet::new(
                set.lower().to_vec(),
                set.upper().to_vec(),
                set.budget(),
                set.budget_mode(),
            );
            let mut ok = true;
            for i in 0..rows.len() {
                let (idx, coef) = rows.row(i);
                let terms: Vec<(usize, f64)> =
                    idx.iter().copied().zip(coef.iter().copied()).collect();
                let (lo, hi) = (rows.lower()[i] + margin(i), rows.upper()[i] - margin(i));
                if lo >= hi {
                    ok = false;
                    break;
                }
                tight.add_row(&terms, lo, hi, set.row_origin(i).clone());
            }
            let mut x = vec![0.0; set.dim()];
            (ok && tight.project_cold(start, &mut x).is_ok()
                && set.max_violation(&x) <= 1e-10
                && strictly_inside(&x))
            .then_some(x)
        };
        if let Some(x) = candidate {
            let values = (0..rows.len()).map(|i| rows.dot(i, &x)).collect();
            return Some(Center { x, values });
        }
    }
    None
}

/// Dykstra's alternating projections between bounds plus budget and each row's slab
/// `{lo <= a.x <= hi}`, from `z` into `out`: it converges to the exact projection of `z`
/// onto the whole set. Each cycle costs one sort-based projection and one pass over the
/// rows; cycles stop when a cycle moves no coordinate by more than `DYKSTRA_TOL` (the
/// result is then the exact projection to that accuracy; near the feasible set, where
/// the search ends, that takes a few cycles) or after `DYKSTRA_CYCLES`. The correction of
/// a slab is a multiple of its row, so only one number per row is kept.
pub(crate) fn dykstra(set: &FeasibleSet, z: &[f64], out: &mut [f64]) {
    let rows = set.rows();
    let m = rows.len();
    let n = z.len();
    let norms: Vec<f64> = (0..m)
        .map(|i| rows.row(i).1.iter().map(|c| c * c).sum::<f64>())
        .collect();
    let mut x = z.to_vec();
    let mut p0 = vec![0.0; n];
    let mut mu = vec![0.0; m];
    let mut y = vec![0.0; n];
    let mut before = vec![0.0; n];
    let mut tau = None;
    for _ in 0..DYKSTRA_CYCLES {
        before.copy_from_slice(&x);
        for j in 0..n {
            y[j] = x[j] + p0[j];
        }
        tau = Some(
            atlas_core::feasible::project_box_budget(
                &y,
                set.lower(),
                set.upper(),
                set.budget(),
                set.budget_mode(),
                &mut x,
                tau,
            )
            .tau,
        );
        for j in 0..n {
            p0[j] = y[j] - x[j];
        }
        for i in 0..m {
            // With y = x + mu_i a_i (the point plus this slab's correction), the slab's
            // projection is y - step a_i, whose new correction is step.
            let r = rows.dot(i, &x) + mu[i] * norms[i];
            let step = (r - r.clamp(rows.lower()[i], rows.upper()[i])) / norms[i];
            let delta = mu[i] - step;
            if delta != 0.0 {
                let (idx, coef) = rows.row(i);
                for (&j, &c) in idx.iter().zip(coef) {
                    x[j] += delta * c;
                }
                mu[i] = step;
            }
        }
        let moved = x
            .iter()
            .zip(&before)
            .fold(0.0f64, |d, (a, b)| d.max((a - b).abs()));
        if moved <= DYKSTRA_TOL {
            break;
        }
    }
    out.copy_from_slice(&x);
}

/// Most Dykstra cycles per point.
const DYKSTRA_CYCLES: usize = 30;
/// Dykstra stops when a cycle moves no coordinate by more than this (scaled units:
/// fractions of the budget).
const DYKSTRA_TOL: f64 = 1e-14;

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_core::{Compiled, SolveOptions};
    use rand::{Rng, SeedableRng};

    fn retail() -> Compiled {
        Compiled::from_path("../../examples/problems/retail_q4.toml").unwrap()
    }

    #[test]
    fn every_cube_point_maps_into_the_set_and_feasible_points_stay() {
        let compiled = retail();
        let scaled = Scaled::new(&compiled).unwrap();
        let ctx = atlas_core::Context::new(&compiled, &scaled, SolveOptions::default());
        let map = FeasibleMap::new(&scaled);
        assert!(map.is_radial(), "retail_q4's rows admit an interior point");
        let set = scaled.feasible_set();
        let n = scaled.dim();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut slot = Slot::default();
        let v0 = map.inverse(scaled.start());
        for k in 0..60 {
            // Near the start, far from it, and outside the cube.
            let spread = [0.001, 0.05, 0.5, 2.0][k % 4];
            let v: Vec<f64> = v0
                .iter()
                .map(|c| c + spread * (rng.random::<f64>() - 0.5))
                .collect();
            let mut x = vec![0.0; n];
            let moved = map.map(ctx.evaluator(), &v, &mut x, &mut slot).unwrap();
            assert!(
                set.max_violation(&x) <= 1e-12,
                "violation {}",
                set.max_violation(&x)
            );
            assert!(moved >= 0.0);
            // x is feasible, so its own cube point maps to it, without moving.
            let back = map.inverse(&x);
            let mut y = vec![0.0; n];
            let moved = map.map(ctx.evaluator(), &back, &mut y, &mut slot).unwrap();
            assert!(moved <= 1e-24, "{moved}");
            for (a, b) in x.iter().zip(&y) {
                assert!((a - b).abs() <= 1e-12, "{a} {b}");
            }
        }
    }

    #[test]
    fn dykstra_reaches_the_exact_projection_near_the_set() {
        let compiled = retail();
        let scaled = Scaled::new(&compiled).unwrap();
        let set = scaled.feasible_set();
        let start = scaled.start();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for _ in 0..10 {
            let z: Vec<f64> = start
                .iter()
                .map(|s| s + 2e-5 * (rng.random::<f64>() - 0.5))
                .collect();
            let mut exact = vec![0.0; z.len()];
            set.project_cold(&z, &mut exact).unwrap();
            let mut approx = vec![0.0; z.len()];
            dykstra(set, &z, &mut approx);
            let err = exact
                .iter()
                .zip(&approx)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= 1e-10, "{err:e}");
        }
    }
}
