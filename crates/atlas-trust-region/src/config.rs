//! Settings of the `trust-region` optimizer.

use atlas_core::{Capabilities, ConfigError, Solver, SolverConfig};
use serde::{Deserialize, Serialize};

use crate::solver::TrustRegion;

/// Settings of `trust-region`, with the defaults documented on each field. Validated by
/// [`check`](SolverConfig::check) before a solver is built.
///
/// Lengths (`xtol`, the radii) are measured in the solver's scaled units: spend as a
/// fraction of the budget, each variable weighted by the square root of its curvature
/// relative to the median curvature (so a radius of `1` is about "the whole budget").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustRegionConfig {
    /// Stop when the trust radius shrinks below this (no step of that length improves the
    /// objective any more). Default `1e-12`; range `(0, 1)`.
    pub xtol: f64,
    /// Stop when the largest entry of the projected gradient (scaled units: spend as a
    /// fraction of the budget, objective relative to the starting response) is below
    /// this. Default `1e-9`; range `(0, 1)`.
    pub gtol: f64,
    /// Trust-region iterations at most (accepted and rejected steps), per start, over all
    /// augmented-Lagrangian rounds. Default `10000`; range `>= 1`.
    pub max_iterations: u64,
    /// Trust radius of the first step. Default `1.0`; range `(0, max_tr_radius]`.
    pub initial_tr_radius: f64,
    /// Largest trust radius. Default `1e4`; range `[initial_tr_radius, 1e12]`.
    pub max_tr_radius: f64,
    /// Number of starts: the even split, then random allocations, run in parallel;
    /// the best feasible result is returned. Raise it for S-curves. Default `1`; range
    /// `1..=10000`.
    pub multi_start: usize,
    /// Seed of the random starts (the solve's seed when absent). Default: none.
    pub seed: Option<u64>,
}

impl Default for TrustRegionConfig {
    fn default() -> Self {
        Self {
            xtol: 1e-12,
            gtol: 1e-9,
            max_iterations: 10_000,
            initial_tr_radius: 1.0,
            max_tr_radius: 1e4,
            multi_start: 1,
            seed: None,
        }
    }
}

pub(crate) const NAME: &str = "trust-region";

#[typetag::serde(name = "trust-region")]
impl SolverConfig for TrustRegionConfig {
    fn name(&self) -> &'static str {
        NAME
    }

    fn summary(&self) -> &'static str {
        "trust-region Newton-CG on Hessian-vector products (exact, or finite differences of gradients for models without them), augmented Lagrangian for rules (min_roi, min_spend included): robust local optimum of hard or badly scaled smooth problems (global when concave)"
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
        if !(self.xtol > 0.0 && self.xtol < 1.0) {
            return bad("xtol", format!("must be in (0, 1) (got {})", self.xtol));
        }
        if !(self.gtol > 0.0 && self.gtol < 1.0) {
            return bad("gtol", format!("must be in (0, 1) (got {})", self.gtol));
        }
        if self.max_iterations == 0 {
            return bad("max_iterations", "must be >= 1 (got 0)".to_string());
        }
        if !(self.max_tr_radius > 0.0 && self.max_tr_radius <= 1e12) {
            return bad(
                "max_tr_radius",
                format!("must be in (0, 1e12] (got {})", self.max_tr_radius),
            );
        }
        if !(self.initial_tr_radius > 0.0 && self.initial_tr_radius <= self.max_tr_radius) {
            return bad(
                "initial_tr_radius",
                format!(
                    "must be in (0, max_tr_radius = {}] (got {})",
                    self.max_tr_radius, self.initial_tr_radius
                ),
            );
        }
        ConfigError::check_range(NAME, "multi_start", self.multi_start, 1..=10_000)?;
        Ok(())
    }

    fn build(&self) -> Result<Box<dyn Solver>, ConfigError> {
        self.check()?;
        Ok(Box::new(TrustRegion::new(self.clone())))
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
        let c = TrustRegionConfig::default();
        c.check().unwrap();
        let v = serde_json::to_value(&c).unwrap();
        let back: TrustRegionConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        // Through typetag, by name.
        let boxed: Box<dyn SolverConfig> = Box::new(c.clone());
        let text = serde_json::to_string(&boxed).unwrap();
        assert!(text.contains("\"optimizer\":\"trust-region\""), "{text}");
        let again: Box<dyn SolverConfig> = serde_json::from_str(&text).unwrap();
        assert_eq!(again.settings(), c.settings());
        assert_eq!(again.name(), NAME);
    }

    #[test]
    fn good_values_pass() {
        let cases = [
            TrustRegionConfig {
                xtol: 1e-6,
                gtol: 1e-5,
                max_iterations: 1,
                initial_tr_radius: 1e-3,
                max_tr_radius: 1e-3,
                multi_start: 10_000,
                seed: Some(7),
            },
            TrustRegionConfig {
                initial_tr_radius: 1e12,
                max_tr_radius: 1e12,
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
        let cases: Vec<(&str, TrustRegionConfig)> = vec![
            (
                "xtol",
                TrustRegionConfig {
                    xtol: 0.0,
                    ..Default::default()
                },
            ),
            (
                "xtol",
                TrustRegionConfig {
                    xtol: 1.0,
                    ..Default::default()
                },
            ),
            (
                "xtol",
                TrustRegionConfig {
                    xtol: f64::NAN,
                    ..Default::default()
                },
            ),
            (
                "gtol",
                TrustRegionConfig {
                    gtol: 0.0,
                    ..Default::default()
                },
            ),
            (
                "gtol",
                TrustRegionConfig {
                    gtol: 2.0,
                    ..Default::default()
                },
            ),
            (
                "max_iterations",
                TrustRegionConfig {
                    max_iterations: 0,
                    ..Default::default()
                },
            ),
            (
                "initial_tr_radius",
                TrustRegionConfig {
                    initial_tr_radius: 0.0,
                    ..Default::default()
                },
            ),
            (
                "initial_tr_radius",
                TrustRegionConfig {
                    initial_tr_radius: -1.0,
                    ..Default::default()
                },
            ),
            (
                "initial_tr_radius",
                TrustRegionConfig {
                    initial_tr_radius: 10.0,
                    max_tr_radius: 5.0,
                    ..Default::default()
                },
            ),
            (
                "max_tr_radius",
                TrustRegionConfig {
                    max_tr_radius: 0.0,
                    ..Default::default()
                },
            ),
            (
                "max_tr_radius",
                TrustRegionConfig {
                    max_tr_radius: f64::INFINITY,
                    ..Default::default()
                },
            ),
            (
                "multi_start",
                TrustRegionConfig {
                    multi_start: 0,
                    ..Default::default()
                },
            ),
            (
                "multi_start",
                TrustRegionConfig {
                    multi_start: 10_001,
                    ..Default::default()
                },
            ),
        ];
        for (field, c) in cases {
            let e = c.check().unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert_eq!(e.optimizer, NAME);
            assert!(e.reason.contains("must be"), "{e}");
            assert!(c.build().is_err());
        }
    }

    #[test]
    fn unknown_settings_are_rejected() {
        let e = serde_json::from_value::<TrustRegionConfig>(serde_json::json!({ "gtoll": 1e-6 }))
            .unwrap_err();
        assert!(e.to_string().contains("gtoll"), "{e}");
        let partial: TrustRegionConfig =
            serde_json::from_value(serde_json::json!({ "gtol": 1e-6 })).unwrap();
        assert_eq!(partial.gtol, 1e-6);
        assert_eq!(partial.xtol, TrustRegionConfig::default().xtol);
    }
}
