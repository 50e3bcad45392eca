#!/usr/bin/env bash
# End-to-end test of the swarmgate image against the local Docker engine (run by CI).
#
#  1. builds swarmgate:latest and swarmgate-replica:test (scripts/build-*.sh, skipped when
#     unchanged);
#  2. containers mode: a fresh bridge network, three https replicas (replica TLS=1) and the
#     swarmgate container (non-root, socket read-only, --group-add of the socket's group, ports
#     published on 127.0.0.1): all replicas answer through it; one is stopped during a keepalive
#     request loop without a failed request; a new one is routed within 2 s; /metrics scrapes;
#     `docker stop` of swarmgate lets an in-flight /slow?ms=3000 request finish with 200;
#  3. swarm mode (E2E_SWARM=auto: only when `docker swarm init` works; 1: required; 0: skip):
#     swarm/network.sh creates the attachable overlay `kuscia-exchange-cluster`, three standalone
#     replicas named like Kuscia's containers join it, `docker stack deploy -c swarm/stack.yml`,
#     and the traffic checks are repeated through the service's published port; then DNS
#     discovery: a replica service found through `tasks.<service>` by a swarmgate container
#     without the Docker socket, and followed when the service is scaled 2 -> 3.
#
# Everything it creates (containers, networks, the stack, the swarm if it initialised it) is
# removed on exit, also on failure or Ctrl-C. Needs bash, curl >= 7.84 (`%header{}`), docker.
# Ends with `e2e: N passed, M failed`; exits non-zero when a check failed.
#
# Environment: E2E_PORT (18080), E2E_ADMIN_PORT (19901), E2E_SWARM_PORT (18081; +1 for the DNS check), E2E_SWARM,
# E2E_SWARM_PUBLISH (auto: `ingress` when the kernel has IPVS, which the routing mesh needs,
# else `host`), IMAGE (swarmgate:latest), REPLICA_IMAGE (swarmgate-replica:test),
# E2E_SKIP_BUILD=1.
set -uo pipefail
cd "$(dirname "$0")/.."

RUN="sg-e2e-$$"
IMAGE="${IMAGE:-swarmgate:latest}"
REPLICA_IMAGE="${REPLICA_IMAGE:-swarmgate-replica:test}"
PORT="${E2E_PORT:-18080}"
ADMIN_PORT="${E2E_ADMIN_PORT:-19901}"
SWARM_PORT="${E2E_SWARM_PORT:-18081}"
E2E_SWARM="${E2E_SWARM:-auto}"
E2E_SWARM_PUBLISH="${E2E_SWARM_PUBLISH:-auto}"
OVERLAY=kuscia-exchange-cluster
SOCK=/var/run/docker.sock
URL="http://127.0.0.1:$PORT"

for tool in docker curl stdbuf awk stat; do
    command -v "$tool" >/dev/null || { echo "e2e: $tool is required" >&2; exit 2; }
done
curl_version="$(curl --version | awk 'NR==1{print $2}')"
if [ "$(printf '%s\n7.84.0\n' "$curl_version" | sort -V | head -1)" != 7.84.0 ]; then
    echo "e2e: curl >= 7.84 is required (-w %header{}), have $curl_version" >&2
    exit 2
fi

PASSED=0
FAILED=0
STACK=""
DNS_SERVICE=""
SWARM_CREATED=0
OVERLAY_CREATED=0
TMP="$(mktemp -d)"
chmod 755 "$TMP"

ms() { echo $(($(date +%s%N) / 1000000)); }
T_BEGIN=$(ms)
say() { printf '%7.1fs  %s\n' "$(awk "BEGIN{print ($(ms) - $T_BEGIN) / 1000}")" "$*"; }
pass() { PASSED=$((PASSED + 1)); say "ok    $*"; }
fail() { FAILED=$((FAILED + 1)); say "FAIL  $*"; }
# check DESCRIPTION COMMAND...: runs the command, counts and returns the result.
check() {
    local what="$1"
    shift
    if "$@"; then
        pass "$what"
    else
        fail "$what"
        return 1
    fi
}

cleanup() {
    local rc=$?
    set +e
    say "cleanup"
    if [ -n "$DNS_SERVICE" ]; then docker service rm "$DNS_SERVICE" >/dev/null 2>&1; fi
    if [ -n "$STACK" ]; then
        docker stack rm "$STACK" >/dev/null 2>&1
        wait_until 30 "stack containers gone" stack_gone
    fi
    local ids
    ids="$(docker ps -aq --filter "label=swarmgate.e2e=$RUN")"
    if [ -n "$ids" ]; then docker rm -f $ids >/dev/null 2>&1; fi
    for n in $(docker network ls -q --filter "label=swarmgate.e2e=$RUN"); do
        # Overlay removal can lag behind the last task: retry briefly.
        for _ in $(seq 50); do docker network rm "$n" >/dev/null 2>&1 && break; sleep 0.2; done
    done
    if [ "$SWARM_CREATED" = 1 ]; then
        docker swarm leave --force >/dev/null 2>&1
        docker network rm docker_gwbridge >/dev/null 2>&1
    fi
    rm -rf "$TMP"
    local left
    left="$(docker ps -aq --filter "label=swarmgate.e2e=$RUN"; docker network ls -q --filter "label=swarmgate.e2e=$RUN")"
    [ -z "$left" ] || echo "e2e: cleanup left: $left" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

quiet() { "$@" >/dev/null; }

# wait_until SECONDS DESCRIPTION COMMAND...: polls every 50 ms until the command succeeds.
wait_until() {
    local secs="$1" what="$2"
    shift 2
    local deadline=$(($(ms) + secs * 1000))
    until "$@"; do
        if [ "$(ms)" -ge "$deadline" ]; then
            say "timed out after ${secs}s waiting for $what"
            return 1
        fi
        sleep 0.05
    done
}

stack_gone() { [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ]; }

# requests BASE PATH N: N GETs on one keepalive connection (one curl, N URLs); prints
# "<status> <x-replica>" per request, line-buffered (status 000 = transport error).
requests() {
    local base="$1" path="$2" n="$3" args=()
    for _ in $(seq "$n"); do args+=(-o /dev/null "$base$path"); done
    stdbuf -oL curl -s --max-time 60 -w '%{http_code} %header{x-replica}\n' "${args[@]}"
    return 0
}

# one_replica BASE: the x-replica of one GET on a new connection ("" on error).
one_replica() { curl -s --max-time 2 -o /dev/null -w '%header{x-replica}' "$1/healthz" 2>/dev/null; }

# all_seen BASE NAME...: true when a sweep of 3*N requests reached every NAME.
all_seen() {
    local base="$1"
    shift
    local out
    out="$(requests "$base" /healthz $(($# * 3)))"
    for n in "$@"; do grep -q " $n\$" <<<"$out" || return 1; done
}

# replica NAME NETWORK: starts a https replica (no Docker healthcheck: routed as soon as it runs).
replica() {
    docker run -d --name "$1" --network "$2" --label "swarmgate.e2e=$RUN" \
        -e TLS=1 -e "REPLICA_NAME=$1" --no-healthcheck "$REPLICA_IMAGE" >/dev/null
}

# stop_during_load BASE VICTIM OTHERS...: 2 keepalive clients x 200 requests of /slow?ms=5;
# VICTIM is stopped once 60 requests have completed. Checks no request failed, the victim had
# traffic before and none in a sweep afterwards.
stop_during_load() {
    local base="$1" victim="$2"
    shift 2
    requests "$base" "/slow?ms=5" 200 >"$TMP/load1" &
    local p1=$!
    requests "$base" "/slow?ms=5" 200 >"$TMP/load2" &
    local p2=$!
    wait_until 20 "load to get going" bash -c "[ \$(cat '$TMP/load1' '$TMP/load2' | wc -l) -ge 60 ]"
    local t0
    t0=$(ms)
    docker stop -t 5 "$victim" >/dev/null
    local t_stop=$(($(ms) - t0))
    wait "$p1" "$p2"
    cat "$TMP/load1" "$TMP/load2" >"$TMP/load"
    local total bad victim_hits
    total=$(wc -l <"$TMP/load")
    bad=$(grep -vc '^200 ' "$TMP/load")
    victim_hits=$(grep -c " $victim\$" "$TMP/load")
    say "load: $total responses, $bad not 200, $victim_hits from $victim; docker stop took ${t_stop} ms; by replica: $(cut -d' ' -f2 "$TMP/load" | sort | uniq -c | tr -s ' \n' ' ')"
    check "400 requests while $victim stops: none failed" [ "$total" = 400 -a "$bad" = 0 ]
    check "$victim had traffic before it stopped" [ "$victim_hits" -gt 0 ]
    local after
    after="$(requests "$base" /healthz 30)"
    check "$victim gets no traffic after its stop, the others do" \
        bash -c "! grep -q ' $victim\$' <<<\"$after\" && ! grep -qv '^200 ' <<<\"$after\""
}

# new_replica_routed BASE NAME NETWORK LIMIT_MS: starts NAME and times the first request routed to it.
new_replica_routed() {
    local base="$1" name="$2" net="$3" limit="$4" t0 t_run t_seen
    t0=$(ms)
    replica "$name" "$net"
    t_run=$(($(ms) - t0))
    if wait_until 10 "$name to be routed" bash -c "[ \"\$(curl -s --max-time 2 -o /dev/null -w '%header{x-replica}' '$base/healthz')\" = '$name' ] || [ \"\$(curl -s --max-time 2 -o /dev/null -w '%header{x-replica}' '$base/healthz')\" = '$name' ]"; then
        t_seen=$(($(ms) - t0))
        say "timing: docker run → first request routed to $name: ${t_seen} ms (docker run CLI: ${t_run} ms)"
        check "new replica $name routed within ${limit} ms of docker run (${t_seen} ms)" [ "$t_seen" -le "$limit" ]
    else
        fail "new replica $name routed"
    fi
}

# ---------------------------------------------------------------------------------------------
say "build images"
if [ "${E2E_SKIP_BUILD:-0}" != 1 ]; then
    t0=$(ms)
    check "build $IMAGE" scripts/build-image.sh
    check "build $REPLICA_IMAGE" scripts/build-replica-image.sh
    say "timing: image builds $(($(ms) - t0)) ms"
fi
T_IMAGES=$(ms)
say "image $IMAGE: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}'), user $(docker image inspect -f '{{.Config.User}}' "$IMAGE")"

# ------------------------------------------------------------------ containers mode (bridge) --
say "containers mode on a bridge network"
NET="$RUN-net"
docker network create --label "swarmgate.e2e=$RUN" "$NET" >/dev/null
cat >"$TMP/swarmgate.yaml" <<EOF
listen: "0.0.0.0:8080"
admin: {listen: "0.0.0.0:9901"}
shutdown_timeout: 10s
upstreams:
  kuscia:
    scheme: https
    tls_verify: false
    discovery:
      docker:
        network: "$NET"
        mode: containers
        port: 1080
        name: "^$RUN-replica-"
EOF
chmod 644 "$TMP/swarmgate.yaml"
R=("$RUN-replica-1" "$RUN-replica-2" "$RUN-replica-3")
for r in "${R[@]}"; do replica "$r" "$NET"; done
# The socket stays root:docker; the image's user 65534 gets the socket's group.
t0=$(ms)
check "swarmgate container starts (non-root, socket ro)" quiet docker run -d --name "$RUN-swarmgate" \
    --label "swarmgate.e2e=$RUN" --network "$NET" \
    -p "127.0.0.1:$PORT:8080" -p "127.0.0.1:$ADMIN_PORT:9901" \
    -v "$SOCK:$SOCK:ro" --group-add "$(stat -c %g "$SOCK")" \
    -v "$TMP/swarmgate.yaml:/etc/swarmgate/swarmgate.yaml:ro" "$IMAGE"
if wait_until 10 "readyz" curl -sf -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz"; then
    pass "ready after $(($(ms) - t0)) ms"
else
    fail "ready"
    docker logs "$RUN-swarmgate" 2>&1 | tail -20
fi
if wait_until 5 "all three replicas" all_seen "$URL" "${R[@]}"; then
    say "timing: docker run swarmgate → all 3 replicas answered: $(($(ms) - t0)) ms"
    pass "all 3 replicas answer through swarmgate"
else
    fail "all 3 replicas answer through swarmgate"
fi
out="$(curl -s -D - -o "$TMP/body" "$URL/")"
check "GET / passes Kuscia's 401 and kuscia-error-message through" \
    bash -c "grep -q '^HTTP/1.1 401' <<<\"$out\" && grep -qi '^kuscia-error-message: Domain alice' <<<\"$out\""

stop_during_load "$URL" "${R[0]}"
new_replica_routed "$URL" "$RUN-replica-4" "$NET" 2000

metrics="$(curl -s "http://127.0.0.1:$ADMIN_PORT/metrics")"
check "/metrics: requests counted per server" grep -q '^swarmgate_requests_total{' <<<"$metrics"
check "/metrics: discovery up" grep -q '^swarmgate_discovery_up{upstream="kuscia"} 1' <<<"$metrics"
health() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$RUN-swarmgate")" = healthy ]; }
check "image HEALTHCHECK (swarmgate healthcheck) reports healthy" wait_until 20 "healthy" health

# Graceful stop: a slow request in flight completes.
curl -s --max-time 20 -o /dev/null -w '%{http_code}' "$URL/slow?ms=3000" >"$TMP/slow" &
slow=$!
inflight() { curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -q '^swarmgate_client_connections [1-9]'; }
wait_until 3 "slow request in flight" inflight
t0=$(ms)
docker stop -t 15 "$RUN-swarmgate" >/dev/null
t_stop=$(($(ms) - t0))
wait "$slow"
code="$(cat "$TMP/slow")"
say "timing: docker stop swarmgate with /slow?ms=3000 in flight: ${t_stop} ms, request answered $code"
check "in-flight /slow?ms=3000 completes (200) across docker stop" [ "$code" = 200 ]
check "swarmgate exited 0 within the grace period" \
    [ "$(docker inspect -f '{{.State.ExitCode}}' "$RUN-swarmgate")" = 0 -a "$t_stop" -lt 15000 ]
docker rm -f $(docker ps -aq --filter "label=swarmgate.e2e=$RUN") >/dev/null
docker network rm "$NET" >/dev/null
T_CONTAINERS=$(ms)
say "timing: containers-mode checks $((T_CONTAINERS - T_IMAGES)) ms"

# ------------------------------------------------------------------------------ swarm mode --
swarm_phase() {
    local state
    state="$(docker info --format '{{.Swarm.LocalNodeState}}')"
    if [ "$state" != active ]; then
        if ! docker swarm init --advertise-addr 127.0.0.1 >"$TMP/swarm-init" 2>&1; then
            docker swarm leave --force >/dev/null 2>&1
            if [ "$E2E_SWARM" = 1 ]; then
                fail "docker swarm init: $(cat "$TMP/swarm-init")"
            else
                say "SKIP swarm mode: docker swarm init failed: $(cat "$TMP/swarm-init")"
            fi
            return
        fi
        SWARM_CREATED=1
        pass "docker swarm init"
    elif [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" != true ]; then
        fail "this engine is a swarm worker; the stack needs a manager"
        return
    else
        say "using the existing swarm (left as it is afterwards)"
    fi
    if docker network inspect "$OVERLAY" >/dev/null 2>&1; then
        if [ "$(docker network inspect -f '{{.Driver}} {{.Attachable}}' "$OVERLAY")" != "overlay true" ]; then
            fail "$OVERLAY exists and is not an attachable overlay (docker-compose demo up?)"
            return
        fi
        say "reusing the existing overlay $OVERLAY"
    else
        check "swarm/network.sh creates the attachable overlay" \
            quiet env NETWORK_OPTS="--label swarmgate.e2e=$RUN" swarm/network.sh || return
        OVERLAY_CREATED=1
    fi
    # Standalone containers on the overlay, named like kuscia.sh's ${USER}-kuscia-${mode}-${domain}.
    local s=("$RUN-kuscia-autonomy-alice-1" "$RUN-kuscia-autonomy-alice-2" "$RUN-kuscia-autonomy-alice-3")
    for r in "${s[@]}"; do replica "$r" "$OVERLAY"; done
    # The routing mesh (ingress publishing) needs IPVS; without it the port is never served.
    local publish="$E2E_SWARM_PUBLISH" order=start-first
    if [ "$publish" = auto ]; then
        if [ -e /proc/net/ip_vs ] || grep -qw ip_vs "/lib/modules/$(uname -r)/modules.dep" 2>/dev/null; then
            publish=ingress
        else
            publish=host
            say "no IPVS in this kernel: the routing mesh cannot work here, publishing in host mode"
        fi
    fi
    [ "$publish" = host ] && order=stop-first
    STACK="$RUN"
    local t0 base="http://127.0.0.1:$SWARM_PORT"
    t0=$(ms)
    check "docker stack deploy -c swarm/stack.yml (publish mode $publish)" \
        env SWARMGATE_PORT="$SWARM_PORT" SWARMGATE_IMAGE="$IMAGE" SWARMGATE_CONFIG_VERSION="$RUN" \
        SWARMGATE_PUBLISH_MODE="$publish" SWARMGATE_UPDATE_ORDER="$order" \
        docker stack deploy --resolve-image never -c swarm/stack.yml "$STACK" >"$TMP/deploy" 2>&1 || {
        cat "$TMP/deploy"
        return
    }
    if wait_until 60 "replicas through the stack's published port" all_seen "$base" "${s[@]}"; then
        say "timing: stack deploy → all 3 replicas answered through :$SWARM_PORT: $(($(ms) - t0)) ms"
        pass "all 3 replicas answer through the swarm service's published port"
    else
        fail "all 3 replicas answer through the swarm service's published port"
        docker service ps --no-trunc "${STACK}_swarmgate" 2>&1 | tail -5
        docker service logs "${STACK}_swarmgate" 2>&1 | tail -20
        return
    fi
    stop_during_load "$base" "${s[0]}"
    new_replica_routed "$base" "$RUN-kuscia-autonomy-alice-4" "$OVERLAY" 2000
    svc_healthy() {
        [ "$(docker inspect -f '{{.State.Health.Status}}' \
            $(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_swarmgate") 2>/dev/null)" = healthy ]
    }
    check "swarm task healthy (stack healthcheck)" wait_until 20 "task healthy" svc_healthy
    dns_phase
}

# distinct_replicas BASE: how many replicas a sweep of 12 requests reached.
distinct_replicas() { requests "$1" /healthz 12 | awk '$1 == 200 {print $2}' | sort -u | wc -l; }

# dns_phase: discovery without the Docker socket (issue 17): a replica *service* on the
# overlay, and a swarmgate container (no socket mounted) that resolves `tasks.<service>` through
# swarm's embedded DNS; scaling the service 2 -> 3 adds a server.
dns_phase() {
    local svc="$RUN-dnsrep" port=$((SWARM_PORT + 1)) cfg="$TMP/swarmgate-dns.yaml"
    DNS_SERVICE="$svc"
    check "replica service with 2 tasks on the overlay (docker service create)" \
        quiet docker service create -d --no-resolve-image --name "$svc" --label "swarmgate.e2e=$RUN" \
        --container-label "swarmgate.e2e=$RUN" --network "$OVERLAY" --replicas 2 \
        --env TLS=1 --hostname '{{.Task.Name}}' --no-healthcheck "$REPLICA_IMAGE" || return
    cat >"$cfg" <<EOF
listen: "0.0.0.0:8080"
admin: {listen: "127.0.0.1:9901"}
upstreams:
  kuscia:
    scheme: https
    tls_verify: false
    discovery:
      dns: {name: "tasks.$svc", port: 1080, interval: 1s}
EOF
    chmod 644 "$cfg"
    check "swarmgate container with DNS discovery starts (no Docker socket)" \
        quiet docker run -d --name "$RUN-sg-dns" --label "swarmgate.e2e=$RUN" --network "$OVERLAY" \
        -p "127.0.0.1:$port:8080" -v "$cfg:/etc/swarmgate/swarmgate.yaml:ro" "$IMAGE" || return
    local base="http://127.0.0.1:$port"
    two() { [ "$(distinct_replicas "$base")" = 2 ]; }
    three() { [ "$(distinct_replicas "$base")" = 3 ]; }
    check "tasks.<service> resolves to both tasks: both answer through swarmgate" \
        wait_until 60 "two tasks through DNS discovery" two || {
        docker logs "$RUN-sg-dns" 2>&1 | tail -10
        return
    }
    local t0
    t0=$(ms)
    quiet docker service scale -d "$svc=3"
    if wait_until 60 "the third task through DNS discovery" three; then
        say "timing: service scale 2 -> 3 → third task answered: $(($(ms) - t0)) ms"
        pass "a task added by docker service scale is routed (DNS re-resolution)"
    else
        fail "a task added by docker service scale is routed (DNS re-resolution)"
    fi
}
if [ "$E2E_SWARM" != 0 ]; then
    say "swarm mode: overlay + docker stack deploy"
    swarm_phase
    say "timing: swarm checks $(($(ms) - T_CONTAINERS)) ms"
fi

say "timing: total $(($(ms) - T_BEGIN)) ms, after images $(($(ms) - T_IMAGES)) ms (cleanup not included)"
echo "e2e: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
