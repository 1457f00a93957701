#!/usr/bin/env bash
# Stop the test cluster of start_slurm.sh and delete its state (configs, database, logs).
# Idempotent: stops only the daemons whose pid files are in $WSSS_SLURM_STATE; nothing running
# is fine. Set WSSS_SLURM_KEEP_STATE=1 to keep the folder (e.g. to read the logs).
set -uo pipefail

STATE=${WSSS_SLURM_STATE:-/tmp/wsss-slurm}

stop() {  # stop PIDFILE: TERM the daemon, wait up to 10 s, then KILL it
    local pidfile=$1 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
}

# jobs first (slurmd ends its job steps), then the controller, accounting, database, munge
stop "$STATE/slurmd.pid"
stop "$STATE/slurmctld.pid"
stop "$STATE/slurmdbd.pid"
stop "$STATE/mysql/mariadb.pid"
stop "$STATE/munge/munged.pid"
# slurmd's link for client commands in jobs, if it is ours
case "$(readlink /run/slurm/conf 2>/dev/null)" in "$STATE"/*) rm -f /run/slurm/conf ;; esac
[ "${WSSS_SLURM_KEEP_STATE:-0}" = 1 ] || rm -rf "$STATE"
echo "stop_slurm: stopped"
