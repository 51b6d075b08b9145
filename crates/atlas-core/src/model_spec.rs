//! The `[model]` table of a problem file (`shared/spec/models.md`, sections 1 to 3): which
//! response model a problem is optimized through, the checks made on it against the rest
//! of the problem, and the [`ModelLoader`] seam through which fronts (the command line,
//! sweeps, the service) turn an external model into a [`Model`].
//!
//! The core knows the schema and its checks; loading (ONNX runtimes, HTTP clients) lives in
//! the `atlas-models` crate, which implements [`ModelLoader`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::compile::Compiled;
use crate::error::{Error, InputError};
use crate::model::Model;
use crate::problem::Problem;

/// The response model of a problem (`kind` selects it; without a `[model]` table, `mmm`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// The built-in marketing-mix model of the channels' `response` and `adstock` entries.
    Mmm,
    /// A graph exported to ONNX (contract section 2).
    Onnx(OnnxSpec),
    /// A prediction service over HTTP (contract section 3).
    Http(HttpSpec),
    /// A posterior of the built-in model, optimized for a risk measure (contract section
    /// 4; see [`crate::draws`]).
    Draws(crate::draws::DrawsSpec),
}

/// `kind = "onnx"`: a graph taking `[N, C*T]` or `[N, C, T]` spend and returning `[N]` or
/// `[N, 1]` responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxSpec {
    /// The `.onnx` file, relative to the problem file.
    pub path: PathBuf,
    /// Input name (default: the graph's only input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Output name (default: the graph's only output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The graph sees `v * input_scale` (finite, `> 0`; default 1).
    #[serde(default = "one")]
    pub input_scale: f64,
    /// Atlas uses the graph's output times `output_scale` (finite, `> 0`; default 1).
    #[serde(default = "one")]
    pub output_scale: f64,
    /// Points per inference call (`1..=1_000_000`; default 256).
    #[serde(default = "default_onnx_batch")]
    pub batch: usize,
}

/// `kind = "http"`: `POST url` with `{"spend": [[...], ...]}`, answered by
/// `{"response": [...]}` (and `"gradient": [[...], ...]` with `gradient = true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// The prediction endpoint (`http://`).
    pub url: String,
    /// Per request, in seconds (finite, `> 0`; default 10).
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Retries per request after a 5xx answer or a timeout, with exponential backoff from
    /// 50 ms (`0..=20`; default 3).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Points per request (`1..=100_000`; default 64).
    #[serde(default = "default_http_batch")]
    pub batch: usize,
    /// Requests in flight at once (`1..=64`; default 4).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Extra request headers; `${VAR}` is replaced by the environment variable `VAR` when
    /// the problem is loaded.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// Whether the service also returns gradients (default false: finite differences).
    #[serde(default)]
    pub gradient: bool,
}

fn one() -> f64 {
    1.0
}
fn default_onnx_batch() -> usize {
    256
}
fn default_timeout() -> f64 {
    10.0
}
fn default_retries() -> u32 {
    3
}
fn default_http_batch() -> usize {
    64
}
fn default_concurrency() -> usize {
    4
}

impl ModelSpec {
    /// The `kind` as written in files.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelSpec::Mmm => "mmm",
            ModelSpec::Onnx(_) => "onnx",
            ModelSpec::Http(_) => "http",
            ModelSpec::Draws(_) => "draws",
        }
    }

    /// Whether the model lives outside the problem file (everything but `mmm`).
    pub fn is_external(&self) -> bool {
        !matches!(self, ModelSpec::Mmm)
    }

    /// The contract's checks of this model against the rest of `problem` (section 1) and
    /// of its own fields; errors name the field (`model.batch`, `channels[1].response`).
    pub fn check(&self, problem: &Problem) -> Result<(), InputError> {
        if !self.is_external() {
            return Ok(());
        }
        // (draws) A posterior is the built-in model: the channels' `response` and
        // `adstock` entries are the defaults of its draws, and discounting applies.
        if let ModelSpec::Draws(d) = self {
            return d.check();
        }
        let kind = self.kind();
        if problem.discount != 0.0 {
            return Err(InputError::new(
                "discount",
                format!(
                    "not allowed with model.kind = \"{kind}\": an external model returns the total response as it is, and discounting applies only to the built-in model"
                ),
            ));
        }
        for (i, c) in problem.channels.iter().enumerate() {
            if c.response.is_some() {
                return Err(InputError::new(
                    format!("channels[{i}].response"),
                    format!(
                        "not allowed with model.kind = \"{kind}\": the external model gives the response of `{}`; remove the entry",
                        c.name
                    ),
                ));
            }
            if c.adstock.is_some() {
                return Err(InputError::new(
                    format!("channels[{i}].adstock"),
                    format!(
                        "not allowed with model.kind = \"{kind}\": the external model carries spend over periods itself; remove the entry"
                    ),
                ));
            }
        }
        match self {
            ModelSpec::Mmm | ModelSpec::Draws(_) => Ok(()),
            ModelSpec::Onnx(s) => {
                if s.path.as_os_str().is_empty() {
                    return Err(InputError::new(
                        "model.path",
                        "must name the .onnx file (relative to the problem file)",
                    ));
                }
                positive_finite("model.input_scale", s.input_scale)?;
                positive_finite("model.output_scale", s.output_scale)?;
                in_range("model.batch", s.batch, 1, 1_000_000)
            }
            ModelSpec::Http(s) => {
                if s.url.starts_with("https://") {
                    return Err(InputError::new(
                        "model.url",
                        format!(
                            "`{}`: https is not built into this Atlas (no TLS library in the default build); use an http:// endpoint, e.g. through a local proxy",
                            s.url
                        ),
                    ));
                }
                let rest = s.url.strip_prefix("http://").unwrap_or("");
                if rest.is_empty() || rest.starts_with('/') {
                    return Err(InputError::new(
                        "model.url",
                        format!("`{}` is not an http://HOST[:PORT]/PATH address", s.url),
                    ));
                }
                positive_finite("model.timeout_s", s.timeout_s)?;
                in_range("model.retries", s.retries as usize, 0, 20)?;
                in_range("model.batch", s.batch, 1, 100_000)?;
                in_range("model.concurrency", s.concurrency, 1, 64)?;
                for (name, value) in &s.headers {
                    expand_env(value, |_| Some(String::new())).map_err(|reason| {
                        InputError::new(format!("model.headers.{name}"), reason)
                    })?;
                }
                Ok(())
            }
        }
    }
}

fn positive_finite(field: &str, v: f64) -> Result<(), InputError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(InputError::new(
            field,
            format!("must be a finite number > 0 (got {v})"),
        ))
    }
}

fn in_range(field: &str, v: usize, lo: usize, hi: usize) -> Result<(), InputError> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(InputError::new(
            field,
            format!("must be in {lo}..={hi} (got {v})"),
        ))
    }
}

/// Replaces every `${VAR}` in `text` by `lookup(VAR)`; an unknown variable, an empty or
/// malformed name, or an unclosed `${` is an error naming it.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed `${{` in `{text}`"));
        };
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "`${{{name}}}` is not an environment variable name (letters, digits, _)"
            ));
        }
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("the environment variable `{name}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What an external model did, for a solve's metrics: how gradients are obtained, and
/// the evaluation cache's counters. Counters are cumulative over the model's life; a
/// solve reports the difference between its end and its start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelStats {
    /// `"finite_differences"` or `"exact"`; `None` when the model does not say.
    pub gradient: Option<&'static str>,
    /// Evaluations answered by the cache.
    pub cache_hits: u64,
    /// Evaluations the cache passed on to the model.
    pub cache_misses: u64,
    /// Calls into the external model (inference calls, HTTP requests).
    pub calls: u64,
}

/// Turns an external model of a problem file into a [`Model`]. Implemented by
/// `atlas-models`; the core only knows the seam.
pub trait ModelLoader: Send + Sync {
    /// Loads `spec` for `problem`, whose file lies in `base_dir` (relative model paths are
    /// read from there). Shapes are checked here: a model that does not take
    /// `channels x periods` values is refused, naming both shapes.
    fn load(
        &self,
        spec: &ModelSpec,
        problem: &Problem,
        base_dir: &Path,
    ) -> Result<Arc<dyn Model>, Error>;
}

/// Checks and compiles `problem` with the model its `[model]` table selects: the built-in
/// model as [`Compiled::new`] does, or an external one through `loader`. `source` is the
/// file the problem came from (errors name it; relative model paths start there).
pub fn compile_with_loader(
    problem: &Problem,
    source: Option<&Path>,
    loader: &dyn ModelLoader,
) -> Result<Compiled, Error> {
    let tie = |c: Compiled| match source {
        Some(s) => c.with_source(s),
        None => c,
    };
    match &problem.model {
        Some(ModelSpec::Draws(spec)) => {
            // (draws) Read here, in the core: a posterior is the built-in model's.
            let base = source
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let model = crate::draws::load(spec, problem, &base).map_err(|e| e.in_file(source))?;
            Compiled::with_model(problem, Arc::new(model))
                .map(tie)
                .map_err(|e| e.in_file(source))
        }
        Some(spec) if spec.is_external() => {
            spec.check(problem)
                .map_err(|e| Error::Input(e.in_file(source)))?;
            let base = source
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let model = loader
                .load(spec, problem, &base)
                .map_err(|e| e.in_file(source))?;
            Compiled::with_model(problem, model)
                .map(tie)
                .map_err(|e| e.in_file(source))
        }
        _ => Compiled::new(problem)
            .map(tie)
            .map_err(|e| e.in_file(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Format;

    fn problem(extra: &str) -> Result<Problem, InputError> {
        Problem::from_text(
            &format!(
                "name = \"p\"\nbudget = 10.0\nperiods = 2\n{extra}\n[[channels]]\nname = \"a\"\n[[channels]]\nname = \"b\"\n"
            ),
            Format::Toml,
        )
    }

    fn check(extra: &str) -> Result<(), InputError> {
        let p = problem(extra)?;
        p.model.as_ref().expect("a [model] table").check(&p)
    }

    #[test]
    fn defaults_of_the_contract() {
        let p = problem("[model]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/predict\"").unwrap();
        let Some(ModelSpec::Http(h)) = &p.model else {
            panic!("{:?}", p.model)
        };
        assert_eq!(
            (h.timeout_s, h.retries, h.batch, h.concurrency, h.gradient),
            (10.0, 3, 64, 4, false)
        );
        let p = problem("[model]\nkind = \"onnx\"\npath = \"m.onnx\"").unwrap();
        let Some(ModelSpec::Onnx(o)) = &p.model else {
            panic!("{:?}", p.model)
        };
        assert_eq!((o.input_scale, o.output_scale, o.batch), (1.0, 1.0, 256));
        assert!(p.model.as_ref().unwrap().check(&p).is_ok());
        let p = problem("[model]\nkind = \"mmm\"").unwrap();
        assert_eq!(p.model, Some(ModelSpec::Mmm));
    }

    #[test]
    fn external_models_take_no_response_adstock_or_discount() {
        let text = "name = \"p\"\nbudget = 10.0\n[model]\nkind = \"onnx\"\npath = \"m.onnx\"\n[[channels]]\nname = \"a\"\n[[channels]]\nname = \"b\"\nresponse = { kind = \"linear\", beta = 1.0 }\n";
        let p = Problem::from_text(text, Format::Toml).unwrap();
        let e = p.model.as_ref().unwrap().check(&p).unwrap_err();
        assert_eq!(e.field, "channels[1].response");
        assert!(e.reason.contains("onnx") && e.reason.contains("`b`"), "{e}");

        let e =
            check("discount = 0.1\n[model]\nkind = \"http\"\nurl = \"http://h/p\"").unwrap_err();
        assert_eq!(e.field, "discount");

        let text = "name = \"p\"\nbudget = 10.0\n[model]\nkind = \"onnx\"\npath = \"m.onnx\"\n[[channels]]\nname = \"a\"\nadstock = { kind = \"geometric\", decay = 0.5 }\n";
        let p = Problem::from_text(text, Format::Toml).unwrap();
        let e = p.model.as_ref().unwrap().check(&p).unwrap_err();
        assert_eq!(e.field, "channels[0].adstock");
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            (
                "kind = \"onnx\"\npath = \"m.onnx\"\ninput_scale = 0.0",
                "model.input_scale",
            ),
            (
                "kind = \"onnx\"\npath = \"m.onnx\"\noutput_scale = -1.0",
                "model.output_scale",
            ),
            (
                "kind = \"onnx\"\npath = \"m.onnx\"\nbatch = 0",
                "model.batch",
            ),
            ("kind = \"onnx\"\npath = \"\"", "model.path"),
            ("kind = \"http\"\nurl = \"https://h/p\"", "model.url"),
            ("kind = \"http\"\nurl = \"ftp://h/p\"", "model.url"),
            (
                "kind = \"http\"\nurl = \"http://h/p\"\ntimeout_s = 0.0",
                "model.timeout_s",
            ),
            (
                "kind = \"http\"\nurl = \"http://h/p\"\nretries = 21",
                "model.retries",
            ),
            (
                "kind = \"http\"\nurl = \"http://h/p\"\nconcurrency = 0",
                "model.concurrency",
            ),
            (
                "kind = \"http\"\nurl = \"http://h/p\"\nheaders = { X = \"${}\" }",
                "model.headers.X",
            ),
        ];
        for (table, field) in cases {
            let e = check(&format!("[model]\n{table}")).unwrap_err();
            assert_eq!(e.field, field, "{table}: {e}");
        }
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        let e = problem("[model]\nkind = \"http\"\nurll = \"http://h/p\"").unwrap_err();
        assert!(e.reason.contains("urll"), "{e}");
        let e = problem("[model]\nkind = \"tensorflow\"").unwrap_err();
        assert!(e.reason.contains("tensorflow"), "{e}");
    }

    #[test]
    fn environment_variables_in_headers() {
        let env = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
        assert_eq!(expand_env("Bearer ${TOKEN}", env).unwrap(), "Bearer s3cret");
        assert_eq!(
            expand_env("${TOKEN}-${TOKEN}", env).unwrap(),
            "s3cret-s3cret"
        );
        assert_eq!(expand_env("plain", env).unwrap(), "plain");
        assert!(expand_env("${MISSING}", env)
            .unwrap_err()
            .contains("MISSING"));
        assert!(expand_env("${TOKEN", env).unwrap_err().contains("unclosed"));
        assert!(expand_env("${A-B}", env).is_err());
    }

    #[test]
    fn the_built_in_model_needs_no_loader() {
        struct Refuse;
        impl ModelLoader for Refuse {
            fn load(&self, _: &ModelSpec, _: &Problem, _: &Path) -> Result<Arc<dyn Model>, Error> {
                Err(InputError::new("model", "no loader in this test").into())
            }
        }
        let text = "name = \"p\"\nbudget = 10.0\n[model]\nkind = \"mmm\"\n[[channels]]\nname = \"a\"\nresponse = { kind = \"linear\", beta = 2.0 }\n";
        let p = Problem::from_text(text, Format::Toml).unwrap();
        let c = compile_with_loader(&p, Some(Path::new("x/p.toml")), &Refuse).unwrap();
        assert_eq!(c.model().value(&[10.0]), 20.0);
        assert_eq!(c.source(), Some(Path::new("x/p.toml")));
        let external = "name = \"p\"\nbudget = 10.0\n[model]\nkind = \"onnx\"\npath = \"m.onnx\"\n[[channels]]\nname = \"a\"\n";
        let p = Problem::from_text(external, Format::Toml).unwrap();
        let e = compile_with_loader(&p, Some(Path::new("x/p.toml")), &Refuse).unwrap_err();
        assert!(
            e.to_string().starts_with("x/p.toml: model: no loader"),
            "{e}"
        );
        // Without a loader the core refuses an external model instead of ignoring it.
        let e = Compiled::new(&p).unwrap_err();
        assert!(e.to_string().contains("model.kind"), "{e}");
    }
}
