#!/usr/bin/env bash
# Builds the test replica image `swarmgate-replica:test` (override with $IMAGE) FROM scratch:
# compiles src/bin/swarmgate-replica.rs as a static glibc binary in target/static (a separate
# target dir, so the normal build is not invalidated), then `docker build`s docker/replica.Dockerfile
# with a context holding only that binary. Idempotent: skips the docker build when the image already
# carries the binary's sha256 as a label.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${IMAGE:-swarmgate-replica:test}"
TARGET=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR="${STATIC_TARGET_DIR:-$PWD/target/static}"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release \
    --bin swarmgate-replica --target "$TARGET"
BIN="$CARGO_TARGET_DIR/$TARGET/release/swarmgate-replica"
SUM="$(sha256sum "$BIN" | cut -d' ' -f1)"
if [ "$(docker image inspect -f '{{index .Config.Labels "swarmgate.replica.sha256"}}' "$IMAGE" 2>/dev/null || true)" = "$SUM" ]; then
    echo "$IMAGE is up to date"
    exit 0
fi
OLD="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
CTX="$(mktemp -d)"
trap 'rm -rf "$CTX"' EXIT
cp "$BIN" "$CTX/swarmgate-replica"
DOCKER_BUILDKIT=0 docker build --quiet -f docker/replica.Dockerfile --label "swarmgate.replica.sha256=$SUM" -t "$IMAGE" "$CTX" >/dev/null
# Drop the replaced image if nothing else uses it.
if [ -n "$OLD" ]; then docker rmi "$OLD" >/dev/null 2>&1 || true; fi
echo "built $IMAGE ($SUM)"
