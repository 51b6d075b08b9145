//! The one error type of the storage.

/// What can go wrong in the storage. A service maps [`StoreError::InvalidInput`] to 400,
/// [`StoreError::Unavailable`] to 503 and the rest to a logged internal error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage URL cannot be used.
    #[error("storage URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given (passwords are not echoed: only the scheme and host part).
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The URL names a backend this build does not include.
    #[error("storage URL `{url}`: the {backend} backend is not compiled in (build atlas-store with its `{backend}` feature)")]
    BackendNotEnabled {
        /// The URL as given.
        url: String,
        /// The feature to enable.
        backend: &'static str,
    },
    /// The database was written by a newer Atlas; it is refused rather than damaged.
    #[error("the database {location} has schema version {found}, newer than this Atlas understands (up to {supported}): upgrade Atlas, or point it at another database")]
    SchemaTooNew {
        /// Which database.
        location: String,
        /// The version found in it.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A value given by a caller (a cursor, a limit, an id) is not acceptable.
    #[error("{field}: {reason}")]
    InvalidInput {
        /// The field at fault (`after`, `limit`, `id`, ...).
        field: String,
        /// Why.
        reason: String,
    },
    /// The database cannot be reached (after retrying with backoff).
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database answered with an error.
    #[error("storage error: {0}")]
    Database(#[source] sqlx::Error),
    /// A stored row does not read back as what was written.
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the storage was unreachable (a readiness probe answers 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Whether an error is worth retrying: a lost or refused connection, a server shutting
/// down or starting, a pool timeout, or a serialization conflict.
pub(crate) fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect
            // now; 53300: too many connections; 40001/40P01: serialization, deadlock.
            code.starts_with("08")
                || matches!(
                    &*code,
                    "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                )
        }),
        _ => false,
    }
}

pub(crate) fn db_error(error: sqlx::Error) -> StoreError {
    if is_transient(&error) {
        StoreError::Unavailable(error)
    } else {
        StoreError::Database(error)
    }
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}
