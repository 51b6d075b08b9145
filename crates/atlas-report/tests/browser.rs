//! The reports as a reader sees them: rendered by a real headless Chromium.
//!
//! Each test writes a report of a real solve (the fixtures of `tests/fixtures`, made by
//! `make_fixtures.sh` with the `atlas` binary) and asks Chromium for the rendered DOM
//! (`--dump-dom`) of a copy of it with a measuring script appended (the report itself
//! has no script; the copy exists only here): the size of every chart on screen, the
//! bars' rendered lengths, the page's visible text, and the resources the page loaded.
//! Then a screenshot of the report itself, kept in the test's target folder.
//!
//! Without `chromium` (or `chromium-browser`, or the program named by
//! `ATLAS_CHROMIUM`) the tests skip loudly; with `ATLAS_REQUIRE_BROWSER=1` (CI sets it
//! and installs Debian's `chromium`) they fail instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use atlas_core::{Compiled, Problem};
use atlas_report::{
    fmt, parse_input, result_html, sweep_html, sweep_svg, Input, ResultFile, SweepFile,
};
use serde_json::Value;

/// One Chromium at a time: each takes hundreds of MB and the machines are small.
static BROWSER: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn problem(name: &str) -> Compiled {
    Compiled::from_path(root().join("examples/problems").join(name)).unwrap()
}

fn sweep_fixture() -> SweepFile {
    match parse_input(&fixture("retail_q4_sweep.json")).unwrap() {
        Input::Sweep(s) => *s,
        Input::Result(_) => panic!("retail_q4_sweep.json is a single result"),
    }
}

fn result_fixture(name: &str) -> ResultFile {
    match parse_input(&fixture(name)).unwrap() {
        Input::Result(r) => *r,
        Input::Sweep(_) => panic!("{name} is a sweep"),
    }
}

/// The allocation as the flat channel-major vector of the problem's layout (the result
/// lists channels in the problem's order).
fn flat(result: &ResultFile) -> Vec<f64> {
    result.allocation.values().flatten().copied().collect()
}

/// The browser, or `None` (after saying so loudly) when the tests must skip.
fn chromium() -> Option<PathBuf> {
    let required = std::env::var("ATLAS_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let candidates: Vec<PathBuf> = std::env::var_os("ATLAS_CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["chromium", "chromium-browser"].map(PathBuf::from))
        .collect();
    for c in candidates {
        let found = if c.components().count() > 1 {
            c.is_file().then_some(c)
        } else {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(&c))
                    .find(|p| p.is_file())
            })
        };
        if found.is_some() {
            return found;
        }
    }
    assert!(
        !required,
        "ATLAS_REQUIRE_BROWSER=1 but no chromium found (install Debian's `chromium`, or set ATLAS_CHROMIUM)"
    );
    // Straight to the process's stderr, past the test harness's capture, so that the
    // skip shows in a plain `cargo test`.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED: no chromium on PATH; the browser tests of atlas-report did not run (apt-get install chromium; CI sets ATLAS_REQUIRE_BROWSER=1)"
    );
    None
}

/// A scratch folder of this test.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("atlas-report-browser")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs Chromium headless on `page` with `extra` arguments; its stdout. Every network
/// feature Chromium has of its own is off, so what the page does is all there is.
fn run_chromium(browser: &Path, dir: &Path, page: &Path, extra: &[String]) -> String {
    let profile = dir.join(format!(
        "profile-{}",
        page.file_stem().unwrap().to_string_lossy()
    ));
    // Stdout goes to a file: a pipe left unread while waiting would fill up with a big
    // DOM and stall the browser.
    let stdout_path = dir.join(format!(
        "stdout-{}.txt",
        page.file_stem().unwrap().to_string_lossy()
    ));
    let stdout = std::fs::File::create(&stdout_path).unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 180 s on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "chromium failed: {status:?}");
    std::fs::read_to_string(&stdout_path).unwrap()
}

/// Measures the page in the browser: appends a script (to a copy) that writes the
/// rendered geometry and text into the DOM, dumps the DOM and reads them back.
const PROBE: &str = r#"<script>
(() => {
  const box = e => { const r = e.getBoundingClientRect(); return { w: r.width, h: r.height }; };
  const probe = {
    svgs: [...document.querySelectorAll('svg')].map(s => Object.assign(box(s), {
      title: (s.querySelector('title') || {}).textContent || '' })),
    bars: [...document.querySelectorAll('rect.bar')].map(r => Object.assign(box(r), { v: +r.dataset.value })),
    periodBars: [...document.querySelectorAll('rect.period-bar')].map(r => Object.assign(box(r), { v: +r.dataset.value })),
    curves: [...document.querySelectorAll('path.curve')].map(p => p.getTotalLength()),
    objectivePoints: document.querySelectorAll('g.objective-point').length,
    marginalPoints: document.querySelectorAll('g.marginal-point').length,
    totalSeries: document.querySelectorAll('g.channel-series').length,
    spreadMarks: document.querySelectorAll('line.spread-mark').length,
    scripts: document.querySelectorAll('script').length,
    title: document.title,
    text: document.body.innerText,
    height: Math.ceil(document.documentElement.scrollHeight),
    resources: performance.getEntriesByType('resource').map(e => e.name),
  };
  const pre = document.createElement('pre');
  pre.id = 'atlas-probe';
  pre.textContent = JSON.stringify(probe);
  document.body.appendChild(pre);
})();
</script>"#;

struct Rendered {
    probe: Value,
    screenshot: PathBuf,
}

impl Rendered {
    fn text(&self) -> &str {
        self.probe["text"].as_str().unwrap()
    }
    fn list(&self, key: &str) -> &Vec<Value> {
        self.probe[key].as_array().unwrap()
    }
    fn count(&self, key: &str) -> u64 {
        self.probe[key].as_u64().unwrap()
    }
}

/// Renders `html` in Chromium: the probe's measurements and a full-page screenshot.
fn render(browser: &Path, test: &str, html: &str) -> Rendered {
    render_with(browser, test, html, PROBE, &[])
}

/// [`render`] with another probe script, and `files` written beside the page.
fn render_with(
    browser: &Path,
    test: &str,
    html: &str,
    probe: &str,
    files: &[(&str, &str)],
) -> Rendered {
    let _one_at_a_time = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch(test);
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let page = dir.join("report.html");
    std::fs::write(&page, html).unwrap();
    let probed = dir.join("probe.html");
    std::fs::write(&probed, html.replace("</body>", &format!("{probe}</body>"))).unwrap();
    let dom = run_chromium(
        browser,
        &dir,
        &probed,
        &[
            "--window-size=1200,900".to_string(),
            "--dump-dom".to_string(),
        ],
    );
    let start = dom
        .find("<pre id=\"atlas-probe\">")
        .expect("the probe ran and wrote its measurements")
        + "<pre id=\"atlas-probe\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let json = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    let probe: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let height = probe["height"].as_u64().unwrap().clamp(400, 16_000);
    let screenshot = dir.join(format!("{test}.png"));
    run_chromium(
        browser,
        &dir,
        &page,
        &[
            format!("--window-size=1200,{height}"),
            format!("--screenshot={}", screenshot.display()),
        ],
    );
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert_eq!(&png[1..4], b"PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let shot_height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, u64::from(shot_height)), (1200, height));
    eprintln!("screenshot: {}", screenshot.display());
    Rendered { probe, screenshot }
}

/// What must hold of any page: self-contained, nothing loaded, every chart drawn.
fn assert_self_contained_and_drawn(html: &str, r: &Rendered, charts: usize) {
    for needle in [
        "http:", "https:", "<script", "<link", "<img", "@import", "url(", "src=",
    ] {
        assert!(!html.contains(needle), "the page contains `{needle}`");
    }
    assert!(
        r.list("resources").is_empty(),
        "the page loaded resources: {:?}",
        r.list("resources")
    );
    // Only the probe's own script is in the DOM.
    assert_eq!(r.count("scripts"), 1);
    let svgs = r.list("svgs");
    assert_eq!(svgs.len(), charts, "{svgs:?}");
    for s in svgs {
        let (w, h) = (s["w"].as_f64().unwrap(), s["h"].as_f64().unwrap());
        assert!(w >= 300.0 && h >= 100.0, "a chart drawn too small: {s}");
        assert!(
            !s["title"].as_str().unwrap().is_empty(),
            "a chart without a title"
        );
    }
    assert!(std::fs::metadata(&r.screenshot).unwrap().len() > 20_000);
}

/// Rendered bar lengths (or heights) over values: one constant, within half a pixel.
fn assert_proportional(items: &[Value], length: &str) {
    let peak = items
        .iter()
        .max_by(|a, b| {
            a["v"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["v"].as_f64().unwrap())
        })
        .unwrap();
    let k = peak[length].as_f64().unwrap() / peak["v"].as_f64().unwrap();
    assert!(k > 0.0);
    for b in items {
        let (l, v) = (b[length].as_f64().unwrap(), b["v"].as_f64().unwrap());
        assert!(
            (l - k * v).abs() <= 0.5,
            "{length} {l} for {v}, expected {}",
            k * v
        );
    }
}

#[test]
fn result_report_shows_the_plan_its_certificate_and_curves() {
    let Some(browser) = chromium() else { return };
    let result = result_fixture("retail_q4_convex.json");
    let compiled = problem("retail_q4.toml");
    // The fixture is a real solve of this problem: its objective is the model's.
    let x = flat(&result);
    assert!((compiled.objective_value(&x) - result.objective).abs() <= 1e-9 * result.objective);
    let html = result_html(&result, Some(&compiled)).unwrap();
    let r = render(&browser, "retail_q4", &html);
    // Allocation, flighting, and one curve per channel.
    assert_self_contained_and_drawn(&html, &r, 2 + result.allocation.len());
    assert_eq!(r.list("bars").len(), result.allocation.len());
    assert_proportional(r.list("bars"), "w");
    assert_eq!(
        r.list("periodBars").len(),
        result.allocation.len() * result.periods()
    );
    assert_proportional(r.list("periodBars"), "h");
    assert!(r.list("curves").iter().all(|l| l.as_f64().unwrap() > 100.0));
    // The numbers a reader sees are the result's.
    let text = r.text();
    assert!(text.contains("optimal"));
    assert!(text.contains(&fmt::amount(result.objective)), "objective");
    assert!(text.contains(&fmt::amount(result.bound.unwrap())), "bound");
    assert!(text.contains(&format!("gap {}", fmt::gap(result.gap().unwrap()))));
    assert!(text.contains(&fmt::amount(result.total_spend)));
    for (name, total) in &result.totals {
        let share = fmt::percent(total / result.total_spend);
        assert!(
            text.contains(&format!("{} · {share}", fmt::amount(*total))) || text.contains(&share),
            "{name}: {total} {share}"
        );
        assert!(text.contains(&fmt::amount(*total)), "{name}: {total}");
    }
    // Each channel's marginal ROI is the model's gradient, spend-weighted over periods.
    let mut g = vec![0.0; x.len()];
    compiled.model().gradient(&x, &mut g).unwrap();
    let layout = compiled.layout();
    for (c, name) in layout.channels().iter().enumerate() {
        let xs = layout.channel_slice(&x, c);
        let total: f64 = xs.iter().sum();
        let roi: f64 = layout
            .channel_slice(&g, c)
            .iter()
            .zip(xs)
            .map(|(gi, xi)| gi * xi / total)
            .sum();
        assert!(
            text.contains(&format!("marginal ROI {}", fmt::ratio(roi))),
            "{name}: marginal ROI {}",
            fmt::ratio(roi)
        );
    }
    assert!(text.contains("adstocked spend per period"));
}

#[test]
fn single_period_curves_label_the_tangent_with_the_marginal_roi() {
    let Some(browser) = chromium() else { return };
    let result = result_fixture("quickstart_convex.json");
    let compiled = problem("quickstart.toml");
    let html = result_html(&result, Some(&compiled)).unwrap();
    let r = render(&browser, "quickstart", &html);
    assert_self_contained_and_drawn(&html, &r, 1 + result.allocation.len());
    assert!(r.text().contains("A single-period problem"));
    let mmm = compiled.mmm().unwrap();
    for (c, (name, spend)) in result.allocation.iter().enumerate() {
        let slope = mmm.channels()[c].curve.derivative(spend[0]);
        assert!(
            r.text()
                .contains(&format!("marginal ROI {}", fmt::ratio(slope))),
            "{name}: {slope}"
        );
        assert!(r
            .text()
            .contains(&format!("chosen: {}", fmt::amount(spend[0]))));
    }
}

#[test]
fn result_report_without_problem_says_why_there_are_no_curves() {
    let Some(browser) = chromium() else { return };
    let result = result_fixture("retail_q4_convex.json");
    let html = result_html(&result, None).unwrap();
    let r = render(&browser, "no_problem", &html);
    assert_self_contained_and_drawn(&html, &r, 2);
    assert!(r
        .text()
        .contains("Not drawn: the result file does not carry the response model"));
    assert!(r.text().contains("--problem PROBLEM.toml"));
}

#[test]
fn sweep_report_draws_the_budget_curve_and_the_channels() {
    let Some(browser) = chromium() else { return };
    let sweep = sweep_fixture();
    let html = sweep_html(&sweep).unwrap();
    let r = render(&browser, "retail_q4_sweep", &html);
    assert_self_contained_and_drawn(&html, &r, 2);
    let n = sweep.scenarios.len() as u64;
    assert_eq!(r.count("objectivePoints"), n);
    assert_eq!(r.count("marginalPoints"), n);
    assert_eq!(r.count("totalSeries"), sweep.channels().len() as u64);
    let text = r.text();
    for s in &sweep.scenarios {
        assert!(text.contains(&s.name));
        assert!(text.contains(&fmt::amount(s.objective)), "{}", s.name);
        assert!(
            text.contains(&fmt::ratio(s.marginal_return.unwrap())),
            "{}",
            s.name
        );
    }
    assert_eq!(sweep.errors.len(), 1);
    assert!(text.contains(&sweep.errors[0].message));
    assert!(text.contains("marginal return (right axis)"));
}

#[test]
fn sweep_plot_is_a_picture_of_its_own() {
    let Some(browser) = chromium() else { return };
    let sweep = sweep_fixture();
    let svg = sweep_svg(&sweep).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert_eq!(
        doc.root_element().tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    // A standalone SVG file shown as an image: a browser draws it only when it is a
    // valid picture of its own (an image has no access to the page's styles either).
    let page = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>plot</title></head><body style=\"margin:0;background:#fff\"><img id=\"plot\" src=\"plot.svg\" alt=\"budget response\"></body></html>";
    let probe = r#"<script>
window.addEventListener('load', () => {
  const img = document.getElementById('plot');
  const pre = document.createElement('pre');
  pre.id = 'atlas-probe';
  pre.textContent = JSON.stringify({ w: img.naturalWidth, h: img.naturalHeight,
    complete: img.complete, height: Math.ceil(document.documentElement.scrollHeight) });
  document.body.appendChild(pre);
});
</script>"#;
    let r = render_with(&browser, "sweep_plot", page, probe, &[("plot.svg", &svg)]);
    let root = doc.root_element();
    assert!(r.probe["complete"].as_bool().unwrap());
    assert_eq!(
        r.probe["w"].as_f64().unwrap(),
        root.attribute("width").unwrap().parse::<f64>().unwrap()
    );
    assert!(r.probe["h"].as_f64().unwrap() > 600.0, "{}", r.probe);
    // Both charts: the budget curve's points and each channel's series.
    let class_count = |c: &str| {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some(c))
            .count()
    };
    assert_eq!(class_count("objective-point"), sweep.scenarios.len());
    assert_eq!(class_count("marginal-point"), sweep.scenarios.len());
    assert_eq!(class_count("channel-series"), sweep.channels().len());
}

#[test]
fn hostile_channel_names_are_shown_as_text_and_never_run() {
    let Some(browser) = chromium() else { return };
    let names = [
        "<script>document.title='pwned'</script>",
        "tv & \"radio\" 'ooh'",
        "bell\u{7}<b>bold</b>",
    ];
    let mut result: Value = serde_json::from_str(&fixture("quickstart_convex.json")).unwrap();
    for key in ["allocation", "totals"] {
        let map = result[key].as_object().unwrap().clone();
        let renamed: serde_json::Map<String, Value> = map
            .into_iter()
            .zip(names)
            .map(|((_, v), n)| (n.to_string(), v))
            .collect();
        result[key] = Value::Object(renamed);
    }
    result["problem"] = Value::String("<i>q</i> & co".to_string());
    let Input::Result(result) = parse_input(&result.to_string()).unwrap() else {
        panic!()
    };
    let html = result_html(&result, None).unwrap();
    let r = render(&browser, "hostile_names", &html);
    assert_self_contained_and_drawn(&html, &r, 1);
    assert_eq!(r.probe["title"], "Atlas report · <i>q</i> & co");
    let text = r.text();
    assert!(text.contains(names[0]), "{text}");
    assert!(text.contains(names[1]));
    assert!(text.contains("bell\\u{7}<b>bold</b>"));
}

/// Quantiles by linear interpolation between order statistics.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < sorted.len() {
        sorted[i] + f * (sorted[i + 1] - sorted[i])
    } else {
        sorted[i]
    }
}

#[test]
fn risk_block_is_drawn_with_its_numbers() {
    let Some(browser) = chromium() else { return };
    // A real spread: the retail plan under 200 draws of the problem's curve scales
    // (each beta times a log-normal factor, sigma 0.15, fixed seed), each evaluated
    // by the model.
    let result = result_fixture("retail_q4_convex.json");
    let base = Problem::from_path(root().join("examples/problems/retail_q4.toml")).unwrap();
    let x = flat(&result);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut objectives: Vec<f64> = (0..200)
        .map(|_| {
            let mut p = base.clone();
            for ch in &mut p.channels {
                let r = ch.response.as_mut().unwrap();
                // Box-Muller: one standard normal.
                let z =
                    (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos();
                r.beta = r.beta.map(|b| b * (0.15 * z).exp());
            }
            Compiled::new(&p).unwrap().objective_value(&x)
        })
        .collect();
    objectives.sort_by(f64::total_cmp);
    let mean = objectives.iter().sum::<f64>() / 200.0;
    let cvar = objectives[..20].iter().sum::<f64>() / 20.0;
    let (p05, p50, p95) = (
        quantile(&objectives, 0.05),
        quantile(&objectives, 0.5),
        quantile(&objectives, 0.95),
    );
    assert!(cvar < p05 && p05 < p50 && p50 < p95);
    // Appended to the text, so that the channels keep their order.
    let risk = serde_json::json!({
        "mean": mean, "cvar_0.1": cvar, "p05": p05, "p50": p50, "p95": p95, "draws": 200
    });
    let text = fixture("retail_q4_convex.json");
    let text = format!(
        "{}, \"risk\": {risk}}}",
        text.trim_end().strip_suffix('}').unwrap()
    );
    let Input::Result(with_risk) = parse_input(&text).unwrap() else {
        panic!()
    };
    assert_eq!(with_risk.allocation.keys().next().unwrap(), "tv");
    let html = result_html(&with_risk, None).unwrap();
    let r = render(&browser, "risk", &html);
    assert_self_contained_and_drawn(&html, &r, 3);
    // p05, median, p95, mean and the CVaR, each marked.
    assert_eq!(r.count("spreadMarks"), 5);
    let text = r.text();
    for v in [mean, cvar, p05, p50, p95] {
        assert!(text.contains(&fmt::amount(v)), "{v}");
    }
    assert!(text.contains(&format!("CVaR 10% {}", fmt::amount(cvar))));
    assert!(text.contains("CVaR 10% (the mean of the worst 10% of draws)"));
    assert!(text.contains("objective over 200 draws"));
}
