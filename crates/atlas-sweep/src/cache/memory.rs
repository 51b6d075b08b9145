//! The in-process level: a bounded concurrent map (quick_cache), weighed by the size of
//! each result's allocation so that a few large problems cannot hold the memory of
//! thousands of small ones.

use std::sync::Arc;

use atlas_core::OptimizationResult;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

#[derive(Clone)]
struct AllocationSize;

impl Weighter<String, Arc<OptimizationResult>> for AllocationSize {
    fn weight(&self, _key: &String, value: &Arc<OptimizationResult>) -> u64 {
        let numbers: usize = value.allocation.values().map(Vec::len).sum();
        // The fixed part (names, metrics) counts as a few dozen numbers.
        numbers as u64 + 64
    }
}

pub(super) struct MemoryLevel {
    map: Cache<String, Arc<OptimizationResult>, AllocationSize>,
}

impl MemoryLevel {
    pub(super) fn new(capacity: u64) -> Self {
        let capacity = capacity.max(1);
        Self {
            map: Cache::with_weighter((capacity / 256).max(16) as usize, capacity, AllocationSize),
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<Arc<OptimizationResult>> {
        self.map.get(key)
    }

    pub(super) fn insert(&self, key: &str, result: &OptimizationResult) {
        self.map.insert(key.to_string(), Arc::new(result.clone()));
    }

    pub(super) fn remove(&self, key: &str) {
        self.map.remove(key);
    }
}
