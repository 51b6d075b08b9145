//! A feasible parametrization for black-box searches (TPE, CMA-ES): points of the unit
//! cube map onto the feasible set through the exact projection, so that every point a
//! search evaluates satisfies bounds, budget and linear rows.
//!
//! `x(v) = P(P_X(l + v * (h - l)))` for `v` in `[0, 1]^n`, where `l` and `h` are the
//! variable bounds (an infinite upper bound is replaced by what the budget allows), `P_X`
//! is the exact projection onto bounds plus budget and `P` the Euclidean projection onto
//! the whole scaled feasible set. The first stage brings a cube point, which may hold many
//! budgets' worth of spend, onto the budget cheaply; from there the second converges in a
//! few Newton steps (projecting far points directly onto many coupled rows is much slower).
//! Both stages are the identity on feasible points, so every feasible `x` is reached, by
//! `v = (x - l) / (h - l)`, and no part of the feasible set is lost; [`CubeMap::map`] also
//! returns how far the map moved the point, which a search may add as a small penalty to
//! stay near the feasible region.

use crate::feasible::{ProjectionFailure, ProjectionWorkspace};
use crate::scaled::Scaled;

/// The map from the unit cube onto the scaled feasible set.
#[derive(Debug, Clone)]
pub struct CubeMap<'a> {
    problem: &'a Scaled,
    lower: Vec<f64>,
    span: Vec<f64>,
}

impl<'a> CubeMap<'a> {
    /// The map for `problem`.
    pub fn new(problem: &'a Scaled) -> Self {
        let set = problem.feasible_set();
        let lower = set.lower().to_vec();
        let span = set
            .finite_upper()
            .iter()
            .zip(&lower)
            .map(|(h, l)| (h - l).max(0.0))
            .collect();
        Self {
            problem,
            lower,
            span,
        }
    }

    /// Number of coordinates.
    pub fn dim(&self) -> usize {
        self.lower.len()
    }

    /// The box point `l + v * (h - l)` of a cube point (before projection).
    pub fn to_box(&self, v: &[f64], out: &mut [f64]) {
        for i in 0..v.len() {
            out[i] = self.lower[i] + v[i].clamp(0.0, 1.0) * self.span[i];
        }
    }

    /// Maps `v` (clamped into the cube) onto the feasible set, writing the scaled
    /// allocation to `out`; returns the squared distance the projection moved the box
    /// point. `workspace` warm-starts repeated projections.
    pub fn map(
        &self,
        v: &[f64],
        out: &mut [f64],
        workspace: &mut ProjectionWorkspace,
    ) -> Result<f64, ProjectionFailure> {
        let mut z = vec![0.0; v.len()];
        self.to_box(v, &mut z);
        self.problem.feasible_set().project(&z, out, workspace)?;
        Ok(z.iter()
            .zip(out.iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum())
    }

    /// A cube point that maps to the feasible scaled allocation `x`.
    pub fn inverse(&self, x: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(self.lower.iter().zip(&self.span))
            .map(|(xi, (l, s))| {
                if *s > 0.0 {
                    ((xi - l) / s).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::Compiled;
    use crate::problem::{Format, Problem};

    fn problem() -> Compiled {
        let p = Problem::from_text(
            r#"
            name = "cube"
            periods = 2
            budget = 100.0
            [[channels]]
            name = "a"
            max = 80.0
            response = { kind = "log", beta = 10.0, k = 5.0 }
            [[channels]]
            name = "b"
            period_max = 30.0
            response = { kind = "exponential", beta = 10.0, k = 20.0 }
            [[constraints]]
            kind = "share"
            channels = ["b"]
            min = 0.3
            "#,
            Format::Toml,
        )
        .unwrap();
        Compiled::new(&p).unwrap()
    }

    #[test]
    fn every_cube_point_maps_to_a_feasible_point_and_feasible_points_are_fixed() {
        let compiled = problem();
        let scaled = Scaled::new(&compiled).unwrap();
        let map = CubeMap::new(&scaled);
        let mut ws = ProjectionWorkspace::default();
        let mut x = vec![0.0; map.dim()];
        for k in 0..50 {
            let v: Vec<f64> = (0..map.dim())
                .map(|i| ((k * 7 + i * 13) % 17) as f64 / 16.0)
                .collect();
            map.map(&v, &mut x, &mut ws).unwrap();
            let spend = scaled.unscale(&x);
            assert!(compiled.is_feasible(&spend), "{spend:?}");
            // A feasible point is its own image.
            let back = map.inverse(&x);
            let mut y = vec![0.0; map.dim()];
            let moved = map.map(&back, &mut y, &mut ws).unwrap();
            assert!(moved < 1e-18, "{moved}");
            for (a, b) in x.iter().zip(&y) {
                assert!((a - b).abs() < 1e-9);
            }
        }
    }
}
