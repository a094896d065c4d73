#!/usr/bin/env bash
# hack/loadgen/storm.sh SCENARIO [loadgen flags...]
#
# One storm scenario of docs/benchmarks.md ("Storms"): SCENARIO is
# replica-loss, rolling-restart, failover or mass-disconnect. Starts a
# six-node Redis Cluster of its own (ports BENCH_REDIS_BASE_PORT..+5,
# default 7600), builds presence-gateway and loadgen into $STORM_OUT/bin
# (default /tmp/presencekit-storm), and runs `loadgen -storm SCENARIO`,
# which starts the gateways itself (ports 18180.., metrics 19180..), makes
# the storm and prints its figures. Gateway logs go to $STORM_OUT. The
# cluster is stopped at the end, whatever happened. STORM_GATEWAY_BIN runs
# a gateway binary built elsewhere instead of this tree's (an A/B).
#
#   hack/loadgen/storm.sh replica-loss
#   hack/loadgen/storm.sh mass-disconnect -clients 10000
#   hack/loadgen/storm.sh failover -clients 1000 -watcher-count 2   # small, while developing
set -euo pipefail
cd "$(dirname "$0")/../.."

scenario="${1:?usage: $0 replica-loss|rolling-restart|failover|mass-disconnect [loadgen flags]}"
shift
base="${BENCH_REDIS_BASE_PORT:-7600}"
out="${STORM_OUT:-/tmp/presencekit-storm}"
mkdir -p "$out/bin"
nodes=$(for i in 0 1 2 3 4 5; do printf '127.0.0.1:%s,' $((base + i)); done | sed 's/,$//')

gw="${STORM_GATEWAY_BIN:-}" # a gateway built elsewhere (an A/B against another commit)
if [ -z "$gw" ]; then
  gw="$out/bin/presence-gateway"
  go build -trimpath -o "$gw" ./cmd/presence-gateway
fi
go build -trimpath -o "$out/bin/loadgen" ./hack/loadgen
export REDIS_CLUSTER_BASE_PORT="$base"
hack/redis-cluster.sh down >/dev/null 2>&1 || true # a fresh cluster: failover leaves roles swapped
hack/redis-cluster.sh up >/dev/null
trap 'hack/redis-cluster.sh down >/dev/null 2>&1 || true' EXIT

"$out/bin/loadgen" -storm "$scenario" -redis "$nodes" -gateway-bin "$gw" -out "$out" "$@"
