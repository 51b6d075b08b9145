//! The result cache (contract `scenarios.md`, section 4): solved problems stored under
//! the SHA-256 of what decides their answer, in up to three levels, fastest first:
//!
//! - memory: a bounded in-process map (quick_cache), in front of the others;
//! - folder: one JSON file per key, written atomically (a temporary file renamed over the
//!   entry), so several processes may share the folder;
//! - Redis (feature `redis`): a level shared by many processes and machines, entries
//!   expiring after `ATLAS_CACHE_TTL` seconds (default 7 days).
//!
//! Every entry is checked before it is returned, whatever level it comes from: its
//! allocation is re-evaluated with the current model, and if the objective, the largest
//! violation or the totals differ from the stored ones by more than 1e-9 (relative), the
//! entry is dropped and the problem solved again. An unreadable, truncated or forged entry
//! is a miss, never an error. A result that ended in `time_limit` or `stopped_early` is
//! never stored. A level that fails (a folder that cannot be written, a Redis that cannot
//! be reached) is reported once through the warning sink (stderr by default) and the
//! solve goes on without it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use atlas_core::problem::Problem;
use atlas_core::{
    CacheStatus, Compiled, Error, InputError, OptimizationResult, Registry, SolveOptions,
    SolverConfig, Status,
};
use serde::{Deserialize, Serialize};

use crate::canonical::{cache_key, KeyOptions};

mod folder;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use folder::FolderLevel;
use memory::MemoryLevel;

/// The format tag of a stored entry.
const ENTRY_FORMAT: &str = "atlas-result-cache/1";

/// Relative tolerance of the re-evaluation of a stored result.
pub const RECHECK_TOLERANCE: f64 = 1e-9;

/// Where warnings about failing levels go.
pub type WarningSink = Arc<dyn Fn(&str) + Send + Sync>;

/// One stored result, as written in a file or a Redis value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    format: String,
    key: String,
    result: OptimizationResult,
}

/// Counts of what the cache did, for reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Lookups answered by a checked entry.
    pub hits: u64,
    /// Lookups that found no usable entry.
    pub misses: u64,
    /// Entries found but dropped: unreadable, for another key, or failing the
    /// re-evaluation.
    pub rejected: u64,
    /// Results stored.
    pub stored: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
    stored: AtomicU64,
}

/// A result cache with a memory level and, optionally, a folder and a Redis level.
pub struct Cache {
    memory: MemoryLevel,
    folder: Option<FolderLevel>,
    #[cfg(feature = "redis")]
    redis: Option<redis::RedisLevel>,
    warn: WarningSink,
    counters: Counters,
    description: String,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("levels", &self.description)
            .field("stats", &self.stats())
            .finish()
    }
}

fn stderr_sink() -> WarningSink {
    Arc::new(|message: &str| eprintln!("warning: {message}"))
}

/// Default capacity of the memory level, in stored numbers (allocation values): about
/// 32 MiB of allocations.
pub const MEMORY_CAPACITY: u64 = 4_000_000;

/// Default lifetime of a Redis entry: 7 days.
pub const DEFAULT_TTL_S: u64 = 7 * 24 * 3600;

/// Builds a [`Cache`]: a memory level, plus a folder and/or a Redis level.
#[derive(Clone)]
pub struct CacheBuilder {
    memory_capacity: u64,
    folder: Option<PathBuf>,
    redis: Option<String>,
    ttl_s: Option<u64>,
    warn: WarningSink,
}

impl std::fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("memory_capacity", &self.memory_capacity)
            .field("folder", &self.folder)
            .field("redis", &self.redis.as_deref().map(redact))
            .field("ttl_s", &self.ttl_s)
            .finish()
    }
}

impl Default for CacheBuilder {
    fn default() -> Self {
        Self {
            memory_capacity: MEMORY_CAPACITY,
            folder: None,
            redis: None,
            ttl_s: None,
            warn: stderr_sink(),
        }
    }
}

impl CacheBuilder {
    /// The builder a `--cache` value names: `off` (`None`), `memory`, `redis://...`
    /// (feature `redis`), or else a folder path.
    pub fn from_spec(spec: &str) -> Result<Option<CacheBuilder>, Error> {
        let spec = spec.trim();
        let b = CacheBuilder::default();
        match spec {
            "" => Err(InputError::new(
                "--cache",
                "empty: give a folder, redis://HOST:PORT, memory or off",
            )
            .into()),
            "off" => Ok(None),
            "memory" => Ok(Some(b)),
            s if s.starts_with("redis://") || s.starts_with("rediss://") => Ok(Some(b.redis(s))),
            s => Ok(Some(b.folder(s))),
        }
    }

    /// Items the memory level holds, weighed by their allocation's size (default
    /// [`MEMORY_CAPACITY`] numbers).
    pub fn memory_capacity(mut self, numbers: u64) -> Self {
        self.memory_capacity = numbers;
        self
    }

    /// Adds a folder level (one file per key; created when missing).
    pub fn folder(mut self, dir: impl Into<PathBuf>) -> Self {
        self.folder = Some(dir.into());
        self
    }

    /// Adds a Redis level at `url` (`redis://HOST:PORT[/DB]`; feature `redis`).
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis = Some(url.into());
        self
    }

    /// Lifetime of Redis entries in seconds (default: `ATLAS_CACHE_TTL`, else 7 days).
    pub fn ttl_seconds(mut self, seconds: u64) -> Self {
        self.ttl_s = Some(seconds);
        self
    }

    /// Sends warnings about failing levels to `sink` (default: stderr).
    pub fn warnings(mut self, sink: WarningSink) -> Self {
        self.warn = sink;
        self
    }

    /// The cache. A folder that cannot be created or written is reported once and then
    /// only read (when it can be). A Redis server is contacted on first use. Errors: a
    /// Redis URL that does not parse, an `ATLAS_CACHE_TTL` that is not a whole number of
    /// seconds > 0, a Redis level in a build without the `redis` feature.
    pub fn build(self) -> Result<Cache, Error> {
        let mut levels = vec!["memory".to_string()];
        let folder = self.folder.map(|dir| {
            levels.push(format!("folder {}", dir.display()));
            FolderLevel::open(dir, &self.warn)
        });
        #[cfg(feature = "redis")]
        let redis = match &self.redis {
            Some(url) => {
                let ttl = match self.ttl_s {
                    Some(t) => t,
                    None => redis::ttl_from_env()?,
                };
                let level = redis::RedisLevel::open(url, ttl)?;
                levels.push(format!("redis {}", level.display()));
                Some(level)
            }
            None => None,
        };
        #[cfg(not(feature = "redis"))]
        if let Some(url) = &self.redis {
            return Err(InputError::new(
                "--cache",
                format!(
                    "`{}`: this build has no Redis support; rebuild with the `redis` feature (cargo build --release --features redis) or use a cache folder",
                    redact(url)
                ),
            )
            .into());
        }
        Ok(Cache {
            memory: MemoryLevel::new(self.memory_capacity),
            folder,
            #[cfg(feature = "redis")]
            redis,
            warn: self.warn,
            counters: Counters::default(),
            description: levels.join(" + "),
        })
    }
}

impl Cache {
    /// A builder with a memory level only.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// A cache held in this process's memory only (the service's default).
    pub fn memory() -> Cache {
        Cache {
            memory: MemoryLevel::new(MEMORY_CAPACITY),
            folder: None,
            #[cfg(feature = "redis")]
            redis: None,
            warn: stderr_sink(),
            counters: Counters::default(),
            description: "memory".to_string(),
        }
    }

    /// A folder level with a memory level in front; warnings on stderr.
    pub fn folder(dir: impl Into<PathBuf>) -> Cache {
        let dir = dir.into();
        let warn = stderr_sink();
        Cache {
            description: format!("memory + folder {}", dir.display()),
            folder: Some(FolderLevel::open(dir, &warn)),
            warn,
            ..Cache::memory()
        }
    }

    /// The cache a `--cache` value names (see [`CacheBuilder::from_spec`]); `None` for
    /// `off`.
    pub fn from_spec(spec: &str) -> Result<Option<Cache>, Error> {
        CacheBuilder::from_spec(spec)?
            .map(CacheBuilder::build)
            .transpose()
    }

    /// The levels, for messages (`folder /tmp/c`, `redis 127.0.0.1:6379`, `memory`).
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// What the cache did so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            stored: c.stored.load(Ordering::Relaxed),
        }
    }

    /// The key of solving `problem` with `config` under `options`.
    pub fn key(problem: &Problem, config: &dyn SolverConfig, options: &SolveOptions) -> String {
        cache_key(
            problem,
            config.name(),
            &config.settings(),
            &KeyOptions {
                seed: options.seed,
                max_evaluations: options.max_evaluations,
                patience: options.patience,
                min_delta: options.min_delta,
            },
        )
    }

    /// The stored result of `key`, checked against `compiled` (the problem it was keyed
    /// from), with `cache = "hit"`; `None` when no level holds a usable entry. Entries that
    /// fail the check are removed.
    pub fn get(
        &self,
        key: &str,
        compiled: &Compiled,
        optimizer: &str,
    ) -> Option<OptimizationResult> {
        let check = |entry: &Entry| check_entry(entry, key, compiled, optimizer);
        if let Some(result) = self.memory.get(key) {
            match check_result(&result, compiled, optimizer) {
                Ok(()) => return self.hit(result.as_ref().clone()),
                Err(_) => {
                    self.memory.remove(key);
                    self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(folder) = &self.folder {
            if let Some(found) = folder.get(key) {
                match found.and_then(|e| check(&e).map(|()| e)) {
                    Ok(entry) => {
                        self.memory.insert(key, &entry.result);
                        return self.hit(entry.result);
                    }
                    Err(_) => {
                        folder.remove(key);
                        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        #[cfg(feature = "redis")]
        if let Some(level) = &self.redis {
            if let Some(found) = level.get(key, &self.warn) {
                match found.and_then(|e| check(&e).map(|()| e)) {
                    Ok(entry) => {
                        self.memory.insert(key, &entry.result);
                        return self.hit(entry.result);
                    }
                    Err(_) => {
                        level.remove(key, &self.warn);
                        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    fn hit(&self, mut result: OptimizationResult) -> Option<OptimizationResult> {
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        result.cache = Some(CacheStatus::Hit);
        Some(result)
    }

    /// Stores `result` under `key` in every level, unless it may not be cached (see
    /// [`cacheable`]). Failures are reported through the warning sink, never returned.
    pub fn put(&self, key: &str, result: &OptimizationResult) {
        if !cacheable(result) {
            return;
        }
        let mut result = result.clone();
        result.cache = None;
        self.memory.insert(key, &result);
        let entry = Entry {
            format: ENTRY_FORMAT.to_string(),
            key: key.to_string(),
            result,
        };
        let Ok(text) = serde_json::to_string(&entry) else {
            return;
        };
        if let Some(folder) = &self.folder {
            folder.put(key, &text, &self.warn);
        }
        #[cfg(feature = "redis")]
        if let Some(level) = &self.redis {
            level.put(key, &text, &self.warn);
        }
        self.counters.stored.fetch_add(1, Ordering::Relaxed);
    }

    /// Solves through the cache: the checked stored result when there is one, else a
    /// solve whose result is stored. The result's `cache` field says which.
    pub fn solve(
        &self,
        registry: &Registry,
        problem: &Problem,
        compiled: &Compiled,
        config: &dyn SolverConfig,
        options: SolveOptions,
    ) -> Result<OptimizationResult, Error> {
        let key = Cache::key(problem, config, &options);
        if let Some(hit) = self.get(&key, compiled, config.name()) {
            return Ok(hit);
        }
        let mut result = registry.optimize(compiled, config, options)?;
        self.put(&key, &result);
        result.cache = Some(CacheStatus::Miss);
        Ok(result)
    }
}

/// Solves `compiled` through `cache` when there is one (`cache = "hit"` or `"miss"`),
/// else directly (`cache = "off"`). The one entry point of the CLI, the service and the
/// sweeps for a possibly cached solve.
pub fn solve_cached(
    registry: &Registry,
    cache: Option<&Cache>,
    problem: &Problem,
    compiled: &Compiled,
    config: &dyn SolverConfig,
    options: SolveOptions,
) -> Result<OptimizationResult, Error> {
    match cache {
        Some(cache) => cache.solve(registry, problem, compiled, config, options),
        None => {
            let mut result = registry.optimize(compiled, config, options)?;
            result.cache = Some(CacheStatus::Off);
            Ok(result)
        }
    }
}

/// Whether a result may be stored: it ended for a reason that does not depend on the
/// clock or on early stopping, and its allocation meets the rules.
pub fn cacheable(result: &OptimizationResult) -> bool {
    let settled = match result.status {
        Status::Optimal | Status::Converged | Status::MaxIterations | Status::MaxEvaluations => {
            true
        }
        Status::TimeLimit
        | Status::StoppedEarly
        | Status::Cancelled
        | Status::NumericalError
        | Status::Infeasible => false,
    };
    settled && result.objective.is_finite() && result.max_violation.is_finite()
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= RECHECK_TOLERANCE * scale.max(a.abs()).max(b.abs())
}

fn check_entry(
    entry: &Entry,
    key: &str,
    compiled: &Compiled,
    optimizer: &str,
) -> Result<(), String> {
    if entry.format != ENTRY_FORMAT {
        return Err(format!("entry format `{}`", entry.format));
    }
    if entry.key != key {
        return Err("entry stored under another key".into());
    }
    check_result(&entry.result, compiled, optimizer)
}

/// Re-evaluates a stored result with the current model: the objective, the largest
/// violation, the totals and the total spend must match within
/// [`RECHECK_TOLERANCE`] (relative), a stored bound must not contradict the objective,
/// and the allocation must meet the rules.
fn check_result(
    r: &OptimizationResult,
    compiled: &Compiled,
    optimizer: &str,
) -> Result<(), String> {
    if r.problem != compiled.name() || r.optimizer != optimizer {
        return Err("entry for another problem or optimizer".into());
    }
    if !cacheable(r) {
        return Err(format!("status `{}` is never cached", r.status));
    }
    let x = r.flat_allocation(compiled).map_err(|e| e.to_string())?;
    let budget_scale = compiled.budget().abs().max(1.0);
    let objective = compiled.objective_value(&x);
    if !close(objective, r.objective, 1.0) {
        return Err(format!(
            "objective {} does not reproduce the stored {}",
            objective, r.objective
        ));
    }
    let violation = compiled.max_violation(&x);
    if !close(violation, r.max_violation, budget_scale) {
        return Err(format!(
            "violation {} does not reproduce the stored {}",
            violation, r.max_violation
        ));
    }
    if violation > compiled.feasibility_tolerance() {
        return Err("allocation breaks the rules".into());
    }
    let totals = compiled.layout().totals(&x);
    let names = compiled.layout().channels();
    if r.totals.len() != names.len()
        || names
            .iter()
            .zip(&totals)
            .any(|(n, t)| r.totals.get(n).is_none_or(|s| !close(*s, *t, budget_scale)))
    {
        return Err("totals do not match the allocation".into());
    }
    if !close(x.iter().sum::<f64>(), r.total_spend, budget_scale) {
        return Err("total spend does not match the allocation".into());
    }
    if let Some(bound) = r.bound {
        let maximize = compiled.objective().maximize();
        let slack = RECHECK_TOLERANCE * objective.abs().max(1.0);
        if !bound.is_finite()
            || (maximize && bound < objective - slack)
            || (!maximize && bound > objective + slack)
        {
            return Err("bound contradicts the objective".into());
        }
    }
    Ok(())
}

/// A Redis URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Cache {
    /// The folder of the folder level, when there is one.
    pub fn folder_path(&self) -> Option<&Path> {
        self.folder.as_ref().map(|f| f.dir())
    }
}
