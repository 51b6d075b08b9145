//! Checking a [`Problem`] (contract section 7) and compiling it into the solver-ready
//! [`Compiled`] form: flat layout, model, feasible set, integer rules.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::curve::Curve;
use crate::error::{fmt_number, Error, InfeasibleError, InputError};
use crate::feasible::{FeasibleSet, RowOrigin, Violation};
use crate::layout::Layout;
use crate::model::{Adstock, ChannelResponse, Derivatives, Mmm, Model};
use crate::problem::{
    BudgetMode, Channel, Constraint, ConstraintKind, CurveKind, CurveSpec, ObjectiveKind, Op,
    Problem,
};
use crate::result::OptimizationResult;
use crate::solver::Status;

/// The objective, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    /// Maximize the response minus fixed costs.
    Response,
    /// Maximize `margin * response - spend` minus fixed costs.
    Profit {
        /// Value of one unit of response.
        margin: f64,
    },
    /// Minimize spend subject to `response >= target`.
    MinSpend {
        /// Required response.
        target: f64,
    },
}

impl Objective {
    /// Whether the objective is maximized.
    pub fn maximize(&self) -> bool {
        !matches!(self, Objective::MinSpend { .. })
    }
}

/// Integer and activation rules (contract section 5), per channel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IntegerRules {
    /// Spend per period must be a whole multiple of this.
    pub spend_unit: Vec<Option<f64>>,
    /// Minimum total of an active channel.
    pub min_active: Vec<Option<f64>>,
    /// Cost charged once when the channel is active.
    pub fixed_cost: Vec<Option<f64>>,
    /// At most this many active channels.
    pub max_active_channels: Option<usize>,
}

/// A `min_roi` rule: `R(x) >= value * S(all)`.
#[derive(Debug, Clone, PartialEq)]
pub struct MinRoi {
    /// Required return per unit of spend.
    pub value: f64,
    /// Where it comes from.
    pub origin: RowOrigin,
}

/// A feature of a problem that some backends cannot honour (contract section 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    /// `spend_unit` on these channels.
    SpendUnit(Vec<String>),
    /// `min_active` on these channels.
    MinActive(Vec<String>),
    /// `fixed_cost` on these channels.
    FixedCost(Vec<String>),
    /// `max_active_channels`.
    MaxActiveChannels(usize),
    /// A `min_roi` constraint.
    MinRoi,
    /// `objective = "min_spend"`.
    MinSpend,
    /// S-shaped curves (`hill` with `s > 1`) on these channels; empty for a custom model
    /// not known to be concave.
    NonConcave(Vec<String>),
    /// A model that provides no gradient.
    NoGradient,
    /// A model that provides no Hessian-vector product.
    NoHessian,
    /// A custom model, without the curve structure some backends build on.
    CustomModel,
    /// A posterior model (`model.kind = "draws"`): this many draws, this risk.
    Posterior {
        /// Number of draws.
        draws: usize,
        /// The risk optimized (`mean`, `cvar 0.1`, `quantile 0.05`).
        risk: String,
    },
}

impl Feature {
    /// Whether this is one of the integer and activation rules.
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            Feature::SpendUnit(_)
                | Feature::MinActive(_)
                | Feature::FixedCost(_)
                | Feature::MaxActiveChannels(_)
        )
    }

    /// How a refusal names it.
    pub fn describe(&self) -> String {
        match self {
            Feature::SpendUnit(c) => format!("`spend_unit` (channels {})", c.join(", ")),
            Feature::MinActive(c) => format!("`min_active` (channels {})", c.join(", ")),
            Feature::FixedCost(c) => format!("`fixed_cost` (channels {})", c.join(", ")),
            Feature::MaxActiveChannels(k) => format!("`max_active_channels` ({k})"),
            Feature::MinRoi => "the `min_roi` constraint".to_string(),
            Feature::MinSpend => "`objective = \"min_spend\"`".to_string(),
            Feature::NonConcave(c) if c.is_empty() => {
                "a model not known to be concave (a custom model)".to_string()
            }
            Feature::NonConcave(c) => format!(
                "non-concave S-curves (`hill` with s > 1 on channels {}; `milp` finds their global optimum, `lbfgs` with `multi_start` a good local one)",
                c.join(", ")
            ),
            Feature::NoGradient => "a model without gradients".to_string(),
            Feature::NoHessian => "a model without Hessian-vector products".to_string(),
            Feature::CustomModel => "a custom model (no curve structure)".to_string(),
            Feature::Posterior { draws, risk } => format!(
                "a posterior of {draws} draws (`model.kind = \"draws\"`, risk {risk}): this build does not certify posteriors; `lbfgs` and `trust-region` (mean, smoothed CVaR, quantile), `cmaes` and `tpe` (every risk) optimize them"
            ),
        }
    }
}

/// A checked problem, ready for solvers: flat layout, model, feasible set, rules.
///
/// Everything here is in the problem's own units (spend, response); solvers see the
/// scaled form built from it by [`Scaled::new`](crate::Scaled::new).
#[derive(Clone)]
pub struct Compiled {
    name: String,
    source: Option<PathBuf>,
    layout: Layout,
    objective: Objective,
    model: Arc<dyn Model>,
    mmm: Option<Arc<Mmm>>,
    feasible: FeasibleSet,
    min_roi: Vec<MinRoi>,
    integer: IntegerRules,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("layout", &self.layout)
            .field("objective", &self.objective)
            .finish_non_exhaustive()
    }
}

impl Compiled {
    /// Checks `problem` and compiles it with the built-in marketing-mix model.
    pub fn new(problem: &Problem) -> Result<Compiled, Error> {
        Self::build(problem, None, None)
    }

    /// Reads, checks and compiles a problem file; errors name the file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Compiled, Error> {
        let path = path.as_ref();
        let problem = Problem::from_path(path)?;
        Self::build(&problem, None, Some(path))
    }

    /// Checks `problem`'s rules and compiles them around a custom `model` (the channels'
    /// `response` entries may then be omitted and are ignored).
    pub fn with_model(problem: &Problem, model: Arc<dyn Model>) -> Result<Compiled, Error> {
        Self::build(problem, Some(model), None)
    }

    /// Ties errors to `source` (the file a problem built in code came from).
    pub fn with_source(mut self, source: impl Into<PathBuf>) -> Self {
        self.source = Some(source.into());
        self
    }

    fn build(
        problem: &Problem,
        model: Option<Arc<dyn Model>>,
        source: Option<&Path>,
    ) -> Result<Compiled, Error> {
        compile(problem, model)
            .map(|mut c| {
                c.source = source.map(Path::to_path_buf);
                c
            })
            .map_err(|e| e.in_file(source))
    }

    /// The problem's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The file it was read from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }
    /// Channels and periods.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    /// The objective.
    pub fn objective(&self) -> Objective {
        self.objective
    }
    /// The response model `R(x)` (without fixed costs or margin).
    pub fn model(&self) -> &Arc<dyn Model> {
        &self.model
    }
    /// The built-in model's structure (curves, adstock, discount); `None` for custom models.
    pub fn mmm(&self) -> Option<&Arc<Mmm>> {
        self.mmm.as_ref()
    }
    /// Bounds, budget and linear rows, in spend units, as written.
    pub fn feasible_set(&self) -> &FeasibleSet {
        &self.feasible
    }
    /// The `min_roi` rules.
    pub fn min_roi(&self) -> &[MinRoi] {
        &self.min_roi
    }
    /// Integer and activation rules.
    pub fn integer_rules(&self) -> &IntegerRules {
        &self.integer
    }
    /// The budget (a cap for `min_spend` and `at_most`).
    pub fn budget(&self) -> f64 {
        self.feasible.budget()
    }

    /// Features some backends cannot honour.
    pub fn features(&self) -> Vec<Feature> {
        let names = self.layout.channels();
        let with = |v: &[Option<f64>]| -> Vec<String> {
            v.iter()
                .enumerate()
                .filter(|(_, x)| x.is_some())
                .map(|(i, _)| names[i].clone())
                .collect()
        };
        let mut out = Vec::new();
        let unit = with(&self.integer.spend_unit);
        if !unit.is_empty() {
            out.push(Feature::SpendUnit(unit));
        }
        let active = with(&self.integer.min_active);
        if !active.is_empty() {
            out.push(Feature::MinActive(active));
        }
        let fixed = with(&self.integer.fixed_cost);
        if !fixed.is_empty() {
            out.push(Feature::FixedCost(fixed));
        }
        if let Some(k) = self.integer.max_active_channels {
            out.push(Feature::MaxActiveChannels(k));
        }
        if !self.min_roi.is_empty() {
            out.push(Feature::MinRoi);
        }
        if matches!(self.objective, Objective::MinSpend { .. }) {
            out.push(Feature::MinSpend);
        }
        match &self.mmm {
            Some(mmm) => {
                let nc = mmm.nonconcave_channels();
                if !nc.is_empty() {
                    out.push(Feature::NonConcave(
                        nc.iter().map(|&c| names[c].clone()).collect(),
                    ));
                }
            }
            None => match self.model.posterior() {
                // (draws) A posterior of the built-in model: named as such; S-curves in
                // any draw name their channels.
                Some(info) => {
                    out.push(Feature::Posterior {
                        draws: info.draws,
                        risk: info.risk.describe(),
                    });
                    if !info.nonconcave.is_empty() {
                        out.push(Feature::NonConcave(
                            info.nonconcave.iter().map(|&c| names[c].clone()).collect(),
                        ));
                    }
                }
                None => {
                    out.push(Feature::CustomModel);
                    if self.model.is_concave() != Some(true) {
                        out.push(Feature::NonConcave(Vec::new()));
                    }
                }
            },
        }
        match self.model.derivatives() {
            Derivatives::ValueOnly => {
                out.push(Feature::NoGradient);
                out.push(Feature::NoHessian);
            }
            Derivatives::Gradient => out.push(Feature::NoHessian),
            Derivatives::Hessian => {}
        }
        out
    }

    /// Total fixed cost of the channels active in `x`.
    pub fn fixed_costs(&self, x: &[f64]) -> f64 {
        self.layout
            .totals(x)
            .iter()
            .zip(&self.integer.fixed_cost)
            .map(|(t, f)| if *t > 0.0 { f.unwrap_or(0.0) } else { 0.0 })
            .sum()
    }

    /// The true objective of section 4 at `x` (fixed costs included).
    pub fn objective_value(&self, x: &[f64]) -> f64 {
        let spend: f64 = x.iter().sum();
        match self.objective {
            Objective::Response => self.model.value(x) - self.fixed_costs(x),
            Objective::Profit { margin } => {
                margin * self.model.value(x) - spend - self.fixed_costs(x)
            }
            Objective::MinSpend { .. } => spend,
        }
    }

    /// The largest violation of any bound, budget, row, `min_roi`, response target or
    /// integer rule at `x` (contract section 6), in spend (or response) units.
    pub fn max_violation(&self, x: &[f64]) -> f64 {
        self.violations(x, 0.0)
            .iter()
            .fold(0.0f64, |m, v| m.max(v.amount))
    }

    /// Every violation above `tolerance`, described.
    pub fn violations(&self, x: &[f64], tolerance: f64) -> Vec<Violation> {
        let names = self.layout.channels();
        let periods = self.layout.periods();
        let var_name = |j: usize| format!("{}[{}]", names[j / periods], j % periods);
        let mut out = self.feasible.violations(x, tolerance, &var_name);
        let spend: f64 = x.iter().sum();
        if !self.min_roi.is_empty() || matches!(self.objective, Objective::MinSpend { .. }) {
            let response = self.model.value(x);
            for rule in &self.min_roi {
                let v = rule.value * spend - response;
                if v > tolerance {
                    out.push(Violation {
                        what: rule.origin.label(),
                        amount: v,
                    });
                }
            }
            if let Objective::MinSpend { target } = self.objective {
                if target - response > tolerance {
                    out.push(Violation {
                        what: format!("target_response: response {response} below {target}"),
                        amount: target - response,
                    });
                }
            }
        }
        let totals = self.layout.totals(x);
        for (c, name) in names.iter().enumerate() {
            if let Some(unit) = self.integer.spend_unit[c] {
                for t in 0..periods {
                    let v = x[self.layout.index(c, t)];
                    let d = (v - (v / unit).round() * unit).abs();
                    if d > tolerance {
                        out.push(Violation {
                            what: format!("channels[{c}].spend_unit: {name}[{t}] = {v} is not a multiple of {unit}"),
                            amount: d,
                        });
                    }
                }
            }
            if let Some(m) = self.integer.min_active[c] {
                let t = totals[c];
                let d = t.min(m - t);
                if d > tolerance {
                    out.push(Violation {
                        what: format!(
                            "channels[{c}].min_active: {name} spends {t}, above 0 but below {m}"
                        ),
                        amount: d,
                    });
                }
            }
        }
        if let Some(k) = self.integer.max_active_channels {
            let mut active: Vec<f64> = totals.iter().copied().filter(|t| *t > 0.0).collect();
            if active.len() > k {
                active.sort_by(f64::total_cmp);
                let excess: f64 = active[..active.len() - k].iter().sum();
                if excess > tolerance {
                    out.push(Violation {
                        what: format!(
                            "max_active_channels: {} channels active, at most {k} allowed",
                            active.len()
                        ),
                        amount: excess,
                    });
                }
            }
        }
        out
    }

    /// Whether `x` is feasible by the contract's tolerance, `1e-6 * max(1, budget)`.
    pub fn is_feasible(&self, x: &[f64]) -> bool {
        self.max_violation(x) <= self.feasibility_tolerance()
    }

    /// The contract's feasibility tolerance, `1e-6 * max(1, budget)`.
    pub fn feasibility_tolerance(&self) -> f64 {
        1e-6 * self.budget().max(1.0)
    }

    /// Whether `result` is an answer: a plan that meets the rules (to the tolerance), or
    /// else an error that names the violated rules. A plan beyond the tolerance is never a
    /// success: status `infeasible` (proven by the optimizer) gives
    /// [`Error::Infeasible`] (exit status 2); any other status (a limit reached, a
    /// method that stalled before the rules were met) gives [`Error::Solver`] (exit 1).
    pub fn check_result(&self, result: &OptimizationResult) -> Result<(), Error> {
        let tolerance = self.feasibility_tolerance();
        let proven = match result.status {
            Status::Infeasible => true,
            Status::Optimal
            | Status::Converged
            | Status::MaxIterations
            | Status::MaxEvaluations
            | Status::TimeLimit
            | Status::StoppedEarly
            | Status::Cancelled
            | Status::NumericalError => false,
        };
        let x = result.flat_allocation(self)?;
        let violation = self.max_violation(&x).max(result.max_violation);
        if !proven && violation <= tolerance {
            return Ok(());
        }
        let mut violations = self.violations(&x, tolerance);
        violations.sort_by(|a, b| b.amount.total_cmp(&a.amount));
        let mut rules: Vec<String> = violations
            .iter()
            .take(10)
            .map(|v| format!("{} (by {})", v.what, fmt_number(v.amount)))
            .collect();
        if violations.len() > 10 {
            rules.push(format!("and {} more", violations.len() - 10));
        }
        if proven {
            return Err(InfeasibleError {
                file: self.source.clone(),
                constraints: rules,
                reason: format!(
                    "optimizer `{}` proved that no allocation meets the rules",
                    result.optimizer
                ),
            }
            .into());
        }
        Err(Error::Solver {
            optimizer: result.optimizer.clone(),
            reason: format!(
                "stopped ({}) at a plan that violates the rules by up to {} (tolerance {}), so it is no answer; rules violated: {}. Try more iterations (`--set max_iterations=...`), another optimizer (`atlas validate` lists them), or check the rules",
                result.status,
                fmt_number(violation),
                fmt_number(tolerance),
                rules.join("; ")
            ),
        })
    }
}

// ---- checking -----------------------------------------------------------------------

type Check<T> = Result<T, InputError>;

fn err<T>(field: impl Into<String>, reason: impl Into<String>) -> Check<T> {
    Err(InputError::new(field, reason))
}

fn finite(field: &str, v: f64) -> Check<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        err(field, format!("must be a finite number (got {v})"))
    }
}

fn nonnegative(field: &str, v: f64) -> Check<f64> {
    finite(field, v)?;
    if v < 0.0 {
        return err(field, format!("must be >= 0 (got {v})"));
    }
    Ok(v)
}

fn positive(field: &str, v: f64) -> Check<f64> {
    finite(field, v)?;
    if v <= 0.0 {
        return err(field, format!("must be > 0 (got {v})"));
    }
    Ok(v)
}

fn fmt_amount(v: f64) -> String {
    if v.is_infinite() {
        "unlimited".to_string()
    } else {
        format!("{v}")
    }
}

/// Names are printed in tables and messages: a control character (an escape sequence, a
/// newline) would redraw the terminal or forge a table row, so none is accepted.
fn check_name(field: &str, name: &str) -> Check<()> {
    match name.chars().position(char::is_control) {
        Some(at) => err(
            field,
            format!(
                "control character {:?} at character {at}: names must be printable text",
                name.chars().nth(at).unwrap_or_default()
            ),
        ),
        None => Ok(()),
    }
}

fn compile(p: &Problem, custom: Option<Arc<dyn Model>>) -> Result<Compiled, Error> {
    // Sizes first: nothing below allocates more than these limits allow.
    crate::limits::check_sizes(p)?;
    // (models) An external `[model]` is turned into a model by a loader
    // (`model_spec::compile_with_loader`); compiling it as the built-in one would ignore it.
    if let (None, Some(spec)) = (&custom, p.model.as_ref().filter(|s| s.is_external())) {
        return Err(InputError::new(
            "model.kind",
            format!(
                "`{}` models are loaded by atlas-models (`atlas::load_problem`, `atlas_models::compile`); this front compiles only the built-in model",
                spec.kind()
            ),
        )
        .into());
    }
    if p.periods == 0 {
        return Err(InputError::new("periods", "must be >= 1 (got 0)").into());
    }
    let periods = p.periods;
    let budget = positive("budget", p.budget)?;
    if !(crate::limits::MIN_BUDGET..=crate::limits::MAX_AMOUNT).contains(&budget) {
        return Err(InputError::new(
            "budget",
            format!(
                "must be between {:e} and {:e} (got {budget}): beyond, the solvers' sums and squares of amounts leave the range f64 computes in (see docs/problem-format.md, section 7)",
                crate::limits::MIN_BUDGET,
                crate::limits::MAX_AMOUNT
            ),
        )
        .into());
    }
    let objective = match p.objective {
        ObjectiveKind::Response => Objective::Response,
        ObjectiveKind::Profit => Objective::Profit {
            margin: positive("margin", p.margin)?,
        },
        ObjectiveKind::MinSpend => match p.target_response {
            Some(t) => Objective::MinSpend {
                target: positive("target_response", t)?,
            },
            None => {
                return Err(InputError::new(
                    "target_response",
                    "required when objective = \"min_spend\"",
                )
                .into())
            }
        },
    };
    if p.objective != ObjectiveKind::MinSpend && p.target_response.is_some() {
        return Err(InputError::new(
            "target_response",
            "only used with objective = \"min_spend\"; remove it or change the objective",
        )
        .into());
    }
    finite("margin", p.margin)?;
    finite("discount", p.discount)?;
    if p.discount <= -1.0 {
        return Err(
            InputError::new("discount", format!("must be > -1 (got {})", p.discount)).into(),
        );
    }
    if p.discount < 0.0 && periods > 1 {
        // The weight of the last period, 1 / (1 + r)^(T - 1), grows without bound as r
        // nears -1; beyond f64 every response is infinite.
        let last = (periods - 1) as f64;
        let weight = (-last * p.discount.ln_1p()).exp();
        if weight.is_nan() || weight > crate::limits::MAX_AMOUNT {
            return Err(InputError::new(
                "discount",
                format!(
                    "the period weight 1 / (1 + discount)^t reaches {} at period {}, beyond the limit of {:e} (see docs/problem-format.md, section 7)",
                    fmt_number(weight),
                    periods - 1,
                    crate::limits::MAX_AMOUNT
                ),
            )
            .into());
        }
    }
    if p.channels.is_empty() {
        return Err(InputError::new("channels", "at least one channel is required").into());
    }
    if let Some(k) = p.max_active_channels {
        if k == 0 {
            return Err(InputError::new("max_active_channels", "must be >= 1 (got 0)").into());
        }
    }

    // Channels.
    check_name("name", &p.name)?;
    let names: Vec<String> = p.channels.iter().map(|c| c.name.clone()).collect();
    let mut seen: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(names.len());
    for (i, c) in p.channels.iter().enumerate() {
        let field = format!("channels[{i}].name");
        if c.name.trim().is_empty() {
            return Err(InputError::new(field, "must not be empty").into());
        }
        check_name(&field, &c.name)?;
        if let Some(j) = seen.insert(c.name.as_str(), i) {
            return Err(InputError::new(
                field,
                format!("duplicate channel name `{}` (also channels[{j}])", c.name),
            )
            .into());
        }
    }
    let layout = Layout::new(names.clone(), periods);
    let n = layout.len();
    let mut lower = vec![0.0; n];
    let mut upper = vec![f64::INFINITY; n];
    let mut responses = Vec::with_capacity(p.channels.len());
    let mut integer = IntegerRules {
        max_active_channels: p.max_active_channels,
        ..Default::default()
    };
    let mut channel_min = vec![0.0; p.channels.len()];
    let mut channel_max = vec![f64::INFINITY; p.channels.len()];
    for (i, c) in p.channels.iter().enumerate() {
        let f = |name: &str| format!("channels[{i}].{name}");
        let min = match c.min {
            Some(v) => nonnegative(&f("min"), v)?,
            None => 0.0,
        };
        let max = match c.max {
            Some(v) => nonnegative(&f("max"), v)?,
            None => f64::INFINITY,
        };
        if min > max {
            return Err(InputError::new(
                f("min"),
                format!("min ({min}) is greater than max ({max})"),
            )
            .into());
        }
        let pmin = match c.period_min {
            Some(v) => nonnegative(&f("period_min"), v)?,
            None => 0.0,
        };
        let pmax = match c.period_max {
            Some(v) => nonnegative(&f("period_max"), v)?,
            None => f64::INFINITY,
        };
        if pmin > pmax {
            return Err(InputError::new(
                f("period_min"),
                format!("period_min ({pmin}) is greater than period_max ({pmax})"),
            )
            .into());
        }
        let t = periods as f64;
        if pmin * t > max {
            return Err(InputError::new(
                f("period_min"),
                format!(
                    "period_min ({pmin}) over {periods} periods exceeds the channel's max ({max})"
                ),
            )
            .into());
        }
        if pmax * t < min {
            return Err(InputError::new(
                f("period_max"),
                format!("period_max ({pmax}) over {periods} periods cannot reach the channel's min ({min})"),
            )
            .into());
        }
        for tt in 0..periods {
            lower[layout.index(i, tt)] = pmin;
            upper[layout.index(i, tt)] = pmax;
        }
        if periods == 1 {
            // One period: the channel's limits are its variable's bounds.
            lower[layout.index(i, 0)] = pmin.max(min);
            upper[layout.index(i, 0)] = pmax.min(max);
        }
        channel_min[i] = min.max(pmin * t);
        channel_max[i] = max.min(pmax * t);
        if custom.is_none() {
            let spec = c.response.as_ref().ok_or_else(|| {
                InputError::new(f("response"), "required: the channel's response curve")
            })?;
            responses.push(ChannelResponse {
                curve: check_curve(&f("response"), spec)?,
                adstock: check_adstock(&f("adstock"), c, periods)?,
            });
        } else {
            check_adstock(&f("adstock"), c, periods)?;
        }
        integer.spend_unit.push(
            c.spend_unit
                .map(|v| positive(&f("spend_unit"), v))
                .transpose()?,
        );
        integer.min_active.push(
            c.min_active
                .map(|v| nonnegative(&f("min_active"), v))
                .transpose()?,
        );
        integer.fixed_cost.push(
            c.fixed_cost
                .map(|v| nonnegative(&f("fixed_cost"), v))
                .transpose()?,
        );
    }

    // Cheap infeasibility checks on bounds and budget.
    let sum_min: f64 = channel_min.iter().sum();
    if sum_min > budget * (1.0 + 1e-12) {
        let list: Vec<String> = channel_min
            .iter()
            .enumerate()
            .filter(|(_, m)| **m > 0.0)
            .map(|(i, m)| format!("channels[{i}] ({}) min {m}", names[i]))
            .collect();
        return Err(InfeasibleError {
            file: None,
            constraints: list,
            reason: format!(
                "the channels' minimums add up to {sum_min}, above the budget {budget}"
            ),
        }
        .into());
    }
    let sum_max: f64 = channel_max.iter().sum();
    if p.budget_mode == BudgetMode::Exact
        && p.objective != ObjectiveKind::MinSpend
        && sum_max < budget * (1.0 - 1e-12)
    {
        return Err(InfeasibleError {
            file: None,
            constraints: vec!["budget_mode = \"exact\"".to_string()],
            reason: format!(
                "the channels' maximums add up to {sum_max}, below the budget {budget} that must be spent in full"
            ),
        }
        .into());
    }

    // min_spend treats the budget as a cap.
    let mode = if p.objective == ObjectiveKind::MinSpend {
        BudgetMode::AtMost
    } else {
        p.budget_mode
    };
    let mut feasible = FeasibleSet::new(lower, upper, budget, mode);
    for (i, c) in p.channels.iter().enumerate() {
        if periods > 1 && (c.min.is_some_and(|v| v > 0.0) || c.max.is_some()) {
            let terms: Vec<(usize, f64)> =
                (0..periods).map(|t| (layout.index(i, t), 1.0)).collect();
            let lo = c.min.unwrap_or(0.0);
            let hi = c.max.unwrap_or(f64::INFINITY);
            feasible.add_row(
                &terms,
                if lo > 0.0 { lo } else { f64::NEG_INFINITY },
                hi,
                RowOrigin {
                    field: format!("channels[{i}]"),
                    description: format!("total of {} in [{}, {}]", c.name, lo, fmt_amount(hi)),
                },
            );
        }
    }

    let mut min_roi = Vec::new();
    for (k, con) in p.constraints.iter().enumerate() {
        add_constraint(k, con, (&layout, &seen), &mut feasible, &mut min_roi)?;
    }

    let (model, mmm): (Arc<dyn Model>, Option<Arc<Mmm>>) = match custom {
        Some(m) => {
            if m.dim() != n {
                return Err(InputError::new(
                    "",
                    format!(
                        "the custom model takes {} variables but the problem has {} channels x {} periods = {n}",
                        m.dim(),
                        layout.n_channels(),
                        periods
                    ),
                )
                .into());
            }
            (m, None)
        }
        None => {
            let mmm = Arc::new(Mmm::new(layout.clone(), responses, p.discount));
            (mmm.clone() as Arc<dyn Model>, Some(mmm))
        }
    };

    if let Some(mmm) = &mmm {
        check_curves_computable(mmm, &channel_max, budget, p.margin)?;
    }
    let tolerance = 1e-6 * budget.max(1.0);
    if p.budget_mode == BudgetMode::Exact && p.objective != ObjectiveKind::MinSpend {
        check_units_reach_budget(&integer, budget, tolerance)?;
    }
    if let Some(mmm) = &mmm {
        let reach = Reach {
            budget,
            exact: p.budget_mode == BudgetMode::Exact && p.objective != ObjectiveKind::MinSpend,
            channel_max: &channel_max,
            sum_min,
            tolerance,
        };
        check_response_reachable(mmm, objective, &min_roi, &reach)?;
    }

    Ok(Compiled {
        name: p.name.clone(),
        source: None,
        layout,
        objective,
        model,
        mmm,
        feasible,
        min_roi,
        integer,
    })
}

/// Every curve's value and slopes must stay finite between zero and the channel's largest
/// spend, with the margin and discount applied: parameters that overflow f64 there (a
/// `linear` beta of 1e300 at a budget of 1e10, a `log` k of 1e-300) make every objective
/// infinite or NaN, so they are refused by name before any solver sees them.
fn check_curves_computable(mmm: &Mmm, channel_max: &[f64], budget: f64, margin: f64) -> Check<()> {
    let discount = mmm.discount_weights();
    let weight = discount.iter().copied().fold(0.0, f64::max) * discount.len() as f64;
    let scale = weight * margin.abs().max(1.0);
    for (c, ch) in mmm.channels().iter().enumerate() {
        let cap = channel_max[c].min(budget);
        for a in [0.0, cap] {
            let (v, d1, d2) = ch.curve.value_and_derivatives(a);
            let computable = [v * scale, d1 * scale, d2 * scale]
                .iter()
                .all(|x| x.is_finite() && x.abs() <= 1e300);
            if !computable {
                return err(
                    format!("channels[{c}].response"),
                    format!(
                        "at a spend of {} the curve's value or slope ({}, {}) is beyond f64's range: its parameters do not fit the budget's scale (see docs/problem-format.md, section 7)",
                        fmt_number(a),
                        fmt_number(v * scale),
                        fmt_number(d1 * scale)
                    ),
                );
            }
        }
    }
    Ok(())
}

/// With every channel bought in whole units and the budget to be spent exactly, a budget
/// below the smallest unit can only be met by spending nothing: proven infeasible.
fn check_units_reach_budget(
    integer: &IntegerRules,
    budget: f64,
    tolerance: f64,
) -> Result<(), InfeasibleError> {
    let units: Option<Vec<f64>> = integer.spend_unit.iter().copied().collect();
    let Some(units) = units else {
        return Ok(());
    };
    let (c, smallest) =
        units
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |best, (c, u)| if u < best.1 { (c, u) } else { best },
            );
    if smallest - budget > tolerance {
        return Err(InfeasibleError {
            file: None,
            constraints: vec![
                format!("channels[{c}].spend_unit ({})", fmt_number(smallest)),
                "budget_mode = \"exact\"".to_string(),
            ],
            reason: format!(
                "every channel spends in whole units, the smallest {}, above the budget {} that must be spent in full",
                fmt_number(smallest),
                fmt_number(budget)
            ),
        });
    }
    Ok(())
}

/// What bounds the spend, for [`check_response_reachable`].
struct Reach<'a> {
    budget: f64,
    /// Whether the whole budget must be spent.
    exact: bool,
    /// Each channel's largest total.
    channel_max: &'a [f64],
    /// The sum of the channels' smallest totals.
    sum_min: f64,
    tolerance: f64,
}

/// Response targets (`min_spend`) and `min_roi` rules that no allocation can meet, proven
/// by two bounds on the built-in model: every adstocked spend of a channel is at most the
/// channel's largest total (each adstock weight is at most 1), so
/// `R <= sum_c f_c(cap_c) * sum_t d_t`; and no curve earns more per unit than its
/// largest average return, so `R <= rho * S` with `rho = max_c rho_c * sum(w_c) * max_t d_t`.
/// These are cheap and sound; rules they cannot decide are left to the optimizers.
fn check_response_reachable(
    mmm: &Mmm,
    objective: Objective,
    min_roi: &[MinRoi],
    reach: &Reach<'_>,
) -> Result<(), InfeasibleError> {
    let discount = mmm.discount_weights();
    let discount_sum: f64 = discount.iter().sum();
    let discount_max = discount.iter().copied().fold(0.0, f64::max);
    let mut response_cap = 0.0;
    let mut rho = 0.0f64;
    for (c, ch) in mmm.channels().iter().enumerate() {
        let cap = reach.channel_max[c].min(reach.budget);
        response_cap += ch.curve.value(cap) * discount_sum;
        let weights: f64 = ch.adstock.weights().iter().sum();
        rho = rho.max(ch.curve.max_average_return() * weights * discount_max);
    }
    let tolerance = reach.tolerance;
    let mut least_spend = if reach.exact {
        reach.budget
    } else {
        reach.sum_min
    };
    if let Objective::MinSpend { target } = objective {
        if target - response_cap > tolerance {
            return Err(InfeasibleError {
                file: None,
                constraints: vec![format!("target_response ({})", fmt_number(target))],
                reason: format!(
                    "no allocation within the bounds and budget reaches a response above {} (every channel at its largest spend), below target_response {}",
                    fmt_number(response_cap),
                    fmt_number(target)
                ),
            });
        }
        // R <= rho S: reaching the target takes at least target / rho.
        if rho > 0.0 {
            least_spend = least_spend.max(target / rho);
        }
    }
    for rule in min_roi {
        let v = rule.value;
        // violation = v S - R >= max((v - rho) S, v S - response_cap), least at S = least_spend.
        let shortfall = ((v - rho) * least_spend).max(v * least_spend - response_cap);
        if least_spend > 0.0 && shortfall > tolerance {
            let why = if (v - rho) * least_spend >= v * least_spend - response_cap {
                format!(
                    "no channel returns more than {} per unit of spend on average",
                    fmt_number(rho)
                )
            } else {
                format!(
                    "the response cannot exceed {} (every channel at its largest spend)",
                    fmt_number(response_cap)
                )
            };
            return Err(InfeasibleError {
                file: None,
                constraints: vec![rule.origin.label()],
                reason: format!(
                    "{why}, and at least {} must be spent, so the return stays below {} per unit",
                    fmt_number(least_spend),
                    fmt_number(v)
                ),
            });
        }
    }
    Ok(())
}

pub(crate) fn check_curve(field: &str, spec: &CurveSpec) -> Check<Curve> {
    let kind = spec.kind;
    let allowed = kind.parameters();
    for (name, value) in spec.given() {
        if value.is_some() && !allowed.contains(&name) {
            return err(
                format!("{field}.{name}"),
                format!(
                    "`{}` curves have no parameter `{name}` (their parameters: {})",
                    kind.as_str(),
                    allowed.join(", ")
                ),
            );
        }
    }
    let get = |name: &str, v: Option<f64>| -> Check<f64> {
        match v {
            Some(v) => finite(&format!("{field}.{name}"), v),
            None => err(
                format!("{field}.{name}"),
                format!("required for `{}` curves", kind.as_str()),
            ),
        }
    };
    let beta = get("beta", spec.beta)?;
    nonnegative(&format!("{field}.beta"), beta)?;
    let pos = |name: &str, v: Option<f64>| -> Check<f64> {
        positive(&format!("{field}.{name}"), get(name, v)?)
    };
    Ok(match kind {
        CurveKind::Linear => Curve::Linear { beta },
        CurveKind::Hill => Curve::Hill {
            beta,
            k: pos("k", spec.k)?,
            s: pos("s", spec.s)?,
        },
        CurveKind::Exponential => Curve::Exponential {
            beta,
            k: pos("k", spec.k)?,
        },
        CurveKind::Logistic => Curve::Logistic {
            beta,
            lam: pos("lam", spec.lam)?,
        },
        CurveKind::Log => Curve::Log {
            beta,
            k: pos("k", spec.k)?,
        },
        CurveKind::Power => {
            let alpha = get("alpha", spec.alpha)?;
            if !(alpha > 0.0 && alpha <= 1.0) {
                return err(
                    format!("{field}.alpha"),
                    format!("must be in (0, 1] (got {alpha})"),
                );
            }
            Curve::Power { beta, alpha }
        }
    })
}

fn check_adstock(field: &str, channel: &Channel, periods: usize) -> Check<Adstock> {
    check_adstock_spec(field, channel.adstock.as_ref(), periods)
}

/// Checks one adstock entry (none: no carry-over) for a horizon of `periods`.
pub(crate) fn check_adstock_spec(
    field: &str,
    adstock: Option<&crate::problem::AdstockSpec>,
    periods: usize,
) -> Check<Adstock> {
    let Some(a) = adstock else {
        return Ok(Adstock::identity());
    };
    let decay = finite(&format!("{field}.decay"), a.decay)?;
    if !(0.0..1.0).contains(&decay) {
        return err(
            format!("{field}.decay"),
            format!("must be in [0, 1) (got {decay})"),
        );
    }
    if a.max_lag == 0 {
        return err(format!("{field}.max_lag"), "must be >= 1 (got 0)");
    }
    Ok(Adstock::geometric_within(
        decay,
        a.max_lag,
        a.normalize,
        periods,
    ))
}

/// Checks a channel list: non-empty, known names, no repeats; returns channel indices.
/// Channel names by index, for lookups in constant time.
type ChannelIndex<'a> = std::collections::HashMap<&'a str, usize>;

fn check_group(
    field: &str,
    group: &Option<Vec<String>>,
    (layout, index): (&Layout, &ChannelIndex<'_>),
    required: bool,
) -> Check<Option<Vec<usize>>> {
    let Some(group) = group else {
        return if required {
            err(field, "required")
        } else {
            Ok(None)
        };
    };
    if group.is_empty() {
        return err(field, "empty group: list at least one channel");
    }
    let mut out = Vec::with_capacity(group.len());
    let mut listed = vec![false; layout.n_channels()];
    for (i, name) in group.iter().enumerate() {
        let Some(&c) = index.get(name.as_str()) else {
            let hint = crate::suggest::nearest(name, layout.channels().iter().map(String::as_str))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return err(
                format!("{field}[{i}]"),
                format!(
                    "unknown channel `{}`{hint}; channels: {}",
                    name.escape_debug(),
                    layout.channels().join(", ")
                ),
            );
        };
        if std::mem::replace(&mut listed[c], true) {
            return err(
                format!("{field}[{i}]"),
                format!("channel `{name}` is listed twice"),
            );
        }
        out.push(c);
    }
    Ok(Some(out))
}

fn check_periods(field: &str, periods: &Option<Vec<usize>>, t_max: usize) -> Check<Vec<usize>> {
    match periods {
        None => Ok((0..t_max).collect()),
        Some(list) => {
            if list.is_empty() {
                return err(
                    field,
                    "empty list: give at least one period, or omit the field for all periods",
                );
            }
            let mut seen = Vec::with_capacity(list.len().min(t_max));
            let mut listed = vec![false; t_max];
            for (i, &t) in list.iter().enumerate() {
                if t >= t_max {
                    return err(
                        format!("{field}[{i}]"),
                        format!(
                            "period {t} is out of range: periods are 0..{} ({t_max} periods)",
                            t_max - 1
                        ),
                    );
                }
                if std::mem::replace(&mut listed[t], true) {
                    return err(
                        format!("{field}[{i}]"),
                        format!("period {t} is listed twice"),
                    );
                }
                seen.push(t);
            }
            Ok(seen)
        }
    }
}

fn group_terms(
    layout: &Layout,
    channels: &[usize],
    periods: &[usize],
    coef: f64,
    out: &mut Vec<(usize, f64)>,
) {
    for &c in channels {
        for &t in periods {
            out.push((layout.index(c, t), coef));
        }
    }
}

/// `min * S(reference) <= S(group) <= max * S(reference)` over `periods`, as one row per
/// given limit (`share`: the reference is every channel; `ratio`: the `over` group).
fn add_relative_rows(
    feasible: &mut FeasibleSet,
    layout: &Layout,
    (group, reference): (&[usize], &[usize]),
    periods: &[usize],
    (min, max): (Option<f64>, Option<f64>),
    label: &str,
    origin: impl Fn(String) -> RowOrigin,
) {
    for (limit, lower, upper, sign) in [
        (min, 0.0, f64::INFINITY, ">="),
        (max, f64::NEG_INFINITY, 0.0, "<="),
    ] {
        if let Some(m) = limit {
            let mut terms = Vec::new();
            group_terms(layout, group, periods, 1.0, &mut terms);
            group_terms(layout, reference, periods, -m, &mut terms);
            feasible.add_row(&terms, lower, upper, origin(format!("{label} {sign} {m}")));
        }
    }
}

fn optional_limits(field: &str, con: &Constraint) -> Check<(Option<f64>, Option<f64>)> {
    let min = con
        .min
        .map(|v| finite(&format!("{field}.min"), v))
        .transpose()?;
    let max = con
        .max
        .map(|v| finite(&format!("{field}.max"), v))
        .transpose()?;
    if min.is_none() && max.is_none() {
        return err(
            field,
            format!(
                "a `{}` constraint needs `min`, `max` or both",
                con.kind.as_str()
            ),
        );
    }
    if let (Some(a), Some(b)) = (min, max) {
        if a > b {
            return err(
                format!("{field}.min"),
                format!("min ({a}) is greater than max ({b})"),
            );
        }
    }
    Ok((min, max))
}

fn names_of(layout: &Layout, group: &[usize]) -> String {
    group
        .iter()
        .map(|&c| layout.channels()[c].as_str())
        .collect::<Vec<_>>()
        .join("+")
}

fn periods_note(periods: &Option<Vec<usize>>) -> String {
    match periods {
        Some(p) => format!(
            " in periods {}",
            p.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        None => String::new(),
    }
}

fn add_constraint(
    k: usize,
    con: &Constraint,
    (layout, index): (&Layout, &ChannelIndex<'_>),
    feasible: &mut FeasibleSet,
    min_roi: &mut Vec<MinRoi>,
) -> Check<()> {
    let field = format!("constraints[{k}]");
    let allowed = con.kind.fields();
    for name in con.given() {
        if !allowed.contains(&name) {
            return err(
                format!("{field}.{name}"),
                format!(
                    "`{}` constraints take no `{name}` (their fields: {})",
                    con.kind.as_str(),
                    allowed.join(", ")
                ),
            );
        }
    }
    let t_max = layout.periods();
    let origin = |description: String| RowOrigin {
        field: field.clone(),
        description,
    };
    match con.kind {
        ConstraintKind::Share => {
            let group = check_group(
                &format!("{field}.channels"),
                &con.channels,
                (layout, index),
                true,
            )?
            .unwrap_or_default();
            let periods = check_periods(&format!("{field}.periods"), &con.periods, t_max)?;
            let (min, max) = optional_limits(&field, con)?;
            for (name, v) in [("min", min), ("max", max)] {
                if let Some(v) = v {
                    if !(0.0..=1.0).contains(&v) {
                        return err(
                            format!("{field}.{name}"),
                            format!("a share must be in [0, 1] (got {v})"),
                        );
                    }
                }
            }
            let all: Vec<usize> = (0..layout.n_channels()).collect();
            let label = format!(
                "share of {}{}",
                names_of(layout, &group),
                periods_note(&con.periods)
            );
            add_relative_rows(
                feasible,
                layout,
                (&group, &all),
                &periods,
                (min, max),
                &label,
                origin,
            );
        }
        ConstraintKind::Ratio => {
            let group = check_group(
                &format!("{field}.channels"),
                &con.channels,
                (layout, index),
                true,
            )?
            .unwrap_or_default();
            let over = check_group(&format!("{field}.over"), &con.over, (layout, index), true)?
                .unwrap_or_default();
            let periods = check_periods(&format!("{field}.periods"), &con.periods, t_max)?;
            let (min, max) = optional_limits(&field, con)?;
            for (name, v) in [("min", min), ("max", max)] {
                if let Some(v) = v {
                    if v < 0.0 {
                        return err(
                            format!("{field}.{name}"),
                            format!("a ratio must be >= 0 (got {v})"),
                        );
                    }
                }
            }
            let label = format!(
                "{} over {}{}",
                names_of(layout, &group),
                names_of(layout, &over),
                periods_note(&con.periods)
            );
            add_relative_rows(
                feasible,
                layout,
                (&group, &over),
                &periods,
                (min, max),
                &label,
                origin,
            );
        }
        ConstraintKind::Spend => {
            let group = check_group(
                &format!("{field}.channels"),
                &con.channels,
                (layout, index),
                true,
            )?
            .unwrap_or_default();
            let periods = check_periods(&format!("{field}.periods"), &con.periods, t_max)?;
            let (min, max) = optional_limits(&field, con)?;
            for (name, v) in [("min", min), ("max", max)] {
                if let Some(v) = v {
                    nonnegative(&format!("{field}.{name}"), v)?;
                }
            }
            let mut terms = Vec::new();
            group_terms(layout, &group, &periods, 1.0, &mut terms);
            let lo = min.unwrap_or(f64::NEG_INFINITY);
            let hi = max.unwrap_or(f64::INFINITY);
            // Cheap check: the group cannot reach its minimum within the bounds.
            let reach: f64 = terms
                .iter()
                .map(|&(j, _)| feasible.upper()[j])
                .sum::<f64>()
                .min(feasible.budget());
            if lo > reach * (1.0 + 1e-12) {
                return Err(InputError::new(
                    format!("{field}.min"),
                    format!(
                        "infeasible: the group can spend at most {reach} in these periods (bounds and budget), below min {lo}"
                    ),
                ));
            }
            feasible.add_row(
                &terms,
                lo,
                hi,
                origin(format!(
                    "spend of {}{} in [{}, {}]",
                    names_of(layout, &group),
                    periods_note(&con.periods),
                    min.map_or("-".to_string(), |v| v.to_string()),
                    max.map_or("-".to_string(), |v| v.to_string())
                )),
            );
        }
        ConstraintKind::MaxChange => {
            let group = check_group(
                &format!("{field}.channels"),
                &con.channels,
                (layout, index),
                false,
            )?
            .unwrap_or_else(|| (0..layout.n_channels()).collect());
            let rate = match con.max_rate {
                Some(r) => nonnegative(&format!("{field}.max_rate"), r)?,
                None => {
                    return err(
                        format!("{field}.max_rate"),
                        "required for `max_change` constraints",
                    )
                }
            };
            for &c in &group {
                let name = &layout.channels()[c];
                for t in 1..t_max {
                    let (prev, cur) = (layout.index(c, t - 1), layout.index(c, t));
                    feasible.add_row(
                        &[(cur, 1.0), (prev, -(1.0 + rate))],
                        f64::NEG_INFINITY,
                        0.0,
                        origin(format!("{name}[{t}] <= (1 + {rate}) {name}[{}]", t - 1)),
                    );
                    feasible.add_row(
                        &[(cur, 1.0), (prev, -(1.0 - rate))],
                        0.0,
                        f64::INFINITY,
                        origin(format!("{name}[{t}] >= (1 - {rate}) {name}[{}]", t - 1)),
                    );
                }
            }
        }
        ConstraintKind::Linear => {
            let Some(terms_spec) = &con.terms else {
                return err(
                    format!("{field}.terms"),
                    "required for `linear` constraints",
                );
            };
            if terms_spec.is_empty() {
                return err(format!("{field}.terms"), "empty: give at least one term");
            }
            let Some(op) = con.op else {
                return err(
                    format!("{field}.op"),
                    "required: one of \"<=\", \">=\", \"==\"",
                );
            };
            let rhs = match con.rhs {
                Some(v) => finite(&format!("{field}.rhs"), v)?,
                None => return err(format!("{field}.rhs"), "required for `linear` constraints"),
            };
            let mut terms = Vec::new();
            let mut text = Vec::new();
            for (i, term) in terms_spec.iter().enumerate() {
                let tf = format!("{field}.terms[{i}]");
                let coef = finite(&format!("{tf}.coef"), term.coef)?;
                let c = check_group(
                    &format!("{tf}.channel"),
                    &Some(vec![term.channel.clone()]),
                    (layout, index),
                    true,
                )
                .map_err(|mut e| {
                    e.field = format!("{tf}.channel");
                    e
                })?
                .unwrap_or_default();
                let periods = check_periods(&format!("{tf}.periods"), &term.periods, t_max)?;
                group_terms(layout, &c, &periods, coef, &mut terms);
                text.push(format!(
                    "{coef} {}{}",
                    term.channel,
                    periods_note(&term.periods)
                ));
            }
            let (lo, hi, sym) = match op {
                Op::Le => (f64::NEG_INFINITY, rhs, "<="),
                Op::Ge => (rhs, f64::INFINITY, ">="),
                Op::Eq => (rhs, rhs, "=="),
            };
            feasible.add_row(
                &terms,
                lo,
                hi,
                origin(format!("{} {sym} {rhs}", text.join(" + "))),
            );
        }
        ConstraintKind::MinRoi => {
            let value = match con.value {
                Some(v) => nonnegative(&format!("{field}.value"), v)?,
                None => {
                    return err(
                        format!("{field}.value"),
                        "required for `min_roi` constraints",
                    )
                }
            };
            min_roi.push(MinRoi {
                value,
                origin: origin(format!("response >= {value} x total spend")),
            });
        }
    }
    Ok(())
}
