//! Scenario files (contract `scenarios.md`, section 1): a base problem and variants
//! written as patches of it, each checked as a complete problem.

use std::path::{Path, PathBuf};

use atlas_core::problem::{
    parse_document, AdstockSpec, BudgetMode, Constraint, CurveSpec, Format, ObjectiveKind, Problem,
};
use atlas_core::{Error, InputError};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A scenario file as written: the base problem's path, an optional optimizer and the
/// scenarios.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Path of the base problem, relative to the scenario file.
    pub base: PathBuf,
    /// The optimizer for every scenario (default: the caller's choice, else `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<String>,
    /// The variants, in the order results list them.
    pub scenarios: Vec<ScenarioSpec>,
}

/// One variant of the base problem: its name and the fields it changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// Unique name of the scenario (required).
    pub name: String,
    /// The budget (exclusive with `budget_factor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
    /// The budget as a multiple of the base budget (exclusive with `budget`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_factor: Option<f64>,
    /// Replaces the problem's `budget_mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_mode: Option<BudgetMode>,
    /// Replaces the problem's `objective`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<ObjectiveKind>,
    /// Replaces the problem's `margin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// Replaces the problem's `target_response`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_response: Option<f64>,
    /// Replaces the problem's `discount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<f64>,
    /// Replaces the problem's `max_active_channels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_channels: Option<usize>,
    /// Patches of channels by name: each field given replaces the channel's field of the
    /// same name (`null`, in JSON or YAML, removes an optional field).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub channels: IndexMap<String, ChannelPatch>,
    /// Rules appended to the problem's (after `constraints`, when both are given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_constraints: Vec<Constraint>,
    /// Replaces the whole list of rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<Constraint>>,
    /// Not patchable: present only to say so clearly.
    #[serde(default, skip_serializing)]
    periods: Option<Value>,
}

impl ScenarioSpec {
    /// A scenario named `name` that changes nothing.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// The fields of a channel a scenario replaces (any field of the problem's channel but
/// its name). `None`: unchanged; `Some(None)` (a `null` in JSON or YAML): removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    /// Lower bound on the channel's total.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub min: Option<Option<f64>>,
    /// Upper bound on the channel's total.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max: Option<Option<f64>>,
    /// Lower bound on each period's spend.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub period_min: Option<Option<f64>>,
    /// Upper bound on each period's spend.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub period_max: Option<Option<f64>>,
    /// Response curve (replaced whole).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub response: Option<Option<CurveSpec>>,
    /// Carry-over (replaced whole).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub adstock: Option<Option<AdstockSpec>>,
    /// Spend unit.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub spend_unit: Option<Option<f64>>,
    /// Minimum spend when active.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_active: Option<Option<f64>>,
    /// Fixed cost when active.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub fixed_cost: Option<Option<f64>>,
}

/// A field that is present: `Some(value)`, with `null` as `Some(None)`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A scenario ready to compile: its name and the complete problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Unique name.
    pub name: String,
    /// The base problem with the scenario's patch applied.
    pub problem: Problem,
}

/// Just the scenarios' names, read again after an error so that it can name the scenario.
#[derive(Deserialize)]
struct Names {
    scenarios: Vec<NameOnly>,
}

#[derive(Deserialize)]
struct NameOnly {
    name: Option<String>,
}

/// Rewrites an error about `scenarios[3].field` as one about `scenarios[3] ("tv
/// capped"): field`.
fn name_scenario(mut e: InputError, text: &str, format: Format) -> InputError {
    let Some(rest) = e.field.strip_prefix("scenarios[") else {
        return e;
    };
    let Some((index, field)) = rest.split_once(']') else {
        return e;
    };
    let Ok(index) = index.parse::<usize>() else {
        return e;
    };
    let field = field.trim_start_matches('.').to_string();
    let name = parse_document::<Names>(text, format)
        .ok()
        .and_then(|n| n.scenarios.into_iter().nth(index))
        .and_then(|s| s.name);
    let label = match name {
        Some(n) => scenario_label(index, &n),
        None => format!("scenarios[{index}]"),
    };
    e.field = if field.is_empty() {
        label
    } else {
        format!("{label}: {field}")
    };
    e
}

/// `scenarios[3] ("tv capped")`: how errors name a scenario.
pub fn scenario_label(index: usize, name: &str) -> String {
    format!("scenarios[{index}] ({name:?})")
}

fn scenario_error(label: &str, field: &str, reason: impl Into<String>) -> InputError {
    let field = if field.is_empty() {
        label.to_string()
    } else {
        format!("{label}: {field}")
    };
    InputError::new(field, reason)
}

impl ScenarioFile {
    /// Reads a scenario file (TOML, JSON or YAML by extension). Each scenario is checked
    /// against the schema here; errors name the file, the scenario and the field.
    pub fn from_path(path: impl AsRef<Path>) -> Result<ScenarioFile, Error> {
        let path = path.as_ref();
        let format = Format::from_path(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        Self::from_text(&text, format).map_err(|e| Error::Input(e.in_file(Some(path))))
    }

    /// Parses a scenario file from text in `format`.
    pub fn from_text(text: &str, format: Format) -> Result<ScenarioFile, InputError> {
        parse_document(text, format).map_err(|e| name_scenario(e, text, format))
    }

    /// The base problem's path, resolved against the folder of the scenario file.
    pub fn base_path(&self, scenario_file: &Path) -> PathBuf {
        if self.base.is_absolute() {
            self.base.clone()
        } else {
            scenario_file
                .parent()
                .unwrap_or(Path::new(""))
                .join(&self.base)
        }
    }
}

/// Applies the scenarios to `base`, checking names (required, unique) and every patch
/// against the schema. The results are complete problems, not yet compiled.
pub fn apply_all(base: &Problem, specs: &[ScenarioSpec]) -> Result<Vec<Scenario>, InputError> {
    if specs.is_empty() {
        return Err(InputError::new(
            "scenarios",
            "no scenarios: list at least one ([[scenarios]] with a name)",
        ));
    }
    let mut out: Vec<Scenario> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let label = scenario_label(i, &spec.name);
        if spec.name.trim().is_empty() {
            return Err(scenario_error(
                &format!("scenarios[{i}]"),
                "name",
                "required: every scenario needs a unique, non-empty name",
            ));
        }
        if let Some(j) = out.iter().position(|s| s.name == spec.name) {
            return Err(scenario_error(
                &label,
                "name",
                format!("duplicate: scenarios[{j}] has the same name"),
            ));
        }
        let problem =
            apply(base, spec).map_err(|(field, reason)| scenario_error(&label, &field, reason))?;
        out.push(Scenario {
            name: spec.name.clone(),
            problem,
        });
    }
    Ok(out)
}

/// The base problem with one patch applied; errors as `(field, reason)`.
pub fn apply(base: &Problem, spec: &ScenarioSpec) -> Result<Problem, (String, String)> {
    if spec.periods.is_some() {
        return Err((
            "periods".into(),
            format!(
                "not patchable: every scenario keeps the base problem's {} period(s); write a separate problem file for another horizon",
                base.periods
            ),
        ));
    }
    let mut p = base.clone();
    match (spec.budget, spec.budget_factor) {
        (Some(_), Some(_)) => {
            return Err((
                "budget_factor".into(),
                "exclusive with `budget`: give one of them".into(),
            ))
        }
        (Some(b), None) => p.budget = b,
        (None, Some(f)) => {
            if !(f.is_finite() && f > 0.0) {
                return Err((
                    "budget_factor".into(),
                    format!("must be a finite number > 0 (got {f})"),
                ));
            }
            p.budget = f * base.budget;
        }
        (None, None) => {}
    }
    if let Some(v) = spec.budget_mode {
        p.budget_mode = v;
    }
    if let Some(v) = spec.objective {
        p.objective = v;
    }
    if let Some(v) = spec.margin {
        p.margin = v;
    }
    if let Some(v) = spec.target_response {
        p.target_response = Some(v);
    }
    if let Some(v) = spec.discount {
        p.discount = v;
    }
    if let Some(v) = spec.max_active_channels {
        p.max_active_channels = Some(v);
    }
    for (name, patch) in &spec.channels {
        let field = format!("channels.{name}");
        let Some(c) = p.channels.iter().position(|c| &c.name == name) else {
            let names: Vec<&str> = base.channels.iter().map(|c| c.name.as_str()).collect();
            let hint = atlas_core::suggest::nearest(name, names.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err((
                field,
                format!(
                    "unknown channel `{name}`{hint}; the base problem's channels: {}",
                    names.join(", ")
                ),
            ));
        };
        let ch = &mut p.channels[c];
        let set = |slot: &mut Option<f64>, v: Option<Option<f64>>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut ch.min, patch.min);
        set(&mut ch.max, patch.max);
        set(&mut ch.period_min, patch.period_min);
        set(&mut ch.period_max, patch.period_max);
        set(&mut ch.spend_unit, patch.spend_unit);
        set(&mut ch.min_active, patch.min_active);
        set(&mut ch.fixed_cost, patch.fixed_cost);
        if let Some(v) = &patch.response {
            ch.response = v.clone();
        }
        if let Some(v) = &patch.adstock {
            ch.adstock = v.clone();
        }
    }
    if let Some(list) = &spec.constraints {
        p.constraints = list.clone();
    }
    p.constraints.extend(spec.add_constraints.iter().cloned());
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_core::{Compiled, Format};

    const BASE: &str = r#"
        name = "base"
        periods = 2
        budget = 1000.0
        [[channels]]
        name = "tv"
        response = { kind = "hill", beta = 3000.0, k = 500.0, s = 1.0 }
        [[channels]]
        name = "search"
        max = 800.0
        response = { kind = "log", beta = 800.0, k = 200.0 }
        [[constraints]]
        kind = "share"
        channels = ["search"]
        min = 0.1
    "#;

    fn base() -> Problem {
        Problem::from_text(BASE, Format::Toml).unwrap()
    }

    fn file(text: &str) -> Result<ScenarioFile, InputError> {
        ScenarioFile::from_text(text, Format::Toml)
    }

    fn apply_text(text: &str) -> Result<Vec<Scenario>, InputError> {
        apply_all(&base(), &file(text)?.scenarios)
    }

    #[test]
    fn patches_change_exactly_the_fields_they_name() {
        let s = apply_text(
            r#"
            base = "base.toml"
            [[scenarios]]
            name = "plan"
            [[scenarios]]
            name = "budget +20%"
            budget_factor = 1.2
            [[scenarios]]
            name = "tv capped"
            budget = 900.0
            channels.tv = { max = 300.0 }
            channels.search = { response = { kind = "power", beta = 50.0, alpha = 0.5 } }
            [[scenarios]]
            name = "no search in week 1"
            add_constraints = [ { kind = "spend", channels = ["search"], periods = [0], max = 0.0 } ]
            [[scenarios]]
            name = "no rules"
            constraints = []
            objective = "profit"
            margin = 2.0
            "#,
        )
        .unwrap();
        let b = base();
        assert_eq!(s[0].problem, b);
        assert_eq!(s[1].problem.budget, 1200.0);
        assert_eq!(s[1].problem.channels, b.channels);
        let tv = &s[2].problem.channels[0];
        assert_eq!(
            (tv.max, tv.response.clone()),
            (Some(300.0), b.channels[0].response.clone())
        );
        assert_eq!(
            s[2].problem.channels[1].max,
            Some(800.0),
            "fields not named are kept"
        );
        assert_eq!(
            s[2].problem.channels[1].response.as_ref().unwrap().alpha,
            Some(0.5)
        );
        assert_eq!(s[2].problem.budget, 900.0);
        assert_eq!(s[3].problem.constraints.len(), 2);
        assert_eq!(s[3].problem.constraints[1].periods, Some(vec![0]));
        assert!(s[4].problem.constraints.is_empty());
        assert_eq!(s[4].problem.margin, 2.0);
        for sc in &s {
            Compiled::new(&sc.problem).unwrap();
        }
    }

    #[test]
    fn null_removes_an_optional_channel_field() {
        let spec: ScenarioSpec = serde_json::from_str(
            r#"{"name": "free search", "channels": {"search": {"max": null}}}"#,
        )
        .unwrap();
        let p = apply(&base(), &spec).unwrap();
        assert_eq!(p.channels[1].max, None);
    }

    fn message(text: &str) -> String {
        apply_text(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_scenario_and_the_field() {
        let head = "base = \"b.toml\"\n[[scenarios]]\nname = \"plan\"\n[[scenarios]]\nname = \"tv capped\"\n";
        let e = message(&format!("{head}channels.tvv = {{ max = 1.0 }}"));
        assert_eq!(
            e,
            "scenarios[1] (\"tv capped\"): channels.tvv: unknown channel `tvv` (did you mean `tv`?); the base problem's channels: tv, search"
        );
        let e = message(&format!("{head}periods = 4"));
        assert!(
            e.starts_with("scenarios[1] (\"tv capped\"): periods: not patchable"),
            "{e}"
        );
        let e = message(&format!("{head}budget = 2.0\nbudget_factor = 1.5"));
        assert!(
            e.starts_with("scenarios[1] (\"tv capped\"): budget_factor: exclusive with `budget`"),
            "{e}"
        );
        let e = message(&format!("{head}budget_factor = -1.0"));
        assert!(
            e.contains("budget_factor: must be a finite number > 0"),
            "{e}"
        );
        let e = message(&format!("{head}budjet = 2.0"));
        assert!(e.starts_with("scenarios[1] (\"tv capped\"): "), "{e}");
        assert!(e.contains("budjet") && e.contains("budget"), "{e}");
        let e = message(&format!("{head}channels.tv = {{ maxx = 1.0 }}"));
        assert!(
            e.starts_with("scenarios[1] (\"tv capped\"): channels.tv"),
            "{e}"
        );
        assert!(e.contains("maxx"), "{e}");
        let e = message(&format!("{head}channels.tv = {{ name = \"radio\" }}"));
        assert!(
            e.starts_with("scenarios[1] (\"tv capped\"): channels.tv"),
            "{e}"
        );
        assert!(e.contains("unknown field `name`"), "{e}");
        // NaN reaches the problem's checks instead of vanishing on the way.
        let s = apply_text(&format!("{head}channels.tv = {{ max = nan }}")).unwrap();
        assert!(s[1].problem.channels[0].max.unwrap().is_nan());
        let e = message(&format!(
            "{head}add_constraints = [ {{ kind = \"sharee\" }} ]"
        ));
        assert!(
            e.starts_with("scenarios[1] (\"tv capped\"): add_constraints[0].kind"),
            "{e}"
        );
        let e = message(
            "base = \"b.toml\"\n[[scenarios]]\nname = \"a\"\n[[scenarios]]\nname = \"a\"\n",
        );
        assert_eq!(
            e,
            "scenarios[1] (\"a\"): name: duplicate: scenarios[0] has the same name"
        );
        let e = message("base = \"b.toml\"\n[[scenarios]]\nbudget = 3.0\n");
        assert!(e.starts_with("scenarios[0]: "), "{e}");
        assert!(e.contains("name"), "{e}");
        let e = message("base = \"b.toml\"\nscenarios = []\n");
        assert!(e.starts_with("scenarios: no scenarios"), "{e}");
    }

    #[test]
    fn base_path_is_relative_to_the_scenario_file() {
        let f = file("base = \"problems/b.toml\"\n[[scenarios]]\nname = \"a\"\n").unwrap();
        assert_eq!(
            f.base_path(Path::new("/work/plans/q4.toml")),
            PathBuf::from("/work/plans/problems/b.toml")
        );
    }
}
