//! The SVG chart: median wall time against gap to the known optimum, one series per
//! optimizer (and per peer with `--peers`), both axes logarithmic.

use std::path::Path;

use plotters::prelude::*;

use crate::error::BenchError;
use crate::report::{Outcome, Report};

/// Gaps at or below this (exact optima included) are drawn on the chart's floor.
pub const GAP_FLOOR: f64 = 1e-12;

/// One point: (median seconds, gap).
type Point = (f64, f64);

/// The series of the chart: Atlas optimizers first, then peers, each with its points.
pub fn series(report: &Report) -> Vec<(String, bool, Vec<Point>)> {
    let mut out: Vec<(String, bool, Vec<Point>)> = Vec::new();
    let mut push = |name: &str, peer: bool, p: Point| match out
        .iter_mut()
        .find(|(n, is_peer, _)| n == name && *is_peer == peer)
    {
        Some(s) => s.2.push(p),
        None => out.push((name.to_string(), peer, vec![p])),
    };
    for r in &report.results {
        if let (Outcome::Ok, Some(t)) = (r.outcome, &r.timing) {
            if let Some(g) = t.gap {
                push(
                    &r.optimizer,
                    false,
                    (t.wall_time_s.median, g.median.max(GAP_FLOOR)),
                );
            }
        }
    }
    if let Some(peers) = &report.peers {
        for p in &peers.results {
            if let (Outcome::Ok, Some(t), Some(g)) = (p.outcome, p.wall_time_s, p.gap) {
                push(&p.solver, true, (t.median, g.max(GAP_FLOOR)));
            }
        }
    }
    out
}

/// Draws the chart into `path` (SVG).
pub fn draw(report: &Report, path: &Path) -> Result<(), BenchError> {
    let err = |e: &dyn std::fmt::Display| BenchError::Chart {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let series = series(report);
    let points = series.iter().flat_map(|s| s.2.iter().copied());
    let (mut t_min, mut t_max, mut g_max) = (f64::INFINITY, 0.0f64, GAP_FLOOR * 10.0);
    for (t, g) in points {
        t_min = t_min.min(t);
        t_max = t_max.max(t);
        g_max = g_max.max(g);
    }
    if !t_min.is_finite() || t_min <= 0.0 {
        t_min = 1e-6;
        t_max = t_max.max(1.0);
    }
    // Whole decades around the data, so ticks fall on powers of ten.
    let decade_down = |v: f64| 10f64.powf(v.log10().floor());
    let decade_up = |v: f64| 10f64.powf(v.log10().ceil());
    let (x0, x1) = (decade_down(t_min), decade_up(t_max.max(t_min * 10.0)));
    let (y0, y1) = (GAP_FLOOR / 10.0, decade_up(g_max * 1.01));

    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!(
        "Atlas benchmark: time vs gap ({}{})",
        report.created,
        if report.settings.quick { ", quick" } else { "" }
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("median wall time per solve (s)")
        .y_desc(format!("gap to the known optimum (floor {GAP_FLOOR:.0e})"))
        .x_label_formatter(&|v| format!("{v:.0e}"))
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (name, peer, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let label = if *peer {
            format!("{name} (peer)")
        } else {
            name.clone()
        };
        if *peer {
            // Peers: hollow triangles.
            chart
                .draw_series(
                    pts.iter()
                        .map(|&(t, g)| TriangleMarker::new((t, g), 7, color.stroke_width(2))),
                )
                .map_err(|e| err(&e))?
                .label(label)
                .legend(move |(x, y)| TriangleMarker::new((x, y), 6, color.stroke_width(2)));
        } else {
            chart
                .draw_series(
                    pts.iter()
                        .map(|&(t, g)| Circle::new((t, g), 5, color.filled())),
                )
                .map_err(|e| err(&e))?
                .label(label)
                .legend(move |(x, y)| Circle::new((x, y), 5, color.filled()));
        }
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
