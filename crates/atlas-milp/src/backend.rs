//! Running the model through good_lp on the chosen solver, and reading back the values,
//! the incumbent's objective and the proven bound.

use crate::config::MipSolver;
use crate::model::Lp;

/// Solver settings of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RunSettings {
    pub mip_gap: f64,
    pub time_limit: Option<f64>,
    pub threads: usize,
    /// Whether HiGHS may presolve (microlp has no presolve).
    pub presolve: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// An incumbent: column values, its objective and the proven lower bound on the
    /// minimum (both without the model's constant).
    Solved {
        values: Vec<f64>,
        objective: f64,
        bound: f64,
        /// A limit stopped the search before the gap closed.
        limit_reached: bool,
    },
    /// The solver proved that no point satisfies the rules.
    Infeasible,
    /// A limit stopped the search before any feasible point was found.
    NoIncumbent,
}

/// Minimizes the model with `solver` (already resolved from `auto`).
pub(crate) fn run(solver: MipSolver, model: Lp, settings: RunSettings) -> Result<Outcome, String> {
    match solver {
        MipSolver::Highs => run_highs(model, settings),
        MipSolver::Microlp => run_microlp(model, settings),
        MipSolver::Auto => run(solver.resolve(), model, settings),
    }
}

#[cfg(feature = "microlp")]
fn run_microlp(model: Lp, settings: RunSettings) -> Result<Outcome, String> {
    use good_lp::{
        ResolutionError, Solution, SolutionStatus, SolverModel, WithMipGap, WithTimeLimit,
    };

    let Lp {
        vars,
        columns,
        objective,
        constraints,
        is_mip,
    } = model;
    let mut problem = vars.minimise(objective).using(good_lp::microlp);
    for c in constraints {
        problem.add_constraint(c);
    }
    let mut problem = problem
        .with_mip_gap(settings.mip_gap as f32)
        .map_err(|e| format!("mip_gap: {e}"))?;
    if let Some(t) = settings.time_limit {
        problem = problem.with_time_limit(t);
    }
    match problem.solve() {
        Ok(solution) => {
            let limit_reached = match solution.status() {
                SolutionStatus::Optimal | SolutionStatus::GapLimit => false,
                SolutionStatus::TimeLimit => true,
            };
            let values: Vec<f64> = columns.iter().map(|&v| solution.value(v)).collect();
            let inner = solution.into_inner();
            let objective = inner.objective();
            let bound = match (is_mip, inner.stats().best_bound) {
                (false, _) => objective,
                (true, Some(b)) => b,
                // No bound from the branch and bound: a complete search proved the
                // incumbent optimal; an interrupted one proved nothing.
                (true, None) if !limit_reached => objective,
                (true, None) => f64::NEG_INFINITY,
            };
            Ok(Outcome::Solved {
                values,
                objective,
                bound: bound.min(objective),
                limit_reached,
            })
        }
        Err(ResolutionError::Infeasible) => Ok(Outcome::Infeasible),
        Err(ResolutionError::Unbounded) => {
            Err("microlp reports the model unbounded, but every variable is bounded".to_string())
        }
        // good_lp reports a time limit without incumbent with this message.
        Err(ResolutionError::Other(m)) if m.contains("Time limit") => Ok(Outcome::NoIncumbent),
        Err(ResolutionError::Other(m)) => Err(format!("microlp: {m}")),
        Err(ResolutionError::Str(m)) => Err(format!("microlp: {m}")),
    }
}

#[cfg(not(feature = "microlp"))]
fn run_microlp(_model: Lp, _settings: RunSettings) -> Result<Outcome, String> {
    Err("this build of atlas-milp has no microlp (enable the `microlp` feature)".to_string())
}

#[cfg(feature = "highs")]
fn run_highs(model: Lp, settings: RunSettings) -> Result<Outcome, String> {
    use good_lp::SolverModel;
    use highs::{HighsModelStatus, HighsSolutionStatus};

    let Lp {
        vars,
        columns,
        objective,
        constraints,
        is_mip,
    } = model;
    let mut problem = vars.minimise(objective).using(good_lp::highs);
    for c in constraints {
        problem.add_constraint(c);
    }
    // good_lp does not expose the MIP gap or the dual bound: take the HiGHS model itself.
    let mut highs_model = problem
        .try_into_inner()
        .map_err(|e| format!("HiGHS: {e}"))?;
    let option = |name: &str, r: Result<(), highs::TrySetOptionError>| {
        r.map_err(|e| format!("HiGHS option {name}: {e:?}"))
    };
    option(
        "mip_rel_gap",
        highs_model.try_set_option("mip_rel_gap", settings.mip_gap),
    )?;
    option(
        "mip_abs_gap",
        highs_model.try_set_option("mip_abs_gap", 0.0),
    )?;
    option(
        "threads",
        highs_model.try_set_option("threads", settings.threads as i32),
    )?;
    if let Some(t) = settings.time_limit {
        option("time_limit", highs_model.try_set_option("time_limit", t))?;
    }
    if !settings.presolve {
        option("presolve", highs_model.try_set_option("presolve", "off"))?;
    }
    let solved = highs_model
        .try_solve()
        .map_err(|e| format!("HiGHS: {e:?}"))?;
    let has_point = solved.primal_solution_status() == HighsSolutionStatus::Feasible;
    let limit_reached = match solved.status() {
        HighsModelStatus::Optimal => false,
        HighsModelStatus::ReachedTimeLimit
        | HighsModelStatus::ReachedIterationLimit
        | HighsModelStatus::ReachedSolutionLimit
        | HighsModelStatus::ReachedInterrupt
        | HighsModelStatus::ReachedMemoryLimit
        // Only with objective bound or target options, which are not set here.
        | HighsModelStatus::ObjectiveBound
        | HighsModelStatus::ObjectiveTarget => true,
        HighsModelStatus::Infeasible => return Ok(Outcome::Infeasible),
        // Every variable is bounded, so "unbounded or infeasible" is infeasible.
        HighsModelStatus::UnboundedOrInfeasible => return Ok(Outcome::Infeasible),
        HighsModelStatus::Unbounded => {
            return Err("HiGHS reports the model unbounded, but every variable is bounded".to_string())
        }
        status @ (HighsModelStatus::NotSet
        | HighsModelStatus::LoadError
        | HighsModelStatus::ModelError
        | HighsModelStatus::PresolveError
        | HighsModelStatus::SolveError
        | HighsModelStatus::PostsolveError
        | HighsModelStatus::ModelEmpty
        | HighsModelStatus::Unknown) => return Err(format!("HiGHS ended with status {status:?}")),
        // The enum is non-exhaustive: a status added by a later version is not taken for
        // success.
        status => return Err(format!("HiGHS ended with an unrecognized status {status:?}")),
    };
    if !has_point {
        return if limit_reached {
            Ok(Outcome::NoIncumbent)
        } else {
            Err("HiGHS reports optimality without a feasible point".to_string())
        };
    }
    let values = solved.get_solution().columns().to_vec();
    // good_lp hands HiGHS the variables in creation order, which the model relies on.
    if values.len() != columns.len() {
        return Err(format!(
            "HiGHS returned {} columns for {} variables",
            values.len(),
            columns.len()
        ));
    }
    let objective = solved.objective_value();
    let bound = if is_mip {
        solved
            .double_info_value(c"mip_dual_bound")
            .map_err(|e| format!("HiGHS mip_dual_bound: {e:?}"))?
    } else {
        // An LP solved to optimality: its optimum is the bound.
        objective
    };
    if !bound.is_finite() && !limit_reached {
        return Err(format!("HiGHS reports optimality with dual bound {bound}"));
    }
    Ok(Outcome::Solved {
        values,
        objective,
        bound: bound.min(objective),
        limit_reached,
    })
}

#[cfg(not(feature = "highs"))]
fn run_highs(_model: Lp, _settings: RunSettings) -> Result<Outcome, String> {
    Err("this build of atlas-milp has no HiGHS (enable the `highs` feature)".to_string())
}
