#!/usr/bin/env bash
# hack/redis-cluster.sh up|down|status|restart-node|stop-node
#
# A throwaway six-node Redis Cluster (three masters, three replicas) on
# loopback, from Debian's redis-server, for the tests and the load tool.
#
#   REDIS_CLUSTER_BASE_PORT  first port (default 7000); nodes use BASE..BASE+5
#   REDIS_CLUSTER_HOST       bind address (default 127.0.0.1)
#   REDIS_CLUSTER_DIR        work dir (default /tmp/presencekit-redis-<base port>)
#   REDIS_CLUSTER_WAIT       seconds to wait for cluster_state:ok (default 60)
#   REDIS_CLUSTER_PASSWORD   if set, every node requires it (requirepass for the
#                            default user, masterauth between nodes)
#   REDIS_CLUSTER_TLS_DIR    if set, a directory holding cert.pem, key.pem and
#                            ca.pem: the nodes then speak only TLS (clients, the
#                            cluster bus and replication), without client certs
#
# Nothing outlives `down`: no RDB/AOF (--save '' --appendonly no), the node
# config files and logs live in the work dir, which `down` removes. `up` is
# idempotent: a healthy cluster on those ports is left alone.
#
# Extra verbs, used by the failover tests:
#   stop-node PORT     SIGKILL one node (like a crashed master)
#   start-node PORT    start it again with its old nodes.conf (it rejoins)
#   stop-all / start-all   kill every node / start them again, keeping the
#                      cluster config, to simulate "Redis fully down and back"
#   free-base          print a base port whose six ports and their bus ports
#                      are free right now (for tests that start clusters of
#                      their own, so that two runs on one machine don't collide)
set -euo pipefail

BASE="${REDIS_CLUSTER_BASE_PORT:-7000}"
HOST="${REDIS_CLUSTER_HOST:-127.0.0.1}"
DIR="${REDIS_CLUSTER_DIR:-/tmp/presencekit-redis-${BASE}}"
WAIT="${REDIS_CLUSTER_WAIT:-60}"
PORTS=()
for i in 0 1 2 3 4 5; do PORTS+=("$((BASE + i))"); done

die() { echo "redis-cluster: $*" >&2; exit 1; }
log() { echo "redis-cluster: $*" >&2; }

case "$BASE" in
  ''|*[!0-9]*) die "REDIS_CLUSTER_BASE_PORT=\"$BASE\": not a number" ;;
esac
# Cluster bus ports are port+10000, so the base must leave room for both.
if (( BASE < 1024 || BASE + 5 + 10000 > 65535 )); then
  die "REDIS_CLUSTER_BASE_PORT=$BASE: must be in 1024..55530 (bus ports are +10000)"
fi

ensure_installed() {
  if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    return
  fi
  log "installing redis-server and redis-tools (apt-get)"
  local sudo=""
  if (( EUID != 0 )); then sudo="sudo"; fi
  $sudo apt-get update >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y redis-server redis-tools >&2
  command -v redis-server >/dev/null || die "redis-server still missing after apt-get install"
}

PASS="${REDIS_CLUSTER_PASSWORD:-}"
AUTH_ARGS=()
SERVER_AUTH=()
if [[ -n "$PASS" ]]; then
  AUTH_ARGS=(-a "$PASS" --no-auth-warning)
  SERVER_AUTH=(--requirepass "$PASS" --masterauth "$PASS")
fi

TLS_DIR="${REDIS_CLUSTER_TLS_DIR:-}"
TLS_CLI=()
if [[ -n "$TLS_DIR" ]]; then
  for f in cert.pem key.pem ca.pem; do
    [[ -r "$TLS_DIR/$f" ]] || die "REDIS_CLUSTER_TLS_DIR=$TLS_DIR: $f missing"
  done
  TLS_CLI=(--tls --cacert "$TLS_DIR/ca.pem")
fi

# port_args PORT: the listening options of one node.
port_args() {
  if [[ -n "$TLS_DIR" ]]; then
    echo --port 0 --tls-port "$1" --tls-cluster yes --tls-replication yes \
      --tls-cert-file "$TLS_DIR/cert.pem" --tls-key-file "$TLS_DIR/key.pem" \
      --tls-ca-cert-file "$TLS_DIR/ca.pem" --tls-auth-clients no
  else
    echo --port "$1"
  fi
}

cli() { redis-cli "${TLS_CLI[@]}" "${AUTH_ARGS[@]}" -h "$HOST" -p "$1" "${@:2}"; }

# alive PORT: the node at PORT answers PING.
alive() { [[ "$(cli "$1" ping 2>/dev/null)" == "PONG" ]]; }

# our_pid PORT: the pid of the redis-server we started for PORT, if running.
our_pid() {
  local f="$DIR/$1/redis.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

start_node() {
  local port="$1"
  mkdir -p "$DIR/$port"
  if our_pid "$port" >/dev/null; then return; fi
  if alive "$port"; then
    die "port $port already has a Redis we did not start (no pid in $DIR/$port); stop it or set REDIS_CLUSTER_BASE_PORT"
  fi
  # No persistence at all; the cluster config file lives in the work dir so
  # that `down` (rm -rf) leaves nothing behind.
  # shellcheck disable=SC2046 # port_args is word-split on purpose (no spaces in paths)
  redis-server $(port_args "$port") --bind "$HOST" --protected-mode no \
    --cluster-enabled yes --cluster-config-file "$DIR/$port/nodes.conf" \
    --cluster-node-timeout 2000 \
    --cluster-require-full-coverage no \
    --cluster-allow-reads-when-down no \
    --dir "$DIR/$port" --save '' --appendonly no \
    --daemonize yes --pidfile "$DIR/$port/redis.pid" \
    --logfile "$DIR/$port/redis.log" --loglevel warning \
    --maxclients 10000 "${SERVER_AUTH[@]}" >/dev/null
}

wait_alive() {
  local port="$1" deadline=$((SECONDS + 10))
  until alive "$port"; do
    (( SECONDS < deadline )) || die "node $port did not answer PING within 10s (log: $DIR/$port/redis.log)"
    sleep 0.1
  done
}

cluster_ok() {
  local port="$1"
  cli "$port" cluster info 2>/dev/null | tr -d '\r' | grep -q '^cluster_state:ok$'
}

# all_ok: every node reports cluster_state:ok, sees six known nodes of which
# three are replicas, and every replica's link to its master is up (so a
# CLUSTER FAILOVER right after `up` can complete).
all_ok() {
  local p
  for p in "${PORTS[@]}"; do
    cluster_ok "$p" || return 1
    cli "$p" cluster info 2>/dev/null | tr -d '\r' | grep -q '^cluster_known_nodes:6$' || return 1
    [[ "$(cli "$p" cluster nodes 2>/dev/null | grep -cE '[ ,]slave ')" == 3 ]] || return 1
    if cli "$p" role 2>/dev/null | head -1 | grep -q slave; then
      cli "$p" info replication 2>/dev/null | tr -d '\r' | grep -q '^master_link_status:up$' || return 1
    fi
  done
}

wait_ok() {
  local deadline=$((SECONDS + WAIT))
  until all_ok; do
    if (( SECONDS >= deadline )); then
      for p in "${PORTS[@]}"; do echo "--- $p"; cli "$p" cluster info 2>&1 | head -3; done >&2
      die "cluster on ports ${PORTS[0]}-${PORTS[5]} not ok after ${WAIT}s"
    fi
    sleep 0.2
  done
}

# formed: node BASE already belongs to a cluster with slots assigned.
formed() {
  cli "${PORTS[0]}" cluster info 2>/dev/null | tr -d '\r' | grep -q '^cluster_slots_assigned:16384$'
}

up() {
  ensure_installed
  mkdir -p "$DIR"
  local p
  for p in "${PORTS[@]}"; do start_node "$p"; done
  for p in "${PORTS[@]}"; do wait_alive "$p"; done
  if ! formed; then
    local addrs=()
    for p in "${PORTS[@]}"; do addrs+=("$HOST:$p"); done
    log "creating cluster ${addrs[*]}"
    redis-cli "${TLS_CLI[@]}" "${AUTH_ARGS[@]}" --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/create.log" 2>&1 \
      || { cat "$DIR/create.log" >&2; die "redis-cli --cluster create failed"; }
  fi
  wait_ok
  echo "REDIS_NODES=$(IFS=,; for p in "${PORTS[@]}"; do printf '%s:%s,' "$HOST" "$p"; done | sed 's/,$//')"
}

kill_node() {
  local port="$1" sig="${2:-TERM}" pid deadline
  pid="$(our_pid "$port")" || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null; do
    if (( SECONDS >= deadline )); then kill -KILL "$pid" 2>/dev/null || true; fi
    (( SECONDS < deadline + 5 )) || die "redis-server $pid (port $port) would not exit"
    sleep 0.1
  done
}

down() {
  local p
  for p in "${PORTS[@]}"; do kill_node "$p" TERM; done
  rm -rf "$DIR"
  log "stopped ports ${PORTS[0]}-${PORTS[5]}; removed $DIR"
}

status() {
  local p pid
  for p in "${PORTS[@]}"; do
    if pid="$(our_pid "$p")"; then
      printf '%s pid %s %s\n' "$p" "$pid" "$(cli "$p" role 2>/dev/null | head -1)"
    else
      printf '%s down\n' "$p"
    fi
  done
  if all_ok; then echo "cluster_state:ok"; else echo "cluster not ok"; return 1; fi
}

port_arg() {
  local port="${1:-}"
  [[ " ${PORTS[*]} " == *" $port "* ]] || die "port \"$port\" is not one of ${PORTS[*]}"
  echo "$port"
}

# free_base picks a base at random in 10000..21990 (so the bus ports stay
# below the usual ephemeral range, 32768 and up) until nothing listens on its
# six ports or their bus ports and no work dir claims it. Another process may
# still take a port right after: `up` then fails loudly, it never shares.
free_base() {
  local try base p busy
  for try in $(seq 1 200); do
    base=$((10000 + (RANDOM % 1200) * 10))
    busy=
    [[ -e "/tmp/presencekit-redis-${base}" ]] && continue
    for p in $(seq "$base" $((base + 5))) $(seq $((base + 10000)) $((base + 10005))); do
      if (exec 3<>"/dev/tcp/${HOST}/${p}") 2>/dev/null; then busy=1; break; fi
    done
    if [[ -z "$busy" ]]; then echo "$base"; return; fi
  done
  die "no free base port after ${try} tries"
}

case "${1:-}" in
  free-base) free_base ;;
  up) up ;;
  down) down ;;
  status) status ;;
  stop-node) kill_node "$(port_arg "${2:-}")" KILL ;;
  start-node) p="$(port_arg "${2:-}")"; start_node "$p"; wait_alive "$p" ;;
  stop-all) for p in "${PORTS[@]}"; do kill_node "$p" KILL; done ;;
  start-all) for p in "${PORTS[@]}"; do start_node "$p"; done; for p in "${PORTS[@]}"; do wait_alive "$p"; done; wait_ok ;;
  wait) wait_ok ;;
  *) echo "usage: $0 up|down|status|wait|stop-node PORT|start-node PORT|stop-all|start-all|free-base" >&2; exit 2 ;;
esac
