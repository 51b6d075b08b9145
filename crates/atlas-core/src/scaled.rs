//! The problem as solvers see it: spend in units of the budget, the objective in units of
//! a reference response, so that budgets of 1e3 and 1e9 give the same numbers.
//!
//! In these units every solver *minimizes*
//! `phi(u) = w_model * R_s(u) + w_spend * sum(u)`, where `R_s(u) = R(budget * u) / F` is the
//! scaled model, subject to the scaled feasible set and to nonlinear rows
//! `c_model * R_s(u) + c_spend * sum(u) >= rhs` (`min_roi`, the `min_spend` target).

use std::sync::Arc;

use crate::compile::{Compiled, Objective};
use crate::error::{Error, InfeasibleError};
use crate::feasible::{FeasibleSet, RowOrigin};
use crate::model::{Mmm, Model, ScaledModel};

/// `model * R_s(u) + spend * sum(u)`: how objectives and nonlinear rows combine the
/// model's value with the total spend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Combination {
    /// Weight of the scaled model value.
    pub model: f64,
    /// Weight of the scaled total spend.
    pub spend: f64,
}

impl Combination {
    /// The combined value from the model value and the spend total.
    #[inline]
    pub fn value(&self, model_value: f64, spend: f64) -> f64 {
        self.model * model_value + self.spend * spend
    }

    /// Writes the combined gradient from the model gradient (in place).
    #[inline]
    pub fn gradient_in_place(&self, model_gradient: &mut [f64]) {
        for g in model_gradient.iter_mut() {
            *g = self.model * *g + self.spend;
        }
    }
}

/// A nonlinear row `combination(u) >= rhs` in scaled units.
#[derive(Debug, Clone, PartialEq)]
pub struct NonlinearRow {
    /// Left-hand side.
    pub lhs: Combination,
    /// Right-hand side.
    pub rhs: f64,
    /// Where it comes from.
    pub origin: RowOrigin,
}

/// The scaled problem handed to solvers.
#[derive(Clone)]
pub struct Scaled {
    spend_scale: f64,
    response_scale: f64,
    model: Arc<dyn Model>,
    mmm: Option<Arc<Mmm>>,
    feasible: FeasibleSet,
    objective: Combination,
    nonlinear: Vec<NonlinearRow>,
    start: Vec<f64>,
    maximize: bool,
}

impl std::fmt::Debug for Scaled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scaled")
            .field("spend_scale", &self.spend_scale)
            .field("response_scale", &self.response_scale)
            .field("dim", &self.dim())
            .field("rows", &self.feasible.rows().len())
            .field("nonlinear", &self.nonlinear.len())
            .finish_non_exhaustive()
    }
}

impl Scaled {
    /// Scales `compiled`: spend by the budget, response by the response at a feasible
    /// starting point (the even split projected onto the feasible set; for `profit`, that
    /// response's value, times the margin), or by the target for `min_spend`. Fails when
    /// the rules admit no allocation.
    pub fn new(compiled: &Compiled) -> Result<Scaled, Error> {
        let infeasible = |e: InfeasibleError| Error::from(e).in_file(compiled.source());
        let spend_scale = compiled.budget();
        let feasible = compiled
            .feasible_set()
            .for_solvers(spend_scale)
            .map_err(infeasible)?;
        let n = feasible.dim();
        let even = vec![feasible.budget() / n as f64; n];
        let mut start = vec![0.0; n];
        feasible
            .project_cold(&even, &mut start)
            .map_err(|f| infeasible(f.into_infeasible()))?;
        let objective_kind = compiled.objective();
        // (hard, issue 12) A profit is `margin * response - spend`: its unit is the value
        // of the reference response, `margin * r`, so that `phi` is of order one whatever
        // the unit of spend (a spend unit c times smaller makes the margin c times larger;
        // with `r` alone, `phi` and its gradient shrank with the budget and the gradient
        // methods stopped at once below budgets of about 1e-2).
        let weight = match objective_kind {
            Objective::Profit { margin } => margin,
            _ => 1.0,
        };
        let response_scale = match objective_kind {
            Objective::MinSpend { target } => target,
            _ => {
                let x: Vec<f64> = start.iter().map(|u| u * spend_scale).collect();
                let r = compiled.model().value(&x).abs() * weight;
                if r.is_finite() && r > 1e-300 {
                    r
                } else {
                    1.0
                }
            }
        };
        let (model, mmm): (Arc<dyn Model>, Option<Arc<Mmm>>) = match compiled.mmm() {
            Some(m) => {
                let scaled = Arc::new(m.rescaled(spend_scale, response_scale));
                (scaled.clone(), Some(scaled))
            }
            None => (
                Arc::new(ScaledModel::new(
                    // (draws) The smoothed CVaR of a posterior, where there is one.
                    compiled
                        .model()
                        .solver_model()
                        .unwrap_or_else(|| compiled.model().clone()),
                    spend_scale,
                    response_scale,
                )),
                None,
            ),
        };
        let ratio = spend_scale / response_scale;
        let (objective, maximize) = match objective_kind {
            Objective::Response => (
                Combination {
                    model: -1.0,
                    spend: 0.0,
                },
                true,
            ),
            Objective::Profit { margin } => (
                Combination {
                    model: -margin,
                    spend: ratio,
                },
                true,
            ),
            Objective::MinSpend { .. } => (
                Combination {
                    model: 0.0,
                    spend: 1.0,
                },
                false,
            ),
        };
        let mut nonlinear: Vec<NonlinearRow> = compiled
            .min_roi()
            .iter()
            .map(|r| NonlinearRow {
                lhs: Combination {
                    model: 1.0,
                    spend: -r.value * ratio,
                },
                rhs: 0.0,
                origin: r.origin.clone(),
            })
            .collect();
        if let Objective::MinSpend { target } = objective_kind {
            nonlinear.push(NonlinearRow {
                lhs: Combination {
                    model: 1.0,
                    spend: 0.0,
                },
                rhs: target / response_scale,
                origin: RowOrigin {
                    field: "target_response".to_string(),
                    description: format!("response >= {target}"),
                },
            });
        }
        Ok(Scaled {
            spend_scale,
            response_scale,
            model,
            mmm,
            feasible,
            objective,
            nonlinear,
            start,
            maximize,
        })
    }

    /// Number of variables.
    pub fn dim(&self) -> usize {
        self.feasible.dim()
    }
    /// Spend units per scaled unit (the budget).
    pub fn spend_scale(&self) -> f64 {
        self.spend_scale
    }
    /// Response units per scaled unit.
    pub fn response_scale(&self) -> f64 {
        self.response_scale
    }
    /// The scaled model `R_s`.
    pub fn model(&self) -> &Arc<dyn Model> {
        &self.model
    }
    /// The scaled built-in model's structure, when the problem uses it.
    pub fn mmm(&self) -> Option<&Arc<Mmm>> {
        self.mmm.as_ref()
    }
    /// The scaled, simplified feasible set (linear rows only).
    pub fn feasible_set(&self) -> &FeasibleSet {
        &self.feasible
    }
    /// The objective to minimize, `phi`.
    pub fn objective(&self) -> Combination {
        self.objective
    }
    /// Nonlinear rows (`min_roi`, the `min_spend` target).
    pub fn nonlinear_rows(&self) -> &[NonlinearRow] {
        &self.nonlinear
    }
    /// A feasible point for the linear rows (the even split, projected).
    pub fn start(&self) -> &[f64] {
        &self.start
    }
    /// Whether the true objective is maximized (so `phi` is its negative, scaled).
    pub fn maximize(&self) -> bool {
        self.maximize
    }

    /// Spend units of a scaled point.
    pub fn unscale(&self, u: &[f64]) -> Vec<f64> {
        u.iter().map(|v| v * self.spend_scale).collect()
    }

    /// Scaled point of an allocation in spend units.
    pub fn scale(&self, x: &[f64]) -> Vec<f64> {
        x.iter().map(|v| v / self.spend_scale).collect()
    }

    /// The true objective (without fixed costs) that a value of `phi` stands for.
    pub fn objective_from_phi(&self, phi: f64) -> f64 {
        if self.maximize {
            -phi * self.response_scale
        } else {
            phi * self.spend_scale
        }
    }

    /// The value of `phi` that a true objective (without fixed costs) stands for.
    pub fn phi_from_objective(&self, objective: f64) -> f64 {
        if self.maximize {
            -objective / self.response_scale
        } else {
            objective / self.spend_scale
        }
    }

    /// `d objective / d budget` in objective units per unit of spend, from the scaled
    /// multiplier `d phi / d b` (`phi` minimized, `b` the budget in scaled units).
    pub fn budget_multiplier_from_scaled(&self, dphi_db: f64) -> f64 {
        if self.maximize {
            -dphi_db * self.response_scale / self.spend_scale
        } else {
            dphi_db
        }
    }

    /// Largest violation of the nonlinear rows at `u`, given `R_s(u)` (scaled units).
    pub fn nonlinear_violation(&self, model_value: f64, spend: f64) -> f64 {
        self.nonlinear
            .iter()
            .map(|r| (r.rhs - r.lhs.value(model_value, spend)).max(0.0))
            .fold(0.0, f64::max)
    }
}
