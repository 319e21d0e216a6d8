#!/bin/sh
# One-shot service of docker-compose.yml's profile "cluster": join the nodes named in
# CLUSTER_NODES ("host:port host:port ...", primaries first) into one Redis Cluster,
# one replica per primary, then wait until every node serves every slot. A cluster
# already formed (the nodes restarted with their nodes.conf) is left as it is.
# realtime/tests/test_deploy.py runs it against local redis-servers.
set -eu

state() {  # cluster_state of one node, "" if it does not answer
  redis-cli -h "${1%:*}" -p "${1##*:}" cluster info 2>/dev/null |
    sed -n 's/^cluster_state:\([a-z]*\).*/\1/p'
}

first=${CLUSTER_NODES%% *}
if [ "$(state "$first")" = ok ]; then
  echo "redis cluster already formed"
  exit 0
fi

# CLUSTER MEET, which --cluster create sends, takes addresses, not names.
addresses=""
for node in $CLUSTER_NODES; do
  ip=$(getent hosts "${node%:*}" | awk '{ print $1; exit }')
  if [ -z "$ip" ]; then
    echo "cannot resolve ${node%:*}" >&2
    exit 1
  fi
  addresses="$addresses $ip:${node##*:}"
done
# shellcheck disable=SC2086  # one argument per address
redis-cli --cluster create $addresses --cluster-replicas 1 --cluster-yes

# The instances start when this exits: by then every node must agree.
tries=60
while [ "$tries" -gt 0 ]; do
  ok=yes
  for node in $CLUSTER_NODES; do
    [ "$(state "$node")" = ok ] || ok=no
  done
  if [ "$ok" = yes ]; then
    echo "redis cluster ok"
    exit 0
  fi
  tries=$((tries - 1))
  sleep 1
done
echo "the redis cluster never became ok" >&2
exit 1
