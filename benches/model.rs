//! Criterion micro-benchmarks of what every optimizer leans on: the marketing-mix model's
//! value, gradient and Hessian-vector product at each generated size (5x1 to 100x104
//! channels x periods), and the exact projection onto the feasible set.
//!
//! ```sh
//! cargo bench --bench model                 # everything
//! cargo bench --bench model -- gradient     # one group
//! ```
//!
//! The problems come from the benchmark suite's seeded generator (`crates/atlas-bench`),
//! included by path so the facade needs no extra dependency. Results are in
//! `target/criterion/`; the end-to-end suite is `cargo xtask bench`.

use std::hint::black_box;
use std::time::Duration;

use atlas_core::{Compiled, ProjectionWorkspace, Scaled};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[allow(dead_code)]
#[path = "../crates/atlas-bench/src/generate.rs"]
mod generate;

/// The generated problems, each with a feasible point inside (the core's start: the even
/// split projected onto the rules) and a direction for Hessian products.
fn problems() -> Vec<(String, Compiled, Vec<f64>, Vec<f64>)> {
    generate::SIZES
        .iter()
        .map(|&(c, t)| {
            let problem = generate::generate(c, t, generate::SUITE_SEED);
            let compiled = Compiled::new(&problem).expect("generated problems compile");
            let scaled = Scaled::new(&compiled).expect("generated problems are feasible");
            let x = scaled.unscale(scaled.start());
            // A direction with every sign, so no term of the product is skipped.
            let v: Vec<f64> = (0..x.len())
                .map(|i| ((i * 7919) % 13) as f64 - 6.0)
                .collect();
            (generate::name(c, t), compiled, x, v)
        })
        .collect()
}

fn model(c: &mut Criterion) {
    let problems = problems();
    let mut value = c.benchmark_group("value");
    for (name, compiled, x, _) in &problems {
        value.throughput(Throughput::Elements(x.len() as u64));
        let m = compiled.model();
        value.bench_with_input(BenchmarkId::from_parameter(name), x, |b, x| {
            b.iter(|| m.value(black_box(x)))
        });
    }
    value.finish();

    let mut gradient = c.benchmark_group("gradient");
    for (name, compiled, x, _) in &problems {
        gradient.throughput(Throughput::Elements(x.len() as u64));
        let m = compiled.model();
        let mut g = vec![0.0; x.len()];
        gradient.bench_with_input(BenchmarkId::from_parameter(name), x, |b, x| {
            b.iter(|| m.gradient(black_box(x), &mut g))
        });
    }
    gradient.finish();

    let mut hv = c.benchmark_group("hessian_vector");
    for (name, compiled, x, v) in &problems {
        hv.throughput(Throughput::Elements(x.len() as u64));
        let m = compiled.model();
        let mut out = vec![0.0; x.len()];
        hv.bench_with_input(BenchmarkId::from_parameter(name), x, |b, x| {
            b.iter(|| m.hessian_vector(black_box(x), black_box(v), &mut out))
        });
    }
    hv.finish();
}

/// Projections of a perturbed point onto the solvers' (scaled) feasible set: bounds and
/// budget only, and the whole set with its linear rows (channel totals), from a fresh
/// workspace and warm-started from the previous projection as iterative solvers do.
fn projection(c: &mut Criterion) {
    let mut group = c.benchmark_group("projection");
    for (name, compiled, _, _) in problems() {
        let scaled = Scaled::new(&compiled).expect("feasible");
        let set = scaled.feasible_set();
        let start = scaled.start();
        // A step away from the start that leaves the set in most coordinates.
        let z: Vec<f64> = start
            .iter()
            .enumerate()
            .map(|(i, u)| u + (((i * 104_729) % 17) as f64 - 8.0) * u * 0.2)
            .collect();
        let mut out = vec![0.0; z.len()];
        group.throughput(Throughput::Elements(z.len() as u64));
        group.bench_with_input(BenchmarkId::new("box_budget", &name), &z, |b, z| {
            b.iter(|| set.project_box_budget(black_box(z), &mut out))
        });
        group.bench_with_input(BenchmarkId::new("rows_cold", &name), &z, |b, z| {
            b.iter(|| set.project_cold(black_box(z), &mut out))
        });
        let mut ws = ProjectionWorkspace::default();
        let _ = set.project(&z, &mut out, &mut ws);
        group.bench_with_input(BenchmarkId::new("rows_warm", &name), &z, |b, z| {
            b.iter(|| set.project(black_box(z), &mut out, &mut ws))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Shorter than criterion's defaults: 20 groups of benchmarks, and these timings are
    // stable within a few percent at this length.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = model, projection
}
criterion_main!(benches);
