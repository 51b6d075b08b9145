//! Settings of the `cmaes` optimizer.

use atlas_core::{Capabilities, ConfigError, Solver, SolverConfig};
use serde::{Deserialize, Serialize};

use crate::solver::Cmaes;

/// Restart strategy after a run of CMA-ES ends by its own stopping criteria.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restarts {
    /// One run.
    None,
    /// IPOP: each restart doubles the population, from a random point.
    Ipop,
    /// BIPOP: alternates IPOP restarts with runs of small population and step size,
    /// giving each regime about the same number of evaluations.
    Bipop,
}

/// Shape of the covariance matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Covariance {
    /// `full` up to [`FULL_COVARIANCE_MAX_DIM`] variables, `diagonal` above.
    Auto,
    /// Full covariance matrix: learns correlations; `O(n^2)` memory and work per sample,
    /// `O(n^3)` per eigendecomposition.
    Full,
    /// Diagonal covariance (sep-CMA-ES): `O(n)` per sample, learns each variable's scale
    /// faster but no correlations.
    Diagonal,
}

/// Above this many variables `covariance = "auto"` uses the diagonal form.
pub const FULL_COVARIANCE_MAX_DIM: usize = 50;

/// Settings of `cmaes`, with the defaults documented on each field. Validated by
/// [`check`](SolverConfig::check) before a solver is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CmaesConfig {
    /// Initial step size, as a fraction of each variable's range (the search runs in the
    /// unit cube that maps onto the feasible set). Default `0.3`; range `(0, 1]`.
    pub sigma0: f64,
    /// Population size `lambda` of the first run (none: `4 + floor(3 ln n)`). Restarts
    /// grow it. Default: none; range `4..=100000`.
    pub population_size: Option<usize>,
    /// Model evaluations at most, over all runs (none when absent: the runs' own stopping
    /// criteria end the search). Default: none; range `>= 1`.
    pub max_evaluations: Option<u64>,
    /// Restart strategy: `"none"`, `"ipop"` or `"bipop"`. Default `"ipop"`.
    pub restarts: Restarts,
    /// Restarts at most after the first run (`bipop`: counts the large-population runs;
    /// small runs come between them). Default `9`; range `0..=30`.
    pub max_restarts: u32,
    /// Covariance shape: `"auto"`, `"full"` or `"diagonal"`. Default `"auto"` (full up to
    /// 50 variables).
    pub covariance: Covariance,
    /// Threads evaluating each generation (a rayon pool of this size). Results do not
    /// depend on it. Default `1`; range `1..=1024`.
    pub n_jobs: usize,
    /// Seed of the search (the solve's `--seed` when absent). Default: none.
    pub seed: Option<u64>,
}

impl Default for CmaesConfig {
    fn default() -> Self {
        Self {
            sigma0: 0.3,
            population_size: None,
            max_evaluations: None,
            restarts: Restarts::Ipop,
            max_restarts: 9,
            covariance: Covariance::Auto,
            n_jobs: 1,
            seed: None,
        }
    }
}

const NAME: &str = "cmaes";

#[typetag::serde(name = "cmaes")]
impl SolverConfig for CmaesConfig {
    fn name(&self) -> &'static str {
        NAME
    }

    fn summary(&self) -> &'static str {
        "CMA-ES with IPOP/BIPOP restarts over a feasible parametrization: black-box models (no gradient needed), many variables, parallel generations"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            needs_gradient: false,
            needs_hessian: false,
            needs_structure: false,
            handles_nonconvex: true,
            integer_features: false,
            nonlinear_constraints: false,
            proves_bound: false,
            parallel: true,
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, reason: String| Err(ConfigError::new(NAME, field, reason));
        if !(self.sigma0 > 0.0 && self.sigma0 <= 1.0) {
            return bad("sigma0", format!("must be in (0, 1] (got {})", self.sigma0));
        }
        if let Some(p) = self.population_size {
            if !(4..=100_000).contains(&p) {
                return bad(
                    "population_size",
                    format!("must be in 4..=100000 (got {p})"),
                );
            }
        }
        if self.max_evaluations == Some(0) {
            return bad("max_evaluations", "must be >= 1 (got 0)".to_string());
        }
        if self.max_restarts > 30 {
            return bad(
                "max_restarts",
                format!("must be in 0..=30 (got {})", self.max_restarts),
            );
        }
        ConfigError::check_range(NAME, "n_jobs", self.n_jobs, 1..=1024)?;
        Ok(())
    }

    fn build(&self) -> Result<Box<dyn Solver>, ConfigError> {
        self.check()?;
        Ok(Box::new(Cmaes::new(self.clone())))
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
        let c = CmaesConfig::default();
        c.check().unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["restarts"], "ipop");
        assert_eq!(v["covariance"], "auto");
        let back: CmaesConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        // Through typetag, by name.
        let boxed: Box<dyn SolverConfig> = Box::new(c.clone());
        let text = serde_json::to_string(&boxed).unwrap();
        assert!(text.contains("\"optimizer\":\"cmaes\""), "{text}");
        let again: Box<dyn SolverConfig> = serde_json::from_str(&text).unwrap();
        assert_eq!(again.settings(), c.settings());
    }

    #[test]
    fn good_values_pass() {
        let cases = vec![
            CmaesConfig {
                sigma0: 1.0,
                ..Default::default()
            },
            CmaesConfig {
                sigma0: 1e-6,
                ..Default::default()
            },
            CmaesConfig {
                population_size: Some(4),
                ..Default::default()
            },
            CmaesConfig {
                population_size: Some(100_000),
                ..Default::default()
            },
            CmaesConfig {
                max_evaluations: Some(1),
                ..Default::default()
            },
            CmaesConfig {
                restarts: Restarts::Bipop,
                max_restarts: 30,
                ..Default::default()
            },
            CmaesConfig {
                restarts: Restarts::None,
                max_restarts: 0,
                ..Default::default()
            },
            CmaesConfig {
                covariance: Covariance::Diagonal,
                n_jobs: 1024,
                seed: Some(3),
                ..Default::default()
            },
        ];
        for c in cases {
            c.check().unwrap();
            assert!(c.build().is_ok());
        }
    }

    #[test]
    fn bad_values_name_the_field_and_range() {
        let cases: Vec<(&str, CmaesConfig)> = vec![
            (
                "sigma0",
                CmaesConfig {
                    sigma0: 0.0,
                    ..Default::default()
                },
            ),
            (
                "sigma0",
                CmaesConfig {
                    sigma0: 1.5,
                    ..Default::default()
                },
            ),
            (
                "sigma0",
                CmaesConfig {
                    sigma0: f64::NAN,
                    ..Default::default()
                },
            ),
            (
                "population_size",
                CmaesConfig {
                    population_size: Some(3),
                    ..Default::default()
                },
            ),
            (
                "population_size",
                CmaesConfig {
                    population_size: Some(100_001),
                    ..Default::default()
                },
            ),
            (
                "max_evaluations",
                CmaesConfig {
                    max_evaluations: Some(0),
                    ..Default::default()
                },
            ),
            (
                "max_restarts",
                CmaesConfig {
                    max_restarts: 31,
                    ..Default::default()
                },
            ),
            (
                "n_jobs",
                CmaesConfig {
                    n_jobs: 0,
                    ..Default::default()
                },
            ),
            (
                "n_jobs",
                CmaesConfig {
                    n_jobs: 1025,
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
    fn unknown_fields_and_bad_enum_values_are_rejected() {
        let e = serde_json::from_str::<CmaesConfig>(r#"{"sigma": 0.2}"#).unwrap_err();
        assert!(e.to_string().contains("sigma"), "{e}");
        let e = serde_json::from_str::<CmaesConfig>(r#"{"restarts": "lpop"}"#).unwrap_err();
        assert!(e.to_string().contains("ipop"), "{e}");
        let c: CmaesConfig =
            serde_json::from_str(r#"{"restarts": "bipop", "covariance": "diagonal"}"#).unwrap();
        assert_eq!(
            (c.restarts, c.covariance),
            (Restarts::Bipop, Covariance::Diagonal)
        );
    }
}
