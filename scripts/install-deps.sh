#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (idempotent, quiet):
# promtool (package prometheus) to lint /metrics, chromium for the status-page screenshot test,
# curl for scripts and the HTTP/2 tests (--http2, --http2-prior-knowledge), iproute2 for the
# tunnel test's network namespaces (tests/tunnel.rs), redis-server (and redis-cli) for the route
# table tests (tests/table.rs), nginx-light for the test that runs nginx and an imported config
# side by side (tests/import.rs). Docker Engine itself comes with the machine.
set -euo pipefail
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
command -v curl >/dev/null || need+=(curl)
command -v ip >/dev/null || need+=(iproute2)
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if ((${#need[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: missing ${need[*]} and not root; tests needing them will skip" >&2
        exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    echo "install-deps: installed ${need[*]}"
fi
