#!/usr/bin/env bash
# Stop the single-node Slurm started by start-slurm.sh (the nodes of tests/cluster/ have their
# own stop-cluster.sh).
set -euo pipefail
STATE=${1:-/tmp/workbench-slurm}
HOST=$(hostname -s)
for pidfile in "$STATE/slurmd-$HOST.pid" "$STATE/slurmd.pid" "$STATE/slurmctld.pid"; do
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
done
