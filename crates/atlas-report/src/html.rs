//! The HTML pages: one self-contained file each (inline CSS and SVG, no script, no
//! font or picture fetched), readable printed or on a phone.

use std::fmt::Write as _;

use atlas_core::{Compiled, Objective};

use crate::charts::{self, Bar, BudgetPoint, Spread, CURVE_WIDTH, WIDTH};
use crate::fmt;
use crate::input::{ReportError, ResultFile, Risk, SweepFile};
use crate::svg::{escape, Svg};
use crate::view::ResultView;

const CSS: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f8fa; color: #1f2328;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", "Liberation Sans", Arial, sans-serif;
  font-size: 15px; line-height: 1.45; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 20px 40px; }
header { margin-bottom: 18px; }
.kicker { margin: 0; color: #57606a; font-size: 13px; letter-spacing: .06em; text-transform: uppercase; }
h1 { margin: 2px 0 4px; font-size: 28px; line-height: 1.2; overflow-wrap: anywhere; }
h2 { margin: 0 0 4px; font-size: 20px; }
h3 { margin: 0 0 2px; font-size: 15px; overflow-wrap: anywhere; }
.sub, .explain, figcaption, .muted { color: #57606a; }
.sub { margin: 0; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 18px 20px; margin: 16px 0; }
.explain { margin: 0 0 12px; max-width: 78ch; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 12px; background: none; border: 0; padding: 0; }
.card { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 12px 14px; }
.card .label { color: #57606a; font-size: 13px; }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.card .detail { color: #57606a; font-size: 13px; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 1px 10px; border-radius: 999px; font-weight: 600; font-size: 15px; border: 1px solid currentColor; }
.status-good { color: #116329; background: #dafbe1; }
.status-ok { color: #0a3069; background: #ddf4ff; }
.status-limit { color: #7d4e00; background: #fff8c5; }
.status-bad { color: #82071e; background: #ffebe9; }
.notice { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 8px; padding: 10px 14px; margin: 12px 0; }
.notice p { margin: 4px 0; }
figure { margin: 0; }
svg { max-width: 100%; height: auto; display: block; }
figure.wide svg { width: 100%; max-width: 1000px; }
.curves figure svg { width: 100%; }
.curves { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; }
.curves figure { border: 1px solid #d8dee4; border-radius: 6px; padding: 10px; }
figcaption { font-size: 13px; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: 14px; }
caption { text-align: left; color: #57606a; padding-bottom: 6px; }
th, td { padding: 5px 8px; border-bottom: 1px solid #d8dee4; text-align: right; vertical-align: top; }
thead th { background: #f6f8fa; font-weight: 600; }
tbody th { font-weight: 600; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
td:first-child { overflow-wrap: anywhere; }
tr.total td, tr.total th { font-weight: 600; border-top: 2px solid #d0d7de; }
.scroll { overflow-x: auto; }
details { margin-top: 10px; }
summary { cursor: pointer; color: #0969da; }
footer { color: #57606a; font-size: 13px; margin-top: 24px; }
@media print { body { background: #fff; } section, .card { break-inside: avoid; } }
"#;

/// The page around `body`: doctype, language, title, styles.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"atlas-report {}\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        escape(title)
    )
}

fn status_class(status: &str) -> &'static str {
    match status {
        "optimal" => "status-good",
        "converged" => "status-ok",
        "max_iterations" | "max_evaluations" | "time_limit" | "stopped_early" | "cancelled" => {
            "status-limit"
        }
        _ => "status-bad",
    }
}

/// What a status means, in a sentence.
fn status_meaning(status: &str) -> &'static str {
    match status {
        "optimal" => "proven optimal within the optimizer's tolerance",
        "converged" => "local convergence criteria met (no proof of global optimality)",
        "max_iterations" => "stopped at the iteration limit: the best plan found so far",
        "max_evaluations" => "stopped at the evaluation limit: the best plan found so far",
        "time_limit" => "stopped at the time limit: the best plan found so far",
        "stopped_early" => "stopped early (no improvement for a while): the best plan found",
        "cancelled" => "cancelled on request: the best plan found so far",
        "numerical_error" => "the method failed numerically: the best plan found before",
        "infeasible" => "the rules admit no allocation (proven)",
        _ => "a status this report does not know",
    }
}

fn card(out: &mut String, label: &str, value_html: &str, detail_html: &str) {
    let _ = writeln!(
        out,
        "<div class=\"card\"><div class=\"label\">{}</div><div class=\"value\">{value_html}</div><div class=\"detail\">{detail_html}</div></div>",
        escape(label)
    );
}

fn badge(status: &str) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        status_class(status),
        escape(status)
    )
}

/// The objective's name in words.
fn objective_name(objective: Option<Objective>) -> &'static str {
    match objective {
        Some(Objective::Response) => "response",
        Some(Objective::Profit { .. }) => "profit",
        Some(Objective::MinSpend { .. }) => "spend (minimized)",
        None => "objective",
    }
}

/// A table: header cells (escaped here) and rows of cells (already HTML); the first
/// column is the row's header and, like the next `text_columns - 1`, left-aligned text;
/// the others are numbers, right-aligned.
fn table(
    caption: &str,
    head: &[&str],
    rows: &[Vec<String>],
    class_of_row: &[&str],
    text_columns: usize,
) -> String {
    let mut out = String::from("<div class=\"scroll\"><table>");
    if !caption.is_empty() {
        let _ = write!(out, "<caption>{}</caption>", escape(caption));
    }
    out.push_str("<thead><tr>");
    for (i, h) in head.iter().enumerate() {
        let _ = write!(
            out,
            "<th scope=\"col\"{}>{}</th>",
            if i < text_columns.max(1) {
                " class=\"text\""
            } else {
                ""
            },
            escape(h)
        );
    }
    out.push_str("</tr></thead><tbody>");
    for (r, row) in rows.iter().enumerate() {
        match class_of_row.get(r).filter(|c| !c.is_empty()) {
            Some(c) => {
                let _ = write!(out, "<tr class=\"{c}\">");
            }
            None => out.push_str("<tr>"),
        }
        for (i, cell) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, "<th scope=\"row\" class=\"text\">{cell}</th>");
            } else if i < text_columns {
                let _ = write!(out, "<td class=\"text\">{cell}</td>");
            } else {
                let _ = write!(out, "<td>{cell}</td>");
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>\n");
    out
}

fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map_or_else(|| "–".to_string(), f)
}

/// The HTML report of one result: status, certificate, allocation, flighting, response
/// curves (when `problem` is given; a labelled section says how to get them otherwise),
/// the posterior spread where the result has one, and the solve's metrics.
///
/// Every channel of the result must be one of `problem`'s, with one value per period;
/// an error names the field (`allocation.NAME`).
pub fn result_html(result: &ResultFile, problem: Option<&Compiled>) -> Result<String, ReportError> {
    result.check("")?;
    let view = ResultView::new(result, problem)?;
    let objective_kind = view.problem.as_ref().map(|p| p.objective);
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<header><p class=\"kicker\">Atlas report</p><h1>{}</h1><p class=\"sub\">optimizer <strong>{}</strong> · {} channels × {} period{}{}</p></header>",
        escape(&result.problem),
        escape(&result.optimizer),
        view.channels.len(),
        view.periods,
        if view.periods == 1 { "" } else { "s" },
        view.problem
            .as_ref()
            .and_then(|p| p.source.as_ref())
            .map(|s| format!(" · problem file <code>{}</code>", escape(s)))
            .unwrap_or_default()
    );
    if !view.notes.is_empty() {
        body.push_str("<div class=\"notice\" role=\"note\">");
        for n in &view.notes {
            let _ = write!(body, "<p>{}</p>", escape(n));
        }
        body.push_str("</div>\n");
    }
    body.push_str(&summary_cards(result, &view, objective_kind));
    body.push_str(&allocation_section(result, &view, objective_kind));
    body.push_str(&flighting_section(&view));
    body.push_str(&curves_section(&view));
    if let Some(risk) = &result.risk {
        body.push_str(&risk_section(result, risk));
    }
    body.push_str(&metrics_section(result));
    let _ = writeln!(
        body,
        "<footer>Made by atlas-report {} from a result of <code>atlas optimize</code>. This page is self-contained: no script, no font or picture from the network.</footer>",
        env!("CARGO_PKG_VERSION")
    );
    Ok(page(&format!("Atlas report · {}", result.problem), &body))
}

fn summary_cards(result: &ResultFile, view: &ResultView, objective: Option<Objective>) -> String {
    let mut out = String::from("<section class=\"cards\" aria-label=\"Summary\">\n");
    card(
        &mut out,
        "Status",
        &badge(&result.status),
        &escape(status_meaning(&result.status)),
    );
    card(
        &mut out,
        &match objective {
            Some(_) => format!("Objective ({})", objective_name(objective)),
            None => "Objective".to_string(),
        },
        &fmt::amount(result.objective),
        &match objective {
            Some(Objective::Profit { margin }) => {
                format!("margin × response − spend, margin {}", fmt::ratio(margin))
            }
            Some(Objective::MinSpend { target }) => {
                format!("least spend with response ≥ {}", fmt::amount(target))
            }
            Some(Objective::Response) => "total response of the plan".to_string(),
            None => "as the result reports it".to_string(),
        },
    );
    // The certificate: which side the bound is on follows from the objective's sense,
    // or, without the problem, from where the bound lies.
    match (result.bound, result.gap()) {
        (Some(b), Some(g)) => {
            let maximize = match objective {
                Some(o) => o.maximize(),
                None => b >= result.objective,
            };
            let side = if maximize {
                "no allocation does better than this (an upper bound)"
            } else {
                "no allocation spends less (a lower bound)"
            };
            card(
                &mut out,
                "Certificate: proven bound",
                &fmt::amount(b),
                &format!("gap {} · {side}", fmt::gap(g)),
            );
        }
        _ => card(
            &mut out,
            "Certificate",
            "none",
            &format!(
                "`{}` proves no bound; `convex` (concave curves) and `milp` do",
                escape(&result.optimizer)
            ),
        ),
    }
    let budget = view.problem.as_ref().map(|p| p.budget);
    card(
        &mut out,
        "Total spend",
        &fmt::amount(result.total_spend),
        &match budget {
            Some(b) => format!("budget {}", fmt::amount(b)),
            None => "over all channels and periods".to_string(),
        },
    );
    let reference = budget.unwrap_or(result.total_spend);
    let feasible = result.max_violation <= 1e-6 * reference.max(1.0);
    card(
        &mut out,
        "Largest rule violation",
        &if result.max_violation == 0.0 {
            "0".to_string()
        } else {
            fmt::scientific(result.max_violation)
        },
        if feasible {
            "feasible: within 10⁻⁶ × budget, the contract's tolerance"
        } else {
            "INFEASIBLE: beyond the contract's tolerance"
        },
    );
    let optimizer_detail = match &result.selected {
        Some(s) => format!("chosen by <code>auto</code>: {}", escape(&s.reason)),
        None => "named by the user".to_string(),
    };
    card(
        &mut out,
        "Optimizer",
        &escape(
            result
                .selected
                .as_ref()
                .map_or(&result.optimizer, |s| &s.optimizer),
        ),
        &optimizer_detail,
    );
    if let Some(m) = result.budget_multiplier {
        card(
            &mut out,
            "Marginal return of the budget",
            &fmt::ratio(m),
            "d objective / d budget at this plan: what one more unit of budget buys",
        );
    }
    out.push_str("</section>\n");
    out
}

fn allocation_section(
    result: &ResultFile,
    view: &ResultView,
    objective: Option<Objective>,
) -> String {
    let bars: Vec<Bar> = view
        .channels
        .iter()
        .map(|c| Bar {
            label: c.name.clone(),
            value: c.total,
            note: format!("{} · {}", fmt::amount(c.total), fmt::percent(c.share)),
        })
        .collect();
    let mut svg = Svg::new();
    let h = charts::bars(&mut svg, 0.0, &bars, "total spend over all periods");
    let picture = svg.finish(
        WIDTH,
        h,
        "Allocation by channel",
        &format!(
            "Horizontal bars: each channel's total spend over all periods; total {}.",
            fmt::amount(result.total_spend)
        ),
        false,
    );
    let with_model = view.problem.is_some();
    let mut head = vec!["channel", "total spend", "share"];
    if with_model {
        head.extend(["response", "average ROI", "marginal ROI"]);
    }
    let mut rows = Vec::new();
    let mut classes = Vec::new();
    for c in &view.channels {
        let mut row = vec![escape(&c.name), fmt::amount(c.total), fmt::percent(c.share)];
        if let Some(m) = &c.model {
            let avg = m.response.filter(|_| c.total > 0.0).map(|r| r / c.total);
            row.extend([
                opt(m.response, fmt::amount),
                opt(avg, fmt::ratio),
                opt(m.marginal_roi, fmt::ratio),
            ]);
        } else if with_model {
            row.extend(["–".to_string(), "–".to_string(), "–".to_string()]);
        }
        rows.push(row);
        classes.push("");
    }
    let spend: f64 = view.channels.iter().map(|c| c.total).sum();
    let mut total = vec![
        "total".to_string(),
        fmt::amount(spend),
        fmt::percent(if spend > 0.0 { 1.0 } else { 0.0 }),
    ];
    if with_model {
        let responses: Option<f64> = view
            .channels
            .iter()
            .map(|c| c.model.as_ref().and_then(|m| m.response))
            .sum();
        total.extend([
            opt(responses, fmt::amount),
            opt(
                responses.filter(|_| spend > 0.0).map(|r| r / spend),
                fmt::ratio,
            ),
            String::new(),
        ]);
    }
    rows.push(total);
    classes.push("total");
    let explain = if with_model {
        format!(
            "Total spend of each channel over all periods. Response is each channel's part of the {} (discounted, with carry-over); average ROI is response over spend; marginal ROI is the extra response of one more unit of the channel's spend, spread over the periods like the plan.",
            if matches!(objective, Some(Objective::Profit { .. })) {
                "response behind the profit"
            } else {
                "total response"
            }
        )
    } else {
        "Total spend of each channel over all periods. Give the problem file (<code>--problem</code>) to see each channel's response, average and marginal ROI.".to_string()
    };
    format!(
        "<section id=\"allocation\"><h2>Allocation by channel</h2><p class=\"explain\">{explain}</p><figure class=\"wide\">{picture}</figure>\n{}</section>\n",
        table("", &head, &rows, &classes, 1)
    )
}

fn flighting_section(view: &ResultView) -> String {
    if view.periods <= 1 {
        return "<section id=\"flighting\"><h2>Spend over the periods</h2><p class=\"explain\">A single-period problem: the allocation above is the whole plan.</p></section>\n".to_string();
    }
    let rows: Vec<(String, Vec<f64>)> = view
        .channels
        .iter()
        .map(|c| (c.name.clone(), c.spend.clone()))
        .collect();
    let mut svg = Svg::new();
    let h = charts::flighting(&mut svg, 0.0, &rows);
    let picture = svg.finish(
        WIDTH,
        h,
        "Spend of each channel over the periods",
        "One row per channel, one bar per period; bar heights share one scale.",
        false,
    );
    let mut head: Vec<String> = vec!["channel".to_string()];
    head.extend((0..view.periods).map(|t| t.to_string()));
    let head_refs: Vec<&str> = head.iter().map(String::as_str).collect();
    let table_rows: Vec<Vec<String>> = view
        .channels
        .iter()
        .map(|c| {
            std::iter::once(escape(&c.name))
                .chain(c.spend.iter().map(|&v| fmt::amount(v)))
                .collect()
        })
        .collect();
    format!(
        "<section id=\"flighting\"><h2>Spend over the periods</h2><p class=\"explain\">Each channel's spend in each period (its flighting), all rows on one scale.</p><figure class=\"wide\">{picture}</figure>\n<details><summary>The spend per period as a table</summary>{}</details></section>\n",
        table(
            "Spend by channel (rows) and period (columns)",
            &head_refs,
            &table_rows,
            &[],
            1
        )
    )
}

fn curves_section(view: &ResultView) -> String {
    let mut out = String::from("<section id=\"curves\"><h2>Response curves</h2>");
    let Some(problem) = &view.problem else {
        out.push_str("<p class=\"explain\"><strong>Not drawn: the result file does not carry the response model.</strong> Give the problem the result was solved for: <code>atlas report RESULT.json --problem PROBLEM.toml --output report.html</code>.</p></section>\n");
        return out;
    };
    if !problem.has_curves {
        out.push_str("<p class=\"explain\"><strong>Not drawn: the problem's model is not the built-in curve model</strong> (a custom or external model has no curves to draw); the marginal ROIs in the table above come from its gradient.</p></section>\n");
        return out;
    }
    // The simple reading (the tangent's slope is the marginal ROI) holds only for one
    // period without carry-over or discount, channel by channel.
    let simple = view.channels.iter().all(|c| {
        c.model
            .as_ref()
            .and_then(|m| m.curve.as_ref())
            .is_none_or(|chart| chart.slope_is_marginal_roi)
    });
    let _ = write!(
        out,
        "<p class=\"explain\">{}</p><div class=\"curves\">",
        if simple {
            "Each channel's curve f(a) against its spend a (one period, no carry-over). The dot is the chosen spend; the dashed tangent's slope is its marginal return, the marginal ROI."
        } else {
            "Each channel's curve f(a): the response of one period against its <em>adstocked</em> spend a, that is the period's spend plus what carries over from earlier periods (weighted by the adstock). The dots are the plan's periods on the curve (before discounting); the dashed tangent is drawn at their mean. The marginal ROI counts carry-over into later periods and discounting, so it can differ from the tangent's slope."
        }
    );
    for c in &view.channels {
        let Some(m) = &c.model else { continue };
        let Some(chart) = &m.curve else { continue };
        let mut svg = Svg::new();
        let h = charts::response_curve(&mut svg, chart);
        let picture = svg.finish(
            CURVE_WIDTH,
            h,
            &format!("Response curve of {}", c.name),
            &format!(
                "The curve {} with the plan's adstocked spend marked; total spend {}, marginal ROI {}.",
                m.describe.as_deref().unwrap_or(""),
                fmt::amount(c.total),
                opt(m.marginal_roi, fmt::ratio)
            ),
            false,
        );
        let _ = write!(
            out,
            "<figure class=\"curve\"><h3>{}</h3>{picture}<figcaption>{}<br>spend {} · response {} · marginal ROI <strong>{}</strong></figcaption></figure>",
            escape(&c.name),
            escape(m.describe.as_deref().unwrap_or("")),
            fmt::amount(c.total),
            opt(m.response, fmt::amount),
            opt(m.marginal_roi, fmt::ratio)
        );
    }
    out.push_str("</div></section>\n");
    out
}

fn spread_of(risk: &Risk) -> Spread {
    Spread {
        p05: risk.p05,
        p50: risk.p50,
        p95: risk.p95,
        mean: risk.mean,
        cvars: risk.cvars(),
        draws: risk.draws,
    }
}

fn risk_section(result: &ResultFile, risk: &Risk) -> String {
    let mut svg = Svg::new();
    let h = charts::spread(&mut svg, 0.0, &spread_of(risk));
    let picture = svg.finish(
        WIDTH,
        h,
        "The objective over the posterior's draws",
        &format!(
            "5th to 95th percentile {} to {}, median {}, mean {}.",
            fmt::amount(risk.p05),
            fmt::amount(risk.p95),
            fmt::amount(risk.p50),
            fmt::amount(risk.mean)
        ),
        false,
    );
    let mut rows = vec![vec!["mean".to_string(), fmt::amount(risk.mean)]];
    for (level, v) in risk.cvars() {
        rows.push(vec![
            format!(
                "CVaR {} (the mean of the worst {} of draws)",
                fmt::level(level),
                fmt::level(level)
            ),
            fmt::amount(v),
        ]);
    }
    rows.push(vec!["5th percentile".to_string(), fmt::amount(risk.p05)]);
    rows.push(vec!["median".to_string(), fmt::amount(risk.p50)]);
    rows.push(vec!["95th percentile".to_string(), fmt::amount(risk.p95)]);
    for (k, v) in &risk.other {
        if !k.starts_with("cvar_") {
            rows.push(vec![escape(k), fmt::amount(*v)]);
        }
    }
    rows.push(vec!["draws".to_string(), fmt::count(risk.draws)]);
    format!(
        "<section id=\"risk\"><h2>Spread over the posterior</h2><p class=\"explain\">The plan's objective under each of the model's {} posterior draws. The objective above ({}) is the risk measure that was optimized.</p><figure class=\"wide\">{picture}</figure>\n{}</section>\n",
        fmt::count(risk.draws),
        fmt::amount(result.objective),
        table("", &["measure", "objective"], &rows, &[], 1)
    )
}

fn metrics_section(result: &ResultFile) -> String {
    let m = &result.metrics;
    let mut rows = vec![
        vec!["wall time".to_string(), fmt::seconds(m.wall_time_s)],
        vec![
            "time in the model".to_string(),
            fmt::seconds(m.model_time_s),
        ],
        vec![
            "time in constraints and projections".to_string(),
            fmt::seconds(m.constraint_time_s),
        ],
        vec!["model evaluations".to_string(), fmt::count(m.evaluations)],
        vec![
            "gradient evaluations".to_string(),
            fmt::count(m.gradient_evaluations),
        ],
        vec!["iterations".to_string(), fmt::count(m.iterations)],
        vec![
            "peak memory".to_string(),
            if m.peak_memory_mb > 0.0 {
                format!("{} MiB", fmt::significant(m.peak_memory_mb, 3))
            } else {
                "not reported on this platform".to_string()
            },
        ],
    ];
    if let Some(g) = &m.gradient {
        rows.push(vec!["gradients".to_string(), escape(&g.replace('_', " "))]);
    }
    for (k, v) in &m.other {
        rows.push(vec![escape(k), escape(&value_text(v))]);
    }
    if let Some(c) = &result.cache {
        rows.push(vec!["cache".to_string(), escape(&value_text(c))]);
    }
    for (k, v) in &result.other {
        rows.push(vec![escape(k), escape(&value_text(v))]);
    }
    format!(
        "<section id=\"metrics\"><h2>Solve metrics</h2>{}</section>\n",
        table("", &["metric", "value"], &rows, &[], 1)
    )
}

/// A JSON value as text: numbers formatted, strings bare, the rest as compact JSON.
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => fmt::count(u),
            (None, Some(f)) => fmt::amount(f),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// The budget points of a sweep, in its order.
fn budget_points(sweep: &SweepFile) -> Vec<BudgetPoint> {
    sweep
        .scenarios
        .iter()
        .map(|s| BudgetPoint {
            budget: s.budget,
            objective: s.objective,
            marginal_return: s.marginal_return,
            band: s
                .result
                .as_ref()
                .and_then(|r| r.risk.as_ref())
                .map(|r| (r.p05, r.p95)),
        })
        .collect()
}

/// Each channel's totals over the scenarios (0 where a scenario lacks the channel).
fn channel_totals(sweep: &SweepFile) -> Vec<(String, Vec<f64>)> {
    sweep
        .channels()
        .into_iter()
        .map(|name| {
            (
                name.to_string(),
                sweep
                    .scenarios
                    .iter()
                    .map(|s| s.totals.get(name).copied().unwrap_or(0.0))
                    .collect(),
            )
        })
        .collect()
}

/// Draws the budget curve and, below it, the channels' totals against budget, into
/// `svg` from `y`; returns the height used. A sweep with nothing solved gets a line
/// saying so.
fn draw_sweep(svg: &mut Svg, y: f64, sweep: &SweepFile, which: SweepCharts) -> f64 {
    if sweep.scenarios.is_empty() {
        svg.text(
            WIDTH / 2.0,
            y + 40.0,
            "middle",
            r#"class="empty" font-size="15""#,
            &format!(
                "No scenario was solved ({} failed): nothing to draw.",
                sweep.errors.len()
            ),
        );
        return 70.0;
    }
    let connect = sweep.is_budget_grid();
    let mut h = 0.0;
    if matches!(which, SweepCharts::Both | SweepCharts::Budget) {
        h += charts::budget_curve(svg, y + h, &budget_points(sweep), "objective", connect);
    }
    if matches!(which, SweepCharts::Both | SweepCharts::Totals) {
        let budgets: Vec<f64> = sweep.scenarios.iter().map(|s| s.budget).collect();
        h += charts::totals_against_budget(svg, y + h, &budgets, &channel_totals(sweep), connect);
    }
    h
}

#[derive(Debug, Clone, Copy)]
enum SweepCharts {
    Both,
    Budget,
    Totals,
}

/// The picture of `atlas sweep --plot FILE.svg`: the budget response curve (objective
/// against budget, the marginal return on a second axis) and, below it, each channel's
/// total against the budget; a standalone SVG file.
pub fn sweep_svg(sweep: &SweepFile) -> Result<String, ReportError> {
    sweep.check()?;
    let mut svg = Svg::new();
    svg.text(
        20.0,
        26.0,
        "start",
        r#"font-size="16" font-weight="600""#,
        &format!("{}: budget response ({})", sweep.base, sweep.optimizer),
    );
    let h = 34.0 + draw_sweep(&mut svg, 34.0, sweep, SweepCharts::Both);
    Ok(svg.finish(
        WIDTH,
        h,
        &format!("Budget response curve of {}", sweep.base),
        &format!(
            "Objective against budget with its marginal return on the right axis, and each channel's total spend against budget, over {} scenarios.",
            sweep.scenarios.len()
        ),
        true,
    ))
}

/// The HTML report of a sweep: the budget response curve with its marginal return, the
/// channels' totals against the budget, the table of scenarios and the failures.
pub fn sweep_html(sweep: &SweepFile) -> Result<String, ReportError> {
    sweep.check()?;
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<header><p class=\"kicker\">Atlas sweep report</p><h1>{}</h1><p class=\"sub\">optimizer <strong>{}</strong> · {} scenario{} solved, {} failed · Atlas {}</p></header>",
        escape(&sweep.base),
        escape(&sweep.optimizer),
        sweep.scenarios.len(),
        if sweep.scenarios.len() == 1 { "" } else { "s" },
        sweep.errors.len(),
        escape(&sweep.atlas_version)
    );
    body.push_str("<section class=\"cards\" aria-label=\"Summary\">\n");
    card(
        &mut body,
        "Scenarios solved",
        &fmt::count(sweep.scenarios.len() as u64),
        &format!("{} failed", sweep.errors.len()),
    );
    if let (Some(first), Some(last)) = (sweep.scenarios.first(), sweep.scenarios.last()) {
        if sweep.is_budget_grid() {
            card(
                &mut body,
                "Budgets",
                &format!(
                    "{} – {}",
                    fmt::amount(first.budget),
                    fmt::amount(last.budget)
                ),
                &format!(
                    "objective {} – {}",
                    fmt::amount(first.objective),
                    fmt::amount(last.objective)
                ),
            );
        }
        let best = sweep
            .scenarios
            .iter()
            .max_by(|a, b| a.objective.total_cmp(&b.objective))
            .unwrap_or(first);
        card(
            &mut body,
            "Highest objective",
            &fmt::amount(best.objective),
            &format!("scenario {}", escape(&best.name)),
        );
    }
    let certified = sweep
        .scenarios
        .iter()
        .filter(|s| s.status == "optimal")
        .count();
    card(
        &mut body,
        "Proven optimal",
        &format!("{certified} of {}", sweep.scenarios.len()),
        "scenarios whose status is optimal",
    );
    card(
        &mut body,
        "Wall time",
        &fmt::seconds(sweep.wall_time_s),
        "the whole sweep",
    );
    body.push_str("</section>\n");
    if !sweep.scenarios.is_empty() {
        let grid = sweep.is_budget_grid();
        let explain = if grid {
            "The best objective at each budget (left axis) and its marginal return, d objective / d budget, on the right axis: what one more unit of budget buys there. Where it falls below what a unit of the objective is worth to you (1 for a response in money), more budget stops paying."
        } else {
            "The scenarios do not form a budget grid (several share a budget, or budgets are not in increasing order): points are shown without lines; the bars below compare the scenarios."
        };
        let mut svg = Svg::new();
        let h = draw_sweep(&mut svg, 0.0, sweep, SweepCharts::Budget);
        let picture = svg.finish(
            WIDTH,
            h,
            "Budget response curve",
            "Objective against budget, marginal return on the right axis.",
            false,
        );
        let _ = writeln!(
            body,
            "<section id=\"budget-curve\"><h2>Budget response curve</h2><p class=\"explain\">{explain}</p><figure class=\"wide\">{picture}</figure></section>"
        );
        let mut svg = Svg::new();
        let h = draw_sweep(&mut svg, 0.0, sweep, SweepCharts::Totals);
        let picture = svg.finish(
            WIDTH,
            h,
            "Channel totals against budget",
            "Each channel's total spend at each budget.",
            false,
        );
        let _ = writeln!(
            body,
            "<section id=\"channel-totals\"><h2>Channel totals against budget</h2><p class=\"explain\">How each channel's total spend grows (or stays at a bound) as the budget grows.</p><figure class=\"wide\">{picture}</figure></section>"
        );
        if !grid {
            let bars: Vec<Bar> = sweep
                .scenarios
                .iter()
                .map(|s| Bar {
                    label: s.name.clone(),
                    value: s.objective,
                    note: fmt::amount(s.objective),
                })
                .collect();
            let mut svg = Svg::new();
            let h = charts::bars(&mut svg, 0.0, &bars, "objective");
            let picture = svg.finish(
                WIDTH,
                h,
                "Objective by scenario",
                "Horizontal bars: each scenario's objective.",
                false,
            );
            let _ = writeln!(
                body,
                "<section id=\"scenario-objectives\"><h2>Objective by scenario</h2><figure class=\"wide\">{picture}</figure></section>"
            );
        }
    }
    body.push_str(&scenario_table(sweep));
    body.push_str(&errors_table(sweep));
    let _ = writeln!(
        body,
        "<footer>Made by atlas-report {} from a result of <code>atlas sweep</code>. This page is self-contained: no script, no font or picture from the network.</footer>",
        env!("CARGO_PKG_VERSION")
    );
    Ok(page(&format!("Atlas sweep report · {}", sweep.base), &body))
}

fn scenario_table(sweep: &SweepFile) -> String {
    let head = [
        "scenario",
        "budget",
        "status",
        "objective",
        "gap",
        "total spend",
        "marginal return",
        "warm start",
        "cache",
        "time",
    ];
    let rows: Vec<Vec<String>> = sweep
        .scenarios
        .iter()
        .map(|s| {
            let gap = s
                .bound
                .map(|b| (b - s.objective).abs() / s.objective.abs().max(1.0));
            vec![
                escape(&s.name),
                fmt::amount(s.budget),
                badge(&s.status),
                fmt::amount(s.objective),
                opt(gap, fmt::gap),
                fmt::amount(s.total_spend),
                opt(s.marginal_return, fmt::ratio),
                s.warm_start
                    .map_or("–", |w| if w { "yes" } else { "no" })
                    .to_string(),
                escape(s.cache.as_deref().unwrap_or("–")),
                fmt::seconds(s.wall_time_s),
            ]
        })
        .collect();
    let channels = sweep.channels();
    // Header cells are escaped by `table`.
    let mut totals_head = vec!["scenario"];
    totals_head.extend(channels.iter().copied());
    let totals_rows: Vec<Vec<String>> = sweep
        .scenarios
        .iter()
        .map(|s| {
            std::iter::once(escape(&s.name))
                .chain(
                    channels
                        .iter()
                        .map(|c| opt(s.totals.get(*c).copied(), fmt::amount)),
                )
                .collect()
        })
        .collect();
    format!(
        "<section id=\"scenarios\"><h2>Scenarios</h2>{}<details><summary>Channel totals by scenario</summary>{}</details></section>\n",
        table("", &head, &rows, &[], 1),
        table(
            "Total spend of each channel (columns) in each scenario (rows)",
            &totals_head,
            &totals_rows,
            &[],
            1
        )
    )
}

fn errors_table(sweep: &SweepFile) -> String {
    if sweep.errors.is_empty() {
        return "<section id=\"errors\"><h2>Failed scenarios</h2><p class=\"explain\">None: every scenario was solved.</p></section>\n".to_string();
    }
    let rows: Vec<Vec<String>> = sweep
        .errors
        .iter()
        .map(|e| vec![escape(&e.name), escape(&e.kind), escape(&e.message)])
        .collect();
    let t = table("", &["scenario", "kind", "message"], &rows, &[], 3);
    format!(
        "<section id=\"errors\"><h2>Failed scenarios</h2><p class=\"explain\">These scenarios have no result; the others were solved.</p>{t}</section>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{parse_input, Input};

    #[test]
    fn a_result_page_without_problem_labels_the_missing_curves() {
        let text = include_str!("../tests/fixtures/retail_q4_convex.json");
        let Input::Result(r) = parse_input(text).unwrap() else {
            panic!()
        };
        let view = ResultView::new(&r, None).unwrap();
        assert_eq!(view.channels[0].name, "tv");
        assert!(view.channels.iter().all(|c| c.model.is_none()));
        let html = result_html(&r, None).unwrap();
        assert!(html.contains("Not drawn: the result file does not carry the response model"));
        assert!(html.contains("--problem PROBLEM.toml"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http"));
    }
}
