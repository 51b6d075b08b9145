//! The result of a solve, serialized exactly as the contract's result JSON (section 6).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::compile::Compiled;
use crate::error::{Error, InputError};
use crate::solver::Status;

/// Work and resources of a solve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Wall time of the whole solve, scaling and checks included, in seconds.
    pub wall_time_s: f64,
    /// Model value evaluations (each gradient evaluation includes one).
    pub evaluations: u64,
    /// Model gradient evaluations.
    pub gradient_evaluations: u64,
    /// Solver iterations reported.
    pub iterations: u64,
    /// Time inside the model, in seconds.
    pub model_time_s: f64,
    /// Time in projections and constraint evaluations, in seconds.
    pub constraint_time_s: f64,
    /// Peak resident memory of the process during the solve, in MiB (0 where the
    /// platform does not report it).
    pub peak_memory_mb: f64,
    /// How gradients were obtained: `"finite_differences"` for external models that give
    /// values only, `"exact"` for a service that returns gradients (contract 1.1; absent
    /// for in-process models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient: Option<String>,
    /// Evaluations answered by an external model's evaluation cache (absent without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hits: Option<u64>,
}

/// The result of a solve (contract section 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizationResult {
    /// Problem name.
    pub problem: String,
    /// Optimizer name.
    pub optimizer: String,
    /// How the solve ended.
    pub status: Status,
    /// True objective of the allocation (section 4), computed by the model.
    pub objective: f64,
    /// Proven bound on the optimum, when the backend proves one (upper when maximizing,
    /// lower for `min_spend`).
    pub bound: Option<f64>,
    /// Spend per channel and period.
    pub allocation: IndexMap<String, Vec<f64>>,
    /// Spend per channel over all periods.
    pub totals: IndexMap<String, f64>,
    /// Total spend.
    pub total_spend: f64,
    /// Largest violation of any rule, in spend units (0 when feasible).
    pub max_violation: f64,
    /// Work and resources.
    pub metrics: Metrics,
    /// Which optimizer `auto` chose, and why (absent when an optimizer was named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected: Option<Selected>,
    /// `d objective / d budget` at the returned plan, in objective units per unit of
    /// spend: the budget row's multiplier, where the optimizer has one (the dual of
    /// `convex`, the projection or augmented-Lagrangian multiplier of `lbfgs` and
    /// `trust-region`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_multiplier: Option<f64>,
    /// Whether the result came from a result cache (contract 1.1; `scenarios.md` section
    /// 4); absent when the solve ran without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStatus>,
    /// The spread of the objective over the draws of a posterior model, for the returned
    /// allocation (`models.md` section 4); absent for other models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<crate::draws::RiskBlock>,
}

/// The optimizer that `auto` chose for a problem, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selected {
    /// Registered name of the chosen optimizer.
    pub optimizer: String,
    /// Why: the features of the problem and model that decided.
    pub reason: String,
}

/// Where a result came from when a result cache was asked for (`scenarios.md` section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheStatus {
    /// Read from the cache, after its allocation was re-evaluated.
    Hit,
    /// Solved (and stored, when the result may be cached).
    Miss,
    /// Solved with the cache turned off.
    Off,
}

impl CacheStatus {
    /// The name used in results.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Off => "off",
        }
    }
}

impl OptimizationResult {
    /// The relative gap `|bound - objective| / max(1, |objective|)`, when a bound is known.
    pub fn gap(&self) -> Option<f64> {
        self.bound
            .map(|b| (b - self.objective).abs() / self.objective.abs().max(1.0))
    }

    /// The flat allocation vector in the problem's layout.
    pub fn flat_allocation(&self, compiled: &Compiled) -> Result<Vec<f64>, Error> {
        Allocation {
            allocation: self.allocation.clone(),
        }
        .to_flat(compiled)
    }
}

/// An allocation read from a file: a full result, or just `{"allocation": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    /// Spend per channel and period (each channel once).
    #[serde(deserialize_with = "crate::problem::unique_keys")]
    pub allocation: IndexMap<String, Vec<f64>>,
}

impl Allocation {
    /// Reads the `allocation` of a result file (other fields are ignored).
    pub fn from_path(path: &std::path::Path) -> Result<Allocation, Error> {
        crate::problem::read_document(path)
    }

    /// Builds the allocation of a flat vector.
    pub fn from_flat(compiled: &Compiled, x: &[f64]) -> Allocation {
        let layout = compiled.layout();
        Allocation {
            allocation: layout
                .channels()
                .iter()
                .enumerate()
                .map(|(c, name)| (name.clone(), layout.channel_slice(x, c).to_vec()))
                .collect(),
        }
    }

    /// The flat vector in `compiled`'s layout; every channel must be present with one
    /// finite, non-negative value per period.
    pub fn to_flat(&self, compiled: &Compiled) -> Result<Vec<f64>, Error> {
        let layout = compiled.layout();
        let mut x = vec![0.0; layout.len()];
        for (name, values) in &self.allocation {
            let Some(c) = layout.channel_index(name) else {
                let hint =
                    crate::suggest::nearest(name, layout.channels().iter().map(String::as_str))
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                return Err(InputError::new(
                    format!("allocation.{name}"),
                    format!(
                        "unknown channel `{name}`{hint}; the problem's channels: {}",
                        layout.channels().join(", ")
                    ),
                )
                .into());
            };
            if values.len() != layout.periods() {
                return Err(InputError::new(
                    format!("allocation.{name}"),
                    format!(
                        "{} values given, the problem has {} periods",
                        values.len(),
                        layout.periods()
                    ),
                )
                .into());
            }
            for (t, &v) in values.iter().enumerate() {
                if !v.is_finite() || v < 0.0 {
                    return Err(InputError::new(
                        format!("allocation.{name}[{t}]"),
                        format!("spend must be a finite number >= 0 (got {v})"),
                    )
                    .into());
                }
                x[layout.index(c, t)] = v;
            }
        }
        for name in layout.channels() {
            if !self.allocation.contains_key(name) {
                return Err(InputError::new(
                    format!("allocation.{name}"),
                    "missing: every channel of the problem needs its spend",
                )
                .into());
            }
        }
        Ok(x)
    }
}

/// The assessment of a given allocation (`atlas evaluate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// True objective (section 4).
    pub objective: f64,
    /// Largest violation of any rule.
    pub max_violation: f64,
    /// Whether `max_violation <= 1e-6 * max(1, budget)`.
    pub feasible: bool,
    /// Total spend.
    pub total_spend: f64,
    /// The spread of the objective over the draws of a posterior model (absent for
    /// other models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<crate::draws::RiskBlock>,
}

impl Evaluation {
    /// Evaluates `x` against `compiled`.
    pub fn of(compiled: &Compiled, x: &[f64]) -> Evaluation {
        let max_violation = compiled.max_violation(x);
        Evaluation {
            objective: compiled.objective_value(x),
            max_violation,
            feasible: max_violation <= compiled.feasibility_tolerance(),
            total_spend: x.iter().sum(),
            risk: compiled.risk(x),
        }
    }
}
