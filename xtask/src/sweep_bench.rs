//! `cargo xtask bench sweep`: the speed of `atlas sweep` (issue 13), measured in one run
//! with medians:
//!
//! 1. a 50-point budget curve (0.5x to 2x) on `large.toml`: warm-started against cold
//!    totals with `lbfgs` and `convex`, and `--jobs 2` against `--jobs 1`;
//! 2. the same sweep rerun from a warm folder cache against solving it, and a single
//!    cached `atlas optimize` (process wall and CPU time);
//! 3. the same curve on `retail_q4.toml` beside the Python tools (`peers.py sweep`: SciPy
//!    SLSQP in a loop, CVXPY with the budget as a Parameter), with the quality of every
//!    peer's points against Atlas's certified ones.
//!
//! Writes `target/bench/sweep.json` and prints the figures.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context, Result};

const HELP: &str = "\
cargo xtask bench sweep [OPTIONS]

Builds `atlas` in release mode and measures `atlas sweep` (medians of --runs runs):
warm against cold starts and --jobs 2 against --jobs 1 on a 50-point curve of large.toml,
a warm folder cache against solving, a single cached `atlas optimize`, and the same curve
on retail_q4.toml beside SciPy SLSQP and CVXPY (benches/peers/peers.py sweep).

options:
  --runs N          runs per measurement (default 3)
  --points N        budget points per curve (default 50)
  --python PATH     Python for the peers (default $ATLAS_PYTHON, else python3)
  --no-peers        skip the Python peers
  --out DIR         output directory (default target/bench)
";

struct Options {
    runs: usize,
    points: usize,
    python: PathBuf,
    peers: bool,
    out: PathBuf,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        runs: 3,
        points: 50,
        python: std::env::var_os("ATLAS_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("python3")),
        peers: true,
        out: crate::workspace_root().join("target/bench"),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--runs" => o.runs = value("--runs")?.parse().context("--runs: a whole number")?,
            "--points" => {
                o.points = value("--points")?
                    .parse()
                    .context("--points: a whole number")?
            }
            "--python" => o.python = PathBuf::from(value("--python")?),
            "--out" => o.out = PathBuf::from(value("--out")?),
            "--no-peers" => o.peers = false,
            other => bail!("unknown option `{other}`\n\n{HELP}"),
        }
    }
    if o.runs == 0 || o.points < 2 {
        bail!("--runs must be >= 1 and --points >= 2");
    }
    Ok(o)
}

/// The median of `v` (the mean of the two middle values for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// CPU seconds (user + system) of this process's waited-for children so far, from
/// `/proc/self/stat` (Linux; clock ticks of 1/100 s).
fn children_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 16 and 17 of proc(5), counted from 1 with `state` as field 3.
    let cutime: f64 = fields.get(13)?.parse().ok()?;
    let cstime: f64 = fields.get(14)?.parse().ok()?;
    Some((cutime + cstime) / 100.0)
}

struct Atlas {
    bin: PathBuf,
    root: PathBuf,
}

/// One run of `atlas sweep`: the sweep's own wall time, the process's wall and CPU
/// time, and its result.
struct SweepRun {
    wall_s: f64,
    process_s: f64,
    cpu_s: f64,
    result: serde_json::Value,
}

impl Atlas {
    fn sweep(&self, problem: &str, points: usize, extra: &[&str]) -> Result<SweepRun> {
        let budgets = format!("0.5x:2x:{points}");
        let problem = self.root.join("examples/problems").join(problem);
        let started = Instant::now();
        let cpu_before = children_cpu_s().unwrap_or(f64::NAN);
        let out = Command::new(&self.bin)
            .current_dir(&self.root)
            .arg("sweep")
            .arg(&problem)
            .args(["--budgets", &budgets, "--format", "json", "--quiet"])
            .args(extra)
            .output()
            .context("cannot run atlas")?;
        let process_s = started.elapsed().as_secs_f64();
        let cpu_s = children_cpu_s().unwrap_or(f64::NAN) - cpu_before;
        if !out.status.success() {
            bail!(
                "atlas sweep {} {}: {}",
                problem.display(),
                extra.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let result: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("atlas sweep printed no JSON")?;
        let wall_s = result["wall_time_s"].as_f64().context("no wall_time_s")?;
        Ok(SweepRun {
            wall_s,
            process_s,
            cpu_s,
            result,
        })
    }

    /// The medians of the sweep's wall time and of the process's CPU time over `runs`
    /// runs, and the last result.
    fn timed(
        &self,
        label: &str,
        problem: &str,
        o: &Options,
        extra: &[&str],
    ) -> Result<(Timing, SweepRun)> {
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        let mut last = None;
        for _ in 0..o.runs {
            let r = self.sweep(problem, o.points, extra)?;
            walls.push(r.wall_s);
            cpus.push(r.cpu_s);
            last = Some(r);
        }
        let t = Timing {
            wall_s: median(walls.clone()),
            cpu_s: median(cpus),
        };
        eprintln!(
            "  {label:<44} {:>9.3} s wall, {:>8.2} s CPU  (wall of each run: {})",
            t.wall_s,
            t.cpu_s,
            walls
                .iter()
                .map(|t| format!("{t:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok((t, last.context("no run")?))
    }
}

/// Medians of one measurement.
#[derive(Clone, Copy)]
struct Timing {
    wall_s: f64,
    cpu_s: f64,
}

impl Timing {
    fn json(self) -> serde_json::Value {
        serde_json::json!({"wall_s": self.wall_s, "cpu_s": self.cpu_s})
    }
}

fn warm_count(r: &SweepRun) -> usize {
    r.result["scenarios"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|x| x["warm_start"] == true).count())
}

pub fn run(args: &[String]) -> Result<ExitCode> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let o = parse(args)?;
    let root = crate::workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    eprintln!("xtask: building atlas (release)");
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "atlas",
            "--bin",
            "atlas",
        ])
        .status()
        .with_context(|| format!("cannot run `{cargo}`"))?;
    if !status.success() {
        bail!("building atlas failed");
    }
    let atlas = Atlas {
        bin: root.join("target/release/atlas"),
        root: root.clone(),
    };
    std::fs::create_dir_all(&o.out)?;
    let mut report = serde_json::Map::new();
    let n = o.points;

    eprintln!(
        "\nlarge.toml, {n} budgets 0.5x..2x, medians of {} runs:",
        o.runs
    );
    let (lbfgs_cold, _) = atlas.timed(
        "lbfgs cold, --jobs 1",
        "large.toml",
        &o,
        &["-O", "lbfgs", "--no-warm-start", "--jobs", "1"],
    )?;
    let (lbfgs_warm, lw) = atlas.timed(
        "lbfgs warm, --jobs 1",
        "large.toml",
        &o,
        &["-O", "lbfgs", "--jobs", "1"],
    )?;
    let (lbfgs_warm2, _) = atlas.timed(
        "lbfgs warm, --jobs 2",
        "large.toml",
        &o,
        &["-O", "lbfgs", "--jobs", "2"],
    )?;
    let (convex_cold, _) = atlas.timed(
        "convex cold, --jobs 1",
        "large.toml",
        &o,
        &["-O", "convex", "--no-warm-start", "--jobs", "1"],
    )?;
    let (convex_warm, cw) = atlas.timed(
        "convex warm, --jobs 1",
        "large.toml",
        &o,
        &["-O", "convex", "--jobs", "1"],
    )?;
    let cache_dir = o.out.join("sweep-cache");
    let _ = std::fs::remove_dir_all(&cache_dir);
    let cache_arg = cache_dir.to_string_lossy().into_owned();
    let fill = atlas.sweep(
        "large.toml",
        n,
        &["-O", "lbfgs", "--jobs", "1", "--cache", &cache_arg],
    )?;
    eprintln!(
        "  {:<44} {:>9.3} s wall, {:>8.2} s CPU",
        "lbfgs warm, --jobs 1, filling a folder cache", fill.wall_s, fill.cpu_s
    );
    let (cached, cached_run) = atlas.timed(
        "the same, answered by the folder cache",
        "large.toml",
        &o,
        &["-O", "lbfgs", "--jobs", "1", "--cache", &cache_arg],
    )?;
    let hits = cached_run.result["scenarios"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|x| x["cache"] == "hit").count());

    // A single cached `atlas optimize`: one run to fill, then timed runs.
    let one_dir = o.out.join("optimize-cache");
    let _ = std::fs::remove_dir_all(&one_dir);
    let optimize = |dir: &Path| -> Result<(f64, String)> {
        let started = Instant::now();
        let out = Command::new(&atlas.bin)
            .current_dir(&root)
            .args([
                "optimize",
                "examples/problems/large.toml",
                "-O",
                "lbfgs",
                "--format",
                "json",
                "-q",
                "--cache",
            ])
            .arg(dir)
            .output()?;
        if !out.status.success() {
            bail!("atlas optimize: {}", String::from_utf8_lossy(&out.stderr));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok((
            started.elapsed().as_secs_f64(),
            v["cache"].as_str().unwrap_or("").to_string(),
        ))
    };
    let (solve_s, first) = optimize(&one_dir)?;
    let repeats = 20 * o.runs;
    let cpu_before = children_cpu_s();
    let mut walls = Vec::new();
    let mut all_hits = true;
    for _ in 0..repeats {
        let (w, c) = optimize(&one_dir)?;
        walls.push(w);
        all_hits &= c == "hit";
    }
    let cpu = match (cpu_before, children_cpu_s()) {
        (Some(a), Some(b)) => Some((b - a) / repeats as f64),
        _ => None,
    };
    let one_wall = median(walls);
    eprintln!(
        "  {:<44} {:>9.3} ms wall, {} CPU per process ({repeats} runs; first run {first}, {:.1} ms)",
        "cached `atlas optimize large.toml`",
        one_wall * 1e3,
        cpu.map_or("-".to_string(), |c| format!("{:.2} ms", c * 1e3)),
        solve_s * 1e3
    );

    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    report.insert(
        "large".into(),
        serde_json::json!({
            "points": n,
            "runs": o.runs,
            "lbfgs": {"cold": lbfgs_cold.json(), "warm": lbfgs_warm.json(),
                      "warm_over_cold_wall": ratio(lbfgs_warm.wall_s, lbfgs_cold.wall_s),
                      "warm_over_cold_cpu": ratio(lbfgs_warm.cpu_s, lbfgs_cold.cpu_s),
                      "warm_started_points": warm_count(&lw), "jobs2": lbfgs_warm2.json(),
                      "jobs1_over_jobs2_wall": ratio(lbfgs_warm.wall_s, lbfgs_warm2.wall_s)},
            "convex": {"cold": convex_cold.json(), "warm": convex_warm.json(),
                       "warm_over_cold_wall": ratio(convex_warm.wall_s, convex_cold.wall_s),
                       "warm_over_cold_cpu": ratio(convex_warm.cpu_s, convex_cold.cpu_s),
                       "warm_started_points": warm_count(&cw)},
            "folder_cache": {"solve_s": fill.wall_s, "solve_cpu_s": fill.cpu_s, "cached": cached.json(),
                             "speedup_wall": ratio(fill.wall_s, cached.wall_s), "hits": hits,
                             "solve_process_s": fill.process_s, "cached_process_s": cached_run.process_s},
            "cached_optimize": {"wall_ms": one_wall * 1e3, "cpu_ms": cpu.map(|c| c * 1e3), "runs": repeats, "all_hits": all_hits},
        }),
    );

    eprintln!("\nretail_q4.toml, {n} budgets 0.5x..2x:");
    let (rc1, rc) = atlas.timed(
        "atlas convex, --jobs 1",
        "retail_q4.toml",
        &o,
        &["-O", "convex", "--jobs", "1"],
    )?;
    let (rc2, _) = atlas.timed(
        "atlas convex, --jobs 2",
        "retail_q4.toml",
        &o,
        &["-O", "convex", "--jobs", "2"],
    )?;
    let (rl1, _) = atlas.timed(
        "atlas lbfgs, --jobs 1",
        "retail_q4.toml",
        &o,
        &["-O", "lbfgs", "--jobs", "1"],
    )?;
    let mut retail = serde_json::json!({
        "atlas": {"convex_jobs1": rc1.json(), "convex_jobs2": rc2.json(), "lbfgs_jobs1": rl1.json()},
    });
    if o.peers {
        let out_file = o.out.join("sweep-peers.json");
        let status = Command::new(&o.python)
            .current_dir(&root)
            .args([
                "benches/peers/peers.py",
                "sweep",
                "examples/problems/retail_q4.toml",
                "--factors",
            ])
            .arg(format!("0.5:2:{n}"))
            .arg("--out")
            .arg(&out_file)
            .args(["--time-limit", "30"])
            .status()
            .with_context(|| format!("cannot run Python `{}`", o.python.display()))?;
        if !status.success() {
            bail!("peers.py sweep failed");
        }
        let peers: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out_file)?)?;
        let atlas_points = rc.result["scenarios"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut fastest: Option<(String, f64)> = None;
        let mut rows = serde_json::Map::new();
        for (name, v) in peers["solvers"].as_object().into_iter().flatten() {
            let Some(points) = v["points"].as_array() else {
                eprintln!(
                    "  {name:<44} {}",
                    v["error"]
                        .as_str()
                        .or(v["refused"].as_str())
                        .unwrap_or("no result")
                );
                continue;
            };
            let wall = v["wall_time_s"].as_f64().unwrap_or(f64::NAN);
            // The gap of each point to Atlas's certified bound, and feasibility.
            let mut worst_gap = 0.0f64;
            let mut feasible = true;
            for (p, a) in points.iter().zip(&atlas_points) {
                let obj = p["objective"].as_f64().unwrap_or(f64::NAN);
                let bound = a["bound"]
                    .as_f64()
                    .or(a["objective"].as_f64())
                    .unwrap_or(f64::NAN);
                worst_gap = worst_gap.max((bound - obj) / bound.abs().max(1.0));
                let budget = a["budget"].as_f64().unwrap_or(1.0);
                feasible &=
                    p["max_violation"].as_f64().unwrap_or(f64::INFINITY) <= 1e-6 * budget.max(1.0);
            }
            let equal = feasible && worst_gap <= 1e-6;
            eprintln!(
                "  {name:<44} {wall:>9.3} s  (worst gap {worst_gap:.1e}, {}; {:.0}x the time of atlas convex --jobs 1)",
                if feasible { "feasible" } else { "INFEASIBLE points" },
                wall / rc1.wall_s
            );
            if equal && fastest.as_ref().is_none_or(|f| wall < f.1) {
                fastest = Some((name.clone(), wall));
            }
            rows.insert(name.clone(), serde_json::json!({"wall_time_s": wall, "worst_gap": worst_gap, "feasible": feasible, "equal_quality": equal}));
        }
        retail["peers"] = serde_json::Value::Object(rows);
        if let Some((name, wall)) = fastest {
            eprintln!(
                "  fastest peer of equal quality: {name}, atlas convex --jobs 1 is {:.1}x faster",
                wall / rc1.wall_s
            );
            retail["fastest_peer"] = serde_json::json!({"name": name, "wall_time_s": wall, "speedup": wall / rc1.wall_s});
        }
    }
    report.insert("retail_q4".into(), retail);
    let path = o.out.join("sweep.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&serde_json::Value::Object(report))?,
    )?;

    eprintln!("\nratios (one run):");
    eprintln!(
        "  large, lbfgs: warm / cold = {:.2} wall, {:.2} CPU (target <= 0.3)",
        ratio(lbfgs_warm.wall_s, lbfgs_cold.wall_s),
        ratio(lbfgs_warm.cpu_s, lbfgs_cold.cpu_s)
    );
    eprintln!(
        "  large, convex: warm / cold = {:.2} wall, {:.2} CPU (target <= 0.6)",
        ratio(convex_warm.wall_s, convex_cold.wall_s),
        ratio(convex_warm.cpu_s, convex_cold.cpu_s)
    );
    eprintln!(
        "  large, lbfgs: --jobs 1 / --jobs 2 = {:.2} wall (target >= 1.7)",
        ratio(lbfgs_warm.wall_s, lbfgs_warm2.wall_s)
    );
    eprintln!(
        "  large, folder cache: solving / cached = {:.1} wall (target >= 20)",
        ratio(fill.wall_s, cached.wall_s)
    );
    eprintln!("  wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn options() {
        let o = parse(&["--runs".into(), "2".into(), "--no-peers".into()]).unwrap();
        assert_eq!((o.runs, o.points, o.peers), (2, 50, false));
        assert!(parse(&["--runs".into(), "0".into()]).is_err());
        assert!(parse(&["--bogus".into()]).is_err());
    }
}
