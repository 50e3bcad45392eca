#!/usr/bin/env bash
# Time-bounded fuzzing of swarmgate with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh     # longer
#   FUZZ_TARGETS=headers scripts/fuzz.sh # one target
#   FUZZ_SANITIZER=none scripts/fuzz.sh  # no ASan (faster; the code is safe Rust)
#
# Targets (fuzz/fuzz_targets/): config_parse (parse_config on arbitrary UTF-8; accepted configs
# have sane values), headers (strip_hop_by_hop / to_upstream / to_client on arbitrary header
# maps; no hop-by-hop or Connection-named field survives, framing headers unambiguous) and
# h1_response (differential: our HTTP/1.1 response codec, src/h1, against hyper's client on the
# same bytes; ours may never accept what hyper refuses, nor read another status or body) and
# h1_request (the same for our request parser, src/h1/request.rs, against hyper's server).
# CI (scripts/test.sh) runs every target for FUZZ_SECONDS=30 without a sanitizer.
#
# This machine has only the stable toolchain. cargo-fuzz needs nightly-only flags
# (-Zsanitizer, -Cpasses=sancov-module is fine on stable); RUSTC_BOOTSTRAP=1 unlocks them on
# stable, and the stable toolchain ships the ASan runtime, so no nightly is installed.
# A crash leaves its input in fuzz/artifacts/<target>/; turn it into a regression test in the
# module under test (see the tests at the end of src/proxy/headers.rs and src/config/units.rs).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECS=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"config_parse headers h1_response h1_request"}
SANITIZER=${FUZZ_SANITIZER:-address}
JOBS=${FUZZ_JOBS:-1}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

# Seeds: the built-in config and a few shapes the parser must handle.
mkdir -p corpus/config_parse corpus/headers corpus/h1_response corpus/h1_request
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >corpus/h1_request/get
printf 'POST /u?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' >corpus/h1_request/length
printf 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nx-t: 1\r\n\r\n' \
    >corpus/h1_request/chunked
printf 'GET http://a:1/p HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' >corpus/h1_request/absolute
# h1_response: the first byte picks the request's method (even: GET, odd: HEAD)
printf '0HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello' >corpus/h1_response/length
printf '1HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n' >corpus/h1_response/head
printf '0HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nx-t: 1\r\n\r\n' \
    >corpus/h1_response/chunked
printf '0HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nrest' \
    >corpus/h1_response/close
cp ../config/builtin.yaml corpus/config_parse/builtin.yaml
printf 'listen: 127.0.0.1:8080\nclient_header_timeout: 1h30m\nlarge_client_header_buffers: 8k\nupstreams:\n  u:\n    servers:\n      - {address: "10.0.0.1:1080", weight: 2, max_fails: 3, fail_timeout: 10s}\n      - {address: "kuscia:1080", backup: true}\n    health_check: {interval: 5s, expect_status: [2xx, 401]}\nroutes:\n  - {path_prefix: /api, host: a.example, upstream: u}\n' \
    > corpus/config_parse/full.yaml

# -jobs makes libFuzzer write fuzz-N.log files; use it only when asked for parallel jobs.
parallel=()
if [ "$JOBS" -gt 1 ]; then parallel=(-jobs="$JOBS" -workers="$JOBS"); fi

status=0
for t in $TARGETS; do
    echo "== $t: ${SECS}s, sanitizer=$SANITIZER"
    if ! cargo fuzz run --sanitizer "$SANITIZER" -O "$t" "corpus/$t" -- \
        -max_total_time="$SECS" -max_len=4096 -rss_limit_mb=2048 "${parallel[@]}" \
        -print_final_stats=1; then
        echo "!! $t: crash; inputs in fuzz/artifacts/$t/" >&2
        status=1
    fi
done
exit $status
