#!/usr/bin/env bash
# Creates the attachable overlay network that Kuscia's clustered deployment uses
# (`kuscia.sh start --cluster` expects it to exist), on a swarm manager. Idempotent.
#
#   swarm/network.sh                         # kuscia-exchange-cluster, 10.201.0.0/16
#   NETWORK=name SUBNET=10.202.0.0/16 swarm/network.sh
#
# Prerequisite: `docker swarm init` (first manager) / `docker swarm join` on every Kuscia host,
# with TCP 2377 (managers), TCP+UDP 7946 and UDP 4789 (VXLAN) open between the hosts.
set -euo pipefail
NETWORK="${NETWORK:-kuscia-exchange-cluster}"
SUBNET="${SUBNET:-10.201.0.0/16}"
if [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" != "true" ]; then
    echo "network.sh: this engine is not a swarm manager (run 'docker swarm init' first)" >&2
    exit 1
fi
if driver="$(docker network inspect -f '{{.Driver}} {{.Attachable}}' "$NETWORK" 2>/dev/null)"; then
    if [ "$driver" = "overlay true" ]; then
        echo "network $NETWORK exists"
        exit 0
    fi
    echo "network.sh: $NETWORK exists but is not an attachable overlay ($driver)" >&2
    exit 1
fi
docker network create -d overlay --attachable --subnet "$SUBNET" "$NETWORK" ${NETWORK_OPTS:-}
