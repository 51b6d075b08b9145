//! Numbers for people: thousands separators, a sensible number of digits, compact axis
//! labels (`1.5M`), durations in the unit that reads best.

/// Groups the digits of a non-negative integer text in threes: `1234567` → `1,234,567`.
fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `v` with `decimals` decimals and thousands separators in the integer part.
pub fn grouped(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return non_finite(v);
    }
    let text = format!("{:.decimals$}", v.abs());
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text.as_str(), None),
    };
    // `-0.00` reads as zero.
    let negative = v < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0');
    let sign = if negative { "-" } else { "" };
    match frac {
        Some(f) => format!("{sign}{}.{f}", group_thousands(int)),
        None => format!("{sign}{}", group_thousands(int)),
    }
}

fn non_finite(v: f64) -> String {
    if v.is_nan() {
        "n/a".to_string()
    } else if v > 0.0 {
        "∞".to_string()
    } else {
        "-∞".to_string()
    }
}

/// An amount of spend or response: whole units from 1,000 up (`24,923,816`), two
/// decimals below (`307.85`), three significant digits below 1 (`0.0123`), scientific
/// notation outside `[1e-4, 1e15)`.
pub fn amount(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        non_finite(v)
    } else if a == 0.0 {
        "0".to_string()
    } else if !(1e-4..1e15).contains(&a) {
        scientific(v)
    } else if a >= 1000.0 {
        grouped(v, 0)
    } else if a >= 1.0 {
        grouped(v, 2)
    } else {
        significant(v, 3)
    }
}

/// `v` with `digits` significant digits (at least one), thousands separators, no
/// exponent: `0.4304`, `1.08`, `12.3`, `1,235`.
pub fn significant(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return non_finite(v);
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let magnitude = v.abs().log10().floor() as i64;
    let decimals = (digits as i64 - 1 - magnitude).max(0) as usize;
    grouped(v, decimals)
}

/// A model parameter: four significant digits without trailing zeros (`393,200`,
/// `0.65`, `1`).
pub fn param(v: f64) -> String {
    let text = significant(v, 4);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A return per unit of spend (ROI, marginal return): three significant digits, at
/// most four decimals (`1.08`, `0.430`, `0.0012`), scientific below that.
pub fn ratio(v: f64) -> String {
    if v.is_finite() && v != 0.0 && v.abs() < 1e-3 {
        return scientific(v);
    }
    // Trailing zeros stay (`0.430`), so that a column of ratios lines up.
    significant(v, 3)
}

/// A fraction as a percentage with one decimal: `0.0972` → `9.7%`.
pub fn percent(fraction: f64) -> String {
    if !fraction.is_finite() {
        return non_finite(fraction);
    }
    format!("{}%", grouped(100.0 * fraction, 1))
}

/// A level as a percentage without needless decimals: `0.1` → `10%`, `0.025` → `2.5%`.
pub fn level(fraction: f64) -> String {
    format!("{}%", param(100.0 * fraction))
}

/// Scientific notation with two significant decimals: `1.68e-12`.
pub fn scientific(v: f64) -> String {
    if !v.is_finite() {
        return non_finite(v);
    }
    if v == 0.0 {
        return "0".to_string();
    }
    format!("{v:.2e}")
}

/// A relative gap: `0` when exact, else scientific (`1.7e-12`) or a percentage from
/// 0.1 % up (`2.35%`).
pub fn gap(g: f64) -> String {
    if !g.is_finite() {
        non_finite(g)
    } else if g == 0.0 {
        "0".to_string()
    } else if g >= 1e-3 {
        format!("{}%", significant(100.0 * g, 3))
    } else {
        format!("{g:.1e}")
    }
}

/// Seconds in the unit that reads best: `52 µs`, `11.3 ms`, `1.25 s`, `2 min 5 s`.
pub fn seconds(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return non_finite(s);
    }
    if s == 0.0 {
        "0 s".to_string()
    } else if s < 1e-3 {
        format!("{} µs", significant(s * 1e6, 3))
    } else if s < 1.0 {
        format!("{} ms", significant(s * 1e3, 3))
    } else if s < 120.0 {
        format!("{} s", significant(s, 3))
    } else {
        let whole = s.round() as u64;
        format!("{} min {} s", whole / 60, whole % 60)
    }
}

/// A count with thousands separators: `12,345`.
pub fn count(n: u64) -> String {
    group_thousands(&n.to_string())
}

/// How the ticks of one axis are written: one unit for the whole axis (`k`, `M`, `B`,
/// `T`, chosen by its largest value) and just enough decimals to tell ticks apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TickFormat {
    unit: f64,
    suffix: &'static str,
    decimals: usize,
}

impl TickFormat {
    /// The format for an axis reaching `max_abs` with ticks `step` apart.
    pub fn new(max_abs: f64, step: f64) -> TickFormat {
        let reach = max_abs.abs().max(step.abs());
        let (unit, suffix) = if reach >= 1e12 {
            (1e12, "T")
        } else if reach >= 1e9 {
            (1e9, "B")
        } else if reach >= 1e6 {
            (1e6, "M")
        } else if reach >= 1e4 {
            (1e3, "k")
        } else {
            (1.0, "")
        };
        let scaled = (step / unit).abs();
        let mut decimals = 0;
        if scaled > 0.0 && scaled.is_finite() {
            // The fewest decimals that write the step exactly (2.5 needs one, 0.25 two).
            while decimals < 6 {
                let shown: f64 = format!("{scaled:.decimals$}").parse().unwrap_or(scaled);
                if (shown - scaled).abs() <= 1e-9 * scaled {
                    break;
                }
                decimals += 1;
            }
        }
        TickFormat {
            unit,
            suffix,
            decimals,
        }
    }

    /// The label of the tick at `v`.
    pub fn format(&self, v: f64) -> String {
        if !v.is_finite() {
            return non_finite(v);
        }
        if v == 0.0 {
            return "0".to_string();
        }
        format!("{}{}", grouped(v / self.unit, self.decimals), self.suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_like_a_spreadsheet() {
        assert_eq!(amount(24_923_816.037), "24,923,816");
        assert_eq!(amount(1_164_451.4), "1,164,451");
        assert_eq!(amount(307.852_59), "307.85");
        assert_eq!(amount(-999.5), "-999.50");
        assert_eq!(amount(0.0), "0");
        assert_eq!(amount(0.012_345), "0.0123");
        assert_eq!(amount(2.5e-7), "2.50e-7");
        assert_eq!(amount(f64::NAN), "n/a");
        assert_eq!(grouped(-0.001, 2), "0.00");
        assert_eq!(grouped(1_000_000.0, 0), "1,000,000");
    }

    #[test]
    fn ratios_percentages_gaps_times() {
        assert_eq!(ratio(1.075_3), "1.08");
        assert_eq!(ratio(0.430_4), "0.430");
        assert_eq!(ratio(12.34), "12.3");
        assert_eq!(ratio(0.000_12), "1.20e-4");
        assert_eq!(percent(0.097_0), "9.7%");
        assert_eq!(param(393_200.0), "393,200");
        assert_eq!(param(0.65), "0.65");
        assert_eq!(param(1.0), "1");
        assert_eq!(param(0.000_123_46), "0.0001235");
        assert_eq!(percent(1.0), "100.0%");
        assert_eq!(level(0.1), "10%");
        assert_eq!(level(0.025), "2.5%");
        assert_eq!(gap(1.68e-12), "1.7e-12");
        assert_eq!(gap(0.0235), "2.35%");
        assert_eq!(gap(0.0), "0");
        assert_eq!(seconds(0.011_32), "11.3 ms");
        assert_eq!(seconds(5.2e-5), "52.0 µs");
        assert_eq!(seconds(1.25), "1.25 s");
        assert_eq!(seconds(125.0), "2 min 5 s");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn ticks_are_compact_and_distinct() {
        let millions = TickFormat::new(2e6, 5e5);
        let labels: Vec<String> = [0.0, 5e5, 1e6, 1.5e6, 2e6]
            .iter()
            .map(|&v| millions.format(v))
            .collect();
        assert_eq!(labels, ["0", "0.5M", "1.0M", "1.5M", "2.0M"]);
        let tens = TickFormat::new(2e7, 5e6);
        assert_eq!(tens.format(2e7), "20M");
        assert_eq!(TickFormat::new(5e6, 2.5e6).format(2.5e6), "2.5M");
        assert_eq!(TickFormat::new(1.0, 0.25).format(0.75), "0.75");
        assert_eq!(TickFormat::new(5.0, 1.0).format(3.0), "3");
        assert_eq!(TickFormat::new(1.2e9, 2e8).format(1e9), "1.0B");
        // One unit for the whole axis: 8,000 on an axis that reaches 12,000 is `8k`.
        let thousands = TickFormat::new(12_000.0, 2000.0);
        assert_eq!(thousands.format(8000.0), "8k");
        assert_eq!(thousands.format(12_000.0), "12k");
        assert_eq!(TickFormat::new(7000.0, 1000.0).format(7000.0), "7,000");
    }
}
