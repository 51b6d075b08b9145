#![doc = include_str!("../README.md")]

pub mod cache;
pub mod canonical;
pub mod grid;
mod result;
pub mod scenario;
mod sweep;
mod warm;

pub use cache::{cacheable, solve_cached, Cache, CacheBuilder, CacheStats, WarningSink};
pub use canonical::{cache_key, KeyOptions, ATLAS_VERSION, CONTRACT_VERSION};
pub use grid::{BudgetGrid, BudgetValue};
pub use result::{ScenarioError, ScenarioResult, SweepResult};
pub use scenario::{Scenario, ScenarioFile, ScenarioSpec};
pub use sweep::{default_optimizer, CompileFn, Progress, ProgressFn, Sweep};
