//! The Redis level: against the shared server of `ATLAS_TEST_REDIS_URL` (CI sets it), and
//! against a server of the test's own (started on a free port, then killed mid-sweep).
#![cfg(feature = "redis")]

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atlas_core::{CacheStatus, Compiled, SolveOptions};
use atlas_sweep::{BudgetGrid, Cache, Progress, Sweep};
use common::*;

/// A problem whose name is unique to this run, so its keys are new on a shared server.
fn unique_problem(file: &str) -> atlas_core::Problem {
    let mut p = problem(file);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    p.name = format!("{} {} {nanos}", p.name, std::process::id());
    p
}

fn shared_url() -> Option<String> {
    let url = std::env::var("ATLAS_TEST_REDIS_URL").ok();
    if url.is_none() {
        eprintln!(
            "SKIPPED: ATLAS_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379); CI sets it"
        );
    }
    url
}

#[test]
fn results_are_shared_through_redis_and_expire() {
    let Some(url) = shared_url() else { return };
    let reg = registry();
    let p = unique_problem("quickstart.toml");
    let c = Compiled::new(&p).unwrap();
    let config = reg.default_config("lbfgs").unwrap();
    let (sink, seen) = warnings();
    let writer = Cache::builder()
        .redis(&url)
        .ttl_seconds(120)
        .warnings(sink.clone())
        .build()
        .unwrap();
    let first = writer
        .solve(&reg, &p, &c, config.as_ref(), SolveOptions::default())
        .unwrap();
    assert_eq!(first.cache, Some(CacheStatus::Miss));
    // Another cache (another process or machine): answered by Redis.
    let reader = Cache::builder().redis(&url).warnings(sink).build().unwrap();
    let second = reader
        .solve(&reg, &p, &c, config.as_ref(), SolveOptions::default())
        .unwrap();
    assert_eq!(second.cache, Some(CacheStatus::Hit));
    assert_eq!(second.allocation, first.allocation);
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    // The entry carries its expiry.
    let key = Cache::key(&p, config.as_ref(), &SolveOptions::default());
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_connection().unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("atlas:result:v1:{key}"))
        .query(&mut con)
        .unwrap();
    assert!((100..=120).contains(&ttl), "ttl {ttl}");
    // A forged value in Redis is a miss, re-solved and replaced.
    let _: () = redis::cmd("SET")
        .arg(format!("atlas:result:v1:{key}"))
        .arg("{\"format\": \"atlas-result-cache/1\", \"key\": \"x\"")
        .query(&mut con)
        .unwrap();
    let third = Cache::builder().redis(&url).build().unwrap();
    let r = third
        .solve(&reg, &p, &c, config.as_ref(), SolveOptions::default())
        .unwrap();
    assert_eq!(r.cache, Some(CacheStatus::Miss));
    assert_eq!(third.stats().rejected, 1);
    let _: i64 = redis::cmd("DEL")
        .arg(format!("atlas:result:v1:{key}"))
        .query(&mut con)
        .unwrap();
}

/// A `redis-server` of the test's own on a free port, killed when dropped.
struct OwnRedis {
    child: Option<Child>,
    url: String,
}

impl OwnRedis {
    fn start() -> Option<OwnRedis> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                // CI has redis-server; a run that sets the shared URL expects it too.
                assert!(
                    std::env::var("ATLAS_TEST_REDIS_URL").is_err(),
                    "redis-server cannot be started ({e}) but ATLAS_TEST_REDIS_URL is set"
                );
                eprintln!("SKIPPED: redis-server cannot be started: {e}");
                return None;
            }
        };
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str()).unwrap();
        let started = Instant::now();
        while client
            .get_connection_with_timeout(Duration::from_millis(200))
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(OwnRedis {
            child: Some(child),
            url,
        })
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn a_sweep_completes_when_its_redis_is_killed_half_way() {
    let Some(server) = OwnRedis::start() else {
        return;
    };
    let url = server.url.clone();
    let server = Arc::new(Mutex::new(server));
    let (sink, seen) = warnings();
    let cache = Arc::new(Cache::builder().redis(&url).warnings(sink).build().unwrap());
    let reg = registry();
    let killer = server.clone();
    let r = Sweep::new(&reg, unique_problem("retail_q4.toml"))
        .optimizer("lbfgs")
        .budgets(BudgetGrid::parse("0.6x:1.4x:10").unwrap())
        .jobs(1)
        .cache(cache.clone())
        .on_progress(Arc::new(move |p: &Progress| {
            if p.done == 4 {
                killer.lock().unwrap().kill();
            }
        }))
        .run()
        .unwrap();
    assert_eq!(r.scenarios.len(), 10);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.scenarios.iter().all(|s| s.cache == CacheStatus::Miss));
    let stats = cache.stats();
    assert_eq!(
        stats.stored, 10,
        "every result still goes to the memory level"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "reported once: {seen:?}");
    assert!(
        seen[0].contains("unreachable") && seen[0].contains(&url[8..]),
        "{}",
        seen[0]
    );
}

#[test]
fn an_unreachable_redis_is_reported_once_and_never_fails_a_solve() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (sink, seen) = warnings();
    let cache = Cache::builder()
        .redis(format!("redis://127.0.0.1:{port}"))
        .warnings(sink)
        .build()
        .unwrap();
    let reg = registry();
    let started = Instant::now();
    let r = Sweep::new(&reg, problem("quickstart.toml"))
        .optimizer("lbfgs")
        .budgets(BudgetGrid::parse("0.5x:1x:6").unwrap())
        .cache(Arc::new(cache))
        .run()
        .unwrap();
    assert_eq!(r.scenarios.len(), 6);
    assert_eq!(seen.lock().unwrap().len(), 1, "{:?}", seen.lock().unwrap());
    // One failed connection attempt, not one per scenario.
    assert!(started.elapsed() < Duration::from_secs(5));
}
