//! `atlas sweep` and `atlas optimize --cache` end to end, through the binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn atlas(args: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(args)
        .output()
        .expect("run atlas");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn problem(name: &str) -> String {
    common::problems_dir()
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atlas-sweep-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn scenario_file(dir: &Path, body: &str) -> String {
    let path = dir.join("plans.toml");
    std::fs::write(
        &path,
        format!("base = {:?}\n{body}", problem("quickstart.toml")),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn a_budget_sweep_prints_a_table_json_and_csv() {
    let (code, out, err) = atlas(&[
        "sweep",
        &problem("retail_q4.toml"),
        "--budgets",
        "0.5x:2x:7",
        "-O",
        "convex",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("retail-q4 · sweep of 7 scenarios · optimizer convex"),
        "{out}"
    );
    for name in ["budget=6000000", "budget=12000000", "budget=24000000"] {
        assert!(out.contains(name), "{out}");
    }
    let (code, out, _) = atlas(&[
        "sweep",
        &problem("retail_q4.toml"),
        "--budgets",
        "0.5x:2x:7",
        "-O",
        "convex",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let s = v["scenarios"].as_array().unwrap();
    assert_eq!(s.len(), 7);
    assert_eq!(v["base"], "retail-q4");
    assert_eq!(v["optimizer"], "convex");
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);
    // The certified optimum of the base budget (optima.json).
    let base = s.iter().find(|x| x["name"] == "budget=12000000").unwrap();
    assert!((base["objective"].as_f64().unwrap() - 24_923_816.04).abs() < 0.01);
    for x in s {
        for field in [
            "budget",
            "status",
            "objective",
            "bound",
            "total_spend",
            "totals",
            "marginal_return",
            "warm_start",
            "cache",
            "wall_time_s",
            "result",
        ] {
            assert!(x.get(field).is_some(), "{field} missing");
        }
        assert_eq!(x["cache"], "off");
        assert_eq!(x["result"]["cache"], "off");
    }
    let (code, out, _) = atlas(&[
        "sweep",
        &problem("quickstart.toml"),
        "--budgets",
        "5e5,1e6",
        "-O",
        "lbfgs",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "name,budget,status,objective,bound,total_spend,marginal_return,wall_time_s,total:tv,total:digital,total:radio"
    );
    assert_eq!(lines.len(), 3);
    assert!(
        lines[1].starts_with("budget=500000,500000,converged,"),
        "{}",
        lines[1]
    );
}

#[test]
fn bad_input_exits_2_before_any_work_and_writes_nothing() {
    let dir = scratch("bad");
    let output = dir.join("sweep.json");
    let out_arg = output.to_str().unwrap();
    let unknown = scenario_file(
        &dir,
        "[[scenarios]]\nname = \"plan\"\n[[scenarios]]\nname = \"tv capped\"\nchannels.tvv = { max = 1.0 }\n",
    );
    let (code, _, err) = atlas(&["sweep", &unknown, "--output", out_arg]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("scenarios[1] (\"tv capped\"): channels.tvv: unknown channel `tvv` (did you mean `tv`?)"),
        "{err}"
    );
    let periods = scenario_file(&dir, "[[scenarios]]\nname = \"a year\"\nperiods = 52\n");
    let (code, _, err) = atlas(&["sweep", &periods, "--output", out_arg]);
    assert_eq!(code, 2);
    assert!(
        err.contains("scenarios[0] (\"a year\"): periods: not patchable"),
        "{err}"
    );
    let qs = problem("quickstart.toml");
    for (grid, expect) in [
        ("1x:2x:0", "--budgets: N must be >= 1 (got 0)"),
        (
            "2x:1x:3",
            "--budgets: START 2x (2000000) is above STOP 1x (1000000)",
        ),
        ("nan:1x:3", "--budgets: `nan` is not a finite number"),
        ("1x:inf:3", "--budgets: `inf` is not a finite number"),
    ] {
        let (code, _, err) = atlas(&["sweep", &qs, "--budgets", grid, "--output", out_arg]);
        assert_eq!(code, 2, "{grid}: {err}");
        assert!(err.contains(expect), "{grid}: {err}");
    }
    let (code, _, err) = atlas(&["sweep", &qs, "--output", out_arg]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--budgets: required with a problem file"),
        "{err}"
    );
    let (code, _, err) = atlas(&["sweep", &qs, "--budgets", "1x", "--jobs", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("--jobs: must be >= 1"), "{err}");
    assert!(!output.exists(), "no output file after bad input");
    assert!(!Path::new("c.svg").exists());
}

#[test]
fn plot_draws_the_budget_curve_and_the_channel_totals() {
    let dir = scratch("plot");
    let svg_path = dir.join("curve.svg");
    let json_path = dir.join("sweep.json");
    let qs = problem("quickstart.toml");
    let (code, _, err) = atlas(&[
        "sweep",
        &qs,
        "--budgets",
        "0.5x:1.1x:4",
        "--plot",
        svg_path.to_str().unwrap(),
        "--output",
        json_path.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let svg = std::fs::read_to_string(&svg_path).expect("the SVG is written");
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..80.min(svg.len())]
    );
    assert!(svg.trim_end().ends_with("</svg>"), "a whole SVG document");
    let sweep: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    // Every channel of the sweep is named in the picture (the totals chart's legend).
    for channel in sweep["scenarios"][0]["totals"].as_object().unwrap().keys() {
        assert!(
            svg.contains(channel.as_str()),
            "channel {channel} missing from the plot"
        );
    }
    assert!(
        svg.contains("<path") || svg.contains("<polyline"),
        "the curves are drawn"
    );
}

#[test]
fn an_infeasible_scenario_is_reported_the_others_solved_and_the_exit_status_is_1() {
    let dir = scratch("infeasible");
    let file = scenario_file(
        &dir,
        r#"
[[scenarios]]
name = "plan"
[[scenarios]]
name = "tv heavy"
add_constraints = [ { kind = "share", channels = ["tv"], min = 0.6 } ]
[[scenarios]]
name = "budget +20%"
budget_factor = 1.2
"#,
    );
    let output = dir.join("sweep.json");
    let (code, out, err) = atlas(&["sweep", &file, "--output", output.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("1 of 3 scenarios failed: tv heavy (infeasible)"),
        "{err}"
    );
    assert!(out.contains("failed (1):"), "{out}");
    assert!(out.contains("constraints[1] (share of tv >= 0.6)"), "{out}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    let names: Vec<&str> = v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["plan", "budget +20%"]);
    assert_eq!(v["errors"][0]["name"], "tv heavy");
    assert_eq!(v["errors"][0]["kind"], "infeasible");
}

#[test]
fn an_unwritable_cache_folder_is_a_warning_and_the_sweep_runs() {
    let dir = scratch("unwritable");
    let file = dir.join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let cache = file.join("cache");
    let (code, out, err) = atlas(&[
        "sweep",
        &problem("quickstart.toml"),
        "--budgets",
        "0.5x:1x:3",
        "--cache",
        cache.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("warning: cache folder").count(), 1, "{err}");
    assert!(err.contains("is not writable"), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["scenarios"].as_array().unwrap().len(), 3);
}

#[test]
fn two_sweeps_share_a_cache_folder_at_once() {
    let dir = scratch("concurrent");
    let cache = dir.join("cache");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args([
                "sweep",
                &problem("retail_q4.toml"),
                "--budgets",
                "0.5x:2x:16",
                "-O",
                "lbfgs",
                "--cache",
                cache.to_str().unwrap(),
                "--format",
                "json",
                "--quiet",
                "--jobs",
                "1",
            ])
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap(), b.join().unwrap())
    });
    for o in [&a, &b] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let ra: Value = serde_json::from_slice(&a.stdout).unwrap();
    let rb: Value = serde_json::from_slice(&b.stdout).unwrap();
    // Both complete with the same answers, whichever solved or read each point.
    for (x, y) in ra["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .zip(rb["scenarios"].as_array().unwrap())
    {
        let (fx, fy) = (
            x["objective"].as_f64().unwrap(),
            y["objective"].as_f64().unwrap(),
        );
        assert!(
            (fx - fy).abs() <= 1e-9 * fx.abs(),
            "{} {fx} {fy}",
            x["name"]
        );
    }
    // No torn file and no temporary left: 16 whole entries, each under its own key.
    let entries: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 16, "{entries:?}");
    for path in entries {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            v["key"].as_str().unwrap(),
            path.file_stem().unwrap().to_str().unwrap()
        );
        assert_eq!(v["result"]["problem"], "retail-q4");
    }
    // A third run is answered from the folder.
    let c = spawn();
    let rc: Value = serde_json::from_slice(&c.stdout).unwrap();
    assert!(rc["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["cache"] == "hit"));
}

#[test]
fn optimize_answers_from_the_cache_the_second_time() {
    let dir = scratch("optimize");
    let cache = dir.join("cache");
    let args = [
        "optimize",
        &problem("retail_q4.toml"),
        "-O",
        "convex",
        "--format",
        "json",
        "--cache",
        cache.to_str().unwrap(),
    ];
    let (code, first, err) = atlas(&args);
    assert_eq!(code, 0, "{err}");
    let (code, second, err) = atlas(&args);
    assert_eq!(code, 0, "{err}");
    let a: Value = serde_json::from_str(&first).unwrap();
    let b: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(a["cache"], "miss");
    assert_eq!(b["cache"], "hit");
    assert_eq!(a["allocation"], b["allocation"]);
    assert_eq!(a["objective"], b["objective"]);
    // Without --cache the result says nothing about a cache.
    let (_, plain, _) = atlas(&["optimize", &problem("quickstart.toml"), "--format", "json"]);
    let p: Value = serde_json::from_str(&plain).unwrap();
    assert!(p.get("cache").is_none());
    #[cfg(not(feature = "redis"))]
    {
        let (code, _, err) = atlas(&[
            "optimize",
            &problem("quickstart.toml"),
            "--cache",
            "redis://127.0.0.1:6379",
        ]);
        assert_eq!(code, 2);
        assert!(err.contains("no Redis support"), "{err}");
    }
}
