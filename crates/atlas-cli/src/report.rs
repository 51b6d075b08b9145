//! `atlas report`: the HTML report of a result or sweep result file (atlas-report).

use std::io::Write;
use std::path::{Path, PathBuf};

use atlas_core::{Compiled, Error, InputError};
use atlas_report::{Input, ReportError, ResultFile, ResultView};

/// Arguments of `atlas report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A result file (`atlas optimize --output`) or a sweep result (`atlas sweep
    /// --format json`).
    input: PathBuf,
    /// The HTML file to write (atomically; `-` for stdout).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// The problem the result was solved for: needed for the response curves, the
    /// channels' responses and ROIs (without it the page says they are not drawn).
    #[arg(long, short = 'p')]
    problem: Option<PathBuf>,
    /// With a sweep result: report this scenario's full result instead of the sweep.
    #[arg(long)]
    scenario: Option<String>,
    /// No notes on stderr, no summary on stdout.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Runs `atlas report`: bad input (a missing or malformed file, a result that does not
/// fit its problem) is an error naming the file and the field, and no file is written.
pub fn run(args: &ReportArgs, out: &mut dyn Write) -> Result<(), Error> {
    // An output that cannot be written is not bad input (exit status 1), and is found
    // before the page is drawn.
    let to_stdout = args.output == Path::new("-");
    if !to_stdout {
        crate::check_output(&args.output)?;
    }
    let input = atlas_report::read_input(&args.input)?;
    let (html, what) = match (&input, &args.scenario) {
        (Input::Sweep(sweep), Some(name)) => {
            let result = scenario_result(sweep, name, &args.input)?;
            let problem = compile(args.problem.as_deref())?;
            let html = result_page(result, problem.as_ref(), args)?;
            (html, format!("scenario `{name}` of sweep {}", sweep.base))
        }
        (Input::Sweep(sweep), None) => {
            if args.problem.is_some() {
                return Err(InputError::new(
                    "--problem",
                    "a sweep report needs no problem (each scenario carries its own result); to draw one scenario's curves, add `--scenario NAME`",
                )
                .into());
            }
            let what = format!(
                "sweep {} ({} scenarios, {} failed)",
                sweep.base,
                sweep.scenarios.len(),
                sweep.errors.len()
            );
            (atlas_report::sweep_html(sweep)?, what)
        }
        (Input::Result(_), Some(_)) => {
            return Err(InputError::new(
                "--scenario",
                "the input is a single result, not a sweep result",
            )
            .in_file(Some(&args.input))
            .into());
        }
        (Input::Result(result), None) => {
            let problem = compile(args.problem.as_deref())?;
            let html = result_page(result, problem.as_ref(), args)?;
            (
                html,
                format!(
                    "{} ({}, {})",
                    result.problem, result.optimizer, result.status
                ),
            )
        }
    };
    if to_stdout {
        return out.write_all(html.as_bytes()).map_err(crate::stdout_error);
    }
    atlas_core::files::write_atomically(&args.output, &html).map_err(|e| Error::Write {
        path: args.output.clone(),
        message: e.to_string(),
    })?;
    if !args.quiet {
        writeln!(
            out,
            "{}: report of {what}, {} KiB",
            args.output.display(),
            html.len().div_ceil(1024)
        )
        .map_err(crate::stdout_error)?;
    }
    Ok(())
}

fn compile(problem: Option<&Path>) -> Result<Option<Compiled>, Error> {
    problem.map(Compiled::from_path).transpose()
}

/// The page of one result; a result that does not fit the problem is an error naming
/// the input file, and the page's notices also go to stderr.
fn result_page(
    result: &ResultFile,
    problem: Option<&Compiled>,
    args: &ReportArgs,
) -> Result<String, Error> {
    let in_input = |e: ReportError| -> Error { e.in_file(Some(&args.input)).into() };
    if !args.quiet {
        let view = ResultView::new(result, problem).map_err(|e| in_input(ReportError::Input(e)))?;
        for note in &view.notes {
            eprintln!("note: {note}");
        }
        if problem.is_none() {
            eprintln!("note: no --problem given: the report has no response curves and no ROIs");
        }
    }
    atlas_report::result_html(result, problem).map_err(in_input)
}

/// The full result of scenario `name` of a sweep.
fn scenario_result<'a>(
    sweep: &'a atlas_report::SweepFile,
    name: &str,
    file: &Path,
) -> Result<&'a ResultFile, Error> {
    let Some((i, scenario)) = sweep
        .scenarios
        .iter()
        .enumerate()
        .find(|(_, s)| s.name == name)
    else {
        let names = sweep.scenarios.iter().map(|s| s.name.as_str());
        let hint = atlas_core::suggest::nearest(name, names.clone())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        let failed = sweep
            .errors
            .iter()
            .find(|e| e.name == name)
            .map(|e| format!("; it failed: {}", e.message))
            .unwrap_or_default();
        return Err(InputError::new(
            "--scenario",
            format!(
                "no solved scenario `{name}` in {}{hint}{failed}; the scenarios: {}",
                file.display(),
                names.collect::<Vec<_>>().join(", ")
            ),
        )
        .into());
    };
    scenario.result.as_ref().ok_or_else(|| {
        InputError::new(
            format!("scenarios[{i}].result"),
            "missing: this sweep result does not carry the scenario's full result",
        )
        .in_file(Some(file))
        .into()
    })
}
