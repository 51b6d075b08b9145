#!/usr/bin/env bash
# CI block of issue 16 (`atlas worker` on PostgreSQL): the worker fault tests as real
# processes (kill -9 of a worker holding leases, SIGTERM hand-back, a Redis cache level
# killed mid-sweep), the storage tests with the operator's retry, and lints with the
# features they need. Needs ATLAS_TEST_POSTGRES_URL (set by .ci/run) and redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
export ATLAS_TEST_POSTGRES_URL="${ATLAS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export CI="${CI:-1}"
cargo clippy --release -p atlas --features server,redis --all-targets -- -D warnings
cargo test --release -p atlas-store
cargo test --release -p atlas --features server,redis --test workers
