//! The correctness check that precedes timing, and the per-optimizer gap tolerances.
//!
//! Every result is checked for what any backend owes (contract sections 4 and 6): a
//! feasible allocation, a reported objective equal to the one Atlas re-evaluates from the
//! allocation, no objective past a proven bound, and no reported bound that contradicts
//! the best known value. The gap to the known optimum is then held to the optimizer's
//! tolerance wherever the optimizer promises to reach it (see [`Tolerance`]).

use atlas_core::{Capabilities, Compiled, Feature, OptimizationResult, Status};
use serde::{Deserialize, Serialize};

use crate::optimum::{KnownOptimum, Sense};

/// What an optimizer promises about the quality of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Promise {
    /// A global optimum with a proven bound (declares `proves_bound`): held to its
    /// tolerance on every problem it accepts.
    Global,
    /// A local optimum by gradients (declares `needs_gradient`): global on concave
    /// problems, so held to its tolerance there only.
    Local,
    /// The best point within an evaluation budget (black-box search): held to a loose
    /// tolerance on small concave problems only.
    BestFound,
}

/// The gap an optimizer must reach, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// What the optimizer promises.
    pub promise: Promise,
    /// Largest relative gap to the known optimum, `|optimum - objective| / max(1,
    /// |optimum|)`.
    pub gap: f64,
    /// Held only on concave problems without integer rules.
    pub concave_only: bool,
    /// Held only on problems with at most this many variables.
    pub max_variables: Option<usize>,
}

impl Tolerance {
    /// The documented tolerance of a registered optimizer: by name for the backends Atlas
    /// ships, else by what its capabilities say it is.
    ///
    /// | optimizer | promise | gap | held on |
    /// |---|---|---|---|
    /// | `convex` | global | 1e-6 | every accepted problem |
    /// | `milp` | global | 1e-3 | every accepted problem (piecewise-linear curves) |
    /// | `lbfgs`, `trust-region` | local | 1e-6 | concave problems |
    /// | `cmaes` | best found | 1e-2 | concave problems up to 10 variables |
    /// | `tpe` | best found | 5e-2 | concave problems up to 10 variables |
    /// | other, `proves_bound` | global | 1e-4 | every accepted problem |
    /// | other, `needs_gradient` | local | 1e-6 | concave problems |
    /// | other | best found | 5e-2 | concave problems up to 10 variables |
    pub fn for_optimizer(name: &str, caps: &Capabilities) -> Tolerance {
        let global = |gap| Tolerance {
            promise: Promise::Global,
            gap,
            concave_only: false,
            max_variables: None,
        };
        let local = Tolerance {
            promise: Promise::Local,
            gap: 1e-6,
            concave_only: true,
            max_variables: None,
        };
        let best_found = |gap| Tolerance {
            promise: Promise::BestFound,
            gap,
            concave_only: true,
            max_variables: Some(10),
        };
        match name {
            "convex" => global(1e-6),
            "milp" => global(1e-3),
            "lbfgs" | "trust-region" | "trust_region" => local,
            "cmaes" => best_found(1e-2),
            "tpe" => best_found(5e-2),
            _ if caps.proves_bound => global(1e-4),
            _ if caps.needs_gradient => local,
            _ => best_found(5e-2),
        }
    }

    /// Whether the gap is held on a problem with these properties; `Err` says why not.
    pub fn applies(&self, concave: bool, variables: usize) -> Result<(), String> {
        if self.concave_only && !concave {
            return Err(match self.promise {
                Promise::Local => "local method on a non-concave problem: gap reported, not held",
                _ => "non-concave problem: gap reported, not held",
            }
            .to_string());
        }
        if let Some(max) = self.max_variables {
            if variables > max {
                return Err(format!(
                    "search within a budget on {variables} > {max} variables: gap reported, not held"
                ));
            }
        }
        Ok(())
    }
}

/// Whether `compiled` is concave without integer rules (so a local optimum is global).
pub fn is_concave(compiled: &Compiled) -> bool {
    !compiled
        .features()
        .iter()
        .any(|f| f.is_integer() || matches!(f, Feature::NonConcave(_)))
}

/// The outcome of the correctness check of one result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// No failure.
    pub passed: bool,
    /// Whether the re-evaluated allocation is feasible (`max_violation <= 1e-6 *
    /// max(1, budget)`).
    pub feasible: bool,
    /// Largest violation of the returned allocation, re-evaluated, in spend units.
    pub max_violation: f64,
    /// The objective the optimizer's result reported.
    pub objective_reported: f64,
    /// The objective Atlas computes from the returned allocation
    /// (`Compiled::objective_value`).
    pub objective_reevaluated: f64,
    /// Relative gap to the known optimum (negative: better than the reference); `None`
    /// when no optimum is known.
    pub gap: Option<f64>,
    /// The gap tolerance of the optimizer.
    pub tolerance: f64,
    /// Whether the gap was held to the tolerance on this problem.
    pub gap_checked: bool,
    /// Why the gap was not held, or other remarks.
    pub note: Option<String>,
    /// What failed, one sentence each.
    pub failures: Vec<String>,
}

/// Relative agreement required between the reported and the re-evaluated objective.
pub const OBJECTIVE_AGREEMENT: f64 = 1e-9;

/// How far a result may go past a proven bound, relative (rounding of the bound's own
/// computation).
pub const BOUND_SLACK: f64 = 1e-9;

/// Checks `result` of a solve of `compiled`, against `optimum` when known.
///
/// `stopped_by_bench` says the run hit the time limit the benchmark imposed, in which case
/// the gap is reported but not held (the optimizer was not allowed to finish).
pub fn check(
    compiled: &Compiled,
    result: &OptimizationResult,
    optimum: Option<&KnownOptimum>,
    tolerance: &Tolerance,
    stopped_by_bench: bool,
) -> Check {
    let mut failures = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let x = match result.flat_allocation(compiled) {
        Ok(x) => Some(x),
        Err(e) => {
            failures.push(format!("the allocation does not fit the problem: {e}"));
            None
        }
    };
    let (objective, max_violation) = match &x {
        Some(x) => (compiled.objective_value(x), compiled.max_violation(x)),
        None => (f64::NAN, f64::INFINITY),
    };
    let feasible = max_violation <= compiled.feasibility_tolerance();
    if x.is_some() && !feasible {
        failures.push(format!(
            "infeasible: max violation {max_violation:.3e} > {:.3e}",
            compiled.feasibility_tolerance()
        ));
    }
    if result.status == Status::Infeasible {
        failures.push("reports the problem infeasible, but it has feasible points".to_string());
    }
    let agreement = OBJECTIVE_AGREEMENT * objective.abs().max(1.0);
    // Written so that a NaN objective fails too.
    let agrees = (result.objective - objective).abs() <= agreement;
    if x.is_some() && !agrees {
        failures.push(format!(
            "reported objective {} differs from the re-evaluated {}",
            result.objective, objective
        ));
    }

    let mut gap = None;
    let mut gap_checked = false;
    if let (Some(opt), Some(_)) = (optimum, &x) {
        let g = opt.signed_gap(objective);
        gap = Some(g);
        let excess = opt.bound_excess(objective);
        if excess > BOUND_SLACK {
            failures.push(format!(
                "objective {objective} goes past the proven bound {} of the optimum ({}) by {excess:.3e} relative: the objective or the optimum is wrong",
                opt.bound.unwrap_or(f64::NAN),
                opt.source
            ));
        } else if g < -BOUND_SLACK {
            notes.push(format!(
                "better than the reference ({}) by {:.3e}",
                opt.source, -g
            ));
        }
        // A bound the optimizer proves must not cut off the best known point.
        if let Some(b) = result.bound {
            let scale = opt.value.abs().max(1.0);
            let cut = match opt.sense {
                Sense::Maximize => (opt.value - b) / scale,
                Sense::Minimize => (b - opt.value) / scale,
            };
            if cut > tolerance.gap.max(BOUND_SLACK) {
                failures.push(format!(
                    "its bound {b} excludes the best known objective {} ({})",
                    opt.value, opt.source
                ));
            }
        }
        let applies = tolerance.applies(is_concave(compiled), compiled.layout().len());
        let claims_optimal = result.status == Status::Optimal;
        match applies {
            _ if stopped_by_bench && !claims_optimal => notes
                .push("stopped by the benchmark's time limit: gap reported, not held".to_string()),
            Err(why) if !claims_optimal => notes.push(why),
            _ if !opt.certified && g > tolerance.gap => {
                // Against a reference that is only the best value found, falling short is
                // reported but cannot prove the optimizer wrong.
                notes.push(format!(
                    "gap {g:.3e} to an uncertified reference ({}): reported, not held",
                    opt.source
                ));
            }
            _ => {
                gap_checked = true;
                if g > tolerance.gap {
                    failures.push(format!(
                        "gap {g:.3e} to the optimum ({}) exceeds the tolerance {:.0e}{}",
                        opt.source,
                        tolerance.gap,
                        if claims_optimal {
                            " although it reports `optimal`"
                        } else {
                            ""
                        }
                    ));
                }
            }
        }
    } else if optimum.is_none() {
        notes.push("no known optimum: gap unknown".to_string());
    }
    Check {
        passed: failures.is_empty(),
        feasible,
        max_violation,
        objective_reported: result.objective,
        objective_reevaluated: objective,
        gap,
        tolerance: tolerance.gap,
        gap_checked,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        failures,
    }
}
