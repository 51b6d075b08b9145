//! Fuzzing the problem parser and the compile step with proptest (issue 12): arbitrary
//! bytes in every format, mutations of the example files, and structurally valid problems
//! with extreme numbers and sizes. Nothing may panic; every refusal names a field or the
//! document; whatever compiles builds its scaled form (what `validate` does) and
//! evaluates its start. Sizes beyond the documented limits are refused before they are
//! allocated, so no case can allocate more than those limits allow.
//!
//! Deterministic: fixed seeds and case counts (times `ATLAS_FUZZ_SCALE`, default 20), no
//! failure files; `cargo test --release --test fuzz_inputs -- --nocapture` prints each
//! test's time.

mod common;

use atlas::problem::{
    AdstockKind, AdstockSpec, BudgetMode, Channel, Constraint, ConstraintKind, CurveSpec,
    ObjectiveKind, Op, Problem, Term,
};
use atlas::{Compiled, Error, Format, Scaled};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

/// How many times each test's base case count runs: `ATLAS_FUZZ_SCALE` (default 20, the
/// CI's bounded run; 1 for a quick local pass, more for a longer hunt).
fn scale() -> u32 {
    std::env::var("ATLAS_FUZZ_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

fn runner(cases: u32, seed: u64) -> TestRunner {
    TestRunner::new(Config {
        cases: cases.saturating_mul(scale()),
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    })
}

/// Parses `text` as a problem in `format` and, when it parses, compiles it and builds
/// what `validate` builds. Any panic fails the test; errors must say where.
fn exercise(text: &str, format: Format) {
    let problem = match Problem::from_text(text, format) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.reason.is_empty(), "an empty reason for {text:?}");
            return;
        }
    };
    exercise_problem(&problem);
}

fn exercise_problem(problem: &Problem) {
    match Compiled::new(problem) {
        Ok(compiled) => {
            let n = compiled.layout().len();
            assert!(n <= atlas::limits::MAX_VARIABLES);
            if let Ok(scaled) = Scaled::new(&compiled) {
                let x = scaled.unscale(scaled.start());
                let value = compiled.objective_value(&x);
                // Curves that compile stay computable between 0 and the budget.
                assert!(!value.is_nan(), "NaN objective at the start of {problem:?}");
                let _ = compiled.violations(&x, compiled.feasibility_tolerance());
            }
        }
        Err(Error::Input(e)) => assert!(!e.reason.is_empty()),
        Err(Error::Infeasible(e)) => assert!(!e.reason.is_empty()),
        Err(other) => panic!("compile gave neither bad input nor infeasible: {other}"),
    }
}

fn timed(name: &str, f: impl FnOnce()) {
    let started = std::time::Instant::now();
    f();
    eprintln!("{name}: {:.2} s", started.elapsed().as_secs_f64());
}

#[test]
fn arbitrary_bytes_never_panic() {
    timed("arbitrary bytes", || {
        let mut runner = runner(3_000, 0x1f_2026_1203);
        let bytes = prop::collection::vec(any::<u8>(), 0..400);
        runner
            .run(&(bytes, 0..3u8), |(bytes, f)| {
                let text = String::from_utf8_lossy(&bytes);
                let format = [Format::Toml, Format::Json, Format::Yaml][f as usize];
                exercise(&text, format);
                Ok(())
            })
            .unwrap();
    });
}

/// Bytes that look like problem files: fragments of the grammar, glued at random.
#[test]
fn grammar_fragments_never_panic() {
    let fragments = [
        "name = \"p\"\n",
        "budget = ",
        "periods = ",
        "[[channels]]\n",
        "name = \"tv\"\n",
        "name = \"tv\"\n",
        "response = { kind = \"hill\", beta = 1.0, k = ",
        "response = { kind = \"log\", beta = ",
        "adstock = { kind = \"geometric\", decay = 0.5, max_lag = ",
        "[[constraints]]\nkind = \"max_change\"\nmax_rate = ",
        "[[constraints]]\nkind = \"min_roi\"\nvalue = ",
        "[[constraints]]\nkind = \"share\"\nchannels = [\"tv\"]\nmin = ",
        "1e308",
        "-1e308",
        "4294967297",
        "18446744073709551615",
        "nan",
        "inf",
        "0",
        "1 }\n",
        "\n",
        "\"\u{1b}[2J\"",
        "spend_unit = ",
        "objective = \"min_spend\"\ntarget_response = ",
        "budget_mode = \"at_most\"\n",
        "discount = -0.999999\n",
    ];
    timed("grammar fragments", || {
        let mut runner = runner(3_000, 0x2f_2026_1203);
        let pieces = prop::collection::vec(0..fragments.len(), 0..40);
        runner
            .run(&pieces, |pieces| {
                let text: String = pieces.iter().map(|&i| fragments[i]).collect();
                exercise(&text, Format::Toml);
                Ok(())
            })
            .unwrap();
    });
}

/// The example problems with bytes replaced, inserted or removed.
#[test]
fn mutated_examples_never_panic() {
    let files: Vec<(String, Format)> = common::problem_files()
        .into_iter()
        .filter_map(|p| {
            let format = Format::from_path(&p).ok()?;
            Some((std::fs::read_to_string(&p).ok()?, format))
        })
        .collect();
    assert!(!files.is_empty());
    timed("mutated examples", || {
        let mut runner = runner(1_500, 0x3f_2026_1203);
        let edits =
            prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, any::<u8>()), 1..8);
        runner
            .run(&(0..files.len(), edits), |(f, edits)| {
                let (text, format) = &files[f];
                let mut bytes = text.as_bytes().to_vec();
                for (at, op, byte) in edits {
                    let i = at.index(bytes.len().max(1)).min(bytes.len());
                    match op {
                        0 if i < bytes.len() => bytes[i] = byte,
                        1 => bytes.insert(i, byte),
                        _ if i < bytes.len() => {
                            bytes.remove(i);
                        }
                        _ => {}
                    }
                }
                exercise(&String::from_utf8_lossy(&bytes), *format);
                Ok(())
            })
            .unwrap();
    });
}

/// Numbers a hostile file would write, among ordinary ones (so that some problems get
/// through to the compile step's later checks).
fn extreme() -> impl Strategy<Value = f64> {
    prop_oneof![
        30 => (-3.0f64..6.0).prop_map(|e| 10f64.powf(e)),
        1 => Just(0.0),
        1 => Just(-0.0),
        1 => Just(1.0),
        1 => Just(-1.0),
        1 => Just(f64::MIN_POSITIVE),
        1 => Just(5e-324),
        1 => Just(1e-300),
        1 => Just(1e-100),
        1 => Just(1e100),
        1 => Just(1e300),
        1 => Just(f64::MAX),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(f64::NAN),
        1 => (-30.0f64..30.0).prop_map(|e| 10f64.powf(e)),
        1 => 0.0f64..2.0,
    ]
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        20 => 1usize..6,
        1 => Just(0usize),
        1 => Just(1),
        1 => Just(2),
        1 => Just(7),
        1 => Just(100_001),
        1 => Just(1 << 32),
        1 => Just(usize::MAX),
        1 => 1usize..20,
    ]
}

fn curve() -> impl Strategy<Value = CurveSpec> {
    (0..6u8, extreme(), extreme(), extreme()).prop_map(|(kind, beta, a, b)| match kind {
        0 => CurveSpec::linear(beta),
        1 => CurveSpec::hill(beta, a, b),
        2 => CurveSpec::exponential(beta, a),
        3 => CurveSpec::logistic(beta, a),
        4 => CurveSpec::log(beta, a),
        _ => CurveSpec::power(beta, b),
    })
}

fn channel(i: usize) -> impl Strategy<Value = Channel> {
    (
        curve(),
        prop::option::weighted(0.2, extreme()),
        prop::option::weighted(0.2, extreme()),
        prop::option::weighted(0.2, extreme()),
        prop::option::weighted(0.3, (extreme(), size(), any::<bool>())),
        prop::option::weighted(0.1, extreme()),
        prop::option::weighted(0.1, extreme()),
        prop::option::weighted(0.1, extreme()),
        prop_oneof![
            Just(String::new()),
            Just("\u{1b}[2J".to_string()),
            Just("x".repeat(2000))
        ],
    )
        .prop_map(
            move |(curve, min, max, pmax, adstock, unit, active, fixed, odd)| {
                let mut c = Channel::new(format!("c{i}"), curve);
                c.min = min;
                c.max = max;
                c.period_max = pmax;
                c.adstock = adstock.map(|(decay, max_lag, normalize)| AdstockSpec {
                    kind: AdstockKind::Geometric,
                    decay: decay.min(0.999),
                    max_lag,
                    normalize,
                });
                c.spend_unit = unit;
                c.min_active = active;
                c.fixed_cost = fixed;
                if i == 2 {
                    c.name.push_str(&odd);
                }
                c
            },
        )
}

fn constraint() -> impl Strategy<Value = Constraint> {
    (
        0..6u8,
        prop::option::of(extreme()),
        prop::option::of(extreme()),
        prop::option::weighted(0.3, prop::collection::vec(size(), 0..3)),
        extreme(),
    )
        .prop_map(|(kind, min, max, periods, v)| {
            let kind = [
                ConstraintKind::Share,
                ConstraintKind::Ratio,
                ConstraintKind::Spend,
                ConstraintKind::MaxChange,
                ConstraintKind::Linear,
                ConstraintKind::MinRoi,
            ][kind as usize];
            let mut c = Constraint::new(kind);
            match kind {
                ConstraintKind::Share | ConstraintKind::Spend => {
                    c.channels = Some(vec!["c0".into()]);
                    c.periods = periods;
                    c.min = min;
                    c.max = max;
                }
                ConstraintKind::Ratio => {
                    c.channels = Some(vec!["c0".into()]);
                    c.over = Some(vec!["c1".into()]);
                    c.min = min;
                    c.max = max;
                }
                ConstraintKind::MaxChange => c.max_rate = Some(v),
                ConstraintKind::Linear => {
                    c.terms = Some(vec![Term {
                        channel: "c1".into(),
                        periods,
                        coef: v,
                    }]);
                    c.op = Some(Op::Le);
                    c.rhs = min.or(Some(1.0));
                }
                ConstraintKind::MinRoi => c.value = Some(v),
            }
            c
        })
}

fn problem() -> impl Strategy<Value = Problem> {
    (
        size(),
        extreme(),
        any::<bool>(),
        0..3u8,
        extreme(),
        extreme(),
        (channel(0), channel(1), channel(2)),
        1..4usize,
        prop::collection::vec(constraint(), 0..3),
    )
        .prop_map(
            |(periods, budget, at_most, objective, margin, discount, (a, b, c), n, constraints)| {
                let objective = [
                    ObjectiveKind::Response,
                    ObjectiveKind::Profit,
                    ObjectiveKind::MinSpend,
                ][objective as usize];
                Problem {
                    name: "fuzz".into(),
                    periods,
                    budget,
                    budget_mode: if at_most {
                        BudgetMode::AtMost
                    } else {
                        BudgetMode::Exact
                    },
                    objective,
                    margin,
                    target_response: (objective == ObjectiveKind::MinSpend).then_some(margin),
                    discount: discount - 1.0,
                    max_active_channels: None,
                    channels: [a, b, c].into_iter().take(n).collect(),
                    constraints,
                    model: None,
                }
            },
        )
}

#[test]
fn extreme_structured_problems_never_panic() {
    timed("structured problems", || {
        let mut runner = runner(4_000, 0x4f_2026_1203);
        runner
            .run(&problem(), |p| {
                exercise_problem(&p);
                // The same problem through each file format round trip.
                if let Ok(text) = serde_json::to_string(&p) {
                    exercise(&text, Format::Json);
                }
                Ok(())
            })
            .unwrap();
    });
}

/// A sanity check that the structured generator reaches compiled problems at all (a
/// fuzz that only ever makes refused inputs tests little).
#[test]
fn the_structured_generator_reaches_valid_problems() {
    let mut runner = runner(2_000, 0x5f_2026_1203);
    let compiled = std::cell::Cell::new(0u32);
    runner
        .run(&problem(), |p| {
            if Compiled::new(&p).is_ok() {
                compiled.set(compiled.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    assert!(
        compiled.get() >= 20,
        "only {} of 2000 compiled",
        compiled.get()
    );
}
