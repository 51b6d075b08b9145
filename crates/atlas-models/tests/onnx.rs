//! ONNX graphs made by real tools (examples/models/make_models.py: onnx, scikit-learn,
//! skl2onnx), read through tract. Needs the `onnx` feature.
#![cfg(feature = "onnx")]

use atlas_core::{unsupported, Compiled, Problem, Registry, SolveOptions};
use rand::{Rng, SeedableRng};

const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/models");
const PROBLEMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/problems");
/// Certified optima (examples/problems/optima.json); the tests also solve the built-in
/// problems themselves and compare.
const RETAIL_OPTIMUM: f64 = 24_923_816.0371263;
const QUICKSTART_OPTIMUM: f64 = 1_585_364.8228965725;

/// The optimum of the built-in problem, solved here by `convex` (certified).
fn builtin_optimum(file: &str) -> f64 {
    let builtin = Compiled::from_path(format!("{PROBLEMS}/{file}")).unwrap();
    let config = registry().default_config("convex").unwrap();
    let result = registry()
        .optimize(&builtin, config.as_ref(), SolveOptions::default())
        .unwrap();
    result.objective
}

fn registry() -> Registry {
    let mut r = Registry::new();
    atlas_lbfgs::register(&mut r).unwrap();
    atlas_trust_region::register(&mut r).unwrap();
    atlas_cmaes::register(&mut r).unwrap();
    atlas_tpe::register(&mut r).unwrap();
    atlas_convex::register(&mut r).unwrap();
    r
}

/// Feasible-ish random plans inside the channels' period bounds.
fn random_points(compiled: &Compiled, n: usize) -> Vec<Vec<f64>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let set = compiled.feasible_set();
    (0..n)
        .map(|_| {
            set.lower()
                .iter()
                .zip(set.upper())
                .map(|(l, u)| {
                    let hi = if u.is_finite() { *u } else { l + 1e6 };
                    l + (hi - l) * rng.random::<f64>()
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_float64_twin_computes_the_built_in_model() {
    let builtin = Compiled::from_path(format!("{PROBLEMS}/retail_q4.toml")).unwrap();
    let twin = atlas_models::compile_path(format!("{MODELS}/retail_q4_onnx.toml")).unwrap();
    let points = random_points(&builtin, 300);
    let mut out = vec![0.0; points.len()];
    twin.model().value_batch(&points, &mut out);
    for (p, v) in points.iter().zip(&out) {
        let exact = builtin.model().value(p);
        assert!((v - exact).abs() <= 1e-12 * exact.abs(), "{v} vs {exact}");
    }
    // 300 points in batches of 256: two inference calls.
    let stats = twin.model().stats().unwrap();
    assert_eq!((stats.calls, stats.cache_misses), (2, 300));
}

#[test]
fn the_float32_twin_with_scales_and_a_rank_3_input() {
    let builtin = Compiled::from_path(format!("{PROBLEMS}/quickstart.toml")).unwrap();
    let twin = atlas_models::compile_path(format!("{MODELS}/quickstart_onnx.toml")).unwrap();
    for p in random_points(&builtin, 50) {
        let (v, exact) = (twin.model().value(&p), builtin.model().value(&p));
        assert!((v - exact).abs() <= 1e-6 * exact, "{v} vs {exact}");
    }
}

#[test]
fn gradient_optimizers_reach_the_optimum_of_the_twin_through_finite_differences() {
    let twin = atlas_models::compile_path(format!("{MODELS}/retail_q4_onnx.toml")).unwrap();
    let optimum = builtin_optimum("retail_q4.toml");
    assert!(
        (optimum - RETAIL_OPTIMUM).abs() < 1e-7 * RETAIL_OPTIMUM,
        "{optimum}"
    );
    let registry = registry();
    let mut solved = Vec::new();
    for name in ["lbfgs", "trust-region"] {
        let config = registry.default_config(name).unwrap();
        if !unsupported(&twin.features(), &config.capabilities()).is_empty() {
            continue;
        }
        let result = registry
            .optimize(&twin, config.as_ref(), SolveOptions::default())
            .unwrap();
        let rel = (optimum - result.objective) / optimum;
        assert!(rel.abs() < 1e-6, "{name}: {} ({rel:e})", result.objective);
        assert!(result.max_violation <= 1e-6 * twin.budget(), "{name}");
        assert_eq!(
            result.metrics.gradient.as_deref(),
            Some("finite_differences")
        );
        solved.push(name);
    }
    assert!(solved.contains(&"lbfgs"), "{solved:?}");
}

#[test]
fn every_optimizer_that_accepts_the_quickstart_twin_reaches_its_optimum() {
    // The float64 retail twin has 104 variables, beyond what the black-box searches
    // reach in a test; the 3-variable float32 twin of quickstart is for all of them.
    let twin = atlas_models::compile_path(format!("{MODELS}/quickstart_onnx.toml")).unwrap();
    let optimum = builtin_optimum("quickstart.toml");
    assert!((optimum - QUICKSTART_OPTIMUM).abs() < 1e-7 * QUICKSTART_OPTIMUM);
    let registry = registry();
    let mut accepted = Vec::new();
    for name in registry.names() {
        let config = registry.default_config(name).unwrap();
        if !unsupported(&twin.features(), &config.capabilities()).is_empty() {
            continue;
        }
        let result = registry
            .optimize(&twin, config.as_ref(), SolveOptions::default())
            .unwrap();
        // The float32 graph itself is within ~1e-6 of the built-in model.
        let tolerance = if config.capabilities().needs_gradient {
            1e-5
        } else {
            1e-3
        };
        let rel = (optimum - result.objective) / optimum;
        assert!(
            rel.abs() < tolerance,
            "{name}: {} ({rel:e})",
            result.objective
        );
        accepted.push(name.to_string());
    }
    assert!(
        accepted.iter().any(|n| n == "lbfgs") && accepted.iter().any(|n| n == "cmaes"),
        "{accepted:?}"
    );
    assert!(
        !accepted.iter().any(|n| n == "convex"),
        "convex needs the curves: {accepted:?}"
    );
}

#[test]
fn the_mlp_exported_by_skl2onnx_loads_and_optimizes() {
    let mlp = atlas_models::compile_path(format!("{MODELS}/mlp.toml")).unwrap();
    let config = atlas_lbfgs::LbfgsConfig::default();
    let result = atlas_core::optimize(&mlp, &config, SolveOptions::default()).unwrap();
    assert!(result.max_violation <= 1e-6 * mlp.budget());
    // The reported objective is the graph's value at the returned plan.
    let x = result.flat_allocation(&mlp).unwrap();
    assert_eq!(result.objective, mlp.model().value(&x));
    // Trained on quickstart's model (R^2 0.997): close to, not at, its optimum.
    assert!((result.objective - QUICKSTART_OPTIMUM).abs() < 0.02 * QUICKSTART_OPTIMUM);
}

fn load_error(problem_text: &str) -> String {
    let problem = Problem::from_text(problem_text, atlas_core::Format::Toml).unwrap();
    let source = std::path::PathBuf::from(format!("{MODELS}/inline.toml"));
    atlas_models::compile(&problem, Some(&source))
        .unwrap_err()
        .to_string()
}

#[test]
fn shapes_that_do_not_fit_are_refused_naming_both() {
    // quickstart's graph takes [N, 3, 1]; a problem of 2 channels x 1 period does not fit.
    let text = "name = \"p\"\nbudget = 1e6\n[model]\nkind = \"onnx\"\npath = \"quickstart_f32.onnx\"\n[[channels]]\nname = \"a\"\n[[channels]]\nname = \"b\"\n";
    let e = load_error(text);
    assert!(
        e.contains("[N, 3, 1]") && e.contains("2 channels x 1 periods"),
        "{e}"
    );
    assert!(e.contains("inline.toml") && e.contains("model.path"), "{e}");
    let text = "name = \"p\"\nbudget = 1e6\n[model]\nkind = \"onnx\"\npath = \"missing.onnx\"\n[[channels]]\nname = \"a\"\n";
    let e = load_error(text);
    assert!(e.contains("missing.onnx"), "{e}");
    let text = "name = \"p\"\nbudget = 1e6\n[model]\nkind = \"onnx\"\npath = \"mlp.onnx\"\ninput = \"nope\"\n[[channels]]\nname = \"a\"\n";
    let e = load_error(text);
    assert!(
        e.contains("model.input") && e.contains("no input `nope`"),
        "{e}"
    );
}

/// quickstart's channels (no curves) with `model_lines` as the `[model]` table.
fn quickstart_with(model_lines: &str) -> atlas_core::Compiled {
    let text = std::fs::read_to_string(format!("{MODELS}/quickstart_onnx.toml")).unwrap();
    let head = text.split("[model]").next().unwrap();
    let problem = Problem::from_text(
        &format!("{head}[model]\n{model_lines}"),
        atlas_core::Format::Toml,
    )
    .unwrap();
    let source = std::path::PathBuf::from(format!("{MODELS}/inline.toml"));
    atlas_models::compile(&problem, Some(&source)).unwrap()
}

#[test]
fn input_and_output_scales_are_applied() {
    let builtin = Compiled::from_path(format!("{PROBLEMS}/quickstart.toml")).unwrap();
    let graph = "kind = \"onnx\"\npath = \"quickstart_f32.onnx\"\n";
    // The graph works in millions: without scales it sees spend in units, so its value at
    // x is the built-in model's at 1e6 x, divided by 1e6.
    let unscaled = quickstart_with(graph);
    let doubled = quickstart_with(&format!("{graph}input_scale = 1e-6\noutput_scale = 2e6\n"));
    let scaled = quickstart_with(&format!("{graph}input_scale = 1e-6\noutput_scale = 1e6\n"));
    for p in random_points(&builtin, 20) {
        let exact = builtin.model().value(&p);
        let v = scaled.model().value(&p);
        assert!((v - exact).abs() <= 1e-6 * exact, "{v} vs {exact}");
        let d = doubled.model().value(&p);
        assert!(
            (d - 2.0 * exact).abs() <= 2e-6 * exact,
            "{d} vs 2 x {exact}"
        );
        // 1 unit of spend in the graph's units is 1e6: spend / 1e6 in millions.
        let small: Vec<f64> = p.iter().map(|v| v * 1e-6).collect();
        let u = unscaled.model().value(&small);
        let exact_small = builtin.model().value(&p) * 1e-6;
        assert!(
            (u - exact_small).abs() <= 1e-6 * exact_small,
            "{u} vs {exact_small}"
        );
    }
}

#[test]
fn a_float64_graph_is_read_in_float64_and_a_float32_one_in_float32() {
    // The float64 twin resolves a change of 1e-9 relative in one coordinate; the
    // float32 one cannot (its epsilon is 1.2e-7), which is why its finite-difference
    // steps are larger.
    let retail = atlas_models::compile_path(format!("{MODELS}/retail_q4_onnx.toml")).unwrap();
    let builtin = Compiled::from_path(format!("{PROBLEMS}/retail_q4.toml")).unwrap();
    let p = random_points(&builtin, 1).remove(0);
    let mut q = p.clone();
    q[0] *= 1.0 + 1e-9;
    let (a, b) = (retail.model().value(&p), retail.model().value(&q));
    let (ea, eb) = (builtin.model().value(&p), builtin.model().value(&q));
    assert!(b != a && ((b - a) - (eb - ea)).abs() <= 1e-2 * (eb - ea).abs() + 1e-13 * ea);
    let quick = atlas_models::compile_path(format!("{MODELS}/quickstart_onnx.toml")).unwrap();
    let x = vec![300_000.0, 500_000.0, 200_000.0];
    let mut y = x.clone();
    y[2] *= 1.0 + 1e-9;
    assert_eq!(quick.model().value(&x), quick.model().value(&y));
}
