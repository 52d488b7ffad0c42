#!/usr/bin/env bash
# Start a multi-node Slurm cluster on this one machine, for the multi-node tests and for trying
# `%wb start --slurm --nodes 2` without a cluster. Needs root, iproute2, util-linux and the
# single-node Slurm of tests/slurm/start-slurm.sh (started here when it is not running).
#
#   tests/cluster/start-cluster.sh [--nodes N] [--state STATE_DIR]    (default: 3 nodes)
#   tests/cluster/stop-cluster.sh  [--state STATE_DIR]
#
# Each node is a network namespace (wbnodeK) with its own hostname (a UTS namespace), its own
# address on a bridge this script creates (wbbr0 10.77.0.1/24 on the host side, node K at
# 10.77.0.(10+K) on interface wb0) and its own `slurmd -N nodeK`; munged and slurmctld stay on
# the host side (the munge socket is a file, reachable from every node). Nothing but these
# addresses is configured in the namespaces: no route leaves the bridge. The nodes join
# /etc/slurm/slurm.conf in a marked block with a partition `multi`; the host node and its
# `debug` partition stay as they are. The nodes get 3, 2, 1, 2, 2... CPUs, so that a job spread
# over them gets uneven ranks per node, as jobs on real clusters often do.
#
# Waits (bounded) until `sinfo` shows every node idle; exits non-zero with the logs if not.
set -euo pipefail

NODES=3
STATE=/tmp/workbench-slurm
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes) NODES=$2; shift 2 ;;
        --state) STATE=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "start-cluster: unknown argument $1 (use --nodes N, --state DIR)" >&2; exit 2 ;;
    esac
done
case "$NODES" in
    [1-9]) ;;
    *) echo "start-cluster: --nodes must be 1 to 9, got $NODES" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "start-cluster: needs root (namespaces, a bridge, /etc/hosts, Slurm daemons)" >&2
    exit 1
fi

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/common.sh
. "$HERE/common.sh"

# A cluster from an earlier run goes first (the stop script is safe when there is none).
"$HERE/stop-cluster.sh" --state "$STATE" --keep-slurm >/dev/null

# The host side's Slurm, with per-node daemon files (%n) in its configuration.
if ! grep -q 'slurmd-%n.pid' "$CONF" 2>/dev/null || ! sinfo -h >/dev/null 2>&1; then
    "$HERE/../slurm/start-slurm.sh" "$STATE"
fi
HOST=$(hostname -s)

echo "cluster: bridge $BRIDGE $HOST_IP/24 and $NODES node(s)"
ip link add "$BRIDGE" type bridge
ip addr add "$HOST_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
hosts_block=""
for k in $(seq 1 "$NODES"); do
    hosts_block+="$(node_ip "$k") node$k $MARK"$'\n'
done
for k in $(seq 1 "$NODES"); do
    ns=wbnode$k
    ip netns add "$ns"
    ip link add "wbv$k" type veth peer name "$IFACE" netns "$ns"
    ip link set "wbv$k" master "$BRIDGE" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$(node_ip "$k")/24" dev "$IFACE"
    ip -n "$ns" link set "$IFACE" up
    # Inside a node the host's name is the bridge address (slurmctld, the notebook's machine);
    # this file goes over /etc/hosts for the node's processes (below).
    mkdir -p "/etc/netns/$ns"
    printf '127.0.0.1 localhost\n%s %s %s\n%s' "$HOST_IP" "$HOST" "$MARK" "$hosts_block" \
        > "/etc/netns/$ns/hosts"
done
# Node names resolve on the host side too (appended in place: /etc/hosts may be a mount).
printf '%s' "$hosts_block" >> /etc/hosts

# The nodes and the partition `multi` in slurm.conf, then slurmctld restarted (Slurm 22.05
# learns new nodes only at start; jobs of other users survive: no -c) and the host's slurmd
# told to re-read the file.
# The nodes share one kernel, so UCX (the mpich wheel's default network module) would take
# shared memory between them (it tells machines apart by boot id): a task prolog makes MPI talk
# TCP between the emulated nodes, as it would between real ones (FI_PROVIDER for the ofi module).
prolog="$STATE/cluster-task-prolog.sh"
cat > "$prolog" <<'PROLOG'
#!/bin/sh
# Slurm TaskProlog of tests/cluster/start-cluster.sh: on its emulated nodes only, MPI over TCP.
case "${SLURMD_NODENAME:-}" in
    node[0-9]*) echo "export UCX_TLS=${UCX_TLS:-tcp,self}"; echo "export FI_PROVIDER=${FI_PROVIDER:-tcp}" ;;
esac
PROLOG
chmod 0755 "$prolog"
{
    echo "$BEGIN"
    echo "SlurmdParameters=config_overrides"
    echo "TaskProlog=$prolog"
    for k in $(seq 1 "$NODES"); do
        echo "NodeName=node$k NodeAddr=$(node_ip "$k") CPUs=$(node_cpus "$k") RealMemory=2048 State=UNKNOWN"
    done
    echo "PartitionName=multi Nodes=node[1-$NODES] MaxTime=INFINITE State=UP OverSubscribe=FORCE:8"
    echo "$END"
} >> "$CONF"
restart_slurmctld
timeout 20 scontrol reconfigure || true

# Each slurmd in its node: the node's network, its own hostname and, in a private mount
# namespace (only the node sees these): the node's hosts file over /etc/hosts and a /sys of
# the node's network (MPI libraries list interfaces there) with the host's /sys/fs/cgroup,
# which slurmd needs, inside it. (`ip netns exec` would remount /sys without the cgroups.)
for k in $(seq 1 "$NODES"); do
    mkdir -p "$STATE/spool/node$k" "$STATE/sys-node$k"
    setup="mount --bind /etc/netns/wbnode$k/hosts /etc/hosts"
    setup+=" && mount -t sysfs sysfs $STATE/sys-node$k"
    setup+=" && mount --rbind /sys/fs/cgroup $STATE/sys-node$k/fs/cgroup"
    setup+=" && mount --move $STATE/sys-node$k /sys"
    if ! nsenter --net="/run/netns/wbnode$k" unshare --mount --uts sh -c \
        "$setup && hostname node$k && exec /usr/sbin/slurmd -N node$k"
    then
        echo "cluster: slurmd of node$k did not start:" >&2
        tail -n 20 "$STATE/log/slurmd-node$k.log" >&2 || true
        exit 1
    fi
done

for _ in $(seq 1 60); do
    states=$(sinfo -h -p multi -N -o '%N %t' 2>/dev/null || true)
    ready=$(echo "$states" | grep -cE ' (idle|mix|alloc)' || true)
    if [ "$ready" -eq "$NODES" ]; then
        echo "cluster: $NODES node(s) idle in partition multi (controller address for pools: $HOST_IP)"
        exit 0
    fi
    for n in $(echo "$states" | awk '$2 ~ /^(down|drain)/ {print $1}'); do
        scontrol update nodename="$n" state=resume 2>/dev/null || true
    done
    sleep 1
done
echo "cluster: the nodes did not become idle within 60 s:" >&2
echo "$states" >&2
tail -n 20 "$STATE/log/slurmctld.log" "$STATE"/log/slurmd-node*.log >&2 || true
exit 1
