//! Budget grids: `START:STOP:N` (N budgets evenly spaced, both ends included) or a comma
//! list (`1e6,1.5e6,2e6`); any number may end in `x`, a factor of the base budget
//! (`0.5x:2x:16`).

use std::fmt;

use atlas_core::InputError;

/// One end or entry of a grid: an amount, or a factor of the base budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BudgetValue {
    /// An absolute budget.
    Amount(f64),
    /// A multiple of the base budget (`1.2x`).
    Factor(f64),
}

impl BudgetValue {
    /// The budget this value stands for, given the base budget.
    pub fn resolve(self, base: f64) -> f64 {
        match self {
            BudgetValue::Amount(a) => a,
            BudgetValue::Factor(f) => f * base,
        }
    }
}

impl fmt::Display for BudgetValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetValue::Amount(a) => write!(f, "{a}"),
            BudgetValue::Factor(x) => write!(f, "{x}x"),
        }
    }
}

/// A parsed `--budgets` specification.
#[derive(Debug, Clone, PartialEq)]
pub enum BudgetGrid {
    /// `count` budgets evenly spaced from `start` to `stop`, both included.
    Range {
        /// First budget.
        start: BudgetValue,
        /// Last budget.
        stop: BudgetValue,
        /// How many budgets (`>= 1`; 1 only when `start` and `stop` agree).
        count: usize,
    },
    /// The budgets listed.
    List(Vec<BudgetValue>),
}

const FIELD: &str = "--budgets";

fn bad(reason: impl Into<String>) -> InputError {
    InputError::new(FIELD, reason)
}

fn parse_value(text: &str) -> Result<BudgetValue, InputError> {
    let t = text.trim();
    let (number, factor) = match t.strip_suffix(['x', 'X']) {
        Some(n) => (n.trim(), true),
        None => (t, false),
    };
    let v: f64 = number.replace('_', "").parse().map_err(|_| {
        bad(format!(
            "`{t}` is not a number (write an amount such as 1.5e6, or a factor of the base budget such as 1.2x)"
        ))
    })?;
    if !v.is_finite() {
        return Err(bad(format!("`{t}` is not a finite number")));
    }
    if v <= 0.0 {
        return Err(bad(format!("`{t}`: a budget must be > 0")));
    }
    Ok(if factor {
        BudgetValue::Factor(v)
    } else {
        BudgetValue::Amount(v)
    })
}

impl BudgetGrid {
    /// Parses `START:STOP:N` or a comma list.
    pub fn parse(spec: &str) -> Result<BudgetGrid, InputError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(bad(
                "empty: give START:STOP:N (e.g. 0.5x:2x:16) or a comma list (e.g. 1e6,1.5e6,2e6)",
            ));
        }
        if spec.contains(':') {
            let parts: Vec<&str> = spec.split(':').collect();
            let [start, stop, count] = parts[..] else {
                return Err(bad(format!(
                    "`{spec}`: a range is START:STOP:N, three parts separated by `:`"
                )));
            };
            let start = parse_value(start)?;
            let stop = parse_value(stop)?;
            let count: i64 = count.trim().parse().map_err(|_| {
                bad(format!(
                    "`{}`: N must be a whole number of budgets >= 1",
                    count.trim()
                ))
            })?;
            if count < 1 {
                return Err(bad(format!("N must be >= 1 (got {count})")));
            }
            let count = count as usize;
            let limit = atlas_core::limits::MAX_SCENARIOS;
            if count > limit {
                return Err(bad(format!("N = {count} budgets is more than {limit}")));
            }
            Ok(BudgetGrid::Range { start, stop, count })
        } else {
            let values = spec
                .split(',')
                .map(parse_value)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(BudgetGrid::List(values))
        }
    }

    /// The budgets, in increasing order, for a base budget of `base`. Errors when `START >
    /// STOP`, when the range has one point but two different ends, or when two budgets of
    /// a list coincide.
    pub fn budgets(&self, base: f64) -> Result<Vec<f64>, InputError> {
        match self {
            BudgetGrid::Range { start, stop, count } => {
                let (a, b) = (start.resolve(base), stop.resolve(base));
                if !(a.is_finite() && b.is_finite()) {
                    return Err(bad(format!(
                        "{start}:{stop} gives budgets {a} to {b}, not finite numbers"
                    )));
                }
                if a > b {
                    return Err(bad(format!(
                        "START {start} ({}) is above STOP {stop} ({}): write the smaller budget first",
                        fmt_budget(a),
                        fmt_budget(b)
                    )));
                }
                if *count == 1 {
                    if a != b {
                        return Err(bad(format!(
                            "N = 1 gives one budget, but START {start} and STOP {stop} differ: use N >= 2, or START = STOP"
                        )));
                    }
                    return Ok(vec![a]);
                }
                if a == b {
                    return Err(bad(format!(
                        "START and STOP are the same budget ({}): N must be 1",
                        fmt_budget(a)
                    )));
                }
                let n = *count;
                Ok((0..n)
                    .map(|i| {
                        if i == n - 1 {
                            b
                        } else {
                            a + (b - a) * (i as f64) / ((n - 1) as f64)
                        }
                    })
                    .collect())
            }
            BudgetGrid::List(values) => {
                let mut out: Vec<f64> = values.iter().map(|v| v.resolve(base)).collect();
                if let Some(v) = out.iter().find(|v| !v.is_finite()) {
                    return Err(bad(format!("budget {v} is not a finite number")));
                }
                out.sort_by(f64::total_cmp);
                if let Some(w) = out.windows(2).find(|w| w[0] == w[1]) {
                    return Err(bad(format!("budget {} is listed twice", fmt_budget(w[0]))));
                }
                Ok(out)
            }
        }
    }
}

/// A budget as scenario names show it: whole numbers without a fraction (`2000000`),
/// others in the shortest form that reads back exactly (`1234.5`, `1e-3`).
pub fn fmt_budget(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_with_factors_are_evenly_spaced_and_inclusive() {
        let g = BudgetGrid::parse("0.5x:2x:4").unwrap();
        assert_eq!(
            g.budgets(1000.0).unwrap(),
            vec![500.0, 1000.0, 1500.0, 2000.0]
        );
        let g = BudgetGrid::parse("1e6:2e6:3").unwrap();
        assert_eq!(g.budgets(5.0).unwrap(), vec![1e6, 1.5e6, 2e6]);
        // Mixed: an amount to a factor.
        let g = BudgetGrid::parse("500:2x:2").unwrap();
        assert_eq!(g.budgets(1000.0).unwrap(), vec![500.0, 2000.0]);
        // The last point is STOP exactly, not START + (N-1) * step with rounding.
        let g = BudgetGrid::parse("0.1:0.7:7").unwrap();
        let b = g.budgets(1.0).unwrap();
        assert_eq!(b.len(), 7);
        assert_eq!(*b.last().unwrap(), 0.7);
        assert_eq!(
            BudgetGrid::parse("3x:3x:1").unwrap().budgets(2.0).unwrap(),
            vec![6.0]
        );
    }

    #[test]
    fn lists_are_sorted() {
        let g = BudgetGrid::parse("2e6, 1e6,1.5x").unwrap();
        assert_eq!(g.budgets(1e6).unwrap(), vec![1e6, 1.5e6, 2e6]);
        assert_eq!(
            BudgetGrid::parse("1_000").unwrap().budgets(1.0).unwrap(),
            vec![1000.0]
        );
    }

    fn parse_err(spec: &str) -> String {
        match BudgetGrid::parse(spec) {
            Err(e) => e.to_string(),
            Ok(g) => g.budgets(1000.0).unwrap_err().to_string(),
        }
    }

    #[test]
    fn bad_grids_are_input_errors_naming_the_option() {
        for (spec, expect) in [
            ("1x:2x:0", "N must be >= 1 (got 0)"),
            ("1x:2x:-3", "N must be >= 1"),
            ("1x:2x:2.5", "whole number"),
            ("2x:1x:5", "START 2x (2000) is above STOP 1x (1000)"),
            ("nan:2x:3", "not a finite number"),
            ("1:inf:3", "not a finite number"),
            ("1e400:2e400:2", "not a finite number"),
            ("0:2x:3", "must be > 0"),
            ("-1x:2x:3", "must be > 0"),
            ("1x:2x", "three parts"),
            ("1:2:3:4", "three parts"),
            ("abc", "not a number"),
            ("1e3,,2e3", "not a number"),
            ("1e3,1x", "listed twice"),
            ("1x:2x:1", "N = 1 gives one budget"),
            ("1x:1x:3", "N must be 1"),
            ("", "empty"),
        ] {
            let e = parse_err(spec);
            assert!(e.starts_with("--budgets: "), "{spec}: {e}");
            assert!(e.contains(expect), "{spec}: expected `{expect}` in `{e}`");
        }
    }

    #[test]
    fn budgets_print_as_whole_numbers_when_they_are() {
        assert_eq!(fmt_budget(2_000_000.0), "2000000");
        assert_eq!(fmt_budget(1234.5), "1234.5");
        assert_eq!(fmt_budget(0.001), "0.001");
    }
}
