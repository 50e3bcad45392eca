#!/usr/bin/env bash
# Measures Docker discovery latency on the local engine: time from `docker start` to the backend
# appearing in the snapshot and from `docker stop` to its removal (median of 10), by running the
# ignored `bench_discovery_latency` integration test.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --test docker_discovery bench_discovery_latency -- --ignored --nocapture
