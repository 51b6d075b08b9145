//! Optimizer configurations (deserialized by name with typetag), the registry of
//! optimizers and the factory that builds them.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::compile::{Compiled, Feature};
use crate::context::SolveOptions;
use crate::error::{ConfigError, Error};
use crate::result::OptimizationResult;
use crate::solver::{Capabilities, Solver};

/// A backend's configuration: serde with documented defaults, checked before it can build
/// a solver. In a file, `optimizer = "name"` picks the implementation (typetag).
#[typetag::serde(tag = "optimizer")]
pub trait SolverConfig: Send + Sync + Debug {
    /// Registered name (the same as the typetag name).
    fn name(&self) -> &'static str;

    /// One line saying what the optimizer does and when to pick it.
    fn summary(&self) -> &'static str;

    /// What the optimizer can do.
    fn capabilities(&self) -> Capabilities;

    /// Checks every setting, naming the field and its valid range on error.
    fn check(&self) -> Result<(), ConfigError>;

    /// Builds the solver. Implementations call [`check`](SolverConfig::check) first, so
    /// that an unchecked configuration cannot reach a solver.
    fn build(&self) -> Result<Box<dyn Solver>, ConfigError>;

    /// The configuration's settings as a JSON object (without the `optimizer` tag).
    fn settings(&self) -> Value;

    /// The features of `compiled` this optimizer cannot honour; empty when it accepts the
    /// problem. By default the features its [`capabilities`](SolverConfig::capabilities)
    /// exclude ([`unsupported`]); an optimizer that delegates (`auto`) answers for the
    /// optimizers it would delegate to.
    fn refuses(&self, compiled: &Compiled) -> Vec<Feature> {
        unsupported(&compiled.features(), &self.capabilities())
    }
}

/// Deserializes settings, or says which field failed and why.
pub(crate) type ParseFn =
    dyn Fn(Value) -> Result<Box<dyn SolverConfig>, (String, String)> + Send + Sync;

struct Entry {
    default: Box<dyn SolverConfig>,
    parse: Box<ParseFn>,
}

/// Name → optimizer map, filled by each backend's `register` function (the facade does it
/// for the enabled features). Duplicate names are rejected. Cloning is cheap (the entries
/// are shared): `auto` keeps a clone of the optimizers registered before it.
#[derive(Default, Clone)]
pub struct Registry {
    entries: BTreeMap<&'static str, Arc<Entry>>,
}

impl Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.names())
            .finish()
    }
}

/// What the registry says about one optimizer.
#[derive(Debug, Clone, Serialize)]
pub struct OptimizerInfo {
    /// Registered name.
    pub name: &'static str,
    /// What it does and when to pick it.
    pub summary: &'static str,
    /// What it can do.
    pub capabilities: Capabilities,
    /// Its default settings.
    pub defaults: Value,
}

/// Deserializes a complete table of settings into `C`, or says which field failed and why.
pub(crate) fn deserialize_settings<C: DeserializeOwned>(
    value: Value,
) -> Result<C, (String, String)> {
    serde_path_to_error::deserialize::<_, C>(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (
            path,
            crate::suggest::improve_serde_message(&e.inner().to_string()),
        )
    })
}

fn parse_typed<C: SolverConfig + DeserializeOwned + 'static>(
    value: Value,
) -> Result<Box<dyn SolverConfig>, (String, String)> {
    deserialize_settings::<C>(value).map(|c| Box::new(c) as Box<dyn SolverConfig>)
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the optimizer configured by `C` under `C::default().name()`.
    pub fn register<C>(&mut self) -> Result<(), Error>
    where
        C: SolverConfig + Default + Serialize + DeserializeOwned + 'static,
    {
        self.insert(Box::new(C::default()), Box::new(parse_typed::<C>))
    }

    /// Registers `default` under its name, with `parse` building a configuration from a
    /// complete table of settings.
    pub(crate) fn insert(
        &mut self,
        default: Box<dyn SolverConfig>,
        parse: Box<ParseFn>,
    ) -> Result<(), Error> {
        let name = default.name();
        if self.entries.contains_key(name) {
            return Err(Error::DuplicateOptimizer(name.to_string()));
        }
        self.entries
            .insert(name, Arc::new(Entry { default, parse }));
        Ok(())
    }

    /// The same registry without `name` (`auto` chooses among the others).
    pub(crate) fn without(&self, name: &str) -> Registry {
        let mut out = self.clone();
        out.entries.remove(name);
        out
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.keys().copied().collect()
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Name, summary, capabilities and default settings of every optimizer.
    pub fn list(&self) -> Vec<OptimizerInfo> {
        self.entries
            .iter()
            .map(|(name, e)| OptimizerInfo {
                name,
                summary: e.default.summary(),
                capabilities: e.default.capabilities(),
                defaults: e.default.settings(),
            })
            .collect()
    }

    fn entry(&self, name: &str) -> Result<&Entry, Error> {
        self.entries
            .get(name)
            .map(|e| e.as_ref())
            .ok_or_else(|| Error::UnknownOptimizer {
                name: name.to_string(),
                available: self.names().iter().map(|s| s.to_string()).collect(),
            })
    }

    /// The default configuration of `name`.
    pub fn default_config(&self, name: &str) -> Result<Box<dyn SolverConfig>, Error> {
        self.config(name, Map::new())
    }

    /// A checked configuration of `name`: its defaults with `settings` applied on top.
    /// Unknown settings are errors listing the valid ones; values are checked.
    pub fn config(
        &self,
        name: &str,
        settings: Map<String, Value>,
    ) -> Result<Box<dyn SolverConfig>, Error> {
        let entry = self.entry(name)?;
        let mut value = match entry.default.settings() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let valid: Vec<String> = value.keys().cloned().collect();
        for (k, v) in settings {
            if k == "optimizer" {
                if v.as_str() != Some(name) {
                    return Err(ConfigError::new(
                        name,
                        "optimizer",
                        format!("this configuration is for `{name}`, not {v}"),
                    )
                    .into());
                }
                continue;
            }
            if !value.contains_key(&k) {
                let hint = crate::suggest::nearest(&k, valid.iter().map(String::as_str))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(ConfigError::new(
                    name,
                    &k,
                    format!(
                        "unknown setting{hint}; valid settings: {}",
                        valid.join(", ")
                    ),
                )
                .into());
            }
            value.insert(k, v);
        }
        let config = (entry.parse)(Value::Object(value))
            .map_err(|(field, reason)| ConfigError::new(name, field, reason))?;
        config.check()?;
        Ok(config)
    }

    /// A checked configuration from a document with an `optimizer` key (a `--config`
    /// file), deserialized by name through typetag after checking the name is registered.
    pub fn config_from_value(&self, value: Value) -> Result<Box<dyn SolverConfig>, Error> {
        let Value::Object(map) = value else {
            return Err(
                ConfigError::new("?", "", "a configuration must be a table of settings").into(),
            );
        };
        let Some(name) = map
            .get("optimizer")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Err(ConfigError::new(
                "?",
                "optimizer",
                format!("missing: name the optimizer ({})", self.names().join(", ")),
            )
            .into());
        };
        // Check the settings against the registered defaults and check that typetag knows
        // the name too; the registry's configuration is the one returned (for `auto` it
        // carries the optimizers to choose from, which a document cannot).
        let config = self.config(&name, map.clone())?;
        let tagged: Box<dyn SolverConfig> =
            serde_json::from_value(Value::Object(map)).map_err(|e| {
                ConfigError::new(
                    name.clone(),
                    "",
                    crate::suggest::improve_serde_message(&e.to_string()),
                )
            })?;
        tagged.check()?;
        Ok(config)
    }

    /// Builds a solver: `create(name, settings)`.
    pub fn create(
        &self,
        name: &str,
        settings: Map<String, Value>,
    ) -> Result<Box<dyn Solver>, Error> {
        Ok(self.config(name, settings)?.build()?)
    }

    /// Names of registered optimizers that can honour every feature of `compiled`.
    pub fn capable_of(&self, compiled: &Compiled) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.default.refuses(compiled).is_empty())
            .map(|(n, _)| n.to_string())
            .collect()
    }

    /// Solves `compiled` with `config`; a refusal names the optimizers that can.
    pub fn optimize(
        &self,
        compiled: &Compiled,
        config: &dyn SolverConfig,
        options: SolveOptions,
    ) -> Result<OptimizationResult, Error> {
        match crate::optimize::optimize(compiled, config, options) {
            Err(Error::Unsupported {
                optimizer,
                features,
                ..
            }) => Err(Error::Unsupported {
                optimizer,
                features,
                alternatives: self.capable_of(compiled),
            }),
            other => other,
        }
    }
}

/// The features in `features` that an optimizer with `caps` cannot honour.
pub fn unsupported(features: &[Feature], caps: &Capabilities) -> Vec<Feature> {
    features
        .iter()
        .filter(|f| match f {
            f if f.is_integer() => !caps.integer_features,
            Feature::MinRoi | Feature::MinSpend => !caps.nonlinear_constraints,
            Feature::NonConcave(_) => !caps.handles_nonconvex,
            Feature::NoGradient => caps.needs_gradient,
            Feature::NoHessian => caps.needs_hessian,
            Feature::CustomModel => caps.needs_structure,
            Feature::Posterior { .. } => caps.needs_structure,
            _ => false,
        })
        .cloned()
        .collect()
}
