//! Settings of the `tpe` optimizer.

use atlas_core::{Capabilities, ConfigError, Solver, SolverConfig};
use serde::{Deserialize, Serialize};

use crate::sampler::SamplerSettings;
use crate::solver::Tpe;

/// Settings of `tpe`, with the defaults documented on each field (Optuna's
/// `TPESampler` meanings and defaults where Optuna has the setting). Validated by
/// [`check`](SolverConfig::check) before a solver is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TpeConfig {
    /// Trials (model evaluations) to run. Optuna has no default (it runs until stopped);
    /// absent here, `max(1000, 150 * variables)`: 1000 up to 6 variables, 3600 for the 24
    /// of `profit.toml`, which is what reaching 2 % of the optimum of the example problems
    /// takes (see the README). Range `1..=100000000`.
    pub n_trials: Option<u64>,
    /// Trials drawn uniformly at random before the estimators take over. Default `10`;
    /// range `>= 1`.
    pub n_startup_trials: u64,
    /// Candidates drawn from the "good" estimator `l(x)` and compared on
    /// `l(x) / g(x)` for each suggestion. Default `24`; range `1..=100000`.
    pub n_ei_candidates: usize,
    /// Fraction of the finished trials that form the "good" set:
    /// `n_below = min(ceil(gamma * n), max_below)` (Optuna's default gamma function is
    /// `min(ceil(0.1 n), 25)`). Default `0.1`; range `(0, 1]`.
    pub gamma: f64,
    /// Cap on the size of the "good" set (the `25` of Optuna's default gamma). Default
    /// `25`; range `1..=10000`.
    pub max_below: usize,
    /// Joint (multivariate) estimators instead of one per variable. Absent: chosen by the
    /// number of variables, univariate up to 10, multivariate above (Optuna 5 chooses by
    /// the number of objectives: multivariate for one). Univariate recombines good values
    /// of each variable across trials, which escapes local optima in few variables
    /// (`scurve.toml`: 20 seeds of 20 within 2 %, against 10 to 14 multivariate);
    /// multivariate keeps good combinations together, which many variables need (24-d
    /// sphere after 1000 trials: 5.4 against 30). Default: absent.
    pub multivariate: Option<bool>,
    /// With `n_jobs > 1`: count the trials of the current batch that are still running as
    /// bad ones (in `g(x)`), so that a batch spreads out instead of suggesting the same
    /// region `n_jobs` times. Optuna 5's default. Default `true`.
    pub constant_liar: bool,
    /// Trials evaluated in parallel: each batch of `n_jobs` suggestions is evaluated on a
    /// pool of `n_jobs` threads and told in order, so results depend on `seed` and
    /// `n_jobs` only, never on thread timing. Default `1`; range `1..=1024`.
    pub n_jobs: usize,
    /// Seed of the sampler (the solve's seed when absent). Default: none.
    pub seed: Option<u64>,
    /// Most observations the "bad" estimator `g(x)` uses (Atlas's bound on the cost per
    /// trial; Optuna uses every trial). Beyond it, the newest `max_above / 2` trials are
    /// kept exactly and the older ones are represented by a random member of each of
    /// `max_above / 2` blocks, weighted by the block's total Optuna weight. Default `256`;
    /// range `4..=1000000`.
    pub max_above: usize,
}

impl Default for TpeConfig {
    fn default() -> Self {
        Self {
            n_trials: None,
            n_startup_trials: 10,
            n_ei_candidates: 24,
            gamma: 0.1,
            max_below: 25,
            multivariate: None,
            constant_liar: true,
            n_jobs: 1,
            seed: None,
            max_above: 256,
        }
    }
}

/// Above this many variables, `multivariate` defaults to `true`.
const UNIVARIATE_UP_TO: usize = 10;

impl TpeConfig {
    /// The number of trials for a problem of `dims` variables.
    pub fn trials_for(&self, dims: usize) -> u64 {
        self.n_trials
            .unwrap_or_else(|| (150 * dims as u64).max(1000))
    }

    /// Whether the estimators are multivariate for a problem of `dims` variables.
    pub fn multivariate_for(&self, dims: usize) -> bool {
        self.multivariate.unwrap_or(dims > UNIVARIATE_UP_TO)
    }

    pub(crate) fn sampler_settings(&self, dims: usize) -> SamplerSettings {
        SamplerSettings {
            n_startup_trials: self.n_startup_trials,
            n_ei_candidates: self.n_ei_candidates,
            gamma: self.gamma,
            max_below: self.max_below,
            max_above: self.max_above,
            multivariate: self.multivariate_for(dims),
            constant_liar: self.constant_liar,
            prior_weight: 1.0,
        }
    }
}

const NAME: &str = "tpe";

#[typetag::serde(name = "tpe")]
impl SolverConfig for TpeConfig {
    fn name(&self) -> &'static str {
        NAME
    }

    fn summary(&self) -> &'static str {
        "Tree-structured Parzen Estimator (Optuna's algorithm): black-box models with few variables, best found within n_trials, parallel with n_jobs"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            needs_gradient: false,
            needs_hessian: false,
            needs_structure: false,
            handles_nonconvex: true,
            // Every trial is mapped onto the linear feasible set; integer and activation
            // rules, `min_roi` and the `min_spend` target are not part of that map.
            integer_features: false,
            nonlinear_constraints: false,
            proves_bound: false,
            parallel: true,
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, reason: String| Err(ConfigError::new(NAME, field, reason));
        if let Some(n) = self.n_trials {
            if !(1..=100_000_000).contains(&n) {
                return bad("n_trials", format!("must be in 1..=100000000 (got {n})"));
            }
        }
        if self.n_startup_trials == 0 {
            return bad("n_startup_trials", "must be >= 1 (got 0)".to_string());
        }
        ConfigError::check_range(NAME, "n_ei_candidates", self.n_ei_candidates, 1..=100_000)?;
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return bad("gamma", format!("must be in (0, 1] (got {})", self.gamma));
        }
        ConfigError::check_range(NAME, "max_below", self.max_below, 1..=10_000)?;
        ConfigError::check_range(NAME, "n_jobs", self.n_jobs, 1..=1024)?;
        ConfigError::check_range(NAME, "max_above", self.max_above, 4..=1_000_000)?;
        Ok(())
    }

    fn build(&self) -> Result<Box<dyn Solver>, ConfigError> {
        self.check()?;
        Ok(Box::new(Tpe::new(self.clone())))
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
        let c = TpeConfig::default();
        c.check().unwrap();
        let v = serde_json::to_value(&c).unwrap();
        let back: TpeConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        // Through typetag, by name.
        let boxed: Box<dyn SolverConfig> = Box::new(c.clone());
        let text = serde_json::to_string(&boxed).unwrap();
        assert!(text.contains("\"optimizer\":\"tpe\""), "{text}");
        let again: Box<dyn SolverConfig> = serde_json::from_str(&text).unwrap();
        assert_eq!(again.settings(), c.settings());
        // Optuna's defaults.
        assert_eq!(
            (c.n_startup_trials, c.n_ei_candidates, c.gamma, c.max_below),
            (10, 24, 0.1, 25)
        );
        assert!(c.constant_liar);
        assert_eq!(c.n_jobs, 1);
    }

    #[test]
    fn automatic_trials_and_multivariate_follow_the_number_of_variables() {
        let c = TpeConfig::default();
        assert_eq!(c.trials_for(3), 1000);
        assert_eq!(c.trials_for(6), 1000);
        assert_eq!(c.trials_for(7), 1050);
        assert_eq!(c.trials_for(24), 3600);
        assert!(!c.multivariate_for(6) && !c.multivariate_for(10));
        assert!(c.multivariate_for(11) && c.multivariate_for(24));
        // Explicit settings win.
        let c = TpeConfig {
            n_trials: Some(7),
            multivariate: Some(false),
            ..Default::default()
        };
        assert_eq!(c.trials_for(24), 7);
        assert!(!c.multivariate_for(24));
        // In a settings document, `n_trials` and `multivariate` may be given or left out.
        let c: TpeConfig =
            serde_json::from_str(r#"{"n_trials": 50, "multivariate": true}"#).unwrap();
        assert_eq!((c.n_trials, c.multivariate), (Some(50), Some(true)));
    }

    #[test]
    fn good_values_pass() {
        let cases = [
            TpeConfig {
                n_trials: Some(1),
                ..Default::default()
            },
            TpeConfig {
                gamma: 1.0,
                max_below: 10_000,
                ..Default::default()
            },
            TpeConfig {
                n_jobs: 1024,
                constant_liar: false,
                multivariate: Some(true),
                ..Default::default()
            },
            TpeConfig {
                max_above: 4,
                seed: Some(u64::MAX),
                n_trials: Some(100_000_000),
                ..Default::default()
            },
            TpeConfig {
                n_ei_candidates: 1,
                n_startup_trials: 1,
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
        let cases: Vec<(&str, TpeConfig)> = vec![
            (
                "n_trials",
                TpeConfig {
                    n_trials: Some(0),
                    ..Default::default()
                },
            ),
            (
                "n_trials",
                TpeConfig {
                    n_trials: Some(100_000_001),
                    ..Default::default()
                },
            ),
            (
                "n_startup_trials",
                TpeConfig {
                    n_startup_trials: 0,
                    ..Default::default()
                },
            ),
            (
                "n_ei_candidates",
                TpeConfig {
                    n_ei_candidates: 0,
                    ..Default::default()
                },
            ),
            (
                "gamma",
                TpeConfig {
                    gamma: 0.0,
                    ..Default::default()
                },
            ),
            (
                "gamma",
                TpeConfig {
                    gamma: 1.5,
                    ..Default::default()
                },
            ),
            (
                "gamma",
                TpeConfig {
                    gamma: f64::NAN,
                    ..Default::default()
                },
            ),
            (
                "max_below",
                TpeConfig {
                    max_below: 0,
                    ..Default::default()
                },
            ),
            (
                "n_jobs",
                TpeConfig {
                    n_jobs: 0,
                    ..Default::default()
                },
            ),
            (
                "n_jobs",
                TpeConfig {
                    n_jobs: 1025,
                    ..Default::default()
                },
            ),
            (
                "max_above",
                TpeConfig {
                    max_above: 3,
                    ..Default::default()
                },
            ),
            (
                "max_above",
                TpeConfig {
                    max_above: 1_000_001,
                    ..Default::default()
                },
            ),
            (
                "n_ei_candidates",
                TpeConfig {
                    n_ei_candidates: 100_001,
                    ..Default::default()
                },
            ),
            (
                "max_below",
                TpeConfig {
                    max_below: 10_001,
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
    fn registers_under_its_name_with_honest_capabilities() {
        let mut registry = atlas_core::Registry::new();
        crate::register(&mut registry).unwrap();
        assert_eq!(registry.names(), vec!["tpe"]);
        assert!(
            crate::register(&mut registry).is_err(),
            "duplicates are rejected"
        );
        let caps = registry.list()[0].capabilities;
        assert!(!caps.needs_gradient && !caps.needs_hessian && !caps.needs_structure);
        assert!(caps.handles_nonconvex && caps.parallel);
        assert!(!caps.integer_features && !caps.nonlinear_constraints && !caps.proves_bound);
        // Settings by name, as the CLI's `--set` passes them.
        let mut settings = serde_json::Map::new();
        settings.insert("n_jobs".into(), 4.into());
        settings.insert("multivariate".into(), true.into());
        let c = registry.config("tpe", settings).unwrap();
        assert_eq!(c.settings()["n_jobs"], 4);
        let mut bad = serde_json::Map::new();
        bad.insert("gamma".into(), 2.0.into());
        assert!(registry.config("tpe", bad).is_err());
    }

    #[test]
    fn unknown_settings_are_refused() {
        let e = serde_json::from_str::<TpeConfig>(r#"{"n_trails": 5}"#).unwrap_err();
        assert!(e.to_string().contains("n_trails"), "{e}");
    }
}
