//! The `atlas` command line end to end, and the registry the facade builds.

mod common;

use std::process::Command;

use serde_json::Value;

fn atlas(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_atlas"))
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

#[test]
fn optimize_prints_a_table_per_channel() {
    let (code, out, err) = atlas(&["optimize", &problem("quickstart.toml"), "-O", "lbfgs"]);
    assert_eq!(code, 0, "{err}");
    for text in [
        "quickstart",
        "lbfgs",
        "converged",
        "tv",
        "digital",
        "radio",
        "avg ROI",
        "marginal ROI",
        "objective",
        "1,585,365",
        "feasible",
    ] {
        assert!(out.contains(text), "missing `{text}` in:\n{out}");
    }
    // The optimum equalizes marginal ROI across channels inside their bounds: tv and
    // digital are interior, so their marginal ROIs agree.
    let marginal = |name: &str| -> f64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .expect("channel row");
        line.split_whitespace().last().unwrap().parse().unwrap()
    };
    assert!((marginal("tv") - marginal("digital")).abs() < 1e-3, "{out}");
}

#[test]
fn a_local_method_on_s_curves_warns_and_names_what_finds_the_global_optimum() {
    let (code, _, err) = atlas(&["optimize", &problem("scurve.toml"), "-O", "lbfgs"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("local optimum"), "{err}");
    assert!(err.contains("display"), "{err}");
    assert!(err.contains("--optimizer milp"), "{err}");
    assert!(err.contains("multi_start=16"), "{err}");
    // Several starts: the note no longer proposes them.
    let (code, _, err) = atlas(&[
        "optimize",
        &problem("scurve.toml"),
        "-O",
        "lbfgs",
        "--set",
        "multi_start=4",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("local optimum") && !err.contains("multi_start"),
        "{err}"
    );
    // Concave curves, or a method that proves its answer (`auto`'s choice here): no note.
    let (code, _, err) = atlas(&["optimize", &problem("quickstart.toml")]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("local optimum"), "{err}");
    let (code, _, err) = atlas(&["optimize", &problem("scurve.toml")]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("local optimum"), "{err}");
    let (code, _, err) = atlas(&["optimize", &problem("scurve.toml"), "-O", "milp"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("local optimum"), "{err}");
}

#[test]
fn optimize_json_and_output_file_are_the_contract_result() {
    let dir = common::temp_dir("cli-json");
    let output = dir.join("result.json");
    let (code, out, err) = atlas(&[
        "optimize",
        &problem("retail_q4.toml"),
        "-O",
        "lbfgs",
        "--format",
        "json",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let printed: Value = serde_json::from_str(&out).unwrap();
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    assert_eq!(printed, written);
    assert_eq!(printed["problem"], "retail-q4");
    assert_eq!(printed["optimizer"], "lbfgs");
    assert_eq!(printed["status"], "converged");
    assert!(printed["bound"].is_null());
    assert_eq!(printed["allocation"]["tv"].as_array().unwrap().len(), 13);
    let best = common::optima()["retail_q4.toml"]["best_known"]
        .as_f64()
        .unwrap();
    let objective = printed["objective"].as_f64().unwrap();
    assert!((objective - best).abs() <= 1e-6 * best);

    // `evaluate` re-checks the written result independently.
    let (code, out, err) = atlas(&[
        "evaluate",
        &problem("retail_q4.toml"),
        "--allocation",
        output.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let e: Value = serde_json::from_str(&out).unwrap();
    let mut keys: Vec<&String> = e.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["feasible", "max_violation", "objective", "total_spend"]
    );
    assert_eq!(e["feasible"], true);
    assert!((e["objective"].as_f64().unwrap() - objective).abs() <= 1e-9 * objective);
    assert!((e["total_spend"].as_f64().unwrap() - 12_000_000.0).abs() < 1e-3);
}

#[test]
fn evaluate_reports_the_violations_of_a_plan_made_elsewhere() {
    let dir = common::temp_dir("cli-evaluate");
    let plan = dir.join("plan.toml");
    // tv above its max, total above the budget, digital below its 30% share.
    std::fs::write(
        &plan,
        "[allocation]\ntv = [600000.0]\ndigital = [200000.0]\nradio = [250000.0]\n",
    )
    .unwrap();
    let (code, out, err) = atlas(&[
        "evaluate",
        &problem("quickstart.toml"),
        "--allocation",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("INFEASIBLE"), "{out}");
    assert!(out.contains("budget"), "{out}");
    assert!(out.contains("share of digital >= 0.3"), "{out}");
    assert!(out.contains("tv[0] above its upper bound"), "{out}");
    let (_, out, _) = atlas(&[
        "evaluate",
        &problem("quickstart.toml"),
        "--allocation",
        plan.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let e: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["feasible"], false);
    // Violations by hand: tv 100,000 above its max, the budget exceeded by 50,000, radio
    // 50,000 above its max, and the share row 200,000 - 0.3 * 1,050,000 = -115,000: the
    // largest is the share row's raw residual.
    assert!(
        (e["max_violation"].as_f64().unwrap() - 115_000.0).abs() < 1e-6,
        "{e}"
    );
    // Response of the plan by hand: hill curves beta x / (x + k).
    let hill = |b: f64, k: f64, x: f64| b * x / (x + k);
    let expected = hill(1.2e6, 3e5, 6e5) + hill(1e6, 2e5, 2e5) + hill(3e5, 8e4, 2.5e5);
    assert!((e["objective"].as_f64().unwrap() - expected).abs() < 1e-6 * expected);
}

#[test]
fn settings_time_limits_and_config_files() {
    // --set reaches the optimizer.
    let (code, out, err) = atlas(&[
        "optimize",
        &problem("large.toml"),
        "-O",
        "lbfgs",
        "--set",
        "max_iterations=3",
        "--format",
        "json",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["status"], "max_iterations");
    assert!(
        r["max_violation"].as_f64().unwrap() <= 1e-6 * 1e8,
        "limits still return a feasible plan"
    );
    // --time-limit stops the solve.
    let (code, out, err) = atlas(&[
        "optimize",
        &problem("large.toml"),
        "-O",
        "lbfgs",
        "--time-limit",
        "0.001",
        "--format",
        "json",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["status"], "time_limit");
    // A configuration file, deserialized by optimizer name.
    let dir = common::temp_dir("cli-config");
    let config = dir.join("lbfgs.toml");
    std::fs::write(&config, "optimizer = \"lbfgs\"\nmemory = 5\ngtol = 1e-8\n").unwrap();
    let (code, _, err) = atlas(&[
        "optimize",
        &problem("quickstart.toml"),
        "--config",
        config.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&config, "optimizer = \"lbfgs\"\nmemory = 500\n").unwrap();
    let (code, _, err) = atlas(&[
        "optimize",
        &problem("quickstart.toml"),
        "--config",
        config.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("memory") && err.contains("1..=100"), "{err}");
}

#[test]
fn validate_and_list() {
    let (code, out, err) = atlas(&["validate", &problem("mixed_integer.toml")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok") && out.contains("spend_unit") && out.contains("max_active_channels"),
        "{out}"
    );
    let (code, out, _) = atlas(&["list"]);
    assert_eq!(code, 0);
    assert!(out.contains("lbfgs") && out.contains("defaults:"), "{out}");
    let (code, out, _) = atlas(&["list", "--format", "json"]);
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        atlas::registry()
            .expect("the enabled optimizers register")
            .names()
    );
    let (code, _, _) = atlas(&["--version"]);
    assert_eq!(code, 0);
    let (code, _, _) = atlas(&["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn the_registry_holds_the_enabled_backends_and_their_defaults_round_trip() {
    let registry = atlas::registry().expect("the enabled optimizers register");
    // `auto`, registered last, whatever the backends.
    let mut expected: Vec<&str> = vec!["auto"];
    for (enabled, name) in [
        (cfg!(feature = "lbfgs"), "lbfgs"),
        (cfg!(feature = "trust-region"), "trust-region"),
        (cfg!(feature = "convex"), "convex"),
        (cfg!(feature = "tpe"), "tpe"),
        (cfg!(feature = "cmaes"), "cmaes"),
        (cfg!(feature = "milp"), "milp"),
    ] {
        if enabled {
            expected.push(name);
        }
    }
    let mut names = registry.names();
    names.sort_unstable();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for info in registry.list() {
        // Defaults are valid and survive serde, by name through typetag too.
        let config = registry.default_config(info.name).unwrap();
        config.check().unwrap();
        let text = serde_json::to_string(&config).unwrap();
        let back: Box<dyn atlas::SolverConfig> = serde_json::from_str(&text).unwrap();
        assert_eq!(back.name(), info.name);
        assert_eq!(back.settings(), info.defaults);
        let mut tagged = info.defaults.as_object().unwrap().clone();
        tagged.insert("optimizer".into(), Value::String(info.name.into()));
        assert_eq!(
            registry
                .config_from_value(Value::Object(tagged))
                .unwrap()
                .settings(),
            info.defaults
        );
    }
    // Registering a name twice is refused.
    let mut twice = atlas::Registry::new();
    atlas::register_enabled(&mut twice).unwrap();
    assert!(atlas::register_enabled(&mut twice).is_err());
}

/// An output that cannot be written is not bad input: exit status 1, a message on stderr
/// naming the file, and no result on stdout that pretends it went anywhere. Issue 12
/// saw these as exit 2, or as a panic after the file was written. Each command that
/// writes a file is checked: a full device (`/dev/full`, written after the solve), a
/// folder under a regular file and a folder that does not exist (found before the solve),
/// a folder without write permission (where the test does not run as root, who may write
/// anywhere).
#[cfg(target_os = "linux")]
#[test]
fn outputs_that_cannot_be_written_are_exit_1_with_a_message() {
    let dir = common::temp_dir("cli-unwritable");
    let quickstart = problem("quickstart.toml");
    // A result and a sweep result to report on.
    let result = dir.join("result.json");
    let (code, _, err) = atlas(&[
        "optimize",
        &quickstart,
        "-q",
        "-o",
        result.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let result = result.to_string_lossy().into_owned();

    let a_file = dir.join("a-file");
    std::fs::write(&a_file, "x").unwrap();
    let locked = dir.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let permissions_hold = std::fs::write(locked.join("probe"), "x").is_err();
    let mut outputs = vec![
        ("a full device", "/dev/full".to_string()),
        (
            "a folder under a file",
            a_file.join("out.json").to_string_lossy().into_owned(),
        ),
        (
            "a folder that does not exist",
            dir.join("no-such-folder/out.json")
                .to_string_lossy()
                .into_owned(),
        ),
    ];
    if permissions_hold {
        outputs.push((
            "a folder without write permission",
            locked.join("out.json").to_string_lossy().into_owned(),
        ));
    }
    for (what, output) in &outputs {
        let commands: Vec<(&str, Vec<&str>)> = vec![
            (
                "optimize",
                vec!["optimize", &quickstart, "-q", "-o", output],
            ),
            (
                "optimize --format json",
                vec![
                    "optimize",
                    &quickstart,
                    "-q",
                    "--format",
                    "json",
                    "-o",
                    output,
                ],
            ),
            (
                "sweep",
                vec![
                    "sweep",
                    &quickstart,
                    "--budgets",
                    "0.8x,1x",
                    "-q",
                    "-o",
                    output,
                ],
            ),
            (
                "sweep --plot",
                vec![
                    "sweep",
                    &quickstart,
                    "--budgets",
                    "0.8x,1x",
                    "-q",
                    "--plot",
                    output,
                ],
            ),
            ("report", vec!["report", &result, "-q", "-o", output]),
        ];
        for (command, args) in commands {
            let (code, stdout, stderr) = atlas(&args);
            assert_eq!(
                code, 1,
                "{command} to {what} ({output}): exit {code}, stderr: {stderr}"
            );
            assert!(
                stderr.contains(output.as_str()) && stderr.contains("cannot write"),
                "{command} to {what}: the message names the file: {stderr}"
            );
            assert!(
                !stderr.contains("panicked"),
                "{command} to {what}: {stderr}"
            );
            assert!(
                stdout.trim().is_empty(),
                "{command} to {what}: nothing on stdout: {stdout}"
            );
        }
    }
    // Nothing was left in the folders that could not be written.
    assert_eq!(std::fs::read_to_string(&a_file).unwrap(), "x");
    assert_eq!(
        std::fs::read_dir(&locked).unwrap().count(),
        usize::from(!permissions_hold)
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
