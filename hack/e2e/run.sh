#!/usr/bin/env bash
# hack/e2e/run.sh e2e|demo|down
#
#   e2e   the end-to-end test: a local control plane (hack/local-cluster.sh),
#         a six-node Redis Cluster (make redis-up), the CRDs and the operator
#         built from this tree (a local process with the RBAC of
#         config/rbac/role.yaml), then a RedisCluster named by short seed
#         names, as the README's quick start does, and a PresenceGateway,
#         checked with kubectl; then the data path: two gateway processes
#         started from the Deployment's own pod template and volumes, a
#         WebSocket client and two /demo pages in headless Chromium; an HPA
#         that scales the gateways on their connection gauge, through a
#         custom metrics API e2etool serves; then a change of the
#         RedisCluster's seeds, which must restart nothing.
#         Everything it started is stopped on exit, pass or fail.
#   demo  the same environment, left running, and what to try with it.
#   down  stop what `demo` left running.
#
# `make e2e`, `make demo` and `make demo-down` build what this needs first
# (bin/: Kubernetes binaries, kwok, the gateway, the operator, e2etool).
#
#   E2E_DIR              pids and logs (default /tmp/presencekit-e2e)
#   E2E_GATEWAY_PORTS    two WebSocket ports for the local gateways (default:
#                        the first free ones from 18181)
#   E2E_METRICS_PORTS    their metrics ports (default: the first free from 19191)
#   E2E_OPERATOR_PORT    operator metrics; +1 is its health port (default: the
#                        first free pair from 18443)
#   REDIS_CLUSTER_BASE_PORT  as in hack/redis-cluster.sh (default 7000)
#   LOCAL_CLUSTER_*      as in hack/local-cluster.sh
#
# Short seed names. The RedisCluster lists its seeds as "redis-<i>.redis:<port>",
# the form the README and the chart's notes use; the operator qualifies them
# with the RedisCluster's namespace (redis-<i>.redis.<ns>.svc), for its own
# health check and for the gateways alike. In a cluster, kube-dns answers those
# names. Here there is no cluster DNS, so the operator and the gateways (and
# only they) run in a private mount namespace (unshare --mount) whose
# /etc/hosts maps exactly the qualified names to 127.0.0.1. The short names
# resolve nowhere, so the e2e fails unless both sides qualify them the same
# way; nothing outside those processes sees the mapping. (Root, or
# unprivileged user namespaces for `unshare --map-root-user`, is needed.)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
MODE="${1:-}"
E2E_DIR="${E2E_DIR:-/tmp/presencekit-e2e}"
export LOCAL_CLUSTER_DIR="${LOCAL_CLUSTER_DIR:-/tmp/presencekit-cluster}"
export REDIS_CLUSTER_BASE_PORT="${REDIS_CLUSTER_BASE_PORT:-7000}"
K8S_VERSION="${K8S_VERSION:-1.37.2}"
KUBECTL="${KUBECTL:-$ROOT/bin/k8s/$K8S_VERSION/kubectl}"
export KUBECONFIG="$LOCAL_CLUSTER_DIR/kubeconfig"
IFS=, read -r GW_PORT_1 GW_PORT_2 <<<"${E2E_GATEWAY_PORTS:-auto,auto}"
IFS=, read -r METRICS_PORT_1 METRICS_PORT_2 <<<"${E2E_METRICS_PORTS:-auto,auto}"
OPERATOR_PORT="${E2E_OPERATOR_PORT:-auto}"
GATEWAY_BIN="$ROOT/bin/presence-gateway"
OPERATOR_BIN="$ROOT/bin/presence-operator"
E2ETOOL="$ROOT/bin/e2etool"
# The e2e works in its own namespace; the demo in "chat", as in the README's "Install with Helm" example.
if [[ "$MODE" == demo || "$MODE" == down ]]; then NS=chat; else NS=presence-e2e; fi
PGW=chat
RC=presence-redis
WAIT=120s
# The seed names' mapping, and the command prefix that runs a program with it.
HOSTS_FILE="$E2E_DIR/hosts"
E2E_DNS=(unshare --mount --propagation private)
if [[ "$(id -u)" != 0 ]]; then E2E_DNS+=(--map-root-user); fi
E2E_DNS+=(-- sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$HOSTS_FILE")

die() { echo "e2e: FAIL: $*" >&2; exit 1; }
log() { echo "e2e: $*" >&2; }
step() { echo; echo "=== $*"; }
ok() { echo "ok: $*"; }
k() { "$KUBECTL" "$@"; }

for p in "$GW_PORT_1" "$GW_PORT_2" "$METRICS_PORT_1" "$METRICS_PORT_2" "$OPERATOR_PORT"; do
  [[ "$p" =~ ^[0-9]+$ || "$p" == auto ]] || die "port \"$p\" (E2E_GATEWAY_PORTS / E2E_METRICS_PORTS / E2E_OPERATOR_PORT): not a number"
done

# --- processes we start: recorded by pid, stopped by pid ----------------------

# alive NAME EXE: the pid recorded for NAME runs EXE.
alive() {
  local pidfile="$E2E_DIR/$1.pid" pid
  [[ -f "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$(readlink -f "$2")" ]]
}

stop() {
  local name="$1" exe="$2" pid deadline
  alive "$name" "$exe" || { rm -f "$E2E_DIR/$name.pid"; return 0; }
  pid="$(<"$E2E_DIR/$name.pid")"
  kill -TERM "$pid" 2>/dev/null || true
  # The gateway drains for up to SHUTDOWN_GRACE (25s by default).
  deadline=$((SECONDS + 40))
  while alive "$name" "$exe" && (( SECONDS < deadline )); do sleep 0.2; done
  if alive "$name" "$exe"; then
    log "$name (pid $pid) still running 40s after SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$E2E_DIR/$name.pid"
  log "stopped $name (pid $pid)"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port FROM [EXCEPT...]: the first port from FROM (at most 100 tried)
# that nothing listens on and is not one of EXCEPT.
free_port() {
  local p="$1"; shift
  local last=$((p + 100))
  for (( ; p < last; p++ )); do
    [[ " $* " == *" $p "* ]] && continue
    port_free "$p" && { echo "$p"; return 0; }
  done
  die "no free port in $1..$((last - 1)) on 127.0.0.1"
}

# poll WHAT SECONDS CMD...: run CMD every half second until it succeeds.
poll() {
  local what="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || die "timed out after ${secs}s waiting for $what"
    sleep 0.5
  done
}

# wait_condition COND ARGS...: kubectl wait --for=condition=COND ARGS, for
# up to 120s. kubectl wait gives up at once on an object that has no
# status.conditions yet (just created), so it is retried until the deadline.
wait_condition() {
  local cond="$1"; shift
  local deadline=$((SECONDS + 120))
  until k wait --for=condition="$cond" --timeout=10s "$@" >/dev/null 2>&1; do
    if (( SECONDS >= deadline )); then
      k wait --for=condition="$cond" --timeout=1s "$@" || true
      return 1
    fi
    sleep 0.5
  done
  echo "condition $cond met: $*"
}

# --- environment ----------------------------------------------------------------

ensure_chromium() {
  command -v chromium >/dev/null && return 0
  log "chromium not found: installing Debian's chromium package"
  if [[ "$(id -u)" != 0 ]]; then
    die "chromium is missing and this is not root: run apt-get update && apt-get install -y chromium"
  fi
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
    || die "apt-get install -y chromium failed"
}

check_binaries() {
  local f
  for f in "$KUBECTL" "$GATEWAY_BIN" "$OPERATOR_BIN" "$E2ETOOL"; do
    [[ -x "$f" ]] || die "$f missing: run this through \`make e2e\` or \`make demo\`, which build it"
  done
  [[ -d config/crd/bases ]] || die "config/crd/bases missing: the operator's CRDs (make manifests) are needed"
  [[ -f config/rbac/role.yaml ]] || die "config/rbac/role.yaml missing: the operator's ClusterRole (make manifests) is needed"
}

REDIS_WAS_UP=0
CLUSTER_WAS_UP=0
up_environment() {
  mkdir -p "$E2E_DIR"
  step "control plane (hack/local-cluster.sh) and Redis Cluster (make redis-up)"
  write_hosts
  if hack/local-cluster.sh status >/dev/null 2>&1; then CLUSTER_WAS_UP=1; fi
  hack/local-cluster.sh up
  if hack/redis-cluster.sh status >/dev/null 2>&1; then REDIS_WAS_UP=1; fi
  make --no-print-directory redis-up
  k version
  k get nodes -o wide

  step "CRDs and the operator, as a local process with its own RBAC"
  k apply --server-side -f config/crd/bases/ >/dev/null
  wait_condition Established crd --all
  ok "CRDs established: $(k get crd -o jsonpath='{.items[*].metadata.name}')"
  # The operator runs as user presence-operator (a token of
  # hack/local-cluster.sh) bound to the ClusterRole generated from its
  # +kubebuilder:rbac markers: what it may do here is what it may do in a
  # cluster.
  local role
  role="$(k apply --server-side -f config/rbac/role.yaml -o jsonpath='{.metadata.name}')"
  k create clusterrolebinding presencekit-operator-e2e --clusterrole="$role" --user=presence-operator \
    --dry-run=client -o yaml | k apply --server-side -f - >/dev/null
  ok "ClusterRole $role bound to user presence-operator"
  # Leader election as in a cluster: the Lease lives in presence-system,
  # allowed by config/rbac's leader-election Role.
  k create namespace presence-system --dry-run=client -o yaml | k apply --server-side -f - >/dev/null
  k apply --server-side -f config/rbac/leader_election_role.yaml >/dev/null
  k create rolebinding presencekit-operator-e2e-leader -n presence-system \
    --role=presence-operator-leader-election --user=presence-operator \
    --dry-run=client -o yaml | k apply --server-side -f - >/dev/null
  start_operator
  local holder="" deadline=$((SECONDS + 60))
  until [[ "$holder" == *_* ]]; do
    (( SECONDS < deadline )) || die "no leader-election Lease held in presence-system after 60s (log: $E2E_DIR/operator.log)"
    sleep 0.5
    holder="$(k get lease -n presence-system presence-operator.presencekit.io \
      -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)"
  done
  ok "leader elected: Lease presence-system/presence-operator.presencekit.io held by $holder"
}

# write_hosts: /etc/hosts as it is, plus the qualified seed names of the
# RedisCluster on 127.0.0.1, for the operator's and gateways' mount namespace.
write_hosts() {
  command -v unshare >/dev/null || die "unshare (util-linux) is needed to give the e2e's processes their own /etc/hosts"
  { cat /etc/hosts; echo "# presencekit e2e: the RedisCluster's seeds, qualified with namespace $NS"
    local i
    for i in 0 1 2 3 4 5; do echo "127.0.0.1 redis-$i.redis.$NS.svc"; done; } >"$HOSTS_FILE"
  "${E2E_DNS[@]}" getent hosts "redis-0.redis.$NS.svc" >/dev/null \
    || die "cannot run a process with its own /etc/hosts (${E2E_DNS[*]}): run as root or allow unprivileged user namespaces"
  if getent hosts redis-0.redis >/dev/null 2>&1; then die "redis-0.redis resolves on this machine: the e2e could not tell a short name from a qualified one"; fi
  ok "seed names redis-<i>.redis.$NS.svc resolve to 127.0.0.1 for the operator and the gateways only"
}

start_operator() {
  alive operator "$OPERATOR_BIN" && { log "operator already running"; return 0; }
  if [[ "$OPERATOR_PORT" == auto ]]; then
    OPERATOR_PORT="$(free_port 18443)"
    OPERATOR_HEALTH_PORT="$(free_port $((OPERATOR_PORT + 1)))"
  else
    OPERATOR_HEALTH_PORT=$((OPERATOR_PORT + 1))
    { port_free "$OPERATOR_PORT" && port_free "$OPERATOR_HEALTH_PORT"; } \
      || die "port $OPERATOR_PORT or $OPERATOR_HEALTH_PORT in use: set E2E_OPERATOR_PORT"
  fi
  # controller-runtime reads KUBECONFIG.
  # setsid and unshare exec in place: the recorded pid becomes the operator's.
  KUBECONFIG="$LOCAL_CLUSTER_DIR/presence-operator.kubeconfig" setsid "${E2E_DNS[@]}" "$OPERATOR_BIN" \
    --leader-elect --leader-election-namespace=presence-system \
    --metrics-bind-address="127.0.0.1:$OPERATOR_PORT" \
    --health-probe-bind-address="127.0.0.1:$OPERATOR_HEALTH_PORT" \
    --gateway-image=ghcr.io/presencekit/presence-gateway:e2e \
    >"$E2E_DIR/operator.log" 2>&1 </dev/null &
  echo $! >"$E2E_DIR/operator.pid"
  local deadline=$((SECONDS + 60))
  until curl -fsS --max-time 2 "http://127.0.0.1:$OPERATOR_HEALTH_PORT/readyz" >/dev/null 2>&1; do
    kill -0 "$(<"$E2E_DIR/operator.pid")" 2>/dev/null || die "the operator exited (log: $E2E_DIR/operator.log)"
    (( SECONDS < deadline )) || die "the operator's /readyz on :$OPERATOR_HEALTH_PORT not ready after 60s"
    sleep 0.5
  done
  ok "operator running (pid $(<"$E2E_DIR/operator.pid"), log $E2E_DIR/operator.log)"
}

# redis_nodes_yaml [N]: the first N (6) seeds as the user writes them, short
# names: "redis-0.redis:7000",...
redis_nodes_yaml() {
  local i
  for (( i=0; i<${1:-6}; i++ )); do printf '"redis-%s.redis:%s",' "$i" $((REDIS_CLUSTER_BASE_PORT + i)); done | sed 's/,$//'
}

apply_resources() {
  step "a RedisCluster and a PresenceGateway in namespace $NS"
  k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
  k apply -f - <<EOF
apiVersion: presence.presencekit.io/v1alpha1
kind: RedisCluster
metadata: {name: $RC, namespace: $NS}
spec:
  external:
    nodes: [$(redis_nodes_yaml)]
---
apiVersion: presence.presencekit.io/v1alpha1
kind: PresenceGateway
metadata: {name: $PGW, namespace: $NS}
spec:
  redis: {clusterRef: {name: $RC}}
  replicas: 2
  presence: {ttl: 30s, heartbeatInterval: 5s}
  service: {type: ClusterIP, port: 80}
EOF
  wait_condition Ready -n "$NS" "rediscluster/$RC" \
    || { k describe -n "$NS" "rediscluster/$RC"; die "RedisCluster $RC not Ready"; }
  ok "RedisCluster Ready: $(k get -n "$NS" "rediscluster/$RC" -o jsonpath='{.status.clusterState} {.status.slotsCovered} slots, nodes {.status.nodes}')"
  wait_condition Ready -n "$NS" "presencegateway/$PGW" \
    || { k describe -n "$NS" "presencegateway/$PGW"; die "PresenceGateway $PGW not Ready"; }
  ok "PresenceGateway Ready"
  k get -n "$NS" pgw "$PGW"
}

# --- checks -----------------------------------------------------------------------

jp() { k get -n "$NS" "$1" -o jsonpath="$2"; }

# expect_eq WHAT GOT WANT
expect_eq() { [[ "$2" == "$3" ]] || die "$1: got \"$2\", want \"$3\""; ok "$1 = $3"; }

template_env() { jp "deploy/$PGW" "{.spec.template.spec.containers[0].env[?(@.name==\"$1\")].value}"; }

check_owned_objects() {
  step "what the operator owns: Deployment, Service, PodDisruptionBudget (no HPA without autoscaling)"
  local uid kind
  uid="$(jp "pgw/$PGW" '{.metadata.uid}')"
  for kind in deployment service poddisruptionbudget; do
    expect_eq "$kind/$PGW controller owner" "$(jp "$kind/$PGW" '{.metadata.ownerReferences[?(@.controller==true)].uid}')" "$uid"
  done
  k rollout status -n "$NS" "deploy/$PGW" --timeout="$WAIT"
  expect_eq "deployment replicas" "$(jp "deploy/$PGW" '{.spec.replicas}')" 2
  expect_eq "deployment readyReplicas (pods Running through kwok)" "$(jp "deploy/$PGW" '{.status.readyReplicas}')" 2
  expect_eq "rolling update maxUnavailable" "$(jp "deploy/$PGW" '{.spec.strategy.rollingUpdate.maxUnavailable}')" 0
  expect_eq "readiness probe" "$(jp "deploy/$PGW" '{.spec.template.spec.containers[0].readinessProbe.httpGet.path}')" /readyz
  expect_eq "service port" "$(jp "svc/$PGW" '{.spec.ports[0].port}')" 80
  expect_eq "PDB maxUnavailable" "$(jp "pdb/$PGW" '{.spec.maxUnavailable}')" 1
  if k get -n "$NS" "hpa/$PGW" >/dev/null 2>&1; then die "an HPA exists although spec.autoscaling is not set"; fi
  ok "no HPA"
  expect_eq "configmap/$PGW-redis-nodes controller owner" "$(jp "configmap/$PGW-redis-nodes" '{.metadata.ownerReferences[?(@.controller==true)].uid}')" "$uid"
  expect_eq "seed nodes in configmap/$PGW-redis-nodes (qualified)" "$(configmap_nodes)" "$(redis_nodes_csv 6)"
  expect_eq "REDIS_NODES_FILE in the pod template" "$(template_env REDIS_NODES_FILE)" /etc/presence/redis-nodes/nodes
  expect_eq "REDIS_NODES in the pod template (none: the seeds are mounted)" "$(template_env REDIS_NODES)" ""
  expect_eq "the seeds volume" "$(jp "deploy/$PGW" '{.spec.template.spec.volumes[?(@.name=="redis-nodes")].configMap.name}')" "$PGW-redis-nodes"
  expect_eq "status.redisNodes" "$(jp "pgw/$PGW" '{.status.redisNodes[*]}')" "$(redis_nodes_csv 6 | tr , ' ')"
  expect_eq "status.readyReplicas" "$(jp "pgw/$PGW" '{.status.readyReplicas}')" 2
  expect_eq "status.endpoint" "$(jp "pgw/$PGW" '{.status.endpoint}')" "ws://$PGW.$NS.svc:80"
  k get -n "$NS" deploy,rs,pods,svc,pdb -o wide
}

# redis_nodes_csv N: the first N seeds as the operator qualifies them, comma-separated.
redis_nodes_csv() {
  local i
  for (( i=0; i<$1; i++ )); do printf 'redis-%s.redis.%s.svc:%s,' "$i" "$NS" $((REDIS_CLUSTER_BASE_PORT + i)); done | sed 's/,$//'
}

# configmap_nodes: the seeds in the gateway's ConfigMap, comma-separated.
configmap_nodes() { jp "configmap/$PGW-redis-nodes" '{.data.nodes}' | paste -sd, -; }

seeds_are() { [[ "$(configmap_nodes)" == "$1" ]]; }

serving_rs() { k get rs -n "$NS" -l "$(selector)" -o jsonpath='{.items[?(@.status.replicas>0)].metadata.name}'; }

# metric_is PORT NAME VALUE: a gateway's metric (by its metrics port) has VALUE.
metric_is() { [[ "$(curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}')" == "$3" ]]; }

check_redis_change_no_restart() {
  step "a change of the RedisCluster's seeds restarts nothing: the ConfigMap changes, the gateways follow it"
  local gen rs pid1 pid2 i
  gen="$(jp "deploy/$PGW" '{.metadata.generation}')"
  rs="$(serving_rs)"
  pid1="$(<"$E2E_DIR/gateway-1.pid")"; pid2="$(<"$E2E_DIR/gateway-2.pid")"
  k patch -n "$NS" "rediscluster/$RC" --type=merge -p "{\"spec\":{\"external\":{\"nodes\":[$(redis_nodes_yaml 3)]}}}"
  poll "configmap/$PGW-redis-nodes to follow the RedisCluster" 60 seeds_are "$(redis_nodes_csv 3)"
  ok "configmap/$PGW-redis-nodes = $(redis_nodes_csv 3)"
  poll "status.redisNodes to follow (the reconcile is over)" 60 bash -c \
    "[[ \"\$($KUBECTL get -n $NS pgw/$PGW -o jsonpath='{.status.redisNodes[*]}')\" == '$(redis_nodes_csv 3 | tr , ' ')' ]]"
  expect_eq "Deployment generation (no new pod template)" "$(jp "deploy/$PGW" '{.metadata.generation}')" "$gen"
  expect_eq "serving ReplicaSet (no pod replaced)" "$(serving_rs)" "$rs"
  # The kubelet's part: it rewrites the mounted ConfigMap in place.
  k get -n "$NS" configmaps,secrets -o json >"$E2E_DIR/objects.json"
  for i in 1 2; do
    "${E2E_DNS[@]}" "$E2ETOOL" run-pod -sync-volumes -deployment "$E2E_DIR/deployment.json" -objects "$E2E_DIR/objects.json" \
      -pod-name "$PGW-local-$i" -pidfile "$E2E_DIR/gateway-$i.pid"
  done
  local mport
  for i in 1 2; do
    mport="METRICS_PORT_$i"
    poll "gateway $i to bootstrap from the new seeds" 60 metric_is "${!mport}" presence_gateway_redis_reseeds_total 1
    grep -q "Redis seed nodes changed" "$E2E_DIR/gateway-$i.log" || die "gateway $i's log does not say it moved to the new seeds"
    ok "gateway $i: presence_gateway_redis_reseeds_total = 1, $(grep -o '"nodes":"[^"]*"' "$E2E_DIR/gateway-$i.log" | tail -n 1)"
  done
  expect_eq "gateway pids (no restart)" "$(<"$E2E_DIR/gateway-1.pid") $(<"$E2E_DIR/gateway-2.pid")" "$pid1 $pid2"
  alive gateway-1 "$GATEWAY_BIN" && alive gateway-2 "$GATEWAY_BIN" || die "a gateway process is gone"
  step "presence still crosses the two gateways, on the new seeds"
  "$E2ETOOL" presence -gateways "http://127.0.0.1:$GW_PORT_1,http://127.0.0.1:$GW_PORT_2"
  wait_condition Ready -n "$NS" "rediscluster/$RC" \
    || { k describe -n "$NS" "rediscluster/$RC"; die "RedisCluster $RC not Ready with its new seeds"; }
  wait_condition Ready -n "$NS" "pgw/$PGW" \
    || { k describe -n "$NS" "pgw/$PGW"; die "PresenceGateway $PGW not Ready after the seeds change"; }
}

selector() { jp "deploy/$PGW" '{.spec.selector.matchLabels}' | tr -d '{}"' | tr ':' '='; }

check_scale() {
  step "kubectl scale through the scale subresource"
  k scale -n "$NS" "pgw/$PGW" --replicas=3
  poll "the Deployment to have 3 replicas" 60 bash -c "[[ \"\$($KUBECTL get -n $NS deploy/$PGW -o jsonpath='{.spec.replicas}')\" == 3 ]]"
  k rollout status -n "$NS" "deploy/$PGW" --timeout="$WAIT"
  poll "status.readyReplicas = 3" 60 bash -c "[[ \"\$($KUBECTL get -n $NS pgw/$PGW -o jsonpath='{.status.readyReplicas}')\" == 3 ]]"
  ok "3 pods Running and Ready; status.readyReplicas = 3"
  wait_condition Ready -n "$NS" "pgw/$PGW"
  expect_eq "Ready condition's observedGeneration after the scale" \
    "$(jp "pgw/$PGW" '{.status.conditions[?(@.type=="Ready")].observedGeneration}')" "$(jp "pgw/$PGW" '{.metadata.generation}')"
  k get -n "$NS" pgw "$PGW"
}

check_autoscaling() {
  step "spec.autoscaling brings an HPA; removing it removes the HPA"
  k patch -n "$NS" "pgw/$PGW" --type=merge -p '{"spec":{"autoscaling":{"minReplicas":2,"maxReplicas":5,"targetCPUUtilizationPercentage":70}}}'
  poll "hpa/$PGW" 60 k get -n "$NS" "hpa/$PGW"
  expect_eq "HPA min/max" "$(jp "hpa/$PGW" '{.spec.minReplicas}/{.spec.maxReplicas}')" "2/5"
  expect_eq "HPA target" "$(jp "hpa/$PGW" '{.spec.scaleTargetRef.kind}/{.spec.scaleTargetRef.name}')" "Deployment/$PGW"
  k patch -n "$NS" "pgw/$PGW" --type=merge -p '{"spec":{"autoscaling":null}}'
  k wait -n "$NS" "hpa/$PGW" --for=delete --timeout=60s >/dev/null 2>&1 || true
  if k get -n "$NS" "hpa/$PGW" >/dev/null 2>&1; then die "hpa/$PGW still there after spec.autoscaling was removed"; fi
  ok "HPA removed with spec.autoscaling"
}

check_drift() {
  step "drift is corrected: an edited Deployment is put back"
  local image
  image="$(jp "deploy/$PGW" '{.spec.template.spec.containers[0].image}')"
  k set image -n "$NS" "deploy/$PGW" "*=example.invalid/tampered:1" >/dev/null
  poll "the operator to restore image $image" 60 bash -c "[[ \"\$($KUBECTL get -n $NS deploy/$PGW -o jsonpath='{.spec.template.spec.containers[0].image}')\" == '$image' ]]"
  ok "image restored to $image"
  k rollout status -n "$NS" "deploy/$PGW" --timeout="$WAIT"
}

start_gateways() {
  step "the data path: two gateways started from the Deployment's own pod template"
  k get -n "$NS" "deploy/$PGW" -o json >"$E2E_DIR/deployment.json"
  # What its volumes mount (the seeds ConfigMap; Secrets when it has them).
  k get -n "$NS" configmaps,secrets -o json >"$E2E_DIR/objects.json"
  local i port mport
  for i in 1 2; do
    alive "gateway-$i" "$GATEWAY_BIN" && stop "gateway-$i" "$GATEWAY_BIN"
  done
  [[ "$GW_PORT_1" != auto ]] || GW_PORT_1="$(free_port 18181)"
  [[ "$GW_PORT_2" != auto ]] || GW_PORT_2="$(free_port $((GW_PORT_1 + 1)) "$GW_PORT_1")"
  [[ "$METRICS_PORT_1" != auto ]] || METRICS_PORT_1="$(free_port 19191 "$GW_PORT_1" "$GW_PORT_2")"
  [[ "$METRICS_PORT_2" != auto ]] || METRICS_PORT_2="$(free_port $((METRICS_PORT_1 + 1)) "$GW_PORT_1" "$GW_PORT_2" "$METRICS_PORT_1")"
  for i in 1 2; do
    port="GW_PORT_$i"; mport="METRICS_PORT_$i"
    { port_free "${!port}" && port_free "${!mport}"; } || die "port ${!port} or ${!mport} in use: set E2E_GATEWAY_PORTS / E2E_METRICS_PORTS"
    bash -c "$(run_pod_cmd "$i")"
  done
}

# run_pod_cmd I: the command that starts gateway I from the pod template
# (also given to the browser check, which restarts gateway 1), with the
# seed names' mapping (see the header).
run_pod_cmd() {
  local port="GW_PORT_$1" mport="METRICS_PORT_$1"
  printf '%q ' "${E2E_DNS[@]}" "$E2ETOOL" run-pod -deployment "$E2E_DIR/deployment.json" -objects "$E2E_DIR/objects.json" -binary "$GATEWAY_BIN" \
    -pod-name "$PGW-local-$1" -ws-port "${!port}" -metrics-port "${!mport}" \
    -log "$E2E_DIR/gateway-$1.log" -pidfile "$E2E_DIR/gateway-$1.pid"
}

check_data_path() {
  step "presence crosses the two gateways (WebSocket client)"
  "$E2ETOOL" presence -gateways "http://127.0.0.1:$GW_PORT_1,http://127.0.0.1:$GW_PORT_2"
  step "the /demo page on each gateway, in headless Chromium"
  ensure_chromium
  "$E2ETOOL" browser -gateways "http://127.0.0.1:$GW_PORT_1,http://127.0.0.1:$GW_PORT_2" \
    -chromium "$(command -v chromium)" -screenshot "$E2E_DIR/demo-watcher.png" \
    -restart-pidfile "$E2E_DIR/gateway-1.pid" -restart-cmd "$(run_pod_cmd 1)"
}

# check_hpa_on_connections: the HPA of spec.autoscaling.targetConnectionsPerPod,
# computed by the real kube-controller-manager from the gateways' real
# connection gauge. There is no Prometheus here: e2etool metrics-adapter
# serves custom.metrics.k8s.io (an APIService the aggregator routes to its
# endpoint, a non-loopback address of this machine), each kwok pod's value
# being one of the two gateway processes' presence_gateway_connections.
check_hpa_on_connections() {
  step "the HPA scales the gateways on their connection gauge (custom metrics API)"
  local ip port
  ip="$(ip -4 -o addr show scope global | awk '{sub(/\/.*/, "", $4); print $4; exit}')"
  [[ -n "$ip" ]] || die "no non-loopback IPv4 address: the custom metrics APIService needs one (EndpointSlices refuse loopback)"
  port="$(free_port 19443)"
  "$E2ETOOL" metrics-adapter -listen "$ip:$port" -kubeconfig "$KUBECONFIG" \
    -gateway-metrics "http://127.0.0.1:$METRICS_PORT_1/metrics,http://127.0.0.1:$METRICS_PORT_2/metrics" \
    -pidfile "$E2E_DIR/metrics-adapter.pid" >"$E2E_DIR/metrics-adapter.log" 2>&1 &
  poll "metrics-adapter on $ip:$port" 20 curl -fsSk "https://$ip:$port/healthz"
  k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: e2e-custom-metrics, namespace: $NS}
spec:
  ports: [{name: https, port: 443, targetPort: $port}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: e2e-custom-metrics
  namespace: $NS
  labels: {kubernetes.io/service-name: e2e-custom-metrics}
addressType: IPv4
ports: [{name: https, port: $port, protocol: TCP}]
endpoints: [{addresses: ["$ip"], conditions: {ready: true}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta2.custom.metrics.k8s.io}
spec:
  group: custom.metrics.k8s.io
  version: v1beta2
  service: {namespace: $NS, name: e2e-custom-metrics, port: 443}
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
YAML
  wait_condition Available apiservice/v1beta2.custom.metrics.k8s.io
  poll "the custom metrics API through the aggregator" 30 k get --raw "/apis/custom.metrics.k8s.io/v1beta2/namespaces/$NS/pods/*/presence_gateway_connections"
  ok "custom.metrics.k8s.io/v1beta2 served through the API server"

  "$E2ETOOL" hold -n 40 -gateways "http://127.0.0.1:$GW_PORT_1,http://127.0.0.1:$GW_PORT_2" \
    -pidfile "$E2E_DIR/hold.pid" >"$E2E_DIR/hold.log" 2>&1 &
  poll "40 connections held open" 30 grep -q 'connections open' "$E2E_DIR/hold.log"
  ok "$(cat "$E2E_DIR/hold.log")"

  # 20 connections per gateway against a target of 5 per pod: the HPA
  # wants 8 pods and is capped at maxReplicas.
  k patch -n "$NS" "pgw/$PGW" --type=merge -p '{"spec":{"replicas":2,"autoscaling":{"minReplicas":2,"maxReplicas":4,"targetConnectionsPerPod":5}}}'
  poll "hpa/$PGW" 60 k get -n "$NS" "hpa/$PGW"
  poll "the HPA to scale deploy/$PGW to 4 on connections" 120 \
    bash -c "[[ \"\$($KUBECTL get -n $NS deploy/$PGW -o jsonpath='{.spec.replicas}')\" == 4 ]]"
  expect_eq "HPA's current value of $PGW's connections metric (per pod, of 40 over 2 gateways)" \
    "$(jp "hpa/$PGW" '{.status.currentMetrics[0].pods.current.averageValue}')" "20"
  k rollout status -n "$NS" "deploy/$PGW" --timeout="$WAIT"
  poll "pgw status.replicas = 4" 60 bash -c "[[ \"\$($KUBECTL get -n $NS pgw/$PGW -o jsonpath='{.status.replicas}')\" == 4 ]]"
  poll "the Autoscaling condition from the HPA" 60 bash -c \
    "[[ \"\$($KUBECTL get -n $NS pgw/$PGW -o jsonpath='{.status.conditions[?(@.type==\"Autoscaling\")].status}')\" == True ]]"
  ok "deploy/$PGW scaled to 4 by the HPA on presence_gateway_connections; Autoscaling: $(jp "pgw/$PGW" '{.status.conditions[?(@.type=="Autoscaling")].reason}')"

  stop hold "$E2ETOOL"
  k patch -n "$NS" "pgw/$PGW" --type=merge -p '{"spec":{"autoscaling":null}}'
  k wait -n "$NS" "hpa/$PGW" --for=delete --timeout=60s >/dev/null 2>&1 || true
  # Back to spec.replicas, settled, before the next step counts generations.
  poll "deploy/$PGW back to spec.replicas (2)" 60 \
    bash -c "[[ \"\$($KUBECTL get -n $NS deploy/$PGW -o jsonpath='{.spec.replicas}')\" == 2 ]]"
  k rollout status -n "$NS" "deploy/$PGW" --timeout="$WAIT"
  wait_condition Ready -n "$NS" "pgw/$PGW"
  k delete apiservice v1beta2.custom.metrics.k8s.io --wait=false >/dev/null
  k delete -n "$NS" --ignore-not-found service/e2e-custom-metrics endpointslice/e2e-custom-metrics >/dev/null
  stop metrics-adapter "$E2ETOOL"
  ok "autoscaling removed, the custom metrics API gone"
}

check_deletion_cascades() {
  step "deleting the PresenceGateway deletes what it owns (garbage collector)"
  k delete -n "$NS" "pgw/$PGW" --wait=true --timeout=60s
  local obj
  for obj in "deployment/$PGW" "service/$PGW" "poddisruptionbudget/$PGW" "configmap/$PGW-redis-nodes"; do
    k wait -n "$NS" "$obj" --for=delete --timeout=60s >/dev/null 2>&1 || true
    if k get -n "$NS" "$obj" >/dev/null 2>&1; then die "$obj still exists 60s after its PresenceGateway was deleted"; fi
    ok "$obj deleted"
  done
  poll "the gateway pods to be gone" 60 bash -c "[[ -z \"\$($KUBECTL get pods -n $NS -o name)\" ]]"
  ok "no pods left in $NS"
}

# --- teardown -------------------------------------------------------------------

teardown() {
  stop hold "$E2ETOOL"
  stop metrics-adapter "$E2ETOOL"
  stop gateway-1 "$GATEWAY_BIN"
  stop gateway-2 "$GATEWAY_BIN"
  stop operator "$OPERATOR_BIN"
  if (( CLUSTER_WAS_UP == 0 )); then hack/local-cluster.sh down || true; fi
  if (( REDIS_WAS_UP == 0 )); then make --no-print-directory redis-down || true; fi
}

# show_failure RC: the tails of our logs, and a copy of the control plane's
# logs (hack/local-cluster.sh down removes its directory) in $E2E_DIR.
show_failure() {
  echo
  log "failed (exit $1); logs in $E2E_DIR (control plane: $E2E_DIR/cluster-logs):"
  local f
  for f in "$E2E_DIR"/operator.log "$E2E_DIR"/gateway-*.log; do
    [[ -f "$f" ]] && { echo "--- tail $f" >&2; tail -n 20 "$f" >&2; }
  done
  if [[ -d "$LOCAL_CLUSTER_DIR/logs" ]]; then
    mkdir -p "$E2E_DIR"
    rm -rf "$E2E_DIR/cluster-logs"
    cp -r "$LOCAL_CLUSTER_DIR/logs" "$E2E_DIR/cluster-logs"
  fi
}

on_exit() {
  local rc=$?
  if (( rc != 0 )); then show_failure "$rc"; fi
  teardown
  exit "$rc"
}

case "$MODE" in
  e2e)
    start=$SECONDS
    check_binaries
    if hack/local-cluster.sh status >/dev/null 2>&1; then
      die "a local cluster is already running in $LOCAL_CLUSTER_DIR (make demo?): stop it with \`make demo-down\` first"
    fi
    # Logs of an earlier run would only confuse.
    rm -rf "$E2E_DIR"
    trap on_exit EXIT
    up_environment
    apply_resources
    check_owned_objects
    check_scale
    check_autoscaling
    check_drift
    start_gateways
    check_data_path
    check_hpa_on_connections
    check_redis_change_no_restart
    check_deletion_cascades
    echo
    echo "e2e: PASS in $((SECONDS - start))s"
    ;;
  demo)
    check_binaries
    # On failure, leave nothing half-started behind.
    trap 'rc=$?; if (( rc != 0 )); then show_failure "$rc"; teardown; fi' EXIT
    up_environment
    # What `down` needs to know to undo exactly this (kept from the first
    # `make demo` when it is run again).
    [[ -f "$E2E_DIR/demo.env" ]] || printf 'REDIS_CLUSTER_BASE_PORT=%s\nREDIS_WAS_UP=%s\n' "$REDIS_CLUSTER_BASE_PORT" "$REDIS_WAS_UP" >"$E2E_DIR/demo.env"
    apply_resources
    start_gateways
    cat <<EOF

The demo is running: a local control plane, a six-node Redis Cluster, the
operator, PresenceGateway $NS/$PGW, and two gateways started from its pod template.

  export KUBECONFIG=$KUBECONFIG PATH=$(dirname "$KUBECTL"):\$PATH
  kubectl get pgw -A                       # READY, REPLICAS, REDIS, ENDPOINT, EXTERNAL
  kubectl describe pgw -n $NS $PGW         # conditions and events
  kubectl get deploy,rs,pods,svc,pdb -n $NS
  kubectl scale pgw -n $NS $PGW --replicas=3

Open the live presence page on each gateway, as two people who watch each other:

  http://127.0.0.1:$GW_PORT_1/demo/?userId=alice&watch=bob,carol
  http://127.0.0.1:$GW_PORT_2/demo/?userId=bob&watch=alice,carol

Logs: $E2E_DIR (operator, gateways), $LOCAL_CLUSTER_DIR/logs (control plane).
Stop everything with: make demo-down
EOF
    ;;
  down)
    if [[ -f "$E2E_DIR/demo.env" ]]; then
      REDIS_CLUSTER_BASE_PORT="$(sed -n 's/^REDIS_CLUSTER_BASE_PORT=\([0-9]*\)$/\1/p' "$E2E_DIR/demo.env")"
      REDIS_WAS_UP="$(sed -n 's/^REDIS_WAS_UP=\([01]\)$/\1/p' "$E2E_DIR/demo.env")"
      export REDIS_CLUSTER_BASE_PORT="${REDIS_CLUSTER_BASE_PORT:-7000}" REDIS_WAS_UP="${REDIS_WAS_UP:-0}"
    fi
    teardown
    rm -f "$E2E_DIR/demo.env"
    ;;
  *)
    die "usage: $0 e2e|demo|down (got \"$MODE\")"
    ;;
esac
