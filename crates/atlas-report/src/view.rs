//! What the report shows of a result, computed once: per channel its spend, share and,
//! where the problem is known, its response, ROI, marginal ROI and curve.

use atlas_core::{Allocation, Compiled, InputError, Objective};

use crate::charts::CurveChart;
use crate::fmt;
use crate::input::ResultFile;

/// One channel of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelView {
    /// Name.
    pub name: String,
    /// Spend over all periods.
    pub total: f64,
    /// Share of the total spend.
    pub share: f64,
    /// Spend per period.
    pub spend: Vec<f64>,
    /// What the problem's model says of it (absent without a problem).
    pub model: Option<ChannelModel>,
}

/// A channel as the problem's model sees it at the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelModel {
    /// Its response (discounted, with carry-over), when the model is additive.
    pub response: Option<f64>,
    /// Extra response per extra unit of spend, spread over the periods like the plan
    /// (evenly where the plan spends nothing on it), carry-over and discount included.
    pub marginal_roi: Option<f64>,
    /// The curve chart, for the built-in curve model.
    pub curve: Option<CurveChart>,
    /// The curve and adstock in words (`hill: β 393,200, k 67,690, s 1`).
    pub describe: Option<String>,
}

/// The problem a result is shown against.
#[derive(Debug, Clone, PartialEq)]
pub struct ProblemView {
    /// Its name.
    pub name: String,
    /// Its file, when it came from one.
    pub source: Option<String>,
    /// The objective's sense and kind.
    pub objective: Objective,
    /// Its budget.
    pub budget: f64,
    /// Whether the model is the built-in curve model.
    pub has_curves: bool,
    /// The model's objective at the result's allocation.
    pub objective_at_plan: f64,
}

/// A result ready to be drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultView {
    /// The channels, in the result's order.
    pub channels: Vec<ChannelView>,
    /// Number of periods.
    pub periods: usize,
    /// The problem, when given.
    pub problem: Option<ProblemView>,
    /// Things the reader must know (a problem that does not match the result, say).
    pub notes: Vec<String>,
}

impl ResultView {
    /// The view of `result`, against `problem` when given: every channel of the result
    /// must be one of the problem's with one value per period (an error names the
    /// field, `allocation.NAME`).
    pub fn new(result: &ResultFile, problem: Option<&Compiled>) -> Result<ResultView, InputError> {
        let spend_total: f64 = result.totals.values().sum();
        let mut channels: Vec<ChannelView> = result
            .allocation
            .iter()
            .map(|(name, spend)| {
                let total = result.totals.get(name).copied().unwrap_or_default();
                ChannelView {
                    name: name.clone(),
                    total,
                    share: if spend_total > 0.0 {
                        total / spend_total
                    } else {
                        0.0
                    },
                    spend: spend.clone(),
                    model: None,
                }
            })
            .collect();
        let mut notes = Vec::new();
        let problem_view = match problem {
            None => None,
            Some(compiled) => {
                let x = Allocation {
                    allocation: result.allocation.clone(),
                }
                .to_flat(compiled)
                .map_err(|e| match e {
                    atlas_core::Error::Input(e) => e,
                    other => InputError::new("allocation", other.to_string()),
                })?;
                let view = problem_of(compiled, &x);
                if compiled.name() != result.problem {
                    notes.push(format!(
                        "The result is of problem `{}`, the problem file given is `{}`.",
                        result.problem,
                        compiled.name()
                    ));
                }
                let scale = result.objective.abs().max(1.0);
                if (view.objective_at_plan - result.objective).abs() > 1e-6 * scale {
                    notes.push(format!(
                        "The problem's model gives the objective {} for this allocation, the result says {}: the problem file is not the one this result was solved for (or it has changed). The curves and ROIs below are the problem's.",
                        fmt::amount(view.objective_at_plan),
                        fmt::amount(result.objective)
                    ));
                }
                let models = channel_models(compiled, &x);
                for (c, m) in models.into_iter().enumerate() {
                    let name = &compiled.layout().channels()[c];
                    if let Some(ch) = channels.iter_mut().find(|ch| &ch.name == name) {
                        ch.model = Some(m);
                    }
                }
                Some(view)
            }
        };
        Ok(ResultView {
            channels,
            periods: result.periods(),
            problem: problem_view,
            notes,
        })
    }
}

fn problem_of(compiled: &Compiled, x: &[f64]) -> ProblemView {
    ProblemView {
        name: compiled.name().to_string(),
        source: compiled.source().map(|p| p.display().to_string()),
        objective: compiled.objective(),
        budget: compiled.budget(),
        has_curves: compiled.mmm().is_some(),
        objective_at_plan: compiled.objective_value(x),
    }
}

/// Per channel of `compiled`, in its order: response, marginal ROI, curve.
fn channel_models(compiled: &Compiled, x: &[f64]) -> Vec<ChannelModel> {
    let layout = compiled.layout();
    let model = compiled.model();
    let responses = model.channel_responses(x);
    let mut gradient = vec![0.0; x.len()];
    let has_gradient = model.gradient(x, &mut gradient).is_some();
    let periods = layout.periods();
    let mmm = compiled.mmm();
    let undiscounted = mmm.is_none_or(|m| m.discount_weights().iter().all(|&d| d == 1.0));
    (0..layout.n_channels())
        .map(|c| {
            let xs = layout.channel_slice(x, c);
            let total: f64 = xs.iter().sum();
            let marginal_roi = has_gradient.then(|| {
                let g = layout.channel_slice(&gradient, c);
                if total > 0.0 {
                    g.iter()
                        .zip(xs)
                        .map(|(gi, xi)| gi * xi / total)
                        .sum::<f64>()
                } else {
                    g.iter().sum::<f64>() / g.len().max(1) as f64
                }
            });
            let (curve, describe) = match mmm {
                Some(m) => {
                    let ch = &m.channels()[c];
                    let mut adstocked = vec![0.0; periods];
                    ch.adstock.apply(xs, &mut adstocked);
                    let chart = CurveChart {
                        name: layout.channels()[c].clone(),
                        curve: ch.curve,
                        adstocked,
                        marginal_roi,
                        slope_is_marginal_roi: periods == 1
                            && ch.adstock.is_identity()
                            && undiscounted,
                        fallback_range: compiled.budget() / (periods * layout.n_channels()) as f64,
                    };
                    let text = format!(
                        "{}{}",
                        describe_curve(&ch.curve),
                        describe_adstock(ch.adstock.weights())
                    );
                    (Some(chart), Some(text))
                }
                None => (None, None),
            };
            ChannelModel {
                response: responses.as_ref().map(|r| r[c]),
                marginal_roi,
                curve,
                describe,
            }
        })
        .collect()
}

/// The curve in words, parameters formatted for people.
pub fn describe_curve(curve: &atlas_core::Curve) -> String {
    use atlas_core::Curve::*;
    let n = fmt::param;
    match *curve {
        Linear { beta } => format!("linear: β {}", n(beta)),
        Hill { beta, k, s } => format!("hill: β {}, k {}, s {}", n(beta), n(k), n(s)),
        Exponential { beta, k } => format!("exponential: β {}, k {}", n(beta), n(k)),
        Logistic { beta, lam } => format!("logistic: β {}, λ {}", n(beta), n(lam)),
        Log { beta, k } => format!("log: β {}, k {}", n(beta), n(k)),
        Power { beta, alpha } => format!("power: β {}, α {}", n(beta), n(alpha)),
    }
}

/// The carry-over in words (empty without carry-over).
fn describe_adstock(weights: &[f64]) -> String {
    if weights.len() <= 1 {
        if weights.first().is_none_or(|&w| w == 1.0) {
            return String::new();
        }
        return format!("; adstock weight {}", fmt::param(weights[0]));
    }
    let decay = weights[1] / weights[0];
    let sum: f64 = weights.iter().sum();
    format!(
        "; adstock: decay {} over {} periods{}",
        fmt::param(decay),
        weights.len(),
        if (sum - 1.0).abs() < 1e-9 {
            ", normalized"
        } else {
            ""
        }
    )
}
