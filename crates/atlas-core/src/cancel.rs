//! Cancellation of a running solve from another thread (a service cancelling a job, a
//! user pressing Ctrl-C).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag shared between a solve and whoever may cancel it. Clones share the flag:
/// hand one to [`SolveOptions::cancel`](crate::SolveOptions::cancel), keep another and
/// call [`cancel`](CancelToken::cancel) from any thread. A cancelled solve ends with
/// status `cancelled` and the best feasible point found so far.
///
/// ```
/// let token = atlas_core::CancelToken::new();
/// let other = token.clone();
/// assert!(!token.is_cancelled());
/// std::thread::spawn(move || other.cancel()).join().unwrap();
/// assert!(token.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every solve holding a clone of this token to stop. Idempotent.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](CancelToken::cancel) was called on this token or a clone.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}
