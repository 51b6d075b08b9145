//! The benchmark problems: the example problem files with their certified optima, the
//! generated marketing-mix problems of growing size, the classic test functions, or the
//! problem files a user names.

use std::path::{Path, PathBuf};

use atlas_core::functions::{self, TestFunction};
use atlas_core::problem::Problem;
use atlas_core::Compiled;
use serde::{Deserialize, Serialize};

use crate::error::BenchError;
use crate::generate;
use crate::optimum::{KnownOptimum, OptimaFile, Sense};
use crate::rules;

/// Which part of the suite a problem belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// A file of `examples/problems/`, optimum from its `optima.json`.
    Example,
    /// A generated marketing-mix problem, optimum computed (see
    /// [`compute_reference`](crate::optimum::compute_reference)).
    Generated,
    /// A classic test function, optimum known in closed form.
    Function,
    /// A problem file named on the command line.
    File,
}

impl Family {
    /// The name used in `--problems` filters and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Example => "examples",
            Family::Generated => "generated",
            Family::Function => "functions",
            Family::File => "files",
        }
    }
}

/// How to build one problem of the suite (built only when selected).
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A problem file.
    File(PathBuf),
    /// `generate(channels, periods, seed)`.
    Generated {
        /// Channels.
        channels: usize,
        /// Periods.
        periods: usize,
        /// Seed.
        seed: u64,
    },
    /// `rules::generate(channels, periods, seed, max_rate)`: with `max_change` rules.
    GeneratedRules {
        /// Channels.
        channels: usize,
        /// Periods.
        periods: usize,
        /// Seed.
        seed: u64,
        /// The `max_change` limit of every channel.
        max_rate: f64,
    },
    /// A test function in some dimension.
    Function(TestFunction, usize),
}

/// One problem of the suite before it is built.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Identifier in reports and filters: the problem's name (`retail-q4`, `mmm-10x13`,
    /// `rastrigin-10d`).
    pub id: String,
    /// Other names a filter may use (the file stem, e.g. `retail_q4`).
    pub aliases: Vec<String>,
    /// Part of the suite.
    pub family: Family,
    /// How to build it.
    pub source: Source,
    /// The recorded optimum, when one is (optima files, closed forms).
    pub optimum: Option<KnownOptimum>,
}

/// A built problem.
#[derive(Debug, Clone)]
pub struct BenchProblem {
    /// Its entry.
    pub entry: Entry,
    /// The problem as written in a file (what peers read); `None` for test functions,
    /// whose models a problem file cannot express.
    pub problem: Option<Problem>,
    /// Checked and compiled.
    pub compiled: Compiled,
}

impl Entry {
    /// Builds the problem.
    pub fn build(&self) -> Result<BenchProblem, BenchError> {
        let (problem, compiled) = match &self.source {
            Source::File(path) => {
                let p = Problem::from_path(path)?;
                let c = Compiled::new(&p)
                    .map_err(|e| e.in_file(Some(path)))?
                    .with_source(path);
                (Some(p), c)
            }
            Source::Generated {
                channels,
                periods,
                seed,
            } => {
                let p = generate::generate(*channels, *periods, *seed);
                let c = Compiled::new(&p)?;
                (Some(p), c)
            }
            Source::GeneratedRules {
                channels,
                periods,
                seed,
                max_rate,
            } => {
                let p = rules::generate(*channels, *periods, *seed, *max_rate);
                let c = Compiled::new(&p)?;
                (Some(p), c)
            }
            Source::Function(f, d) => (None, functions::problem(*f, *d)?),
        };
        Ok(BenchProblem {
            entry: self.clone(),
            problem,
            compiled,
        })
    }

    /// Whether `token` of a `--problems` filter selects this entry: its id, an alias,
    /// its family (`examples`, `generated`, `functions`, `files`), or a prefix ending in
    /// `*` (`mmm-*`).
    pub fn matches(&self, token: &str) -> bool {
        if let Some(prefix) = token.strip_suffix('*') {
            return self.id.starts_with(prefix)
                || self.aliases.iter().any(|a| a.starts_with(prefix));
        }
        self.id == token || self.aliases.iter().any(|a| a == token) || self.family.as_str() == token
    }
}

/// The example problems in `dir` (every `.toml`, `.json`, `.yaml`, `.yml` file), with the
/// optima of `dir/optima.json` when present. A file whose optimum is not recorded has
/// none (the runner may compute a reference).
pub fn examples(dir: &Path) -> Result<Vec<Entry>, BenchError> {
    let optima_path = dir.join("optima.json");
    let optima = if optima_path.exists() {
        OptimaFile::read(&optima_path)?
    } else {
        OptimaFile::default()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| BenchError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("toml" | "json" | "yaml" | "yml")
            ) && p.file_name().and_then(|n| n.to_str()) != Some("optima.json")
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| file_entry(p, Family::Example, &optima))
        .collect()
}

/// Entries for problem files named by a user; optima from `optima` (matched by file
/// name), else from an `optima.json` beside each file.
pub fn files(paths: &[PathBuf], optima: Option<&OptimaFile>) -> Result<Vec<Entry>, BenchError> {
    let mut out: Vec<Entry> = Vec::new();
    for p in paths {
        let beside = match optima {
            Some(_) => None,
            None => p
                .parent()
                .map(|d| d.join("optima.json"))
                .filter(|f| f.exists())
                .map(|f| OptimaFile::read(&f))
                .transpose()?,
        };
        let table = optima.or(beside.as_ref());
        let mut e = file_entry(p, Family::File, table.unwrap_or(&OptimaFile::default()))?;
        // Two files with the same problem name stay apart in the report.
        if out.iter().any(|o| o.id == e.id) {
            e.id = format!("{} ({})", e.id, p.display());
        }
        out.push(e);
    }
    Ok(out)
}

fn file_entry(path: &Path, family: Family, optima: &OptimaFile) -> Result<Entry, BenchError> {
    let problem = Problem::from_path(path)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let stem = path
        .file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    Ok(Entry {
        id: problem.name.clone(),
        aliases: vec![stem, file_name.clone()],
        family,
        source: Source::File(path.to_path_buf()),
        optimum: optima.get(&file_name).cloned(),
    })
}

/// The generated problems: all five sizes, or the three smallest with `quick`, then the
/// ones with `max_change` rules (see [`rules::SIZES`]; only the smallest with `quick`).
pub fn generated(quick: bool) -> Vec<Entry> {
    let sizes: &[(usize, usize)] = if quick {
        &generate::QUICK_SIZES
    } else {
        &generate::SIZES
    };
    let with_rules = rules::SIZES
        .iter()
        .filter(|&&(c, t, _)| !quick || c * t <= 100)
        .map(|&(channels, periods, max_rate)| Entry {
            id: rules::name(channels, periods, max_rate),
            aliases: Vec::new(),
            family: Family::Generated,
            source: Source::GeneratedRules {
                channels,
                periods,
                seed: generate::SUITE_SEED,
                max_rate,
            },
            optimum: None,
        });
    sizes
        .iter()
        .map(|&(channels, periods)| Entry {
            id: generate::name(channels, periods),
            aliases: Vec::new(),
            family: Family::Generated,
            source: Source::Generated {
                channels,
                periods,
                seed: generate::SUITE_SEED,
            },
            optimum: None,
        })
        .chain(with_rules)
        .collect()
}

/// Dimensions of the test functions: 2, 10 and 30, or 2 and 10 with `quick`.
pub fn function_dimensions(quick: bool) -> &'static [usize] {
    if quick {
        &[2, 10]
    } else {
        &[2, 10, 30]
    }
}

/// The five test functions in each dimension, with their closed-form optima.
pub fn test_functions(quick: bool) -> Vec<Entry> {
    let mut out = Vec::new();
    for f in TestFunction::all() {
        for &d in function_dimensions(quick) {
            out.push(Entry {
                id: format!("{}-{d}d", f.name()),
                aliases: vec![f.name().to_string()],
                family: Family::Function,
                source: Source::Function(f, d),
                optimum: Some(KnownOptimum {
                    value: functions::optimum(f, d),
                    bound: Some(functions::optimum(f, d)),
                    sense: Sense::Maximize,
                    source: "analytic".to_string(),
                    certified: true,
                    certified_gap: Some(0.0),
                }),
            });
        }
    }
    out
}

/// The built-in suite: examples from `examples_dir` (skipped with a warning when the
/// directory is missing), generated problems, test functions.
pub fn builtin(examples_dir: Option<&Path>, quick: bool) -> Result<Vec<Entry>, BenchError> {
    let mut out = match examples_dir {
        Some(dir) => examples(dir)?,
        None => Vec::new(),
    };
    out.extend(generated(quick));
    out.extend(test_functions(quick));
    Ok(out)
}

/// Keeps the entries selected by `tokens` (all when empty), in suite order; an unknown
/// token is an error listing the known ids.
pub fn select(entries: Vec<Entry>, tokens: &[String]) -> Result<Vec<Entry>, BenchError> {
    if tokens.is_empty() {
        return Ok(entries);
    }
    for t in tokens {
        if !entries.iter().any(|e| e.matches(t)) {
            let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
            return Err(BenchError::usage(
                "--problems",
                format!(
                    "`{t}` matches no problem; known: {}, or a family (examples, generated, functions) or a prefix like `mmm-*`",
                    ids.join(", ")
                ),
            ));
        }
    }
    Ok(entries
        .into_iter()
        .filter(|e| tokens.iter().any(|t| e.matches(t)))
        .collect())
}
