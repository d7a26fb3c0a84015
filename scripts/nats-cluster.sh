#!/usr/bin/env bash
# A 3-node NATS JetStream cluster on 127.0.0.1 for rondo's JetStream tests and demo.
#
#   bash scripts/nats-cluster.sh start DIR     # 3 nodes, free ports, stores under DIR; waits until
#                                              # every node is healthy with JetStream on
#   bash scripts/nats-cluster.sh urls DIR      # the client URLs, comma-separated
#   bash scripts/nats-cluster.sh kill DIR I    # kill -9 node I (0..2)
#   bash scripts/nats-cluster.sh restart DIR I # start node I again (same ports, same store)
#   bash scripts/nats-cluster.sh stop DIR      # kill -9 every node started under DIR, remove DIR
#
# DIR holds node I's config (nI.conf), store (nI/), log (nI.log) and pid (nI.pid), and `ports`
# (client, cluster and monitoring port of each node). Exits 77 when nats-server is missing.
# Whether the JetStream meta group has a leader is checked by the clients (they retry stream
# creation until the cluster answers: rondo::jetstream::connection::ensure_stream).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z "$cmd" || -z "$dir" ]]; then
  echo "usage: $0 start|urls|kill|restart|stop DIR [NODE]" >&2
  exit 2
fi

if ! command -v nats-server >/dev/null 2>&1; then
  echo "nats-server not found (Debian: apt-get install nats-server)" >&2
  exit 77
fi

# A port nobody listens on now: bind to port 0 and let the kernel pick (python3 is in Debian's
# base images; without it, random ports in a high range checked through /proc/net/tcp).
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
  else
    local p
    while :; do
      p=$((20000 + RANDOM % 20000))
      if ! grep -qi ":$(printf '%04X' "$p") " /proc/net/tcp 2>/dev/null; then echo "$p"; return; fi
    done
  fi
}

node_conf() {  # node index, client port, cluster port, monitor port, route list
  cat >"$dir/n$1.conf" <<EOF
server_name: n$1
listen: 127.0.0.1:$2
http: 127.0.0.1:$4
jetstream {
  store_dir: "$dir/n$1"
  max_memory_store: 256MB
  max_file_store: 2GB
}
cluster {
  name: rondo
  listen: 127.0.0.1:$3
  routes: [$5]
}
EOF
}

start_node() {
  local i=$1
  nats-server -c "$dir/n$i.conf" >>"$dir/n$i.log" 2>&1 &
  echo $! >"$dir/n$i.pid"
}

# Waits until node i answers /healthz with 200 (JetStream up and, for a clustered node, current).
wait_healthy() {
  local i=$1 port deadline=$((SECONDS + 30))
  port=$(awk -v n="$i" 'NR == n + 1 { print $3 }' "$dir/ports")
  while ((SECONDS < deadline)); do
    if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
      printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
      if head -n 1 <&3 | grep -q ' 200'; then exec 3>&-; return 0; fi
      exec 3>&-
    fi
    sleep 0.1
  done
  echo "node $i not healthy within 30 s; log:" >&2
  tail -n 20 "$dir/n$i.log" >&2
  return 1
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    : >"$dir/ports"
    for i in 0 1 2; do echo "$(free_port) $(free_port) $(free_port)" >>"$dir/ports"; done
    routes=$(awk '{ printf "%snats-route://127.0.0.1:%s", (NR > 1 ? ", " : ""), $2 }' "$dir/ports")
    i=0
    while read -r client cluster monitor; do
      node_conf "$i" "$client" "$cluster" "$monitor" "$routes"
      mkdir -p "$dir/n$i"
      i=$((i + 1))
    done <"$dir/ports"
    for i in 0 1 2; do start_node "$i"; done
    for i in 0 1 2; do wait_healthy "$i"; done
    echo "cluster up: $(awk '{ printf "%snats://127.0.0.1:%s", (NR > 1 ? "," : ""), $1 }' "$dir/ports")"
    ;;
  urls)
    awk '{ printf "%snats://127.0.0.1:%s", (NR > 1 ? "," : ""), $1 } END { print "" }' "$dir/ports"
    ;;
  kill)
    i=${3:?node index}
    if [[ -f "$dir/n$i.pid" ]]; then kill -9 "$(cat "$dir/n$i.pid")" 2>/dev/null || true; fi
    ;;
  restart)
    i=${3:?node index}
    start_node "$i"
    wait_healthy "$i"
    ;;
  stop)
    for i in 0 1 2; do
      if [[ -f "$dir/n$i.pid" ]]; then kill -9 "$(cat "$dir/n$i.pid")" 2>/dev/null || true; fi
    done
    # The nodes are gone once their pids are; wait so the store can be removed.
    for i in 0 1 2; do
      if [[ -f "$dir/n$i.pid" ]]; then
        p=$(cat "$dir/n$i.pid")
        while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
      fi
    done
    rm -rf "$dir"
    ;;
  *)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
