//! The charts, each a function of plain numbers that draws into an [`Svg`] at a given
//! place and returns the height it used, so that the HTML page shows them one by one
//! and the sweep picture stacks two in one file.

use atlas_core::Curve;

use crate::fmt;
use crate::svg::{
    colour, dash, marker, num, shorten, text_width, LegendEntry, Sample, Scale, Svg, Ticks, YAxis,
    GRID, INK, MUTED,
};

/// Width of every chart, in pixels (the page scales them down on narrow screens).
pub const WIDTH: f64 = 760.0;

/// The colour of single-series bars.
const BAR: &str = "#0072B2";
/// The colour of the marginal return and of marked points.
const ACCENT: &str = "#D55E00";
/// The same hue dark enough for text on white (contrast 6:1; `ACCENT` is 3.9:1, enough
/// for lines and markers, not for small text).
const ACCENT_TEXT: &str = "#A34700";

/// One bar of a horizontal bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Its label (a channel or scenario name).
    pub label: String,
    /// Its value.
    pub value: f64,
    /// The text beside the bar (the value formatted, a share).
    pub note: String,
}

/// A horizontal bar chart at `y` (one bar per row, value axis from zero at the bottom);
/// returns its height.
pub fn bars(svg: &mut Svg, y: f64, bars: &[Bar], axis_title: &str) -> f64 {
    let label_w = bars
        .iter()
        .map(|b| text_width(&shorten(&b.label, 26), 12.0))
        .fold(40.0, f64::max)
        .min(190.0);
    let note_w = bars
        .iter()
        .map(|b| text_width(&b.note, 12.0))
        .fold(40.0, f64::max)
        .min(220.0);
    let x0 = 16.0 + label_w;
    let x1 = WIDTH - 16.0 - note_w;
    let row = 24.0;
    let top = y + 8.0;
    let bottom = top + row * bars.len() as f64;
    let lo = bars.iter().map(|b| b.value).fold(0.0, f64::min);
    let hi = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let ticks = Ticks::new(lo, hi, 5);
    let scale = Scale::new(ticks.lo, ticks.hi, x0, x1);
    svg.x_axis(&ticks, &scale, top, bottom, axis_title);
    svg.raw(r#"<g class="bars">"#);
    for (i, b) in bars.iter().enumerate() {
        let ry = top + row * i as f64;
        let (a, z) = (scale.map(0.0), scale.map(b.value));
        svg.text(
            x0 - 8.0,
            ry + row / 2.0 + 4.0,
            "end",
            r#"class="bar-label""#,
            &shorten(&b.label, 26),
        );
        svg.rect(
            [a.min(z), ry + 4.0, (z - a).abs(), row - 8.0],
            BAR,
            &format!(r#"class="bar" data-value="{}""#, b.value),
            &format!("{}: {}", b.label, b.note),
        );
        svg.text(
            a.max(z) + 6.0,
            ry + row / 2.0 + 4.0,
            "start",
            &format!(r#"class="bar-note" fill="{MUTED}""#),
            &b.note,
        );
    }
    svg.raw("</g>");
    bottom - y + 42.0
}

/// The flighting chart at `y`: one row per channel (name at the left, total at the
/// right), one bar per period, all rows on one scale so that heights compare across
/// channels; returns its height.
pub fn flighting(svg: &mut Svg, y: f64, rows: &[(String, Vec<f64>)]) -> f64 {
    let periods = rows.first().map_or(0, |r| r.1.len());
    let peak = rows
        .iter()
        .flat_map(|r| r.1.iter().copied())
        .fold(0.0, f64::max);
    let label_w = rows
        .iter()
        .map(|r| text_width(&shorten(&r.0, 22), 12.0))
        .fold(40.0, f64::max)
        .min(170.0);
    let totals: Vec<String> = rows.iter().map(|r| fmt::amount(r.1.iter().sum())).collect();
    let total_w = totals
        .iter()
        .map(|t| text_width(t, 12.0))
        .fold(text_width("total", 12.0), f64::max);
    let x0 = 16.0 + label_w;
    let x1 = WIDTH - 20.0 - total_w;
    let row = 40.0;
    let top = y + 22.0;
    let slot = (x1 - x0) / periods.max(1) as f64;
    let bar_w = (slot * 0.78).max(0.5);
    let scale_note = format!(
        "bar height: spend in the period; a full row is {} per period",
        fmt::amount(peak)
    );
    svg.text(
        x0,
        y + 10.0,
        "start",
        &format!(r#"class="note" fill="{MUTED}""#),
        &scale_note,
    );
    svg.text(
        WIDTH - 16.0,
        y + 10.0,
        "end",
        &format!(r#"class="note" fill="{MUTED}" font-weight="600""#),
        "total",
    );
    svg.raw(r#"<g class="flighting">"#);
    for (c, (name, spend)) in rows.iter().enumerate() {
        let ry = top + row * c as f64;
        let base = ry + row - 4.0;
        svg.line(x0, base, x1, base, GRID, "");
        svg.text(
            x0 - 8.0,
            ry + row / 2.0 + 4.0,
            "end",
            r#"class="row-label""#,
            &shorten(name, 22),
        );
        for (t, &v) in spend.iter().enumerate() {
            let h = if peak > 0.0 {
                v / peak * (row - 8.0)
            } else {
                0.0
            };
            svg.rect(
                [
                    x0 + slot * t as f64 + 0.5 * (slot - bar_w),
                    base - h,
                    bar_w,
                    h,
                ],
                colour(0),
                &format!(
                    r#"class="period-bar" data-channel="{c}" data-period="{t}" data-value="{v}""#
                ),
                &format!("{name}, period {t}: {}", fmt::amount(v)),
            );
        }
        svg.text(
            WIDTH - 16.0,
            ry + row / 2.0 + 4.0,
            "end",
            r#"class="row-total""#,
            &totals[c],
        );
    }
    svg.raw("</g>");
    let bottom = top + row * rows.len() as f64;
    // Period labels: about 20 at most, at whole steps.
    let every = periods.div_ceil(20).max(1);
    for t in (0..periods).step_by(every) {
        svg.text(
            x0 + slot * (t as f64 + 0.5),
            bottom + 14.0,
            "middle",
            &format!(r#"class="tick" fill="{MUTED}""#),
            &t.to_string(),
        );
    }
    svg.text(
        0.5 * (x0 + x1),
        bottom + 32.0,
        "middle",
        &format!(r#"class="axis-title" fill="{MUTED}""#),
        "period (numbered from 0, as in the problem's `periods` lists)",
    );
    bottom - y + 42.0
}

/// What a response curve chart shows of one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveChart {
    /// The channel's name.
    pub name: String,
    /// Its response curve `f(a)`.
    pub curve: Curve,
    /// The adstocked spend of each period of the plan.
    pub adstocked: Vec<f64>,
    /// The channel's marginal ROI at the plan.
    pub marginal_roi: Option<f64>,
    /// Whether the curve's slope at the plan is the marginal ROI itself (one period, no
    /// carry-over, no discount): then the tangent is labelled with it.
    pub slope_is_marginal_roi: bool,
    /// An x range to use when the plan spends nothing on the channel.
    pub fallback_range: f64,
}

/// Width of one response-curve chart (two fit side by side on a wide page).
pub const CURVE_WIDTH: f64 = 372.0;
/// Height of one response-curve chart.
pub const CURVE_HEIGHT: f64 = 250.0;

/// One channel's response curve: `f` against adstocked spend per period, the plan's
/// periods marked on it, the tangent at their mean; returns the picture's height.
pub fn response_curve(svg: &mut Svg, chart: &CurveChart) -> f64 {
    let (x0, x1, y0, y1) = (62.0, CURVE_WIDTH - 24.0, 30.0, CURVE_HEIGHT - 46.0);
    let a_max = chart.adstocked.iter().copied().fold(0.0, f64::max);
    let reach = if a_max > 0.0 {
        1.6 * a_max
    } else {
        chart.fallback_range.max(1.0)
    };
    let xt = Ticks::new(0.0, reach, 4);
    let n = 120;
    let points: Vec<(f64, f64)> = (0..=n)
        .map(|i| {
            let a = xt.hi * i as f64 / n as f64;
            (a, chart.curve.value(a))
        })
        .collect();
    let f_max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let yt = Ticks::new(0.0, f_max, 4);
    let (x_title, y_title) = if chart.slope_is_marginal_roi {
        ("spend", "response")
    } else {
        ("adstocked spend per period", "response per period")
    };
    let (sx, sy) = svg.plot_axes(&xt, &yt, [x0, x1, y0, y1], x_title, y_title, MUTED);
    let beta = chart.curve.saturation();
    if beta.is_finite() && beta <= yt.hi {
        let by = sy.map(beta);
        svg.line(x0, by, x1, by, MUTED, r#"stroke-dasharray="3 3""#);
        svg.text(
            x1 - 2.0,
            by - 4.0,
            "end",
            &format!(r#"class="note" fill="{MUTED}""#),
            "saturation",
        );
    }
    let pixels: Vec<(f64, f64)> = points
        .iter()
        .map(|&(a, f)| (sx.map(a), sy.map(f)))
        .collect();
    svg.polyline(&pixels, BAR, 2.2, r#"class="curve""#);
    // The plan's periods on the curve.
    svg.raw(r#"<g class="plan-points">"#);
    for (t, &a) in chart.adstocked.iter().enumerate() {
        let f = chart.curve.value(a);
        svg.raw(&format!(
            r#"<circle class="plan-point" cx="{}" cy="{}" r="4" fill="{ACCENT}" fill-opacity="0.35" stroke="{ACCENT}" stroke-width="1.2" data-a="{a}" data-f="{f}"><title>period {t}: adstocked spend {}, response {}</title></circle>"#,
            num(sx.map(a)),
            num(sy.map(f)),
            fmt::amount(a),
            fmt::amount(f)
        ));
    }
    svg.raw("</g>");
    // The tangent at the mean adstocked spend.
    let periods = chart.adstocked.len().max(1) as f64;
    let a_bar = chart.adstocked.iter().sum::<f64>() / periods;
    let slope = chart.curve.derivative(a_bar);
    let f_bar = chart.curve.value(a_bar);
    let half = 0.22 * (xt.hi - xt.lo);
    let (ta, tb) = ((a_bar - half).max(0.0), (a_bar + half).min(xt.hi));
    let clip = |a: f64| (f_bar + slope * (a - a_bar)).clamp(yt.lo, yt.hi);
    svg.line(
        sx.map(ta),
        sy.map(clip(ta)),
        sx.map(tb),
        sy.map(clip(tb)),
        INK,
        &format!(
            r#"class="tangent" stroke-width="1.4" stroke-dasharray="5 3" data-slope="{slope}""#
        ),
    );
    let label = if chart.slope_is_marginal_roi {
        match chart.marginal_roi {
            Some(m) => format!("marginal ROI {}", fmt::ratio(m)),
            None => format!("slope {}", fmt::ratio(slope)),
        }
    } else {
        format!("slope {}", fmt::ratio(slope))
    };
    let lx = sx.map(a_bar);
    let ly = sy.map(f_bar);
    // Below and right of the point where the label fits, else above and left of it: a
    // rising concave curve lies below its tangent, so both places are clear of it.
    let right = lx + 8.0 + text_width(&label, 12.0) <= CURVE_WIDTH - 4.0;
    svg.text(
        if right { lx + 8.0 } else { lx - 8.0 },
        if right {
            (ly + 18.0).min(y1 - 6.0)
        } else {
            (ly - 10.0).max(y0 + 12.0)
        },
        if right { "start" } else { "end" },
        r##"class="tangent-label" font-weight="600" stroke="#ffffff" stroke-width="3" paint-order="stroke""##,
        &label,
    );
    svg.raw(&format!(
        r#"<circle class="tangent-point" cx="{}" cy="{}" r="3" fill="{INK}"/>"#,
        num(lx),
        num(ly)
    ));
    // The headline: the chosen spend (one period) or how many periods the dots are, and
    // the marginal ROI where the tangent is not labelled with it.
    let mut head = if chart.adstocked.len() == 1 {
        format!("chosen: {}", fmt::amount(chart.adstocked[0]))
    } else {
        format!("dots: the plan's {} periods", chart.adstocked.len())
    };
    if let (Some(m), false) = (chart.marginal_roi, chart.slope_is_marginal_roi) {
        head.push_str(&format!(" · marginal ROI {}", fmt::ratio(m)));
    }
    svg.text(
        x0,
        16.0,
        "start",
        &format!(r#"class="curve-head" fill="{INK}""#),
        &head,
    );
    CURVE_HEIGHT
}

/// One point of a sweep's budget response curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetPoint {
    /// The budget.
    pub budget: f64,
    /// The objective at it.
    pub objective: f64,
    /// d(objective)/d(budget) there.
    pub marginal_return: Option<f64>,
    /// The 5th and 95th percentiles over a posterior's draws, where the result has them.
    pub band: Option<(f64, f64)>,
}

/// The budget response curve at `y`: the objective against the budget (left axis), its
/// marginal return on a second axis (right), the 5–95 % band of a posterior where every
/// point has one; lines join the points when `connect` (a budget grid), else only the
/// points are drawn. Returns its height.
pub fn budget_curve(
    svg: &mut Svg,
    y: f64,
    points: &[BudgetPoint],
    objective_name: &str,
    connect: bool,
) -> f64 {
    let has_marginal = points.iter().any(|p| p.marginal_return.is_some());
    let has_band = connect && !points.is_empty() && points.iter().all(|p| p.band.is_some());
    let mut entries = vec![LegendEntry {
        label: objective_name.to_string(),
        colour: colour(0).to_string(),
        sample: Sample::Line {
            index: 0,
            dashed: false,
        },
    }];
    if has_marginal {
        entries.push(LegendEntry {
            label: "marginal return (right axis)".to_string(),
            colour: ACCENT.to_string(),
            sample: Sample::Line {
                index: 1,
                dashed: true,
            },
        });
    }
    if has_band {
        entries.push(LegendEntry {
            label: "5–95 % of the posterior draws".to_string(),
            colour: colour(0).to_string(),
            sample: Sample::Swatch,
        });
    }
    let (x0, x1) = (78.0, WIDTH - if has_marginal { 78.0 } else { 24.0 });
    let legend_bottom = svg.legend(x0, y + 16.0, x1, &entries);
    let (y0, y1) = (legend_bottom + 6.0, legend_bottom + 276.0);
    let b_lo = points
        .iter()
        .map(|p| p.budget)
        .fold(f64::INFINITY, f64::min);
    let b_hi = points
        .iter()
        .map(|p| p.budget)
        .fold(f64::NEG_INFINITY, f64::max);
    let xt = Ticks::new(b_lo, b_hi, 6);
    let values = points
        .iter()
        .flat_map(|p| [Some(p.objective), p.band.map(|b| b.0), p.band.map(|b| b.1)])
        .flatten();
    let (o_lo, o_hi) = values.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let yt = Ticks::new(o_lo, o_hi, 5);
    let (sx, sy) = svg.plot_axes(
        &xt,
        &yt,
        [x0, x1, y0, y1],
        "budget",
        objective_name,
        colour(0),
    );
    if has_band {
        let mut d = String::new();
        for (i, p) in points.iter().enumerate() {
            let (lo, _) = p.band.unwrap_or_default();
            d.push_str(&format!(
                "{}{} {}",
                if i == 0 { "M" } else { "L" },
                num(sx.map(p.budget)),
                num(sy.map(lo))
            ));
        }
        for p in points.iter().rev() {
            let (_, hi) = p.band.unwrap_or_default();
            d.push_str(&format!("L{} {}", num(sx.map(p.budget)), num(sy.map(hi))));
        }
        svg.raw(&format!(
            r#"<path class="band" d="{d}Z" fill="{}" fill-opacity="0.18" stroke="none"/>"#,
            colour(0)
        ));
    }
    let line: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (sx.map(p.budget), sy.map(p.objective)))
        .collect();
    if connect {
        svg.polyline(&line, colour(0), 2.2, r#"class="objective-line""#);
    }
    for (p, &(px, py)) in points.iter().zip(&line) {
        svg.raw(&format!(
            r#"<g class="objective-point" data-budget="{}" data-objective="{}"><title>budget {}: {} {}</title>"#,
            p.budget,
            p.objective,
            fmt::amount(p.budget),
            crate::svg::escape(objective_name),
            fmt::amount(p.objective)
        ));
        marker(svg, 0, px, py, colour(0));
        svg.raw("</g>");
    }
    if has_marginal {
        let (m_lo, m_hi) = points
            .iter()
            .filter_map(|p| p.marginal_return)
            .fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let mt = Ticks::new(m_lo, m_hi, 5);
        let sm = Scale::new(mt.lo, mt.hi, y1, y0);
        svg.y_axis(
            &mt,
            &sm,
            &YAxis {
                x: x1,
                grid: (x1, x1),
                left: false,
                title: "marginal return",
                colour: ACCENT_TEXT,
            },
        );
        // Separate runs where a point has no marginal return.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let mut runs = Vec::new();
        for p in points {
            match p.marginal_return {
                Some(m) => run.push((sx.map(p.budget), sm.map(m))),
                None => runs.push(std::mem::take(&mut run)),
            }
        }
        runs.push(run);
        for r in runs.iter().filter(|r| connect && !r.is_empty()) {
            svg.polyline(
                r,
                ACCENT,
                1.8,
                r#"class="marginal-line" stroke-dasharray="6 3""#,
            );
        }
        for p in points {
            if let Some(m) = p.marginal_return {
                svg.raw(&format!(
                    r#"<g class="marginal-point" data-budget="{}" data-marginal="{m}"><title>budget {}: marginal return {}</title>"#,
                    p.budget,
                    fmt::amount(p.budget),
                    fmt::ratio(m)
                ));
                marker(svg, 1, sx.map(p.budget), sm.map(m), ACCENT);
                svg.raw("</g>");
            }
        }
    }
    y1 - y + 44.0
}

/// Each channel's total against the budget at `y`, one line per channel (points only
/// unless `connect`); returns its height.
pub fn totals_against_budget(
    svg: &mut Svg,
    y: f64,
    budgets: &[f64],
    channels: &[(String, Vec<f64>)],
    connect: bool,
) -> f64 {
    let entries: Vec<LegendEntry> = channels
        .iter()
        .enumerate()
        .map(|(i, (name, _))| LegendEntry {
            label: name.clone(),
            colour: colour(i).to_string(),
            sample: Sample::Line {
                index: i,
                dashed: false,
            },
        })
        .collect();
    let (x0, x1) = (78.0, WIDTH - 24.0);
    let legend_bottom = svg.legend(x0, y + 16.0, x1, &entries);
    let (y0, y1) = (legend_bottom + 6.0, legend_bottom + 256.0);
    let b_lo = budgets.iter().copied().fold(f64::INFINITY, f64::min);
    let b_hi = budgets.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let xt = Ticks::new(b_lo, b_hi, 6);
    let t_hi = channels
        .iter()
        .flat_map(|c| c.1.iter().copied())
        .fold(0.0, f64::max);
    let yt = Ticks::new(0.0, t_hi, 5);
    let (sx, sy) = svg.plot_axes(
        &xt,
        &yt,
        [x0, x1, y0, y1],
        "budget",
        "channel total spend",
        MUTED,
    );
    for (i, (name, totals)) in channels.iter().enumerate() {
        let line: Vec<(f64, f64)> = budgets
            .iter()
            .zip(totals)
            .map(|(&b, &t)| (sx.map(b), sy.map(t)))
            .collect();
        svg.raw(&format!(r#"<g class="channel-series" data-channel="{i}">"#));
        if connect {
            svg.polyline(&line, colour(i), 2.0, dash(i).trim_start());
        }
        for ((&b, &t), &(px, py)) in budgets.iter().zip(totals).zip(&line) {
            svg.raw(&format!(
                r#"<g class="total-point" data-budget="{b}" data-total="{t}"><title>{}, budget {}: {}</title>"#,
                crate::svg::escape(name),
                fmt::amount(b),
                fmt::amount(t)
            ));
            marker(svg, i, px, py, colour(i));
            svg.raw("</g>");
        }
        svg.raw("</g>");
    }
    y1 - y + 44.0
}

/// What the distribution chart shows of a posterior's spread.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    /// 5th percentile.
    pub p05: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Mean.
    pub mean: f64,
    /// CVaR levels and values.
    pub cvars: Vec<(f64, f64)>,
    /// Number of draws.
    pub draws: u64,
}

/// Lanes for labels that start at their marks (left-aligned at `x`, `width` wide) along
/// one axis, lane 0 nearest the marks, each mark's leader line rising to its label: no
/// two labels of a lane overlap, and no label lies across the leader of a mark whose
/// label sits in a farther lane. `labels` are `(x, width)`; returns each one's lane.
///
/// Placed from right to left, a label's own leader (at its left edge) crosses no label
/// placed before, so it only has to rise above the labels of the marks its box covers.
pub fn label_lanes(labels: &[(f64, f64)]) -> Vec<usize> {
    let gap = 6.0;
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| labels[b].0.total_cmp(&labels[a].0));
    let mut lanes: Vec<Option<usize>> = vec![None; labels.len()];
    for i in order {
        let (x, w) = labels[i];
        let lane = labels
            .iter()
            .zip(&lanes)
            .filter_map(|(&(xj, _), lane)| lane.filter(|_| xj >= x - gap && xj <= x + w + gap))
            .max()
            .map_or(0, |l| l + 1);
        lanes[i] = Some(lane);
    }
    lanes.into_iter().map(|l| l.unwrap_or(0)).collect()
}

/// The objective's spread over the draws at `y`: the 5–95 % interval as a band, the
/// median, the mean and each CVaR marked and labelled; returns its height.
pub fn spread(svg: &mut Svg, y: f64, s: &Spread) -> f64 {
    let mut marks: Vec<(String, f64, &str)> = vec![
        ("p05".to_string(), s.p05, BAR),
        ("median".to_string(), s.p50, BAR),
        ("p95".to_string(), s.p95, BAR),
        ("mean".to_string(), s.mean, INK),
    ];
    for &(level, v) in &s.cvars {
        marks.push((format!("CVaR {}", fmt::level(level)), v, ACCENT_TEXT));
    }
    let lo = marks.iter().map(|m| m.1).fold(f64::INFINITY, f64::min);
    let hi = marks.iter().map(|m| m.1).fold(f64::NEG_INFINITY, f64::max);
    let pad = 0.08 * (hi - lo).max(hi.abs() * 1e-6).max(1e-12);
    let xt = Ticks::new(lo - pad, hi + pad, 6);
    let texts: Vec<String> = marks
        .iter()
        .map(|(name, v, _)| format!("{name} {}", fmt::amount(*v)))
        .collect();
    // Labels start at their marks: room on the right for the widest.
    let widest = texts
        .iter()
        .map(|t| text_width(t, 12.0))
        .fold(0.0, f64::max);
    let (x0, x1) = (40.0, WIDTH - 24.0 - widest.min(260.0));
    let sx = Scale::new(xt.lo, xt.hi, x0, x1);
    let lanes = label_lanes(
        &marks
            .iter()
            .zip(&texts)
            .map(|(m, t)| (sx.map(m.1), text_width(t, 12.0)))
            .collect::<Vec<_>>(),
    );
    let n_lanes = lanes.iter().max().map_or(1, |m| m + 1) as f64;
    let lane_h = 17.0;
    let band_top = y + 12.0 + lane_h * n_lanes;
    let band_bottom = band_top + 26.0;
    svg.x_axis(
        &xt,
        &sx,
        band_top - 6.0,
        band_bottom + 12.0,
        &format!("objective over {} draws", fmt::count(s.draws)),
    );
    svg.rect(
        [
            sx.map(s.p05),
            band_top,
            sx.map(s.p95) - sx.map(s.p05),
            band_bottom - band_top,
        ],
        BAR,
        r#"class="spread-band" fill-opacity="0.25""#,
        &format!(
            "5th to 95th percentile: {} to {}",
            fmt::amount(s.p05),
            fmt::amount(s.p95)
        ),
    );
    for (((_, v, c), text), lane) in marks.iter().zip(&texts).zip(&lanes) {
        let x = sx.map(*v);
        // Lane 0 sits just above the band; farther lanes above it.
        let ly = band_top - 8.0 - lane_h * *lane as f64;
        svg.line(
            x,
            ly + 4.0,
            x,
            band_bottom,
            c,
            &format!(r#"class="spread-mark" stroke-width="2" data-value="{v}""#),
        );
        svg.text(
            x + 3.0,
            ly,
            "start",
            &format!(r##"class="spread-label" fill="{c}" stroke="#ffffff" stroke-width="3" paint-order="stroke""##),
            text,
        );
    }
    band_bottom + 12.0 - y + 40.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The picture parsed as XML (it must be well-formed).
    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}\n{svg}"))
    }

    fn attr(n: &roxmltree::Node<'_, '_>, name: &str) -> f64 {
        n.attribute(name).unwrap().parse().unwrap()
    }

    fn with_class<'a, 'i>(
        doc: &'a roxmltree::Document<'i>,
        class: &'a str,
    ) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> + 'a {
        doc.descendants()
            .filter(move |n| n.attribute("class") == Some(class))
    }

    #[test]
    fn bar_lengths_are_proportional_to_the_values() {
        let values = [1_164_451.0, 1_721_207.0, 307_852.6, 3_650_000.0];
        let input: Vec<Bar> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| Bar {
                label: format!("c{i}"),
                value: v,
                note: fmt::amount(v),
            })
            .collect();
        let mut svg = Svg::new();
        let h = bars(&mut svg, 0.0, &input, "spend");
        let text = svg.finish(WIDTH, h, "t", "d", true);
        let doc = parse(&text);
        let widths: Vec<f64> = with_class(&doc, "bar").map(|n| attr(&n, "width")).collect();
        assert_eq!(widths.len(), values.len());
        // Every bar starts at the zero of the axis and its length over its value is one
        // constant (within the two decimals of the coordinates).
        let xs: Vec<f64> = with_class(&doc, "bar").map(|n| attr(&n, "x")).collect();
        assert!(xs.windows(2).all(|w| w[0] == w[1]));
        let k = widths[3] / values[3];
        for (w, v) in widths.iter().zip(values) {
            assert!((w - k * v).abs() <= 0.01, "{w} vs {}", k * v);
        }
        // The axis: round ticks 0, 1M, ..., 4M at their places.
        let ticks: Vec<String> = with_class(&doc, "tick")
            .map(|n| n.text().unwrap().to_string())
            .collect();
        assert_eq!(ticks, ["0", "1M", "2M", "3M", "4M"]);
        let tick_x: Vec<f64> = with_class(&doc, "tick").map(|n| attr(&n, "x")).collect();
        assert!((tick_x[0] - xs[0]).abs() < 0.01);
        assert!(((tick_x[3] - tick_x[0]) - 3e6 * k).abs() < 0.05);
    }

    #[test]
    fn names_are_escaped_in_labels_and_tooltips() {
        let name = "tv <prime> & \"news\" 'x'\u{7}";
        let mut svg = Svg::new();
        let h = bars(
            &mut svg,
            0.0,
            &[Bar {
                label: name.to_string(),
                value: 1.0,
                note: "1".to_string(),
            }],
            "spend",
        );
        let mut h2 = h;
        h2 += flighting(&mut svg, h, &[(name.to_string(), vec![1.0, 2.0])]);
        let text = svg.finish(WIDTH, h2, name, name, true);
        let doc = parse(&text);
        let label = with_class(&doc, "bar-label").next().unwrap();
        assert_eq!(label.text(), Some("tv <prime> & \"news\" 'x'\\u{7}"));
        let title = doc
            .root_element()
            .children()
            .find(|n| n.has_tag_name("title"))
            .unwrap();
        assert_eq!(title.text(), Some("tv <prime> & \"news\" 'x'\\u{7}"));
        assert!(!text.contains("<prime>"));
    }

    #[test]
    fn flighting_heights_are_proportional_to_spend_on_one_scale() {
        let rows = vec![
            ("tv".to_string(), vec![100.0, 50.0, 0.0]),
            ("radio".to_string(), vec![25.0, 200.0, 75.0]),
        ];
        let mut svg = Svg::new();
        let h = flighting(&mut svg, 0.0, &rows);
        let text = svg.finish(WIDTH, h, "t", "d", true);
        let doc = parse(&text);
        let bars: Vec<(f64, f64)> = with_class(&doc, "period-bar")
            .map(|n| (attr(&n, "data-value"), attr(&n, "height")))
            .collect();
        assert_eq!(bars.len(), 6);
        let k = bars[4].1 / 200.0;
        assert!(k > 0.0);
        for (v, h) in bars {
            assert!((h - k * v).abs() <= 0.01, "{h} vs {}", k * v);
        }
        let totals: Vec<String> = with_class(&doc, "row-total")
            .map(|n| n.text().unwrap().to_string())
            .collect();
        assert_eq!(totals, ["150.00", "300.00"]);
    }

    #[test]
    fn plan_points_lie_on_the_curve_and_the_tangent_has_its_slope() {
        let curve = Curve::Hill {
            beta: 393_200.0,
            k: 67_690.0,
            s: 1.0,
        };
        let chart = CurveChart {
            name: "tv".to_string(),
            curve,
            adstocked: vec![93_555.9],
            marginal_roi: Some(curve.derivative(93_555.9)),
            slope_is_marginal_roi: true,
            fallback_range: 1.0,
        };
        let mut svg = Svg::new();
        let h = response_curve(&mut svg, &chart);
        let text = svg.finish(CURVE_WIDTH, h, "tv", "d", true);
        let doc = parse(&text);
        let point = with_class(&doc, "plan-point").next().unwrap();
        // The axes' ticks give the data-to-pixel map; the point must sit on it.
        let xticks: Vec<(f64, f64)> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("axis x-axis"))
            .flat_map(|g| g.children())
            .filter(|n| n.attribute("class") == Some("tick"))
            .map(|n| (attr(&n, "x"), parse_tick(n.text().unwrap())))
            .collect();
        let (px0, v0) = xticks[0];
        let (px1, v1) = *xticks.last().unwrap();
        let a = v0 + (attr(&point, "cx") - px0) / (px1 - px0) * (v1 - v0);
        assert!((a - 93_555.9).abs() / 93_555.9 < 1e-3, "{a}");
        let tangent = with_class(&doc, "tangent").next().unwrap();
        assert!((attr(&tangent, "data-slope") - curve.derivative(93_555.9)).abs() < 1e-12);
        let label = with_class(&doc, "tangent-label").next().unwrap();
        assert_eq!(
            label.text().unwrap(),
            format!("marginal ROI {}", fmt::ratio(curve.derivative(93_555.9)))
        );
    }

    /// Reads a tick label back (`150k`, `1.5M`).
    fn parse_tick(label: &str) -> f64 {
        let (digits, unit) = match label.chars().last() {
            Some('k') => (&label[..label.len() - 1], 1e3),
            Some('M') => (&label[..label.len() - 1], 1e6),
            Some('B') => (&label[..label.len() - 1], 1e9),
            _ => (label, 1.0),
        };
        digits.replace(',', "").parse::<f64>().unwrap() * unit
    }

    #[test]
    fn text_colours_are_readable_on_white() {
        for c in [ACCENT_TEXT, BAR] {
            let ratio = crate::svg::contrast_on_white(c);
            assert!(ratio >= 4.5, "{c}: {ratio}");
        }
    }

    #[test]
    fn a_posterior_band_spans_its_percentiles() {
        let points: Vec<BudgetPoint> = (1..=4)
            .map(|i| BudgetPoint {
                budget: i as f64,
                objective: 10.0 * i as f64,
                marginal_return: None,
                band: Some((8.0 * i as f64, 12.0 * i as f64)),
            })
            .collect();
        let mut svg = Svg::new();
        let h = budget_curve(&mut svg, 0.0, &points, "response", true);
        let text = svg.finish(WIDTH, h, "t", "d", true);
        let doc = parse(&text);
        let band = with_class(&doc, "band").next().expect("a band");
        // Its outline: 4 lower points left to right, then 4 upper points back.
        let d = band.attribute("d").unwrap();
        let ys: Vec<f64> = d
            .trim_end_matches('Z')
            .split(['M', 'L'])
            .filter(|p| !p.is_empty())
            .map(|p| p.split(' ').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(ys.len(), 8);
        let objective_ys: Vec<f64> = with_class(&doc, "objective-point")
            .map(|g| {
                let c = g.children().find(|n| n.has_tag_name("circle")).unwrap();
                attr(&c, "cy")
            })
            .collect();
        for i in 0..4 {
            // Pixels grow downwards: the lower edge is below the objective, the upper above.
            assert!(ys[i] > objective_ys[i] && ys[7 - i] < objective_ys[i]);
        }
        assert!(text.contains("5–95 % of the posterior draws"));
    }

    #[test]
    fn label_lanes_keep_labels_apart_and_off_the_leaders() {
        // Far apart: one lane.
        assert_eq!(label_lanes(&[(100.0, 50.0), (300.0, 50.0)]), [0, 0]);
        // Overlapping neighbours: the second goes up a lane.
        let lanes = label_lanes(&[(100.0, 120.0), (150.0, 120.0), (400.0, 80.0)]);
        assert_eq!(lanes, [1, 0, 0]);
        // Whatever the input, no two labels of one lane overlap and no label lies
        // across the leader of a mark labelled in a farther lane.
        let labels: Vec<(f64, f64)> = (0..12)
            .map(|i| {
                (
                    40.0 + 37.0 * ((i * 7) % 12) as f64,
                    60.0 + 9.0 * (i % 4) as f64,
                )
            })
            .collect();
        let lanes = label_lanes(&labels);
        for (i, &(xi, wi)) in labels.iter().enumerate() {
            for (j, &(xj, wj)) in labels.iter().enumerate() {
                if i == j {
                    continue;
                }
                // Boxes are [x, x + w].
                if lanes[i] == lanes[j] {
                    assert!(xi + wi <= xj || xj + wj <= xi, "{i} and {j} overlap");
                }
                if lanes[j] > lanes[i] {
                    assert!(xj < xi || xj > xi + wi, "{j}'s leader crosses {i}");
                }
            }
        }
    }

    #[test]
    fn budget_curve_points_sit_on_both_axes() {
        let points: Vec<BudgetPoint> = (1..=5)
            .map(|i| {
                let b = 1e6 * i as f64;
                BudgetPoint {
                    budget: b,
                    objective: 3e6 * (b / 1e6).sqrt(),
                    marginal_return: Some(1.5 / (b / 1e6).sqrt()),
                    band: None,
                }
            })
            .collect();
        let mut svg = Svg::new();
        let h = budget_curve(&mut svg, 0.0, &points, "response", true);
        let text = svg.finish(WIDTH, h, "t", "d", true);
        let doc = parse(&text);
        assert_eq!(with_class(&doc, "objective-point").count(), 5);
        assert_eq!(with_class(&doc, "marginal-point").count(), 5);
        // The right axis exists, in the marginal return's colour, with round ticks.
        let right = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("axis y-axis y-axis-right"))
            .unwrap();
        let labels: Vec<&str> = right
            .children()
            .filter(|n| n.attribute("class") == Some("tick"))
            .map(|n| n.text().unwrap())
            .collect();
        assert_eq!(labels, ["0", "0.5", "1.0", "1.5"]);
        // Objective markers rise with the budget, marginal markers fall.
        let ys = |class: &str| -> Vec<f64> {
            with_class(&doc, class)
                .map(|g| {
                    let m = g
                        .children()
                        .find(|n| n.is_element() && !n.has_tag_name("title"))
                        .unwrap();
                    m.attribute("cy")
                        .map(|v| v.parse().unwrap())
                        .unwrap_or_else(|| attr(&m, "y"))
                })
                .collect()
        };
        assert!(ys("objective-point").windows(2).all(|w| w[1] < w[0]));
        assert!(ys("marginal-point").windows(2).all(|w| w[1] > w[0]));
    }
}
