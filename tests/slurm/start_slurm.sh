#!/usr/bin/env bash
# Start a throw-away single-node SLURM cluster on this machine, for tests/test_slurm.py.
#
# Why: profiles/slurm is only worth shipping if it runs the pipeline through the real
# snakemake-executor-plugin-slurm, which calls sbatch, sacct and sacctmgr. This script brings up
# what a real cluster has: munged, MariaDB + slurmdbd (the plugin checks the account with
# sacctmgr and job states with sacct), slurmctld and slurmd, with two fake GPUs (gres on
# /dev/null and /dev/zero) so that GPU rules are scheduled for real. Needs root; installs the
# Debian packages when missing. Idempotent: a cluster already up is left as it is.
#
#   sudo tests/slurm/start_slurm.sh        then   export SLURM_CONF=/tmp/wsss-slurm/slurm.conf
#   sudo tests/slurm/stop_slurm.sh
#
# Configs, database, logs and pid files live in $WSSS_SLURM_STATE, and the ports differ from
# SLURM's defaults. Outside it: munged's default socket in /run/munge (a running munged is
# reused) and slurmd's link /run/slurm/conf.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "start_slurm: run as root (starts daemons as root, munge and mysql)" >&2; exit 1; }

STATE=${WSSS_SLURM_STATE:-/tmp/wsss-slurm}
ACCOUNT=${WSSS_SLURM_TEST_ACCOUNT:-wsss_test}      # the account the test submits with
PARTITION=${WSSS_SLURM_TEST_PARTITION:-wsss_test}  # the only partition; not a default one
DB_PORT=${WSSS_SLURM_DB_PORT:-13306}
CTLD_PORT=16817 SLURMD_PORT=16818 DBD_PORT=16819
NODE=$(hostname -s)
# a tiny job is mostly Python start-up: let 2 jobs share a core (and 2 fake GPUs), so that
# the test's ~30 jobs do not queue behind each other on a 2-core machine
CPUS=$((2 * $(nproc)))
GPUS=2
DB_PASS=wsss-slurm-test                            # a local database bound to 127.0.0.1 only
export SLURM_CONF=$STATE/slurm.conf

log() { echo "start_slurm: [${SECONDS}s] $*"; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    while ! "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            echo "start_slurm: $what did not come up within ${seconds}s; logs in $STATE" >&2
            tail -n 20 "$STATE"/log/*.log "$STATE"/mysql/*.log >&2 || true
            exit 1
        fi
        sleep 0.2
    done
}

# (sinfo waits 60 s for a missing slurm.conf: check the file first)
node_idle() { [ -f "$SLURM_CONF" ] && [ "$(sinfo -h -N -p "$PARTITION" -o %t 2>/dev/null)" = idle ]; }

controller_up() { [ -f "$SLURM_CONF" ] && scontrol ping | grep -q UP; }

install_packages() {
    local missing=()
    for tool in munged:munge slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client \
        slurmdbd:slurmdbd mariadbd:mariadb-server; do
        command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}

write_configs() {
    mkdir -p "$STATE"/{log,ctld,slurmd,munge,mysql}
    cat >"$STATE/slurm.conf" <<EOF
ClusterName=wsss
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
AuthType=auth/munge
CryptoType=crypto/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# configless: slurmd fetches the configs and links them at /run/slurm/conf, where srun inside a
# job finds them (the plugin's job step drops SLURM_CONF from srun's environment)
SlurmctldParameters=enable_configless
# no cgroups in containers: track processes by parent id
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# the profile asks 16 GB per job: declare enough memory whatever this machine has
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=64000 Gres=gpu:$GPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF
    # fake GPUs: SLURM counts and allocates them; nothing uses the devices
    printf 'AutoDetect=off\nName=gpu File=/dev/null\nName=gpu File=/dev/zero\n' >"$STATE/gres.conf"
    cat >"$STATE/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$STATE/slurmdbd.conf"
}

munge_ok() { munge -n | unmunge; }

start_munge() {  # on munge's default socket (configless slurmd looks there); a running munged is reused
    munge_ok >/dev/null 2>&1 && return
    [ -f /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
    mkdir -p /run/munge
    chown munge:munge /run/munge "$STATE/munge"
    runuser -u munge -- munged --force --pid-file="$STATE/munge/munged.pid" \
        --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
    wait_for 10 munged munge_ok
}

sql() { mariadb --no-defaults -S "$STATE/mysql/mysqld.sock" -u root -e "$1"; }

start_mariadb() {
    sql "SELECT 1" >/dev/null 2>&1 && return
    # the server runs as mysql: its socket, pid file and log live in its own folder
    chown mysql:mysql "$STATE/mysql"
    [ -d "$STATE/mysql/data" ] || mariadb-install-db --no-defaults --datadir="$STATE/mysql/data" --user=mysql \
        --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1
    setsid mariadbd --no-defaults --datadir="$STATE/mysql/data" --user=mysql --socket="$STATE/mysql/mysqld.sock" \
        --pid-file="$STATE/mysql/mariadb.pid" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
        --log-error="$STATE/mysql/mariadb.log" --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
    wait_for 30 mariadb sql "SELECT 1"
    sql "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_slurmdbd() {
    running "$STATE/slurmdbd.pid" || slurmdbd
    wait_for 30 slurmdbd sacctmgr -n list cluster
    # root submits with $ACCOUNT only when asked: its default account is another one, so a
    # job that reached SLURM without -A shows up as wsss_default in sacct
    sacctmgr -i add cluster wsss >/dev/null 2>&1 || true
    sacctmgr -i add account wsss_default,"$ACCOUNT" cluster=wsss >/dev/null 2>&1 || true
    sacctmgr -i add user root account=wsss_default,"$ACCOUNT" defaultaccount=wsss_default >/dev/null 2>&1 || true
    [ -n "$(sacctmgr -n -P list assoc user=root account="$ACCOUNT" format=account)" ] ||
        { echo "start_slurm: could not register account $ACCOUNT for root" >&2; exit 1; }
}

start_slurm() {
    running "$STATE/slurmctld.pid" || slurmctld
    wait_for 30 slurmctld controller_up
    running "$STATE/slurmd.pid" || slurmd --conf-server "127.0.0.1:$CTLD_PORT"
    wait_for 60 "node $NODE (idle)" node_idle
}

if controller_up && sacctmgr -n list cluster >/dev/null 2>&1; then
    log "already up (SLURM_CONF=$SLURM_CONF)"
    exit 0
fi
install_packages
write_configs
start_munge && log "munged up"
start_mariadb && log "mariadb up"
start_slurmdbd && log "slurmdbd up, account $ACCOUNT registered"
start_slurm
log "up: partition $PARTITION, account $ACCOUNT, node $NODE with $CPUS CPUs and $GPUS GPUs (SLURM_CONF=$SLURM_CONF)"
