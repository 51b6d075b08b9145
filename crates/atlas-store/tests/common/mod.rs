//! Shared test support: opening each backend on a fresh database, and the one suite of
//! behaviour tests that every backend must pass.
#![allow(dead_code)]

pub mod suite;

use std::any::Any;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use atlas_store::{Storage, StoreOptions};
use sqlx::Connection;

/// A storage opened on a database of its own, removed when this is dropped.
pub struct Backend {
    /// The storage under test.
    pub storage: Arc<dyn Storage>,
    /// Its URL, to open a second instance (a second "process").
    pub url: String,
    // Declared last: dropped after the storage (removes the database or folder).
    _guard: Box<dyn Any + Send + Sync>,
}

impl Backend {
    /// Another storage instance on the same database, as another process would open it.
    pub async fn open_again(&self) -> Arc<dyn Storage> {
        atlas_store::open_with(&self.url, &test_options())
            .await
            .expect("reopen")
    }
}

/// Short reconnect time so a broken test fails fast.
pub fn test_options() -> StoreOptions {
    StoreOptions {
        reconnect_timeout: std::time::Duration::from_secs(60),
        ..StoreOptions::default()
    }
}

/// SQLite in a fresh temporary folder.
pub async fn sqlite() -> Option<Backend> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("atlas.db").display());
    let storage = atlas_store::open_with(&url, &test_options())
        .await
        .expect("open sqlite");
    Some(Backend {
        storage,
        url,
        _guard: Box::new(dir),
    })
}

/// The base PostgreSQL URL, or `None` (after saying so loudly) when it is not set. In CI
/// (`CI` set) a missing variable is a failure, not a skip.
pub fn postgres_base_url() -> Option<String> {
    match std::env::var("ATLAS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("ATLAS_TEST_POSTGRES_URL is not set, and CI must run the PostgreSQL tests");
            }
            eprintln!(
                "SKIPPED: ATLAS_TEST_POSTGRES_URL is not set \
                 (e.g. postgres://postgres@127.0.0.1:5432/postgres); PostgreSQL tests did not run"
            );
            None
        }
    }
}

/// A database created for one test and dropped (with its connections) at the end.
pub struct TestDatabase {
    /// The URL of the new database.
    pub url: String,
    base: String,
    name: String,
}

/// Replaces the database name of a PostgreSQL URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (main, query) = url
        .split_once('?')
        .map_or((url, None), |(m, q)| (m, Some(q)));
    let scheme_end = main.find("://").map_or(0, |i| i + 3);
    let base = match main[scheme_end..].find('/') {
        Some(slash) => &main[..scheme_end + slash],
        None => main,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl TestDatabase {
    /// Creates `atlas_test_<pid>_<n>_<random>`.
    pub async fn create(base: &str) -> TestDatabase {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "atlas_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let mut admin = sqlx::PgConnection::connect(base)
            .await
            .expect("connect to ATLAS_TEST_POSTGRES_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        admin.close().await.ok();
        TestDatabase {
            url: with_database(base, &name),
            base: base.to_string(),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop may run inside a runtime: do the async work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut admin = sqlx::PgConnection::connect(&base).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                Ok::<_, sqlx::Error>(())
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "warning: could not drop test database {}: {dropped:?}",
                self.name
            );
        }
    }
}

/// PostgreSQL on a fresh database, or `None` when `ATLAS_TEST_POSTGRES_URL` is unset.
pub async fn postgres() -> Option<Backend> {
    let base = postgres_base_url()?;
    let database = TestDatabase::create(&base).await;
    let url = database.url.clone();
    let storage = atlas_store::open_with(&url, &test_options())
        .await
        .expect("open postgres");
    Some(Backend {
        storage,
        url,
        _guard: Box::new(database),
    })
}

/// Generates one `#[tokio::test]` per suite function for a backend.
#[macro_export]
macro_rules! suite_tests {
    ($open:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(backend) = $open().await else { return };
                common::suite::$name(&backend).await;
            }
        )*
    };
}
