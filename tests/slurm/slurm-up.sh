#!/usr/bin/env bash
# Bring up a real single-node SLURM cluster for the tests (Debian 12 packages,
# no systemd, no cgroups): munged, optionally MariaDB + slurmdbd (so `sacct`
# works), slurmctld and slurmd, with FAKE_GPUS fake GPUs as GRES.
#
# Why a real cluster: the slurm profiles are only worth something if sbatch,
# the status polling and the GPU request are shown to work end to end.
# The recipe and its pitfalls are in ../shared/notes/slurm-test-cluster.md.
#
# Usage (as root):   SLURM_BASE=$(mktemp -d) bash tests/slurm/slurm-up.sh
#                    ... sbatch / snakemake --executor slurm ...
#                    bash tests/slurm/slurm-down.sh          # always, even on failure
# Settings (environment):
#   SLURM_BASE  state, logs, pid files and the fake devices of this run. A fresh
#               directory per run (default: a new mktemp dir), so no job of an
#               earlier run shows up in squeue/sacct.
#   WITH_DBD    1 (default): MariaDB + slurmdbd, so `sacct` has records. 0: none
#               (then use the profiles' `slurm-status-command: squeue`).
#   FAKE_GPUS   number of fake GPUs (character devices made with mknod), default 1.
#   NODE_CPUS   CPUs the node advertises (default 4; config_overrides lets this
#               exceed the real core count, so several 1-CPU jobs can run at once).
#   NODE_MEM_MB memory the node advertises (default 80 % of MemTotal). Also only a
#               scheduling number here (no cgroups), so a test can fit the profiles'
#               per-job requests, sized for real datasets, side by side.
# Daemons this script starts are listed in $SLURM_BASE/run/started; slurm-down.sh
# stops exactly those, by PID. A daemon that was already running (munged,
# mariadbd) is reused and left running. On failure it prints the daemons' logs
# and stops what it started.
set -euo pipefail

die() {
    echo "slurm-up: ERROR: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root: it installs Debian packages (apt-get) and starts \
munged/slurmctld/slurmd as root. Run the slurm tests as root, e.g. in CI."
command -v apt-get >/dev/null || die "needs apt-get (a Debian/Ubuntu machine) to install slurm-wlm and munge."

HERE=$(cd "$(dirname "$0")" && pwd)
WITH_DBD=${WITH_DBD:-1}
FAKE_GPUS=${FAKE_GPUS:-1}
NODE_CPUS=${NODE_CPUS:-4}
SLURM_BASE=${SLURM_BASE:-$(mktemp -d /tmp/slurm-test.XXXXXX)}
SLURM_BASE=$(realpath -m "$SLURM_BASE")
export SLURM_BASE
mkdir -p "$SLURM_BASE"/{state/ctld,state/d,run,log,fakedev}
: >"$SLURM_BASE/run/started"
# slurm-down.sh finds the current cluster through this file when SLURM_BASE is not given.
echo "$SLURM_BASE" >/run/movierec-slurm-base

log() { echo "slurm-up: $*" >&2; }

on_error() {
    local rc=$?
    log "failed (exit $rc); daemon logs follow"
    for f in "$SLURM_BASE"/log/*.log; do
        [ -f "$f" ] || continue
        echo "----- $f (last 30 lines)" >&2
        tail -n 30 "$f" >&2 || true
    done
    SLURM_BASE=$SLURM_BASE bash "$HERE/slurm-down.sh" || true
    exit "$rc"
}
trap on_error ERR

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.2 s until it succeeds.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "timed out after ${secs}s waiting for: $what"
            return 1
        fi
        sleep 0.2
    done
}

# pid_alive PIDFILE: the daemon named in PIDFILE is running.
pid_alive() {
    local pid
    [ -s "$1" ] && pid=$(cat "$1") && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# started NAME PIDFILE: remember a daemon we started, for slurm-down.sh.
started() { echo "$1 $2" >>"$SLURM_BASE/run/started"; }

# ---------------------------------------------------------------- packages
packages=(slurmctld slurmd slurm-client munge)
[ "$WITH_DBD" = 1 ] && packages+=(slurmdbd mariadb-server)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    # Without systemd, postinst scripts must not try to start the daemons.
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get update -qq || die "apt-get update failed (are Debian's package mirrors reachable?)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >"$SLURM_BASE/log/apt.log" 2>&1 || { tail -n 20 "$SLURM_BASE/log/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# ---------------------------------------------------------------- host
NODE=$(hostname -s)
getent hosts "$NODE" >/dev/null || echo "127.0.0.1 $NODE" >>/etc/hosts
MEM_MB=${NODE_MEM_MB:-$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)}

# A second cluster on the same ports would fight this one: refuse clearly.
if [ -f /etc/slurm/slurm.conf ]; then
    old_pidfile=$(sed -n 's/^SlurmctldPidFile=//p' /etc/slurm/slurm.conf)
    if [ -n "$old_pidfile" ] && pid_alive "$old_pidfile"; then
        die "a slurmctld is already running (pid file $old_pidfile); stop it with slurm-down.sh first"
    fi
fi

# ---------------------------------------------------------------- config
# The files below are the machine's: keep what was there, so slurm-down.sh can put it
# back (or remove ours). A slurm.conf left behind for a stopped controller would make
# every later `snakemake` here wait 9 s (the SLURM plugin asks `scontrol` at import).
mkdir -p /etc/slurm "$SLURM_BASE/run/etc-slurm"
for conf in slurm.conf gres.conf slurmdbd.conf; do
    if [ -f "/etc/slurm/$conf" ] && ! grep -q "^# Written by tests/slurm/slurm-up.sh" "/etc/slurm/$conf"; then
        cp -p "/etc/slurm/$conf" "$SLURM_BASE/run/etc-slurm/$conf"
    fi
done
if [ "$WITH_DBD" = 1 ]; then
    accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux"
else
    accounting="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
cat >/etc/slurm/slurm.conf <<EOF
# Written by tests/slurm/slurm-up.sh for SLURM_BASE=$SLURM_BASE
ClusterName=testcluster
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$accounting
JobCompType=jobcomp/none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SLURM_BASE/state/ctld
SlurmdSpoolDir=$SLURM_BASE/state/d
SlurmctldPidFile=$SLURM_BASE/run/slurmctld.pid
SlurmdPidFile=$SLURM_BASE/run/slurmd.pid
SlurmctldLogFile=$SLURM_BASE/log/slurmctld.log
SlurmdLogFile=$SLURM_BASE/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
# squeue polling needs finished jobs to stay visible: keep MinJobAge >= 3 x init seconds.
MinJobAge=300
KillWait=5
Waittime=0
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$MEM_MB Gres=gpu:tesla:$FAKE_GPUS State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

# Fake GPUs: slurmd only accepts character or block devices as GRES files.
echo "# Written by tests/slurm/slurm-up.sh for SLURM_BASE=$SLURM_BASE" >/etc/slurm/gres.conf
for ((i = 0; i < FAKE_GPUS; i++)); do
    dev=$SLURM_BASE/fakedev/nvidia$i
    [ -c "$dev" ] || mknod "$dev" c 1 3
    echo "NodeName=$NODE Name=gpu Type=tesla File=$dev" >>/etc/slurm/gres.conf
done

# ---------------------------------------------------------------- munge
mkdir -p /run/munge && chown munge:munge /run/munge
if pid_alive /run/munge/munged.pid && munge -n | unmunge >/dev/null 2>&1; then
    log "reusing the running munged"
else
    [ -s /etc/munge/munge.key ] || die "/etc/munge/munge.key is missing (munge's postinst writes it)"
    runuser -u munge -- /usr/sbin/munged
    started munged /run/munge/munged.pid
    wait_for 10 "munged" bash -c 'munge -n | unmunge'
fi

# ---------------------------------------------------------------- accounting
if [ "$WITH_DBD" = 1 ]; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if pid_alive /run/mysqld/mysqld.pid; then
        log "reusing the running mariadbd"
    else
        # Runs in the foreground of its own, so $! is its PID.
        /usr/sbin/mariadbd --user=mysql </dev/null >"$SLURM_BASE/log/mariadb.log" 2>&1 &
        echo $! >"$SLURM_BASE/run/mariadbd.pid"
        started mariadbd "$SLURM_BASE/run/mariadbd.pid"
        wait_for 30 "mariadbd" mariadb -e 'select 1'
    fi
    # One database per run, dropped by slurm-down.sh: sacct never shows another run's jobs.
    DB="slurm_acct_$(date +%s)_$$"
    echo "$DB" >"$SLURM_BASE/run/dbname"
    mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
                GRANT ALL ON \`$DB\`.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
    cat >/etc/slurm/slurmdbd.conf <<EOF
# Written by tests/slurm/slurm-up.sh for SLURM_BASE=$SLURM_BASE
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$SLURM_BASE/log/slurmdbd.log
PidFile=$SLURM_BASE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=$DB
EOF
    chmod 600 /etc/slurm/slurmdbd.conf
    /usr/sbin/slurmdbd
    started slurmdbd "$SLURM_BASE/run/slurmdbd.pid"
    wait_for 30 "slurmdbd" sacctmgr -n show cluster
fi

# ---------------------------------------------------------------- slurm
/usr/sbin/slurmctld
started slurmctld "$SLURM_BASE/run/slurmctld.pid"
/usr/sbin/slurmd
started slurmd "$SLURM_BASE/run/slurmd.pid"
wait_for 60 "node $NODE idle" bash -c "sinfo -h -o %t | grep -qx idle"
if [ "$WITH_DBD" = 1 ]; then
    # slurmctld registers the cluster with slurmdbd by itself; wait until it has.
    wait_for 30 "cluster registered in slurmdbd" bash -c "sacctmgr -n -P show cluster format=cluster | grep -qx testcluster"
fi

trap - ERR
log "up in ${SECONDS}s: node $NODE, $NODE_CPUS CPUs, ${MEM_MB} MB, $FAKE_GPUS fake GPU(s), dbd=$WITH_DBD"
echo "SLURM_BASE=$SLURM_BASE"
