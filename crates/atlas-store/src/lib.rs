#![doc = include_str!("../README.md")]

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("atlas-store needs at least one backend: enable its `sqlite` or `postgres` feature");

mod error;
mod signal;
mod storage;
mod types;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

pub use error::StoreError;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStorage;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStorage;
pub use storage::Storage;
pub use types::*;

/// The newest schema version this build writes (both backends are at the same one).
pub const SCHEMA_VERSION: i64 = 1;

/// Settings of a storage connection. The defaults suit a service or a worker.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The most connections a PostgreSQL pool opens (default 10). SQLite uses one
    /// writer and up to four readers.
    pub max_connections: u32,
    /// How long an operation keeps retrying, with exponential backoff, while the
    /// database cannot be reached (default 30 s), before it answers
    /// [`StoreError::Unavailable`].
    pub reconnect_timeout: Duration,
    /// How long a caller waits for a pooled connection before one attempt counts as
    /// failed (default 5 s).
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            reconnect_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens (creating or migrating the schema of) the storage a URL names, with the
/// default [`StoreOptions`]:
///
/// - `sqlite://PATH` (relative to the working directory, or `sqlite:///abs/path.db`),
///   optionally `?synchronous=normal` (see the README: faster, but a power loss may
///   lose the last commits; a killed process never does);
/// - `sqlite::memory:` (one process, gone when it ends);
/// - `postgres://USER@HOST:PORT/DB` (or `postgresql://`).
///
/// Call it inside a Tokio runtime: the PostgreSQL backend spawns its `LISTEN` task there.
pub async fn open(url: &str) -> Result<Arc<dyn Storage>, StoreError> {
    open_with(url, &StoreOptions::default()).await
}

/// [`open`] with explicit options.
pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Arc<dyn Storage>, StoreError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => {
            #[cfg(feature = "sqlite")]
            {
                Ok(Arc::new(SqliteStorage::open_with(url, options).await?))
            }
            #[cfg(not(feature = "sqlite"))]
            {
                Err(StoreError::BackendNotEnabled {
                    url: redact(url),
                    backend: "sqlite",
                })
            }
        }
        "postgres" | "postgresql" => {
            #[cfg(feature = "postgres")]
            {
                Ok(Arc::new(PostgresStorage::open_with(url, options).await?))
            }
            #[cfg(not(feature = "postgres"))]
            {
                let _ = options;
                Err(StoreError::BackendNotEnabled {
                    url: redact(url),
                    backend: "postgres",
                })
            }
        }
        _ => Err(StoreError::InvalidUrl {
            url: redact(url),
            reason: "expected sqlite://PATH, sqlite::memory: or postgres://USER@HOST:PORT/DB"
                .into(),
        }),
    }
}

/// The URL without a password, for error messages and logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let user_info = &url[scheme_end + 3..at];
            match user_info.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }

    #[tokio::test]
    async fn unknown_scheme_is_refused_with_the_accepted_forms() {
        let error = open("mysql://localhost/db").await.err().expect("refused");
        let message = error.to_string();
        assert!(message.contains("mysql://localhost/db"), "{message}");
        assert!(message.contains("sqlite://PATH"), "{message}");
    }
}
