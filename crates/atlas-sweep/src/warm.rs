//! Warm starts that do not make answers depend on thread timing.
//!
//! Which solved neighbour a scenario starts from is fixed before anything runs: within
//! each group of scenarios of one shape, sorted by budget, the middle one is solved cold,
//! and every other one starts from the nearer (by budget) of the two already-planned
//! points around it, by bisection. A scenario runs as soon as its source is done, so the
//! pool stays busy (after the first solve, two, then four... scenarios can run at once),
//! yet each scenario's start, hence its answer, is the same for any `--jobs`. When a
//! source fails, its own source is used, and so on up to a cold start: still fixed by the
//! outcomes, not by timing.

use atlas_core::{OptimizationResult, SolveOptions};

/// The dependency forest of a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The scenario each one starts from (`None`: a cold start).
    pub(crate) source: Vec<Option<usize>>,
    /// The scenarios that start from each one.
    pub(crate) children: Vec<Vec<usize>>,
    /// The cold starts, which run first.
    pub(crate) roots: Vec<usize>,
}

/// Plans the starts of scenarios given as `(shape, budget)`; with `warm = false` every
/// scenario starts cold.
pub(crate) fn plan(scenarios: &[(&str, f64)], warm: bool) -> Plan {
    let n = scenarios.len();
    let mut source = vec![None; n];
    if warm {
        let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
        for (i, (shape, _)) in scenarios.iter().enumerate() {
            groups.entry(shape).or_default().push(i);
        }
        for members in groups.values_mut() {
            members.sort_by(|&a, &b| scenarios[a].1.total_cmp(&scenarios[b].1).then(a.cmp(&b)));
            let budget = |k: usize| scenarios[members[k]].1;
            // Intervals of sorted positions still to plan, with the planned positions
            // around them.
            let mut stack = vec![(0usize, members.len(), None::<usize>, None::<usize>)];
            while let Some((lo, hi, left, right)) = stack.pop() {
                if lo >= hi {
                    continue;
                }
                let mid = lo + (hi - lo - 1) / 2;
                let from = match (left, right) {
                    (None, None) => None,
                    (Some(l), None) => Some(l),
                    (None, Some(r)) => Some(r),
                    (Some(l), Some(r)) => {
                        if budget(mid) - budget(l) <= budget(r) - budget(mid) {
                            Some(l)
                        } else {
                            Some(r)
                        }
                    }
                };
                source[members[mid]] = from.map(|k| members[k]);
                stack.push((lo, mid, left, Some(mid)));
                stack.push((mid + 1, hi, Some(mid), right));
            }
        }
    }
    let mut children = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (i, s) in source.iter().enumerate() {
        match s {
            Some(p) => children[*p].push(i),
            None => roots.push(i),
        }
    }
    Plan {
        source,
        children,
        roots,
    }
}

/// Gives the solve a start point (spend units, the layout's flat order), which the core
/// projects onto the scenario's own feasible set (`SolveOptions::start`).
pub(crate) fn set_start(options: &mut SolveOptions, start: Vec<f64>) -> bool {
    options.start = Some(start);
    true
}

/// d(objective)/d(budget) as the optimizer reports it (the budget row's multiplier).
pub(crate) fn budget_multiplier(result: &OptimizationResult) -> Option<f64> {
    result.budget_multiplier.filter(|m| m.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_tree(p: &Plan, n: usize) {
        // Every scenario is reached from a root exactly once, sources before children.
        let mut seen = vec![false; n];
        let mut stack = p.roots.clone();
        while let Some(i) = stack.pop() {
            assert!(!seen[i]);
            seen[i] = true;
            stack.extend(&p.children[i]);
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn one_cold_start_per_shape_and_neighbours_by_bisection() {
        let budgets: Vec<(&str, f64)> = (0..7).map(|i| ("a", 100.0 + i as f64)).collect();
        let p = plan(&budgets, true);
        assert_eq!(p.roots, vec![3]);
        check_tree(&p, 7);
        // 3 is cold; 1 and 5 start from 3; 0 from 1; 6 from 5; 2 and 4 lie halfway
        // between two planned points and take the lower one.
        assert_eq!(
            p.source,
            vec![Some(1), Some(3), Some(1), None, Some(3), Some(3), Some(5)]
        );
        // The depth grows like log2(n): a 50-point curve has at most 6 levels.
        let budgets: Vec<(&str, f64)> = (0..50).map(|i| ("a", i as f64)).collect();
        let p = plan(&budgets, true);
        check_tree(&p, 50);
        let depth = |mut i: usize| {
            let mut d = 0;
            while let Some(s) = p.source[i] {
                i = s;
                d += 1;
            }
            d
        };
        assert!((0..50).map(depth).max().unwrap() <= 6);
        // Each start is one of the nearest planned points: never more than n/2 away.
        for i in 0..50 {
            if let Some(s) = p.source[i] {
                assert!((s as i64 - i as i64).abs() <= 13, "{i} from {s}");
            }
        }
    }

    #[test]
    fn shapes_are_planned_apart_and_order_given_does_not_matter() {
        let s = [("a", 3.0), ("b", 1.0), ("a", 1.0), ("a", 2.0), ("b", 2.0)];
        let p = plan(&s, true);
        check_tree(&p, 5);
        // Group a sorted by budget: 2 (1.0), 3 (2.0), 0 (3.0): 3 is cold.
        assert_eq!(p.source[3], None);
        assert_eq!(p.source[2], Some(3));
        assert_eq!(p.source[0], Some(3));
        // Group b: 1 (1.0) cold, 4 from 1.
        assert_eq!(p.source[1], None);
        assert_eq!(p.source[4], Some(1));
    }

    #[test]
    fn without_warm_start_everything_is_a_root() {
        let s = [("a", 3.0), ("a", 1.0)];
        let p = plan(&s, false);
        assert_eq!(p.roots, vec![0, 1]);
        assert_eq!(p.source, vec![None, None]);
    }
}
