#!/usr/bin/env bash
# scripts/bench.sh — compare swarmgate with nginx and HAProxy as a load-balancing reverse proxy.
# Not part of the test suite. Run as root on Debian (it apt-installs what is missing).
#
# Usage:
#   scripts/bench.sh                       # full run: 3 reps x 5 s per case, ~7-9 minutes
#   BENCH_DURATION=2 BENCH_REPS=1 scripts/bench.sh     # quick look
#   SWARMGATE_BIN=/path/to/swarmgate scripts/bench.sh
#
# Environment (defaults in brackets):
#   SWARMGATE_BIN      swarmgate binary [target/release/swarmgate, relative to the cwd, else to the
#                      repo root]; when missing, swarmgate is skipped with a message
#   BENCH_PROXIES      which proxies, in base order [nginx haproxy swarmgate]
#   BENCH_DURATION     seconds of each measured wrk run [5]
#   BENCH_WARMUP       seconds of the unmeasured wrk run before it [1]
#   BENCH_REPS         repetitions; the proxy order is rotated each rep; medians reported [3]
#   BENCH_IDLE_CONNS   idle client connections for the memory case [10000]
#   BENCH_WRK_THREADS  wrk threads [1]
#   BENCH_PORT_BASE    ports used: base+80 proxy, base+83 proxy's h2c listener (nginx and HAProxy
#                      need one of their own; swarmgate serves h2c on both), base+81/82 origins,
#                      base+91/92 stub_status [18000]
#   BENCH_H2           1 = also the HTTP/2 case (h2load, from nghttp2-client) [1]
#   BENCH_UPSTREAM_TLS 1 = the origins speak HTTPS (self-signed P-256 certificate) and every proxy
#                      connects with verification off, as Kuscia's guide does [0]
#                      (add nginx-verbatim to BENCH_PROXIES for the guide's nginx config as
#                      written: without the repeated proxy_http_version it closes per request)
#   BENCH_CASES        which cases to run [get_c64 get_c256 big_c16 upload_c16 close_c64 h2_c64x10 idle]
#                      (e.g. BENCH_CASES=big_c16 for the streaming-fairness case alone)
#   BENCH_PROXY_CPU / BENCH_LOAD_CPU   CPU for the proxy / for wrk + origins [0 / 1]
#   BENCH_ALL_CORES    1 = every proxy uses every core (nginx worker_processes auto, HAProxy nbthread
#                      = CPUs, swarmgate workers: 0) and nothing is pinned: proxy, wrk and origins
#                      share the machine, as a one-box deployment would. The "proxy core" and
#                      "load core" columns are then meaningless; CPU per request still holds [0]
#   BENCH_WAIT_QUIET   before each proxy run, wait up to this many seconds for the machine to be
#                      idle (<10% busy over 1 s; other people's builds ruin the figures) [0 = off]
#
# What it does: starts two origin nginx instances (127.0.0.1:base+81, 127.0.0.2:base+82: 100-byte
# body at /, 10 MiB file at /10m, /upload reads a <=2 MiB body fully and answers "ok"), then for
# each rep and each proxy (on 127.0.0.1:base+80, round robin over both origins) runs the cases:
#   GET 100 B with 64 and 256 connections (req/s, p50, p99), GET 10 MiB with 16 connections (MiB/s),
#   POST 1 MiB with 16 connections (req/s, MiB/s), a new connection per request
#   (Connection: close, 64 connections; req/s), HTTP/2 with prior knowledge to the HTTP/1.1
#   origins (h2load, 64 connections x 10 concurrent streams; req/s, p50/p99 from h2load's
#   per-request log), and 10k idle keep-alive client connections (RSS before/after -> bytes per
#   idle connection).
# It counts upstream connects per request from the origins' stub_status accepts and samples the
# proxy's RSS (sum of VmRSS over its processes: nginx master + worker; HAProxy and swarmgate are
# one process). The proxy is pinned to BENCH_PROXY_CPU, wrk/origins/helpers to BENCH_LOAD_CPU.
# Report: Markdown on stdout and in bench-results/<timestamp>.md (raw wrk output beside it in
# bench-results/<timestamp>/). Everything it starts is stopped by PID on exit; temp dirs removed.
# Load goes to 127.0.0.0/8 only.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/scripts/bench
CMDLINE="$0 $*"

DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
REPS=${BENCH_REPS:-3}
PROXIES=${BENCH_PROXIES:-"nginx haproxy swarmgate"}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
WRK_THREADS=${BENCH_WRK_THREADS:-1}
BASE=${BENCH_PORT_BASE:-18000}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
ALL_CORES=${BENCH_ALL_CORES:-0}
# Worker settings of the three proxies: one core each by default, every core with BENCH_ALL_CORES.
NGINX_WORKERS=1 HAPROXY_THREADS=1 SG_WORKERS=1
SWARMGATE_BIN=${SWARMGATE_BIN:-target/release/swarmgate}
WAIT_QUIET=${BENCH_WAIT_QUIET:-0}
H2=${BENCH_H2:-1}
UPSTREAM_TLS=${BENCH_UPSTREAM_TLS:-0}
CASES=" ${BENCH_CASES:-get_c64 get_c256 big_c16 upload_c16 close_c64 h2_c64x10 idle} "

PORT=$((BASE + 80)) P1=$((BASE + 81)) P2=$((BASE + 82)) STUB1=$((BASE + 91)) STUB2=$((BASE + 92))
H2PORT=$((BASE + 83))

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (it installs packages and raises limits)"

# ---------------------------------------------------------------- dependencies
install_deps() {
    local need=()
    command -v nginx >/dev/null || need+=(nginx-light)
    command -v haproxy >/dev/null || need+=(haproxy)
    command -v wrk >/dev/null || need+=(wrk)
    [[ $H2 != 1 ]] || command -v h2load >/dev/null || need+=(nghttp2-client)
    command -v taskset >/dev/null || need+=(util-linux)
    command -v pgrep >/dev/null || need+=(procps)
    command -v curl >/dev/null || need+=(curl)
    command -v python3 >/dev/null || need+=(python3)
    ((${#need[@]})) || return 0
    log "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    if ! apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
        # nginx-light does not exist on every release: fall back to the plain package
        need=("${need[@]/nginx-light/nginx}")
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
}
install_deps

case $SWARMGATE_BIN in
/*) ;;
*) [[ -e $SWARMGATE_BIN ]] || SWARMGATE_BIN=$ROOT/$SWARMGATE_BIN ;;
esac

NCPU=$(nproc)
if ((NCPU < 2)); then
    log "warning: only $NCPU CPU: proxy and load share it"
    PROXY_CPU=0 LOAD_CPU=0
fi
if [[ $ALL_CORES == 1 ]]; then
    PROXY_CPU=0-$((NCPU - 1)) LOAD_CPU=0-$((NCPU - 1))
    NGINX_WORKERS=auto HAPROXY_THREADS=$NCPU SG_WORKERS=0
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
if ((IDLE_CONNS + 500 > FDS)); then
    log "open-file limit is $FDS (hard): idle connections lowered from $IDLE_CONNS to $((FDS - 500))"
    IDLE_CONNS=$((FDS - 500))
fi

for p in $PORT $H2PORT $P1 $P2 $STUB1 $STUB2; do
    [[ -z $(ss -Hltn "sport = :$p") ]] || die "port $p is in use (set BENCH_PORT_BASE)"
done

# ---------------------------------------------------------------- processes and cleanup
TMP=$(mktemp -d /tmp/swarmgate-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers run as nobody and serve /10m from here
RAW=$TMP/raw
mkdir -p "$RAW/wrk" "$RAW/h2load" "$TMP/logs"
PIDS=()

start_bg() { # start_bg LOGFILE CMD... ; sets LASTPID and records it for cleanup
    local logf=$1
    shift
    "$@" >"$logf" 2>&1 &
    LASTPID=$!
    PIDS+=("$LASTPID")
}

stop_pid() { # stop a process we started (and the children it forked, e.g. nginx workers)
    local pid=$1 kids i
    kids=$(pgrep -P "$pid" 2>/dev/null || true)
    kill -TERM "$pid" $kids 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" $kids 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" $kids 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

run_fg() { # run_fg LOGFILE CMD... : like a foreground command, but tracked by PID
    start_bg "$@"
    local pid=$LASTPID rc=0
    wait "$pid" || rc=$?
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    return $rc
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

render() { # render TEMPLATE OUT KEY VALUE ... (replaces @KEY@)
    local s
    s=$(<"$1")
    local out=$2
    shift 2
    while (($#)); do
        s=${s//@$1@/$2}
        shift 2
    done
    printf '%s\n' "$s" >"$out"
}

wait_port() { # wait_port HOST PORT [PID]: up to 10 s, or until PID has died
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        [[ -z ${3:-} ]] || kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

proc_pids() { [[ -z ${1:-} ]] || echo "$1" $(pgrep -P "$1" 2>/dev/null || true); }

rss_sum() { # RSS_SUM = sum of VmRSS (kB) over the given PIDs (no fork)
    local pid k v _
    RSS_SUM=0
    for pid in "$@"; do
        while read -r k v _; do
            [[ $k == VmRSS: ]] && RSS_SUM=$((RSS_SUM + v))
        done 2>/dev/null <"/proc/$pid/status" || true
    done
}
rss_kb() { rss_sum "$@"; echo "$RSS_SUM"; }

cpu_ticks() { # CPU_TICKS = utime+stime (clock ticks) summed over PIDs (all threads)
    local pid line f
    CPU_TICKS=0
    for pid in "$@"; do
        read -r line 2>/dev/null <"/proc/$pid/stat" || continue
        read -ra f <<<"${line##*) }"
        CPU_TICKS=$((CPU_TICKS + f[11] + f[12]))
    done
}
HZ=$(getconf CLK_TCK)
cpu_snapshot() { # SNAP = "proxy_ticks ours_ticks machine_ticks time_us": CPU used by the proxy,
    # by everything else this script runs (origins + reaped children: wrk, curl, helpers) and
    # user+nice+system of the whole machine (irq/softirq excluded: not charged to processes)
    local line f u n s
    cpu_ticks $(proc_pids "$PROXY_PID")
    local p=$CPU_TICKS
    cpu_ticks $ORIGIN_PIDS
    local o=$CPU_TICKS
    read -r line <"/proc/$$/stat"
    read -ra f <<<"${line##*) }"
    o=$((o + f[11] + f[12] + f[13] + f[14]))
    read -r _ u n s _ </proc/stat
    local pc=0 lc=0 # busy ticks (everything but idle and iowait) of the proxy's and the load's CPU
    while read -r line; do
        read -ra f <<<"$line"
        [[ ${f[0]} == cpu$PROXY_CPU ]] && pc=$((f[1] + f[2] + f[3] + f[6] + f[7] + f[8]))
        [[ ${f[0]} == cpu$LOAD_CPU ]] && lc=$((f[1] + f[2] + f[3] + f[6] + f[7] + f[8]))
    done < <(grep -E "^cpu($PROXY_CPU|$LOAD_CPU) " /proc/stat)
    SNAP="$p $o $((u + n + s)) ${EPOCHREALTIME/[.,]/} $pc $lc"
}
record_cpu() { # record_cpu PROXY REP CASE "SNAP_BEFORE" "SNAP_AFTER"
    local p0 o0 m0 t0 pc0 lc0 p1 o1 m1 t1 pc1 lc1
    read -r p0 o0 m0 t0 pc0 lc0 <<<"$4"
    read -r p1 o1 m1 t1 pc1 lc1 <<<"$5"
    record "$1" "$2" "$3" proxy_core_pct $(((pc1 - pc0) * 100000000 / (t1 - t0) / HZ))
    record "$1" "$2" "$3" load_core_pct $(((lc1 - lc0) * 100000000 / (t1 - t0) / HZ))
    record "$1" "$2" "$3" proxy_cpu_us $(((p1 - p0) * 1000000 / HZ))
    record "$1" "$2" "$3" proxy_cpu_pct $(((p1 - p0) * 100000000 / (t1 - t0) / HZ))
    # CPU used by processes that are not part of the benchmark, in % of the whole machine
    local other=$(((m1 - m0) - (p1 - p0) - (o1 - o0)))
    ((other > 0)) || other=0
    record "$1" "$2" "$3" other_cpu_pct $((other * 100000000 / (t1 - t0) / HZ / NCPU))
}

mkfifo "$TMP/tick"
poll_rss() { # poll_rss OUTFILE PID... (runs in a background subshell; writes the max so far)
    local out=$1 max=0
    shift
    taskset -pc "$LOAD_CPU" $BASHPID >/dev/null 2>&1 || true
    exec 9<>"$TMP/tick"
    while :; do
        rss_sum "$@"
        if ((RSS_SUM > max)); then
            max=$RSS_SUM
            echo $max >"$out.new" && mv -f "$out.new" "$out" # never seen half-written when killed
        fi
        read -r -t 0.1 -u 9 _ || true
    done
}
POLLER=
start_poller() { # start_poller OUTFILE PID...
    echo 0 >"$1"
    poll_rss "$@" &
    POLLER=$!
    PIDS+=("$POLLER")
}
stop_poller() { [[ -z $POLLER ]] || stop_pid "$POLLER"; POLLER=; }

# ---------------------------------------------------------------- origins
WWW=$TMP/www
mkdir -p "$WWW"
head -c $((10 * 1024 * 1024)) /dev/zero >"$WWW/10m"
BODY100=$(printf 'x%.0s' {1..100})
UPLOAD_BYTES=$((1024 * 1024))
head -c $UPLOAD_BYTES /dev/zero | tr '\0' u >"$TMP/upload.bin"

ECHO_SO=
for f in /usr/lib/nginx/modules/ngx_http_echo_module.so /usr/share/nginx/modules/ngx_http_echo_module.so; do
    [[ -e $f ]] && ECHO_SO=$f && break
done

ORIGIN_SSL= ORIGIN_SSL_CONF= UPSCHEME=http SSL_SERVER= UPSTREAM_TLS_YAML=
if [[ $UPSTREAM_TLS == 1 ]]; then
    mkdir -p "$TMP/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=origin -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" 2>/dev/null ||
        die "openssl could not make the origins' certificate"
    chmod 644 "$TMP/tls/key.pem"
    ORIGIN_SSL="ssl "
    ORIGIN_SSL_CONF="        ssl_certificate $TMP/tls/cert.pem;
        ssl_certificate_key $TMP/tls/key.pem;"
    UPSCHEME=https
    SSL_SERVER=" ssl verify none"
    UPSTREAM_TLS_YAML="    scheme: https
    tls_verify: false"
fi

start_origin() { # start_origin N ADDR PORT STUBPORT
    local n=$1 addr=$2 port=$3 stub=$4 dir=$TMP/origin$1 load= handler sink=
    mkdir -p "$dir"
    if [[ -n $ECHO_SO && -z ${ORIGIN_NO_ECHO:-} ]]; then
        load="load_module $ECHO_SO;"
        # reads the whole body before answering
        handler='            echo_read_request_body;
            echo "ok";'
    else
        # without the echo module: nginx buffers the whole body (request buffering is on by
        # default), then asks a local sink without the body
        handler="            proxy_pass http://unix:$dir/sink.sock:/ok;
            proxy_pass_request_body off;
            proxy_set_header Content-Length \"\";"
        sink="    server { listen unix:$dir/sink.sock; location / { return 200 \"ok\\n\"; } }"
    fi
    render "$HERE/origin-nginx.conf.tmpl" "$dir/nginx.conf" LOAD_ECHO "$load" DIR "$dir" \
        ADDR "$addr" PORT "$port" STUBPORT "$stub" NOFILE "$FDS" DOCROOT "$WWW" BODY100 "$BODY100" \
        UPLOAD_HANDLER "$handler" SINK_SERVER "$sink" ORIGIN_SSL "$ORIGIN_SSL" \
        ORIGIN_SSL_CONF "$ORIGIN_SSL_CONF"
    if ! nginx -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" 2>"$dir/test.log"; then
        if [[ -n $load && -z ${ORIGIN_NO_ECHO:-} ]]; then
            log "origin: echo module does not load ($(tail -1 "$dir/test.log")); using the sink"
            ORIGIN_NO_ECHO=1 start_origin "$@"
            return
        fi
        cat "$dir/test.log" >&2
        die "origin $n config invalid"
    fi
    start_bg "$TMP/logs/origin$n.log" taskset -c "$LOAD_CPU" \
        nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;'
    wait_port "$addr" "$port" "$LASTPID" || die "origin $n did not start: $(cat "$dir/error.log")"
}

accepts() { # total accepted connections of both origins, minus our own stub queries
    local a b
    a=$(curl -fsS "http://127.0.0.1:$STUB1/stub" | awk 'NR==3{print $1}')
    b=$(curl -fsS "http://127.0.0.2:$STUB2/stub" | awk 'NR==3{print $1}')
    echo $((a + b))
}

# ---------------------------------------------------------------- proxies
start_proxy() { # start_proxy NAME ; sets PROXY_PID, returns 1 if it cannot run
    local name=$1 dir=$TMP/$1
    rm -rf "$dir"
    mkdir -p "$dir"
    case $name in
    nginx | nginx-verbatim)
        local fix='            # must be repeated here: this level has its own proxy_set_header
            proxy_http_version 1.1;
            proxy_set_header Connection "";'
        [[ $name == nginx ]] || fix='            # nginx-verbatim: as the guide has it (nothing repeated here)'
        render "$HERE/nginx-proxy.conf.tmpl" "$dir/nginx.conf" DIR "$dir" PORT $PORT H2PORT $H2PORT \
            P1 $P1 P2 $P2 NOFILE "$FDS" UPSCHEME "$UPSCHEME" FIX "$fix" WORKERS "$NGINX_WORKERS"
        start_bg "$TMP/logs/$name.log" taskset -c "$PROXY_CPU" \
            nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;'
        ;;
    haproxy)
        render "$HERE/haproxy.cfg.tmpl" "$dir/haproxy.cfg" PORT $PORT H2PORT $H2PORT P1 $P1 P2 $P2 \
            MAXCONN $((IDLE_CONNS + 2000)) SSL_SERVER "$SSL_SERVER" THREADS "$HAPROXY_THREADS"
        start_bg "$TMP/logs/haproxy.log" taskset -c "$PROXY_CPU" haproxy -db -f "$dir/haproxy.cfg"
        ;;
    swarmgate)
        [[ -x $SWARMGATE_BIN ]] || return 1
        render "$HERE/swarmgate.yaml.tmpl" "$dir/swarmgate.yaml" PORT $PORT H2PORT $H2PORT P1 $P1 P2 $P2 \
            UPSTREAM_TLS "$UPSTREAM_TLS_YAML" WORKERS "$SG_WORKERS"
        start_bg "$TMP/logs/swarmgate.log" taskset -c "$PROXY_CPU" "$SWARMGATE_BIN" --config "$dir/swarmgate.yaml"
        ;;
    *) die "unknown proxy $name" ;;
    esac
    PROXY_PID=$LASTPID
    if ! wait_port 127.0.0.1 $PORT "$PROXY_PID"; then
        log "$name did not start listening; its output:"
        tail -20 "$TMP/logs/$name.log" >&2 || true
        stop_pid "$PROXY_PID"
        return 1
    fi
    sleep 0.2 # let nginx fork its worker
    # sanity: each kind of request works through the proxy
    local got
    got=$(curl -fsS "http://127.0.0.1:$PORT/" | wc -c)
    [[ $got == 100 ]] || { log "$name: GET / returned $got bytes"; stop_pid "$PROXY_PID"; return 1; }
    got=$(curl -fsS "http://127.0.0.1:$PORT/10m" | wc -c)
    [[ $got == $((10 * 1024 * 1024)) ]] || { log "$name: GET /10m returned $got bytes"; stop_pid "$PROXY_PID"; return 1; }
    got=$(curl -fsS -H 'Expect:' --data-binary "@$TMP/upload.bin" "http://127.0.0.1:$PORT/upload")
    [[ $got == ok ]] || { log "$name: POST /upload answered '$got'"; stop_pid "$PROXY_PID"; return 1; }
    if [[ $H2 == 1 ]]; then
        got=$(curl -fsS --http2-prior-knowledge "http://127.0.0.1:$H2PORT/" | wc -c)
        [[ $got == 100 ]] || { log "$name: h2c GET / returned $got bytes"; stop_pid "$PROXY_PID"; return 1; }
    fi
    return 0
}

# ---------------------------------------------------------------- cases
record() { echo "$1 $2 $3 $4 $5" >>"$RAW/metrics.tsv"; } # proxy rep case key value

proxy_alive() { # the proxy is still running (else say so once and skip the remaining cases)
    kill -0 "$PROXY_PID" 2>/dev/null && return 0
    if [[ -n $PROXY_PID ]]; then
        log "$PROXY_NAME (pid $PROXY_PID) has exited; its output:"
        tail -5 "$TMP/logs/$PROXY_NAME.log" >&2 || true
        echo "- rep $1: $PROXY_NAME exited during the run (before case $2); see its log in the raw data" >>"$RAW/notes.md"
        wait "$PROXY_PID" 2>/dev/null || true
        cp "$TMP/logs/$PROXY_NAME.log" "$RAW/$PROXY_NAME.$1.log" 2>/dev/null || true
        PROXY_PID=
    fi
    return 1
}

wrk_case() { # wrk_case PROXY REP CASE CONNS PATH [wrk args...]
    local proxy=$1 rep=$2 case=$3 conns=$4 path=$5
    shift 5
    proxy_alive "$rep" "$case" || return 0
    local url="http://127.0.0.1:$PORT$path" t=$WRK_THREADS
    ((t <= conns)) || t=$conns
    if ((WARMUP > 0)); then
        run_fg "$TMP/logs/warmup.txt" taskset -c "$LOAD_CPU" wrk -t"$t" -c"$conns" -d"${WARMUP}s" "$@" "$url" ||
            log "$proxy $case: warm-up wrk failed"
    fi
    local a0 a1 out=$RAW/wrk/$proxy.$rep.$case.txt
    local s0 s1
    a0=$(accepts)
    start_poller "$TMP/peak" $(proc_pids "$PROXY_PID")
    cpu_snapshot
    s0=$SNAP
    run_fg "$out" taskset -c "$LOAD_CPU" wrk -t"$t" -c"$conns" -d"${DURATION}s" --timeout 10s --latency "$@" "$url" ||
        log "$proxy $case: wrk failed: $(tail -3 "$out")"
    stop_poller
    cpu_snapshot
    s1=$SNAP
    record_cpu "$proxy" "$rep" "$case" "$s0" "$s1"
    a1=$(accepts)
    record "$proxy" "$rep" "$case" accepts $((a1 - a0 - 2))
    record "$proxy" "$rep" "$case" peak_rss_kb "$(<"$TMP/peak")"
    log "$proxy rep $rep $case: $(grep -E 'Requests/sec|Transfer/sec' "$out" | tr -s ' ' | tr '\n' ' ')"
}

h2load_case() { # h2load_case PROXY REP CASE CONNS STREAMS: h2c prior knowledge to the h2 port
    local proxy=$1 rep=$2 case=$3 conns=$4 streams=$5
    proxy_alive "$rep" "$case" || return 0
    local out=$RAW/h2load/$proxy.$rep.$case.txt s0 s1 a0 a1
    a0=$(accepts)
    start_poller "$TMP/peak" $(proc_pids "$PROXY_PID")
    cpu_snapshot
    s0=$SNAP
    # --log-file: one line per request (start, status, duration in us) for p50/p99
    run_fg "$out" taskset -c "$LOAD_CPU" h2load -t1 -c"$conns" -m"$streams" \
        --warm-up-time="${WARMUP}s" -D "$DURATION" --log-file="${out%.txt}.log" \
        "http://127.0.0.1:$H2PORT/" ||
        log "$proxy $case: h2load failed: $(tail -3 "$out")"
    stop_poller
    cpu_snapshot
    s1=$SNAP
    record_cpu "$proxy" "$rep" "$case" "$s0" "$s1"
    a1=$(accepts)
    record "$proxy" "$rep" "$case" accepts $((a1 - a0 - 2))
    record "$proxy" "$rep" "$case" peak_rss_kb "$(<"$TMP/peak")"
    log "$proxy rep $rep $case: $(grep -E '^finished in' "$out")"
}

idle_case() { # idle_case PROXY REP
    local proxy=$1 rep=$2 pids before after hpid i ok failed
    proxy_alive "$rep" idle || return 0
    pids=$(proc_pids "$PROXY_PID")
    sleep 0.5
    before=$(rss_kb $pids)
    start_poller "$TMP/peak" $pids
    start_bg "$TMP/idle.out" taskset -c "$LOAD_CPU" python3 "$HERE/idle_conns.py" 127.0.0.1 $PORT "$IDLE_CONNS"
    hpid=$LASTPID
    for ((i = 0; i < 1200; i++)); do
        grep -q '^ready' "$TMP/idle.out" 2>/dev/null && break
        kill -0 "$hpid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1
    after=$(rss_kb $pids)
    stop_poller
    read -r _ ok failed < <(grep '^ready' "$TMP/idle.out" || echo "ready 0 $IDLE_CONNS")
    stop_pid "$hpid"
    ((failed == 0)) || log "$proxy idle: $failed connections failed: $(grep -v '^ready' "$TMP/idle.out" | tail -2)"
    record "$proxy" "$rep" idle idle_before_kb "$before"
    record "$proxy" "$rep" idle idle_after_kb "$after"
    record "$proxy" "$rep" idle idle_ok "$ok"
    record "$proxy" "$rep" idle idle_failed "$failed"
    record "$proxy" "$rep" idle peak_rss_kb "$(<"$TMP/peak")"
    log "$proxy rep $rep idle: $ok conns, RSS $before -> $after kB"
}

machine_busy() { # BUSY = % of all CPUs busy (user+system) over the next $1 seconds
    local m0 t0 m1 t1
    cpu_snapshot
    read -r _ _ m0 t0 _ <<<"$SNAP"
    sleep "$1"
    cpu_snapshot
    read -r _ _ m1 t1 _ <<<"$SNAP"
    BUSY=$(((m1 - m0) * 100000000 / (t1 - t0) / HZ / NCPU))
}

wait_quiet() { # wait up to WAIT_QUIET seconds for an idle machine
    local end=$((SECONDS + WAIT_QUIET))
    ((WAIT_QUIET > 0)) || return 0
    while :; do
        machine_busy 1
        ((BUSY < 10)) && return 0
        if ((SECONDS >= end)); then
            log "machine still ${BUSY}% busy after waiting ${WAIT_QUIET} s; going on"
            return 0
        fi
    done
}

want() { [[ $CASES == *" $1 "* ]]; }

run_proxy() { # run_proxy NAME REP
    local name=$1 rep=$2
    wait_quiet
    log "rep $rep: $name"
    if ! start_proxy "$name"; then
        echo "- rep $rep: $name could not be started or failed its sanity check; skipped" >>"$RAW/notes.md"
        return 0
    fi
    PROXY_NAME=$name
    want get_c64 && wrk_case "$name" "$rep" get_c64 64 /
    want get_c256 && wrk_case "$name" "$rep" get_c256 256 /
    want big_c16 && wrk_case "$name" "$rep" big_c16 16 /10m
    want upload_c16 && wrk_case "$name" "$rep" upload_c16 16 /upload -s "$HERE/upload.lua"
    want close_c64 && wrk_case "$name" "$rep" close_c64 64 / -H 'Connection: close'
    [[ $H2 != 1 ]] || ! want h2_c64x10 || h2load_case "$name" "$rep" h2_c64x10 64 10
    want idle && idle_case "$name" "$rep"
    if proxy_alive "$rep" end; then stop_pid "$PROXY_PID"; fi
}

# ---------------------------------------------------------------- main
START=$SECONDS
read -ra BASE_ORDER <<<"$PROXIES"
ORDER=()
for p in "${BASE_ORDER[@]}"; do
    if [[ $p == swarmgate && ! -x $SWARMGATE_BIN ]]; then
        log "swarmgate binary not found at $SWARMGATE_BIN (set SWARMGATE_BIN or cargo build --release): skipping swarmgate"
        echo "- swarmgate skipped: no executable at \`$SWARMGATE_BIN\`" >>"$RAW/notes.md"
        continue
    fi
    ORDER+=("$p")
done
((${#ORDER[@]})) || die "no proxy to run"

start_origin 1 127.0.0.1 $P1 $STUB1
o1=$LASTPID
start_origin 2 127.0.0.2 $P2 $STUB2
sleep 0.2
ORIGIN_PIDS="$(proc_pids "$o1") $(proc_pids "$LASTPID")"

# is the machine quiet? (other sessions' builds make every figure noisy)
PROXY_PID=$$
machine_busy 2
BUSY_BEFORE=$BUSY
((BUSY_BEFORE < 10)) || log "warning: the machine is ${BUSY_BEFORE}% busy before the benchmark: figures will be noisy"
if [[ -n $ECHO_SO ]] && grep -q load_module "$TMP/origin1/nginx.conf"; then
    UPLOAD_SINK="nginx echo module (echo_read_request_body, then \"ok\")"
else
    UPLOAD_SINK="nginx with request buffering, then a bodiless request to a local sink"
fi

cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
sg_info="not run"
if [[ " ${ORDER[*]} " == *" swarmgate "* ]]; then
    sg_info="\`$SWARMGATE_BIN\` ($(stat -c %y "$SWARMGATE_BIN" | cut -d. -f1))"
fi
{
    echo "# swarmgate benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- command: \`$(env | grep -E '^(BENCH_[A-Z_]+|SWARMGATE_BIN)=' | tr '\n' ' ')$CMDLINE\`"
    echo "- git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') ($(git -C "$ROOT" rev-parse --abbrev-ref HEAD 2>/dev/null || echo '?'))"
    echo "- machine: $NCPU CPUs, $cpu_model, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "- versions: $(nginx -v 2>&1 | sed 's/.*: //'), HAProxy $(haproxy -v | awk 'NR==1{print $3}'), $(wrk -v 2>&1 | awk 'NR==1{print $1, $2}'), $( [[ $H2 != 1 ]] || h2load --version | awk 'NR==1{print $1, $2}'), swarmgate $sg_info"
    echo "- method: proxy on 127.0.0.1:$PORT pinned to CPU $PROXY_CPU; wrk ($WRK_THREADS thread), both origins and helpers pinned to CPU $LOAD_CPU;" \
        "each case ${WARMUP} s warm-up + ${DURATION} s measured, $REPS reps interleaved (proxy order rotated per rep), medians"
    echo "- machine load before the run: ${BUSY_BEFORE}% of all CPUs busy (user+system, 2 s sample)"
    echo "- origins: nginx, 1 worker each, on 127.0.0.1:$P1 and 127.0.0.2:$P2 (round robin), $( [[ $UPSTREAM_TLS == 1 ]] && echo "HTTPS (P-256, proxies do not verify)" || echo "plain HTTP"); uploads: $UPLOAD_SINK"
    echo "- RSS: sum of VmRSS over the proxy's processes (nginx: master + 1 worker; HAProxy: one process, -db; swarmgate: one process)." \
        "Idle case: $IDLE_CONNS client connections (from 127.0.1.1-8), each sends one keep-alive GET / and reads the answer, then stays idle; RSS measured 1 s after they are all open, after the throughput cases"
} >"$RAW/header.md"

for ((rep = 1; rep <= REPS; rep++)); do
    n=${#ORDER[@]}
    for ((k = 0; k < n; k++)); do
        run_proxy "${ORDER[(k + rep - 1) % n]}" "$rep"
    done
done

echo "- runtime: $((SECONDS - START)) s" >>"$RAW/notes.md"
mkdir -p "$ROOT/bench-results"
stamp=$(date '+%Y%m%d-%H%M%S')
python3 "$HERE/report.py" "$RAW" "${ORDER[*]}" | tee "$ROOT/bench-results/$stamp.md"
cp -r "$RAW" "$ROOT/bench-results/$stamp"
log "report: bench-results/$stamp.md (raw data in bench-results/$stamp/)"
