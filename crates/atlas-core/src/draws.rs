//! Optimizing over a posterior (`[model] kind = "draws"`, `shared/spec/models.md` section
//! 4): `D` parameter sets ("draws") of the built-in marketing-mix model, read from a JSON
//! or CSV file, and a [`Risk`] measure of the per-draw response that the optimizers
//! maximize.
//!
//! [`DrawsModel`] evaluates all draws at once: the adstocked spend is computed once per
//! distinct carry-over of a channel (draws that share a decay share the pass), the curves
//! of all draws are evaluated in parallel (rayon) when there are enough of them, and
//! gradients, Hessian-vector products and Hessian diagonals of the risk are exact
//! (accumulated in adstocked space, then mapped back once per distinct carry-over).
//!
//! ## Risk measures
//!
//! With `R_d(x)` the response of draw `d` (discount applied, as for the built-in model):
//!
//! - `mean`: `(1/D) sum_d R_d`;
//! - `{ cvar = a }`: the mean of the worst `a D` draws (a fractional draw at the edge gets
//!   the fractional weight), `max_t t - (1/(a D)) sum_d max(0, t - R_d)`;
//! - `{ quantile = q }`: the `q`-quantile with linear interpolation between order
//!   statistics (numpy's default), the same rule as the `p05`/`p50`/`p95` of the result.
//!
//! The model's value is always the exact risk. Gradient optimizers see, for CVaR with
//! `a < 1`, the smoothed CVaR of [`DrawsModel::smoothed`] (through
//! [`Model::solver_model`]): `S(x) = max_t t - (mu/(a D)) sum_d softplus((t - R_d)/mu)`,
//! concave and smooth when the draws are concave, with
//! `CVaR(x) - mu ln 2 / a <= S(x) <= CVaR(x)`. So the maximizer of `S` is within
//! `mu ln 2 / a` of the best CVaR. `mu` is chosen so that this bound is `smoothing` (default
//! `1e-6`) times the CVaR at an even split of the budget; the reported objective is the
//! exact CVaR of the returned plan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::compile::{check_adstock_spec, check_curve, Compiled, Objective};
use crate::curve::Curve;
use crate::error::{Error, InputError};
use crate::layout::Layout;
use crate::model::{Adstock, Derivatives, Model};
use crate::problem::{AdstockKind, AdstockSpec, CurveSpec, Problem};

/// The risk measure of the per-draw objective that is optimized.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Risk {
    /// The average over the draws.
    #[default]
    Mean,
    /// The mean of the worst `a` fraction of the draws, `0 < a <= 1`.
    Cvar(f64),
    /// The `q`-quantile, `0 <= q <= 1` (not concave: local and black-box optimizers only).
    Quantile(f64),
}

impl Risk {
    /// How messages name it (`mean`, `cvar 0.1`, `quantile 0.05`).
    pub fn describe(&self) -> String {
        match self {
            Risk::Mean => "mean".to_string(),
            Risk::Cvar(a) => format!("cvar {a}"),
            Risk::Quantile(q) => format!("quantile {q}"),
        }
    }

    /// The checks of the contract: `cvar` in `(0, 1]`, `quantile` in `[0, 1]`.
    pub fn check(&self, field: &str) -> Result<(), InputError> {
        match *self {
            Risk::Mean => Ok(()),
            Risk::Cvar(a) if a.is_finite() && a > 0.0 && a <= 1.0 => Ok(()),
            Risk::Cvar(a) => Err(InputError::new(
                format!("{field}.cvar"),
                format!("must be in (0, 1] (got {a}): the fraction of worst draws averaged"),
            )),
            Risk::Quantile(q) if (0.0..=1.0).contains(&q) => Ok(()),
            Risk::Quantile(q) => Err(InputError::new(
                format!("{field}.quantile"),
                format!("must be in [0, 1] (got {q})"),
            )),
        }
    }

    /// Whether the risk of concave draws is concave (mean and CVaR; a quantile of one
    /// draw is that draw).
    pub fn preserves_concavity(&self, draws: usize) -> bool {
        !matches!(self, Risk::Quantile(_)) || draws == 1
    }

    /// The risk of `values` and its weights `d risk / d value_d` (a supergradient for
    /// CVaR, the interpolation weights for a quantile).
    pub fn of(&self, values: &[f64]) -> (f64, Vec<f64>) {
        let d = values.len();
        let mut w = vec![0.0; d];
        match *self {
            Risk::Mean => {
                w.iter_mut().for_each(|w| *w = 1.0 / d as f64);
            }
            Risk::Cvar(a) => {
                let order = sorted_order(values);
                let k = a * d as f64;
                for (i, &j) in order.iter().enumerate() {
                    let part = (k - i as f64).clamp(0.0, 1.0);
                    if part == 0.0 {
                        break;
                    }
                    w[j] = part / k;
                }
            }
            Risk::Quantile(q) => {
                let order = sorted_order(values);
                let h = (d - 1) as f64 * q;
                let lo = h.floor() as usize;
                let hi = (lo + 1).min(d - 1);
                let f = h - lo as f64;
                w[order[lo]] += 1.0 - f;
                w[order[hi]] += f;
            }
        }
        let value = w.iter().zip(values).map(|(w, v)| w * v).sum();
        (value, w)
    }
}

fn sorted_order(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]).then(i.cmp(&j)));
    order
}

impl Serialize for Risk {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Risk::Mean => s.serialize_str("mean"),
            Risk::Cvar(a) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("cvar", a)?;
                m.end()
            }
            Risk::Quantile(q) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("quantile", q)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Risk {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Risk;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"mean\", { cvar = a } or { quantile = q }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Risk, E> {
                match v {
                    "mean" => Ok(Risk::Mean),
                    other => Err(E::custom(format!(
                        "unknown risk `{other}`: expected \"mean\", {{ cvar = a }} or {{ quantile = q }}"
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Risk, A::Error> {
                use serde::de::Error as _;
                let Some(key) = map.next_key::<String>()? else {
                    return Err(A::Error::custom(
                        "empty table: expected { cvar = a } or { quantile = q }",
                    ));
                };
                let value: f64 = map.next_value()?;
                let risk = match key.as_str() {
                    "cvar" => Risk::Cvar(value),
                    "quantile" => Risk::Quantile(value),
                    other => {
                        return Err(A::Error::custom(format!(
                            "unknown risk `{other}`: expected {{ cvar = a }} or {{ quantile = q }}"
                        )))
                    }
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(A::Error::custom(
                        "one risk measure only: { cvar = a } or { quantile = q }",
                    ));
                }
                Ok(risk)
            }
        }
        de.deserialize_any(V)
    }
}

/// `[model] kind = "draws"`: a posterior file and the risk to optimize.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawsSpec {
    /// The posterior, `.json` or `.csv`, relative to the problem file.
    pub path: PathBuf,
    /// The risk measure of the per-draw objective (default `"mean"`).
    #[serde(default)]
    pub risk: Risk,
    /// For CVaR with gradient optimizers: the bound of the smoothing's effect on the
    /// optimum, relative to the CVaR at an even split (`0..=0.1`; default `1e-6`; `0`
    /// optimizes the exact, non-smooth CVaR).
    #[serde(default = "default_smoothing")]
    pub smoothing: f64,
}

fn default_smoothing() -> f64 {
    1e-6
}

impl DrawsSpec {
    /// Checks the fields (`model.path`, `model.risk`, `model.smoothing`).
    pub fn check(&self) -> Result<(), InputError> {
        if self.path.as_os_str().is_empty() {
            return Err(InputError::new(
                "model.path",
                "must name the posterior file (.json or .csv, relative to the problem file)",
            ));
        }
        self.risk.check("model.risk")?;
        if !(self.smoothing.is_finite() && (0.0..=0.1).contains(&self.smoothing)) {
            return Err(InputError::new(
                "model.smoothing",
                format!("must be in [0, 0.1] (got {})", self.smoothing),
            ));
        }
        Ok(())
    }
}

/// What fronts and the registry know of a posterior model.
#[derive(Debug, Clone, PartialEq)]
pub struct PosteriorInfo {
    /// Number of draws.
    pub draws: usize,
    /// The risk optimized.
    pub risk: Risk,
    /// Channels with a non-concave curve (`hill` with `s > 1`) in some draw.
    pub nonconcave: Vec<usize>,
}

/// The spread of the objective over the draws for one allocation (the result's `risk`
/// block): mean, CVaR at 10 %, the 5th, 50th and 95th percentiles, and `D`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskBlock {
    /// Average over the draws.
    pub mean: f64,
    /// Mean of the worst 10 % of the draws.
    #[serde(rename = "cvar_0.1")]
    pub cvar_10: f64,
    /// 5th percentile (linear interpolation).
    pub p05: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Number of draws.
    pub draws: usize,
}

impl RiskBlock {
    /// The block of per-draw objective values.
    pub fn of(values: &[f64]) -> RiskBlock {
        RiskBlock {
            mean: Risk::Mean.of(values).0,
            cvar_10: Risk::Cvar(0.1).of(values).0,
            p05: Risk::Quantile(0.05).of(values).0,
            p50: Risk::Quantile(0.5).of(values).0,
            p95: Risk::Quantile(0.95).of(values).0,
            draws: values.len(),
        }
    }
}

impl Compiled {
    /// The per-draw objective of a posterior model at `x` (response minus fixed costs;
    /// `margin * response - spend` minus fixed costs for `profit`; the response for
    /// `min_spend`, whose objective is the same in every draw); `None` for other models.
    pub fn draw_objectives(&self, x: &[f64]) -> Option<Vec<f64>> {
        let mut r = self.model().draws(x)?;
        let spend: f64 = x.iter().sum();
        match self.objective() {
            Objective::Response => {
                let f = self.fixed_costs(x);
                r.iter_mut().for_each(|v| *v -= f);
            }
            Objective::Profit { margin } => {
                let f = self.fixed_costs(x);
                r.iter_mut().for_each(|v| *v = margin * *v - spend - f);
            }
            Objective::MinSpend { .. } => {}
        }
        Some(r)
    }

    /// The result's `risk` block at `x`; `None` unless the model is a posterior.
    pub fn risk(&self, x: &[f64]) -> Option<RiskBlock> {
        self.draw_objectives(x).map(|v| RiskBlock::of(&v))
    }
}

// ---- the posterior file --------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PosteriorFile {
    draws: Vec<IndexMap<String, DrawChannel>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrawChannel {
    #[serde(default)]
    response: Option<CurveSpec>,
    #[serde(default)]
    adstock: Option<AdstockSpec>,
}

/// Most draws of one posterior, and most draw-variables (`D x channels x periods`).
pub const MAX_DRAWS: usize = 100_000;
const MAX_DRAW_VARIABLES: usize = 20_000_000;

/// The draws of a posterior as the channels' entries: one `(response, adstock)` per
/// channel per draw, before checking.
type RawDraws = Vec<Vec<DrawChannel>>;

fn read_json(path: &Path, problem: &Problem) -> Result<RawDraws, Error> {
    let file: PosteriorFile = crate::problem::read_document(path)?;
    let index: HashMap<&str, usize> = problem
        .channels
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let names: Vec<&str> = problem.channels.iter().map(|c| c.name.as_str()).collect();
    let mut out = Vec::with_capacity(file.draws.len());
    for (d, draw) in file.draws.into_iter().enumerate() {
        let mut row: Vec<DrawChannel> = problem
            .channels
            .iter()
            .map(|_| DrawChannel {
                response: None,
                adstock: None,
            })
            .collect();
        for (name, entry) in draw {
            let Some(&c) = index.get(name.as_str()) else {
                let hint = crate::suggest::nearest(&name, names.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(InputError::new(
                    format!("draws[{d}].{name}"),
                    format!(
                        "unknown channel `{}`{hint}; the problem's channels: {}",
                        name.escape_debug(),
                        names.join(", ")
                    ),
                )
                .into());
            };
            row[c] = entry;
        }
        out.push(row);
    }
    Ok(out)
}

fn read_csv(path: &Path, problem: &Problem) -> Result<RawDraws, Error> {
    let text = crate::problem::read_limited(path)?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(InputError::new(
            "",
            "empty file: expected a header row of columns like `tv.response.beta`",
        )
        .into());
    };
    enum Column {
        Curve(usize, &'static str),
        Decay(usize),
        MaxLag(usize),
        Normalize(usize),
    }
    let names: Vec<&str> = problem.channels.iter().map(|c| c.name.as_str()).collect();
    let mut columns = Vec::new();
    for (j, col) in header.split(',').map(str::trim).enumerate() {
        let bad = |reason: String| -> Error {
            InputError::new(format!("columns[{j}] (`{col}`)"), reason).into()
        };
        let (channel, rest) = match col.split_once('.') {
            Some(p) => p,
            None => {
                return Err(bad(
                    "expected `channel.response.PARAMETER` or `channel.adstock.decay`".into(),
                ))
            }
        };
        let Some(c) = names.iter().position(|n| *n == channel) else {
            let hint = crate::suggest::nearest(channel, names.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(bad(format!(
                "unknown channel `{}`{hint}; the problem's channels: {}",
                channel.escape_debug(),
                names.join(", ")
            )));
        };
        let column = match rest {
            "adstock.decay" => Column::Decay(c),
            "adstock.max_lag" => Column::MaxLag(c),
            "adstock.normalize" => Column::Normalize(c),
            other => {
                let Some(param) = other.strip_prefix("response.") else {
                    return Err(bad("expected `channel.response.PARAMETER` or `channel.adstock.{decay, max_lag, normalize}`".into()));
                };
                let Some(spec) = &problem.channels[c].response else {
                    return Err(InputError::new(
                        format!("channels[{c}].response"),
                        format!("required with a CSV posterior: it gives the curve kind of the column `{col}`"),
                    )
                    .into());
                };
                let Some(&p) = spec.kind.parameters().iter().find(|p| **p == param) else {
                    return Err(bad(format!(
                        "`{}` curves (channels[{c}].response) have no parameter `{param}` (their parameters: {})",
                        spec.kind.as_str(),
                        spec.kind.parameters().join(", ")
                    )));
                };
                Column::Curve(c, p)
            }
        };
        columns.push(column);
    }
    let mut out = Vec::new();
    for (d, (line_no, line)) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != columns.len() {
            return Err(InputError::new(
                format!("draws[{d}]"),
                format!(
                    "line {}: {} values, the header has {} columns",
                    line_no + 1,
                    cells.len(),
                    columns.len()
                ),
            )
            .into());
        }
        let mut row: Vec<DrawChannel> = problem
            .channels
            .iter()
            .map(|ch| DrawChannel {
                response: ch.response.clone(),
                adstock: ch.adstock.clone(),
            })
            .collect();
        for (cell, column) in cells.iter().zip(&columns) {
            let c = match column {
                Column::Curve(c, _)
                | Column::Decay(c)
                | Column::MaxLag(c)
                | Column::Normalize(c) => *c,
            };
            let name = names[c];
            let number = |field: &str| -> Result<f64, Error> {
                cell.parse::<f64>().map_err(|_| {
                    InputError::new(
                        format!("draws[{d}].{name}.{field}"),
                        format!("line {}: `{cell}` is not a number", line_no + 1),
                    )
                    .into()
                })
            };
            match column {
                Column::Curve(_, p) => {
                    let v = number(&format!("response.{p}"))?;
                    if let Some(spec) = row[c].response.as_mut() {
                        *spec.parameter_mut(p) = Some(v);
                    }
                }
                Column::Decay(_) => {
                    let v = number("adstock.decay")?;
                    adstock_of(&mut row[c]).decay = v;
                }
                Column::MaxLag(_) => {
                    let v = number("adstock.max_lag")?;
                    if !(v >= 1.0 && v.fract() == 0.0 && v <= 1e6) {
                        return Err(InputError::new(
                            format!("draws[{d}].{name}.adstock.max_lag"),
                            format!("must be a whole number in 1..=1000000 (got {cell})"),
                        )
                        .into());
                    }
                    adstock_of(&mut row[c]).max_lag = v as usize;
                }
                Column::Normalize(_) => {
                    let v = match *cell {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(InputError::new(
                                format!("draws[{d}].{name}.adstock.normalize"),
                                format!("must be true or false (got `{cell}`)"),
                            )
                            .into())
                        }
                    };
                    adstock_of(&mut row[c]).normalize = v;
                }
            }
        }
        out.push(row);
    }
    Ok(out)
}

/// The adstock entry of a CSV draw's channel, created (geometric, one lag, normalized)
/// when a column sets one of its fields.
fn adstock_of(entry: &mut DrawChannel) -> &mut AdstockSpec {
    entry.adstock.get_or_insert(AdstockSpec {
        kind: AdstockKind::Geometric,
        decay: 0.0,
        max_lag: 1,
        normalize: true,
    })
}

/// Reads and checks the posterior of `spec` for `problem`, whose file lies in `base_dir`.
/// A draw's channel without a `response` (or `adstock`) entry takes the channel's own
/// entry in the problem; errors name the draw, the channel and the field
/// (`draws[17].tv.response.k: must be > 0`) and the posterior file.
pub fn load(spec: &DrawsSpec, problem: &Problem, base_dir: &Path) -> Result<DrawsModel, Error> {
    spec.check()?;
    let path = base_dir.join(&spec.path);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let raw = match ext.as_deref() {
        Some("json") => read_json(&path, problem),
        Some("csv") => read_csv(&path, problem),
        _ => {
            return Err(InputError::new(
                "model.path",
                format!(
                    "`{}`: a posterior is a .json or .csv file",
                    spec.path.display()
                ),
            )
            .into())
        }
    }
    .map_err(|e| e.in_file(Some(&path)))?;
    build(spec, problem, raw).map_err(|e| Error::Input(e.in_file(Some(&path))))
}

fn build(spec: &DrawsSpec, problem: &Problem, raw: RawDraws) -> Result<DrawsModel, InputError> {
    let d_count = raw.len();
    if d_count == 0 {
        return Err(InputError::new(
            "draws",
            "empty: a posterior needs at least one draw",
        ));
    }
    let channels = problem.channels.len();
    let periods = problem.periods.max(1);
    if d_count > MAX_DRAWS || d_count.saturating_mul(channels * periods) > MAX_DRAW_VARIABLES {
        return Err(InputError::new(
            "draws",
            format!(
                "{d_count} draws of {channels} channels x {periods} periods is beyond this build's limits ({MAX_DRAWS} draws, {MAX_DRAW_VARIABLES} draw-variables)"
            ),
        ));
    }
    let mut curves = Vec::with_capacity(d_count * channels);
    let mut slot_of = Vec::with_capacity(d_count * channels);
    let mut slots: Vec<Adstock> = Vec::new();
    let mut slot_channel: Vec<usize> = Vec::new();
    let mut seen: Vec<HashMap<Vec<u64>, usize>> = vec![HashMap::new(); channels];
    for (d, row) in raw.into_iter().enumerate() {
        for (c, entry) in row.into_iter().enumerate() {
            let ch = &problem.channels[c];
            let name = &ch.name;
            let field = format!("draws[{d}].{name}");
            let response = entry.response.or_else(|| ch.response.clone()).ok_or_else(|| {
                InputError::new(
                    format!("{field}.response"),
                    "required: the draw's response curve of this channel (or the channel's own `response` entry in the problem)",
                )
            })?;
            curves.push(check_curve(&format!("{field}.response"), &response)?);
            let adstock_spec = entry.adstock.or_else(|| ch.adstock.clone());
            let adstock =
                check_adstock_spec(&format!("{field}.adstock"), adstock_spec.as_ref(), periods)?;
            let key: Vec<u64> = adstock.weights().iter().map(|w| w.to_bits()).collect();
            let slot = *seen[c].entry(key).or_insert_with(|| {
                slots.push(adstock);
                slot_channel.push(c);
                slots.len() - 1
            });
            slot_of.push(slot);
        }
    }
    let names = problem.channels.iter().map(|c| c.name.clone()).collect();
    let layout = Layout::new(names, periods);
    let rate = problem.discount;
    let discount = (0..periods)
        .map(|t| 1.0 / (1.0 + rate).powi(t as i32))
        .collect();
    let mut model = DrawsModel {
        inner: Arc::new(Inner {
            layout,
            draws: d_count,
            curves,
            slots,
            slot_channel,
            slot_of,
            discount,
            last: std::sync::Mutex::new(None),
        }),
        risk: spec.risk,
        mu: 0.0,
        smoothing: spec.smoothing,
    };
    if let Risk::Cvar(a) = spec.risk {
        if a < 1.0 && spec.smoothing > 0.0 {
            // The smoothing's bound mu ln2 / a is `smoothing` times the CVaR at an even
            // split of the budget (or times one response unit where that is zero).
            let n = model.inner.layout.len();
            let even = vec![problem.budget / n as f64; n];
            let reference = model.value(&even).abs();
            let reference = if reference.is_finite() && reference > 0.0 {
                reference
            } else {
                1.0
            };
            model.mu = spec.smoothing * reference * a / std::f64::consts::LN_2;
        }
    }
    Ok(model)
}

// ---- the model -----------------------------------------------------------------------

struct Inner {
    layout: Layout,
    draws: usize,
    /// `curves[d * C + c]`.
    curves: Vec<Curve>,
    /// The distinct carry-overs, per channel.
    slots: Vec<Adstock>,
    /// The channel of each slot.
    slot_channel: Vec<usize>,
    /// `slot_of[d * C + c]`: the slot of draw `d`'s channel `c`.
    slot_of: Vec<usize>,
    discount: Vec<f64>,
    /// The last derivative pass and its point: trust-region methods ask for many
    /// Hessian-vector products at one point, and each would otherwise evaluate every
    /// draw's curves again.
    last: std::sync::Mutex<Option<(Vec<f64>, Arc<Pass>)>>,
}

/// Below this many draw-variables, draws are evaluated on the calling thread.
const PARALLEL_FROM: usize = 16_384;

/// Per-draw values, and with derivatives `d_t f'` and `d_t f''` at the adstocked spend
/// (flat `[d * n + c * T + t]`).
struct Pass {
    values: Vec<f64>,
    d1: Vec<f64>,
    d2: Vec<f64>,
}

impl Inner {
    fn n(&self) -> usize {
        self.layout.len()
    }

    /// Adstocked spend of every slot (`[slot * T + t]`), one pass per distinct carry-over.
    fn adstocked(&self, x: &[f64]) -> Vec<f64> {
        let t = self.layout.periods();
        let mut a = vec![0.0; self.slots.len() * t];
        for (s, ad) in self.slots.iter().enumerate() {
            let c = self.slot_channel[s];
            ad.apply(&x[c * t..(c + 1) * t], &mut a[s * t..(s + 1) * t]);
        }
        a
    }

    fn draw_value(&self, a: &[f64], d: usize) -> f64 {
        let t = self.layout.periods();
        let cs = self.layout.n_channels();
        let mut total = 0.0;
        for c in 0..cs {
            let curve = &self.curves[d * cs + c];
            let s = self.slot_of[d * cs + c];
            let a_s = &a[s * t..(s + 1) * t];
            for (&w, &ap) in self.discount.iter().zip(a_s) {
                total += w * curve.value(ap);
            }
        }
        total
    }

    fn draw_derivatives(&self, a: &[f64], d: usize, d1: &mut [f64], d2: &mut [f64]) -> f64 {
        let t = self.layout.periods();
        let cs = self.layout.n_channels();
        let mut total = 0.0;
        for c in 0..cs {
            let curve = &self.curves[d * cs + c];
            let s = self.slot_of[d * cs + c];
            let a_s = &a[s * t..(s + 1) * t];
            for p in 0..t {
                let (v, f1, f2) = curve.value_and_derivatives(a_s[p]);
                let w = self.discount[p];
                total += w * v;
                d1[c * t + p] = w * f1;
                d2[c * t + p] = w * f2;
            }
        }
        total
    }

    fn values(&self, x: &[f64]) -> Vec<f64> {
        let a = self.adstocked(x);
        let mut values = vec![0.0; self.draws];
        if self.draws * self.n() >= PARALLEL_FROM {
            values
                .par_iter_mut()
                .enumerate()
                .for_each(|(d, v)| *v = self.draw_value(&a, d));
        } else {
            for (d, v) in values.iter_mut().enumerate() {
                *v = self.draw_value(&a, d);
            }
        }
        values
    }

    fn pass(&self, x: &[f64]) -> Arc<Pass> {
        if let Ok(last) = self.last.lock() {
            if let Some((at, pass)) = last.as_ref() {
                if at.as_slice() == x {
                    return pass.clone();
                }
            }
        }
        let pass = Arc::new(self.compute_pass(x));
        if let Ok(mut last) = self.last.lock() {
            *last = Some((x.to_vec(), pass.clone()));
        }
        pass
    }

    fn compute_pass(&self, x: &[f64]) -> Pass {
        let n = self.n();
        let a = self.adstocked(x);
        let mut values = vec![0.0; self.draws];
        let mut d1 = vec![0.0; self.draws * n];
        let mut d2 = vec![0.0; self.draws * n];
        if self.draws * n >= PARALLEL_FROM {
            values
                .par_iter_mut()
                .zip(d1.par_chunks_mut(n).zip(d2.par_chunks_mut(n)))
                .enumerate()
                .for_each(|(d, (v, (g1, g2)))| *v = self.draw_derivatives(&a, d, g1, g2));
        } else {
            for (d, (v, (g1, g2))) in values
                .iter_mut()
                .zip(d1.chunks_mut(n).zip(d2.chunks_mut(n)))
                .enumerate()
            {
                *v = self.draw_derivatives(&a, d, g1, g2);
            }
        }
        Pass { values, d1, d2 }
    }

    /// `acc[slot * T + t] += coef_d * src[d * n + c * T + t]` over all draws.
    fn accumulate(&self, src: &[f64], coef: &[f64], acc: &mut [f64], mul: Option<&[f64]>) {
        let t = self.layout.periods();
        let cs = self.layout.n_channels();
        let n = self.n();
        for (d, &k) in coef.iter().enumerate() {
            if k == 0.0 {
                continue;
            }
            for c in 0..cs {
                let s = self.slot_of[d * cs + c];
                let row = &src[d * n + c * t..d * n + (c + 1) * t];
                let out = &mut acc[s * t..(s + 1) * t];
                match mul {
                    None => {
                        for (o, r) in out.iter_mut().zip(row) {
                            *o += k * r;
                        }
                    }
                    Some(m) => {
                        let m = &m[s * t..(s + 1) * t];
                        for ((o, r), mm) in out.iter_mut().zip(row).zip(m) {
                            *o += k * r * mm;
                        }
                    }
                }
            }
        }
    }

    /// `out[c] = sum over the slots of c of W_s^T acc_s`.
    fn back(&self, mut acc: Vec<f64>, out: &mut [f64]) {
        let t = self.layout.periods();
        out.iter_mut().for_each(|o| *o = 0.0);
        for (s, ad) in self.slots.iter().enumerate() {
            let c = self.slot_channel[s];
            let g = &mut acc[s * t..(s + 1) * t];
            ad.apply_transpose_in_place(g);
            for (o, v) in out[c * t..(c + 1) * t].iter_mut().zip(g.iter()) {
                *o += v;
            }
        }
    }

    /// `s_d = grad R_d . v` for every draw, with `b = W v` per slot.
    fn directional(&self, pass: &Pass, b: &[f64]) -> Vec<f64> {
        let t = self.layout.periods();
        let cs = self.layout.n_channels();
        let n = self.n();
        (0..self.draws)
            .map(|d| {
                let mut s = 0.0;
                for c in 0..cs {
                    let slot = self.slot_of[d * cs + c];
                    let row = &pass.d1[d * n + c * t..d * n + (c + 1) * t];
                    let bs = &b[slot * t..(slot + 1) * t];
                    s += row.iter().zip(bs).map(|(x, y)| x * y).sum::<f64>();
                }
                s
            })
            .collect()
    }
}

/// The smoothed CVaR's inner solution: the threshold's weights `sigma_d / k` and
/// curvatures `h_d = sigma_d (1 - sigma_d) / mu`, with `k = a D`.
struct Smooth {
    value: f64,
    weights: Vec<f64>,
    h: Vec<f64>,
    k: f64,
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// `max_t t - (mu / k) sum_d softplus((t - R_d) / mu)`, `k = a D < D`: the threshold
/// solves `sum_d sigma((t - R_d) / mu) = k` (increasing in `t`; safeguarded Newton).
fn smooth_cvar(values: &[f64], a: f64, mu: f64) -> Smooth {
    let d = values.len() as f64;
    let k = a * d;
    let lo_r = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi_r = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = mu * (40.0 + d.ln());
    let (mut lo, mut hi) = (lo_r - pad, hi_r + pad);
    let f = |t: f64| -> (f64, f64) {
        let mut s = 0.0;
        let mut ds = 0.0;
        for &r in values {
            let sg = sigmoid((t - r) / mu);
            s += sg;
            ds += sg * (1.0 - sg) / mu;
        }
        (s - k, ds)
    };
    let mut t = 0.5 * (lo + hi);
    for _ in 0..200 {
        let (g, dg) = f(t);
        if g.abs() <= 1e-13 * k {
            break;
        }
        if g > 0.0 {
            hi = t;
        } else {
            lo = t;
        }
        let newton = t - g / dg;
        t = if dg > 0.0 && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if hi - lo <= 1e-16 * (1.0 + t.abs()) {
            break;
        }
    }
    let mut value = t;
    let mut weights = Vec::with_capacity(values.len());
    let mut h = Vec::with_capacity(values.len());
    for &r in values {
        let z = (t - r) / mu;
        value -= mu / k * softplus(z);
        let sg = sigmoid(z);
        weights.push(sg / k);
        h.push(sg * (1.0 - sg) / mu);
    }
    Smooth {
        value,
        weights,
        h,
        k,
    }
}

/// A posterior of the built-in model (see the module's documentation), maximizing a
/// [`Risk`] of the per-draw response.
#[derive(Clone)]
pub struct DrawsModel {
    inner: Arc<Inner>,
    risk: Risk,
    /// The smoothing of CVaR, in response units (0: exact).
    mu: f64,
    smoothing: f64,
}

impl std::fmt::Debug for DrawsModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrawsModel")
            .field("draws", &self.inner.draws)
            .field("risk", &self.risk)
            .field("mu", &self.mu)
            .finish_non_exhaustive()
    }
}

impl DrawsModel {
    /// Number of draws.
    pub fn draw_count(&self) -> usize {
        self.inner.draws
    }

    /// The risk optimized.
    pub fn risk(&self) -> Risk {
        self.risk
    }

    /// Distinct carry-overs over all channels and draws (one adstock pass each).
    pub fn adstock_passes(&self) -> usize {
        self.inner.slots.len()
    }

    /// The same posterior with another risk (smoothing recomputed as at load time is not
    /// kept: CVaR here is exact unless [`DrawsModel::smoothed`] is asked for).
    pub fn with_risk(&self, risk: Risk) -> DrawsModel {
        DrawsModel {
            inner: self.inner.clone(),
            risk,
            mu: 0.0,
            smoothing: self.smoothing,
        }
    }

    /// The smoothing of CVaR in response units (`mu`; 0 when exact).
    pub fn smoothing_mu(&self) -> f64 {
        self.mu
    }

    /// The smoothed CVaR model gradient optimizers see (value, gradient and Hessian of
    /// `S`); `None` unless the risk is CVaR with `a < 1` and a smoothing above 0.
    pub fn smoothed(&self) -> Option<SmoothedCvar> {
        match self.risk {
            Risk::Cvar(a) if a < 1.0 && self.mu > 0.0 => Some(SmoothedCvar {
                inner: self.inner.clone(),
                a,
                mu: self.mu,
            }),
            _ => None,
        }
    }

    /// Builds a posterior model from checked parts (used by tests and generators): one
    /// `(curve, adstock)` per channel per draw, `discount` the problem's rate.
    pub fn from_parts(
        layout: Layout,
        draws: Vec<Vec<crate::model::ChannelResponse>>,
        rate: f64,
        risk: Risk,
    ) -> DrawsModel {
        let channels = layout.n_channels();
        let periods = layout.periods();
        let mut curves = Vec::new();
        let mut slot_of = Vec::new();
        let mut slots: Vec<Adstock> = Vec::new();
        let mut slot_channel = Vec::new();
        let mut seen: Vec<HashMap<Vec<u64>, usize>> = vec![HashMap::new(); channels];
        for row in &draws {
            assert_eq!(row.len(), channels);
            for (c, ch) in row.iter().enumerate() {
                curves.push(ch.curve);
                let key: Vec<u64> = ch.adstock.weights().iter().map(|w| w.to_bits()).collect();
                let slot = *seen[c].entry(key).or_insert_with(|| {
                    slots.push(ch.adstock.clone());
                    slot_channel.push(c);
                    slots.len() - 1
                });
                slot_of.push(slot);
            }
        }
        let discount = (0..periods)
            .map(|t| 1.0 / (1.0 + rate).powi(t as i32))
            .collect();
        DrawsModel {
            inner: Arc::new(Inner {
                layout,
                draws: draws.len(),
                curves,
                slots,
                slot_channel,
                slot_of,
                discount,
                last: std::sync::Mutex::new(None),
            }),
            risk,
            mu: 0.0,
            smoothing: 0.0,
        }
    }

    fn weighted_gradient(&self, pass: &Pass, w: &[f64], grad: &mut [f64]) {
        let t = self.inner.layout.periods();
        let mut acc = vec![0.0; self.inner.slots.len() * t];
        self.inner.accumulate(&pass.d1, w, &mut acc, None);
        self.inner.back(acc, grad);
    }

    fn weighted_hv(&self, pass: &Pass, w: &[f64], v: &[f64], out: &mut [f64]) {
        let t = self.inner.layout.periods();
        let b = self.inner.adstocked(v);
        let mut acc = vec![0.0; self.inner.slots.len() * t];
        self.inner.accumulate(&pass.d2, w, &mut acc, Some(&b));
        self.inner.back(acc, out);
    }

    fn weighted_diagonal(&self, pass: &Pass, w: &[f64], out: &mut [f64]) {
        let t = self.inner.layout.periods();
        let mut acc = vec![0.0; self.inner.slots.len() * t];
        self.inner.accumulate(&pass.d2, w, &mut acc, None);
        out.iter_mut().for_each(|o| *o = 0.0);
        for (s, ad) in self.inner.slots.iter().enumerate() {
            let c = self.inner.slot_channel[s];
            let wts = ad.weights();
            let a = &acc[s * t..(s + 1) * t];
            for p in 0..t {
                let lags = wts.len().min(t - p);
                let mut sum = 0.0;
                for l in 0..lags {
                    sum += wts[l] * wts[l] * a[p + l];
                }
                out[c * t + p] += sum;
            }
        }
    }
}

impl Model for DrawsModel {
    fn dim(&self) -> usize {
        self.inner.n()
    }

    fn value(&self, x: &[f64]) -> f64 {
        self.risk.of(&self.inner.values(x)).0
    }

    fn derivatives(&self) -> Derivatives {
        Derivatives::Hessian
    }

    fn gradient(&self, x: &[f64], grad: &mut [f64]) -> Option<f64> {
        let pass = self.inner.pass(x);
        let (value, w) = self.risk.of(&pass.values);
        self.weighted_gradient(&pass, &w, grad);
        Some(value)
    }

    fn hessian_vector(&self, x: &[f64], v: &[f64], out: &mut [f64]) -> Option<()> {
        let pass = self.inner.pass(x);
        let (_, w) = self.risk.of(&pass.values);
        self.weighted_hv(&pass, &w, v, out);
        Some(())
    }

    fn hessian_diagonal(&self, x: &[f64], out: &mut [f64]) -> Option<()> {
        let pass = self.inner.pass(x);
        let (_, w) = self.risk.of(&pass.values);
        self.weighted_diagonal(&pass, &w, out);
        Some(())
    }

    fn is_concave(&self) -> Option<bool> {
        Some(
            self.risk.preserves_concavity(self.inner.draws)
                && self.inner.curves.iter().all(Curve::is_concave),
        )
    }

    /// The posterior mean of each channel's response.
    fn channel_responses(&self, x: &[f64]) -> Option<Vec<f64>> {
        let inner = &self.inner;
        let a = inner.adstocked(x);
        let t = inner.layout.periods();
        let cs = inner.layout.n_channels();
        let mut out = vec![0.0; cs];
        for d in 0..inner.draws {
            for (c, o) in out.iter_mut().enumerate() {
                let curve = &inner.curves[d * cs + c];
                let s = inner.slot_of[d * cs + c];
                let v: f64 = (0..t)
                    .map(|p| inner.discount[p] * curve.value(a[s * t + p]))
                    .sum();
                *o += v / inner.draws as f64;
            }
        }
        Some(out)
    }

    fn draws(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(self.inner.values(x))
    }

    fn posterior(&self) -> Option<PosteriorInfo> {
        let cs = self.inner.layout.n_channels();
        let nonconcave = (0..cs)
            .filter(|&c| (0..self.inner.draws).any(|d| !self.inner.curves[d * cs + c].is_concave()))
            .collect();
        Some(PosteriorInfo {
            draws: self.inner.draws,
            risk: self.risk,
            nonconcave,
        })
    }

    fn solver_model(&self) -> Option<Arc<dyn Model>> {
        self.smoothed().map(|s| Arc::new(s) as Arc<dyn Model>)
    }
}

/// The smoothed CVaR of a posterior (see the module's documentation): what gradient
/// optimizers maximize in place of the exact CVaR.
#[derive(Clone)]
pub struct SmoothedCvar {
    inner: Arc<Inner>,
    a: f64,
    mu: f64,
}

impl SmoothedCvar {
    /// The bound on `CVaR - S` at any point, `mu ln 2 / a`, in response units.
    pub fn bound(&self) -> f64 {
        self.mu * std::f64::consts::LN_2 / self.a
    }
}

impl Model for SmoothedCvar {
    fn dim(&self) -> usize {
        self.inner.n()
    }

    fn value(&self, x: &[f64]) -> f64 {
        smooth_cvar(&self.inner.values(x), self.a, self.mu).value
    }

    fn derivatives(&self) -> Derivatives {
        Derivatives::Hessian
    }

    fn gradient(&self, x: &[f64], grad: &mut [f64]) -> Option<f64> {
        let pass = self.inner.pass(x);
        let s = smooth_cvar(&pass.values, self.a, self.mu);
        let t = self.inner.layout.periods();
        let mut acc = vec![0.0; self.inner.slots.len() * t];
        self.inner.accumulate(&pass.d1, &s.weights, &mut acc, None);
        self.inner.back(acc, grad);
        Some(s.value)
    }

    /// `(1/k) [sum sigma_d H_d v - sum h_d g_d (g_d.v) + (sum h_d g_d)(sum h_d g_d.v) /
    /// sum h_d]`, the Hessian of the partial maximum over the threshold.
    fn hessian_vector(&self, x: &[f64], v: &[f64], out: &mut [f64]) -> Option<()> {
        let pass = self.inner.pass(x);
        let s = smooth_cvar(&pass.values, self.a, self.mu);
        let t = self.inner.layout.periods();
        let b = self.inner.adstocked(v);
        let dir = self.inner.directional(&pass, &b);
        let h_sum: f64 = s.h.iter().sum();
        let hv_sum: f64 = s.h.iter().zip(&dir).map(|(h, d)| h * d).sum();
        let mean = if h_sum > 0.0 { hv_sum / h_sum } else { 0.0 };
        let coef: Vec<f64> =
            s.h.iter()
                .zip(&dir)
                .map(|(h, d)| h / s.k * (mean - d))
                .collect();
        let mut acc = vec![0.0; self.inner.slots.len() * t];
        self.inner
            .accumulate(&pass.d2, &s.weights, &mut acc, Some(&b));
        self.inner.accumulate(&pass.d1, &coef, &mut acc, None);
        self.inner.back(acc, out);
        Some(())
    }

    fn is_concave(&self) -> Option<bool> {
        Some(self.inner.curves.iter().all(Curve::is_concave))
    }

    fn draws(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(self.inner.values(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChannelResponse, Mmm};
    use rand::{Rng, SeedableRng};

    fn random_posterior(seed: u64, draws: usize, risk: Risk) -> (DrawsModel, Vec<Mmm>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let layout = Layout::new(vec!["a".into(), "b".into(), "c".into()], 4);
        let mut rows = Vec::new();
        let mut mmms = Vec::new();
        for _ in 0..draws {
            let decay = [0.3, 0.6][rng.random_range(0..2)];
            let row = vec![
                ChannelResponse {
                    curve: Curve::Hill {
                        beta: rng.random_range(1.0..3.0),
                        k: rng.random_range(0.5..2.0),
                        s: rng.random_range(0.5..1.0),
                    },
                    adstock: Adstock::geometric(decay, 3, true),
                },
                ChannelResponse {
                    curve: Curve::Log {
                        beta: rng.random_range(1.0..3.0),
                        k: rng.random_range(0.5..2.0),
                    },
                    adstock: Adstock::identity(),
                },
                ChannelResponse {
                    curve: Curve::Exponential {
                        beta: rng.random_range(1.0..3.0),
                        k: rng.random_range(0.5..2.0),
                    },
                    adstock: Adstock::geometric(0.5, 2, false),
                },
            ];
            mmms.push(Mmm::new(layout.clone(), row.clone(), 0.05));
            rows.push(row);
        }
        (DrawsModel::from_parts(layout, rows, 0.05, risk), mmms)
    }

    fn point(seed: u64, n: usize) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(0.2..3.0)).collect()
    }

    #[test]
    fn risk_measures_by_hand() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(Risk::Mean.of(&v).0, 2.5);
        // Worst half: 1 and 2.
        assert_eq!(Risk::Cvar(0.5).of(&v).0, 1.5);
        // Worst 0.3 * 4 = 1.2 draws: 1 with weight 1/1.2, 2 with 0.2/1.2.
        assert!((Risk::Cvar(0.3).of(&v).0 - (1.0 + 0.2 * 2.0) / 1.2).abs() < 1e-15);
        assert_eq!(Risk::Cvar(1.0).of(&v).0, 2.5);
        // Sorted 1 2 3 4; q = 0.5 -> h = 1.5 -> 2.5; q = 0.05 -> h = 0.15 -> 1.15.
        assert_eq!(Risk::Quantile(0.5).of(&v).0, 2.5);
        assert!((Risk::Quantile(0.05).of(&v).0 - 1.15).abs() < 1e-15);
        let b = RiskBlock::of(&v);
        assert_eq!((b.mean, b.draws), (2.5, 4));
        assert!((b.p95 - 3.85).abs() < 1e-12);
    }

    #[test]
    fn each_draw_is_the_built_in_model() {
        let (m, mmms) = random_posterior(1, 7, Risk::Mean);
        let x = point(2, m.dim());
        let per = m.draws(&x).unwrap();
        for (d, mmm) in mmms.iter().enumerate() {
            assert!((per[d] - mmm.value(&x)).abs() <= 1e-12 * per[d].abs());
        }
        // Two decays for channel a, one carry-over each for b and c.
        assert_eq!(m.adstock_passes(), 4);
        let mean: f64 = mmms.iter().map(|m| m.value(&x)).sum::<f64>() / 7.0;
        assert!((m.value(&x) - mean).abs() <= 1e-12 * mean);
    }

    fn check_derivatives(m: &dyn Model, x: &[f64], v: &[f64], tol: f64) {
        let n = x.len();
        let mut g = vec![0.0; n];
        let val = m.gradient(x, &mut g).unwrap();
        assert!((val - m.value(x)).abs() <= 1e-12 * (1.0 + val.abs()));
        for i in 0..n {
            let h = 1e-6;
            let mut xp = x.to_vec();
            let mut xm = x.to_vec();
            xp[i] += h;
            xm[i] -= h;
            let fd = (m.value(&xp) - m.value(&xm)) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() <= tol * (1.0 + g[i].abs()),
                "grad {i}: {fd} vs {}",
                g[i]
            );
        }
        let mut hv = vec![0.0; n];
        m.hessian_vector(x, v, &mut hv).unwrap();
        let h = 1e-6;
        let xp: Vec<f64> = x.iter().zip(v).map(|(a, b)| a + h * b).collect();
        let xm: Vec<f64> = x.iter().zip(v).map(|(a, b)| a - h * b).collect();
        let mut gp = vec![0.0; n];
        let mut gm = vec![0.0; n];
        m.gradient(&xp, &mut gp);
        m.gradient(&xm, &mut gm);
        for i in 0..n {
            let fd = (gp[i] - gm[i]) / (2.0 * h);
            assert!(
                (fd - hv[i]).abs() <= 10.0 * tol * (1.0 + hv[i].abs()),
                "hv {i}: {fd} vs {}",
                hv[i]
            );
        }
    }

    #[test]
    fn mean_gradient_and_hessian_match_finite_differences() {
        for seed in 0..5 {
            let (m, _) = random_posterior(seed, 9, Risk::Mean);
            let x = point(seed + 10, m.dim());
            let v: Vec<f64> = point(seed + 20, m.dim()).iter().map(|p| p - 1.5).collect();
            check_derivatives(&m, &x, &v, 1e-6);
            let n = x.len();
            let mut diag = vec![0.0; n];
            m.hessian_diagonal(&x, &mut diag).unwrap();
            for i in 0..n {
                let mut e = vec![0.0; n];
                e[i] = 1.0;
                let mut he = vec![0.0; n];
                m.hessian_vector(&x, &e, &mut he).unwrap();
                assert!((he[i] - diag[i]).abs() <= 1e-12 * (1.0 + diag[i].abs()));
            }
        }
    }

    #[test]
    fn smoothed_cvar_derivatives_and_bound() {
        for seed in 0..5 {
            let (exact, _) = random_posterior(seed, 12, Risk::Cvar(0.25));
            let mut m = exact.clone();
            m.mu = 0.05;
            let s = m.smoothed().unwrap();
            let x = point(seed + 30, s.dim());
            let v: Vec<f64> = point(seed + 40, s.dim()).iter().map(|p| p - 1.5).collect();
            check_derivatives(&s, &x, &v, 1e-5);
            let cvar = exact.value(&x);
            let smooth = s.value(&x);
            assert!(
                smooth <= cvar + 1e-12 && smooth >= cvar - s.bound() - 1e-12,
                "{smooth} {cvar} {}",
                s.bound()
            );
        }
    }

    #[test]
    fn one_draw_and_identical_draws_are_the_plain_model() {
        let (one, mmms) = random_posterior(3, 1, Risk::Quantile(0.3));
        let x = point(4, one.dim());
        assert!((one.value(&x) - mmms[0].value(&x)).abs() <= 1e-12 * mmms[0].value(&x));
        let layout = mmms[0].layout().clone();
        let rows = vec![mmms[0].channels().to_vec(); 5];
        for risk in [Risk::Mean, Risk::Cvar(0.2), Risk::Quantile(0.05)] {
            let m = DrawsModel::from_parts(layout.clone(), rows.clone(), 0.05, risk);
            let mut g = vec![0.0; x.len()];
            let mut g0 = vec![0.0; x.len()];
            let v = m.gradient(&x, &mut g).unwrap();
            let v0 = mmms[0].gradient(&x, &mut g0).unwrap();
            assert!((v - v0).abs() <= 1e-12 * v0);
            for (a, b) in g.iter().zip(&g0) {
                assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()));
            }
        }
    }

    #[test]
    fn risk_parses_as_the_contract_writes_it() {
        #[derive(Deserialize)]
        struct T {
            risk: Risk,
        }
        let r: T = toml::from_str("risk = \"mean\"").unwrap();
        assert_eq!(r.risk, Risk::Mean);
        let r: T = toml::from_str("risk = { cvar = 0.1 }").unwrap();
        assert_eq!(r.risk, Risk::Cvar(0.1));
        let r: T = toml::from_str("risk = { quantile = 0.05 }").unwrap();
        assert_eq!(r.risk, Risk::Quantile(0.05));
        assert!(toml::from_str::<T>("risk = \"median\"").is_err());
        assert!(toml::from_str::<T>("risk = { var = 0.1 }").is_err());
        assert!(Risk::Cvar(0.0).check("model.risk").is_err());
        assert!(Risk::Cvar(1.5).check("model.risk").is_err());
        assert!(Risk::Quantile(-0.1).check("model.risk").is_err());
        assert_eq!(
            serde_json::to_string(&Risk::Cvar(0.1)).unwrap(),
            "{\"cvar\":0.1}"
        );
    }
}
