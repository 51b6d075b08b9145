//! The [`Solver`] trait every backend implements, and what a solve returns.

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::error::Error;
use crate::result::Selected;

/// How a solve ended (contract section 6). Stopping is an outcome, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Proven optimal within the backend's tolerance.
    Optimal,
    /// Local convergence criteria met.
    Converged,
    /// Iteration limit reached.
    MaxIterations,
    /// Evaluation limit reached.
    MaxEvaluations,
    /// Time limit reached.
    TimeLimit,
    /// Early stopping: no improvement for `patience` iterations.
    StoppedEarly,
    /// Proven infeasible.
    Infeasible,
    /// Stopped on request (a [`CancelToken`](crate::CancelToken)); the best feasible
    /// point found so far is returned.
    Cancelled,
    /// The method failed numerically (an interior point that broke down, a search that
    /// can make no further progress in floating point far from a stationary point); the
    /// best feasible point found so far is returned.
    NumericalError,
}

impl Status {
    /// The name used in results.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Optimal => "optimal",
            Status::Converged => "converged",
            Status::MaxIterations => "max_iterations",
            Status::MaxEvaluations => "max_evaluations",
            Status::TimeLimit => "time_limit",
            Status::StoppedEarly => "stopped_early",
            Status::Infeasible => "infeasible",
            Status::Cancelled => "cancelled",
            Status::NumericalError => "numerical_error",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a backend returns: its best point in scaled units and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// Best point found, in scaled units (spend / budget).
    pub x: Vec<f64>,
    /// How the solve ended.
    pub status: Status,
    /// A proven bound on the true objective, in its own units (upper when maximizing,
    /// lower for `min_spend`), when the backend proves one.
    pub bound: Option<f64>,
    /// The multiplier of the budget row at `x` in scaled units: `d phi / d b`, the change
    /// of the scaled objective `phi` (minimized) per unit of scaled budget `b` (budget =
    /// 1), when the backend has it. The core converts it to objective units per unit of
    /// spend for [`OptimizationResult::budget_multiplier`](crate::OptimizationResult).
    pub budget_multiplier: Option<f64>,
    /// Which optimizer was chosen and why, when this solution comes from `auto`.
    pub selected: Option<Selected>,
}

impl Solution {
    /// A solution without a bound.
    pub fn new(x: Vec<f64>, status: Status) -> Self {
        Self {
            x,
            status,
            bound: None,
            budget_multiplier: None,
            selected: None,
        }
    }

    /// The same solution with a proven bound (true objective units).
    pub fn with_bound(mut self, bound: Option<f64>) -> Self {
        self.bound = bound;
        self
    }

    /// The same solution with the budget row's multiplier (scaled, see
    /// [`budget_multiplier`](Solution::budget_multiplier)).
    pub fn with_budget_multiplier(mut self, multiplier: Option<f64>) -> Self {
        self.budget_multiplier = multiplier;
        self
    }
}

/// What an optimizer can do; the registry lists it, and the core refuses problems whose
/// features a backend cannot honour before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Needs model gradients.
    pub needs_gradient: bool,
    /// Needs Hessian-vector products.
    pub needs_hessian: bool,
    /// Needs the built-in model's curve structure (cannot take a custom model).
    pub needs_structure: bool,
    /// Handles non-concave (S-shaped) curves; local methods do, returning a local optimum.
    pub handles_nonconvex: bool,
    /// Honours the integer and activation rules (`spend_unit`, `min_active`, `fixed_cost`,
    /// `max_active_channels`).
    pub integer_features: bool,
    /// Honours `min_roi` and `objective = "min_spend"`.
    pub nonlinear_constraints: bool,
    /// Proves a bound on the optimum.
    pub proves_bound: bool,
    /// Uses several cores.
    pub parallel: bool,
}

/// A configured optimizer, ready to solve. Built from a checked
/// [`SolverConfig`](crate::SolverConfig).
///
/// An iterative method is written as an [`IterativeSolver`](crate::IterativeSolver)
/// (start, one step, a termination reason) and its `solve` hands it to the
/// [`Executor`](crate::Executor), which owns the loop, the limits, cancellation, early
/// stopping, observers and the best feasible point. A one-shot method (a conic or
/// mixed-integer solve) takes its limits from the [`Context`] (`time_left`,
/// `should_stop`), evaluates through [`Context::evaluator`](crate::Context::evaluator)
/// (which enforces the evaluation budget) and reports its iterates with
/// [`Context::iteration`](crate::Context::iteration).
pub trait Solver: Send + Sync {
    /// Registered name.
    fn name(&self) -> &str;

    /// Solves the scaled problem held by `ctx`. `Err` is for failures that are not an
    /// outcome of the search (a limit or an infeasibility proof is a [`Status`]).
    fn solve(&self, ctx: &Context<'_>) -> Result<Solution, Error>;
}
