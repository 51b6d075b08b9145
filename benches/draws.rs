//! Speed of posterior models (issue 15), ratios from one run, medians of 3:
//!
//! 1. 200 draws of retail_q4 (`examples/posterior`), risk `mean`, `lbfgs` and
//!    `trust-region`: time against the single-parameter problem.
//! 2. The mean-versus-CVaR table of that posterior: each plan's mean, CVaR 10 %, p05,
//!    p50, p95 over the draws.
//! 3. 200 draws of large.toml (2,600 variables; each curve's `beta` and `k` perturbed
//!    log-normally, seed 7): the mean by `lbfgs`, time and peak memory.
//!
//! `cargo bench --bench draws`

use std::time::Instant;

use atlas::{Compiled, OptimizationResult, Problem, SolveOptions};
use rand::{Rng, SeedableRng};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn solve(compiled: &Compiled, name: &str) -> OptimizationResult {
    let registry = atlas::registry().expect("the enabled optimizers register");
    let config = registry.config(name, Default::default()).expect("config");
    registry
        .optimize(compiled, config.as_ref(), SolveOptions::default())
        .expect("solve")
}

fn timed(runs: usize, mut f: impl FnMut() -> OptimizationResult) -> (f64, OptimizationResult) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        times.push(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    (median(times), last.expect("runs >= 1"))
}

/// `problem` with a `[model]` of `draws` log-normal perturbations of its curves.
fn perturbed(path: &str, draws: usize, seed: u64, risk: &str) -> Compiled {
    let problem = Problem::from_path(path).expect("problem");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut normal = move || {
        // Box-Muller.
        let u: f64 = rng.random_range(1e-12..1.0);
        let v: f64 = rng.random_range(0.0..1.0);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    };
    let list: Vec<serde_json::Value> = (0..draws)
        .map(|_| {
            let mut draw = serde_json::Map::new();
            for ch in &problem.channels {
                let mut r = serde_json::to_value(ch.response.as_ref().unwrap()).unwrap();
                for (name, sigma) in [("beta", 0.15), ("k", 0.2)] {
                    if let Some(v) = r.get(name).and_then(|v| v.as_f64()) {
                        r[name] = serde_json::json!(v * (sigma * normal()).exp());
                    }
                }
                draw.insert(ch.name.clone(), serde_json::json!({ "response": r }));
            }
            serde_json::Value::Object(draw)
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("atlas-bench-draws-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("posterior.json"),
        serde_json::json!({ "draws": list }).to_string(),
    )
    .unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let at = text.find("[[channels]]").unwrap();
    let model = format!("[model]\nkind = \"draws\"\npath = \"posterior.json\"\nrisk = {risk}\n\n");
    std::fs::write(
        dir.join("p.toml"),
        format!("{}{model}{}", &text[..at], &text[at..]),
    )
    .unwrap();
    atlas::load_problem(dir.join("p.toml")).expect("posterior problem")
}

fn main() {
    let plain = Compiled::from_path(format!("{ROOT}/examples/problems/retail_q4.toml")).unwrap();
    let post_path = format!("{ROOT}/examples/posterior/retail_q4_posterior.toml");
    let mean = atlas::load_problem(&post_path).unwrap();
    for name in ["lbfgs", "trust-region"] {
        let (t1, r1) = timed(3, || solve(&plain, name));
        let (t200, r200) = timed(3, || solve(&mean, name));
        println!(
            "retail_q4, {name}: 1 parameter set {t1:.3} s ({} evaluations), 200 draws (mean) {t200:.3} s ({} evaluations): {:.1}x",
            r1.metrics.evaluations,
            r200.metrics.evaluations,
            t200 / t1
        );
    }

    let text = std::fs::read_to_string(&post_path).unwrap();
    let dir = std::env::temp_dir().join(format!("atlas-bench-cvar-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        format!("{ROOT}/examples/posterior/retail_q4_posterior.json"),
        dir.join("retail_q4_posterior.json"),
    )
    .unwrap();
    std::fs::write(
        dir.join("p.toml"),
        text.replace("risk = \"mean\"", "risk = { cvar = 0.1 }"),
    )
    .unwrap();
    let cvar = atlas::load_problem(dir.join("p.toml")).unwrap();
    let a = solve(&mean, "lbfgs");
    let b = solve(&cvar, "lbfgs");
    println!("\n200 draws of retail_q4, lbfgs: the plan of each risk, over the draws");
    println!(
        "{:<12} {:>14} {:>14} {:>14} {:>14} {:>14}",
        "plan", "mean", "cvar 10%", "p05", "p50", "p95"
    );
    for (name, r) in [("mean", &a), ("cvar 0.1", &b)] {
        let k = r.risk.unwrap();
        println!(
            "{name:<12} {:>14.1} {:>14.1} {:>14.1} {:>14.1} {:>14.1}",
            k.mean, k.cvar_10, k.p05, k.p50, k.p95
        );
    }

    let large = format!("{ROOT}/examples/problems/large.toml");
    let plain_large = Compiled::from_path(&large).unwrap();
    let post_large = perturbed(&large, 200, 7, "\"mean\"");
    let (t1, _) = timed(1, || solve(&plain_large, "lbfgs"));
    let (t200, r) = timed(1, || solve(&post_large, "lbfgs"));
    println!(
        "\nlarge.toml (2,600 variables), lbfgs: 1 parameter set {t1:.2} s, 200 draws (mean) {t200:.2} s ({:.1}x), peak memory {:.0} MiB, status {}",
        t200 / t1,
        r.metrics.peak_memory_mb,
        r.status
    );
}
