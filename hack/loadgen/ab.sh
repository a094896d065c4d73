#!/usr/bin/env bash
# hack/loadgen/ab.sh BIN_A BIN_B CONNS_PER_REPLICA [loadgen flags...]
#
# bench.sh's measurement of two gateway builds at the same time, so that
# both see the same machine: on a shared machine whose load moves by the
# minute, back-to-back runs compare the load as much as the code. One
# six-node Redis Cluster (BENCH_REDIS_BASE_PORT.., default 7600); two
# replicas of BIN_A (:18080, :18081, metrics :19090, :19091) and two of
# BIN_B (:18082, :18083, metrics :19092, :19093), all with PPROF_ENABLED;
# two loadgen runs started together, one per pair, each with
# CONNS_PER_REPLICA idle connections per replica and the given flags (each
# pair's latency phase runs from its first replica to its second, at the
# same time as the other pair's). Prints both reports (A first) and saves
# CPU profiles of each pair's first replica over BENCH_CPU_SECONDS
# (default 20) of the idle window and 8 s of the latency phase, under
# $BENCH_OUT (default /tmp/presencekit-ab): cpu-idle-a.pb.gz, ..., with
# their /metrics before and after the idle profile (metrics-idle0-a.txt,
# ...: allocations and GC cycles per second). The Redis figures of each
# report count both pairs' commands (one cluster).
#
#   git worktree add /tmp/wt-before 5dfba99
#   (cd /tmp/wt-before && go build -o /tmp/gw-before ./cmd/presence-gateway)
#   go build -o /tmp/gw-after ./cmd/presence-gateway
#   hack/loadgen/ab.sh /tmp/gw-before /tmp/gw-after 10000 -idle 60s -rate 1000 -latency 10s
set -euo pipefail
cd "$(dirname "$0")/../.."

bin_a="${1:?usage: $0 BIN_A BIN_B CONNS_PER_REPLICA [loadgen flags]}"
bin_b="${2:?usage: $0 BIN_A BIN_B CONNS_PER_REPLICA [loadgen flags]}"
per="${3:?usage: $0 BIN_A BIN_B CONNS_PER_REPLICA [loadgen flags]}"
shift 3
base="${BENCH_REDIS_BASE_PORT:-7600}"
out="${BENCH_OUT:-/tmp/presencekit-ab}"
cpu="${BENCH_CPU_SECONDS:-20}"
mkdir -p "$out/bin"
nodes=$(for i in 0 1 2 3 4 5; do printf '127.0.0.1:%s,' $((base + i)); done | sed 's/,$//')

go build -trimpath -o "$out/bin/loadgen" ./hack/loadgen
export REDIS_CLUSTER_BASE_PORT="$base"
hack/redis-cluster.sh down >/dev/null 2>&1 || true
hack/redis-cluster.sh up >/dev/null

pids=()
lgs=()
cleanup() {
  for p in "${lgs[@]}" "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${lgs[@]}" "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  hack/redis-cluster.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

bins=("$bin_a" "$bin_a" "$bin_b" "$bin_b")
for i in 0 1 2 3; do
  WS_PORT=$((18080 + i)) METRICS_PORT=$((19090 + i)) REDIS_NODES="$nodes" LOG_LEVEL=warn PPROF_ENABLED=true \
    "${bins[$i]}" 2>"$out/gateway-$i.log" &
  pids+=($!)
done
for i in 0 1 2 3; do
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$((18080 + i))/readyz" >/dev/null && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$((18080 + i))/readyz" >/dev/null || { cat "$out/gateway-$i.log"; exit 1; }
done

for p in a b; do
  if [ $p = a ]; then i=0; else i=2; fi
  "$out/bin/loadgen" -gateways "ws://127.0.0.1:$((18080 + i)),ws://127.0.0.1:$((18081 + i))" \
    -pids "${pids[$i]},${pids[$((i + 1))]}" -redis "$nodes" -conns $((2 * per)) -prefix "lg$p" "$@" \
    >"$out/report-$p.txt" 2>"$out/loadgen-$p.log" &
  lgs+=($!)
done

waitlogs() { # PATTERN: until both loadgens logged it (or one is gone)
  for _ in $(seq 6000); do
    grep -q "$1" "$out/loadgen-a.log" && grep -q "$1" "$out/loadgen-b.log" && return 0
    kill -0 "${lgs[0]}" 2>/dev/null && kill -0 "${lgs[1]}" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
cpuprofile() { # PHASE SECONDS: the first replica of each pair
  [ "$cpu" -gt 0 ] || return 0
  local ps=()
  curl -fs "http://127.0.0.1:19090/debug/pprof/profile?seconds=$2" -o "$out/cpu-$1-a.pb.gz" & ps+=($!)
  curl -fs "http://127.0.0.1:19092/debug/pprof/profile?seconds=$2" -o "$out/cpu-$1-b.pb.gz" & ps+=($!)
  wait "${ps[@]}" || true
}
metrics() { # NAME: the first replica of each pair's /metrics (Go runtime counters)
  curl -fs http://127.0.0.1:19090/metrics -o "$out/metrics-$1-a.txt" || true
  curl -fs http://127.0.0.1:19092/metrics -o "$out/metrics-$1-b.txt" || true
}
if waitlogs 'idle window'; then
  sleep 5
  metrics idle0
  cpuprofile idle "$cpu"
  metrics idle1
fi
if waitlogs 'latency phase'; then
  cpuprofile latency 8
fi
st=0
for p in 0 1; do wait "${lgs[$p]}" || st=1; done
lgs=()
for p in a b; do
  echo "== $p: $([ $p = a ] && echo "$bin_a" || echo "$bin_b")"
  grep -v '^redis-cluster' "$out/loadgen-$p.log" | grep -v 'idle window\|latency phase\|connections in' || true
  cat "$out/report-$p.txt"
done
exit $st
