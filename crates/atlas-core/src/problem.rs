//! The problem file schema of the contract (`shared/spec/problem-format.md`, section 2),
//! read from TOML, JSON or YAML.
//!
//! These types mirror the file one to one, so they can also be built in code and written
//! back. They are checked and turned into a solver-ready form by
//! [`Compiled::new`](crate::Compiled::new).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, InputError};

/// A budget allocation problem: channels with response curves, a budget, business rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    /// Free text naming the problem; copied into results.
    pub name: String,
    /// Number of periods `T >= 1` (default 1: a static allocation).
    #[serde(default = "default_periods")]
    pub periods: usize,
    /// Total spend over all channels and periods (`> 0`); an upper cap for `min_spend`.
    pub budget: f64,
    /// Whether the whole budget must be spent.
    #[serde(default)]
    pub budget_mode: BudgetMode,
    /// What to optimize.
    #[serde(default)]
    pub objective: ObjectiveKind,
    /// Value of one unit of response, for `objective = "profit"` (default 1).
    #[serde(default = "default_margin")]
    pub margin: f64,
    /// Required response level for `objective = "min_spend"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_response: Option<f64>,
    /// Discount rate `r`: the response of period `t` is weighted by `1 / (1 + r)^t`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub discount: f64,
    /// At most this many channels may have a total spend above zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_channels: Option<usize>,
    /// The channels, in the order results list them.
    pub channels: Vec<Channel>,
    /// Business rules beyond bounds and budget.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// The response model (`[model]`, `shared/spec/models.md`); absent: the built-in model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<crate::model_spec::ModelSpec>,
}

/// Whether the budget must be spent in full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetMode {
    /// `sum(x) == budget`.
    #[default]
    Exact,
    /// `sum(x) <= budget`.
    AtMost,
}

/// The objective named in a problem file (contract section 4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveKind {
    /// Maximize the total (discounted) response minus fixed costs.
    #[default]
    Response,
    /// Maximize `margin * response - spend` minus fixed costs.
    Profit,
    /// Minimize spend subject to `response >= target_response`.
    MinSpend,
}

/// One marketing channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Unique name.
    pub name: String,
    /// Lower bound on the channel's total over all periods (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Upper bound on the channel's total (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Lower bound on each period's spend (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_min: Option<f64>,
    /// Upper bound on each period's spend (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_max: Option<f64>,
    /// Response curve; required unless the problem is solved with a custom model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<CurveSpec>,
    /// Carry-over of spend into later periods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adstock: Option<AdstockSpec>,
    /// Spend must be a whole multiple of this, per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_unit: Option<f64>,
    /// If the channel's total is above zero it must be at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_active: Option<f64>,
    /// Charged once (subtracted from the objective) when the channel's total is above zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_cost: Option<f64>,
}

impl Channel {
    /// A channel with a response curve and no bounds.
    pub fn new(name: impl Into<String>, response: CurveSpec) -> Self {
        Self {
            name: name.into(),
            min: None,
            max: None,
            period_min: None,
            period_max: None,
            response: Some(response),
            adstock: None,
            spend_unit: None,
            min_active: None,
            fixed_cost: None,
        }
    }
}

/// The response curve kinds of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CurveKind {
    /// `beta * a`.
    Linear,
    /// `beta * a^s / (a^s + k^s)`.
    Hill,
    /// `beta * (1 - exp(-a / k))`.
    Exponential,
    /// `beta * (1 - exp(-lam * a)) / (1 + exp(-lam * a))`.
    Logistic,
    /// `beta * ln(1 + a / k)`.
    Log,
    /// `beta * a^alpha`.
    Power,
}

impl CurveKind {
    /// The parameters this kind takes, in the contract's order.
    pub fn parameters(self) -> &'static [&'static str] {
        match self {
            CurveKind::Linear => &["beta"],
            CurveKind::Hill => &["beta", "k", "s"],
            CurveKind::Exponential => &["beta", "k"],
            CurveKind::Logistic => &["beta", "lam"],
            CurveKind::Log => &["beta", "k"],
            CurveKind::Power => &["beta", "alpha"],
        }
    }

    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            CurveKind::Linear => "linear",
            CurveKind::Hill => "hill",
            CurveKind::Exponential => "exponential",
            CurveKind::Logistic => "logistic",
            CurveKind::Log => "log",
            CurveKind::Power => "power",
        }
    }
}

/// A response curve as written in a file: the kind and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurveSpec {
    /// Which curve.
    pub kind: CurveKind,
    /// Scale (`>= 0`), every kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// Half-saturation (`hill`) or scale (`exponential`, `log`) spend, `> 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<f64>,
    /// Hill shape `> 0` (S-shaped when `> 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s: Option<f64>,
    /// Logistic steepness `> 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lam: Option<f64>,
    /// Power exponent in `(0, 1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
}

impl CurveSpec {
    /// The entry of parameter `name` (one of [`CurveKind::parameters`]; `beta` otherwise).
    pub fn parameter_mut(&mut self, name: &str) -> &mut Option<f64> {
        match name {
            "k" => &mut self.k,
            "s" => &mut self.s,
            "lam" => &mut self.lam,
            "alpha" => &mut self.alpha,
            _ => &mut self.beta,
        }
    }

    fn with(kind: CurveKind, beta: f64) -> Self {
        Self {
            kind,
            beta: Some(beta),
            k: None,
            s: None,
            lam: None,
            alpha: None,
        }
    }
    /// `beta * a`.
    pub fn linear(beta: f64) -> Self {
        Self::with(CurveKind::Linear, beta)
    }
    /// `beta * a^s / (a^s + k^s)`.
    pub fn hill(beta: f64, k: f64, s: f64) -> Self {
        Self {
            k: Some(k),
            s: Some(s),
            ..Self::with(CurveKind::Hill, beta)
        }
    }
    /// `beta * (1 - exp(-a / k))`.
    pub fn exponential(beta: f64, k: f64) -> Self {
        Self {
            k: Some(k),
            ..Self::with(CurveKind::Exponential, beta)
        }
    }
    /// `beta * (1 - exp(-lam a)) / (1 + exp(-lam a))`.
    pub fn logistic(beta: f64, lam: f64) -> Self {
        Self {
            lam: Some(lam),
            ..Self::with(CurveKind::Logistic, beta)
        }
    }
    /// `beta * ln(1 + a / k)`.
    pub fn log(beta: f64, k: f64) -> Self {
        Self {
            k: Some(k),
            ..Self::with(CurveKind::Log, beta)
        }
    }
    /// `beta * a^alpha`.
    pub fn power(beta: f64, alpha: f64) -> Self {
        Self {
            alpha: Some(alpha),
            ..Self::with(CurveKind::Power, beta)
        }
    }

    /// The parameters that are set, by name.
    pub fn given(&self) -> [(&'static str, Option<f64>); 5] {
        [
            ("beta", self.beta),
            ("k", self.k),
            ("s", self.s),
            ("lam", self.lam),
            ("alpha", self.alpha),
        ]
    }
}

/// Adstock kinds of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdstockKind {
    /// Weights `decay^l`, `l = 0 .. max_lag-1`.
    Geometric,
}

/// Carry-over of spend into later periods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdstockSpec {
    /// Only `geometric` in contract version 1.
    pub kind: AdstockKind,
    /// `0 <= decay < 1`.
    pub decay: f64,
    /// Number of weights, `>= 1` (default 1).
    #[serde(default = "default_max_lag")]
    pub max_lag: usize,
    /// Divide every weight by their sum (default true).
    #[serde(default = "default_true")]
    pub normalize: bool,
}

/// The constraint kinds of the contract (section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    /// A group's share of the spend of all channels in the same periods.
    Share,
    /// A group's spend relative to another group's.
    Ratio,
    /// A group's absolute spend.
    Spend,
    /// Period-on-period change limit.
    MaxChange,
    /// A general linear row.
    Linear,
    /// Minimum average return on the total spend (nonlinear).
    MinRoi,
}

impl ConstraintKind {
    /// The fields this kind accepts besides `kind`.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            ConstraintKind::Share | ConstraintKind::Spend => &["channels", "periods", "min", "max"],
            ConstraintKind::Ratio => &["channels", "over", "periods", "min", "max"],
            ConstraintKind::MaxChange => &["channels", "max_rate"],
            ConstraintKind::Linear => &["terms", "op", "rhs"],
            ConstraintKind::MinRoi => &["value"],
        }
    }

    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            ConstraintKind::Share => "share",
            ConstraintKind::Ratio => "ratio",
            ConstraintKind::Spend => "spend",
            ConstraintKind::MaxChange => "max_change",
            ConstraintKind::Linear => "linear",
            ConstraintKind::MinRoi => "min_roi",
        }
    }
}

/// One business rule as written in a file; which fields apply depends on `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    /// Which rule.
    pub kind: ConstraintKind,
    /// The group (`share`, `ratio`, `spend`, `max_change`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// The reference group of a `ratio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over: Option<Vec<String>>,
    /// 0-based period indices (all periods when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periods: Option<Vec<usize>>,
    /// Lower limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Upper limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Largest relative change from one period to the next (`max_change`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<f64>,
    /// Terms of a `linear` row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<Vec<Term>>,
    /// Comparison of a `linear` row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Op>,
    /// Right-hand side of a `linear` row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhs: Option<f64>,
    /// Minimum return per unit of spend (`min_roi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

impl Constraint {
    /// An empty constraint of `kind`; set the fields that kind takes.
    pub fn new(kind: ConstraintKind) -> Self {
        Self {
            kind,
            channels: None,
            over: None,
            periods: None,
            min: None,
            max: None,
            max_rate: None,
            terms: None,
            op: None,
            rhs: None,
            value: None,
        }
    }

    /// The fields that are set, by name (besides `kind`).
    pub fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let checks: [(&'static str, bool); 10] = [
            ("channels", self.channels.is_some()),
            ("over", self.over.is_some()),
            ("periods", self.periods.is_some()),
            ("min", self.min.is_some()),
            ("max", self.max.is_some()),
            ("max_rate", self.max_rate.is_some()),
            ("terms", self.terms.is_some()),
            ("op", self.op.is_some()),
            ("rhs", self.rhs.is_some()),
            ("value", self.value.is_some()),
        ];
        for (name, set) in checks {
            if set {
                v.push(name);
            }
        }
        v
    }
}

/// One term `coef * S(channel, periods)` of a `linear` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    /// The channel.
    pub channel: String,
    /// 0-based periods (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periods: Option<Vec<usize>>,
    /// Coefficient.
    pub coef: f64,
}

/// Comparison operator of a `linear` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `lhs <= rhs`.
    #[serde(rename = "<=")]
    Le,
    /// `lhs >= rhs`.
    #[serde(rename = ">=")]
    Ge,
    /// `lhs == rhs`.
    #[serde(rename = "==")]
    Eq,
}

fn default_periods() -> usize {
    1
}
fn default_margin() -> f64 {
    1.0
}
fn default_max_lag() -> usize {
    1
}
fn default_true() -> bool {
    true
}
fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// File formats the schema is read from, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.toml`
    Toml,
    /// `.json`
    Json,
    /// `.yaml` or `.yml`
    Yaml,
}

impl Format {
    /// The format named by `path`'s extension.
    pub fn from_path(path: &Path) -> Result<Format, InputError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("toml") => Ok(Format::Toml),
            Some("json") => Ok(Format::Json),
            Some("yaml" | "yml") => Ok(Format::Yaml),
            other => Err(InputError {
                file: Some(path.to_path_buf()),
                field: String::new(),
                reason: format!(
                    "unknown file extension {}: use .toml, .json, .yaml or .yml",
                    other.map_or("(none)".to_string(), |e| format!("`.{e}`"))
                ),
            }),
        }
    }
}

impl Problem {
    /// Reads and parses a problem file (format by extension). The problem is not yet
    /// checked: [`Compiled::new`](crate::Compiled::new) does that.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Problem, Error> {
        read_document(path.as_ref())
    }

    /// Parses a problem from text in the given format.
    pub fn from_text(text: &str, format: Format) -> Result<Problem, InputError> {
        parse_document(text, format)
    }
}

/// Reads a file and deserializes it (format by extension), with errors naming the file
/// and field.
pub fn read_document<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let format = Format::from_path(path)?;
    let text = read_limited(path)?;
    parse_document(&text, format).map_err(|e| Error::Input(e.in_file(Some(path))))
}

/// The text of `path`, refused when larger than
/// [`MAX_FILE_BYTES`](crate::limits::MAX_FILE_BYTES) (checked on what is read, so a file
/// that grows, or a FIFO, cannot exceed it either).
pub fn read_limited(path: &Path) -> Result<String, Error> {
    use std::io::Read;
    let io = |e: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    };
    let limit = crate::limits::MAX_FILE_BYTES;
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(InputError {
            file: Some(path.to_path_buf()),
            field: String::new(),
            reason: format!(
                "the file is larger than the limit of {limit} bytes (see docs/problem-format.md, section 7)"
            ),
        }
        .into());
    }
    String::from_utf8(bytes).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text ({e})"),
        ))
    })
}

/// The first line of `text` that is neither blank nor a comment (`#`).
fn first_content_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Every document Atlas reads is a table of fields at the top. serde would read a struct
/// from an array too (its fields in order), giving a message about the wrong thing, so an
/// array at the top is refused as such; a `.json` file that holds TOML or YAML is named
/// as such.
fn check_top_level(text: &str, format: Format) -> Result<(), InputError> {
    let first = text.trim_start();
    let array = |what: &str| {
        Err(InputError::new(
            "",
            format!("the document must be a table of fields at the top (`{what}`), not an array (line 1)"),
        ))
    };
    match format {
        Format::Json => {
            if first.starts_with('[') {
                return array("{ \"name\": ..., ... }");
            }
            if !first.starts_with('{') && !first.is_empty() {
                let line = first_content_line(text).unwrap_or_default();
                let looks_like =
                    if line.starts_with('[') || line.contains(" = ") || line.contains("=") {
                        "it looks like TOML: name the file .toml"
                    } else if line.contains(": ") || line.starts_with("---") {
                        "it looks like YAML: name the file .yaml"
                    } else {
                        "JSON starts with `{`"
                    };
                return Err(InputError::new(
                    "",
                    format!("not a JSON object (line 1): {looks_like}"),
                ));
            }
        }
        Format::Yaml => {
            if first_content_line(text)
                .is_some_and(|l| l.starts_with("- ") || l == "-" || l.starts_with('['))
            {
                return array("name: ...");
            }
        }
        Format::Toml => {}
    }
    Ok(())
}

/// Deserializes a document, reporting the field path of the first error.
pub fn parse_document<T: DeserializeOwned>(text: &str, format: Format) -> Result<T, InputError> {
    check_top_level(text, format)?;
    match format {
        Format::Toml => {
            let de = toml::Deserializer::parse(text).map_err(|e| toml_error(text, "", &e))?;
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = path_string(e.path());
                toml_error(text, &path, e.inner())
            })
        }
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = path_string(e.path());
                let inner = e.inner();
                let message = strip_json_position(&inner.to_string());
                InputError::new(
                    path,
                    format!(
                        "{} (line {}, column {})",
                        crate::suggest::improve_serde_message(&message),
                        inner.line(),
                        inner.column()
                    ),
                )
            })?;
            de.end().map_err(|e| InputError::new("", e.to_string()))?;
            Ok(value)
        }
        Format::Yaml => {
            let de = serde_norway::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = path_string(e.path());
                let inner = e.inner();
                let mut message = inner.to_string();
                if let Some(loc) = inner.location() {
                    let suffix = format!(" at line {} column {}", loc.line(), loc.column());
                    if let Some(stripped) = message.strip_suffix(&suffix) {
                        message = stripped.to_string();
                    }
                    if let Some(pos) = message.find(": ") {
                        // serde_norway prefixes the path it knows; ours is more precise.
                        if message[..pos].chars().all(|c| c != ' ') && !path.is_empty() {
                            message = message[pos + 2..].to_string();
                        }
                    }
                    // serde_norway reports a repeated key at the start of its mapping;
                    // the line that repeats it is the one to name.
                    let (line, column) =
                        repeated_yaml_key(text, &message).unwrap_or((loc.line(), loc.column()));
                    message = format!(
                        "{} (line {line}, column {column})",
                        crate::suggest::improve_serde_message(&message),
                    );
                } else {
                    message = crate::suggest::improve_serde_message(&message);
                }
                InputError::new(path, message)
            })
        }
    }
}

/// Deserializes a map whose keys must be unique: serde's maps keep the last of repeated
/// keys silently, where a problem's fields refuse repeats; a map of channels (an
/// allocation) refuses them too, naming the key.
pub fn unique_keys<'de, D, V>(deserializer: D) -> Result<indexmap::IndexMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Unique<V> {
        type Value = indexmap::IndexMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a table with one entry per channel")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = indexmap::IndexMap::with_capacity(map.size_hint().unwrap_or(0).min(4096));
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate key `{}`: each channel may appear once",
                        key.escape_debug()
                    )));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Unique(std::marker::PhantomData))
}

/// For a `duplicate field `key`` message, the line and column where `key` appears the
/// second time at the indentation of its first appearance.
fn repeated_yaml_key(text: &str, message: &str) -> Option<(usize, usize)> {
    let key = message
        .strip_prefix("duplicate field `")
        .or_else(|| message.strip_prefix("duplicate entry with key \""))?;
    let key = key.split(['`', '"']).next()?;
    let mut first_indent = None;
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start().trim_start_matches("- ");
        let indent = line.len() - body.len();
        let named = body
            .strip_prefix(key)
            .or_else(|| body.strip_prefix(&format!("\"{key}\"")))
            .is_some_and(|rest| rest.trim_start().starts_with(':'));
        if named {
            match first_indent {
                None => first_indent = Some(indent),
                Some(f) if f == indent => return Some((i + 1, indent + 1)),
                Some(_) => {}
            }
        }
    }
    None
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    if s == "." {
        String::new()
    } else {
        s
    }
}

fn strip_json_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(pos) => message[..pos].to_string(),
        None => message.to_string(),
    }
}

fn toml_error(text: &str, path: &str, e: &toml::de::Error) -> InputError {
    let mut reason = crate::suggest::improve_serde_message(e.message().trim());
    if let Some(span) = e.span() {
        if reason.starts_with("duplicate key") {
            // The span covers the repeated key: name it.
            if let Some(key) = text.get(span.clone()) {
                let key = key.trim().trim_matches('"').escape_debug().to_string();
                if !key.is_empty() && !reason.contains(&key) {
                    reason = format!("duplicate key `{key}`: each key may appear once");
                }
            }
        }
        let before = text.get(..span.start.min(text.len())).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
        reason = format!("{reason} (line {line}, column {column})");
    }
    InputError::new(path, reason)
}
