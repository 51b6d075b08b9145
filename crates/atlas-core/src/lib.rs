//! # atlas-core
//!
//! The shared ground of Atlas: the problem schema of the file contract, response curves
//! and the marketing-mix model, the feasible set with its projections, scaling, the
//! [`Solver`] trait with its solve [`Context`], the [`Registry`] of optimizers, and the
//! result type.
//!
//! Backends live in their own crates and implement [`Solver`] and [`SolverConfig`];
//! everything they share (scaling, projection, counting, limits, observers, early
//! stopping, constraint handling by augmented Lagrangian) lives here, once.
//!
//! ```
//! use atlas_core::{Compiled, Problem, Format};
//! let problem = Problem::from_text(r#"
//!     name = "two channels"
//!     budget = 100.0
//!     [[channels]]
//!     name = "tv"
//!     response = { kind = "hill", beta = 300.0, k = 50.0, s = 1.0 }
//!     [[channels]]
//!     name = "search"
//!     response = { kind = "log", beta = 80.0, k = 20.0 }
//! "#, Format::Toml).unwrap();
//! let compiled = Compiled::new(&problem).unwrap();
//! assert_eq!(compiled.layout().len(), 2);
//! // Spending 60 / 40 is feasible; its response is computed by the model.
//! assert!(compiled.is_feasible(&[60.0, 40.0]));
//! ```

pub mod augmented;
pub mod auto;
pub mod blackbox;
mod cancel;
mod compile;
mod context;
pub mod curve;
pub mod draws;
mod error;
pub mod executor;
pub mod feasible;
pub mod files;
pub mod functions;
mod layout;
pub mod limits;
pub mod memory;
pub mod model;
pub mod model_spec;
pub mod multistart;
mod observer;
mod optimize;
pub mod problem;
mod registry;
mod result;
mod scaled;
mod solver;
pub mod suggest;

pub use cancel::CancelToken;
pub use compile::{Compiled, Feature, IntegerRules, MinRoi, Objective};
pub use context::{fd_hessian_vector, Context, Counts, Evaluator, SolveOptions};
pub use curve::Curve;
pub use error::{ConfigError, Error, InfeasibleError, InputError};
pub use executor::{Executor, Iterate, IterativeSolver, Kv, KvValue, Run, Step, Termination};
pub use feasible::{FeasibleSet, LinearRows, ProjectionWorkspace, RowOrigin};
pub use layout::Layout;
pub use model::{Adstock, ChannelResponse, Derivatives, Mmm, Model};
pub use model_spec::{compile_with_loader, ModelLoader, ModelSpec, ModelStats};
pub use observer::{Frequency, IterationEvent, Observer, StartEvent};
pub use optimize::optimize;
pub use problem::{BudgetMode, Format, Problem};
pub use registry::{unsupported, OptimizerInfo, Registry, SolverConfig};
pub use result::{Allocation, CacheStatus, Evaluation, Metrics, OptimizationResult, Selected};
pub use scaled::{Combination, NonlinearRow, Scaled};
pub use solver::{Capabilities, Solution, Solver, Status};

/// Re-exported so backends register configurations with the same typetag version.
pub use typetag;
