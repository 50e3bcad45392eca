#!/usr/bin/env bash
# Builds the swarmgate image `swarmgate:latest` (override with $IMAGE) from the Dockerfile's
# `runtime` stage without pulling anything: compiles a static glibc binary on the host (in
# target/static, shared with scripts/build-replica-image.sh, so the normal build is not
# invalidated), stages it with the host's CA bundle in target/image/, and builds the Dockerfile's
# `runtime` stage from it: with BuildKit (buildx present) as `--build-arg BINARY_SOURCE=prebuilt
# --target runtime` (the Rust builder stage is skipped); with the legacy builder, which would
# build (and pull) every earlier stage, from the `prebuilt` stage plus the Dockerfile's runtime
# stage verbatim. Idempotent: skips the docker build when the image already carries the binary's
# sha256 as a label. Prints the image size.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${IMAGE:-swarmgate:latest}"
TARGET=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR="${STATIC_TARGET_DIR:-$PWD/target/static}"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release \
    --bin swarmgate --target "$TARGET"
BIN="$CARGO_TARGET_DIR/$TARGET/release/swarmgate"
# A static binary has no interpreter; a dynamic one would not start in a scratch image.
if file "$BIN" 2>/dev/null | grep -q 'dynamically linked'; then
    echo "build-image: $BIN is not static" >&2
    exit 1
fi
SUM="$(sha256sum "$BIN" | cut -d' ' -f1)"
size() { docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB (%d bytes)", $1/1e6, $1}'; }
if [ "$(docker image inspect -f '{{index .Config.Labels "swarmgate.sha256"}}' "$IMAGE" 2>/dev/null || true)" = "$SUM" ]; then
    echo "$IMAGE is up to date: $(size)"
    exit 0
fi
STAGE=target/image
rm -rf "$STAGE" "$STAGE-state"
mkdir -p "$STAGE/etc/ssl/certs" "$STAGE-state/var/lib/swarmgate"
cp "$BIN" "$STAGE/swarmgate"
CA=/etc/ssl/certs/ca-certificates.crt
if [ -f "$CA" ]; then cp "$CA" "$STAGE/etc/ssl/certs/ca-certificates.crt"; fi
OLD="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
if docker buildx version >/dev/null 2>&1; then
    DOCKER_BUILDKIT=1 docker build --quiet --target runtime --build-arg BINARY_SOURCE=prebuilt \
        --label "swarmgate.sha256=$SUM" -t "$IMAGE" . >/dev/null
else
    {
        printf 'FROM scratch AS binary\nCOPY target/image/ /out/\nCOPY target/image-state/ /out-state/\n'
        sed -n '/^FROM scratch AS runtime/,$p' Dockerfile
    } | DOCKER_BUILDKIT=0 docker build --quiet -f - --label "swarmgate.sha256=$SUM" \
        -t "$IMAGE" . >/dev/null
fi
if [ -n "$OLD" ] && [ "$OLD" != "$(docker image inspect -f '{{.Id}}' "$IMAGE")" ]; then
    docker rmi "$OLD" >/dev/null 2>&1 || true
fi
echo "built $IMAGE ($SUM): $(size)"
