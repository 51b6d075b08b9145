//! "Did you mean …?" suggestions for misspelt names.

/// The candidate closest to `name`, if one is close enough to be a plausible typo.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                c,
                strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()),
            )
        })
        .filter(|(c, d)| *d <= (c.len().max(name.len()) / 3).max(1) && *d > 0)
        .min_by_key(|(_, d)| *d)
        .map(|(c, _)| c)
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" and "unknown variant"
/// messages so that they lead with the nearest valid name.
pub fn improve_serde_message(message: &str) -> String {
    for (prefix, what) in [("unknown field `", "field"), ("unknown variant `", "value")] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some(end) = rest.find('`') else {
            continue;
        };
        let bad = &rest[..end];
        let expected: Vec<&str> = rest[end + 1..]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| !s.is_empty())
            .collect();
        let list = expected
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return match nearest(bad, expected.iter().copied()) {
            Some(s) => format!("unknown {what} `{bad}` (did you mean `{s}`?); valid: {list}"),
            None if expected.is_empty() => format!("unknown {what} `{bad}`"),
            None => format!("unknown {what} `{bad}`; valid: {list}"),
        };
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["budget", "budget_mode", "name", "periods"];
        assert_eq!(nearest("budjet", names), Some("budget"));
        assert_eq!(nearest("period", names), Some("periods"));
        assert_eq!(nearest("colour", names), None);
    }

    #[test]
    fn rewrites_unknown_field_messages() {
        let m = improve_serde_message("unknown field `budjet`, expected one of `name`, `budget`");
        assert_eq!(
            m,
            "unknown field `budjet` (did you mean `budget`?); valid: `name`, `budget`"
        );
        let m = improve_serde_message("unknown variant `hil`, expected one of `linear`, `hill`");
        assert!(m.contains("did you mean `hill`"), "{m}");
    }
}
