//! Bad input through the `atlas` binary: exit status 2, an error that names the file, the
//! field and the reason, no panic, and no output file.

mod common;

use std::path::Path;
use std::process::Command;

const GOOD_CHANNELS: &str = r#"
[[channels]]
name = "tv"
max = 600.0
response = { kind = "hill", beta = 1000.0, k = 300.0, s = 1.0 }

[[channels]]
name = "search"
response = { kind = "log", beta = 500.0, k = 100.0 }
"#;

fn with_header(header: &str) -> String {
    format!("name = \"bad\"\nbudget = 1000.0\n{header}\n{GOOD_CHANNELS}")
}

/// (case name, file name, contents, text the error must contain)
fn cases() -> Vec<(&'static str, &'static str, String, Vec<&'static str>)> {
    vec![
        ("nan budget", "p.toml", "name = \"bad\"\nbudget = nan\n".to_string() + GOOD_CHANNELS, vec!["budget", "finite"]),
        ("negative budget", "p.toml", "name = \"bad\"\nbudget = -5.0\n".to_string() + GOOD_CHANNELS, vec!["budget", "> 0"]),
        (
            "infinite beta",
            "p.toml",
            "name = \"bad\"\nbudget = 1000.0\n[[channels]]\nname = \"tv\"\nresponse = { kind = \"log\", beta = inf, k = 1.0 }\n".to_string(),
            vec!["channels[0].response.beta", "finite"],
        ),
        (
            "min above max",
            "p.toml",
            "name = \"bad\"\nbudget = 1000.0\n[[channels]]\nname = \"tv\"\nmin = 500.0\nmax = 100.0\nresponse = { kind = \"log\", beta = 1.0, k = 1.0 }\n".to_string(),
            vec!["channels[0].min", "greater than max"],
        ),
        (
            "unknown curve kind",
            "p.toml",
            "name = \"bad\"\nbudget = 1000.0\n[[channels]]\nname = \"tv\"\nresponse = { kind = \"hil\", beta = 1.0, k = 1.0, s = 1.0 }\n".to_string(),
            vec!["channels[0].response.kind", "hil", "did you mean `hill`"],
        ),
        (
            "unknown channel in a constraint",
            "p.toml",
            with_header("") + "[[constraints]]\nkind = \"share\"\nchannels = [\"serch\"]\nmin = 0.1\n",
            vec!["constraints[0].channels[0]", "unknown channel `serch`", "did you mean `search`"],
        ),
        (
            "duplicate channel names",
            "p.toml",
            with_header("") + "[[channels]]\nname = \"tv\"\nresponse = { kind = \"log\", beta = 1.0, k = 1.0 }\n",
            vec!["channels[2].name", "duplicate"],
        ),
        (
            "empty group",
            "p.toml",
            with_header("") + "[[constraints]]\nkind = \"spend\"\nchannels = []\nmax = 10.0\n",
            vec!["constraints[0].channels", "empty group"],
        ),
        (
            "period index out of range",
            "p.toml",
            with_header("periods = 4") + "[[constraints]]\nkind = \"spend\"\nchannels = [\"tv\"]\nperiods = [1, 4]\nmax = 10.0\n",
            vec!["constraints[0].periods[1]", "out of range"],
        ),
        (
            "channel minimums above the budget",
            "p.toml",
            "name = \"bad\"\nbudget = 1000.0\n[[channels]]\nname = \"tv\"\nmin = 700.0\nresponse = { kind = \"log\", beta = 1.0, k = 1.0 }\n[[channels]]\nname = \"radio\"\nmin = 400.0\nresponse = { kind = \"log\", beta = 1.0, k = 1.0 }\n".to_string(),
            vec!["infeasible", "channels[0] (tv) min 700", "channels[1] (radio) min 400", "1100"],
        ),
        ("malformed toml", "p.toml", "name = \"bad\"\nbudget = = 3\n".to_string(), vec!["p.toml", "line 2"]),
        (
            "misspelt field",
            "p.toml",
            "name = \"bad\"\nbudjet = 1000.0\n".to_string() + GOOD_CHANNELS,
            vec!["budjet", "did you mean `budget`"],
        ),
        (
            "non-positive k",
            "p.toml",
            "name = \"bad\"\nbudget = 1000.0\n[[channels]]\nname = \"tv\"\nresponse = { kind = \"exponential\", beta = 1.0, k = 0.0 }\n".to_string(),
            vec!["channels[0].response.k", "> 0"],
        ),
        (
            "power exponent above one",
            "p.toml",
            "name = \"bad\"\nbudget = 1000.0\n[[channels]]\nname = \"tv\"\nresponse = { kind = \"power\", beta = 1.0, alpha = 1.5 }\n".to_string(),
            vec!["channels[0].response.alpha", "(0, 1]"],
        ),
        (
            "parameter of another curve",
            "p.toml",
            "name = \"bad\"\nbudget = 1000.0\n[[channels]]\nname = \"tv\"\nresponse = { kind = \"log\", beta = 1.0, k = 1.0, s = 2.0 }\n".to_string(),
            vec!["channels[0].response.s", "no parameter `s`"],
        ),
        (
            "adstock decay of one",
            "p.toml",
            "name = \"bad\"\nbudget = 1000.0\n[[channels]]\nname = \"tv\"\nresponse = { kind = \"log\", beta = 1.0, k = 1.0 }\nadstock = { kind = \"geometric\", decay = 1.0 }\n".to_string(),
            vec!["channels[0].adstock.decay", "[0, 1)"],
        ),
        (
            "min_spend without target",
            "p.toml",
            with_header("objective = \"min_spend\""),
            vec!["target_response", "required"],
        ),
        (
            "share above one",
            "p.toml",
            with_header("") + "[[constraints]]\nkind = \"share\"\nchannels = [\"tv\"]\nmin = 1.5\n",
            vec!["constraints[0].min", "[0, 1]"],
        ),
        ("zero periods", "p.toml", with_header("periods = 0"), vec!["periods", ">= 1"]),
        (
            "conflicting shares",
            "p.toml",
            with_header("")
                + "[[constraints]]\nkind = \"share\"\nchannels = [\"tv\"]\nmin = 0.7\n[[constraints]]\nkind = \"share\"\nchannels = [\"search\"]\nmin = 0.7\n",
            vec!["infeasible"],
        ),
        (
            "conflicting rows found by the projection",
            "p.toml",
            with_header("periods = 2")
                + "[[constraints]]\nkind = \"spend\"\nchannels = [\"tv\"]\nperiods = [0]\nmin = 400.0\n[[constraints]]\nkind = \"ratio\"\nchannels = [\"tv\"]\nover = [\"search\"]\nmax = 0.2\n",
            vec!["infeasible", "constraints[0]", "constraints[1]"],
        ),
        ("unknown extension", "p.txt", with_header(""), vec!["p.txt", "extension"]),
        (
            "nan in yaml",
            "p.yaml",
            "name: bad\nbudget: .nan\nchannels:\n  - name: tv\n    response: {kind: log, beta: 1.0, k: 1.0}\n".to_string(),
            vec!["budget", "finite"],
        ),
        ("missing name in json", "p.json", r#"{"budget": 10, "channels": []}"#.to_string(), vec!["p.json", "name"]),
        (
            "zero spend unit",
            "p.toml",
            "name = \"bad\"\nbudget = 1000.0\n[[channels]]\nname = \"tv\"\nspend_unit = 0.0\nresponse = { kind = \"log\", beta = 1.0, k = 1.0 }\n".to_string(),
            vec!["channels[0].spend_unit", "> 0"],
        ),
        (
            "linear row without op",
            "p.toml",
            with_header("") + "[[constraints]]\nkind = \"linear\"\nterms = [{ channel = \"tv\", coef = 1.0 }]\nrhs = 5.0\n",
            vec!["constraints[0].op", "required"],
        ),
        (
            "negative period index",
            "p.toml",
            with_header("periods = 3") + "[[constraints]]\nkind = \"spend\"\nchannels = [\"tv\"]\nperiods = [-1]\nmax = 10.0\n",
            vec!["constraints[0].periods[0]"],
        ),
    ]
}

fn atlas(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(args)
        .output()
        .expect("run atlas")
}

#[test]
fn bad_inputs_exit_2_name_the_field_and_write_nothing() {
    let dir = common::temp_dir("bad-inputs");
    let cases = cases();
    assert!(cases.len() >= 15);
    for (name, file, contents, expected) in cases {
        let case_dir = dir.join(name.replace(' ', "_"));
        std::fs::create_dir_all(&case_dir).unwrap();
        let path = case_dir.join(file);
        std::fs::write(&path, &contents).unwrap();
        let output = case_dir.join("result.json");
        let out = atlas(&[
            "optimize",
            path.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "-q",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: exit status {:?}, stderr: {stderr}",
            out.status.code()
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(
            stderr.contains(file),
            "{name}: the message does not name the file: {stderr}"
        );
        for text in expected {
            assert!(
                stderr.contains(text),
                "{name}: expected `{text}` in: {stderr}"
            );
        }
        assert!(out.stdout.is_empty(), "{name}: partial output on stdout");
        assert!(!output.exists(), "{name}: an output file was written");
        let leftovers: Vec<_> = std::fs::read_dir(&case_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{name}: stray files {leftovers:?}");
        // `validate` reports the same error.
        let out = atlas(&["validate", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}: validate");
    }
}

#[test]
fn a_missing_file_is_bad_input() {
    let out = atlas(&["optimize", "/nonexistent/problem.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/problem.toml"));
}

#[test]
fn bad_settings_and_optimizers_exit_2() {
    let problem = common::problems_dir().join("quickstart.toml");
    let p = problem.to_str().unwrap();
    for (args, expected) in [
        (
            vec!["--optimizer", "lbgfs"],
            vec![
                "unknown optimizer `lbgfs`",
                "did you mean `lbfgs`",
                "available",
            ],
        ),
        (
            vec!["-O", "lbfgs", "--set", "memroy=5"],
            vec!["memroy", "did you mean `memory`", "valid settings"],
        ),
        (
            vec!["-O", "lbfgs", "--set", "memory=0"],
            vec!["memory", "1..=100"],
        ),
        (vec!["-O", "lbfgs", "--set", "memory=abc"], vec!["memory"]),
        (vec!["-O", "lbfgs", "--set", "memory"], vec!["KEY=VALUE"]),
        (vec!["--time-limit=-1"], vec!["--time-limit"]),
        (vec!["--time-limit", "0"], vec!["--time-limit", "> 0"]),
    ] {
        // (`lbfgs`'s settings: the default optimizer, `auto`, has others.)
        let mut all = vec!["optimize", p, "-q"];
        all.extend(args.iter());
        let out = atlas(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for text in expected {
            assert!(
                stderr.contains(text),
                "{args:?}: expected `{text}` in {stderr}"
            );
        }
    }
}

#[test]
fn a_bad_allocation_file_is_bad_input() {
    let dir = common::temp_dir("bad-allocation");
    let problem = common::problems_dir().join("quickstart.toml");
    let alloc = dir.join("a.json");
    std::fs::write(
        &alloc,
        r#"{"allocation": {"tv": [1.0], "digitl": [2.0], "radio": [3.0]}}"#,
    )
    .unwrap();
    let out = atlas(&[
        "evaluate",
        problem.to_str().unwrap(),
        "--allocation",
        alloc.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("allocation.digitl") && stderr.contains("did you mean `digital`"),
        "{stderr}"
    );
    assert!(Path::new(&alloc).exists());
}

/// The corpus of `tests/bad_inputs/`: each file of its manifest through `validate` and
/// `optimize`: exit status 2 (unless the manifest says otherwise), the expected texts in
/// the error, no panic, nothing on stdout, no output file, and in well under a second
/// (sizes are checked before anything is built).
#[test]
fn the_corpus_of_bad_files_names_each_field() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_inputs");
    let manifest = std::fs::read_to_string(corpus.join("manifest.toml")).unwrap();
    let manifest: serde_json::Value =
        atlas::problem::parse_document(&manifest, atlas::Format::Toml).unwrap();
    let cases = manifest["case"].as_array().unwrap();
    // Every file of the folder is in the manifest, and the other way round.
    let mut listed: Vec<&str> = cases.iter().map(|c| c["file"].as_str().unwrap()).collect();
    listed.sort_unstable();
    let mut present: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "manifest.toml")
        .collect();
    present.sort_unstable();
    assert_eq!(listed, present, "manifest and folder differ");
    assert!(cases.len() >= 20);
    let out_dir = common::temp_dir("bad-corpus");
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let path = corpus.join(file);
        let exit = case.get("exit").and_then(|v| v.as_i64()).unwrap_or(2) as i32;
        let expect: Vec<&str> = case["expect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let output = out_dir.join(format!("{file}.result.json"));
        for args in [
            vec!["validate", path.to_str().unwrap()],
            vec![
                "optimize",
                path.to_str().unwrap(),
                "-q",
                "--output",
                output.to_str().unwrap(),
            ],
        ] {
            let started = std::time::Instant::now();
            let out = atlas(&args);
            let elapsed = started.elapsed();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(exit),
                "{file} {}: {stderr}",
                args[0]
            );
            assert!(!stderr.contains("panicked"), "{file}: {stderr}");
            assert!(
                stderr.contains(file),
                "{file}: the file is not named: {stderr}"
            );
            for text in &expect {
                assert!(
                    stderr.contains(text),
                    "{file} {}: expected `{text}` in: {stderr}",
                    args[0]
                );
            }
            // Names are never echoed raw: no control character reaches the terminal.
            assert!(
                !stderr.chars().any(|c| c.is_control() && c != '\n'),
                "{file}: a control character in: {stderr:?}"
            );
            assert!(out.stdout.is_empty(), "{file}: output on stdout");
            assert!(!output.exists(), "{file}: an output file was written");
            assert!(elapsed.as_secs_f64() < 5.0, "{file}: took {elapsed:?}");
        }
    }
}

/// `max_lag` beyond the horizon changes nothing and costs nothing: a lag of 2^32 (or
/// 10^8) over 4 periods validates and solves at once, with the same plan as the lag
/// that equals the horizon.
#[test]
fn a_lag_beyond_the_periods_costs_nothing() {
    let dir = common::temp_dir("huge-lag");
    let problem = |lag: u64| {
        format!(
            "name = \"lag\"\nbudget = 1000.0\nperiods = 4\n[[channels]]\nname = \"tv\"\nresponse = {{ kind = \"log\", beta = 500.0, k = 100.0 }}\nadstock = {{ kind = \"geometric\", decay = 0.5, max_lag = {lag} }}\n[[channels]]\nname = \"search\"\nresponse = {{ kind = \"log\", beta = 300.0, k = 50.0 }}\n"
        )
    };
    let mut objectives = Vec::new();
    for lag in [4u64, 100_000_000, 4_294_967_296, i64::MAX as u64] {
        let path = dir.join(format!("lag{lag}.toml"));
        std::fs::write(&path, problem(lag)).unwrap();
        let started = std::time::Instant::now();
        let out = atlas(&["optimize", path.to_str().unwrap(), "-q", "--format", "json"]);
        assert!(started.elapsed().as_secs_f64() < 5.0, "lag {lag}");
        assert_eq!(
            out.status.code(),
            Some(0),
            "lag {lag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        objectives.push(result["objective"].as_f64().unwrap());
    }
    // Normalized weights over 2^32 lags differ from those over 4 lags only by
    // 0.5^4 of the sum; the long lags agree with each other to rounding.
    assert!((objectives[1] - objectives[2]).abs() <= 1e-9 * objectives[1].abs());
    assert!((objectives[2] - objectives[3]).abs() <= 1e-9 * objectives[2].abs());
}

#[test]
fn time_limits_out_of_range_are_bad_input_with_a_plain_message() {
    let problem = common::problems_dir().join("quickstart.toml");
    let p = problem.to_str().unwrap();
    for (limit, expected) in [
        ("1e20", "above the limit"),
        ("-1", "> 0 (got -1)"),
        ("inf", "finite"),
        ("NaN", "finite"),
    ] {
        let out = atlas(&["optimize", p, "-q", "--time-limit", limit]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{limit}: {stderr}");
        assert!(!stderr.contains("panicked"), "{limit}: {stderr}");
        assert!(!stderr.contains("-- -1"), "{limit}: clap's tip: {stderr}");
        assert!(
            stderr.contains("--time-limit") && stderr.contains(expected),
            "{limit}: {stderr}"
        );
        // The sweep takes the same check.
        let out = atlas(&["sweep", p, "--budgets", "1e6", "-q", "--time-limit", limit]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "sweep {limit}: {stderr}");
        assert!(stderr.contains("--time-limit"), "sweep {limit}: {stderr}");
    }
}

#[test]
fn repeated_channels_in_an_allocation_are_refused() {
    let dir = common::temp_dir("dup-allocation");
    let problem = common::problems_dir().join("quickstart.toml");
    let alloc = dir.join("a.json");
    std::fs::write(
        &alloc,
        r#"{"allocation": {"tv": [300000.0], "digital": [500000.0], "radio": [200000.0], "tv": [1.0]}}"#,
    )
    .unwrap();
    let out = atlas(&[
        "evaluate",
        problem.to_str().unwrap(),
        "--allocation",
        alloc.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("allocation") && stderr.contains("duplicate key `tv`"),
        "{stderr}"
    );
}
