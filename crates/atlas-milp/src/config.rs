//! Settings of the `milp` optimizer.

use atlas_core::{Capabilities, ConfigError, Solver, SolverConfig};
use serde::{Deserialize, Serialize};

use crate::solver::Milp;

/// The mixed-integer solver behind `milp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MipSolver {
    /// HiGHS when this build has it (feature `highs`), else microlp.
    Auto,
    /// HiGHS (feature `highs`): branch and cut, robust on large models.
    Highs,
    /// microlp (feature `microlp`, the default): pure Rust, no system library.
    Microlp,
}

impl MipSolver {
    /// Whether this build includes the solver.
    pub fn available(self) -> bool {
        match self {
            MipSolver::Auto => cfg!(feature = "highs") || cfg!(feature = "microlp"),
            MipSolver::Highs => cfg!(feature = "highs"),
            MipSolver::Microlp => cfg!(feature = "microlp"),
        }
    }

    /// The solver `Auto` stands for in this build (HiGHS first).
    pub fn resolve(self) -> MipSolver {
        match self {
            MipSolver::Auto if cfg!(feature = "highs") => MipSolver::Highs,
            MipSolver::Auto => MipSolver::Microlp,
            other => other,
        }
    }

    /// The name used in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            MipSolver::Auto => "auto",
            MipSolver::Highs => "highs",
            MipSolver::Microlp => "microlp",
        }
    }
}

/// Settings of `milp`, with the defaults documented on each field. Validated by
/// [`check`](SolverConfig::check) before a solver is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MilpConfig {
    /// Largest total error of the piecewise-linear curves, relative to the response of
    /// the even split (the problem's response unit): the model's value at any allocation
    /// is within `max_error` of the true one, and the reported bound adds this error.
    /// Default `1e-3`; range `[1e-6, 0.1]`.
    pub max_error: f64,
    /// Relative gap at which the mixed-integer solver may stop. Default `1e-4`; range
    /// `[0, 1)`.
    pub mip_gap: f64,
    /// Seconds the mixed-integer solver may run (the solve's own time limit applies as
    /// well). Default: none; range `> 0`.
    pub time_limit: Option<f64>,
    /// Threads HiGHS may use (microlp runs on one). Default `1` (deterministic); range
    /// `1..=256`.
    pub threads: usize,
    /// Which mixed-integer solver: `auto`, `highs` or `microlp`. Default `auto` (HiGHS
    /// when the build has the `highs` feature, else microlp).
    pub solver: MipSolver,
}

impl Default for MilpConfig {
    fn default() -> Self {
        Self {
            max_error: 1e-3,
            mip_gap: 1e-4,
            time_limit: None,
            threads: 1,
            solver: MipSolver::Auto,
        }
    }
}

const NAME: &str = "milp";

#[typetag::serde(name = "milp")]
impl SolverConfig for MilpConfig {
    fn name(&self) -> &'static str {
        NAME
    }

    fn summary(&self) -> &'static str {
        "piecewise-linear mixed-integer model (good_lp: HiGHS or microlp), then polished on the true curves: S-curves to global optimality with a proven bound, spend units, minimum buys, fixed costs, at most k channels"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // The polish step follows the model's gradient.
            needs_gradient: true,
            needs_hessian: false,
            // The piecewise-linear model is built from the curves and adstock.
            needs_structure: true,
            handles_nonconvex: true,
            integer_features: true,
            // `min_roi` and `min_spend` constrain the curves themselves; not modelled.
            nonlinear_constraints: false,
            proves_bound: true,
            parallel: self.threads > 1 && self.solver.resolve() == MipSolver::Highs,
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, reason: String| Err(ConfigError::new(NAME, field, reason));
        if !(1e-6..=0.1).contains(&self.max_error) {
            return bad(
                "max_error",
                format!("must be in [1e-6, 0.1] (got {})", self.max_error),
            );
        }
        if !(self.mip_gap >= 0.0 && self.mip_gap < 1.0) {
            return bad(
                "mip_gap",
                format!("must be in [0, 1) (got {})", self.mip_gap),
            );
        }
        ConfigError::check_seconds(NAME, "time_limit", self.time_limit)?;
        ConfigError::check_range(NAME, "threads", self.threads, 1..=256)?;
        if !self.solver.available() {
            let how = match self.solver {
                MipSolver::Highs => "the Cargo feature `highs` of atlas-milp (`--features milp-highs` for the atlas binary), which builds HiGHS from source and needs cmake and libclang",
                MipSolver::Microlp | MipSolver::Auto => "the Cargo feature `microlp` of atlas-milp",
            };
            return bad(
                "solver",
                format!(
                    "must be a solver this build includes: `{}` needs {how}; available here: {}",
                    self.solver.as_str(),
                    available_list()
                ),
            );
        }
        Ok(())
    }

    fn build(&self) -> Result<Box<dyn Solver>, ConfigError> {
        self.check()?;
        Ok(Box::new(Milp::new(self.clone())))
    }

    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn available_list() -> String {
    let all = [MipSolver::Auto, MipSolver::Highs, MipSolver::Microlp];
    all.iter()
        .filter(|s| s.available())
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = MilpConfig::default();
        c.check().unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["solver"], "auto");
        let back: MilpConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        // Through typetag, by name.
        let boxed: Box<dyn SolverConfig> = Box::new(c.clone());
        let text = serde_json::to_string(&boxed).unwrap();
        assert!(text.contains("\"optimizer\":\"milp\""), "{text}");
        let again: Box<dyn SolverConfig> = serde_json::from_str(&text).unwrap();
        assert_eq!(again.settings(), c.settings());
    }

    #[test]
    fn good_values_pass() {
        let cases = [
            MilpConfig {
                max_error: 1e-6,
                ..Default::default()
            },
            MilpConfig {
                max_error: 0.1,
                ..Default::default()
            },
            MilpConfig {
                mip_gap: 0.0,
                ..Default::default()
            },
            MilpConfig {
                time_limit: Some(0.5),
                ..Default::default()
            },
            MilpConfig {
                threads: 256,
                ..Default::default()
            },
            MilpConfig {
                solver: MipSolver::Microlp,
                ..Default::default()
            },
        ];
        for c in cases {
            if c.solver.available() {
                c.check().unwrap();
            }
        }
    }

    #[test]
    fn bad_values_name_the_field_and_range() {
        let cases: Vec<(&str, MilpConfig)> = vec![
            (
                "max_error",
                MilpConfig {
                    max_error: 0.0,
                    ..Default::default()
                },
            ),
            (
                "max_error",
                MilpConfig {
                    max_error: 0.5,
                    ..Default::default()
                },
            ),
            (
                "max_error",
                MilpConfig {
                    max_error: f64::NAN,
                    ..Default::default()
                },
            ),
            (
                "mip_gap",
                MilpConfig {
                    mip_gap: -0.1,
                    ..Default::default()
                },
            ),
            (
                "mip_gap",
                MilpConfig {
                    mip_gap: 1.0,
                    ..Default::default()
                },
            ),
            (
                "time_limit",
                MilpConfig {
                    time_limit: Some(0.0),
                    ..Default::default()
                },
            ),
            (
                "time_limit",
                MilpConfig {
                    time_limit: Some(f64::INFINITY),
                    ..Default::default()
                },
            ),
            (
                "threads",
                MilpConfig {
                    threads: 0,
                    ..Default::default()
                },
            ),
            (
                "threads",
                MilpConfig {
                    threads: 257,
                    ..Default::default()
                },
            ),
        ];
        for (field, c) in cases {
            let e = c.check().unwrap_err();
            assert_eq!(e.field, field);
            assert!(e.reason.contains("must be"), "{e}");
            assert!(c.build().is_err());
        }
    }

    #[test]
    fn solver_names_and_availability() {
        let names: Vec<MipSolver> = ["\"auto\"", "\"highs\"", "\"microlp\""]
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect();
        assert_eq!(
            names,
            vec![MipSolver::Auto, MipSolver::Highs, MipSolver::Microlp]
        );
        assert!(serde_json::from_str::<MipSolver>("\"cbc\"").is_err());
        assert_eq!(MipSolver::Highs.available(), cfg!(feature = "highs"));
        assert_eq!(MipSolver::Microlp.available(), cfg!(feature = "microlp"));
        let expected = if cfg!(feature = "highs") {
            MipSolver::Highs
        } else {
            MipSolver::Microlp
        };
        assert_eq!(MipSolver::Auto.resolve(), expected);
    }

    #[cfg(not(feature = "highs"))]
    #[test]
    fn highs_without_the_feature_is_refused_clearly() {
        let c = MilpConfig {
            solver: MipSolver::Highs,
            ..Default::default()
        };
        let e = c.check().unwrap_err();
        assert_eq!(e.field, "solver");
        assert!(e.reason.contains("feature `highs`"), "{e}");
        assert!(e.reason.contains("microlp"), "{e}");
    }
}
