//! Settings of the `convex` optimizer.

use atlas_core::{Capabilities, ConfigError, Solver, SolverConfig};
use clarabel::solver::DefaultSettings;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::solver::Convex;

/// Settings of `convex`, with the defaults documented on each field. Validated by
/// [`check`](SolverConfig::check) before a solver is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConvexConfig {
    /// `status = optimal` only when the proven relative gap
    /// `|bound - objective| / max(|objective|, 1e-300)` is at most this. Default `1e-7`;
    /// range `[1e-14, 1)`.
    pub gap_tolerance: f64,
    /// Rounds of the outer approximation at most: each round is one conic solve
    /// (Clarabel) followed by the Newton polish; rounds after the first add tangent cuts
    /// to `logistic` curves where the previous round's answer lies. Default `20`; range
    /// `1..=1000`.
    pub max_iterations: u64,
    /// Seconds at most for the whole solve (status `time_limit` when reached; the solve's
    /// own `--time-limit` applies too). Default: none; range `> 0`.
    pub time_limit: Option<f64>,
    /// Tangent cuts placed on each `logistic` term before the first round, spread over
    /// the curve's rising part. Default `6`; range `2..=200`.
    pub logistic_cuts: usize,
    /// Refine the conic solution by an active-set Newton method on the true curves
    /// (machine precision, exact multipliers for the certificate). Turning it off leaves
    /// the interior point's accuracy (about `1e-8`), usually too coarse to prove a gap of
    /// `1e-7`. Default `true`.
    pub polish: bool,
    /// Expert pass-through of Clarabel's own settings (`DefaultSettings` field names, for
    /// example `{ tol_gap_rel = 1e-10, max_iter = 400 }`), applied over the backend's
    /// choices. Unknown names are errors. Default: empty.
    pub clarabel: Map<String, Value>,
}

impl Default for ConvexConfig {
    fn default() -> Self {
        Self {
            gap_tolerance: 1e-7,
            max_iterations: 20,
            time_limit: None,
            logistic_cuts: 6,
            polish: true,
            clarabel: Map::new(),
        }
    }
}

const NAME: &str = "convex";

impl ConvexConfig {
    /// Clarabel's settings for this configuration: quiet, the backend's tolerances, then
    /// the expert overrides. Errors name the offending Clarabel setting.
    pub(crate) fn clarabel_settings(&self) -> Result<DefaultSettings<f64>, ConfigError> {
        let base = DefaultSettings::<f64> {
            verbose: false,
            // Looser than Clarabel's defaults (1e-8): the Newton polish takes the answer to
            // machine precision, so the interior point only has to find the active set.
            tol_gap_abs: 1e-7,
            tol_gap_rel: 1e-7,
            tol_feas: 1e-7,
            max_iter: 200,
            // Off for speed; the solver turns it on and solves again when Clarabel fails or
            // finds infeasibility only at reduced accuracy.
            iterative_refinement_enable: false,
            ..DefaultSettings::default()
        };
        if self.clarabel.is_empty() {
            return Ok(base);
        }
        let mut value = match serde_json::to_value(&base) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(ConfigError::new(
                    NAME,
                    "clarabel",
                    "Clarabel's settings do not serialize",
                ))
            }
        };
        let known: Vec<String> = value.keys().cloned().collect();
        // JSON has no infinity (`time_limit` serializes as null): leave such fields to
        // Clarabel's own defaults.
        value.retain(|_, v| !v.is_null());
        for (k, v) in &self.clarabel {
            if !known.contains(k) {
                let hint = atlas_core::suggest::nearest(k, known.iter().map(String::as_str))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(ConfigError::new(
                    NAME,
                    format!("clarabel.{k}"),
                    format!(
                        "unknown Clarabel setting{hint}; must be one of {}",
                        known.join(", ")
                    ),
                ));
            }
            value.insert(k.clone(), v.clone());
        }
        let settings: DefaultSettings<f64> =
            serde_json::from_value(Value::Object(value)).map_err(|e| {
                ConfigError::new(
                    NAME,
                    "clarabel",
                    format!("must be Clarabel settings of the right types: {e}"),
                )
            })?;
        for (field, v) in [
            ("tol_gap_abs", settings.tol_gap_abs),
            ("tol_gap_rel", settings.tol_gap_rel),
            ("tol_feas", settings.tol_feas),
            ("tol_infeas_abs", settings.tol_infeas_abs),
            ("tol_infeas_rel", settings.tol_infeas_rel),
            ("tol_ktratio", settings.tol_ktratio),
        ] {
            if !(v > 0.0 && v < 1.0) {
                return Err(ConfigError::new(
                    NAME,
                    format!("clarabel.{field}"),
                    format!("must be in (0, 1) (got {v})"),
                ));
            }
        }
        if settings.max_iter == 0 {
            return Err(ConfigError::new(
                NAME,
                "clarabel.max_iter",
                "must be >= 1 (got 0)",
            ));
        }
        if settings.time_limit.is_nan() || settings.time_limit <= 0.0 {
            return Err(ConfigError::new(
                NAME,
                "clarabel.time_limit",
                format!("must be > 0 (got {})", settings.time_limit),
            ));
        }
        if !settings.direct_kkt_solver {
            return Err(ConfigError::new(
                NAME,
                "clarabel.direct_kkt_solver",
                "must be true (Clarabel has no indirect solver)",
            ));
        }
        if !["auto", "qdldl", "faer"].contains(&settings.direct_solve_method.as_str()) {
            return Err(ConfigError::new(
                NAME,
                "clarabel.direct_solve_method",
                format!(
                    "must be \"auto\" or \"qdldl\" (got \"{}\")",
                    settings.direct_solve_method
                ),
            ));
        }
        Ok(settings)
    }
}

#[typetag::serde(name = "convex")]
impl SolverConfig for ConvexConfig {
    fn name(&self) -> &'static str {
        NAME
    }

    fn summary(&self) -> &'static str {
        "Clarabel conic solver with exact Newton polish: the certified global optimum of concave problems, with a proven bound"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            needs_gradient: false,
            needs_hessian: false,
            needs_structure: true,
            handles_nonconvex: false,
            integer_features: false,
            nonlinear_constraints: true,
            proves_bound: true,
            parallel: false,
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, reason: String| Err(ConfigError::new(NAME, field, reason));
        if !(self.gap_tolerance >= 1e-14 && self.gap_tolerance < 1.0) {
            return bad(
                "gap_tolerance",
                format!("must be in [1e-14, 1) (got {})", self.gap_tolerance),
            );
        }
        ConfigError::check_range(NAME, "max_iterations", self.max_iterations, 1..=1000)?;
        ConfigError::check_seconds(NAME, "time_limit", self.time_limit)?;
        ConfigError::check_range(NAME, "logistic_cuts", self.logistic_cuts, 2..=200)?;
        self.clarabel_settings().map(|_| ())
    }

    fn build(&self) -> Result<Box<dyn Solver>, ConfigError> {
        self.check()?;
        let settings = self.clarabel_settings()?;
        Ok(Box::new(Convex::new(self.clone(), settings)))
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
        let c = ConvexConfig::default();
        c.check().unwrap();
        let v = serde_json::to_value(&c).unwrap();
        let back: ConvexConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        // Through typetag, by name.
        let boxed: Box<dyn SolverConfig> = Box::new(c.clone());
        let text = serde_json::to_string(&boxed).unwrap();
        assert!(text.contains("\"optimizer\":\"convex\""), "{text}");
        let again: Box<dyn SolverConfig> = serde_json::from_str(&text).unwrap();
        assert_eq!(again.settings(), c.settings());
        assert!(c.capabilities().proves_bound);
        assert!(!c.capabilities().handles_nonconvex);
        assert!(c.capabilities().needs_structure);
    }

    #[test]
    fn good_values_pass() {
        let mut clarabel = Map::new();
        clarabel.insert("tol_gap_rel".into(), serde_json::json!(1e-10));
        clarabel.insert("max_iter".into(), serde_json::json!(400));
        let c = ConvexConfig {
            gap_tolerance: 1e-9,
            max_iterations: 1,
            time_limit: Some(2.5),
            logistic_cuts: 2,
            polish: false,
            clarabel,
        };
        c.check().unwrap();
        let s = c.clarabel_settings().unwrap();
        assert_eq!(s.tol_gap_rel, 1e-10);
        assert_eq!(s.max_iter, 400);
        assert!(!s.verbose);
        assert!(c.build().is_ok());
    }

    #[test]
    fn bad_values_name_the_field_and_range() {
        let with = |k: &str, v: Value| {
            let mut m = Map::new();
            m.insert(k.to_string(), v);
            ConvexConfig {
                clarabel: m,
                ..Default::default()
            }
        };
        let cases: Vec<(&str, ConvexConfig)> = vec![
            (
                "gap_tolerance",
                ConvexConfig {
                    gap_tolerance: 0.0,
                    ..Default::default()
                },
            ),
            (
                "gap_tolerance",
                ConvexConfig {
                    gap_tolerance: 1.0,
                    ..Default::default()
                },
            ),
            (
                "gap_tolerance",
                ConvexConfig {
                    gap_tolerance: f64::NAN,
                    ..Default::default()
                },
            ),
            (
                "max_iterations",
                ConvexConfig {
                    max_iterations: 0,
                    ..Default::default()
                },
            ),
            (
                "max_iterations",
                ConvexConfig {
                    max_iterations: 1001,
                    ..Default::default()
                },
            ),
            (
                "time_limit",
                ConvexConfig {
                    time_limit: Some(0.0),
                    ..Default::default()
                },
            ),
            (
                "time_limit",
                ConvexConfig {
                    time_limit: Some(f64::INFINITY),
                    ..Default::default()
                },
            ),
            (
                "logistic_cuts",
                ConvexConfig {
                    logistic_cuts: 1,
                    ..Default::default()
                },
            ),
            (
                "logistic_cuts",
                ConvexConfig {
                    logistic_cuts: 201,
                    ..Default::default()
                },
            ),
            (
                "clarabel.tol_gap_rel",
                with("tol_gap_rel", serde_json::json!(0.0)),
            ),
            ("clarabel.max_iter", with("max_iter", serde_json::json!(0))),
            (
                "clarabel.direct_solve_method",
                with("direct_solve_method", serde_json::json!("magic")),
            ),
            (
                "clarabel.direct_kkt_solver",
                with("direct_kkt_solver", serde_json::json!(false)),
            ),
            ("clarabel", with("max_iter", serde_json::json!("many"))),
        ];
        for (field, c) in cases {
            let e = c.check().unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.reason.contains("must be"), "{e}");
            assert!(c.build().is_err());
        }
        let e = with("tol_gap_rell", serde_json::json!(1e-9))
            .check()
            .unwrap_err();
        assert_eq!(e.field, "clarabel.tol_gap_rell");
        assert!(e.reason.contains("did you mean `tol_gap_rel`"), "{e}");
    }

    #[test]
    fn unknown_top_level_fields_are_rejected() {
        let r: Result<ConvexConfig, _> =
            serde_json::from_value(serde_json::json!({ "gap_tolerence": 1e-6 }));
        assert!(r.is_err());
    }
}
