//! `cargo xtask`: project automation, one module per subcommand (the alias lives in
//! `.cargo/config.toml`). Few dependencies on purpose: it builds fast in debug mode and
//! delegates real work to release builds of the workspace.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod bench;
mod serve_bench;
mod sweep_bench;
mod workers_bench;

const HELP: &str = "\
cargo xtask <command>

commands:
  bench [OPTIONS]   benchmark every optimizer of a release build of `atlas` on the suite
                    (cargo xtask bench --help for the options)
  bench serve [OPTIONS]
                    a bounded load test of `atlas serve` on loopback: quickstart jobs
                    with ?wait over keep-alive connections (cargo xtask bench serve --help)
  bench sweep [OPTIONS]
                    the speed of `atlas sweep`: warm starts, --jobs, the result cache,
                    beside SciPy and CVXPY (cargo xtask bench sweep --help)
  bench workers [OPTIONS]
                    `atlas worker` processes on PostgreSQL: sweep scaling with 1, 2, ...
                    workers and tiny-job throughput (cargo xtask bench workers --help)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") if args.get(1).map(String::as_str) == Some("sweep") => {
            sweep_bench::run(&args[2..])
        }
        Some("bench") if args.get(1).map(String::as_str) == Some("serve") => {
            serve_bench::run(&args[2..])
        }
        Some("bench") if args.get(1).map(String::as_str) == Some("workers") => {
            workers_bench::run(&args[2..])
        }
        Some("bench") => bench::run(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => {
            eprint!("unknown command `{other}`\n\n{HELP}");
            Ok(ExitCode::from(2))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
