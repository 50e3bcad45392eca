#!/usr/bin/env bash
# Soak test: moderate load through a release build of swarmgate in front of two replicas
# (swarmgate-replica), sampling swarmgate's RSS and open fds every SOAK_SAMPLE seconds, then a
# verdict: flat when the last sample is within SOAK_FLAT_PCT % of the one at 1 minute (RSS)
# and the fd count is within SOAK_FD_SLACK of it.
#
#   scripts/soak.sh                       # 10 minutes
#   SOAK_SECONDS=180 scripts/soak.sh      # 3 minutes
#
# Load (wrk, Debian package): SOAK_CONNECTIONS keepalive connections doing GET /echo, plus
# SOAK_CHURN connections sending `Connection: close` (a new client connection per request, to
# expose per-connection leaks). Everything on 127.0.0.1. When taskset exists swarmgate is
# pinned to CPU 0 and the load generator and replicas to CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS=${SOAK_SECONDS:-600}
SAMPLE=${SOAK_SAMPLE:-10}
CONNS=${SOAK_CONNECTIONS:-16}
CHURN=${SOAK_CHURN:-2}
FLAT_PCT=${SOAK_FLAT_PCT:-10}
FD_SLACK=${SOAK_FD_SLACK:-8}
PORT=${SOAK_PORT:-18080}          # swarmgate; +1 admin, +2/+3 replicas

command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
cargo build --release --bins -q
BIN=target/release

# Always used in the background (`pin CPU cmd... &`): exec, so that $! is the command's pid.
pin() { if command -v taskset >/dev/null; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

REPLICA_NAME=r1 pin 1 "$BIN/swarmgate-replica" "127.0.0.1:$((PORT + 2))" >/dev/null 2>&1 &
pids+=($!)
REPLICA_NAME=r2 pin 1 "$BIN/swarmgate-replica" "127.0.0.1:$((PORT + 3))" >/dev/null 2>&1 &
pids+=($!)
cat >"$work/swarmgate.yaml" <<YAML
listen: 127.0.0.1:$PORT
admin: {listen: '127.0.0.1:$((PORT + 1))'}
workers: 1
access_log: false
upstreams:
  kuscia:
    keepalive: 32
    servers:
      - address: 127.0.0.1:$((PORT + 2))
      - address: 127.0.0.1:$((PORT + 3))
YAML
RUST_LOG=warn pin 0 "$BIN/swarmgate" --config "$work/swarmgate.yaml" >"$work/swarmgate.log" 2>&1 &
sg=$!
pids+=($sg)
sleep 0.2
grep -q swarmgate "/proc/$sg/cmdline" || { echo "pid $sg is not swarmgate" >&2; exit 1; }
for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/echo" 2>/dev/null && break
    sleep 0.1
done

pin 1 wrk -t1 -c"$CONNS" -d"${SOAK_SECONDS}s" --latency "http://127.0.0.1:$PORT/echo" >"$work/wrk.txt" 2>&1 &
wrk_main=$!
pids+=($wrk_main)
if [ "$CHURN" -gt 0 ]; then
    pin 1 wrk -t1 -c"$CHURN" -d"${SOAK_SECONDS}s" -H "Connection: close" "http://127.0.0.1:$PORT/echo" >"$work/wrk-churn.txt" 2>&1 &
    pids+=($!)
fi

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$sg/status"; }
fds() { ls "/proc/$sg/fd" | wc -l; }

echo "soak: ${SOAK_SECONDS}s, $CONNS keepalive + $CHURN churning connections, sample every ${SAMPLE}s"
printf '%6s %10s %6s\n' t_s rss_kib fds
samples=()
start=$(date +%s)
while kill -0 "$wrk_main" 2>/dev/null; do
    t=$(( $(date +%s) - start ))
    if ! kill -0 "$sg" 2>/dev/null; then echo "swarmgate died" >&2; cat "$work/swarmgate.log" >&2; exit 1; fi
    r=$(rss); f=$(fds)
    printf '%6d %10d %6d\n' "$t" "$r" "$f"
    samples+=("$t $r $f")
    sleep "$SAMPLE"
done
wait "$wrk_main" || true

echo "--- wrk (keepalive)"; cat "$work/wrk.txt"
[ "$CHURN" -gt 0 ] && { echo "--- wrk (Connection: close)"; cat "$work/wrk-churn.txt"; }
echo "--- swarmgate log (warnings)"; tail -n 20 "$work/swarmgate.log"

# Reference: the first sample at or after 60 s (or the middle one in a short run).
ref=""
for s in "${samples[@]}"; do
    set -- $s
    if [ "$1" -ge 60 ]; then ref="$s"; break; fi
done
[ -n "$ref" ] || ref="${samples[$(( ${#samples[@]} / 2 ))]}"
last="${samples[$(( ${#samples[@]} - 1 ))]}"
set -- $ref; ref_t=$1 ref_rss=$2 ref_fd=$3
set -- $last; last_t=$1 last_rss=$2 last_fd=$3
drift=$(awk -v a="$ref_rss" -v b="$last_rss" 'BEGIN { printf "%.1f", (b - a) * 100 / a }')
fd_drift=$(( last_fd - ref_fd ))
echo "--- verdict"
echo "RSS ${ref_rss} KiB at ${ref_t}s -> ${last_rss} KiB at ${last_t}s (${drift}%); fds ${ref_fd} -> ${last_fd} (${fd_drift})"
if awk -v d="$drift" -v m="$FLAT_PCT" 'BEGIN { exit !(d <= m && d >= -m) }' \
    && [ "${fd_drift#-}" -le "$FD_SLACK" ]; then
    echo "FLAT (RSS within ${FLAT_PCT}%, fds within ${FD_SLACK})"
else
    echo "NOT FLAT"
    exit 1
fi
