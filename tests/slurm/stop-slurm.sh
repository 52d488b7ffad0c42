#!/usr/bin/env bash
# Stop the single-node Slurm started by start-slurm.sh.
STATE=${1:-/tmp/workbench-slurm}
for d in slurmd slurmctld; do
    if [ -f "$STATE/$d.pid" ]; then kill "$(cat "$STATE/$d.pid")" 2>/dev/null || true; fi
done
