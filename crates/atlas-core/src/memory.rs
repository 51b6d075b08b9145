//! Peak resident memory of the process, for the `peak_memory_mb` metric.
//!
//! On Linux the kernel keeps the high-water mark of resident memory (`VmHWM` in
//! `/proc/self/status`) and lets a process reset it (writing `5` to
//! `/proc/self/clear_refs`), which gives a per-solve peak without a counting allocator.
//! Elsewhere the metric is 0.

/// Resets the high-water mark so the next reading covers only what follows; returns
/// whether the platform allowed it.
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
    #[test]
    #[cfg(target_os = "linux")]
    fn peak_grows_with_a_large_allocation() {
        super::reset_peak();
        let before = super::peak_mb();
        assert!(before > 0.0);
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        // Touch every page so it is resident.
        let sum: u64 = big.iter().step_by(4096).map(|&b| b as u64).sum();
        assert!(sum > 0);
        assert!(super::peak_mb() >= before + 32.0);
    }
}
