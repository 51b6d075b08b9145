//! Canonical JSON and the content address of a solve (contract `scenarios.md`, section 4).
//!
//! The key is the SHA-256 of the canonical JSON of the compiled problem in contract form
//! (channels and constraints in file order), the optimizer name, its full settings with
//! defaults filled in, the seed, the solve limits that change an answer, the contract
//! version and the Atlas version. Canonical means: object keys sorted, no whitespace,
//! numbers as serde_json writes them (the shortest text that reads back to the same
//! `f64`). Formatting, comments and key order of a file therefore do not change the key;
//! any change of a number does.

use std::fmt::Write as _;

use atlas_core::problem::Problem;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The contract versions a key is tied to: the problem and result format, and this
/// scenario and cache contract.
pub const CONTRACT_VERSION: &str = "problem-format/1.1 scenarios/1";

/// The Atlas version a key is tied to (results of another version are not reused).
pub const ATLAS_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Writes `value` as canonical JSON: object keys sorted by their UTF-8 bytes, arrays in
/// order, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Lower-case hexadecimal SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// What besides the problem and the optimizer's settings decides the answer of a solve.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyOptions {
    /// The seed given to the solve (`SolveOptions::seed`).
    pub seed: Option<u64>,
    /// An evaluation limit (`SolveOptions::max_evaluations`).
    pub max_evaluations: Option<u64>,
    /// Early-stopping patience (`SolveOptions::patience`).
    pub patience: Option<u64>,
    /// Early-stopping threshold (`SolveOptions::min_delta`).
    pub min_delta: f64,
}

/// The cache key of solving `problem` with optimizer `optimizer` configured by
/// `settings` (its full settings, defaults filled in, as
/// [`SolverConfig::settings`](atlas_core::SolverConfig::settings) gives them).
pub fn cache_key(
    problem: &Problem,
    optimizer: &str,
    settings: &Value,
    options: &KeyOptions,
) -> String {
    let problem = serde_json::to_value(problem).unwrap_or(Value::Null);
    let mut limits = Map::new();
    limits.insert("max_evaluations".into(), options.max_evaluations.into());
    limits.insert("patience".into(), options.patience.into());
    limits.insert("min_delta".into(), options.min_delta.into());
    let mut doc = Map::new();
    doc.insert("problem".into(), problem);
    doc.insert("optimizer".into(), optimizer.into());
    doc.insert("settings".into(), settings.clone());
    doc.insert("seed".into(), options.seed.into());
    doc.insert("limits".into(), Value::Object(limits));
    doc.insert("contract".into(), CONTRACT_VERSION.into());
    doc.insert("atlas_version".into(), ATLAS_VERSION.into());
    sha256_hex(&canonical_json(&Value::Object(doc)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_core::Format;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [2, {"d": 1, "c": 0.5}], "x": null}}"#)
                .unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"x":null,"y":[2,{"c":0.5,"d":1}]},"b":1}"#
        );
    }

    #[test]
    fn sha256_matches_a_known_digest() {
        // FIPS 180-2 example "abc".
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    const A: &str = r#"
        name = "p"
        budget = 100.0
        [[channels]]
        name = "tv"
        response = { kind = "hill", beta = 300.0, k = 50.0, s = 1.0 }
        [[channels]]
        name = "search"
        response = { kind = "log", beta = 80.0, k = 20.0 }
    "#;

    fn key_of(text: &str, format: Format) -> String {
        let p = Problem::from_text(text, format).unwrap();
        cache_key(
            &p,
            "lbfgs",
            &serde_json::json!({"memory": 10}),
            &KeyOptions::default(),
        )
    }

    #[test]
    fn formatting_comments_and_key_order_do_not_change_the_key_numbers_do() {
        let a = key_of(A, Format::Toml);
        // The same problem: comments, other spacing, other key order, integers for floats,
        // defaults written out.
        let b = key_of(
            r#"
            # a comment
            budget = 100
            name = "p"
            periods = 1
            budget_mode = "exact"
            [[channels]]
            response = { s = 1, k = 50, beta = 300, kind = "hill" }
            name = "tv"
            [[channels]]
            name = "search"
            response = { kind = "log", k = 20.0, beta = 80.0 }
            "#,
            Format::Toml,
        );
        assert_eq!(a, b);
        // The same problem in JSON.
        let c = key_of(
            r#"{"name": "p", "budget": 100, "channels": [
                {"name": "tv", "response": {"kind": "hill", "beta": 300, "k": 50, "s": 1}},
                {"name": "search", "response": {"kind": "log", "beta": 80, "k": 20}}]}"#,
            Format::Json,
        );
        assert_eq!(a, c);
        // One number changed.
        assert_ne!(
            a,
            key_of(&A.replace("k = 20.0", "k = 20.000001"), Format::Toml)
        );
        // Channel order is part of the problem (file order).
        let swapped = r#"
            name = "p"
            budget = 100.0
            [[channels]]
            name = "search"
            response = { kind = "log", beta = 80.0, k = 20.0 }
            [[channels]]
            name = "tv"
            response = { kind = "hill", beta = 300.0, k = 50.0, s = 1.0 }
        "#;
        assert_ne!(a, key_of(swapped, Format::Toml));
    }

    #[test]
    fn optimizer_settings_and_seed_change_the_key() {
        let p = Problem::from_text(A, Format::Toml).unwrap();
        let base = cache_key(
            &p,
            "lbfgs",
            &serde_json::json!({"memory": 10}),
            &KeyOptions::default(),
        );
        assert_ne!(
            base,
            cache_key(
                &p,
                "convex",
                &serde_json::json!({"memory": 10}),
                &KeyOptions::default()
            )
        );
        assert_ne!(
            base,
            cache_key(
                &p,
                "lbfgs",
                &serde_json::json!({"memory": 11}),
                &KeyOptions::default()
            )
        );
        let seeded = KeyOptions {
            seed: Some(3),
            ..KeyOptions::default()
        };
        assert_ne!(
            base,
            cache_key(&p, "lbfgs", &serde_json::json!({"memory": 10}), &seeded)
        );
        assert_eq!(base.len(), 64);
    }
}
