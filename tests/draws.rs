//! Optimizing over a posterior (`[model] kind = "draws"`, models.md section 4): one draw
//! and identical draws are the plain problem, CVaR at 1 is the mean, the median of two
//! ordered draws lies between their optima, errors name the draw, and on the committed
//! 200-draw posterior of retail_q4 the CVaR plan is safer in the tail than the mean plan.

mod common;

use std::path::{Path, PathBuf};

use atlas::{Compiled, Error, OptimizationResult, Problem, Registry, SolveOptions};
use serde_json::{json, Map, Value};

fn registry() -> Registry {
    atlas::registry().expect("registry")
}

fn solve(reg: &Registry, compiled: &Compiled, name: &str, settings: Value) -> OptimizationResult {
    let settings: Map<String, Value> = settings.as_object().cloned().unwrap_or_default();
    let config = reg.config(name, settings).expect("config");
    let r = reg
        .optimize(compiled, config.as_ref(), SolveOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    compiled.check_result(&r).expect("feasible");
    r
}

fn retail() -> (PathBuf, String, Problem) {
    let path = common::problems_dir().join("retail_q4.toml");
    let text = std::fs::read_to_string(&path).expect("retail_q4.toml");
    let problem = Problem::from_path(&path).expect("parses");
    (path, text, problem)
}

/// One draw per entry of `draws`: each channel's own response and adstock, with the
/// curve's parameters changed by `edit(draw, channel, parameter, value)`.
fn posterior(
    problem: &Problem,
    draws: usize,
    edit: impl Fn(usize, usize, &str, f64) -> f64,
) -> Value {
    let list: Vec<Value> = (0..draws)
        .map(|d| {
            let mut draw = Map::new();
            for (c, ch) in problem.channels.iter().enumerate() {
                let mut response = serde_json::to_value(ch.response.as_ref().unwrap()).unwrap();
                for (name, v) in response.as_object_mut().unwrap().iter_mut() {
                    if let Some(x) = v.as_f64() {
                        *v = json!(edit(d, c, name, x));
                    }
                }
                let mut entry = Map::new();
                entry.insert("response".into(), response);
                if let Some(a) = &ch.adstock {
                    entry.insert("adstock".into(), serde_json::to_value(a).unwrap());
                }
                draw.insert(ch.name.clone(), Value::Object(entry));
            }
            Value::Object(draw)
        })
        .collect();
    json!({ "draws": list })
}

/// Writes `text` with a `[model]` table of `posterior` (risk `risk`) into a fresh folder.
fn with_posterior(name: &str, text: &str, posterior: &Value, risk: &str) -> PathBuf {
    let dir = common::temp_dir(name);
    std::fs::write(dir.join("posterior.json"), posterior.to_string()).unwrap();
    let model = format!("[model]\nkind = \"draws\"\npath = \"posterior.json\"\nrisk = {risk}\n\n");
    let at = text.find("[[channels]]").expect("channels");
    let problem = format!("{}{model}{}", &text[..at], &text[at..]);
    let path = dir.join("problem.toml");
    std::fs::write(&path, problem).unwrap();
    path
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1.0)
}

fn best_known() -> f64 {
    common::optima()["retail_q4.toml"]["best_known"]
        .as_f64()
        .unwrap()
}

#[test]
fn one_draw_and_identical_draws_are_the_plain_problem() {
    let reg = registry();
    let (_, text, problem) = retail();
    let best = best_known();
    for draws in [1, 5] {
        let post = posterior(&problem, draws, |_, _, _, v| v);
        let path = with_posterior(&format!("same{draws}"), &text, &post, "\"mean\"");
        let compiled = atlas::load_problem(&path).unwrap();
        for name in ["lbfgs", "trust-region"] {
            let r = solve(&reg, &compiled, name, json!({}));
            assert!(
                rel(r.objective, best) <= 1e-6,
                "{name}, {draws} draws: {} vs {best}",
                r.objective
            );
            let risk = r.risk.expect("a risk block on a posterior's result");
            assert_eq!(risk.draws, draws);
            // Every draw is the same: the spread is nil.
            for v in [risk.mean, risk.cvar_10, risk.p05, risk.p50, risk.p95] {
                assert!(rel(v, r.objective) <= 1e-12, "{v} vs {}", r.objective);
            }
        }
        // CVaR and quantiles of identical draws are the plain problem too.
        let path = with_posterior(&format!("samecvar{draws}"), &text, &post, "{ cvar = 0.1 }");
        let compiled = atlas::load_problem(&path).unwrap();
        let r = solve(&reg, &compiled, "lbfgs", json!({}));
        assert!(
            rel(r.objective, best) <= 1e-6,
            "cvar, {draws} draws: {} vs {best}",
            r.objective
        );
    }
}

#[test]
fn convex_refuses_posteriors_by_name_and_says_who_can() {
    let reg = registry();
    let (_, text, problem) = retail();
    for risk in ["\"mean\"", "{ cvar = 0.1 }", "{ quantile = 0.05 }"] {
        let post = posterior(&problem, 2, |_, _, _, v| v);
        let path = with_posterior("refuse", &text, &post, risk);
        let compiled = atlas::load_problem(&path).unwrap();
        let config = reg.config("convex", Map::new()).unwrap();
        let e = reg
            .optimize(&compiled, config.as_ref(), SolveOptions::default())
            .unwrap_err();
        let Error::Unsupported {
            features,
            alternatives,
            ..
        } = &e
        else {
            panic!("{e}")
        };
        assert!(
            features.iter().any(|f| f.contains("posterior of 2 draws")),
            "{e}"
        );
        assert!(
            alternatives.iter().any(|a| a == "lbfgs"),
            "{alternatives:?}"
        );
        // `auto` picks a gradient method for a posterior.
        let auto = reg.config("auto", Map::new()).unwrap();
        let r = reg
            .optimize(&compiled, auto.as_ref(), SolveOptions::default())
            .unwrap();
        assert_eq!(
            r.selected.as_ref().map(|s| s.optimizer.as_str()),
            Some("lbfgs")
        );
    }
}

#[test]
fn cvar_at_one_is_the_mean() {
    let reg = registry();
    let (_, text, problem) = retail();
    // Three different draws (betas scaled, half-saturations shifted).
    let post = posterior(&problem, 3, |d, c, name, v| match name {
        "beta" => v * (0.8 + 0.2 * ((d + c) % 3) as f64),
        "k" => v * (1.2 - 0.2 * ((d * 2 + c) % 3) as f64),
        _ => v,
    });
    let mean = atlas::load_problem(with_posterior("cvar1a", &text, &post, "\"mean\"")).unwrap();
    let cvar =
        atlas::load_problem(with_posterior("cvar1b", &text, &post, "{ cvar = 1.0 }")).unwrap();
    let x = mean
        .feasible_set()
        .lower()
        .iter()
        .map(|l| l + 1000.0)
        .collect::<Vec<_>>();
    assert!(rel(mean.objective_value(&x), cvar.objective_value(&x)) <= 1e-14);
    let a = solve(&reg, &mean, "lbfgs", json!({}));
    let b = solve(&reg, &cvar, "lbfgs", json!({}));
    assert!(
        rel(a.objective, b.objective) <= 1e-9,
        "{} vs {}",
        a.objective,
        b.objective
    );
}

#[test]
fn the_median_of_two_ordered_draws_lies_between_their_optima() {
    let reg = registry();
    let (_, text, problem) = retail();
    // Draw 1 responds more everywhere: betas x1.3, half-saturations x0.8 (every curve of
    // retail_q4 grows with beta and shrinks with k).
    let edit = |d: usize, _: usize, name: &str, v: f64| match (d, name) {
        (1, "beta") => v * 1.3,
        (1, "k") => v * 0.8,
        _ => v,
    };
    let post = posterior(&problem, 2, edit);
    let optimum = |d: usize| {
        let one = posterior(&problem, 1, |_, c, name, v| edit(d, c, name, v));
        let c = atlas::load_problem(with_posterior(&format!("draw{d}"), &text, &one, "\"mean\""))
            .unwrap();
        solve(&reg, &c, "lbfgs", json!({})).objective
    };
    let (low, high) = (optimum(0), optimum(1));
    assert!(low < high);
    let median =
        atlas::load_problem(with_posterior("median", &text, &post, "{ quantile = 0.5 }")).unwrap();
    for name in ["lbfgs", "trust-region"] {
        let r = solve(&reg, &median, name, json!({}));
        assert!(
            r.objective > low && r.objective < high,
            "{name}: {low} < {} < {high}",
            r.objective
        );
        let risk = r.risk.unwrap();
        assert!(rel(risk.p50, r.objective) <= 1e-12);
    }
}

#[test]
fn black_box_optimizers_take_every_risk() {
    let reg = registry();
    let path = common::problems_dir().join("quickstart.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let problem = Problem::from_path(&path).unwrap();
    let post = posterior(&problem, 20, |d, c, name, v| match name {
        "beta" => v * (0.7 + 0.03 * ((d * 7 + c * 3) % 20) as f64),
        _ => v,
    });
    for risk in ["\"mean\"", "{ cvar = 0.2 }", "{ quantile = 0.1 }"] {
        let compiled = atlas::load_problem(with_posterior("blackbox", &text, &post, risk)).unwrap();
        let local = solve(&reg, &compiled, "lbfgs", json!({}));
        let cmaes = solve(&reg, &compiled, "cmaes", json!({ "seed": 1 }));
        // Black-box answers are feasible, carry the block, and do not beat the gradient
        // method on these concave draws by more than rounding (nor fall far behind).
        assert!(cmaes.risk.is_some());
        assert!(
            cmaes.objective <= local.objective * (1.0 + 1e-6),
            "{risk}: {} vs {}",
            cmaes.objective,
            local.objective
        );
        assert!(
            cmaes.objective >= local.objective * (1.0 - 1e-2),
            "{risk}: {} vs {}",
            cmaes.objective,
            local.objective
        );
    }
}

#[test]
fn the_cvar_plan_is_safer_in_the_tail_than_the_mean_plan() {
    let reg = registry();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/posterior");
    let mean = atlas::load_problem(dir.join("retail_q4_posterior.toml")).unwrap();
    let text = std::fs::read_to_string(dir.join("retail_q4_posterior.toml")).unwrap();
    let cvar_text = text.replace("risk = \"mean\"", "risk = { cvar = 0.1 }");
    assert_ne!(text, cvar_text);
    let tmp = common::temp_dir("cvarplan");
    std::fs::copy(
        dir.join("retail_q4_posterior.json"),
        tmp.join("retail_q4_posterior.json"),
    )
    .unwrap();
    std::fs::write(tmp.join("p.toml"), cvar_text).unwrap();
    let cvar = atlas::load_problem(tmp.join("p.toml")).unwrap();
    let a = solve(&reg, &mean, "lbfgs", json!({}));
    let b = solve(&reg, &cvar, "lbfgs", json!({}));
    let (ra, rb) = (a.risk.unwrap(), b.risk.unwrap());
    assert_eq!((ra.draws, rb.draws), (200, 200));
    // Each plan is best at what it optimized (to the smoothing's bound, 1e-6).
    assert!(ra.mean >= rb.mean * (1.0 - 1e-7), "{ra:?} {rb:?}");
    assert!(rb.cvar_10 >= ra.cvar_10 * (1.0 - 1e-6), "{ra:?} {rb:?}");
    assert!(rel(b.objective, rb.cvar_10) <= 1e-12);
    // The contract's claim: the CVaR plan's 5th percentile is at least the mean plan's.
    assert!(rb.p05 >= ra.p05, "{ra:?} {rb:?}");
    // Trust-region agrees with lbfgs on both.
    let c = solve(&reg, &mean, "trust-region", json!({}));
    assert!(
        rel(c.objective, a.objective) <= 1e-6,
        "{} vs {}",
        c.objective,
        a.objective
    );
    let d = solve(&reg, &cvar, "trust-region", json!({}));
    assert!(
        rel(d.objective, b.objective) <= 1e-5,
        "{} vs {}",
        d.objective,
        b.objective
    );
}

#[test]
fn errors_name_the_file_draw_channel_and_field() {
    let (_, text, problem) = retail();
    let post = posterior(&problem, 20, |d, c, name, v| {
        if d == 17 && c == 0 && name == "k" {
            -1.0
        } else {
            v
        }
    });
    let path = with_posterior("bad", &text, &post, "\"mean\"");
    let e = atlas::load_problem(&path).unwrap_err().to_string();
    assert!(
        e.contains("posterior.json: draws[17].tv.response.k: must be > 0"),
        "{e}"
    );
    assert_eq!(atlas::load_problem(&path).unwrap_err().exit_code(), 2);

    let mut post = posterior(&problem, 2, |_, _, _, v| v);
    post["draws"][1]["tvv"] = post["draws"][1]["tv"].clone();
    let e = atlas::load_problem(with_posterior("bad2", &text, &post, "\"mean\""))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("draws[1].tvv: unknown channel") && e.contains("did you mean `tv`"),
        "{e}"
    );

    let mut post = posterior(&problem, 2, |_, _, _, v| v);
    post["draws"][0]["radio"]["adstock"]["decay"] = json!(1.5);
    let e = atlas::load_problem(with_posterior("bad3", &text, &post, "\"mean\""))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("draws[0].radio.adstock.decay: must be in [0, 1)"),
        "{e}"
    );

    let post = posterior(&problem, 2, |_, _, _, v| v);
    let e = atlas::load_problem(with_posterior("bad4", &text, &post, "{ cvar = 0.0 }"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.risk.cvar"), "{e}");
    let e = atlas::load_problem(with_posterior(
        "bad5",
        &text,
        &json!({"draws": []}),
        "\"mean\"",
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("draws: empty"), "{e}");
}

#[test]
fn a_csv_posterior_is_the_json_one() {
    let (_, text, problem) = retail();
    let edit = |d: usize, c: usize, name: &str, v: f64| match name {
        "beta" => v * (1.0 + 0.1 * ((d + c) % 3) as f64),
        "k" => v * (1.0 - 0.05 * ((d * 3 + c) % 4) as f64),
        _ => v,
    };
    let post = posterior(&problem, 4, edit);
    let json_path = with_posterior("csvjson", &text, &post, "{ cvar = 0.5 }");
    // The same draws as CSV columns `channel.response.PARAM`, with one decay column.
    let mut header = Vec::new();
    for ch in &problem.channels {
        for p in ch.response.as_ref().unwrap().kind.parameters() {
            header.push(format!("{}.response.{p}", ch.name));
        }
    }
    header.push("radio.adstock.decay".to_string());
    let mut rows = vec![header.join(",")];
    for d in 0..4 {
        let mut cells = Vec::new();
        for (c, ch) in problem.channels.iter().enumerate() {
            let r = serde_json::to_value(ch.response.as_ref().unwrap()).unwrap();
            for p in ch.response.as_ref().unwrap().kind.parameters() {
                cells.push(format!("{}", edit(d, c, p, r[*p].as_f64().unwrap())));
            }
        }
        cells.push("0.35".to_string());
        rows.push(cells.join(","));
    }
    let dir = json_path.parent().unwrap();
    std::fs::write(dir.join("posterior.csv"), rows.join("\n") + "\n").unwrap();
    let csv_text = std::fs::read_to_string(&json_path)
        .unwrap()
        .replace("posterior.json", "posterior.csv");
    std::fs::write(dir.join("csv.toml"), csv_text).unwrap();
    let a = atlas::load_problem(&json_path).unwrap();
    let b = atlas::load_problem(dir.join("csv.toml")).unwrap();
    let x: Vec<f64> = a
        .feasible_set()
        .lower()
        .iter()
        .map(|l| l + 5000.0)
        .collect();
    assert_eq!(a.objective_value(&x), b.objective_value(&x));
    assert_eq!(a.risk(&x), b.risk(&x));

    // A bad cell names the draw, the channel and the field.
    let bad = rows.join("\n").replacen("0.35", "abc", 1);
    std::fs::write(dir.join("posterior.csv"), bad).unwrap();
    let e = atlas::load_problem(dir.join("csv.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("posterior.csv: draws[0].radio.adstock.decay"),
        "{e}"
    );
}

#[test]
fn evaluate_prints_the_spread_of_any_plan() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/posterior");
    let problem = dir.join("retail_q4_posterior.toml");
    let tmp = common::temp_dir("evaluate");
    let plan = tmp.join("plan.json");
    // The plain problem's plan, judged over the posterior.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["optimize", "-O", "lbfgs", "--format", "json", "-o"])
        .arg(&plan)
        .arg(common::problems_dir().join("retail_q4.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        plain.get("risk").is_none(),
        "no risk block without a posterior"
    );
    let run = |format: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args(["evaluate", "--format", format, "--allocation"])
            .arg(&plan)
            .arg(&problem)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let table = run("table");
    for label in ["200 draws", "mean", "cvar 10%", "p05", "p50", "p95"] {
        assert!(table.contains(label), "{label}: {table}");
    }
    let json: Value = serde_json::from_str(&run("json")).unwrap();
    let risk = &json["risk"];
    assert_eq!(risk["draws"], 200);
    let (p05, p50, p95) = (
        risk["p05"].as_f64().unwrap(),
        risk["p50"].as_f64().unwrap(),
        risk["p95"].as_f64().unwrap(),
    );
    assert!(p05 < p50 && p50 < p95, "{risk}");
    // The worst tenth's mean lies below the median.
    assert!(risk["cvar_0.1"].as_f64().unwrap() < p50, "{risk}");
    // The objective of a mean posterior is the mean over the draws.
    assert_eq!(json["objective"], risk["mean"]);
}

#[test]
fn a_sweep_over_a_posterior_gives_the_mean_curve_with_its_band() {
    let problem =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/posterior/retail_q4_posterior.toml");
    let tmp = common::temp_dir("sweep");
    let sweep = tmp.join("sweep.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args([
            "sweep",
            "--budgets",
            "0.8x:1.2x:3",
            "--jobs",
            "1",
            "-O",
            "lbfgs",
            "-o",
        ])
        .arg(&sweep)
        .arg(&problem)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&sweep).unwrap()).unwrap();
    let scenarios = file["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 3);
    let mut last = f64::NEG_INFINITY;
    for s in scenarios {
        let risk = &s["result"]["risk"];
        let (p05, mean, p95) = (
            risk["p05"].as_f64().unwrap(),
            risk["mean"].as_f64().unwrap(),
            risk["p95"].as_f64().unwrap(),
        );
        assert_eq!(s["objective"].as_f64().unwrap(), mean);
        assert!(p05 < mean && mean < p95, "{risk}");
        // More budget, more response on average.
        assert!(mean > last);
        last = mean;
    }
    let report = tmp.join("report.html");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["report", "-q", "-o"])
        .arg(&report)
        .arg(&sweep)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("5–95 % of the posterior draws"),
        "the band is drawn"
    );
}
