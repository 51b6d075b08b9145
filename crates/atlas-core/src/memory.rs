//! Peak resident memory of the process, for the `peak_memory_mb` metric.
//!
//! On Linux the kernel keeps the high-water mark of resident memory (`VmHWM` in
//! `/proc/self/status`). A solve only reads it, so by default `peak_memory_mb` is the
//! process's peak up to the end of the solve: an upper bound on the solve's own peak, with
//! no effect on anything else in the process. The kernel also lets a process reset the
//! mark (writing `5` to `/proc/self/clear_refs`), which gives a per-solve peak without a
//! counting allocator; but the reset is process-wide (it changes what every other reader of
//! `VmHWM` sees, and two solves at once would reset each other's peak), so it happens only
//! when the program that owns the process asks for it with [`reset_before_each_solve`]:
//! the `atlas` command line does, for `optimize` and `bench`. Elsewhere the metric is 0.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a solve resets the high-water mark when it starts.
static RESET_BEFORE_EACH_SOLVE: AtomicBool = AtomicBool::new(false);

/// Asks every solve that follows (`on`) to reset the high-water mark when it starts, so
/// that its `peak_memory_mb` covers that solve alone; `false` (the default) leaves the
/// mark alone. Meant for a program that owns its process and runs one solve at a time.
pub fn reset_before_each_solve(on: bool) {
    RESET_BEFORE_EACH_SOLVE.store(on, Ordering::Relaxed);
}

/// Whether [`reset_before_each_solve`] is on.
pub fn resets_before_each_solve() -> bool {
    RESET_BEFORE_EACH_SOLVE.load(Ordering::Relaxed)
}

/// When a solve starts: resets the mark if [`reset_before_each_solve`] asked for it.
pub(crate) fn solve_started() {
    if resets_before_each_solve() {
        reset_peak();
    }
}

/// Resets the high-water mark so the next reading covers only what follows; returns
/// whether the platform allowed it. Process-wide: see the module's documentation.
pub fn reset_peak() -> bool {
    #[cfg(target_os = "linux")]
    {
        std::fs::write("/proc/self/clear_refs", b"5").is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Peak resident memory in MiB since the process started or the last successful
/// [`reset_peak`]; 0 when unknown.
pub fn peak_mb() -> f64 {
    #[cfg(target_os = "linux")]
    {
        read_status_kib("VmHWM:").map_or(0.0, |kib| kib as f64 / 1024.0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        0.0
    }
}

#[cfg(target_os = "linux")]
fn read_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    /// Allocates `mib` MiB and touches every page, so they are resident; then frees them.
    fn touch(mib: usize) {
        let big = vec![1u8; mib << 20];
        let sum: u64 = std::hint::black_box(&big)
            .iter()
            .step_by(4096)
            .map(|&b| b as u64)
            .sum();
        assert!(sum > 0);
    }

    /// One test (not several running at once): each step reads a mark the others move.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_solve_reads_the_mark_and_resets_it_only_when_asked() {
        let before = super::peak_mb();
        assert!(before > 0.0);
        // Above the process's peak so far, whatever the other tests did.
        let mib = before as usize + 256;
        touch(mib);
        let high = super::peak_mb();
        assert!(high >= before + 128.0, "{before} -> {high}");
        // By default a solve only reads the mark: the freed allocation still counts.
        assert!(!super::resets_before_each_solve());
        super::solve_started();
        assert!(super::peak_mb() >= high, "{high} -> {}", super::peak_mb());
        // Asked to, a solve starts from the resident memory of now (where the platform
        // lets a process reset the mark).
        let can_reset = std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/self/clear_refs")
            .is_ok();
        super::reset_before_each_solve(true);
        super::solve_started();
        let after = super::peak_mb();
        super::reset_before_each_solve(false);
        assert!(!super::resets_before_each_solve());
        if can_reset {
            assert!(after < high - 128.0, "{high} -> {after}");
        }
    }
}
