//! `auto`: the optimizer that picks an optimizer, from the problem's features and the
//! model's derivatives. This module is the one place where Atlas says which backend fits
//! which problem.
//!
//! | problem | first choice | then |
//! |---|---|---|
//! | built-in model, concave curves, no integer rules | `convex` (global optimum, certified bound) | `lbfgs`, `trust-region` (the local optimum of a concave problem is global) |
//! | built-in model, S-curves or integer and activation rules | `milp` (global within its tolerance, with a bound) | without integer rules: `lbfgs` from [`multi_start`](AutoConfig::multi_start) starts, `trust-region` likewise, `cmaes` |
//! | a model with gradients, no curve structure | `lbfgs` (local optimum) | `trust-region` |
//! | a model that gives values only | `cmaes`; `tpe` up to [`tpe_max_variables`](AutoConfig::tpe_max_variables) variables | the other one |
//!
//! Black-box searches (`cmaes`, `tpe`) close every list of a model with values. Only
//! optimizers registered before `auto` are candidates, and only those that accept the
//! problem: a candidate that is not in this build, or that refuses one of the problem's
//! features (by its capabilities or when its solve starts), passes the problem to the next
//! one, and the reason of the choice says so. The chosen optimizer runs in the solve's own
//! [`Context`] (same limits, observers, seed and warm start), so its result is the one it
//! gives when named directly, with [`Solution::selected`] saying which one ran and why.
//!
//! ```
//! use atlas_core::{auto::AutoConfig, Compiled, Registry};
//! let compiled = Compiled::from_path("../../examples/problems/quickstart.toml").unwrap();
//! let auto = AutoConfig::over(&Registry::new()); // no backend: nothing to choose from
//! let err = auto.choose(&compiled).unwrap_err();
//! assert!(err.to_string().contains("`convex` is not in this build"));
//! // Concave curves: `convex` first, the local gradient methods after it.
//! let plan: Vec<&str> = auto.plan(&compiled).iter().map(|c| c.optimizer).collect();
//! assert_eq!(plan[..3], ["convex", "lbfgs", "trust-region"]);
//! ```

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::compile::{Compiled, Feature};
use crate::context::Context;
use crate::error::{ConfigError, Error};
use crate::model::Derivatives;
use crate::registry::{deserialize_settings, Registry, SolverConfig};
use crate::result::Selected;
use crate::solver::{Capabilities, Solution, Solver};

/// Registered name of the optimizer.
pub const NAME: &str = "auto";

/// Settings of `auto`, with the defaults documented on each field. The optimizers to
/// choose from are not settings: they are the registry's (see [`register`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoConfig {
    /// Starts of `lbfgs` (and `trust-region`) on S-curves when `milp` is not in the build
    /// or refuses the problem. Default `16`; range `1..=10000`.
    pub multi_start: usize,
    /// A model that gives values only goes to `tpe` up to this many variables, to `cmaes`
    /// above. Default `10`; range `0..=1000000`.
    pub tpe_max_variables: usize,
    /// The optimizers to choose from; `None` for a configuration read from a document by
    /// typetag, which can be checked and serialized but not built.
    #[serde(skip)]
    candidates: Option<Arc<Registry>>,
}

impl Default for AutoConfig {
    fn default() -> Self {
        Self {
            multi_start: 16,
            tpe_max_variables: 10,
            candidates: None,
        }
    }
}

/// Registers `auto` choosing among the optimizers registered in `registry` so far;
/// register it after them (the facade `atlas::registry()` registers it last).
pub fn register(registry: &mut Registry) -> Result<(), Error> {
    let candidates = Arc::new(registry.without(NAME));
    let default = AutoConfig {
        candidates: Some(candidates.clone()),
        ..AutoConfig::default()
    };
    registry.insert(
        Box::new(default),
        Box::new(move |value: Value| {
            let mut config = deserialize_settings::<AutoConfig>(value)?;
            config.candidates = Some(candidates.clone());
            Ok(Box::new(config) as Box<dyn SolverConfig>)
        }),
    )
}

/// One entry of `auto`'s plan for a problem: an optimizer, the settings it gets, why.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Registered name.
    pub optimizer: &'static str,
    /// Settings on top of its defaults.
    pub settings: Map<String, Value>,
    /// Why it fits the problem.
    pub reason: String,
}

impl Candidate {
    fn new(optimizer: &'static str, reason: impl Into<String>) -> Self {
        Self {
            optimizer,
            settings: Map::new(),
            reason: reason.into(),
        }
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.settings.insert(key.to_string(), value);
        self
    }
}

/// What was passed over on the way through the plan.
#[derive(Default)]
struct Passed {
    /// Each candidate passed over and why (`milp` is not in this build, ...), in order.
    why: Vec<String>,
    /// Every feature a candidate refused by its capabilities.
    refused: Vec<Feature>,
}

/// What a candidate made of the problem when tried.
enum Attempt<T> {
    /// It took the problem.
    Took(T),
    /// It refused the problem, for this reason.
    Refused(String),
}

impl AutoConfig {
    /// `auto` with its default settings, choosing among the optimizers of `registry`
    /// (an `auto` entry there is left out).
    pub fn over(registry: &Registry) -> Self {
        Self {
            candidates: Some(Arc::new(registry.without(NAME))),
            ..Self::default()
        }
    }

    /// The optimizers to choose from, or why there are none.
    fn registry(&self) -> Result<&Registry, ConfigError> {
        self.candidates.as_deref().ok_or_else(|| {
            ConfigError::new(
                NAME,
                "",
                "this configuration has no optimizers to choose from: build it through a \
                 registry (`Registry::config(\"auto\", ...)`) or with `AutoConfig::over`",
            )
        })
    }

    /// The plan for `compiled`, in order of preference, whatever this build holds (see
    /// the module's table).
    pub fn plan(&self, compiled: &Compiled) -> Vec<Candidate> {
        let features = compiled.features();
        let integer: Vec<Feature> = features
            .iter()
            .filter(|f| f.is_integer())
            .cloned()
            .collect();
        let s_curves = features.iter().find_map(|f| match f {
            Feature::NonConcave(channels) if !channels.is_empty() => Some(channels.join(", ")),
            _ => None,
        });
        let n = compiled.layout().len();
        let mut plan = Vec::new();
        if compiled.mmm().is_some() {
            if integer.is_empty() && s_curves.is_none() {
                let why = "concave curves of the built-in model";
                plan.push(Candidate::new(
                    "convex",
                    format!("{why}: `convex` proves the global optimum"),
                ));
                for local in ["lbfgs", "trust-region"] {
                    plan.push(Candidate::new(
                        local,
                        format!("{why}: `{local}` reaches the global optimum (no bound)"),
                    ));
                }
            } else {
                let mut why = Vec::new();
                if let Some(channels) = &s_curves {
                    why.push(format!("S-curves (hill with s > 1) on {channels}"));
                }
                if !integer.is_empty() {
                    why.push(format!(
                        "integer and activation rules ({})",
                        short(&integer)
                    ));
                }
                let why = why.join(" and ");
                plan.push(Candidate::new(
                    "milp",
                    format!(
                        "{why}: `milp` finds the global optimum within its tolerance, with a bound"
                    ),
                ));
                if integer.is_empty() {
                    let k = self.multi_start;
                    for local in ["lbfgs", "trust-region"] {
                        plan.push(
                            Candidate::new(
                                local,
                                format!("{why}: `{local}` from {k} starts, a good local optimum (no bound)"),
                            )
                            .with("multi_start", json!(k)),
                        );
                    }
                }
            }
        } else if compiled.model().derivatives() != Derivatives::ValueOnly {
            for local in ["lbfgs", "trust-region"] {
                plan.push(Candidate::new(
                    local,
                    format!("a model with gradients and no curve structure: `{local}`, a local optimum (global when the model is concave)"),
                ));
            }
        }
        let black_box = if compiled.model().derivatives() == Derivatives::ValueOnly {
            "a model that gives values only"
        } else {
            "a black-box search"
        };
        let tpe = Candidate::new(
            "tpe",
            format!(
                "{black_box}, {n} variables (at most {}): `tpe`, the best trial within its budget",
                self.tpe_max_variables
            ),
        );
        let cmaes = Candidate::new(
            "cmaes",
            format!("{black_box}, {n} variables: `cmaes`, the best point within its budget"),
        );
        if n <= self.tpe_max_variables {
            plan.extend([tpe, cmaes]);
        } else {
            plan.extend([cmaes, tpe]);
        }
        plan
    }

    /// Goes through the plan for `compiled`: passes over each candidate that this build
    /// does not hold or whose capabilities exclude a feature of the problem, and tries
    /// the others with `attempt` until one takes the problem. Returns what it gave and
    /// the choice, or what was passed over when none took it.
    fn walk<T>(
        &self,
        compiled: &Compiled,
        mut attempt: impl FnMut(&dyn SolverConfig) -> Result<Attempt<T>, Error>,
    ) -> Result<Result<(T, Selected), Passed>, Error> {
        let registry = self.registry()?;
        let mut passed = Passed::default();
        for candidate in self.plan(compiled) {
            let name = candidate.optimizer;
            if !registry.contains(name) {
                passed.why.push(format!("`{name}` is not in this build"));
                continue;
            }
            let config = registry.config(name, candidate.settings.clone())?;
            let missing = config.refuses(compiled);
            if !missing.is_empty() {
                passed
                    .why
                    .push(format!("`{name}` cannot honour {}", short(&missing)));
                for f in missing {
                    if !passed.refused.contains(&f) {
                        passed.refused.push(f);
                    }
                }
                continue;
            }
            match attempt(config.as_ref())? {
                Attempt::Took(t) => return Ok(Ok((t, selected(&candidate, &passed.why)))),
                Attempt::Refused(what) => passed.why.push(format!("`{name}` refused {what}")),
            }
        }
        Ok(Err(passed))
    }

    /// What `auto` would run on `compiled` and why: the first candidate of the plan that
    /// this build holds and that accepts the problem by its capabilities (a refusal when
    /// its solve starts would pass the problem on).
    pub fn choose(&self, compiled: &Compiled) -> Result<Selected, Error> {
        match self.walk(compiled, |_| Ok(Attempt::Took(())))? {
            Ok(((), chosen)) => Ok(chosen),
            Err(passed) => Err(refusal(&passed)),
        }
    }
}

/// The features, named shortly (`spend_unit`, S-curves on tv) for a reason.
fn short(features: &[Feature]) -> String {
    features
        .iter()
        .map(|f| match f {
            Feature::SpendUnit(_) => "`spend_unit`".to_string(),
            Feature::MinActive(_) => "`min_active`".to_string(),
            Feature::FixedCost(_) => "`fixed_cost`".to_string(),
            Feature::MaxActiveChannels(k) => format!("`max_active_channels` ({k})"),
            Feature::NonConcave(c) if !c.is_empty() => format!("S-curves on {}", c.join(", ")),
            other => other.describe(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The choice of `candidate`, after `passed`.
fn selected(candidate: &Candidate, passed: &[String]) -> Selected {
    let mut reason = candidate.reason.clone();
    if !passed.is_empty() {
        reason.push_str(&format!(" ({})", passed.join("; ")));
    }
    Selected {
        optimizer: candidate.optimizer.to_string(),
        reason,
    }
}

/// `auto`'s refusal when no candidate took the problem.
fn refusal(passed: &Passed) -> Error {
    let why = passed.why.join("; ");
    let mut features: Vec<String> = passed.refused.iter().map(Feature::describe).collect();
    if features.is_empty() {
        // Nothing refused by capability: every candidate was missing, or refused when its
        // solve started.
        features.push(format!(
            "the problem with the optimizers of this build ({why})"
        ));
    } else if !why.is_empty() {
        features.push(format!("({why})"));
    }
    Error::Unsupported {
        optimizer: NAME.to_string(),
        features,
        alternatives: Vec::new(),
    }
}

#[typetag::serde(name = "auto")]
impl SolverConfig for AutoConfig {
    fn name(&self) -> &'static str {
        NAME
    }

    fn summary(&self) -> &'static str {
        "picks the optimizer from the problem's features and the model's derivatives: convex for concave curves, milp for S-curves and integer rules (multi-start lbfgs without it), lbfgs for models with gradients, cmaes or tpe for black boxes"
    }

    /// What the optimizers it may choose can do together: it needs what every one of
    /// them needs, handles what any of them handles, and proves a bound or runs in
    /// parallel only when every one of them does.
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities {
            needs_gradient: true,
            needs_hessian: true,
            needs_structure: true,
            handles_nonconvex: false,
            integer_features: false,
            nonlinear_constraints: false,
            proves_bound: true,
            parallel: true,
        };
        let Some(registry) = self.candidates.as_deref() else {
            return caps;
        };
        let list = registry.list();
        if list.is_empty() {
            caps.proves_bound = false;
            caps.parallel = false;
        }
        for info in list {
            let c = info.capabilities;
            caps.needs_gradient &= c.needs_gradient;
            caps.needs_hessian &= c.needs_hessian;
            caps.needs_structure &= c.needs_structure;
            caps.handles_nonconvex |= c.handles_nonconvex;
            caps.integer_features |= c.integer_features;
            caps.nonlinear_constraints |= c.nonlinear_constraints;
            caps.proves_bound &= c.proves_bound;
            caps.parallel &= c.parallel;
        }
        caps
    }

    fn check(&self) -> Result<(), ConfigError> {
        ConfigError::check_range(NAME, "multi_start", self.multi_start, 1..=10_000)?;
        ConfigError::check_range(
            NAME,
            "tpe_max_variables",
            self.tpe_max_variables,
            0..=1_000_000,
        )?;
        Ok(())
    }

    fn build(&self) -> Result<Box<dyn Solver>, ConfigError> {
        self.check()?;
        self.registry()?;
        Ok(Box::new(Auto {
            config: self.clone(),
        }))
    }

    fn settings(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Empty when some candidate accepts `compiled`; else every feature a candidate
    /// refused (all of the problem's features when none is in the build).
    fn refuses(&self, compiled: &Compiled) -> Vec<Feature> {
        match self.walk(compiled, |_| Ok(Attempt::Took(()))) {
            Ok(Ok(_)) => Vec::new(),
            Ok(Err(passed)) if !passed.refused.is_empty() => passed.refused,
            _ => compiled.features(),
        }
    }
}

/// The solver `auto` builds: runs the first candidate that accepts the problem.
struct Auto {
    config: AutoConfig,
}

impl Solver for Auto {
    fn name(&self) -> &str {
        NAME
    }

    fn solve(&self, ctx: &Context<'_>) -> Result<Solution, Error> {
        let outcome = self.config.walk(ctx.compiled(), |config| {
            match config.build()?.solve(ctx) {
                Ok(solution) => Ok(Attempt::Took(solution)),
                // A refusal is information: the next candidate may take the problem.
                Err(Error::Unsupported { features, .. }) => {
                    Ok(Attempt::Refused(features.join(", ")))
                }
                Err(e) => Err(e),
            }
        })?;
        match outcome {
            Ok((mut solution, chosen)) => {
                solution.selected = Some(chosen);
                Ok(solution)
            }
            Err(passed) => Err(refusal(&passed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{Format, Problem};

    fn compiled(text: &str) -> Compiled {
        Compiled::new(&Problem::from_text(text, Format::Toml).unwrap()).unwrap()
    }

    const CONCAVE: &str = r#"
        name = "two"
        budget = 100.0
        [[channels]]
        name = "tv"
        response = { kind = "hill", beta = 300.0, k = 50.0, s = 1.0 }
        [[channels]]
        name = "search"
        response = { kind = "log", beta = 80.0, k = 20.0 }
    "#;

    const S_CURVES: &str = r#"
        name = "two"
        budget = 100.0
        [[channels]]
        name = "tv"
        response = { kind = "hill", beta = 300.0, k = 50.0, s = 2.0 }
        [[channels]]
        name = "search"
        response = { kind = "log", beta = 80.0, k = 20.0 }
    "#;

    fn names(plan: &[Candidate]) -> Vec<&'static str> {
        plan.iter().map(|c| c.optimizer).collect()
    }

    #[test]
    fn the_plan_follows_the_table() {
        let auto = AutoConfig::default();
        assert_eq!(
            names(&auto.plan(&compiled(CONCAVE))),
            ["convex", "lbfgs", "trust-region", "tpe", "cmaes"]
        );
        let plan = auto.plan(&compiled(S_CURVES));
        assert_eq!(
            names(&plan),
            ["milp", "lbfgs", "trust-region", "tpe", "cmaes"]
        );
        assert!(plan[0].reason.contains("S-curves"), "{}", plan[0].reason);
        assert!(plan[0].reason.contains("tv"), "{}", plan[0].reason);
        assert_eq!(plan[1].settings["multi_start"], json!(16));
        let integer = CONCAVE.replace("s = 1.0 }", "s = 1.0 }\nspend_unit = 5.0");
        assert_eq!(
            names(&auto.plan(&compiled(&integer))),
            ["milp", "tpe", "cmaes"]
        );
        let few = AutoConfig {
            tpe_max_variables: 1,
            ..AutoConfig::default()
        };
        assert_eq!(
            names(&few.plan(&compiled(CONCAVE))),
            ["convex", "lbfgs", "trust-region", "cmaes", "tpe"]
        );
    }

    #[test]
    fn without_candidates_it_cannot_be_built_and_refuses_everything() {
        let auto = AutoConfig::default();
        auto.check().unwrap();
        let err = auto.build().err().unwrap();
        assert!(err.reason.contains("no optimizers to choose from"), "{err}");
        let c = compiled(CONCAVE);
        assert_eq!(auto.refuses(&c), c.features());
        let empty = AutoConfig::over(&Registry::new());
        let err = empty.choose(&c).unwrap_err();
        assert!(
            err.to_string().contains("`convex` is not in this build"),
            "{err}"
        );
    }

    #[test]
    fn bad_settings_name_the_field() {
        let bad = AutoConfig {
            multi_start: 0,
            ..AutoConfig::default()
        };
        let err = bad.check().unwrap_err();
        assert_eq!(err.field, "multi_start");
        assert!(err.reason.contains("1..=10000"), "{err}");
    }

    #[test]
    fn registered_it_keeps_its_candidates_through_the_registry() {
        let mut registry = Registry::new();
        register(&mut registry).unwrap();
        assert_eq!(registry.names(), ["auto"]);
        assert!(register(&mut registry).is_err());
        let config = registry
            .config(
                NAME,
                serde_json::from_value(json!({"multi_start": 4})).unwrap(),
            )
            .unwrap();
        assert_eq!(config.settings()["multi_start"], json!(4));
        // Built (it has its candidates), but there is nothing to choose from: a problem
        // without features passes the capability check and is refused by the solve.
        assert!(config.build().is_ok());
        let err = registry
            .optimize(&compiled(CONCAVE), config.as_ref(), Default::default())
            .unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported { optimizer, .. } if optimizer == NAME),
            "{err}"
        );
        assert!(
            err.to_string().contains("`cmaes` is not in this build"),
            "{err}"
        );
        // With features, before solving.
        assert_eq!(
            config.refuses(&compiled(S_CURVES)),
            compiled(S_CURVES).features()
        );
        let err = registry
            .config(
                NAME,
                serde_json::from_value(json!({"multi_starts": 4})).unwrap(),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("did you mean `multi_start`"),
            "{err}"
        );
    }
}
