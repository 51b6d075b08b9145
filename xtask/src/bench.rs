//! `cargo xtask bench`: builds the `atlas` binary in release mode with the chosen
//! features and runs `atlas bench` (the suite of `crates/atlas-bench`) from the workspace
//! root, so that `--out` defaults to `target/bench/` and the example problems and the
//! peers script are found.

use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context, Result};

const HELP: &str = "\
cargo xtask bench [BUILD OPTIONS] [BENCH OPTIONS]

Builds `atlas` in release mode, then runs `atlas bench` on the built-in suite (example
problems, generated problems, test functions) with every optimizer the build registers.

build options (handled here):
  --features F,...        facade features to enable (default: the `default` set)
  --no-default-features   do not enable the default features
  --all-features          enable every facade feature

bench options (passed to `atlas bench`; see `atlas bench --help` for all):
  --quick                 fewer sizes, runs and seconds: under 5 minutes on 2 cores
  --problems P,...        ids, file stems, families (examples, generated, functions), `mmm-*`
  --optimizers O,...      only these optimizers
  --runs N                timed runs per pair (default 5, quick 3)
  --peers                 also run the Python peers (benches/peers/peers.py)
  --python PATH           Python for the peers (default $ATLAS_PYTHON, else python3)
  --out DIR               output directory (default target/bench)
  PROBLEM...              problem files instead of the built-in suite
";

/// Splits the arguments into cargo build flags and `atlas bench` arguments.
fn split(args: &[String]) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let mut cargo = Vec::new();
    let mut features = Vec::new();
    let mut bench = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--features" => {
                let v = it.next().context("--features needs a value")?;
                features.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                );
            }
            s if s.starts_with("--features=") => {
                features.extend(
                    s["--features=".len()..]
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                );
            }
            "--no-default-features" | "--all-features" => cargo.push(a.clone()),
            _ => bench.push(a.clone()),
        }
    }
    Ok((cargo, features, bench))
}

/// The features the build enables, for the report: the named ones plus the `default`
/// set of the root manifest unless turned off.
fn enabled_features(cargo: &[String], features: &[String]) -> String {
    if cargo.iter().any(|c| c == "--all-features") {
        return "all".to_string();
    }
    let mut out: Vec<String> = Vec::new();
    if !cargo.iter().any(|c| c == "--no-default-features") {
        let manifest =
            std::fs::read_to_string(crate::workspace_root().join("Cargo.toml")).unwrap_or_default();
        out.extend(default_features(&manifest));
    }
    for f in features {
        if !out.contains(f) {
            out.push(f.clone());
        }
    }
    out.join(",")
}

/// The names in the `default = [...]` line of a manifest's `[features]` table.
fn default_features(manifest: &str) -> Vec<String> {
    let mut in_features = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_features = line == "[features]";
            continue;
        }
        if in_features {
            if let Some(rest) = line.strip_prefix("default") {
                let list = rest.trim_start().trim_start_matches('=').trim();
                return list
                    .trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|s| s.trim().trim_matches('"').to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
            }
        }
    }
    Vec::new()
}

pub fn run(args: &[String]) -> Result<ExitCode> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let (cargo_flags, features, bench_args) = split(args)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let root = crate::workspace_root();
    let started = Instant::now();
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args([
            "run",
            "--release",
            "--quiet",
            "--package",
            "atlas",
            "--bin",
            "atlas",
        ])
        .args(&cargo_flags);
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    cmd.arg("--").arg("bench").args(&bench_args);
    cmd.env(
        "ATLAS_BENCH_FEATURES",
        enabled_features(&cargo_flags, &features),
    );
    eprintln!(
        "xtask: building atlas (release) and running `atlas bench {}`",
        bench_args.join(" ")
    );
    let status = cmd
        .status()
        .with_context(|| format!("cannot run `{cargo}`"))?;
    eprintln!(
        "xtask: bench finished in {:.1} s (build included)",
        started.elapsed().as_secs_f64()
    );
    match status.code() {
        Some(0) => Ok(ExitCode::SUCCESS),
        Some(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
        None => bail!("`atlas bench` was killed by a signal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_flags_are_split_from_bench_arguments() {
        let args: Vec<String> = [
            "--quick",
            "--features",
            "lbfgs,convex",
            "--runs",
            "2",
            "--no-default-features",
            "--features=tpe",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (cargo, features, bench) = split(&args).unwrap();
        assert_eq!(cargo, ["--no-default-features"]);
        assert_eq!(features, ["lbfgs", "convex", "tpe"]);
        assert_eq!(bench, ["--quick", "--runs", "2"]);
        assert!(split(&["--features".to_string()]).is_err());
    }

    #[test]
    fn default_features_are_read_from_the_manifest() {
        let manifest = "[package]\nname = \"atlas\"\n\n[features]\n# comment\ndefault = [\"lbfgs\", \"convex\"]\nlbfgs = [\"dep:atlas-lbfgs\"]\n";
        assert_eq!(default_features(manifest), ["lbfgs", "convex"]);
        assert!(default_features("[package]\nname = \"x\"\n").is_empty());
        assert_eq!(
            enabled_features(&["--all-features".to_string()], &[]),
            "all"
        );
        assert_eq!(
            enabled_features(&["--no-default-features".to_string()], &["tpe".to_string()]),
            "tpe"
        );
    }
}
