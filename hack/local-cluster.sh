#!/usr/bin/env bash
# hack/local-cluster.sh up|down|status|env
#
# A local Kubernetes control plane on loopback, with no container runtime:
#
#   etcd                     the store
#   kube-apiserver           TLS on 127.0.0.1, static token auth, RBAC
#   kube-controller-manager  Deployments get ReplicaSets and Pods, the garbage
#                            collector cascades deletions, service accounts work
#   kube-scheduler           places pods on the node
#   kwok                     one fake node (hack/kwok/node.yaml) and our Stage
#                            configs (hack/kwok/*.yaml): the node is Ready,
#                            scheduled pods become Running and Ready, deleted
#                            pods go away. No container ever runs.
#
# `up` is idempotent (a healthy cluster in the directory is left alone) and
# waits, bounded, for each part to be ready. `down` stops every process by the
# id recorded at start (checking it is still the program we started) and
# removes the directory. Binaries come from `make local-cluster-tools`
# (bin/k8s/<version>/ and bin/kwok-<version>).
#
#   LOCAL_CLUSTER_DIR        state: pki, kubeconfigs, logs, etcd data
#                            (default /tmp/presencekit-cluster)
#   LOCAL_CLUSTER_BASE_PORT  six ports from here (default 16400): etcd client,
#                            etcd peer, kube-apiserver, controller-manager,
#                            scheduler, kwok
#   LOCAL_CLUSTER_WAIT       seconds to wait for each part (default 120)
#   K8S_VERSION / K8S_BIN_DIR   as in hack/build-k8s.sh
#   KWOK                     the kwok binary (default bin/kwok-v0.8.0)
#   LOCAL_CLUSTER_AUDIT_POLICY  an audit policy file: the API server then logs
#                            what it selects to $LOCAL_CLUSTER_DIR/logs/audit.log
#                            (the operator benchmark counts writes with it)
#   LOCAL_CLUSTER_KUBE_API_QPS / LOCAL_CLUSTER_KUBE_API_BURST  client-side rate
#                            limit of the controller-manager and the scheduler
#                            (their defaults when unset: 20/30 and 50/100)
#
# The admin kubeconfig is $LOCAL_CLUSTER_DIR/kubeconfig; `env` prints
# `export KUBECONFIG=...`. Tokens for other users (the operator's e2e run)
# are in $LOCAL_CLUSTER_DIR/tokens.csv.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${LOCAL_CLUSTER_DIR:-/tmp/presencekit-cluster}"
BASE="${LOCAL_CLUSTER_BASE_PORT:-16400}"
WAIT="${LOCAL_CLUSTER_WAIT:-120}"
K8S_VERSION="${K8S_VERSION:-1.37.2}"
K8S_BIN="${K8S_BIN_DIR:-$ROOT/bin/k8s/$K8S_VERSION}"
KWOK="${KWOK:-$ROOT/bin/kwok-v0.8.0}"
AUDIT_POLICY="${LOCAL_CLUSTER_AUDIT_POLICY:-}"
KUBE_API_QPS="${LOCAL_CLUSTER_KUBE_API_QPS:-}"
KUBE_API_BURST="${LOCAL_CLUSTER_KUBE_API_BURST:-}"

ETCD_PORT=$BASE
ETCD_PEER_PORT=$((BASE + 1))
APISERVER_PORT=$((BASE + 2))
KCM_PORT=$((BASE + 3))
SCHEDULER_PORT=$((BASE + 4))
KWOK_PORT=$((BASE + 5))
# Start order; `down` stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

die() { echo "local-cluster: $*" >&2; exit 1; }
log() { echo "local-cluster: $*" >&2; }

case "$BASE" in
  ''|*[!0-9]*) die "LOCAL_CLUSTER_BASE_PORT=\"$BASE\": not a number" ;;
esac
(( BASE >= 1024 && BASE + 5 <= 65535 )) || die "LOCAL_CLUSTER_BASE_PORT=$BASE: must be in 1024..65530"
case "$WAIT" in
  ''|*[!0-9]*) die "LOCAL_CLUSTER_WAIT=\"$WAIT\": not a whole number of seconds" ;;
esac
for v in "$KUBE_API_QPS" "$KUBE_API_BURST"; do
  [[ -z "$v" || "$v" =~ ^[0-9]+$ ]] || die "LOCAL_CLUSTER_KUBE_API_QPS/BURST=\"$v\": not a whole number"
done
[[ -z "$AUDIT_POLICY" || -r "$AUDIT_POLICY" ]] || die "LOCAL_CLUSTER_AUDIT_POLICY=$AUDIT_POLICY: not a readable file"

binary() {
  case "$1" in
    kwok) echo "$KWOK" ;;
    *) echo "$K8S_BIN/$1" ;;
  esac
}

# wait_for COMPONENT WHAT CMD...: run CMD every half second until it
# succeeds, for at most $WAIT seconds. A component that exits while starting
# is started once more (its first log kept as logs/NAME.log.1 and shown):
# this has been seen once, for the controller-manager, on a loaded machine.
# A second exit, or the deadline, fails with the log's tail.
wait_for() {
  local name="$1" what="$2"; shift 2
  local deadline=$((SECONDS + WAIT)) why="" restarted=0
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then
      if (( restarted == 0 )); then
        restarted=1
        log "$name exited while starting; its log:"
        tail -n 25 "$DIR/logs/$name.log" >&2
        mv "$DIR/logs/$name.log" "$DIR/logs/$name.log.1"
        log "starting $name once more"
        restart "$name"
        continue
      fi
      why="$name exited"
    elif (( SECONDS >= deadline )); then
      why="timed out after ${WAIT}s"
    fi
    if [[ -n "$why" ]]; then
      log "$why waiting for $what (log: $DIR/logs/$name.log)"
      tail -n 25 "$DIR/logs/$name.log" >&2
      return 1
    fi
    sleep 0.5
  done
}

# alive NAME: the recorded process is running and is still the program we
# started (a recycled pid of some other program does not count).
alive() {
  local pidfile="$DIR/pids/$1.pid" pid exe
  [[ -f "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
  [[ "$exe" == "$(readlink -f "$(binary "$1")")" ]]
}

# start NAME ARGS...: start a component in its own session (so that Ctrl-C in
# the terminal that ran `make demo` does not reach it), logging to logs/NAME.log.
start() {
  local name="$1"; shift
  local bin; bin="$(binary "$name")"
  log "starting $name"
  printf '%s\0' "$@" >"$DIR/pids/$name.args"
  setsid "$bin" "$@" >"$DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$DIR/pids/$name.pid"
}

# restart NAME: start NAME again with the arguments it was started with.
restart() {
  local args=()
  mapfile -d '' args <"$DIR/pids/$1.args"
  start "$1" "${args[@]}"
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

api_ready() {
  curl -fsS --max-time 2 --cacert "$DIR/pki/ca.crt" -H "Authorization: Bearer $(admin_token)" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" | grep -q '^ok$'
}

# A component's own /healthz, served with a self-signed certificate.
healthz() {
  curl -fsSk --max-time 2 "https://127.0.0.1:$1/healthz" | grep -q '^ok$'
}

admin_token() { awk -F, '$2=="admin" {print $1}' "$DIR/tokens.csv"; }

kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$DIR/kubeconfig" "$@"; }

check_binaries() {
  local name missing=()
  for name in "${COMPONENTS[@]}" kubectl; do
    [[ -x "$(binary "$name")" ]] || missing+=("$(binary "$name")")
  done
  (( ${#missing[@]} == 0 )) || die "missing ${missing[*]}: run \`make local-cluster-tools\` first"
  command -v openssl >/dev/null || die "openssl not found: apt-get install -y openssl"
  command -v curl >/dev/null || die "curl not found: apt-get install -y curl"
}

# pki: a CA, the API server's serving certificate for 127.0.0.1 and the
# in-cluster names, and the service-account signing key pair.
make_pki() {
  local p="$DIR/pki"
  mkdir -p "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=presencekit-local-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$p/apiserver.key" -out "$p/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' >"$p/apiserver.ext"
  openssl x509 -req -in "$p/apiserver.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
    -days 30 -extfile "$p/apiserver.ext" -out "$p/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  chmod 600 "$p"/*.key
}

# tokens.csv: one random bearer token per user (token,user,uid,"groups").
make_tokens() {
  local user group
  : >"$DIR/tokens.csv"
  chmod 600 "$DIR/tokens.csv"
  while read -r user group; do
    printf '%s,%s,%s,"%s"\n' "$(openssl rand -hex 24)" "$user" "$user" "$group" >>"$DIR/tokens.csv"
  done <<'EOF'
admin system:masters
system:kube-controller-manager system:authenticated
system:kube-scheduler system:authenticated
kwok system:authenticated
presence-operator system:authenticated
EOF
}

# write_kubeconfig FILE USER: a kubeconfig for USER's token.
write_kubeconfig() {
  local file="$1" user="$2" token
  token="$(awk -F, -v u="$user" '$2==u {print $1}' "$DIR/tokens.csv")"
  [[ -n "$token" ]] || die "no token for $user in $DIR/tokens.csv"
  umask 077
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: presencekit-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$DIR/pki/ca.crt")
users:
- name: $user
  user:
    token: $token
contexts:
- name: presencekit-local
  context: {cluster: presencekit-local, user: $user}
current-context: presencekit-local
EOF
}

up() {
  check_binaries
  if alive kube-apiserver && api_ready; then
    log "already up (KUBECONFIG=$DIR/kubeconfig)"
    return 0
  fi
  if [[ -d "$DIR/pids" ]]; then
    log "a previous cluster in $DIR is not healthy: tearing it down first"
    down
  fi
  local port
  for port in "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT" "$SCHEDULER_PORT" "$KWOK_PORT"; do
    port_free "$port" || die "port $port on 127.0.0.1 is in use: stop what uses it, or set LOCAL_CLUSTER_BASE_PORT"
  done

  mkdir -p "$DIR"/{logs,pids,etcd}
  chmod 700 "$DIR" "$DIR/etcd"
  make_pki
  make_tokens
  write_kubeconfig "$DIR/kubeconfig" admin
  write_kubeconfig "$DIR/kube-controller-manager.kubeconfig" system:kube-controller-manager
  write_kubeconfig "$DIR/kube-scheduler.kubeconfig" system:kube-scheduler
  write_kubeconfig "$DIR/kwok.kubeconfig" kwok
  write_kubeconfig "$DIR/presence-operator.kubeconfig" presence-operator

  start etcd \
    --name=local --data-dir="$DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --log-level=warn
  wait_for etcd "etcd on 127.0.0.1:$ETCD_PORT" curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

  local audit=() rate=()
  if [[ -n "$AUDIT_POLICY" ]]; then
    audit=(--audit-policy-file="$(readlink -f "$AUDIT_POLICY")" --audit-log-path="$DIR/logs/audit.log")
  fi
  [[ -z "$KUBE_API_QPS" ]] || rate+=(--kube-api-qps="$KUBE_API_QPS")
  [[ -z "$KUBE_API_BURST" ]] || rate+=(--kube-api-burst="$KUBE_API_BURST")

  # --enable-aggregator-routing: an APIService (the e2e's custom metrics
  # API) is reached at its Service's endpoint, since nothing here routes
  # Service cluster IPs (no kube-proxy).
  start kube-apiserver \
    "${audit[@]}" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --endpoint-reconciler-type=none \
    --tls-cert-file="$DIR/pki/apiserver.crt" --tls-private-key-file="$DIR/pki/apiserver.key" \
    --client-ca-file="$DIR/pki/ca.crt" \
    --token-auth-file="$DIR/tokens.csv" --anonymous-auth=false \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$DIR/pki/sa.pub" --service-account-signing-key-file="$DIR/pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --enable-aggregator-routing=true \
    --profiling=false --v=1
  wait_for kube-apiserver "kube-apiserver on https://127.0.0.1:$APISERVER_PORT" api_ready

  # kwok acts as every kubelet of its nodes: nodes, their leases, pods and
  # their status, events. cluster-admin keeps this short; it is a fake node.
  kubectl_ create clusterrolebinding presencekit-kwok --clusterrole=cluster-admin --user=kwok >/dev/null

  start kube-controller-manager \
    --kubeconfig="$DIR/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$DIR/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$DIR/pki/sa.key" --root-ca-file="$DIR/pki/ca.crt" \
    "${rate[@]}" \
    --leader-elect=false --profiling=false --v=1
  start kube-scheduler \
    --kubeconfig="$DIR/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$DIR/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" \
    "${rate[@]}" \
    --leader-elect=false --profiling=false --v=1
  wait_for kube-controller-manager "kube-controller-manager /healthz on :$KCM_PORT" healthz "$KCM_PORT"
  wait_for kube-scheduler "kube-scheduler /healthz on :$SCHEDULER_PORT" healthz "$SCHEDULER_PORT"

  kubectl_ apply -f "$ROOT/hack/kwok/node.yaml" >/dev/null
  local stages=() f
  for f in "$ROOT"/hack/kwok/*.yaml; do
    [[ "$(basename "$f")" == node.yaml ]] || stages+=("--config=$f")
  done
  start kwok \
    --kubeconfig="$DIR/kwok.kubeconfig" \
    "${stages[@]}" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --server-address="127.0.0.1:$KWOK_PORT" \
    --node-ip=127.0.0.1 --cidr=10.244.0.0/16 --node-lease-duration-seconds=40
  wait_for kwok "the kwok node to be Ready" kubectl_ wait node/kwok-node-0 --for=condition=Ready --timeout=2s
  # Pods need their namespace's default ServiceAccount, which the
  # controller-manager creates; wait for it so the first apply does not race.
  wait_for kube-controller-manager "the default ServiceAccount" kubectl_ get serviceaccount default -n default

  log "up: export KUBECONFIG=$DIR/kubeconfig"
}

down() {
  local i name pid deadline
  for (( i=${#COMPONENTS[@]}-1; i>=0; i-- )); do
    name="${COMPONENTS[$i]}"
    if alive "$name"; then
      pid="$(<"$DIR/pids/$name.pid")"
      kill -TERM "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 15))
      while alive "$name" && (( SECONDS < deadline )); do sleep 0.2; done
      if alive "$name"; then
        log "$name (pid $pid) ignored SIGTERM for 15s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
      log "stopped $name (pid $pid)"
    fi
  done
  # Only remove what looks like ours: a directory with our layout.
  if [[ -d "$DIR/pids" && -f "$DIR/tokens.csv" ]]; then
    rm -rf "$DIR"
  fi
}

status() {
  local name rc=0
  for name in "${COMPONENTS[@]}"; do
    if alive "$name"; then
      echo "$name: running (pid $(<"$DIR/pids/$name.pid"))"
    else
      echo "$name: not running"; rc=1
    fi
  done
  if (( rc == 0 )) && api_ready; then
    echo "kube-apiserver: https://127.0.0.1:$APISERVER_PORT ready"
    echo "KUBECONFIG=$DIR/kubeconfig"
  else
    rc=1
  fi
  return "$rc"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) echo "export KUBECONFIG=$DIR/kubeconfig" ;;
  *) die "usage: $0 up|down|status|env (got \"${1:-}\")" ;;
esac
