//! Generated problems with `max_change` rules: the generated marketing-mix problems of
//! [`crate::generate`] with a period-on-period limit on every channel (and, for the
//! larger ones, two share rules), the rows that an interior point alone handles slowly.
//! `max_rate = 0` asks for a flat weekly profile (every channel spends the same each
//! period: equality rows).
//!
//! Every rule keeps the problem feasible: the allocation that spends each channel's share
//! of the budget evenly over the periods meets every `max_change`, and the shares are
//! loose enough for the channels' totals.

use atlas_core::problem::{Constraint, ConstraintKind, Problem};

use crate::generate;

/// The sizes of the suite's `max_change` problems: channels, periods, `max_rate`.
pub const SIZES: [(usize, usize, f64); 2] = [(4, 14, 0.0), (40, 52, 0.2)];

/// The name of a generated problem with `max_change`: `mmm-{channels}x{periods}-mc{percent}`
/// (`-flat` for `max_rate = 0`).
pub fn name(channels: usize, periods: usize, max_rate: f64) -> String {
    if max_rate == 0.0 {
        format!("{}-flat", generate::name(channels, periods))
    } else {
        format!(
            "{}-mc{}",
            generate::name(channels, periods),
            (max_rate * 100.0).round()
        )
    }
}

/// [`generate::generate`]`(channels, periods, seed)` with `max_change` at `max_rate` on
/// every channel, plus (from 8 channels) the first four channels at least 5% of the spend
/// and the next four at most 40%.
pub fn generate(channels: usize, periods: usize, seed: u64, max_rate: f64) -> Problem {
    let mut p = generate::generate(channels, periods, seed);
    p.name = name(channels, periods, max_rate);
    let mut change = Constraint::new(ConstraintKind::MaxChange);
    change.max_rate = Some(max_rate);
    p.constraints.push(change);
    if p.channels.len() >= 8 {
        let group = |r: std::ops::Range<usize>| -> Vec<String> {
            p.channels[r].iter().map(|c| c.name.clone()).collect()
        };
        let mut first = Constraint::new(ConstraintKind::Share);
        first.channels = Some(group(0..4));
        first.min = Some(0.05);
        let mut next = Constraint::new(ConstraintKind::Share);
        next.channels = Some(group(4..8));
        next.max = Some(0.4);
        p.constraints.push(first);
        p.constraints.push(next);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_core::Compiled;

    /// The even allocation of each channel's share meets every rule of every size.
    #[test]
    fn generated_rules_compile_and_admit_a_flat_plan() {
        for (c, t, rate) in SIZES {
            let p = generate(c, t, generate::SUITE_SEED, rate);
            let compiled = Compiled::new(&p).unwrap();
            assert_eq!(compiled.name(), name(c, t, rate));
            assert!(compiled.feasible_set().rows().len() >= 2 * c * (t - 1));
            // Each channel's total: its minimum, then the rest spread within the maxima.
            let budget = p.budget;
            let mins: Vec<f64> = p.channels.iter().map(|ch| ch.min.unwrap_or(0.0)).collect();
            let caps: Vec<f64> = p
                .channels
                .iter()
                .map(|ch| ch.max.unwrap().min(ch.period_max.unwrap() * t as f64))
                .collect();
            let room: f64 = caps.iter().zip(&mins).map(|(h, l)| h - l).sum();
            let rest = budget - mins.iter().sum::<f64>();
            let x: Vec<f64> = (0..c * t)
                .map(|i| {
                    let ch = i / t;
                    (mins[ch] + (caps[ch] - mins[ch]) * rest / room) / t as f64
                })
                .collect();
            assert!(compiled.is_feasible(&x), "{}", name(c, t, rate));
        }
    }
}
