#!/usr/bin/env bash
# Quick start: builds swarmgate, starts three demo replicas on 127.0.0.1:18181-18183 and runs
# swarmgate in the foreground with config/demo.yaml (proxy on 127.0.0.1:8080, admin on :9901).
# Try: curl -si localhost:8080/ | grep -i x-replica      (Ctrl-C stops everything)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin swarmgate --bin swarmgate-replica
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
for i in 1 2 3; do
    REPLICA_NAME="replica-$i" target/release/swarmgate-replica "127.0.0.1:1818$i" &
    pids+=($!)
done
echo "demo replicas on 127.0.0.1:18181-18183; swarmgate on http://127.0.0.1:8080 (admin http://127.0.0.1:9901/)"
target/release/swarmgate --config config/demo.yaml
