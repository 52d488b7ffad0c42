# Names shared by start-cluster.sh and stop-cluster.sh (sourced, not run).
# The variables are used by the scripts that source this file:
# shellcheck shell=bash disable=SC2034
CONF=/etc/slurm/slurm.conf
BRIDGE=wbbr0
IFACE=wb0             # the nodes' interface: what a real cluster's high-speed network is
HOST_IP=10.77.0.1
MARK="# workbench-cluster"
BEGIN="# >>> workbench-cluster (tests/cluster/start-cluster.sh; stop-cluster.sh removes it)"
END="# <<< workbench-cluster"

node_ip() { echo "10.77.0.$((10 + $1))"; }

node_cpus() {
    case "$1" in 1) echo 3 ;; 2) echo 2 ;; 3) echo 1 ;; *) echo 2 ;; esac
}

# Restart slurmctld by its pid file, keeping its state (no -c), and wait (bounded) until it
# answers.
restart_slurmctld() {
    local pidfile pid
    pidfile=$(awk -F= '/^SlurmctldPidFile=/ {print $2}' "$CONF")
    if [ -n "$pidfile" ] && [ -s "$pidfile" ]; then
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    /usr/sbin/slurmctld -i
    for _ in $(seq 1 30); do
        if timeout 5 sinfo -h >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    echo "cluster: slurmctld does not answer after its restart" >&2
    return 1
}
