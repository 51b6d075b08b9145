//! Known optima: where each benchmark problem's reference value comes from, and the
//! Frank-Wolfe bound that certifies a reference point of a concave problem whose rules
//! form a laminar family (bounds, channel totals, budget).

use std::collections::BTreeMap;
use std::path::Path;

use atlas_core::problem::{BudgetMode, ObjectiveKind, Problem};
use atlas_core::{Compiled, Objective, Registry, SolveOptions, Status};
use serde::{Deserialize, Serialize};

use crate::error::BenchError;

/// Whether the objective is maximized or minimized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sense {
    /// Response and profit.
    Maximize,
    /// `min_spend`.
    Minimize,
}

impl Sense {
    /// The sense of `compiled`'s objective.
    pub fn of(compiled: &Compiled) -> Sense {
        if compiled.objective().maximize() {
            Sense::Maximize
        } else {
            Sense::Minimize
        }
    }
}

/// The reference value a problem's results are measured against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownOptimum {
    /// Best known objective, in the problem's units.
    pub value: f64,
    /// A proven bound on the optimum (upper when maximizing, lower when minimizing), when
    /// one is known.
    pub bound: Option<f64>,
    /// Maximize or minimize.
    pub sense: Sense,
    /// Where the value comes from, e.g. `optima.json (certified)`, `analytic`, `convex`,
    /// `best known (lbfgs)`.
    pub source: String,
    /// Whether `value` is proven optimal within `certified_gap` (a bound or a closed
    /// form), rather than only the best value found.
    pub certified: bool,
    /// The proven relative distance of `value` to the optimum, when certified.
    pub certified_gap: Option<f64>,
}

impl KnownOptimum {
    /// The relative gap of `objective` to this optimum:
    /// `(optimum - objective) / max(1, |optimum|)` when maximizing, the mirror when
    /// minimizing; negative when `objective` is better than the reference.
    pub fn signed_gap(&self, objective: f64) -> f64 {
        let scale = self.value.abs().max(1.0);
        match self.sense {
            Sense::Maximize => (self.value - objective) / scale,
            Sense::Minimize => (objective - self.value) / scale,
        }
    }

    /// How far `objective` goes past the proven bound, relative (0 when it does not, or
    /// when no bound is known).
    pub fn bound_excess(&self, objective: f64) -> f64 {
        let Some(bound) = self.bound else {
            return 0.0;
        };
        let scale = self.value.abs().max(1.0);
        match self.sense {
            Sense::Maximize => ((objective - bound) / scale).max(0.0),
            Sense::Minimize => ((bound - objective) / scale).max(0.0),
        }
    }
}

/// One entry of an `optima.json` file (the format of `examples/problems/optima.json`).
#[derive(Debug, Clone, Deserialize)]
struct OptimaEntry {
    best_known: f64,
    bound: Option<f64>,
    sense: Sense,
    certified_gap_rel: Option<f64>,
}

/// Optima by problem file name, read from an `optima.json` file.
#[derive(Debug, Clone, Default)]
pub struct OptimaFile {
    entries: BTreeMap<String, KnownOptimum>,
}

impl OptimaFile {
    /// Reads `path`; keys starting with `_` are comments.
    pub fn read(path: &Path) -> Result<OptimaFile, BenchError> {
        let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| BenchError::Format {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let mut entries = BTreeMap::new();
        for (key, value) in raw {
            if key.starts_with('_') {
                continue;
            }
            let e: OptimaEntry = serde_json::from_value(value).map_err(|e| BenchError::Format {
                path: path.to_path_buf(),
                reason: format!("entry `{key}`: {e}"),
            })?;
            let certified = e.bound.is_some();
            entries.insert(
                key,
                KnownOptimum {
                    value: e.best_known,
                    bound: e.bound,
                    sense: e.sense,
                    source: if certified {
                        "optima.json (certified)".to_string()
                    } else {
                        "optima.json (best known)".to_string()
                    },
                    certified,
                    certified_gap: e.certified_gap_rel,
                },
            );
        }
        Ok(OptimaFile { entries })
    }

    /// The optimum recorded for the problem file named `file_name` (e.g. `large.toml`).
    pub fn get(&self, file_name: &str) -> Option<&KnownOptimum> {
        self.entries.get(file_name)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A certified bound on the optimum of a concave problem whose rules are only per-period
/// bounds, channel totals and the budget (no `[[constraints]]`, no integer rules,
/// objective `response` or `profit`), from any feasible point `x`:
///
/// `f* <= f(x) + max_{y feasible} ∇f(x) · (y - x)`,
///
/// the Frank-Wolfe (linearization) bound, valid because a concave function lies below its
/// tangent plane. The linear maximization over this laminar family is exact and greedy:
/// each channel's best value as a function of its total is concave and piecewise linear
/// (fill its periods by decreasing gradient), so the budget goes to the steepest
/// remaining segments once every channel has its minimum. Returns `None` where the
/// problem is outside this class or `x` is infeasible.
pub fn frank_wolfe_bound(problem: &Problem, compiled: &Compiled, x: &[f64]) -> Option<f64> {
    let margin = match (problem.objective, compiled.objective()) {
        (ObjectiveKind::Response, Objective::Response) => 1.0,
        (ObjectiveKind::Profit, Objective::Profit { margin }) => margin,
        _ => return None,
    };
    let mmm = compiled.mmm()?;
    let integer = problem.max_active_channels.is_some()
        || problem
            .channels
            .iter()
            .any(|c| c.spend_unit.is_some() || c.min_active.is_some() || c.fixed_cost.is_some());
    if !problem.constraints.is_empty() || integer || !mmm.nonconcave_channels().is_empty() {
        return None;
    }
    if !compiled.is_feasible(x) {
        return None;
    }
    let layout = compiled.layout();
    let periods = layout.periods();
    let n = layout.len();
    let mut grad = vec![0.0; n];
    let response = compiled.model().gradient(x, &mut grad)?;
    // d/dx (margin R - sum x) for profit; d/dx R for response.
    let profit = problem.objective == ObjectiveKind::Profit;
    if profit {
        grad.iter_mut().for_each(|g| *g = margin * *g - 1.0);
    }
    let f = if profit {
        margin * response - x.iter().sum::<f64>()
    } else {
        response
    };
    let budget = problem.budget;
    let exact = problem.budget_mode == BudgetMode::Exact;

    // Per channel: entries sorted by decreasing gradient with their room above the
    // period minimum; the channel's forced total and its cap.
    let mut y = vec![0.0; n];
    let mut segments: Vec<(f64, usize, usize, f64)> = Vec::new(); // (slope, channel, index, room)
    let mut spent = 0.0;
    let mut room_in_channel = vec![0.0; problem.channels.len()];
    for (c, ch) in problem.channels.iter().enumerate() {
        let p_lo = ch.period_min.unwrap_or(0.0);
        let p_hi = ch.period_max.unwrap_or(f64::INFINITY).min(budget);
        let mut order: Vec<usize> = (0..periods).map(|t| layout.index(c, t)).collect();
        order.sort_by(|&a, &b| grad[b].total_cmp(&grad[a]));
        let base = p_lo * periods as f64;
        let mut need = (ch.min.unwrap_or(0.0) - base).max(0.0);
        let cap = ch.max.unwrap_or(f64::INFINITY).min(p_hi * periods as f64);
        for &j in &order {
            y[j] = p_lo;
        }
        // The channel's minimum goes to its steepest periods first.
        for &j in &order {
            let take = need.min(p_hi - p_lo);
            y[j] += take;
            need -= take;
            if need <= 0.0 {
                break;
            }
        }
        if need > 1e-9 * budget.max(1.0) {
            return None;
        }
        let total: f64 = order.iter().map(|&j| y[j]).sum();
        spent += total;
        room_in_channel[c] = (cap - total).max(0.0);
        for &j in &order {
            let room = p_hi - y[j];
            if room > 0.0 {
                segments.push((grad[j], c, j, room));
            }
        }
    }
    segments.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut left = budget - spent;
    for (slope, c, j, room) in segments {
        if left <= 0.0 || (!exact && slope <= 0.0) {
            break;
        }
        let take = room.min(room_in_channel[c]).min(left);
        if take > 0.0 {
            y[j] += take;
            room_in_channel[c] -= take;
            left -= take;
        }
    }
    if exact && left > 1e-9 * budget.max(1.0) {
        return None;
    }
    let lift: f64 = grad
        .iter()
        .zip(y.iter().zip(x))
        .map(|(g, (yj, xj))| g * (yj - xj))
        .sum();
    // Rounding in the gradient sum: widen by a relative hair so the bound stays a bound.
    Some(f + lift.max(0.0) + 1e-12 * f.abs().max(1.0))
}

/// A reference counts as certified when its bound proves it within this relative gap.
pub const CERTIFIED_GAP: f64 = 1e-6;

/// How the reference of a problem without a recorded optimum was computed.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The optimum (certified when a bound proves it).
    pub optimum: KnownOptimum,
    /// Seconds spent computing it.
    pub seconds: f64,
}

/// The reference optimum of a problem without a recorded one: `convex` when registered
/// (its objective, with its bound when it proves optimality), else a tight `lbfgs` solve
/// labelled `best known (lbfgs)`. Either point is certified by [`frank_wolfe_bound`] when
/// the problem is in that bound's class. `None` when neither optimizer is registered or
/// the solve fails; the gap is then unknown.
pub fn compute_reference(
    registry: &Registry,
    problem: Option<&Problem>,
    compiled: &Compiled,
) -> Option<Reference> {
    let started = std::time::Instant::now();
    let sense = Sense::of(compiled);
    let (result, source) = if registry.contains("convex") {
        let config = registry.default_config("convex").ok()?;
        let r = registry
            .optimize(compiled, config.as_ref(), SolveOptions::default())
            .ok()?;
        (r, "convex")
    } else if registry.contains("lbfgs") {
        // Tighter than the defaults: the reference should be at least as precise as
        // anything it is compared with.
        let mut settings = serde_json::Map::new();
        settings.insert("gtol".into(), serde_json::json!(1e-12));
        settings.insert("ftol".into(), serde_json::json!(0.0));
        let config = registry
            .config("lbfgs", settings)
            .or_else(|_| registry.default_config("lbfgs"))
            .ok()?;
        let r = registry
            .optimize(compiled, config.as_ref(), SolveOptions::default())
            .ok()?;
        (r, "best known (lbfgs)")
    } else {
        return None;
    };
    if result.max_violation > compiled.feasibility_tolerance() {
        return None;
    }
    let x = result.flat_allocation(compiled).ok()?;
    let value = compiled.objective_value(&x);
    let proven = (result.status == Status::Optimal)
        .then_some(result.bound)
        .flatten();
    let fw = problem.and_then(|p| frank_wolfe_bound(p, compiled, &x));
    let bound = match (proven, fw, sense) {
        (Some(a), Some(b), Sense::Maximize) => Some(a.min(b)),
        (Some(a), Some(b), Sense::Minimize) => Some(a.max(b)),
        (a, b, _) => a.or(b),
    };
    let certified_gap = bound.map(|b| (b - value).abs() / value.abs().max(1.0));
    let source = match (source, fw.is_some()) {
        (s, true) => format!("{s}, Frank-Wolfe bound"),
        (s, false) => s.to_string(),
    };
    Some(Reference {
        optimum: KnownOptimum {
            value,
            bound,
            sense,
            source,
            certified: certified_gap.is_some_and(|g| g <= CERTIFIED_GAP),
            certified_gap,
        },
        seconds: started.elapsed().as_secs_f64(),
    })
}
