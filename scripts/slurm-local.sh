#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, to try sweeps before sending them to a real cluster
# (and for tests/sweeps/test_slurm.py, which `make test` runs on it).
#
#   scripts/slurm-local.sh start    install slurm-wlm + munge if needed (apt, root), configure, start
#   scripts/slurm-local.sh status   is it up? (exit 0 when sbatch would be accepted)
#   scripts/slurm-local.sh stop     stop the daemons this script started
#
# Daemons run as plain background processes (no systemd needed: containers, CI machines). The node
# is this host with its own CPUs and memory (`slurmd -C`), one default partition `debug`, no GPUs.
# Accounting is off (no slurmdbd/database): tunelab then asks squeue, not sacct, for job states
# (tunelab.sweeps.slurm). Start is idempotent; a running cluster is left as it is.
# An existing slurm.conf that this script did not write is never touched: the script stops instead.
set -euo pipefail

CONF_DIR=${SLURM_CONF_DIR:-/etc/slurm}
CONF=$CONF_DIR/slurm.conf
MARKER="# written by tunelab scripts/slurm-local.sh"
STATE=/var/lib/slurm-local
LOGS=/var/log/slurm-local
PARTITION=${SLURM_LOCAL_PARTITION:-debug}

say() { echo "slurm-local: $*"; }
die() { echo "slurm-local: $*" >&2; exit 1; }

up() {  # the controller answers and the node takes jobs
    command -v sinfo >/dev/null || return 1
    local state
    state=$(timeout 10 sinfo -h -N -o %t 2>/dev/null | head -1) || return 1
    [[ $state =~ ^(idle|mix|alloc|comp)\*?$ && $state != *"*" ]]
}

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
            && command -v sbatch >/dev/null; then
        return
    fi
    [[ $(id -u) == 0 ]] || die "SLURM is not installed and installing it needs root: sudo $0 start (or: sudo apt-get install slurm-wlm munge)"
    command -v apt-get >/dev/null || die "SLURM is not installed and there is no apt-get here: install slurm-wlm (slurmctld, slurmd, sbatch) and munge with your package manager, then rerun $0 start"
    say "installing slurm-wlm and munge (apt-get)"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null \
        || die "apt-get install slurm-wlm munge failed (see above)"
}

write_conf() {
    if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script (a real cluster's config?): not touching it. Stop here, or move it away and rerun."
    fi
    local node
    node=$(slurmd -C | head -1)   # NodeName=<host> CPUs=.. Boards=.. SocketsPerBoard=.. ... RealMemory=..
    mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$LOGS"
    cat >"$CONF.tmp" <<EOF
$MARKER (rerun it to regenerate)
ClusterName=tunelab-local
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job may start again once its credential expired (default 120 s): a preempted job is back sooner
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# containers and laptops without cgroup v2 delegation: track processes by parent, bind nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
# no slurmdbd: job states come from squeue (tunelab.sweeps.slurm), kept 1 h after a job ends
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
# a requeued job (preemption, time limit) goes back to the queue, not on hold
JobRequeue=1
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5,sched_interval=5
KillWait=30
# refuse at submission a job no node can ever run (e.g. more CPUs than the node has), instead of
# leaving it PENDING forever with reason PartitionConfig
EnforcePartLimits=ALL
$node State=UNKNOWN NodeAddr=127.0.0.1
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    mv "$CONF.tmp" "$CONF"
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        (command -v mungekey >/dev/null && mungekey --create --keyfile=/etc/munge/munge.key) \
            || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- munged
    else
        munged --force
    fi
    for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
    die "munged did not start (see /var/log/munge/munged.log)"
}

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    if up; then say "already up: $(sinfo -h -o '%P %D node(s) %c CPUs %t')"; return; fi
    install
    write_conf
    start_munge
    running "$STATE/slurmctld.pid" || slurmctld -f "$CONF"
    running "$STATE/slurmd.pid" || slurmd -f "$CONF"
    for _ in $(seq 150); do
        if up; then say "up: $(sinfo -h -o '%P %D node(s) %c CPUs %t')"; return; fi
        # a node that came back after a restart is DOWN until told otherwise
        scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
        sleep 0.2
    done
    die "the cluster did not come up in 30 s: $(sinfo -h -N -o '%N %t %E' 2>&1 | head -1); logs in $LOGS/"
}

stop() {
    for daemon in slurmd slurmctld; do
        if running "$STATE/$daemon.pid"; then kill "$(cat "$STATE/$daemon.pid")"; fi
    done
    for _ in $(seq 50); do
        running "$STATE/slurmd.pid" || running "$STATE/slurmctld.pid" || { say "stopped"; return; }
        sleep 0.2
    done
    die "slurmd/slurmctld still running after 10 s"
}

status() {
    if up; then say "up: $(sinfo -h -o '%P %D node(s) %c CPUs %t')"; else say "down"; return 1; fi
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
