#!/usr/bin/env bash
# Start a single-node Slurm (munge + slurmctld + slurmd) on this machine, for the tests and for
# anyone who wants to try `%wb start --slurm` without a cluster. Needs root and Debian's
# slurm-wlm and munge packages:   apt-get install -y slurm-wlm munge
#
#   tests/slurm/start-slurm.sh [STATE_DIR]     (default: /tmp/workbench-slurm)
#   tests/slurm/stop-slurm.sh  [STATE_DIR]
#
# Waits (bounded) until `sinfo` shows the node idle; exits non-zero with the daemons' logs if not.
set -euo pipefail

STATE=${1:-/tmp/workbench-slurm}
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p "$STATE"/{spool/"$HOST",state,log}
CONF_DIR=/etc/slurm
mkdir -p "$CONF_DIR"

# munge: a key once, then the daemon (a no-op if it already runs)
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! munge -n </dev/null >/dev/null 2>&1; then
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged
    else
        /usr/sbin/munged --force
    fi
fi

# The nodes of tests/cluster/start-cluster.sh, when it runs, stay in the new file.
cluster_block=""
if [ -f "$CONF_DIR/slurm.conf" ]; then
    cluster_block=$(sed -n '/^# >>> workbench-cluster/,/^# <<< workbench-cluster/p' "$CONF_DIR/slurm.conf")
fi
cat > "$CONF_DIR/slurm.conf" <<CONF
ClusterName=workbench
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=$STATE/state
# %n: one spool, pid and log file per node (tests/cluster/ runs more slurmds on this machine)
SlurmdSpoolDir=$STATE/spool/%n
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd-%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=30
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
# oversubscribe: more engines than cores is fine for tests on a 2-core machine
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
if [ -n "$cluster_block" ]; then printf '%s\n' "$cluster_block" >> "$CONF_DIR/slurm.conf"; fi

# (re)start the daemons
if [ -f "$STATE/slurmctld.pid" ]; then kill "$(cat "$STATE/slurmctld.pid")" 2>/dev/null || true; fi
for pidfile in "$STATE/slurmd.pid" "$STATE/slurmd-$HOST.pid"; do   # (slurmd.pid: older runs)
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
done
sleep 1
/usr/sbin/slurmctld -c -i
/usr/sbin/slurmd -c

for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
    case "$state" in
        idle*|mix*|alloc*) echo "slurm: node $HOST is $state"; exit 0 ;;
        down*|drain*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
echo "slurm: node $HOST did not become idle within 60 s (state: ${state:-unknown})" >&2
tail -n 30 "$STATE/log/slurmctld.log" "$STATE/log/slurmd-$HOST.log" >&2 || true
exit 1
