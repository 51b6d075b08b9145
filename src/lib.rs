//! # Atlas
//!
//! Finds the allocation of a marketing budget across channels and periods that maximizes
//! a response model under business rules, with pluggable optimizers. This facade
//! re-exports [`atlas_core`] and builds the [`registry`] of the optimizers enabled by
//! Cargo features: `lbfgs`, `trust-region`, `convex`, `tpe`, `cmaes`, `milp`, and `auto`,
//! which picks one of them for each problem ([`atlas_core::auto`]).
//!
//! The library alone depends on the core, the models and the enabled backends; the `atlas`
//! command line (clap, the bench, the report's charts) is the `cli` feature, on by
//! default: `atlas = { version = "0.1", default-features = false, features = ["convex"] }`
//! is a lean library.
//!
//! ```
//! let registry = atlas::registry().unwrap();
//! let compiled = atlas::Compiled::from_path("examples/problems/quickstart.toml").unwrap();
//! let config = registry.default_config("lbfgs").unwrap();
//! let result = registry.optimize(&compiled, config.as_ref(), Default::default()).unwrap();
//! assert!(result.max_violation <= 1e-6 * compiled.budget());
//! assert!((result.objective - 1_585_364.8228965725).abs() <= 1e-6 * result.objective);
//! ```

#[cfg(not(any(
    feature = "lbfgs",
    feature = "trust-region",
    feature = "convex",
    feature = "tpe",
    feature = "cmaes",
    feature = "milp"
)))]
compile_error!(
    "Atlas needs at least one optimizer backend: enable one or more of the features \
     `lbfgs`, `trust-region`, `convex`, `tpe`, `cmaes`, `milp` \
     (e.g. `cargo build --no-default-features --features lbfgs`)"
);

pub use atlas_core::*;
/// Response models from outside (ONNX, HTTP services): `shared/spec/models.md`.
pub use atlas_models;

/// Reads, checks and compiles a problem file with the model its `[model]` table selects
/// (the built-in one, an ONNX graph, a prediction service); errors name the file.
pub fn load_problem(path: impl AsRef<std::path::Path>) -> Result<Compiled, Error> {
    atlas_models::compile_path(path)
}

#[cfg(feature = "cmaes")]
pub use atlas_cmaes;
#[cfg(feature = "convex")]
pub use atlas_convex;
#[cfg(feature = "lbfgs")]
pub use atlas_lbfgs;
#[cfg(feature = "milp")]
pub use atlas_milp;
#[cfg(feature = "tpe")]
pub use atlas_tpe;
#[cfg(feature = "trust-region")]
pub use atlas_trust_region;

/// Registers every optimizer enabled by this build's features into `registry`, then
/// `auto` choosing among those of `registry`.
pub fn register_enabled(registry: &mut Registry) -> Result<(), Error> {
    #[cfg(feature = "lbfgs")]
    atlas_lbfgs::register(registry)?;
    #[cfg(feature = "trust-region")]
    atlas_trust_region::register(registry)?;
    #[cfg(feature = "convex")]
    atlas_convex::register(registry)?;
    #[cfg(feature = "tpe")]
    atlas_tpe::register(registry)?;
    #[cfg(feature = "cmaes")]
    atlas_cmaes::register(registry)?;
    #[cfg(feature = "milp")]
    atlas_milp::register(registry)?;
    // Last: `auto` chooses among the optimizers registered before it.
    atlas_core::auto::register(registry)
}

/// A registry holding every optimizer enabled by this build's features, and `auto`.
///
/// Each backend registers one distinct name; a clash (a build defect, caught by the
/// registry test) is the error [`Error::DuplicateOptimizer`].
pub fn registry() -> Result<Registry, Error> {
    let mut registry = Registry::new();
    register_enabled(&mut registry)?;
    Ok(registry)
}
