#!/usr/bin/env bash
# hack/opbench/run.sh [opbench flags...]
#
# The operator benchmark of docs/benchmarks.md ("Operator"): a local control
# plane of its own (hack/local-cluster.sh, with an audit log of the
# operator's writes), enough kwok nodes for the pods, a six-node Redis
# Cluster (hack/redis-cluster.sh), the CRDs and the operator built from this
# tree (a local process with the RBAC of config/rbac/role.yaml and leader
# election, as in hack/e2e/run.sh); then bin/opbench creates OPBENCH_GATEWAYS
# PresenceGateways sharing one RedisCluster, waits for all to be Ready,
# measures an idle window and one RedisCluster flap (every Redis node killed,
# then started again), and prints its report. Everything started here is
# stopped on exit, pass or fail; the logs (operator, audit, control plane)
# are kept in OPBENCH_DIR. `make bench-operator` builds what this needs.
#
#   OPBENCH_GATEWAYS         PresenceGateways (default 500)
#   OPBENCH_REPLICAS         spec.replicas of each (default 2; kwok pods)
#   OPBENCH_OPERATOR_FLAGS   extra operator flags, e.g. "--kube-api-qps=20"
#   OPBENCH_DIR              report and logs (default /tmp/presencekit-opbench)
#   OPBENCH_OPERATOR_PORT    operator metrics; +1 is its health port
#                            (default LOCAL_CLUSTER_BASE_PORT + 8)
#   LOCAL_CLUSTER_DIR        default /tmp/presencekit-opbench-cluster
#   LOCAL_CLUSTER_BASE_PORT  default 16500 (the e2e's default is 16400)
#   LOCAL_CLUSTER_KUBE_API_QPS / _BURST   the controller-manager's and the
#                            scheduler's client rate limit (default 200/400
#                            here, so that the control plane is not what is
#                            measured; see docs/benchmarks.md)
#   REDIS_CLUSTER_BASE_PORT  default 7700
#   OPBENCH_OPERATOR_BIN / OPBENCH_BIN   the operator and opbench binaries
#                            (default bin/presence-operator, bin/opbench)
# opbench flags (bin/opbench -h) pass through, e.g. -idle 5m.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
GATEWAYS="${OPBENCH_GATEWAYS:-500}"
REPLICAS="${OPBENCH_REPLICAS:-2}"
OUT="${OPBENCH_DIR:-/tmp/presencekit-opbench}"
export LOCAL_CLUSTER_DIR="${LOCAL_CLUSTER_DIR:-/tmp/presencekit-opbench-cluster}"
export LOCAL_CLUSTER_BASE_PORT="${LOCAL_CLUSTER_BASE_PORT:-16500}"
export LOCAL_CLUSTER_AUDIT_POLICY="$ROOT/hack/opbench/audit-policy.yaml"
export LOCAL_CLUSTER_KUBE_API_QPS="${LOCAL_CLUSTER_KUBE_API_QPS:-200}"
export LOCAL_CLUSTER_KUBE_API_BURST="${LOCAL_CLUSTER_KUBE_API_BURST:-400}"
export REDIS_CLUSTER_BASE_PORT="${REDIS_CLUSTER_BASE_PORT:-7700}"
OPERATOR_PORT="${OPBENCH_OPERATOR_PORT:-$((LOCAL_CLUSTER_BASE_PORT + 8))}"
HEALTH_PORT=$((OPERATOR_PORT + 1))
K8S_VERSION="${K8S_VERSION:-1.37.2}"
KUBECTL="$ROOT/bin/k8s/$K8S_VERSION/kubectl"
OPERATOR_BIN="${OPBENCH_OPERATOR_BIN:-$ROOT/bin/presence-operator}"
OPBENCH_BIN="${OPBENCH_BIN:-$ROOT/bin/opbench}"
# Pods one kwok node takes (hack/kwok/node-ready.yaml, status.allocatable.pods).
PODS_PER_NODE=110

die() { echo "opbench: FAIL: $*" >&2; exit 1; }
log() { echo "opbench: $*" >&2; }
k() { "$KUBECTL" --kubeconfig "$LOCAL_CLUSTER_DIR/kubeconfig" "$@"; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for v in "$GATEWAYS" "$REPLICAS" "$OPERATOR_PORT"; do
  [[ "$v" =~ ^[0-9]+$ ]] || die "\"$v\" (OPBENCH_GATEWAYS / OPBENCH_REPLICAS / OPBENCH_OPERATOR_PORT): not a number"
done
for f in "$KUBECTL" "$OPERATOR_BIN" "$OPBENCH_BIN"; do
  [[ -x "$f" ]] || die "$f missing: run this through \`make bench-operator\`, which builds it"
done
if hack/local-cluster.sh status >/dev/null 2>&1; then
  die "a local cluster already runs in $LOCAL_CLUSTER_DIR: the benchmark needs one of its own (its audit log); set LOCAL_CLUSTER_DIR"
fi
{ port_free "$OPERATOR_PORT" && port_free "$HEALTH_PORT"; } || die "port $OPERATOR_PORT or $HEALTH_PORT in use: set OPBENCH_OPERATOR_PORT"

rm -rf "$OUT"
mkdir -p "$OUT"
OPERATOR_PID=""
REDIS_WAS_UP=0

operator_alive() {
  [[ -n "$OPERATOR_PID" && "$(readlink "/proc/$OPERATOR_PID/exe" 2>/dev/null)" == "$(readlink -f "$OPERATOR_BIN")" ]]
}

teardown() {
  local rc=$?
  if operator_alive; then
    kill -TERM "$OPERATOR_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while operator_alive && (( SECONDS < deadline )); do sleep 0.2; done
    operator_alive && kill -KILL "$OPERATOR_PID" 2>/dev/null || true
    log "stopped the operator (pid $OPERATOR_PID)"
  fi
  # hack/local-cluster.sh down removes its directory: keep the logs.
  [[ -d "$LOCAL_CLUSTER_DIR/logs" ]] && cp -r "$LOCAL_CLUSTER_DIR/logs" "$OUT/cluster-logs"
  hack/local-cluster.sh down || true
  (( REDIS_WAS_UP == 1 )) || hack/redis-cluster.sh down >/dev/null 2>&1 || true
  if (( rc != 0 )); then
    log "failed (exit $rc); logs in $OUT"
    [[ -f "$OUT/operator.log" ]] && tail -n 20 "$OUT/operator.log" >&2
  fi
  exit "$rc"
}
trap teardown EXIT

log "control plane in $LOCAL_CLUSTER_DIR (ports from $LOCAL_CLUSTER_BASE_PORT), controller-manager/scheduler at ${LOCAL_CLUSTER_KUBE_API_QPS} QPS"
hack/local-cluster.sh up

# Room for every pod: kwok-node-0 comes with the cluster; more of the same.
pods=$((GATEWAYS * REPLICAS))
nodes=$(( (pods + PODS_PER_NODE - 1) / PODS_PER_NODE ))
for (( i = 1; i < nodes; i++ )); do
  sed "s/kwok-node-0/kwok-node-$i/g" hack/kwok/node.yaml
  echo "---"
done | k apply -f - >/dev/null
k wait node --all --for=condition=Ready --timeout=120s >/dev/null
log "$(k get nodes --no-headers | wc -l) kwok nodes Ready for $pods pods"

if hack/redis-cluster.sh status >/dev/null 2>&1; then REDIS_WAS_UP=1; fi
hack/redis-cluster.sh up
nodes_csv=$(for i in 0 1 2 3 4 5; do printf '127.0.0.1:%s,' $((REDIS_CLUSTER_BASE_PORT + i)); done | sed 's/,$//')

# CRDs, the operator's ClusterRole bound to its token user, and its
# leader-election Role, as hack/e2e/run.sh does.
k apply --server-side -f config/crd/bases/ >/dev/null
k wait --for=condition=Established crd --all --timeout=60s >/dev/null
role="$(k apply --server-side -f config/rbac/role.yaml -o jsonpath='{.metadata.name}')"
k create clusterrolebinding presencekit-operator-bench --clusterrole="$role" --user=presence-operator >/dev/null
# /metrics is served behind authentication and authorization
# (--metrics-secure): the operator reviews the scraper's token and rights.
role="$(k apply --server-side -f config/rbac/metrics_auth_role.yaml -o jsonpath='{.metadata.name}')"
k create clusterrolebinding presencekit-operator-bench-metrics-auth --clusterrole="$role" --user=presence-operator >/dev/null
k create namespace presence-system >/dev/null
k apply --server-side -f config/rbac/leader_election_role.yaml >/dev/null
k create rolebinding presencekit-operator-bench-leader -n presence-system \
  --role=presence-operator-leader-election --user=presence-operator >/dev/null

# shellcheck disable=SC2086 # OPBENCH_OPERATOR_FLAGS is a list of flags
KUBECONFIG="$LOCAL_CLUSTER_DIR/presence-operator.kubeconfig" setsid "$OPERATOR_BIN" \
  --leader-elect --leader-election-namespace=presence-system \
  --metrics-bind-address="127.0.0.1:$OPERATOR_PORT" \
  --health-probe-bind-address="127.0.0.1:$HEALTH_PORT" \
  --gateway-image=ghcr.io/presencekit/presence-gateway:bench \
  ${OPBENCH_OPERATOR_FLAGS:-} \
  >"$OUT/operator.log" 2>&1 </dev/null &
OPERATOR_PID=$!
deadline=$((SECONDS + 60))
until [[ "$(k get lease -n presence-system presence-operator.presencekit.io -o jsonpath='{.spec.holderIdentity}' 2>/dev/null)" == *_* ]]; do
  operator_alive || die "the operator exited (log: $OUT/operator.log)"
  (( SECONDS < deadline )) || die "the operator holds no leader-election Lease after 60s (log: $OUT/operator.log)"
  sleep 0.5
done
log "operator running (pid $OPERATOR_PID) and leader; flags: ${OPBENCH_OPERATOR_FLAGS:-none}"

"$OPBENCH_BIN" -kubeconfig "$LOCAL_CLUSTER_DIR/kubeconfig" \
  -gateways "$GATEWAYS" -replicas "$REPLICAS" -redis-nodes "$nodes_csv" \
  -operator-pid "$OPERATOR_PID" -audit-log "$LOCAL_CLUSTER_DIR/logs/audit.log" \
  -metrics-url "https://127.0.0.1:$OPERATOR_PORT/metrics" \
  -flap-down "hack/redis-cluster.sh stop-all" -flap-up "hack/redis-cluster.sh start-all" \
  "$@" | tee "$OUT/report.txt"
echo "operator flags: ${OPBENCH_OPERATOR_FLAGS:-none}; controller-manager/scheduler QPS ${LOCAL_CLUSTER_KUBE_API_QPS}/${LOCAL_CLUSTER_KUBE_API_BURST}; $(nproc) cores" | tee -a "$OUT/report.txt"
