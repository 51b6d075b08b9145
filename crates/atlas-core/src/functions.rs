//! The `function` model: classic optimization test functions (sphere, Rosenbrock,
//! Rastrigin, Ackley, Styblinski–Tang) in any dimension over a box, posed as allocation
//! problems, so that optimizers can be measured against known optima.
//!
//! Coordinate `i` of the test function's domain `[lo, hi]^d` is the spend of channel
//! `x{i}` shifted by `lo`: spend ranges over `[0, hi - lo]`, the budget `d (hi - lo)` is a
//! cap that never binds, and the response to maximize is `-f(lo + x)`. The optimum
//! response is therefore `-min f`.

use std::f64::consts::{E, PI};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::compile::Compiled;
use crate::error::Error;
use crate::model::{Derivatives, Model};
use crate::problem::{BudgetMode, Channel, ObjectiveKind, Problem};

/// A classic test function (to be minimized in its own domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestFunction {
    /// `sum z^2` on `[-5.12, 5.12]^d`; minimum 0 at 0.
    Sphere,
    /// `sum 100 (z_{i+1} - z_i^2)^2 + (1 - z_i)^2` on `[-5, 10]^d`; minimum 0 at 1.
    Rosenbrock,
    /// `10 d + sum z^2 - 10 cos(2 pi z)` on `[-5.12, 5.12]^d`; minimum 0 at 0.
    Rastrigin,
    /// Ackley's function on `[-32.768, 32.768]^d`; minimum 0 at 0.
    Ackley,
    /// `sum (z^4 - 16 z^2 + 5 z) / 2` on `[-5, 5]^d`; minimum `-39.166... d`.
    StyblinskiTang,
}

const STYBLINSKI_TANG_ARGMIN: f64 = -2.903_534_027_771_177;

impl TestFunction {
    /// All five.
    pub fn all() -> [TestFunction; 5] {
        [
            TestFunction::Sphere,
            TestFunction::Rosenbrock,
            TestFunction::Rastrigin,
            TestFunction::Ackley,
            TestFunction::StyblinskiTang,
        ]
    }

    /// Lower-case name (`styblinski_tang`).
    pub fn name(&self) -> &'static str {
        match self {
            TestFunction::Sphere => "sphere",
            TestFunction::Rosenbrock => "rosenbrock",
            TestFunction::Rastrigin => "rastrigin",
            TestFunction::Ackley => "ackley",
            TestFunction::StyblinskiTang => "styblinski_tang",
        }
    }

    /// The function named `name`.
    pub fn from_name(name: &str) -> Option<TestFunction> {
        Self::all().into_iter().find(|f| f.name() == name)
    }

    /// The domain `[lo, hi]` of each coordinate.
    pub fn domain(&self) -> (f64, f64) {
        match self {
            TestFunction::Sphere | TestFunction::Rastrigin => (-5.12, 5.12),
            TestFunction::Rosenbrock => (-5.0, 10.0),
            TestFunction::Ackley => (-32.768, 32.768),
            TestFunction::StyblinskiTang => (-5.0, 5.0),
        }
    }

    /// The minimizer in the function's own coordinates.
    pub fn minimizer(&self, dim: usize) -> Vec<f64> {
        let v = match self {
            TestFunction::Rosenbrock => 1.0,
            TestFunction::StyblinskiTang => STYBLINSKI_TANG_ARGMIN,
            _ => 0.0,
        };
        vec![v; dim]
    }

    /// The minimum value in `dim` dimensions.
    pub fn minimum(&self, dim: usize) -> f64 {
        self.value(&self.minimizer(dim))
    }

    /// `f(z)`.
    pub fn value(&self, z: &[f64]) -> f64 {
        let d = z.len() as f64;
        match self {
            TestFunction::Sphere => z.iter().map(|v| v * v).sum(),
            TestFunction::Rosenbrock => z
                .windows(2)
                .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
                .sum(),
            TestFunction::Rastrigin => {
                10.0 * d
                    + z.iter()
                        .map(|v| v * v - 10.0 * (2.0 * PI * v).cos())
                        .sum::<f64>()
            }
            TestFunction::Ackley => {
                let sq = (z.iter().map(|v| v * v).sum::<f64>() / d).sqrt();
                let cs = z.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / d;
                -20.0 * (-0.2 * sq).exp() - cs.exp() + 20.0 + E
            }
            TestFunction::StyblinskiTang => {
                0.5 * z
                    .iter()
                    .map(|v| v.powi(4) - 16.0 * v * v + 5.0 * v)
                    .sum::<f64>()
            }
        }
    }

    /// `∇f(z)` into `g`.
    pub fn gradient(&self, z: &[f64], g: &mut [f64]) {
        let d = z.len() as f64;
        match self {
            TestFunction::Sphere => z.iter().zip(g.iter_mut()).for_each(|(v, gi)| *gi = 2.0 * v),
            TestFunction::Rosenbrock => {
                g.iter_mut().for_each(|x| *x = 0.0);
                for i in 0..z.len().saturating_sub(1) {
                    let r = z[i + 1] - z[i] * z[i];
                    g[i] += -400.0 * z[i] * r - 2.0 * (1.0 - z[i]);
                    g[i + 1] += 200.0 * r;
                }
            }
            TestFunction::Rastrigin => z
                .iter()
                .zip(g.iter_mut())
                .for_each(|(v, gi)| *gi = 2.0 * v + 20.0 * PI * (2.0 * PI * v).sin()),
            TestFunction::Ackley => {
                let sq = (z.iter().map(|v| v * v).sum::<f64>() / d).sqrt();
                let cs = z.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / d;
                let a = if sq > 0.0 {
                    4.0 * (-0.2 * sq).exp() / (d * sq)
                } else {
                    0.0
                };
                let b = cs.exp() * 2.0 * PI / d;
                for (v, gi) in z.iter().zip(g.iter_mut()) {
                    *gi = a * v + b * (2.0 * PI * v).sin();
                }
            }
            TestFunction::StyblinskiTang => z
                .iter()
                .zip(g.iter_mut())
                .for_each(|(v, gi)| *gi = 0.5 * (4.0 * v.powi(3) - 32.0 * v + 5.0)),
        }
    }
}

/// A test function as a response model: `R(x) = -f(lo + x)`.
#[derive(Debug, Clone)]
pub struct FunctionModel {
    function: TestFunction,
    dim: usize,
    shift: f64,
}

impl FunctionModel {
    /// `function` in `dim` dimensions.
    pub fn new(function: TestFunction, dim: usize) -> Self {
        Self {
            function,
            dim,
            shift: function.domain().0,
        }
    }

    fn point(&self, x: &[f64]) -> Vec<f64> {
        x.iter().map(|v| v + self.shift).collect()
    }
}

impl Model for FunctionModel {
    fn dim(&self) -> usize {
        self.dim
    }
    fn value(&self, x: &[f64]) -> f64 {
        -self.function.value(&self.point(x))
    }
    fn derivatives(&self) -> Derivatives {
        Derivatives::Gradient
    }
    fn gradient(&self, x: &[f64], grad: &mut [f64]) -> Option<f64> {
        let z = self.point(x);
        self.function.gradient(&z, grad);
        grad.iter_mut().for_each(|g| *g = -*g);
        Some(-self.function.value(&z))
    }
    fn is_concave(&self) -> Option<bool> {
        Some(false)
    }
}

/// The allocation problem of `function` in `dim` dimensions (named like
/// `rastrigin-10d`), with its model.
pub fn problem(function: TestFunction, dim: usize) -> Result<Compiled, Error> {
    let (lo, hi) = function.domain();
    let span = hi - lo;
    let channels = (0..dim)
        .map(|i| Channel {
            max: Some(span),
            response: None,
            ..Channel::new(format!("x{i}"), crate::problem::CurveSpec::linear(0.0))
        })
        .collect();
    let p = Problem {
        name: format!("{}-{dim}d", function.name()),
        periods: 1,
        budget: span * dim as f64,
        budget_mode: BudgetMode::AtMost,
        objective: ObjectiveKind::Response,
        margin: 1.0,
        target_response: None,
        discount: 0.0,
        max_active_channels: None,
        channels,
        constraints: Vec::new(),
        model: None,
    };
    Compiled::with_model(&p, Arc::new(FunctionModel::new(function, dim)))
}

/// The best response of [`problem`]`(function, dim)`: `-min f`.
pub fn optimum(function: TestFunction, dim: usize) -> f64 {
    -function.minimum(dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_minima() {
        for f in TestFunction::all() {
            for d in [2, 10, 30] {
                let z = f.minimizer(d);
                let mut g = vec![0.0; d];
                f.gradient(&z, &mut g);
                assert!(g.iter().all(|v| v.abs() < 1e-9), "{f:?} {g:?}");
                // Nearby points are worse.
                let mut near = z.clone();
                near[0] += 0.01;
                assert!(f.value(&near) > f.value(&z), "{f:?}");
            }
        }
        assert!((TestFunction::StyblinskiTang.minimum(1) + 39.16616570377142).abs() < 1e-9);
        assert!(TestFunction::Ackley.minimum(5).abs() < 1e-12);
    }

    #[test]
    fn gradients_match_finite_differences() {
        for f in TestFunction::all() {
            let z: Vec<f64> = (0..6).map(|i| 0.37 * i as f64 - 0.9).collect();
            let mut g = vec![0.0; z.len()];
            f.gradient(&z, &mut g);
            for i in 0..z.len() {
                let h = 1e-6;
                let mut zp = z.clone();
                let mut zm = z.clone();
                zp[i] += h;
                zm[i] -= h;
                let fd = (f.value(&zp) - f.value(&zm)) / (2.0 * h);
                assert!(
                    (fd - g[i]).abs() <= 1e-5 * (1.0 + g[i].abs()),
                    "{f:?} {i}: {fd} vs {}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn problems_compile_with_the_optimum_inside() {
        for f in TestFunction::all() {
            let compiled = problem(f, 4).unwrap();
            let (lo, _) = f.domain();
            let x: Vec<f64> = f.minimizer(4).iter().map(|z| z - lo).collect();
            assert!(compiled.is_feasible(&x));
            assert!((compiled.objective_value(&x) - optimum(f, 4)).abs() < 1e-9);
        }
    }
}
