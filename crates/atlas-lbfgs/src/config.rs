//! Settings of the `lbfgs` optimizer.

use atlas_core::{Capabilities, ConfigError, Solver, SolverConfig};
use serde::{Deserialize, Serialize};

use crate::solver::Lbfgs;

/// Settings of `lbfgs`, with the defaults documented on each field. Validated by
/// [`check`](SolverConfig::check) before a solver is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LbfgsConfig {
    /// Stop when the relative decrease of the objective over three consecutive iterations
    /// stays below this. Default `1e-13`; range `[0, 1)`.
    pub ftol: f64,
    /// Stop when the largest entry of the projected gradient (in scaled units: spend as a
    /// fraction of the budget, objective relative to the starting response) is below
    /// this. Default `1e-9`; range `(0, 1)`.
    pub gtol: f64,
    /// Iterations at most, per start. Default `20000`; range `>= 1`.
    pub max_iterations: u64,
    /// Model evaluations at most, over all starts (none when absent). Default: none;
    /// range `>= 1`.
    pub max_evaluations: Option<u64>,
    /// Number of correction pairs kept (history size). Default `10`; range `1..=100`.
    pub memory: usize,
    /// Number of starts: the even split, then random allocations, run in parallel;
    /// the best result is returned. Raise it for S-curves. Default `1`; range
    /// `1..=10000`.
    pub multi_start: usize,
    /// Seed of the random starts (the solve's seed when absent). Default: none.
    pub seed: Option<u64>,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        Self {
            ftol: 1e-13,
            gtol: 1e-9,
            max_iterations: 20_000,
            max_evaluations: None,
            memory: 10,
            multi_start: 1,
            seed: None,
        }
    }
}

const NAME: &str = "lbfgs";

#[typetag::serde(name = "lbfgs")]
impl SolverConfig for LbfgsConfig {
    fn name(&self) -> &'static str {
        NAME
    }

    fn summary(&self) -> &'static str {
        "projected L-BFGS with an augmented Lagrangian for rules: fast local optimum of smooth problems (global when concave); multi_start for S-curves"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            needs_gradient: true,
            needs_hessian: false,
            needs_structure: false,
            handles_nonconvex: true,
            integer_features: false,
            nonlinear_constraints: true,
            proves_bound: false,
            parallel: self.multi_start > 1,
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, reason: String| Err(ConfigError::new(NAME, field, reason));
        if !(self.ftol >= 0.0 && self.ftol < 1.0) {
            return bad("ftol", format!("must be in [0, 1) (got {})", self.ftol));
        }
        if !(self.gtol > 0.0 && self.gtol < 1.0) {
            return bad("gtol", format!("must be in (0, 1) (got {})", self.gtol));
        }
        if self.max_iterations == 0 {
            return bad("max_iterations", "must be >= 1 (got 0)".to_string());
        }
        if self.max_evaluations == Some(0) {
            return bad("max_evaluations", "must be >= 1 (got 0)".to_string());
        }
        ConfigError::check_range(NAME, "memory", self.memory, 1..=100)?;
        ConfigError::check_range(NAME, "multi_start", self.multi_start, 1..=10_000)?;
        Ok(())
    }

    fn build(&self) -> Result<Box<dyn Solver>, ConfigError> {
        self.check()?;
        Ok(Box::new(Lbfgs::new(self.clone())))
    }

    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = LbfgsConfig::default();
        c.check().unwrap();
        let v = serde_json::to_value(&c).unwrap();
        let back: LbfgsConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        // Through typetag, by name.
        let boxed: Box<dyn SolverConfig> = Box::new(c.clone());
        let text = serde_json::to_string(&boxed).unwrap();
        assert!(text.contains("\"optimizer\":\"lbfgs\""), "{text}");
        let again: Box<dyn SolverConfig> = serde_json::from_str(&text).unwrap();
        assert_eq!(again.settings(), c.settings());
    }

    #[test]
    fn bad_values_name_the_field_and_range() {
        let cases: Vec<(&str, LbfgsConfig)> = vec![
            (
                "ftol",
                LbfgsConfig {
                    ftol: 1.5,
                    ..Default::default()
                },
            ),
            (
                "ftol",
                LbfgsConfig {
                    ftol: f64::NAN,
                    ..Default::default()
                },
            ),
            (
                "gtol",
                LbfgsConfig {
                    gtol: 0.0,
                    ..Default::default()
                },
            ),
            (
                "max_iterations",
                LbfgsConfig {
                    max_iterations: 0,
                    ..Default::default()
                },
            ),
            (
                "max_evaluations",
                LbfgsConfig {
                    max_evaluations: Some(0),
                    ..Default::default()
                },
            ),
            (
                "memory",
                LbfgsConfig {
                    memory: 0,
                    ..Default::default()
                },
            ),
            (
                "memory",
                LbfgsConfig {
                    memory: 101,
                    ..Default::default()
                },
            ),
            (
                "multi_start",
                LbfgsConfig {
                    multi_start: 0,
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
}
