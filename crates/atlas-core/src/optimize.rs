//! The solve driver: refuse unsupported features, scale, run the backend in a context,
//! and assemble the contract's result from the true model.

use std::time::Instant;

use crate::compile::Compiled;
use crate::context::{Context, SolveOptions};
use crate::error::{Error, InputError};
use crate::observer::StartEvent;
use crate::registry::SolverConfig;
use crate::result::{Metrics, OptimizationResult};
use crate::scaled::Scaled;

/// Solves `compiled` with the optimizer `config` describes.
///
/// Checks `config`, refuses features the optimizer cannot honour (the error's
/// `alternatives` are filled by [`Registry::optimize`](crate::Registry::optimize)), scales
/// the problem (failing when its rules admit no allocation), runs the solver, and reports
/// the true objective and violations of the allocation it returns.
pub fn optimize(
    compiled: &Compiled,
    config: &dyn SolverConfig,
    options: SolveOptions,
) -> Result<OptimizationResult, Error> {
    let started = Instant::now();
    // Reads the memory high-water mark; resets it only when the program asked for it.
    crate::memory::solve_started();
    config.check()?;
    let missing = config.refuses(compiled);
    if !missing.is_empty() {
        return Err(Error::Unsupported {
            optimizer: config.name().to_string(),
            features: missing.iter().map(|f| f.describe()).collect(),
            alternatives: Vec::new(),
        });
    }
    if let Some(start) = &options.start {
        check_start(compiled, start)?;
    }
    let solver = config.build()?;
    // (models) External models count their cache hits over their life; this solve
    // reports its own share.
    let stats_before = compiled.model().stats();
    let scaled = Scaled::new(compiled)?;
    let ctx = Context::new(compiled, &scaled, options);
    ctx.notify_start(&StartEvent {
        problem: compiled.name().to_string(),
        optimizer: solver.name().to_string(),
        variables: scaled.dim(),
        rows: scaled.feasible_set().rows().len(),
    });
    let solution = solver.solve(&ctx);
    // (models) A model that failed (a service that stopped answering) ends the solve
    // with its error, whatever the solver made of the NaN values it saw since.
    if let Some(reason) = compiled.model().failure() {
        return Err(model_error(compiled, reason));
    }
    let solution = solution?;
    if solution.x.len() != scaled.dim() || solution.x.iter().any(|v| !v.is_finite()) {
        return Err(Error::Solver {
            optimizer: solver.name().to_string(),
            reason: "returned an allocation of the wrong size or with non-finite values"
                .to_string(),
        });
    }

    // Back to spend units; rounding may leave values a hair outside their bounds.
    let set = compiled.feasible_set();
    let x: Vec<f64> = scaled
        .unscale(&solution.x)
        .iter()
        .zip(set.lower().iter().zip(set.upper()))
        .map(|(v, (l, u))| v.max(*l).min(*u))
        .collect();
    let layout = compiled.layout();
    let counts = ctx.evaluator().counts();
    let objective = compiled.objective_value(&x);
    if let Some(reason) = compiled.model().failure() {
        return Err(model_error(compiled, reason));
    }
    let stats_after = compiled.model().stats();
    // A point that meets the rules only to the feasibility tolerance can score a hair past
    // the true optimum, hence past a proven bound. Loosening an upper bound (raising it) or
    // a lower bound (lowering it) to the reported objective keeps it a valid bound.
    let bound = solution.bound.map(|b| {
        if compiled.objective().maximize() {
            b.max(objective)
        } else {
            b.min(objective)
        }
    });
    let result = OptimizationResult {
        problem: compiled.name().to_string(),
        optimizer: solver.name().to_string(),
        status: solution.status,
        objective,
        bound,
        allocation: layout
            .channels()
            .iter()
            .enumerate()
            .map(|(c, name)| (name.clone(), layout.channel_slice(&x, c).to_vec()))
            .collect(),
        totals: layout
            .channels()
            .iter()
            .cloned()
            .zip(layout.totals(&x))
            .collect(),
        total_spend: x.iter().sum(),
        max_violation: compiled.max_violation(&x),
        metrics: Metrics {
            wall_time_s: started.elapsed().as_secs_f64(),
            evaluations: counts.evaluations,
            gradient_evaluations: counts.gradient_evaluations,
            iterations: ctx.iterations(),
            model_time_s: counts.model_time.as_secs_f64(),
            constraint_time_s: counts.constraint_time.as_secs_f64(),
            peak_memory_mb: crate::memory::peak_mb(),
            gradient: stats_after.and_then(|s| s.gradient).map(str::to_string),
            cache_hits: stats_after
                .map(|after| after.cache_hits - stats_before.map_or(0, |before| before.cache_hits)),
        },
        selected: solution.selected.clone(),
        budget_multiplier: solution
            .budget_multiplier
            .filter(|m| m.is_finite())
            .map(|m| scaled.budget_multiplier_from_scaled(m)),
        cache: None,
        risk: compiled.risk(&x),
    };
    for (_, mut obs) in ctx.take_observers() {
        obs.on_finish(&result);
    }
    Ok(result)
}

/// The error of a failed model, named by where the problem came from.
fn model_error(compiled: &Compiled, reason: String) -> Error {
    Error::Model {
        model: compiled
            .source()
            .map_or_else(|| compiled.name().to_string(), |p| p.display().to_string()),
        reason,
    }
}

/// A warm start must have one finite, non-negative value per variable of the layout.
fn check_start(compiled: &Compiled, start: &[f64]) -> Result<(), Error> {
    let n = compiled.layout().len();
    if start.len() != n {
        return Err(InputError::new(
            "start",
            format!(
                "{} values given, the problem has {n} variables (channels x periods, channel-major)",
                start.len()
            ),
        )
        .into());
    }
    if let Some((i, v)) = start
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
    {
        return Err(InputError::new(
            format!("start[{i}]"),
            format!("spend must be a finite number >= 0 (got {v})"),
        )
        .into());
    }
    Ok(())
}
