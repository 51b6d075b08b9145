//! A small SVG writer: escaping, linear scales with round ticks, axes, legends and a
//! palette that colour-blind readers can tell apart.
//!
//! Everything is drawn with presentation attributes (no style sheet, no font files), so
//! a picture looks the same inline in the HTML report and as a file of its own.

use std::fmt::Write as _;

use crate::fmt::TickFormat;

/// The fonts the pictures ask for: the reader's own user-interface font, with common
/// fallbacks; none is fetched.
pub const FONT_FAMILY: &str =
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif";

/// Text colour.
pub const INK: &str = "#1f2328";
/// Secondary text (axis labels, notes).
pub const MUTED: &str = "#57606a";
/// Grid lines.
pub const GRID: &str = "#d8dee4";

/// Series colours: Okabe and Ito's palette (told apart with the common colour-vision
/// deficiencies) with its light colours darkened or replaced so that every line and
/// marker has at least 3:1 contrast on white (WCAG's rule for graphics): orange to dark
/// goldenrod, sky blue to purple, yellow to brown. Lines also differ by marker, so
/// colour is never the only cue.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#B8860B", "#009E73", "#D55E00", "#6A3D9A", "#CC79A7", "#8B5A2B", "#222222",
];

/// The colour of series `i`.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Text made safe for XML and HTML, in element content and in quoted attributes:
/// `& < > " '` become entities, and characters XML cannot carry at all (control
/// characters other than tab and newline, and the C1 controls) are shown as `\u{7}`,
/// visible and harmless.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(ch),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `name` shortened to `max` characters with an ellipsis (labels in charts; the full
/// name goes into the element's tooltip and the tables).
pub fn shorten(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// The approximate width of `text` in pixels at `size` (for layout: a sans-serif
/// character is about 0.58 em wide on average).
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.58
}

/// A coordinate with at most two decimals, without trailing zeros.
pub fn num(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" || text.is_empty() {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// A linear map from a data interval onto a pixel interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Data interval start.
    pub d0: f64,
    /// Data interval end.
    pub d1: f64,
    /// Pixel of `d0`.
    pub r0: f64,
    /// Pixel of `d1`.
    pub r1: f64,
}

impl Scale {
    /// The map of `[d0, d1]` onto `[r0, r1]` (a degenerate interval maps to its middle).
    pub fn new(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        Scale { d0, d1, r0, r1 }
    }

    /// The pixel of `v`.
    pub fn map(&self, v: f64) -> f64 {
        if self.d1 == self.d0 {
            return 0.5 * (self.r0 + self.r1);
        }
        self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)
    }
}

/// Round ticks over a data range: the axis limits (the range widened to whole steps),
/// the step (1, 2, 2.5 or 5 times a power of ten) and the tick values.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    /// Axis start.
    pub lo: f64,
    /// Axis end.
    pub hi: f64,
    /// Distance between ticks.
    pub step: f64,
    /// The tick values, `lo` to `hi`.
    pub values: Vec<f64>,
    /// How tick labels are written.
    pub format: TickFormat,
}

impl Ticks {
    /// About `target` ticks covering `[lo, hi]`; an empty range is widened around its
    /// value.
    pub fn new(lo: f64, hi: f64, target: usize) -> Ticks {
        let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() {
            (lo.min(hi), lo.max(hi))
        } else {
            (0.0, 1.0)
        };
        if hi - lo <= f64::EPSILON * hi.abs().max(lo.abs()).max(1e-300) {
            let pad = if hi == 0.0 { 1.0 } else { 0.5 * hi.abs() };
            if lo >= 0.0 && lo - pad < 0.0 {
                lo = 0.0;
            } else {
                lo -= pad;
            }
            hi += pad;
        }
        let raw = (hi - lo) / target.max(1) as f64;
        let power = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * power)
            .find(|s| *s >= raw * (1.0 - 1e-9))
            .unwrap_or(10.0 * power);
        let first = (lo / step + 1e-9).floor();
        let last = (hi / step - 1e-9).ceil();
        let values: Vec<f64> = (0..=((last - first) as i64).max(1))
            .map(|i| (first + i as f64) * step)
            .map(|v| if v.abs() < 1e-12 * step { 0.0 } else { v })
            .collect();
        let (lo, hi) = (values[0], *values.last().unwrap_or(&values[0]));
        let format = TickFormat::new(lo.abs().max(hi.abs()), step);
        Ticks {
            lo,
            hi,
            step,
            values,
            format,
        }
    }

    /// The label of tick value `v`.
    pub fn label(&self, v: f64) -> String {
        self.format.format(v)
    }
}

/// A marker shape, so that series differ by more than colour.
pub fn marker(svg: &mut Svg, i: usize, x: f64, y: f64, colour: &str) {
    let r = 3.6;
    match i % 4 {
        0 => svg.raw(&format!(
            r#"<circle cx="{}" cy="{}" r="{}" fill="{colour}"/>"#,
            num(x),
            num(y),
            num(r)
        )),
        1 => svg.raw(&format!(
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{colour}"/>"#,
            num(x - r),
            num(y - r),
            num(2.0 * r),
            num(2.0 * r)
        )),
        2 => svg.raw(&format!(
            r#"<path d="M{} {}L{} {}L{} {}Z" fill="{colour}"/>"#,
            num(x),
            num(y - 1.2 * r),
            num(x + 1.1 * r),
            num(y + 0.8 * r),
            num(x - 1.1 * r),
            num(y + 0.8 * r)
        )),
        _ => svg.raw(&format!(
            r#"<path d="M{} {}L{} {}L{} {}L{} {}Z" fill="{colour}"/>"#,
            num(x),
            num(y - 1.3 * r),
            num(x + 1.3 * r),
            num(y),
            num(x),
            num(y + 1.3 * r),
            num(x - 1.3 * r),
            num(y)
        )),
    }
}

/// The dash pattern of series `i` (solid for the first colours, dashed once they repeat).
pub fn dash(i: usize) -> &'static str {
    match (i / PALETTE.len()) % 3 {
        0 => "",
        1 => r#" stroke-dasharray="6 3""#,
        _ => r#" stroke-dasharray="2 3""#,
    }
}

/// An SVG picture being drawn; [`finish`](Svg::finish) wraps it in its `<svg>` element
/// once its size is known.
#[derive(Debug, Clone, Default)]
pub struct Svg {
    out: String,
}

impl Svg {
    /// An empty picture.
    pub fn new() -> Svg {
        Svg::default()
    }

    /// Appends markup as written (the caller escapes what it puts in).
    pub fn raw(&mut self, markup: &str) {
        self.out.push_str(markup);
    }

    /// A text element; `content` is escaped. `anchor` is `start`, `middle` or `end`;
    /// `extra` adds attributes as written.
    pub fn text(&mut self, x: f64, y: f64, anchor: &str, extra: &str, content: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{}" y="{}" text-anchor="{anchor}"{}{extra}>{}</text>"#,
            num(x),
            num(y),
            if extra.is_empty() { "" } else { " " },
            escape(content)
        );
    }

    /// A line.
    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, extra: &str) {
        let _ = write!(
            self.out,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{stroke}"{}{extra}/>"#,
            num(x1),
            num(y1),
            num(x2),
            num(y2),
            if extra.is_empty() { "" } else { " " },
        );
    }

    /// A polyline through `points` (pixels), unfilled.
    pub fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, width: f64, extra: &str) {
        if points.is_empty() {
            return;
        }
        let mut d = String::new();
        for (i, (x, y)) in points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{} {}",
                if i == 0 { "M" } else { "L" },
                num(*x),
                num(*y)
            );
        }
        let _ = write!(
            self.out,
            r#"<path d="{d}" fill="none" stroke="{stroke}" stroke-width="{}" stroke-linejoin="round"{}{extra}/>"#,
            num(width),
            if extra.is_empty() { "" } else { " " },
        );
    }

    /// A filled rectangle `[x, y, width, height]` with a tooltip (`tip`, escaped; none
    /// when empty).
    pub fn rect(&mut self, [x, y, w, h]: [f64; 4], fill: &str, extra: &str, tip: &str) {
        let _ = write!(
            self.out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"{}{extra}"#,
            num(x),
            num(y),
            num(w.max(0.0)),
            num(h.max(0.0)),
            if extra.is_empty() { "" } else { " " },
        );
        if tip.is_empty() {
            self.out.push_str("/>");
        } else {
            let _ = write!(self.out, "><title>{}</title></rect>", escape(tip));
        }
    }

    /// A horizontal value axis at the bottom of the plot area `[x0, x1] × [y0, y1]`
    /// (pixels), with vertical grid lines, tick labels and a title below.
    pub fn x_axis(&mut self, ticks: &Ticks, scale: &Scale, y0: f64, y1: f64, title: &str) {
        self.raw(r#"<g class="axis x-axis">"#);
        for &v in &ticks.values {
            let x = scale.map(v);
            self.line(x, y0, x, y1, GRID, "");
            self.text(
                x,
                y1 + 16.0,
                "middle",
                &format!(r#"class="tick" fill="{MUTED}""#),
                &ticks.label(v),
            );
        }
        self.line(scale.r0, y1, scale.r1, y1, MUTED, "");
        self.text(
            0.5 * (scale.r0 + scale.r1),
            y1 + 34.0,
            "middle",
            &format!(r#"class="axis-title" fill="{MUTED}""#),
            title,
        );
        self.raw("</g>");
    }

    /// A vertical value axis (see [`YAxis`]) with its tick labels, horizontal grid lines
    /// and a rotated title.
    pub fn y_axis(&mut self, ticks: &Ticks, scale: &Scale, axis: &YAxis<'_>) {
        let YAxis {
            x,
            grid: (gx0, gx1),
            left,
            title,
            colour,
        } = *axis;
        self.raw(if left {
            r#"<g class="axis y-axis">"#
        } else {
            r#"<g class="axis y-axis y-axis-right">"#
        });
        let mut widest: f64 = 0.0;
        for &v in &ticks.values {
            let y = scale.map(v);
            if gx1 > gx0 {
                self.line(gx0, y, gx1, y, GRID, "");
            }
            let label = ticks.label(v);
            widest = widest.max(text_width(&label, 12.0));
            let (tx, anchor) = if left {
                (x - 6.0, "end")
            } else {
                (x + 6.0, "start")
            };
            self.text(
                tx,
                y + 4.0,
                anchor,
                &format!(r#"class="tick" fill="{colour}""#),
                &label,
            );
        }
        self.line(x, scale.r0, x, scale.r1, colour, "");
        let tx = if left {
            x - 14.0 - widest
        } else {
            x + 18.0 + widest
        };
        let ty = 0.5 * (scale.r0 + scale.r1);
        self.text(
            tx,
            ty,
            "middle",
            &format!(
                r#"class="axis-title" fill="{colour}" transform="rotate(-90 {} {})""#,
                num(tx),
                num(ty)
            ),
            title,
        );
        self.raw("</g>");
    }

    /// The axes of an x–y plot over the pixel box `[x0, x1] × [y0, y1]`: the x axis at
    /// the bottom titled `x_title`, the y axis at the left titled `y_title` in `colour`,
    /// grid lines both ways. Returns the x and y scales.
    pub fn plot_axes(
        &mut self,
        xt: &Ticks,
        yt: &Ticks,
        [x0, x1, y0, y1]: [f64; 4],
        x_title: &str,
        y_title: &str,
        colour: &str,
    ) -> (Scale, Scale) {
        let sx = Scale::new(xt.lo, xt.hi, x0, x1);
        let sy = Scale::new(yt.lo, yt.hi, y1, y0);
        self.x_axis(xt, &sx, y0, y1, x_title);
        self.y_axis(
            yt,
            &sy,
            &YAxis {
                x: x0,
                grid: (x0, x1),
                left: true,
                title: y_title,
                colour,
            },
        );
        (sx, sy)
    }

    /// A legend row at `(x, y)`: each entry a line sample with its marker and its label
    /// (escaped); wraps to a new row past `max_x`. Returns the y below the legend.
    pub fn legend(&mut self, x: f64, y: f64, max_x: f64, entries: &[LegendEntry]) -> f64 {
        self.raw(r#"<g class="legend">"#);
        let (mut cx, mut cy) = (x, y);
        for e in entries {
            let label = shorten(&e.label, 40);
            let w = 30.0 + text_width(&label, 12.0) + 16.0;
            if cx + w > max_x && cx > x {
                cx = x;
                cy += 18.0;
            }
            match e.sample {
                Sample::Line { index, dashed } => {
                    let extra = if dashed {
                        r#"stroke-width="2" stroke-dasharray="6 3""#.to_string()
                    } else {
                        format!(r#"stroke-width="2"{}"#, dash(index))
                    };
                    self.line(cx, cy - 4.0, cx + 22.0, cy - 4.0, &e.colour, &extra);
                    marker(self, index, cx + 11.0, cy - 4.0, &e.colour);
                }
                Sample::Swatch => self.rect(
                    [cx + 3.0, cy - 10.0, 16.0, 12.0],
                    &e.colour,
                    r#"opacity="0.35""#,
                    "",
                ),
            }
            self.text(cx + 28.0, cy, "start", "", &label);
            cx += w;
        }
        self.raw("</g>");
        cy + 10.0
    }

    /// The finished document: `width` × `height` pixels, titled for screen readers and
    /// tooltips (`title` and `description` become its first children, the accessible
    /// name and description of an `img`, so no ids are needed when many share a page).
    /// `standalone` adds the XML declaration and namespace a file of its own needs
    /// (inline SVG in HTML takes the namespace implicitly).
    pub fn finish(
        self,
        width: f64,
        height: f64,
        title: &str,
        description: &str,
        standalone: bool,
    ) -> String {
        let mut out = String::with_capacity(self.out.len() + 600);
        if standalone {
            out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        }
        let _ = write!(
            out,
            r#"<svg{} width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" font-family="{FONT_FAMILY}" font-size="12" fill="{INK}">"#,
            if standalone {
                r#" xmlns="http://www.w3.org/2000/svg""#
            } else {
                ""
            },
            w = num(width),
            h = num(height),
        );
        let _ = write!(
            out,
            r##"<title>{}</title><desc>{}</desc><rect x="0" y="0" width="{}" height="{}" fill="#ffffff"/>"##,
            escape(title),
            escape(description),
            num(width),
            num(height)
        );
        out.push_str(&self.out);
        out.push_str("</svg>");
        out
    }
}

/// Where a vertical axis goes and how it looks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YAxis<'a> {
    /// Its x.
    pub x: f64,
    /// Grid lines from `.0` to `.1` (none when equal).
    pub grid: (f64, f64),
    /// Labels on the left (else on the right).
    pub left: bool,
    /// Its title.
    pub title: &'a str,
    /// The colour of its line, ticks and title.
    pub colour: &'a str,
}

/// What a legend entry shows beside its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// A line of series `index` (its marker and dash), dashed when `dashed`.
    Line {
        /// Series index (marker and dash pattern).
        index: usize,
        /// Drawn dashed.
        dashed: bool,
    },
    /// A filled band.
    Swatch,
}

/// One legend entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LegendEntry {
    /// The label (escaped when drawn).
    pub label: String,
    /// Its colour.
    pub colour: String,
    /// The sample beside it.
    pub sample: Sample,
}

/// The WCAG contrast ratio of a colour against white (tests of the palette).
#[cfg(test)]
pub(crate) fn contrast_on_white(hex: &str) -> f64 {
    let channel = |i: usize| {
        let c = u8::from_str_radix(&hex[i..i + 2], 16).unwrap() as f64 / 255.0;
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
    1.05 / (l + 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_quotes_and_controls() {
        assert_eq!(
            escape(r#"<tv & "radio" 'x'>"#),
            "&lt;tv &amp; &quot;radio&quot; &#39;x&#39;&gt;"
        );
        assert_eq!(escape("a\u{7}b\u{0}c\u{85}"), "a\\u{7}b\\u{0}c\\u{85}");
        assert_eq!(escape("tab\tnewline\n"), "tab\tnewline\n");
        assert_eq!(escape("été ☀"), "été ☀");
    }

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        let t = Ticks::new(0.0, 3_650_000.0, 5);
        assert_eq!(t.step, 1_000_000.0);
        assert_eq!(t.lo, 0.0);
        assert_eq!(t.hi, 4_000_000.0);
        assert_eq!(t.values.len(), 5);
        assert_eq!(t.label(3e6), "3M");
        let t = Ticks::new(0.37, 1.42, 5);
        assert_eq!(t.step, 0.25);
        assert!(t.lo <= 0.37 && t.hi >= 1.42);
        for w in t.values.windows(2) {
            assert!((w[1] - w[0] - 0.25).abs() < 1e-12);
        }
        // A single value gets a range around it.
        let t = Ticks::new(5.0, 5.0, 4);
        assert!(t.lo <= 5.0 && t.hi > 5.0 && t.values.len() >= 2);
        let t = Ticks::new(0.0, 0.0, 4);
        assert_eq!(t.lo, 0.0);
        assert!(t.hi > 0.0);
    }

    #[test]
    fn scale_maps_ends_and_middle() {
        let s = Scale::new(0.0, 10.0, 100.0, 300.0);
        assert_eq!(s.map(0.0), 100.0);
        assert_eq!(s.map(10.0), 300.0);
        assert_eq!(s.map(5.0), 200.0);
        let flipped = Scale::new(0.0, 10.0, 300.0, 100.0);
        assert_eq!(flipped.map(2.5), 250.0);
    }

    #[test]
    fn colours_are_readable_on_white() {
        // Lines and markers: 3:1 (WCAG 1.4.11); text: 4.5:1 (WCAG 1.4.3).
        for c in PALETTE {
            assert!(contrast_on_white(c) >= 3.0, "{c}: {}", contrast_on_white(c));
        }
        for c in [INK, MUTED] {
            assert!(contrast_on_white(c) >= 4.5, "{c}");
        }
        // Sanity of the formula: black on white is 21:1.
        assert!((contrast_on_white("#000000") - 21.0).abs() < 1e-9);
    }

    #[test]
    fn numbers_in_coordinates() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.256), "1.26");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(f64::NAN), "0");
    }
}
