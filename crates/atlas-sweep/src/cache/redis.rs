//! The shared level: entries in Redis under `atlas:result:v1:KEY`, written with an
//! expiry (`SET ... EX ttl`). One connection, opened on first use with short timeouts;
//! when the server cannot be reached or stops answering, the failure is reported once
//! and the level is skipped, trying again at most every few seconds, so that a dead Redis
//! costs a sweep almost nothing and never fails a solve.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use atlas_core::{Error, InputError};

use super::{Entry, WarningSink, DEFAULT_TTL_S};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a failed server is left alone before the next attempt.
const RETRY_AFTER: Duration = Duration::from_secs(5);
const PREFIX: &str = "atlas:result:v1:";

/// `ATLAS_CACHE_TTL` (seconds), or the default of 7 days.
pub(super) fn ttl_from_env() -> Result<u64, Error> {
    parse_ttl(std::env::var("ATLAS_CACHE_TTL").ok().as_deref())
}

/// The lifetime an `ATLAS_CACHE_TTL` value gives (`None`: the variable is not set).
pub(super) fn parse_ttl(value: Option<&str>) -> Result<u64, Error> {
    match value {
        None => Ok(DEFAULT_TTL_S),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(t) if t > 0 => Ok(t),
            _ => Err(InputError::new(
                "ATLAS_CACHE_TTL",
                format!("must be a whole number of seconds > 0 (got `{text}`)"),
            )
            .into()),
        },
    }
}

struct State {
    connection: Option<redis::Connection>,
    /// When the last attempt failed; no new attempt before `RETRY_AFTER`.
    failed_at: Option<Instant>,
}

pub(super) struct RedisLevel {
    client: redis::Client,
    display: String,
    ttl_s: u64,
    state: Mutex<State>,
    /// Whether an outage was reported: once per cache, however often the server fails.
    reported: AtomicBool,
}

impl RedisLevel {
    pub(super) fn open(url: &str, ttl_s: u64) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(|e| {
            InputError::new(
                "--cache",
                format!("`{}` is not a usable Redis URL: {e}", super::redact(url)),
            )
        })?;
        let display = client.get_connection_info().addr.to_string();
        Ok(Self {
            client,
            display,
            ttl_s,
            state: Mutex::new(State {
                connection: None,
                failed_at: None,
            }),
            reported: AtomicBool::new(false),
        })
    }

    pub(super) fn display(&self) -> &str {
        &self.display
    }

    /// Runs `op` on the connection (opened when needed); `None` when the server cannot be
    /// reached or the command fails, after reporting the outage once.
    fn with_connection<T>(
        &self,
        warn: &WarningSink,
        op: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.connection.is_none() {
            if state.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
                return None;
            }
            match self.connect() {
                Ok(c) => state.connection = Some(c),
                Err(e) => {
                    state.failed_at = Some(Instant::now());
                    drop(state);
                    self.report(warn, &e);
                    return None;
                }
            }
        }
        let connection = state.connection.as_mut()?;
        match op(connection) {
            Ok(v) => {
                state.failed_at = None;
                Some(v)
            }
            Err(e) => {
                state.connection = None;
                state.failed_at = Some(Instant::now());
                drop(state);
                self.report(warn, &e);
                None
            }
        }
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let c = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        c.set_read_timeout(Some(IO_TIMEOUT))?;
        c.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(c)
    }

    fn report(&self, warn: &WarningSink, e: &redis::RedisError) {
        if !self.reported.swap(true, Ordering::Relaxed) {
            warn(&format!(
                "Redis cache at {} is unreachable ({e}): continuing without the shared level",
                self.display
            ));
        }
    }

    pub(super) fn get(&self, key: &str, warn: &WarningSink) -> Option<Result<Entry, String>> {
        let bytes: Option<Vec<u8>> = self.with_connection(warn, |c| {
            redis::cmd("GET").arg(format!("{PREFIX}{key}")).query(c)
        })?;
        let bytes = bytes?;
        Some(serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    }

    pub(super) fn put(&self, key: &str, text: &str, warn: &WarningSink) {
        let _: Option<()> = self.with_connection(warn, |c| {
            redis::cmd("SET")
                .arg(format!("{PREFIX}{key}"))
                .arg(text)
                .arg("EX")
                .arg(self.ttl_s)
                .query(c)
        });
    }

    pub(super) fn remove(&self, key: &str, warn: &WarningSink) {
        let _: Option<i64> = self.with_connection(warn, |c| {
            redis::cmd("DEL").arg(format!("{PREFIX}{key}")).query(c)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_defaults_to_a_week_and_rejects_what_is_not_whole_seconds() {
        assert_eq!(parse_ttl(None).unwrap(), 604_800);
        assert_eq!(parse_ttl(Some(" 60 ")).unwrap(), 60);
        for bad in ["0", "-5", "1.5", "a day", ""] {
            let e = parse_ttl(Some(bad)).unwrap_err().to_string();
            assert!(
                e.starts_with("ATLAS_CACHE_TTL: must be a whole number"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn urls_that_do_not_parse_are_input_errors_naming_the_option() {
        let e = RedisLevel::open("redis://[::1", 60)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("--cache: "), "{e}");
    }
}
