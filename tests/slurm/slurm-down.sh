#!/usr/bin/env bash
# Stop the test cluster that slurm-up.sh started: exactly the daemons listed in
# $SLURM_BASE/run/started, newest first (slurmd, slurmctld, slurmdbd, mariadbd,
# munged), each by the PID in its pid file, never by name, so nothing else on
# the machine is touched. Drops the run's accounting database and puts
# /etc/slurm back as slurm-up.sh found it. Safe to call twice, or after a
# failed slurm-up.sh.
#
# Usage: SLURM_BASE=<dir> bash tests/slurm/slurm-down.sh   (or pass <dir> as $1;
#        without either, the last cluster slurm-up.sh started)
set -uo pipefail

SLURM_BASE=${1:-${SLURM_BASE:-$(cat /run/movierec-slurm-base 2>/dev/null || true)}}
if [ -z "$SLURM_BASE" ] || [ ! -f "$SLURM_BASE/run/started" ]; then
    echo "slurm-down: nothing to stop (no \$SLURM_BASE/run/started)" >&2
    exit 0
fi

log() { echo "slurm-down: $*" >&2; }

# stop NAME PIDFILE: SIGTERM the PID read once from PIDFILE, wait up to 30 s,
# then SIGKILL. The PID is read once: daemons delete their pid file on exit.
stop() {
    local name=$1 pidfile=$2 pid t0=$SECONDS
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        log "$name: not running"
        return 0
    fi
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if [ $((SECONDS - t0)) -ge 30 ]; then
            log "$name (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    log "$name (pid $pid) stopped in $((SECONDS - t0))s"
}

# drop_db: drop the run's accounting database (needs mariadbd, not slurmdbd).
drop_db() {
    if [ -s "$SLURM_BASE/run/dbname" ] && command -v mariadb >/dev/null; then
        local db
        db=$(cat "$SLURM_BASE/run/dbname")
        mariadb -e "DROP DATABASE IF EXISTS \`$db\`" 2>/dev/null || log "could not drop database $db"
        rm -f "$SLURM_BASE/run/dbname"
    fi
}

# Newest first: the reverse of the start order. The database goes after
# slurmdbd and before mariadbd (or after all, when mariadbd was reused).
while read -r name pidfile; do
    [ -n "$name" ] || continue
    [ "$name" = mariadbd ] && drop_db
    stop "$name" "$pidfile"
done < <(tac "$SLURM_BASE/run/started")
drop_db
: >"$SLURM_BASE/run/started"
# Put /etc/slurm back as slurm-up.sh found it: its own files removed, earlier ones restored.
for conf in slurm.conf gres.conf slurmdbd.conf; do
    if [ -f "$SLURM_BASE/run/etc-slurm/$conf" ]; then
        cp -p "$SLURM_BASE/run/etc-slurm/$conf" "/etc/slurm/$conf"
    elif grep -qs "^# Written by tests/slurm/slurm-up.sh" "/etc/slurm/$conf"; then
        rm -f "/etc/slurm/$conf"
    fi
done
if [ "$(cat /run/movierec-slurm-base 2>/dev/null)" = "$SLURM_BASE" ]; then
    rm -f /run/movierec-slurm-base
fi
log "done"
