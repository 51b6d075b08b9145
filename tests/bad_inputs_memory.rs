//! Memory: `atlas validate` and `atlas optimize` of problem files that pass validation stay
//! within the documented bound in terms of the problem's size
//! (`atlas::limits::memory_bound_bytes`: 64 MiB + 512 bytes per variable + 64 bytes per
//! row coefficient), checked in a child process whose address space is limited
//! (`ulimit -v`, i.e. `setrlimit(RLIMIT_AS)`) to that bound plus a fixed allowance for the
//! program itself (its code, libraries, thread stacks and allocator arenas). Without the
//! size checks of issue 12, `periods = 1000000000` grew to 18.7 GB here; now every file
//! that passes validation is within the limits, and so within the bound.
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;

/// Address space of the program itself, beyond the data the bound counts: measured at
/// about 40 MiB for `atlas validate quickstart.toml` with two allocator arenas; four times
/// that leaves room for other machines' libraries.
const PROGRAM_BYTES: u64 = 160 << 20;

/// Runs `atlas ARGS` with its address space limited to `bytes`; returns (exit status,
/// stderr).
fn atlas_limited(bytes: u64, args: &[&str]) -> (Option<i32>, String) {
    let kib = bytes / 1024;
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_atlas"))
        .args(args)
        // One arena per thread would reserve 64 MiB of address space each: bound them,
        // as a memory-limited deployment would.
        .env("MALLOC_ARENA_MAX", "2")
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("run atlas under ulimit");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A problem of `channels x periods` with `max_change` on the first `changing` channels.
fn write_problem(
    dir: &std::path::Path,
    channels: usize,
    periods: usize,
    changing: usize,
) -> String {
    let mut text = format!(
        "name = \"big\"\nperiods = {periods}\nbudget = {}\nbudget_mode = \"at_most\"\n",
        1e3 * (channels * periods) as f64
    );
    // A lag beyond the horizon costs nothing; on the large problems a short lag keeps
    // the adstock work within its limit.
    let lag: u64 = if periods <= 52 { 4_294_967_296 } else { 8 };
    for c in 0..channels {
        text.push_str(&format!(
            "[[channels]]\nname = \"c{c}\"\nresponse = {{ kind = \"log\", beta = {}, k = 500.0 }}\nadstock = {{ kind = \"geometric\", decay = 0.3, max_lag = {lag} }}\n",
            1000.0 + c as f64
        ));
    }
    if changing > 0 {
        let names: Vec<String> = (0..changing).map(|c| format!("\"c{c}\"")).collect();
        text.push_str(&format!(
            "[[constraints]]\nkind = \"max_change\"\nchannels = [{}]\nmax_rate = 0.5\n",
            names.join(", ")
        ));
    }
    let path = dir.join(format!("big-{channels}x{periods}-{changing}.toml"));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// Sizes kept to a few seconds in all on a loaded machine (the 1,000 x 1,000 problem at
/// the variable limit took minutes there): the bound is linear in the size, so a tenth of
/// the limit tests the same per-variable and per-coefficient terms.
#[test]
fn validate_and_optimize_stay_within_the_documented_bound() {
    let dir = common::temp_dir("memory");
    // (channels, periods, channels under max_change, also optimize)
    for (channels, periods, changing, optimize) in [
        (3, 4, 0, true),
        (300, 300, 0, false),
        (100, 100, 100, false),
        (30, 52, 30, true),
    ] {
        let path = write_problem(&dir, channels, periods, changing);
        let variables = channels * periods;
        let nonzeros = periods * channels + 4 * changing * (periods - 1);
        let bound = atlas::limits::memory_bound_bytes(variables, nonzeros) + PROGRAM_BYTES;
        let (code, stderr) = atlas_limited(bound, &["validate", &path]);
        assert_eq!(
            code,
            Some(0),
            "validate of {channels}x{periods} within {} MiB: {stderr}",
            bound >> 20
        );
        if optimize {
            let (code, stderr) = atlas_limited(
                bound,
                &[
                    "optimize",
                    &path,
                    "-q",
                    "-O",
                    "lbfgs",
                    "--set",
                    "max_iterations=200",
                ],
            );
            assert!(
                matches!(code, Some(0) | Some(1)) && !stderr.contains("memory allocation"),
                "optimize of {channels}x{periods} within {} MiB: {code:?} {stderr}",
                bound >> 20
            );
        }
    }
}

/// The sizes that used to allocate gigabytes are refused within the program's own
/// allowance, before anything is built for them.
#[test]
fn runaway_sizes_are_refused_without_allocating() {
    let dir = common::temp_dir("memory-runaway");
    let channels =
        "[[channels]]\nname = \"tv\"\nresponse = { kind = \"log\", beta = 1.0, k = 1.0 }\n";
    for (name, header) in [
        ("periods_u32", "periods = 4294967297"),
        ("periods_1e9", "periods = 1000000000"),
    ] {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!("name = \"x\"\nbudget = 1.0\n{header}\n{channels}"),
        )
        .unwrap();
        let (code, stderr) = atlas_limited(PROGRAM_BYTES, &["validate", path.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains("periods") && stderr.contains("limit"),
            "{name}: {stderr}"
        );
    }
}
