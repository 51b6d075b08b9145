//! What a report reads: the result JSON of `problem-format.md` section 6 and the sweep
//! result JSON of `scenarios.md` section 3, as this crate's own serde types.
//!
//! The types accept the optional fields of contract version 1.1 (`selected`,
//! `metrics.gradient`, `risk`, `cache`, `budget_multiplier`) and keep any field a later
//! version adds (`other`), so a report never refuses a newer file for what it does not
//! draw; the required fields of the contract are required.

use std::path::{Path, PathBuf};

use atlas_core::problem::parse_document;
use atlas_core::{Format, InputError};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a report could not be made: bad input (a file that is not a result, a field out
/// of range, a result that does not fit its problem) or a file that cannot be read or
/// written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    /// Bad input: the file, the field and the reason.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A file could not be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl ReportError {
    /// The same error, tied to `file` when it names none yet.
    pub fn in_file(self, file: Option<&Path>) -> ReportError {
        match self {
            ReportError::Input(e) => ReportError::Input(e.in_file(file)),
            other => other,
        }
    }
}

impl From<ReportError> for atlas_core::Error {
    fn from(e: ReportError) -> atlas_core::Error {
        match e {
            ReportError::Input(e) => atlas_core::Error::Input(e),
            ReportError::Io { path, message } => atlas_core::Error::Io { path, message },
        }
    }
}

/// Work and resources of a solve (`metrics` of the result JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Wall time of the solve, in seconds.
    pub wall_time_s: f64,
    /// Model value evaluations.
    pub evaluations: u64,
    /// Model gradient evaluations.
    pub gradient_evaluations: u64,
    /// Solver iterations.
    pub iterations: u64,
    /// Time inside the model, in seconds.
    pub model_time_s: f64,
    /// Time in projections and constraints, in seconds.
    pub constraint_time_s: f64,
    /// Peak resident memory, in MiB.
    pub peak_memory_mb: f64,
    /// `"exact"` or `"finite_differences"` (version 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient: Option<String>,
    /// Fields a later contract adds (evaluation-cache counters, say), shown as they are.
    #[serde(flatten)]
    pub other: IndexMap<String, Value>,
}

/// Which optimizer `auto` chose, and why (version 1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selected {
    /// The optimizer chosen.
    pub optimizer: String,
    /// Why.
    pub reason: String,
}

/// The spread of the objective over a posterior's draws (`models.md` section 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// Mean over the draws.
    pub mean: f64,
    /// 5th percentile.
    pub p05: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Number of draws.
    pub draws: u64,
    /// CVaR levels (`cvar_0.1`: the mean of the worst 10 % of draws) and any other
    /// measure of the block.
    #[serde(flatten)]
    pub other: IndexMap<String, f64>,
}

impl Risk {
    /// The CVaR entries as `(level, value)`, by increasing level (`cvar_0.1` → 0.1).
    pub fn cvars(&self) -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64)> = self
            .other
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("cvar_")
                    .and_then(|l| l.parse::<f64>().ok())
                    .map(|l| (l, *v))
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// A result JSON (`problem-format.md` section 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultFile {
    /// Problem name.
    pub problem: String,
    /// Optimizer name.
    pub optimizer: String,
    /// How the solve ended (`optimal`, `converged`, ...; kept as text so that a status a
    /// later version adds is shown, not refused).
    pub status: String,
    /// The true objective of the allocation.
    pub objective: f64,
    /// A proven bound on the optimum, when the optimizer proves one.
    #[serde(default)]
    pub bound: Option<f64>,
    /// Spend per channel and period.
    pub allocation: IndexMap<String, Vec<f64>>,
    /// Spend per channel over all periods.
    pub totals: IndexMap<String, f64>,
    /// Total spend.
    pub total_spend: f64,
    /// Largest violation of any rule, in spend units.
    pub max_violation: f64,
    /// Work and resources.
    pub metrics: Metrics,
    /// Which optimizer `auto` chose, and why (version 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected: Option<Selected>,
    /// d(objective)/d(budget) at the plan, where the optimizer has the multiplier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_multiplier: Option<f64>,
    /// The spread over a posterior's draws (version 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    /// Whether the result came from the cache (version 1.1; shown as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Value>,
    /// Fields a later contract adds, shown as they are.
    #[serde(flatten)]
    pub other: IndexMap<String, Value>,
}

impl ResultFile {
    /// The relative gap `|bound - objective| / max(1, |objective|)`, when there is a
    /// bound (the contract's definition, as `atlas optimize` prints it).
    pub fn gap(&self) -> Option<f64> {
        self.bound
            .map(|b| (b - self.objective).abs() / self.objective.abs().max(1.0))
    }

    /// The number of periods (the length of the allocation's rows).
    pub fn periods(&self) -> usize {
        self.allocation.values().next().map_or(0, Vec::len)
    }

    /// Checks what the charts rely on: finite numbers, one row per channel of equal
    /// length, spend `>= 0`, totals that are the sums of the rows. Field paths start
    /// with `prefix` (`scenarios[2].result.` inside a sweep).
    pub fn check(&self, prefix: &str) -> Result<(), InputError> {
        let field = |name: &str| format!("{prefix}{name}");
        finite(self.objective, &field("objective"))?;
        if let Some(b) = self.bound {
            finite(b, &field("bound"))?;
        }
        finite(self.total_spend, &field("total_spend"))?;
        finite(self.max_violation, &field("max_violation"))?;
        if self.allocation.is_empty() {
            return Err(InputError::new(
                field("allocation"),
                "no channel: a result allocates spend to at least one channel",
            ));
        }
        let periods = self.periods();
        let mut sum_totals = 0.0;
        for (name, row) in &self.allocation {
            let here = format!("{prefix}allocation.{name}");
            if row.len() != periods || periods == 0 {
                return Err(InputError::new(
                    here,
                    format!(
                        "{} periods, but the first channel has {periods}: every channel needs one value per period",
                        row.len()
                    ),
                ));
            }
            for (t, &v) in row.iter().enumerate() {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(InputError::new(
                        format!("{here}[{t}]"),
                        format!("spend must be a finite number >= 0 (got {v})"),
                    ));
                }
            }
            let Some(&total) = self.totals.get(name) else {
                return Err(InputError::new(
                    format!("{prefix}totals.{name}"),
                    "missing: every channel of `allocation` needs its total",
                ));
            };
            let sum: f64 = row.iter().sum();
            if !(total.is_finite() && (total - sum).abs() <= 1e-6 * sum.abs().max(1.0)) {
                return Err(InputError::new(
                    format!("{prefix}totals.{name}"),
                    format!("{total} is not the sum of `allocation.{name}` ({sum})"),
                ));
            }
            sum_totals += total;
        }
        if let Some(name) = self
            .totals
            .keys()
            .find(|k| !self.allocation.contains_key(*k))
        {
            return Err(InputError::new(
                format!("{prefix}totals.{name}"),
                "a channel without a row in `allocation`",
            ));
        }
        if (self.total_spend - sum_totals).abs() > 1e-6 * sum_totals.abs().max(1.0) {
            return Err(InputError::new(
                field("total_spend"),
                format!(
                    "{} is not the sum of the channels' totals ({sum_totals})",
                    self.total_spend
                ),
            ));
        }
        if let Some(risk) = &self.risk {
            for (name, v) in [
                ("mean", risk.mean),
                ("p05", risk.p05),
                ("p50", risk.p50),
                ("p95", risk.p95),
            ]
            .into_iter()
            .chain(risk.other.iter().map(|(k, v)| (k.as_str(), *v)))
            {
                finite(v, &field(&format!("risk.{name}")))?;
            }
            if risk.draws == 0 {
                return Err(InputError::new(field("risk.draws"), "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// One solved scenario of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepScenario {
    /// Scenario name (`budget=2000000` for a budget point).
    pub name: String,
    /// Its budget.
    pub budget: f64,
    /// How its solve ended.
    pub status: String,
    /// Its objective.
    pub objective: f64,
    /// Its proven bound, when there is one.
    #[serde(default)]
    pub bound: Option<f64>,
    /// Its total spend.
    pub total_spend: f64,
    /// Spend per channel over all periods.
    pub totals: IndexMap<String, f64>,
    /// d(objective)/d(budget) at the scenario (`null` for a lone scenario).
    #[serde(default)]
    pub marginal_return: Option<f64>,
    /// Whether it started from a neighbour's solution.
    #[serde(default)]
    pub warm_start: Option<bool>,
    /// `hit`, `miss` or `off`.
    #[serde(default)]
    pub cache: Option<String>,
    /// Its wall time, in seconds.
    pub wall_time_s: f64,
    /// The full result (section 6 of the problem format).
    #[serde(default)]
    pub result: Option<ResultFile>,
    /// Fields a later contract adds.
    #[serde(flatten)]
    pub other: IndexMap<String, Value>,
}

/// A scenario that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepFailure {
    /// Scenario name.
    pub name: String,
    /// What kind of failure (`infeasible`, `unsupported`, `time_limit`, ...).
    pub kind: String,
    /// The message.
    pub message: String,
}

/// A sweep result JSON (`scenarios.md` section 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepFile {
    /// The Atlas version that ran the sweep.
    pub atlas_version: String,
    /// The base problem's name.
    pub base: String,
    /// The optimizer.
    pub optimizer: String,
    /// The solved scenarios, in the order given (budget points by increasing budget).
    pub scenarios: Vec<SweepScenario>,
    /// The scenarios that failed.
    #[serde(default)]
    pub errors: Vec<SweepFailure>,
    /// Wall time of the whole sweep, in seconds.
    pub wall_time_s: f64,
    /// Fields a later contract adds.
    #[serde(flatten)]
    pub other: IndexMap<String, Value>,
}

impl SweepFile {
    /// A sweep from anything that serializes to the contract's sweep result JSON (the
    /// sweep result type of `atlas-sweep`, say), checked like a file. Channels keep the
    /// order of the serialized maps.
    pub fn from_serialize<T: Serialize + ?Sized>(sweep: &T) -> Result<SweepFile, ReportError> {
        let text = serde_json::to_string(sweep)
            .map_err(|e| InputError::new("", format!("cannot serialize the sweep result: {e}")))?;
        Self::from_json(&text)
    }

    /// A sweep from its JSON value, checked like a file. (A `serde_json::Value` built
    /// without serde_json's `preserve_order` holds its keys sorted, so the channels come
    /// in alphabetical order; [`from_serialize`](Self::from_serialize) keeps the order.)
    pub fn from_value(value: Value) -> Result<SweepFile, ReportError> {
        Self::from_json(&value.to_string())
    }

    fn from_json(text: &str) -> Result<SweepFile, ReportError> {
        match parse_input(text)? {
            Input::Sweep(s) => Ok(*s),
            Input::Result(_) => Err(InputError::new(
                "scenarios",
                "missing: this is a single result, not a sweep result",
            )
            .into()),
        }
    }

    /// The channels over all scenarios, in order of first appearance.
    pub fn channels(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.scenarios {
            for name in s.totals.keys() {
                if !out.contains(&name.as_str()) {
                    out.push(name);
                }
            }
        }
        out
    }

    /// Whether the scenarios are budget points: budgets strictly increasing in the
    /// order given, so that a curve against the budget is meaningful.
    pub fn is_budget_grid(&self) -> bool {
        self.scenarios.len() >= 2 && self.scenarios.windows(2).all(|w| w[0].budget < w[1].budget)
    }

    /// Checks every number the charts use, and every embedded result.
    pub fn check(&self) -> Result<(), InputError> {
        finite(self.wall_time_s, "wall_time_s")?;
        for (i, s) in self.scenarios.iter().enumerate() {
            let field = |name: &str| format!("scenarios[{i}].{name}");
            finite(s.budget, &field("budget"))?;
            finite(s.objective, &field("objective"))?;
            finite(s.total_spend, &field("total_spend"))?;
            finite(s.wall_time_s, &field("wall_time_s"))?;
            if let Some(b) = s.bound {
                finite(b, &field("bound"))?;
            }
            if let Some(m) = s.marginal_return {
                finite(m, &field("marginal_return"))?;
            }
            for (name, &v) in &s.totals {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(InputError::new(
                        field(&format!("totals.{name}")),
                        format!("spend must be a finite number >= 0 (got {v})"),
                    ));
                }
            }
            if let Some(r) = &s.result {
                r.check(&format!("scenarios[{i}].result."))?;
            }
        }
        Ok(())
    }
}

fn finite(v: f64, field: &str) -> Result<(), InputError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(InputError::new(
            field,
            format!("must be a finite number (got {v})"),
        ))
    }
}

/// A report's input: one result or a sweep.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A result JSON.
    Result(Box<ResultFile>),
    /// A sweep result JSON.
    Sweep(Box<SweepFile>),
}

/// Parses and checks a result or sweep result from JSON text: an object with
/// `scenarios` is a sweep, one with `allocation` a result; anything else is refused,
/// naming what is missing.
pub fn parse_input(text: &str) -> Result<Input, ReportError> {
    let value: Value = parse_document(text, Format::Json)?;
    let Value::Object(map) = &value else {
        return Err(InputError::new(
            "",
            "not an Atlas result: expected a JSON object (a result of `atlas optimize --output` or of `atlas sweep --format json`)",
        )
        .into());
    };
    if map.contains_key("scenarios") {
        let sweep: SweepFile = parse_document(text, Format::Json)?;
        sweep.check()?;
        Ok(Input::Sweep(Box::new(sweep)))
    } else if map.contains_key("allocation") {
        let result: ResultFile = parse_document(text, Format::Json)?;
        result.check("")?;
        Ok(Input::Result(Box::new(result)))
    } else {
        Err(InputError::new(
            "allocation",
            "missing: not an Atlas result (a result has `allocation`, a sweep result `scenarios`)",
        )
        .into())
    }
}

/// Reads and checks a result or sweep result file (JSON, whatever its extension);
/// errors name the file and the field.
pub fn read_input(path: &Path) -> Result<Input, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::Io {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    parse_input(&text).map_err(|e| e.in_file(Some(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESULT: &str = r#"{
      "problem": "p", "optimizer": "convex", "status": "optimal",
      "objective": 10.0, "bound": 10.0,
      "allocation": {"tv": [1.0, 2.0], "search": [0.5, 0.0]},
      "totals": {"tv": 3.0, "search": 0.5}, "total_spend": 3.5, "max_violation": 0.0,
      "metrics": {"wall_time_s": 0.01, "evaluations": 4, "gradient_evaluations": 2,
                  "iterations": 1, "model_time_s": 0.0, "constraint_time_s": 0.0,
                  "peak_memory_mb": 7.0, "gradient": "exact", "cache_hits": 3},
      "selected": {"optimizer": "convex", "reason": "concave curves"},
      "risk": {"mean": 9.0, "cvar_0.1": 7.5, "p05": 7.8, "p50": 9.1, "p95": 10.2, "draws": 200},
      "cache": "miss", "budget_multiplier": 0.5
    }"#;

    #[test]
    fn reads_a_result_with_the_optional_fields() {
        let Input::Result(r) = parse_input(RESULT).unwrap() else {
            panic!("a result")
        };
        assert_eq!(r.periods(), 2);
        assert_eq!(r.metrics.gradient.as_deref(), Some("exact"));
        assert_eq!(r.metrics.other["cache_hits"], 3);
        let risk = r.risk.as_ref().unwrap();
        assert_eq!(risk.cvars(), vec![(0.1, 7.5)]);
        assert_eq!(r.selected.as_ref().unwrap().reason, "concave curves");
        assert_eq!(r.gap(), Some(0.0));
    }

    #[test]
    fn refuses_what_is_not_a_result_naming_the_field() {
        let e = parse_input(r#"{"name": "retail", "budget": 1.0}"#).unwrap_err();
        assert!(e.to_string().starts_with("allocation: missing"), "{e}");
        let e = parse_input("[1, 2]").unwrap_err();
        assert!(e.to_string().contains("not an array"), "{e}");
        let e = parse_input(&RESULT.replace(r#""objective": 10.0,"#, "")).unwrap_err();
        assert!(e.to_string().contains("missing field `objective`"), "{e}");
        let e =
            parse_input(&RESULT.replace(r#""status": "optimal""#, r#""status": 3"#)).unwrap_err();
        assert!(e.to_string().starts_with("status: invalid type"), "{e}");
        let e = parse_input(&RESULT.replace("[0.5, 0.0]", "[0.5, -1.0]")).unwrap_err();
        assert!(e.to_string().starts_with("allocation.search[1]: "), "{e}");
        let e = parse_input(&RESULT.replace("[0.5, 0.0]", "[0.5]")).unwrap_err();
        assert!(
            e.to_string().starts_with("allocation.search: 1 periods"),
            "{e}"
        );
        let e = parse_input(&RESULT.replace(r#""tv": 3.0"#, r#""tv": 4.0"#)).unwrap_err();
        assert!(
            e.to_string().starts_with("totals.tv: 4 is not the sum"),
            "{e}"
        );
        let e = parse_input(&RESULT.replace(r#""total_spend": 3.5"#, r#""total_spend": 3"#))
            .unwrap_err();
        assert!(e.to_string().starts_with("total_spend: "), "{e}");
        let e = parse_input(&RESULT.replace(r#""draws": 200"#, r#""draws": 0"#)).unwrap_err();
        assert!(e.to_string().starts_with("risk.draws: "), "{e}");
    }

    #[test]
    fn reads_a_sweep_and_names_fields_inside_it() {
        let scenario = |name: &str, budget: f64| {
            format!(
                r#"{{"name": "{name}", "budget": {budget}, "status": "optimal", "objective": 10.0,
                  "bound": null, "total_spend": 3.5, "totals": {{"tv": 3.0, "search": 0.5}},
                  "marginal_return": null, "warm_start": false, "cache": "off",
                  "wall_time_s": 0.1, "result": {RESULT}}}"#
            )
        };
        let text = format!(
            r#"{{"atlas_version": "0.1.0", "base": "p", "optimizer": "convex",
                "scenarios": [{}, {}], "errors": [{{"name": "x", "kind": "infeasible", "message": "m"}}],
                "wall_time_s": 0.2}}"#,
            scenario("a", 3.5),
            scenario("b", 4.0)
        );
        let Input::Sweep(s) = parse_input(&text).unwrap() else {
            panic!("a sweep")
        };
        assert!(s.is_budget_grid());
        assert_eq!(s.channels(), ["tv", "search"]);
        assert_eq!(s.errors[0].kind, "infeasible");
        let bad = text.replacen("[0.5, 0.0]", "[0.5, -2.0]", 2);
        let e = parse_input(&bad).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("scenarios[0].result.allocation.search[1]: "),
            "{e}"
        );
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(SweepFile::from_value(value).unwrap(), *s);
        let again = SweepFile::from_serialize(&*s).unwrap();
        assert_eq!(again, *s);
        assert_eq!(again.channels(), ["tv", "search"]);
    }
}
