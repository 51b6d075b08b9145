//! The sweep result (contract `scenarios.md`, section 3), as JSON and CSV.

use std::path::Path;

use atlas_core::{CacheStatus, Error, OptimizationResult, Status};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// The result of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    /// Version of Atlas that ran the sweep.
    pub atlas_version: String,
    /// Name of the base problem.
    pub base: String,
    /// The optimizer every scenario was solved with.
    pub optimizer: String,
    /// Solved scenarios, in the order given (budget points in increasing budget order).
    pub scenarios: Vec<ScenarioResult>,
    /// Scenarios that failed, in the order given.
    pub errors: Vec<ScenarioError>,
    /// Wall time of the whole sweep, in seconds.
    pub wall_time_s: f64,
}

/// One solved scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Name of the scenario (`budget=2000000` for a budget point).
    pub name: String,
    /// Its budget.
    pub budget: f64,
    /// How its solve ended.
    pub status: Status,
    /// True objective of its plan.
    pub objective: f64,
    /// Proven bound, when the optimizer proves one.
    pub bound: Option<f64>,
    /// Total spend of its plan.
    pub total_spend: f64,
    /// Spend per channel over all periods.
    pub totals: IndexMap<String, f64>,
    /// d(objective)/d(budget) at this scenario: the optimizer's budget multiplier where it
    /// has one, else the central difference between neighbouring budget points; `null`
    /// for a scenario without neighbours.
    pub marginal_return: Option<f64>,
    /// Whether the solve started from a neighbour's plan.
    pub warm_start: bool,
    /// `hit`, `miss` or `off`.
    pub cache: CacheStatus,
    /// Wall time of this scenario in this sweep (a cache lookup for a hit), in seconds.
    pub wall_time_s: f64,
    /// The full result (`problem-format.md` section 6).
    pub result: OptimizationResult,
}

/// One failed scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioError {
    /// Name of the scenario.
    pub name: String,
    /// Its budget, when it got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
    /// `infeasible`, `unsupported`, `time_limit` (no feasible point in time), another
    /// status that came without a feasible point, `input` or `solver`.
    pub kind: String,
    /// What happened, with the rules involved where they are known.
    pub message: String,
}

impl SweepResult {
    /// Pretty JSON of the contract.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Reads a sweep result written by [`to_json`](SweepResult::to_json).
    pub fn from_json(text: &str) -> Result<SweepResult, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Writes the JSON to `path` atomically: the whole file or nothing.
    pub fn write_json(&self, path: &Path) -> Result<(), Error> {
        write(path, &format!("{}\n", self.to_json()))
    }

    /// The channels of the scenarios' totals, in the base problem's order.
    pub fn channels(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.scenarios {
            for c in s.totals.keys() {
                if !out.contains(&c.as_str()) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// CSV: one row per scenario, `name,budget,status,objective,bound,total_spend,
    /// marginal_return,wall_time_s` and one `total:CHANNEL` column per channel. Failed
    /// scenarios follow the solved ones, with their error kind as the status and empty
    /// numbers.
    pub fn to_csv(&self) -> String {
        let channels = self.channels();
        let mut out = String::from(
            "name,budget,status,objective,bound,total_spend,marginal_return,wall_time_s",
        );
        for c in &channels {
            out.push(',');
            out.push_str(&csv_field(&format!("total:{c}")));
        }
        out.push('\n');
        let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        for s in &self.scenarios {
            let mut row = vec![
                csv_field(&s.name),
                num(Some(s.budget)),
                s.status.as_str().to_string(),
                num(Some(s.objective)),
                num(s.bound),
                num(Some(s.total_spend)),
                num(s.marginal_return),
                num(Some(s.wall_time_s)),
            ];
            row.extend(channels.iter().map(|c| num(s.totals.get(*c).copied())));
            out.push_str(&row.join(","));
            out.push('\n');
        }
        for e in &self.errors {
            let mut row = vec![csv_field(&e.name), num(e.budget), csv_field(&e.kind)];
            row.extend(std::iter::repeat_n(String::new(), 5 + channels.len()));
            out.push_str(&row.join(","));
            out.push('\n');
        }
        out
    }
}

/// A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes `text` atomically, naming the file on failure.
pub fn write(path: &Path, text: &str) -> Result<(), Error> {
    atlas_core::files::write_atomically(path, text).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_what_needs_it() {
        assert_eq!(csv_field("budget=2000000"), "budget=2000000");
        assert_eq!(csv_field("tv capped, 2.4M"), "\"tv capped, 2.4M\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
