#!/usr/bin/env bash
# hack/loadgen/bench.sh CONNS_PER_REPLICA [loadgen flags...]
#
# The benchmark of docs/benchmarks.md: a six-node Redis Cluster of its own
# (ports BENCH_REDIS_BASE_PORT.., default 7600, so no test traffic counts),
# two gateway replicas on it with the default TTL/heartbeat (60s/20s), and
# hack/loadgen with CONNS_PER_REPLICA idle connections per replica. Prints
# the loadgen report; saves heap and goroutine profiles of the first
# gateway under $BENCH_OUT (default /tmp/presencekit-bench; the gateways run
# with PPROF_ENABLED=true, pprof being opt-in), and CPU profiles of both
# gateways over BENCH_CPU_SECONDS (default 20) of the idle window and over
# the latency phase (cpu-idle-<i>.pb.gz, cpu-latency-<i>.pb.gz; none with
# BENCH_CPU_SECONDS=0). Stops all it started.
#
# BENCH_GATEWAY_BIN runs a gateway binary built elsewhere instead of this
# tree's (an A/B against an older commit: build it from a `git worktree` of
# that commit, then run this script twice, once with each binary).
set -euo pipefail
cd "$(dirname "$0")/../.."

per="${1:?usage: $0 CONNS_PER_REPLICA [loadgen flags]}"
shift
base="${BENCH_REDIS_BASE_PORT:-7600}"
out="${BENCH_OUT:-/tmp/presencekit-bench}"
cpu="${BENCH_CPU_SECONDS:-20}"
mkdir -p "$out/bin"
nodes=$(for i in 0 1 2 3 4 5; do printf '127.0.0.1:%s,' $((base + i)); done | sed 's/,$//')

gw="${BENCH_GATEWAY_BIN:-}"
if [ -z "$gw" ]; then
  gw="$out/bin/presence-gateway"
  go build -trimpath -o "$gw" ./cmd/presence-gateway
fi
go build -trimpath -o "$out/bin/loadgen" ./hack/loadgen
export REDIS_CLUSTER_BASE_PORT="$base"
hack/redis-cluster.sh down >/dev/null 2>&1 || true
hack/redis-cluster.sh up >/dev/null

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  hack/redis-cluster.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

for i in 0 1; do
  WS_PORT=$((18080 + i)) METRICS_PORT=$((19090 + i)) REDIS_NODES="$nodes" LOG_LEVEL=warn PPROF_ENABLED=true \
    "$gw" 2>"$out/gateway-$i.log" &
  pids+=($!)
done
for i in 0 1; do
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$((18080 + i))/readyz" >/dev/null && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$((18080 + i))/readyz" >/dev/null || { cat "$out/gateway-$i.log"; exit 1; }
done

log="$out/loadgen-$per.log"
"$out/bin/loadgen" -gateways ws://127.0.0.1:18080,ws://127.0.0.1:18081 -pids "${pids[0]},${pids[1]}" \
  -redis "$nodes" -conns $((2 * per)) "$@" 2> >(tee "$log" >&2) &
lg=$!
# waitlog PATTERN: until loadgen's log says it (or loadgen is gone).
waitlog() {
  for _ in $(seq 6000); do
    grep -q "$1" "$log" 2>/dev/null && return 0
    kill -0 "$lg" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
cpuprofile() { # PHASE SECONDS: both gateways at once; none when BENCH_CPU_SECONDS=0
  [ "$cpu" -gt 0 ] || return 0
  local ps=()
  for i in 0 1; do
    curl -fs "http://127.0.0.1:$((19090 + i))/debug/pprof/profile?seconds=$2" -o "$out/cpu-$1-$i.pb.gz" &
    ps+=($!)
  done
  wait "${ps[@]}" || true
}
# Profiles while the connections are idle (after connect + settle).
if waitlog 'idle window'; then
  sleep 5
  curl -fs "http://127.0.0.1:19090/debug/pprof/heap" -o "$out/heap-$per.pb.gz" || true
  curl -fs "http://127.0.0.1:19090/debug/pprof/goroutine?debug=1" -o "$out/goroutine-$per.txt" || true
  cpuprofile idle "$cpu"
fi
if waitlog 'latency phase'; then
  cpuprofile latency 8
fi
wait "$lg"
