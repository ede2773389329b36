#!/usr/bin/env bash
# Three local Cairn nodes on loopback with separate data dirs, for trying a
# cluster by hand. n1 bootstraps; n2 and n3 join it. Ctrl-C stops all three.
#   HTTP: 127.0.0.1:8301-8303   Raft: 127.0.0.1:7301-7303   data: .cluster/n1-n3
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/cairn
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM
mkdir -p .cluster
# A production-like cluster: keys and a cluster secret, made once and kept in
# .cluster/env ("source .cluster/env" lets client commands in).
if [ ! -f .cluster/env ]; then
  rnd() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
  cat > .cluster/env <<EOF
export CAIRN_SIGNING_KEY=signkey-local-$(rnd 32)
export CAIRN_EVENT_KEYS=$(rnd 16)
export CAIRN_EVENT_KEY=\$CAIRN_EVENT_KEYS
export CAIRN_CLUSTER_SECRET=$(rnd 32)
EOF
fi
# shellcheck disable=SC1091
source .cluster/env
"$bin" start --node-id n1 --port 8301 --raft-addr 127.0.0.1:7301 --data-dir .cluster/n1 --bootstrap "$@" 2>.cluster/n1.log &
pids+=($!)
for i in 2 3; do
  "$bin" start --node-id "n$i" --port "830$i" --raft-addr "127.0.0.1:730$i" --data-dir ".cluster/n$i" \
    --join 127.0.0.1:8301 "$@" 2>".cluster/n$i.log" &
  pids+=($!)
done
for _ in $(seq 1 100); do
  if "$bin" cluster status --url http://127.0.0.1:8301 2>/dev/null | grep -c '"raft_addr"' | grep -q 3; then break; fi
  sleep 0.2
done
"$bin" cluster status --url http://127.0.0.1:8301 || true
echo
echo "Three nodes up: http://127.0.0.1:8301 .. 8303 (logs in .cluster/). Any node serves clients;"
echo "their keys are in .cluster/env (source it first):"
echo "  ./bin/cairn send --url http://127.0.0.1:8302 my/event '{}'"
echo "  ./bin/cairn cluster status --url http://127.0.0.1:8303"
echo "Ctrl-C stops the cluster."
wait
