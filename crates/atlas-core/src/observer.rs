//! Observers: progress bars, logs and traces attach here. Every hook does nothing by
//! default; a [`Frequency`] says how often `on_iteration` is called.

use std::time::Duration;

use crate::executor::Kv;
use crate::result::OptimizationResult;

/// Sent once before a solve starts.
#[derive(Debug, Clone)]
pub struct StartEvent {
    /// Problem name.
    pub problem: String,
    /// Optimizer name.
    pub optimizer: String,
    /// Number of decision variables.
    pub variables: usize,
    /// Number of linear rows the solver sees (after simplification).
    pub rows: usize,
}

/// Sent on iterations and improvements.
#[derive(Debug, Clone)]
pub struct IterationEvent {
    /// Iteration number (from 1).
    pub iteration: u64,
    /// The true objective of the iterate (fixed costs excluded).
    pub objective: f64,
    /// Best objective of a feasible iterate so far.
    pub best_objective: Option<f64>,
    /// Whether the iterate satisfies every rule.
    pub feasible: bool,
    /// Model evaluations so far.
    pub evaluations: u64,
    /// Time since the solve started.
    pub elapsed: Duration,
    /// The solver's diagnostics for this iteration (step length, radius, phase ...);
    /// empty for solvers that give none.
    pub diagnostics: Kv,
}

/// Hooks called during a solve.
pub trait Observer: Send {
    /// Before the first iteration.
    fn on_start(&mut self, event: &StartEvent) {
        let _ = event;
    }
    /// After an iteration (as often as the observer's [`Frequency`] says).
    fn on_iteration(&mut self, event: &IterationEvent) {
        let _ = event;
    }
    /// When a feasible iterate improves on the best so far.
    fn on_improvement(&mut self, event: &IterationEvent) {
        let _ = event;
    }
    /// After the result is assembled.
    fn on_finish(&mut self, result: &OptimizationResult) {
        let _ = result;
    }
}

/// How often an observer's `on_iteration` is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Frequency {
    /// Every iteration.
    #[default]
    Always,
    /// Every `n`-th iteration.
    Every(u64),
    /// Only on iterations that improve the best feasible objective.
    OnImprovement,
}

impl Frequency {
    pub(crate) fn fires(&self, iteration: u64, improved: bool) -> bool {
        match *self {
            Frequency::Always => true,
            Frequency::Every(n) => n > 0 && iteration % n == 0,
            Frequency::OnImprovement => improved,
        }
    }
}
