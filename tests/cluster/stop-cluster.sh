#!/usr/bin/env bash
# Tear down what tests/cluster/start-cluster.sh built: the nodes' processes (by pid), their
# namespaces, the bridge, the /etc/hosts entries and the nodes in slurm.conf (slurmctld is
# restarted without them). Safe to run twice, and when nothing was started.
#
#   tests/cluster/stop-cluster.sh [--state STATE_DIR]
set -euo pipefail

STATE=/tmp/workbench-slurm
KEEP_SLURM=0    # --keep-slurm: leave slurm.conf's block for the caller (start-cluster.sh)
while [ $# -gt 0 ]; do
    case "$1" in
        --state) STATE=$2; shift 2 ;;
        --keep-slurm) KEEP_SLURM=1; shift ;;
        *) echo "stop-cluster: unknown argument $1 (use --state DIR)" >&2; exit 2 ;;
    esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/common.sh
. "$HERE/common.sh"

# Every process in a node (slurmd, job steps, engines), by pid; then the namespace.
for ns in $(ip netns list | awk '$1 ~ /^wbnode[0-9]+$/ {print $1}'); do
    for sig in TERM KILL; do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -z "$pids" ] && break
        for pid in $pids; do kill "-$sig" "$pid" 2>/dev/null || true; done
        for _ in $(seq 1 50); do
            [ -z "$(ip netns pids "$ns" 2>/dev/null || true)" ] && break
            sleep 0.1
        done
    done
    ip netns del "$ns"
    rm -rf "/etc/netns/$ns"
    echo "cluster: removed $ns"
done
rm -rf "$STATE"/slurmd-node*.pid "$STATE"/sys-node*
if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link del "$BRIDGE"
    echo "cluster: removed bridge $BRIDGE"
fi
if grep -q "$MARK" /etc/hosts; then
    kept=$(grep -v "$MARK" /etc/hosts)
    printf '%s\n' "$kept" > /etc/hosts    # in place: /etc/hosts may be a mount
fi

if [ -f "$CONF" ] && grep -qF "$BEGIN" "$CONF"; then
    kept=$(awk -v b="$BEGIN" -v e="$END" '$0 == b {skip = 1} !skip {print} $0 == e {skip = 0}' "$CONF")
    printf '%s\n' "$kept" > "$CONF"
    if [ "$KEEP_SLURM" -eq 0 ] && timeout 5 sinfo -h >/dev/null 2>&1; then
        restart_slurmctld
        timeout 20 scontrol reconfigure || true
        echo "cluster: nodes removed from Slurm"
    fi
fi
if [ "$KEEP_SLURM" -eq 0 ]; then rm -f "$STATE/cluster-task-prolog.sh"; fi
