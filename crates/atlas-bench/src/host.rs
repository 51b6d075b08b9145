//! Where and from what a benchmark ran: host, git revision, build, time.

use std::process::Command;

use serde::{Deserialize, Serialize};

/// The machine a benchmark ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Host name (empty when unknown).
    pub hostname: String,
    /// Operating system (`linux`, `macos`, ...).
    pub os: String,
    /// Kernel release, when known.
    pub kernel: Option<String>,
    /// CPU architecture.
    pub arch: String,
    /// CPU model, when known.
    pub cpu: Option<String>,
    /// Logical cores available to the process.
    pub logical_cores: usize,
    /// Total memory in GiB, when known.
    pub memory_gib: Option<f64>,
    /// Load average over the last minute when the benchmark started (Linux), a hint of
    /// how busy the machine was.
    pub load_average_1m: Option<f64>,
}

impl Host {
    /// Describes this machine.
    pub fn detect() -> Host {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
        let meminfo = read("/proc/meminfo").unwrap_or_default();
        Host {
            hostname: read("/proc/sys/kernel/hostname")
                .or_else(|| read("/etc/hostname"))
                .or_else(|| std::env::var("HOSTNAME").ok())
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            os: std::env::consts::OS.to_string(),
            kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()),
            arch: std::env::consts::ARCH.to_string(),
            cpu: cpuinfo
                .lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string()),
            logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: meminfo
                .lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
                .map(|kib| (kib / (1024.0 * 1024.0) * 10.0).round() / 10.0),
            load_average_1m: read("/proc/loadavg")
                .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok())),
        }
    }
}

/// The source revision a benchmark measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Git {
    /// `git rev-parse HEAD` in the working directory, when it is a git checkout.
    pub revision: Option<String>,
    /// Whether tracked files had uncommitted changes.
    pub dirty: Option<bool>,
}

impl Git {
    /// Asks `git` about the working directory; fields stay `None` without git.
    pub fn detect() -> Git {
        let run = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let revision = run(&["rev-parse", "HEAD"]);
        let dirty = revision
            .as_ref()
            .and_then(|_| run(&["status", "--porcelain", "--untracked-files=no"]))
            .map(|s| !s.is_empty());
        Git { revision, dirty }
    }
}

/// The build that ran the benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Build {
    /// `release` or `debug` (timings of a debug build mean little).
    pub profile: String,
    /// Version of the bench crate (the workspace version).
    pub atlas_version: String,
    /// The Cargo features of the `atlas` build, when the runner was told them
    /// (`cargo xtask bench` sets `ATLAS_BENCH_FEATURES`); `None` otherwise. The
    /// registered optimizers are listed beside it in any case.
    pub features: Option<Vec<String>>,
}

impl Build {
    /// This build.
    pub fn detect() -> Build {
        Build {
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_string(),
            atlas_version: env!("CARGO_PKG_VERSION").to_string(),
            features: std::env::var("ATLAS_BENCH_FEATURES").ok().map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            }),
        }
    }
}

/// The current UTC time as RFC 3339 (`2024-06-01T12:00:00Z`), without a date library.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// `secs` since the Unix epoch as RFC 3339 UTC (days to civil date: Howard Hinnant's
/// algorithm).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        // 2000-02-29 (a leap day) 12:34:56 UTC.
        assert_eq!(super::rfc3339(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(super::rfc3339(1_717_243_200), "2024-06-01T12:00:00Z");
    }
}
