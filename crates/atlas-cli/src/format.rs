//! Number formatting for tables.

/// An amount with thousands separators: two decimals below 1e6, none above; scientific
/// notation outside `[1e-3, 1e15)`.
pub(crate) fn fmt_amount(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e15).contains(&a) {
        return format!("{v:.4e}");
    }
    let decimals = if a >= 1e6 { 0 } else { 2 };
    let text = format!("{a:.decimals$}");
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i.to_string(), Some(f.to_string())),
        None => (text, None),
    };
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let sign = if v < 0.0 { "-" } else { "" };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// `text` padded with spaces on the right to `width` characters. Unlike `{:<width$}`,
/// which panics for widths of 65,536 and more, any width is fine.
pub(crate) fn pad_right(text: &str, width: usize) -> String {
    let len = text.chars().count();
    let mut out = String::with_capacity(text.len() + width.saturating_sub(len));
    out.push_str(text);
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(len)));
    out
}

/// A relative quantity in scientific notation.
pub(crate) fn fmt_ratio(v: f64) -> String {
    format!("{v:.2e}")
}

/// Seconds as ms below one second.
pub(crate) fn fmt_duration(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.2} ms", seconds * 1e3)
    } else {
        format!("{seconds:.3} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(fmt_amount(1_585_364.822_8), "1,585,365");
        assert_eq!(fmt_amount(12_345.678), "12,345.68");
        assert_eq!(fmt_amount(-999.5), "-999.50");
        assert_eq!(fmt_amount(0.0), "0.00");
        assert_eq!(fmt_amount(2.5e-7), "2.5000e-7");
        assert_eq!(fmt_duration(0.0123), "12.30 ms");
    }

    #[test]
    fn padding_takes_any_width() {
        assert_eq!(pad_right("tv", 5), "tv   ");
        assert_eq!(pad_right("télé", 5), "télé ");
        assert_eq!(pad_right("search", 3), "search");
        assert_eq!(pad_right("x", 70_000).len(), 70_000);
    }
}
