#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this):
#   formatting and lints, unit and integration tests over real sockets and the real Docker
#   engine (Docker tests fail instead of skipping when CI=true), 30 s of fuzzing per fuzz target
#   (scripts/fuzz.sh), then the end-to-end container test (scripts/e2e.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
if docker info >/dev/null 2>&1; then
    scripts/build-replica-image.sh
fi
cargo test --all-targets
# Bounded fuzzing, every target (the differential HTTP/1.1 codec target among them).
FUZZ_SECONDS=${FUZZ_SECONDS:-30} FUZZ_SANITIZER=${FUZZ_SANITIZER:-none} scripts/fuzz.sh
if [ -x scripts/e2e.sh ]; then
    scripts/e2e.sh
fi
