//! `atlas surrogate PROBLEM --samples N --output fitted.toml`: fits the built-in curve
//! model (one curve kind for all channels, chosen by the fit or given, with geometric
//! adstock when there are several periods) to an external model by least squares over
//! space-filling feasible plans, reports R² and the largest relative error on held-out
//! plans, and refuses a poor fit. `optimize --surrogate fitted.toml` then solves the
//! fitted problem and polishes on the true model.

use std::io::Write;
use std::path::{Path, PathBuf};

use atlas_core::problem::{AdstockKind, AdstockSpec, CurveSpec};
use atlas_core::{
    Adstock, ChannelResponse, Compiled, Curve, Error, InputError, Layout, Mmm, Model, Problem,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::{stdout_error, write_atomically};

/// Arguments of `atlas surrogate`.
#[derive(Debug, clap::Args)]
pub struct SurrogateArgs {
    /// Problem file with an external `[model]`.
    problem: PathBuf,
    /// Feasible plans to evaluate the model on (a fifth held out to check the fit).
    #[arg(long, default_value_t = 400)]
    samples: usize,
    /// The fitted problem (the built-in model) to write.
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Curve kind of every channel: hill, exponential, log or power (default: the best
    /// fit of the four).
    #[arg(long)]
    curve: Option<String>,
    /// Refuse fits with a held-out R² below this.
    #[arg(long, default_value_t = 0.999)]
    min_r2: f64,
    /// Refuse fits whose largest relative error on held-out plans is above this.
    #[arg(long, default_value_t = 0.01)]
    max_error: f64,
    /// Seed of the plans.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

const KINDS: [&str; 4] = ["hill", "exponential", "log", "power"];

/// A fitted surrogate: the curves per channel, the decay per channel, and its quality.
#[derive(Debug, Clone)]
pub struct Fit {
    /// Curve kind.
    pub kind: &'static str,
    /// Parameters per channel (the kind's, in the contract's order) and decay.
    pub channels: Vec<(Curve, f64)>,
    /// R² on the held-out plans.
    pub r2: f64,
    /// Largest relative error on the held-out plans.
    pub max_rel_error: f64,
}

const MAX_LAG: usize = 8;

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Parameters per channel for `kind`: log beta, log k (or logit alpha), [log s], logit decay.
fn per_channel(kind: &str, periods: usize) -> usize {
    let curve = match kind {
        "hill" => 3,
        _ => 2,
    };
    curve + usize::from(periods > 1)
}

fn decode(kind: &str, periods: usize, theta: &[f64], channels: usize) -> Vec<(Curve, f64)> {
    let p = per_channel(kind, periods);
    (0..channels)
        .map(|c| {
            let t = &theta[c * p..(c + 1) * p];
            let beta = t[0].exp();
            let curve = match kind {
                "hill" => Curve::Hill {
                    beta,
                    k: t[1].exp(),
                    s: t[2].exp().clamp(0.2, 6.0),
                },
                "exponential" => Curve::Exponential {
                    beta,
                    k: t[1].exp(),
                },
                "log" => Curve::Log {
                    beta,
                    k: t[1].exp(),
                },
                _ => Curve::Power {
                    beta,
                    alpha: 0.02 + 0.98 * sigmoid(t[1]),
                },
            };
            let decay = if periods > 1 {
                0.95 * sigmoid(t[p - 1])
            } else {
                0.0
            };
            (curve, decay)
        })
        .collect()
}

fn mmm(layout: &Layout, channels: &[(Curve, f64)]) -> Mmm {
    let responses = channels
        .iter()
        .map(|(curve, decay)| ChannelResponse {
            curve: *curve,
            adstock: if layout.periods() > 1 {
                Adstock::geometric(*decay, MAX_LAG.min(layout.periods()), true)
            } else {
                Adstock::identity()
            },
        })
        .collect();
    Mmm::new(layout.clone(), responses, 0.0)
}

/// Levenberg–Marquardt on the relative residuals, with a forward-difference Jacobian.
fn fit_kind(
    kind: &'static str,
    layout: &Layout,
    xs: &[Vec<f64>],
    ys: &[f64],
) -> (Vec<(Curve, f64)>, f64) {
    let c_count = layout.n_channels();
    let periods = layout.periods();
    let p = per_channel(kind, periods);
    let y_scale = ys.iter().map(|y| y.abs()).sum::<f64>() / ys.len() as f64;
    let mut theta = Vec::with_capacity(p * c_count);
    for c in 0..c_count {
        let mean_spend = xs
            .iter()
            .map(|x| layout.channel_slice(x, c).iter().sum::<f64>() / periods as f64)
            .sum::<f64>()
            / xs.len() as f64;
        let share = y_scale / c_count as f64 / periods as f64;
        match kind {
            "power" => theta.extend([(share / mean_spend.max(1.0).powf(0.5)).max(1e-12).ln(), 0.0]),
            "hill" => theta.extend([(2.0 * share).ln(), mean_spend.max(1.0).ln(), 0.0]),
            _ => theta.extend([(2.0 * share).ln(), mean_spend.max(1.0).ln()]),
        }
        if periods > 1 {
            theta.push(-0.5);
        }
    }
    let residuals = |theta: &[f64]| -> Vec<f64> {
        let m = mmm(layout, &decode(kind, periods, theta, c_count));
        xs.iter()
            .zip(ys)
            .map(|(x, y)| (m.value(x) - y) / y_scale)
            .collect()
    };
    let sse = |r: &[f64]| r.iter().map(|v| v * v).sum::<f64>();
    let mut r = residuals(&theta);
    let mut cost = sse(&r);
    let mut lambda = 1e-3;
    let np = theta.len();
    for _ in 0..200 {
        let mut jac = vec![vec![0.0; np]; r.len()];
        for j in 0..np {
            let h = 1e-6 * (1.0 + theta[j].abs());
            let mut t = theta.clone();
            t[j] += h;
            let rj = residuals(&t);
            for i in 0..r.len() {
                jac[i][j] = (rj[i] - r[i]) / h;
            }
        }
        let mut jtj = vec![vec![0.0; np]; np];
        let mut jtr = vec![0.0; np];
        for (row, ri) in jac.iter().zip(&r) {
            for a in 0..np {
                jtr[a] += row[a] * ri;
                for b in 0..np {
                    jtj[a][b] += row[a] * row[b];
                }
            }
        }
        let mut improved = false;
        for _ in 0..12 {
            let mut m = jtj.clone();
            for a in 0..np {
                m[a][a] += lambda * (jtj[a][a] + 1e-12);
            }
            let Some(step) = solve(m, jtr.iter().map(|v| -v).collect()) else {
                lambda *= 10.0;
                continue;
            };
            let trial: Vec<f64> = theta.iter().zip(&step).map(|(t, s)| t + s).collect();
            let rt = residuals(&trial);
            let ct = sse(&rt);
            if ct.is_finite() && ct < cost {
                let done = (cost - ct) <= 1e-15 * cost.max(1e-300);
                theta = trial;
                r = rt;
                cost = ct;
                lambda = (lambda / 3.0).max(1e-12);
                improved = !done;
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    (decode(kind, periods, &theta, c_count), cost)
}

/// Gaussian elimination with partial pivoting; `None` when singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 || !a[pivot][col].is_finite() {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            for k in col..n {
                a[row][k] -= f * a[col][k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Space-filling feasible plans: a Latin hypercube over each variable's range (capped
/// at twice its even share of the budget), projected onto the feasible set.
pub fn space_filling_plans(
    compiled: &Compiled,
    count: usize,
    seed: u64,
) -> Result<Vec<Vec<f64>>, Error> {
    let set = compiled.feasible_set();
    let n = set.dim();
    let cap = 2.0 * set.budget() / n as f64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut columns: Vec<Vec<f64>> = Vec::with_capacity(n);
    for _ in 0..n {
        let mut strata: Vec<f64> = (0..count)
            .map(|i| (i as f64 + rng.random::<f64>()) / count as f64)
            .collect();
        strata.shuffle(&mut rng);
        columns.push(strata);
    }
    (0..count)
        .map(|i| {
            let z: Vec<f64> = (0..n)
                .map(|j| {
                    let (l, u) = (set.lower()[j], set.upper()[j]);
                    l + columns[j][i] * (u - l).min(cap.max(1e-9))
                })
                .collect();
            let mut x = vec![0.0; n];
            set.project_cold(&z, &mut x).map_err(|e| Error::Solver {
                optimizer: "surrogate".to_string(),
                reason: format!("cannot draw a feasible plan: {e:?}"),
            })?;
            Ok(x)
        })
        .collect()
}

/// Fits the built-in model to `compiled`'s model over `count` plans.
pub fn fit(
    compiled: &Compiled,
    count: usize,
    curve: Option<&str>,
    seed: u64,
) -> Result<Fit, Error> {
    let plans = space_filling_plans(compiled, count, seed)?;
    let mut ys = vec![0.0; plans.len()];
    compiled.model().value_batch(&plans, &mut ys);
    if let Some(reason) = compiled.model().failure() {
        return Err(Error::Model {
            model: compiled
                .source()
                .map_or_else(|| compiled.name().to_string(), |p| p.display().to_string()),
            reason,
        });
    }
    let held = (count / 5).max(1);
    let (test_x, train_x) = plans.split_at(held);
    let (test_y, train_y) = ys.split_at(held);
    let kinds: Vec<&'static str> = match curve {
        Some(k) => vec![KINDS.iter().copied().find(|c| *c == k).ok_or_else(|| {
            InputError::new(
                "--curve",
                format!("unknown curve `{k}`; choose one of {}", KINDS.join(", ")),
            )
        })?],
        None => KINDS.to_vec(),
    };
    let layout = compiled.layout();
    let mut best: Option<Fit> = None;
    for kind in kinds {
        let (channels, _) = fit_kind(kind, layout, train_x, train_y);
        let m = mmm(layout, &channels);
        let mean = test_y.iter().sum::<f64>() / test_y.len() as f64;
        let ss_tot: f64 = test_y.iter().map(|y| (y - mean).powi(2)).sum();
        let mut ss_res = 0.0;
        let mut max_rel: f64 = 0.0;
        for (x, y) in test_x.iter().zip(test_y) {
            let v = m.value(x);
            ss_res += (v - y).powi(2);
            max_rel = max_rel.max((v - y).abs() / y.abs().max(1e-300));
        }
        let r2 = if ss_tot > 0.0 {
            1.0 - ss_res / ss_tot
        } else {
            f64::NAN
        };
        let candidate = Fit {
            kind,
            channels,
            r2,
            max_rel_error: max_rel,
        };
        if best
            .as_ref()
            .is_none_or(|b| candidate.max_rel_error < b.max_rel_error)
        {
            best = Some(candidate);
        }
    }
    best.ok_or_else(|| InputError::new("--curve", "no curve kind to fit").into())
}

/// The problem with the fitted curves as its built-in model (no `[model]`).
pub fn fitted_problem(problem: &Problem, fit: &Fit) -> Problem {
    let mut p = problem.clone();
    p.model = None;
    for (ch, (curve, decay)) in p.channels.iter_mut().zip(&fit.channels) {
        ch.response = Some(match *curve {
            Curve::Hill { beta, k, s } => CurveSpec::hill(beta, k, s),
            Curve::Exponential { beta, k } => CurveSpec::exponential(beta, k),
            Curve::Log { beta, k } => CurveSpec::log(beta, k),
            Curve::Power { beta, alpha } => CurveSpec::power(beta, alpha),
            Curve::Linear { beta } => CurveSpec::linear(beta),
            Curve::Logistic { beta, lam } => CurveSpec::logistic(beta, lam),
        });
        ch.adstock = (problem.periods > 1).then(|| AdstockSpec {
            kind: AdstockKind::Geometric,
            decay: *decay,
            max_lag: MAX_LAG.min(problem.periods),
            normalize: true,
        });
    }
    p.name = format!("{} (surrogate)", problem.name);
    p
}

/// Runs `atlas surrogate`.
pub(crate) fn run(args: &SurrogateArgs, out: &mut dyn Write) -> Result<(), Error> {
    if args.samples < 10 {
        return Err(
            InputError::new("--samples", format!("must be >= 10 (got {})", args.samples)).into(),
        );
    }
    let problem = Problem::from_path(&args.problem)?;
    if !problem.model.as_ref().is_some_and(|m| m.is_external()) {
        return Err(InputError::new(
            "model",
            "the problem already uses the built-in model; a surrogate fits an external `[model]`",
        )
        .in_file(Some(&args.problem))
        .into());
    }
    let compiled = atlas_models::compile(&problem, Some(&args.problem))?;
    let fit = fit(&compiled, args.samples, args.curve.as_deref(), args.seed)?;
    writeln!(
        out,
        "surrogate of {}: {} curves{}, fitted on {} plans; held-out R² {:.6}, max relative error {:.3e}",
        args.problem.display(),
        fit.kind,
        if problem.periods > 1 { " with geometric adstock" } else { "" },
        args.samples - (args.samples / 5).max(1),
        fit.r2,
        fit.max_rel_error
    )
    .map_err(stdout_error)?;
    if !(fit.r2 >= args.min_r2 && fit.max_rel_error <= args.max_error) {
        return Err(Error::Solver {
            optimizer: "surrogate".to_string(),
            reason: format!(
                "a poor fit (held-out R² {:.6} against --min-r2 {}, max relative error {:.3e} against --max-error {}): not written; try --curve, more --samples, or optimize the true model",
                fit.r2, args.min_r2, fit.max_rel_error, args.max_error
            ),
        });
    }
    let fitted = fitted_problem(&problem, &fit);
    let text = toml::to_string(&fitted).map_err(|e| Error::Solver {
        optimizer: "surrogate".to_string(),
        reason: format!("cannot write the fitted problem: {e}"),
    })?;
    write_surrogate(&args.output, &text)?;
    writeln!(out, "wrote {}", args.output.display()).map_err(stdout_error)
}

fn write_surrogate(path: &Path, text: &str) -> Result<(), Error> {
    write_atomically(
        path,
        &format!("# A surrogate written by `atlas surrogate`: the built-in model fitted to an external one.\n{}", text.trim_end()),
    )
}
