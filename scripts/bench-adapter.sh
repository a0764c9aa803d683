#!/usr/bin/env bash
# refnet-jobs' adapter for the peer benchmark harness (shared/bench/harness):
# copy this file over the harness's peers/refnet/adapter.sh (and bench-peer.env over
# peers/refnet/peer.env). It runs the verbs
# (reset | enqueue-bulk N | worker C | enqueue-timed N MS | insert-loop SECS)
# against the harness's database ($BENCH_DSN) with a release build:
#   cargo build --release -p refnet-jobs-cli
#   export REFNET_JOBS_BIN=$PWD/target/release/refnet-jobs   (else: refnet-jobs on PATH)
set -euo pipefail
bin=${REFNET_JOBS_BIN:-refnet-jobs}
if ! command -v "$bin" >/dev/null; then
    echo "bench-adapter: $bin not found; set REFNET_JOBS_BIN to target/release/refnet-jobs" >&2
    exit 3
fi
export DATABASE_URL=${BENCH_DSN:-postgresql://postgres@127.0.0.1:55432/bench}
exec "$bin" bench-peer "$@"
