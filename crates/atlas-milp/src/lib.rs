#![doc = include_str!("../README.md")]

#[cfg(not(any(feature = "microlp", feature = "highs")))]
compile_error!(
    "atlas-milp needs a mixed-integer solver: enable the feature `microlp` (pure Rust, the \
     default) or `highs` (HiGHS, built from source; needs cmake and libclang), or both"
);

mod backend;
mod config;
mod model;
mod polish;
mod pwl;
mod solver;

pub use config::{MilpConfig, MipSolver};
pub use model::{model_size, ModelSize};
pub use solver::Milp;

/// Registers `milp` in `registry`.
pub fn register(registry: &mut atlas_core::Registry) -> Result<(), atlas_core::Error> {
    registry.register::<MilpConfig>()
}
