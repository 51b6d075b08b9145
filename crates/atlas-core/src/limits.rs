//! Documented limits on the sizes a problem may ask for, checked when a problem is loaded
//! and before anything is allocated for it.
//!
//! Sizes come from the user (a file, a request to the service): `periods = 4294967297` must
//! be refused by name, not answered by an allocation of 68 GB. Every limit here is named in
//! the contract (`docs/problem-format.md`, section 7) and in the error that reports it, and
//! the work and memory of `validate` and of a solve are bounded in terms of these sizes
//! (see [`memory_bound_bytes`]).

use crate::error::InputError;
use crate::problem::{ConstraintKind, Problem};

/// Largest problem file read, in bytes (64 MiB): the parsed document is held in memory.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Most channels in one problem.
pub const MAX_CHANNELS: usize = 100_000;
/// Most periods in one problem.
pub const MAX_PERIODS: usize = 100_000;
/// Most decision variables (`channels x periods`) in one problem.
pub const MAX_VARIABLES: usize = 1_000_000;
/// Most adstock weights that take part in the model: `max_lag` beyond `periods` has no
/// effect (no spend is carried beyond the horizon), so the effective lag of a channel is
/// `min(max_lag, periods)`, and the sum over channels of `periods x effective lag` (the
/// work of one model evaluation) is capped here. `max_lag` itself may be any whole number.
pub const MAX_ADSTOCK_TERMS: usize = 100_000_000;
/// Most linear rows the constraints expand to (a `max_change` rule gives two rows per
/// channel and period, every other rule one or two rows).
pub const MAX_ROWS: usize = 1_000_000;
/// Most nonzero coefficients in all linear rows together.
pub const MAX_NONZEROS: usize = 10_000_000;
/// Longest name (problem, channel) in bytes.
pub const MAX_NAME_BYTES: usize = 1_024;
/// Most scenarios (budget points included) in one sweep.
pub const MAX_SCENARIOS: usize = 100_000;
/// Longest time limit, in seconds (one year): beyond it a limit means nothing, and a
/// larger number does not fit a `Duration` everywhere.
pub const MAX_TIME_LIMIT_S: f64 = 365.0 * 24.0 * 3600.0;
/// Largest budget, and largest period weight of a negative discount: solvers square and
/// sum amounts in `f64` (up to about `1.8e308`), so amounts beyond this overflow there.
pub const MAX_AMOUNT: f64 = 1e100;
/// Smallest budget: below, the amounts' squares underflow to zero.
pub const MIN_BUDGET: f64 = 1e-100;

/// A size that exceeds its limit: the field, what it amounts to, and the limit.
fn too_large(field: &str, what: &str, got: usize, limit: usize) -> InputError {
    InputError::new(
        field,
        format!(
            "{what} is {got}, above the limit of {limit} (see docs/problem-format.md, section 7)"
        ),
    )
}

/// The number of periods a constraint's `periods` list (or all periods) covers.
fn covered(periods: &Option<Vec<usize>>, all: usize) -> usize {
    periods.as_ref().map_or(all, Vec::len)
}

/// Checks every size of `problem` against the limits above, before anything is built
/// from it; the error names the field and the limit. Cheap: no allocation beyond a few
/// words, whatever the sizes asked for.
pub fn check_sizes(problem: &Problem) -> Result<(), InputError> {
    let periods = problem.periods;
    let channels = problem.channels.len();
    if periods > MAX_PERIODS {
        return Err(too_large(
            "periods",
            "the number of periods",
            periods,
            MAX_PERIODS,
        ));
    }
    if channels > MAX_CHANNELS {
        return Err(too_large(
            "channels",
            "the number of channels",
            channels,
            MAX_CHANNELS,
        ));
    }
    let variables = channels.saturating_mul(periods);
    if variables > MAX_VARIABLES {
        return Err(InputError::new(
            "periods",
            format!(
                "{channels} channels x {periods} periods = {variables} variables, above the limit of {MAX_VARIABLES} (see docs/problem-format.md, section 7)"
            ),
        ));
    }
    if problem.name.len() > MAX_NAME_BYTES {
        return Err(too_large(
            "name",
            "the length in bytes",
            problem.name.len(),
            MAX_NAME_BYTES,
        ));
    }
    let mut adstock_terms = 0usize;
    for (i, c) in problem.channels.iter().enumerate() {
        if c.name.len() > MAX_NAME_BYTES {
            return Err(too_large(
                &format!("channels[{i}].name"),
                "the length in bytes",
                c.name.len(),
                MAX_NAME_BYTES,
            ));
        }
        let lag = c
            .adstock
            .as_ref()
            .map_or(1, |a| a.max_lag.clamp(1, periods.max(1)));
        adstock_terms = adstock_terms.saturating_add(periods.saturating_mul(lag));
        if adstock_terms > MAX_ADSTOCK_TERMS {
            return Err(InputError::new(
                format!("channels[{i}].adstock.max_lag"),
                format!(
                    "the adstock weights in use (periods x min(max_lag, periods), summed over channels) reach {adstock_terms}, above the limit of {MAX_ADSTOCK_TERMS} (see docs/problem-format.md, section 7)"
                ),
            ));
        }
    }
    // Rows and nonzeros the constraints expand to, counted from the sizes alone.
    let mut rows = 0usize;
    let mut nonzeros = 0usize;
    if periods > 1 {
        for c in &problem.channels {
            if c.min.is_some() || c.max.is_some() {
                rows += 1;
                nonzeros = nonzeros.saturating_add(periods);
            }
        }
    }
    for (k, con) in problem.constraints.iter().enumerate() {
        let group = con.channels.as_ref().map_or(0, Vec::len);
        let limits = usize::from(con.min.is_some()) + usize::from(con.max.is_some());
        let (r, nz) = match con.kind {
            ConstraintKind::Share => {
                let t = covered(&con.periods, periods);
                (
                    limits,
                    limits.saturating_mul((group + channels).saturating_mul(t)),
                )
            }
            ConstraintKind::Ratio => {
                let t = covered(&con.periods, periods);
                let over = con.over.as_ref().map_or(0, Vec::len);
                (
                    limits,
                    limits.saturating_mul((group + over).saturating_mul(t)),
                )
            }
            ConstraintKind::Spend => (1, group.saturating_mul(covered(&con.periods, periods))),
            ConstraintKind::MaxChange => {
                let g = con.channels.as_ref().map_or(channels, Vec::len);
                let r = g
                    .saturating_mul(periods.saturating_sub(1))
                    .saturating_mul(2);
                (r, r.saturating_mul(2))
            }
            ConstraintKind::Linear => {
                let nz = con.terms.as_ref().map_or(0, |terms| {
                    terms.iter().fold(0usize, |s, t| {
                        s.saturating_add(covered(&t.periods, periods))
                    })
                });
                (1, nz)
            }
            ConstraintKind::MinRoi => (0, 0),
        };
        rows = rows.saturating_add(r);
        nonzeros = nonzeros.saturating_add(nz);
        let field = format!("constraints[{k}]");
        if rows > MAX_ROWS {
            return Err(InputError::new(
                field,
                format!(
                    "the constraints expand to {rows} linear rows, above the limit of {MAX_ROWS} (see docs/problem-format.md, section 7)"
                ),
            ));
        }
        if nonzeros > MAX_NONZEROS {
            return Err(InputError::new(
                field,
                format!(
                    "the constraints expand to {nonzeros} nonzero coefficients, above the limit of {MAX_NONZEROS} (see docs/problem-format.md, section 7)"
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a time limit in seconds: finite, `> 0` and at most [`MAX_TIME_LIMIT_S`]; the
/// error names `field`.
pub fn check_time_limit(field: &str, seconds: f64) -> Result<std::time::Duration, InputError> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(InputError::new(
            field,
            format!("must be a finite number of seconds > 0 (got {seconds})"),
        ));
    }
    if seconds > MAX_TIME_LIMIT_S {
        return Err(InputError::new(
            field,
            format!("{seconds} seconds is above the limit of {MAX_TIME_LIMIT_S} (one year)"),
        ));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// An upper bound on the memory, in bytes, that `validate` or a solve with a gradient
/// optimizer needs for a problem of `variables` variables and `nonzeros` row
/// coefficients, beyond the process's own base: a fixed allowance for the program plus
/// a constant number of `f64` vectors per variable and per coefficient (the layout,
/// bounds, projections, gradients and the optimizer's history). Documented in
/// `docs/problem-format.md`, section 7, and checked by a memory-limited test.
pub fn memory_bound_bytes(variables: usize, nonzeros: usize) -> u64 {
    const BASE: u64 = 64 << 20;
    const PER_VARIABLE: u64 = 64 * 8;
    const PER_NONZERO: u64 = 8 * 8;
    BASE + PER_VARIABLE * variables as u64 + PER_NONZERO * nonzeros as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{AdstockKind, AdstockSpec, Channel, CurveSpec};

    fn problem(periods: usize, channels: usize) -> Problem {
        Problem {
            name: "p".into(),
            periods,
            budget: 1.0,
            budget_mode: Default::default(),
            objective: Default::default(),
            margin: 1.0,
            target_response: None,
            discount: 0.0,
            max_active_channels: None,
            channels: (0..channels)
                .map(|i| Channel::new(format!("c{i}"), CurveSpec::log(1.0, 1.0)))
                .collect(),
            constraints: Vec::new(),
            model: None,
        }
    }

    #[test]
    fn sizes_beyond_the_limits_are_refused_by_field() {
        let e = check_sizes(&problem(4_294_967_297, 1)).unwrap_err();
        assert_eq!(e.field, "periods");
        assert!(e.reason.contains("100000"), "{}", e.reason);
        let e = check_sizes(&problem(20_000, 100)).unwrap_err();
        assert_eq!(e.field, "periods");
        assert!(e.reason.contains("2000000 variables"), "{}", e.reason);
        assert!(check_sizes(&problem(52, 10)).is_ok());
    }

    #[test]
    fn a_lag_beyond_the_horizon_costs_nothing() {
        let mut p = problem(4, 2);
        p.channels[0].adstock = Some(AdstockSpec {
            kind: AdstockKind::Geometric,
            decay: 0.5,
            max_lag: usize::MAX,
            normalize: true,
        });
        assert!(check_sizes(&p).is_ok());
        // Where the lag does take part, the work is counted and capped.
        let mut p = problem(100_000, 10);
        p.channels[3].adstock = Some(AdstockSpec {
            kind: AdstockKind::Geometric,
            decay: 0.5,
            max_lag: 5_000,
            normalize: true,
        });
        let e = check_sizes(&p).unwrap_err();
        assert_eq!(e.field, "channels[3].adstock.max_lag");
    }

    #[test]
    fn time_limits_are_finite_positive_and_bounded() {
        assert!(check_time_limit("--time-limit", 1e20).is_err());
        assert!(check_time_limit("--time-limit", -1.0).is_err());
        assert!(check_time_limit("--time-limit", f64::NAN).is_err());
        assert_eq!(
            check_time_limit("--time-limit", 2.5).unwrap(),
            std::time::Duration::from_millis(2500)
        );
    }
}
