//! The mixed-integer model: spend variables (continuous, or whole numbers of spend units),
//! the adstocked spend `a = W x` as linear rows, each curve of `a` as a piecewise-linear
//! interpolant in the incremental form, and the activation rules with one binary per
//! channel.
//!
//! Incremental form with fill fractions: `a = lo + sum_k len_k l_k` with `0 <= l_k <= 1`,
//! and the curve's value `f(lo) + sum_k (f(p_{k+1}) - f(p_k)) l_k`. Where the slopes do not
//! increase (concave parts) a maximizing solver fills the segments in order by itself, so
//! they are pure LP. Where they increase (an S-curve's convex part) binaries `z_k` enforce
//! the order: `l_k >= z_k` and `l_{k+1} <= z_k`.
//!
//! Everything is in the solver's scaled units (spend / budget, response / reference).

use atlas_core::{BudgetMode, Context};
use good_lp::{variable, Constraint, Expression, ProblemVariables, Variable};

use crate::pwl::{self, Pwl};

/// Spend grids with at most this many segments get a breakpoint at every grid point,
/// which makes the interpolant exact at every spend the channel can take.
const FULL_GRID_SEGMENTS: usize = 64;

/// Segments at most per curve (see [`pwl::interpolate`]).
pub(crate) const MAX_SEGMENTS: usize = 5_000;

/// How one spend variable enters the model.
#[derive(Debug, Clone, Copy)]
enum Spend {
    /// A continuous variable.
    Continuous(usize),
    /// `unit * n` with `n` an integer variable.
    Units { n: usize, unit: f64 },
}

/// Sizes of a model, for reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelSize {
    /// Continuous variables.
    pub continuous: usize,
    /// Binary variables.
    pub binaries: usize,
    /// General integer variables (numbers of spend units).
    pub integers: usize,
    /// Linear rows.
    pub rows: usize,
    /// Segments over all curves and periods.
    pub segments: usize,
}

/// The model, ready for a solver: minimize `objective + constant`.
pub(crate) struct Formulation {
    /// What the solver gets.
    pub lp: Lp,
    /// How to read its solution.
    pub decoder: Decoder,
    /// The objective's constant part (solvers drop constants).
    pub constant: f64,
    /// Largest total error of the interpolants, in objective (`phi`) units.
    pub error: f64,
    /// Sizes.
    pub size: ModelSize,
}

/// The linear model handed to good_lp.
pub(crate) struct Lp {
    pub vars: ProblemVariables,
    /// Every variable, in creation order (the solvers' column order).
    pub columns: Vec<Variable>,
    pub objective: Expression,
    pub constraints: Vec<Constraint>,
    /// Whether there are integer variables (else it is an LP).
    pub is_mip: bool,
}

/// Reads decisions from a solution's column values.
pub(crate) struct Decoder {
    spend: Vec<Spend>,
    /// Activation binary of each channel that needs one.
    active: Vec<Option<usize>>,
    periods: usize,
}

/// What the integer part of a solution decided.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    /// The spend (scaled), with whole numbers of units where a unit applies.
    pub u: Vec<f64>,
    /// Per channel: `Some(on)` where an activation binary decided it.
    pub active: Vec<Option<bool>>,
    /// Per variable: the spend fixed by a unit count, if any.
    pub fixed: Vec<Option<f64>>,
}

/// Why no model was built.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BuildError {
    /// A rule leaves a variable no whole number of units.
    NoUnitFits { variable: usize },
    /// A curve needs more segments than allowed at this `max_error`.
    TooManySegments { channel: usize, segments: usize },
    /// The model has no curve structure (custom model).
    NoStructure,
}

struct Builder {
    vars: ProblemVariables,
    columns: Vec<Variable>,
    size: ModelSize,
}

impl Builder {
    fn add(&mut self, def: good_lp::VariableDefinition) -> usize {
        let v = self.vars.add(def);
        self.columns.push(v);
        self.columns.len() - 1
    }
    fn continuous(&mut self, lo: f64, hi: f64) -> usize {
        self.size.continuous += 1;
        self.add(variable().min(lo).max(hi))
    }
    fn binary(&mut self) -> usize {
        self.size.binaries += 1;
        self.add(variable().binary())
    }
    fn integer(&mut self, lo: f64, hi: f64) -> usize {
        self.size.integers += 1;
        self.add(variable().integer().min(lo).max(hi))
    }
}

impl Formulation {
    /// Builds the model of the context's scaled problem with curve error `max_error`
    /// (relative to the response of the even split).
    pub fn build(ctx: &Context<'_>, max_error: f64) -> Result<Formulation, BuildError> {
        let problem = ctx.problem();
        let compiled = ctx.compiled();
        let mmm = problem.mmm().ok_or(BuildError::NoStructure)?;
        let layout = mmm.layout();
        let (channels, periods) = (layout.n_channels(), layout.periods());
        let set = problem.feasible_set();
        let n = set.dim();
        let spend_scale = problem.spend_scale();
        let response_scale = problem.response_scale();
        let weights = problem.objective();
        let rules = compiled.integer_rules();
        let discount = mmm.discount_weights();

        let upper = tightened_upper(set);
        let lower = set.lower();

        let mut b = Builder {
            vars: ProblemVariables::new(),
            columns: Vec::new(),
            size: ModelSize::default(),
        };
        let mut constraints: Vec<Constraint> = Vec::new();
        let mut objective = Expression::with_capacity(4 * n);
        let mut constant = 0.0;

        // Spend variables.
        let mut spend = Vec::with_capacity(n);
        for c in 0..channels {
            let unit = rules.spend_unit[c].map(|v| v / spend_scale);
            for t in 0..periods {
                let j = layout.index(c, t);
                spend.push(match unit {
                    Some(unit) => {
                        let lo = (lower[j] / unit - 1e-9).ceil();
                        let hi = (upper[j] / unit + 1e-9).floor();
                        if lo > hi {
                            return Err(BuildError::NoUnitFits { variable: j });
                        }
                        Spend::Units {
                            n: b.integer(lo, hi),
                            unit,
                        }
                    }
                    None => Spend::Continuous(b.continuous(lower[j], upper[j])),
                });
            }
        }
        let expr = |columns: &[Variable], s: Spend| -> Expression {
            match s {
                Spend::Continuous(v) => Expression::from(columns[v]),
                Spend::Units { n, unit } => unit * columns[n],
            }
        };

        // Budget.
        let mut total = Expression::with_capacity(n);
        for &s in &spend {
            total += expr(&b.columns, s);
        }
        constraints.push(match set.budget_mode() {
            BudgetMode::Exact => total.clone().eq(set.budget()),
            BudgetMode::AtMost => total.clone().leq(set.budget()),
        });
        if weights.spend != 0.0 {
            objective.add_mul(weights.spend, total);
        }

        // Linear rows.
        let rows = set.rows();
        for i in 0..rows.len() {
            let (idx, val) = rows.row(i);
            let mut e = Expression::with_capacity(idx.len());
            for (&j, &a) in idx.iter().zip(val) {
                e.add_mul(a, expr(&b.columns, spend[j]));
            }
            let (lo, hi) = (rows.lower()[i], rows.upper()[i]);
            if lo == hi {
                constraints.push(e.eq(lo));
            } else {
                if lo.is_finite() {
                    constraints.push(e.clone().geq(lo));
                }
                if hi.is_finite() {
                    constraints.push(e.leq(hi));
                }
            }
        }

        // Activation: a binary per channel where a rule depends on whether it spends.
        let any_activation = rules.max_active_channels.is_some();
        let mut active = vec![None; channels];
        for (c, slot) in active.iter_mut().enumerate() {
            let min_active = rules.min_active[c].map(|v| v / spend_scale);
            let fixed_cost = rules.fixed_cost[c].map(|v| v / response_scale);
            if !(any_activation || min_active.is_some() || fixed_cost.is_some()) {
                continue;
            }
            let y = b.binary();
            *slot = Some(y);
            let mut channel_total = Expression::with_capacity(periods);
            for t in 0..periods {
                let j = layout.index(c, t);
                let e = expr(&b.columns, spend[j]);
                channel_total += e.clone();
                // Off means exactly zero; on allows the variable's whole range.
                constraints.push(e.leq(upper[j] * b.columns[y]));
            }
            if let Some(m) = min_active {
                constraints.push(channel_total.geq(m * b.columns[y]));
            }
            if let Some(f) = fixed_cost {
                objective.add_mul(f, b.columns[y]);
            }
        }
        if let Some(k) = rules.max_active_channels {
            let mut count = Expression::with_capacity(channels);
            for y in active.iter().flatten() {
                count += b.columns[*y];
            }
            constraints.push(count.leq(k as f64));
        }

        // Curves. The error budget is shared evenly by every channel and period, so that
        // the interpolants' total error stays within `max_error` of the reference response.
        let reference = {
            let r = ctx.evaluator().model_value(problem.start());
            if r.is_finite() && r > 0.0 {
                r
            } else {
                // A start with no response (all curves flat there): the largest response
                // any channel can reach.
                (0..channels)
                    .map(|c| mmm.channels()[c].curve.value(1.0))
                    .fold(0.0, f64::max)
            }
        };
        let discount_sum: f64 = discount.iter().sum();
        let tol = max_error * reference / (channels as f64 * discount_sum);
        let w_model = weights.model;
        let mut error = 0.0;
        for c in 0..channels {
            let ch = &mmm.channels()[c];
            let w = ch.adstock.weights();
            let lags = |t: usize| w.len().min(t + 1);
            let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
            for t in 0..periods {
                let (mut a_lo, mut a_hi) = (0.0, 0.0);
                for (l, wl) in w[..lags(t)].iter().enumerate() {
                    let j = layout.index(c, t - l);
                    a_lo += wl * lower[j];
                    a_hi += wl * upper[j];
                }
                lo = lo.min(a_lo);
                hi = hi.max(a_hi);
            }
            // Spend in whole units without carry-over: the curve is only ever evaluated on
            // the unit grid.
            let grid = match spend[layout.index(c, 0)] {
                Spend::Units { unit, .. } if ch.adstock.is_identity() => Some(unit),
                _ => None,
            };
            let curve = ch.curve;
            let p: Pwl =
                pwl::interpolate(&curve, lo, hi, tol, grid, FULL_GRID_SEGMENTS, MAX_SEGMENTS)
                    .map_err(|e| BuildError::TooManySegments {
                        channel: c,
                        segments: e.segments,
                    })?;
            error += w_model.abs() * p.max_error * discount_sum;
            let segments = p.segments();
            for t in 0..periods {
                let weight = w_model * discount[t];
                constant += weight * p.values[0];
                if segments == 0 {
                    continue;
                }
                b.size.segments += segments;
                // a = lo + sum d_k.
                let mut a = Expression::with_capacity(lags(t) + segments);
                for (l, wl) in w[..lags(t)].iter().enumerate() {
                    a.add_mul(*wl, expr(&b.columns, spend[layout.index(c, t - l)]));
                }
                // Fill fractions in [0, 1] rather than lengths: segments near a steep
                // start (power curves) are tiny, and bounds of 1e-8 sit at the solvers'
                // feasibility tolerances, where presolve mistreats them.
                let fill: Vec<usize> = (0..segments).map(|_| b.continuous(0.0, 1.0)).collect();
                for (k, &fk) in fill.iter().enumerate() {
                    a.add_mul(-p.length(k), b.columns[fk]);
                    objective.add_mul(weight * (p.values[k + 1] - p.values[k]), b.columns[fk]);
                }
                constraints.push(a.eq(p.points[0]));
                // Order of the leading segments whose slopes increase.
                let m = p.ordered_prefix;
                for k in 0..m {
                    let z = b.binary();
                    let zk = b.columns[z];
                    constraints.push(Expression::from(b.columns[fill[k]]).geq(zk));
                    if k + 1 < m {
                        constraints.push(Expression::from(b.columns[fill[k + 1]]).leq(zk));
                    } else {
                        let mut rest = Expression::with_capacity(segments - m);
                        for &fj in &fill[m..] {
                            rest += b.columns[fj];
                        }
                        constraints.push(rest.leq((segments - m) as f64 * zk));
                    }
                }
            }
        }
        let mut size = b.size;
        size.rows = constraints.len();
        Ok(Formulation {
            lp: Lp {
                vars: b.vars,
                columns: b.columns,
                objective,
                constraints,
                is_mip: size.binaries + size.integers > 0,
            },
            decoder: Decoder {
                spend,
                active,
                periods,
            },
            constant,
            error,
            size,
        })
    }
}

impl Decoder {
    /// Reads the decisions from the solver's column values.
    pub fn decode(&self, values: &[f64]) -> Decision {
        let mut u = Vec::with_capacity(self.spend.len());
        let mut fixed = Vec::with_capacity(self.spend.len());
        for &s in &self.spend {
            match s {
                Spend::Continuous(v) => {
                    u.push(values[v]);
                    fixed.push(None);
                }
                Spend::Units { n, unit } => {
                    let x = values[n].round() * unit;
                    u.push(x);
                    fixed.push(Some(x));
                }
            }
        }
        let active: Vec<Option<bool>> = self
            .active
            .iter()
            .map(|y| y.map(|y| values[y] > 0.5))
            .collect();
        // A channel switched off spends exactly nothing.
        for (c, a) in active.iter().enumerate() {
            if *a == Some(false) {
                for t in 0..self.periods {
                    let j = c * self.periods + t;
                    u[j] = 0.0;
                    fixed[j] = Some(0.0);
                }
            }
        }
        Decision { u, active, fixed }
    }
}

/// Upper bounds capped by the budget and by rows of nonnegative coefficients (channel
/// totals, group caps): valid for every feasible point, and the tighter they are, the
/// fewer segments the curves need and the tighter the activation rows.
fn tightened_upper(set: &atlas_core::FeasibleSet) -> Vec<f64> {
    let mut upper = set.finite_upper();
    let lower = set.lower();
    let rows = set.rows();
    for i in 0..rows.len() {
        let hi = rows.upper()[i];
        let (idx, val) = rows.row(i);
        if !hi.is_finite() || val.iter().any(|&a| a <= 0.0) {
            continue;
        }
        let floor: f64 = idx.iter().zip(val).map(|(&j, &a)| a * lower[j]).sum();
        for (&j, &a) in idx.iter().zip(val) {
            let cap = (hi - (floor - a * lower[j])) / a;
            if cap < upper[j] {
                upper[j] = cap.max(lower[j]);
            }
        }
    }
    upper
}

/// Sizes of the model `milp` builds for `compiled` at curve error `max_error` (see
/// [`MilpConfig::max_error`](crate::MilpConfig::max_error)).
pub fn model_size(
    compiled: &atlas_core::Compiled,
    max_error: f64,
) -> Result<ModelSize, atlas_core::Error> {
    let scaled = atlas_core::Scaled::new(compiled)?;
    let ctx = Context::new(compiled, &scaled, Default::default());
    Formulation::build(&ctx, max_error)
        .map(|f| f.size)
        .map_err(|e| atlas_core::Error::Solver {
            optimizer: "milp".to_string(),
            reason: format!("{e:?}"),
        })
}
