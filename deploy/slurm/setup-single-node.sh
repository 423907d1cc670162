#!/usr/bin/env bash
# Single-node Slurm on this machine, for metaprod's tests and CI.
#
# Idempotent and non-interactive: run it as root as often as you like; it installs what is
# missing, (re)writes /etc/slurm/slurm.conf, starts munged/slurmctld/slurmd without systemd
# and only returns 0 once a real job has run through the cluster.
#
#   sudo deploy/slurm/setup-single-node.sh          # set up / make sure it is up
#   sudo deploy/slurm/setup-single-node.sh stop     # stop slurmd, slurmctld and munged
#   sudo deploy/slurm/setup-single-node.sh status   # print diagnostics
#
# Environment knobs: SLURM_CLUSTER_NAME (metaprod), SLURM_SETUP_TIMEOUT (seconds, 120),
# SLURM_PARTITION (debug).
set -euo pipefail

CLUSTER_NAME="${SLURM_CLUSTER_NAME:-metaprod}"
TIMEOUT="${SLURM_SETUP_TIMEOUT:-120}"
PARTITION="${SLURM_PARTITION:-debug}"

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
CGROUP_CONF="$CONF_DIR/cgroup.conf"
LOG_DIR=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
NODE="$(hostname -s)"

log() { echo "[slurm-setup] $*" >&2; }

diagnostics() {
    # Best effort: every command may fail on a broken setup, that is the point of calling this.
    log "---- diagnostics ----"
    log "node=$NODE conf=$CONF"
    { echo "munge:"; munge -n </dev/null 2>&1 | unmunge 2>&1 | head -n 3; } >&2 || true
    for p in munged slurmctld slurmd; do
        log "$p pids: $(pgrep -x "$p" | tr '\n' ' ' || true)"
    done
    { echo "scontrol ping:"; timeout 10 scontrol ping; } >&2 2>&1 || true
    { echo "sinfo:"; timeout 10 sinfo -N -l; } >&2 2>&1 || true
    { echo "node:"; timeout 10 scontrol show node "$NODE"; } >&2 2>&1 || true
    { echo "squeue:"; timeout 10 squeue; } >&2 2>&1 || true
    for f in /var/log/munge/munged.log "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"; do
        if [[ -f "$f" ]]; then
            echo "---- tail $f ----" >&2
            tail -n 25 "$f" >&2 || true
        fi
    done
    log "---------------------"
}

die() {
    log "ERROR: $*"
    diagnostics
    exit 1
}

# pid_alive PIDFILE NAME: the pid file points at a live process with that command name.
pid_alive() {
    local pidfile="$1" name="$2" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' 2>/dev/null <"$pidfile")" || return 1
    [[ -n "$pid" && -r "/proc/$pid/comm" ]] || return 1
    [[ "$(cat "/proc/$pid/comm")" == "$name" ]]
}

# stop_pidfile PIDFILE NAME: TERM the daemon, wait, then KILL; only the pid from its own file.
stop_pidfile() {
    local pidfile="$1" name="$2" pid i
    pid_alive "$pidfile" "$name" || return 0
    pid="$(tr -dc '0-9' 2>/dev/null <"$pidfile")" || return 0
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid_alive "$pidfile" "$name" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
}

ensure_packages() {
    local pkgs=(slurm-wlm munge) missing=() p
    for p in "${pkgs[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $EUID -eq 0 ]] || die "packages missing (${missing[*]}) and not root"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get -y -q -o DPkg::Lock::Timeout=600 install --no-install-recommends "${missing[@]}")
    # Only refresh the package lists when the install cannot proceed without it.
    if ! "${apt[@]}"; then
        log "install failed; running apt-get update and retrying"
        apt-get -q -o DPkg::Lock::Timeout=600 update
        "${apt[@]}" || die "apt-get install ${missing[*]} failed"
    fi
}

munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

ensure_munge() {
    # munged refuses to start on loose permissions, and /run is empty on a fresh container.
    install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
    install -d -o munge -g munge -m 0711 /var/lib/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating munge key"
        if command -v mungekey >/dev/null; then
            mungekey --create --force --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key

    munge_ok && return 0
    if ! pid_alive "$MUNGE_PID" munged; then
        # A dead munged leaves its socket and pid file behind, which makes a new one refuse.
        rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock "$MUNGE_PID"
        log "starting munged"
        runuser -u munge -- /usr/sbin/munged || die "munged failed to start"
    fi
    local i
    for ((i = 0; i < 50; i++)); do
        munge_ok && return 0
        sleep 0.2
    done
    die "munge does not answer"
}

render_conf() {
    local cpus mem
    cpus="$(nproc)"
    mem="$(free -m | awk '/^Mem:/ {print $2}')"
    cat <<EOF
# Generated by deploy/slurm/setup-single-node.sh: single-node cluster on $NODE.
# Edits are overwritten on the next run; change the script instead.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: containers and CI machines often have none we may write to.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No accounting daemon: finished jobs are only known to slurmctld for MinJobAge seconds,
# so keep them an hour: metaprod's slurm backend reads their exit code from squeue --states=all.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=3600
MpiDefault=none
# Debian ships no mailer here; /bin/true silences "Configured MailProg is invalid".
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/backfill
# Schedule a batch job right when it is submitted instead of batching submissions for up to 3 s:
# this cluster serves tests, where latency matters more than submission throughput.
SchedulerParameters=batch_sched_delay=0
# CR_Core, not CR_Core_Memory: otherwise a job without --mem takes the whole node's memory
# and jobs would run one at a time.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Bring the node back by itself after restarts; trust the numbers below over the hardware
# probe so a slightly different memory reading does not drain the node.
ReturnToService=2
SlurmdParameters=config_overrides
SlurmdTimeout=300
InactiveLimit=0
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

render_cgroup_conf() {
    # Not needed by 22.05 with the plugins above, but newer slurmd probe cgroups at start-up
    # unless told not to ("disabled" exists from 24.05 on and is rejected before).
    local major
    major="$(slurmd -V 2>/dev/null | awk '{split($2, v, "."); print v[1] + 0}')"
    echo "# Generated by deploy/slurm/setup-single-node.sh: cgroups are not used on this node."
    if [[ "${major:-0}" -ge 24 ]]; then
        echo "CgroupPlugin=disabled"
    fi
    cat <<EOF
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
}

# write_if_changed FILE CONTENT: returns 0 if the file was (re)written.
write_if_changed() {
    local file="$1" content="$2"
    if [[ -f "$file" ]] && [[ "$(cat "$file")" == "$content" ]]; then
        return 1
    fi
    printf '%s\n' "$content" >"$file.tmp"
    chmod 0644 "$file.tmp"
    mv -f "$file.tmp" "$file"
    log "wrote $file"
    return 0
}

ensure_config() {
    install -d -m 0755 "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
    local changed=0
    write_if_changed "$CONF" "$(render_conf)" && changed=1
    write_if_changed "$CGROUP_CONF" "$(render_cgroup_conf)" && changed=1
    if [[ $changed -eq 1 ]]; then
        # Node definitions cannot be changed by `scontrol reconfigure`; restart instead.
        stop_pidfile "$SLURMD_PID" slurmd
        stop_pidfile "$CTLD_PID" slurmctld
    fi
}

ensure_daemons() {
    if ! pid_alive "$CTLD_PID" slurmctld; then
        log "starting slurmctld"
        /usr/sbin/slurmctld || die "slurmctld failed to start"
    fi
    local i
    for ((i = 0; i < 50; i++)); do
        timeout 5 scontrol ping 2>/dev/null | grep -q "is UP" && break
        sleep 0.2
    done
    if ! pid_alive "$SLURMD_PID" slurmd; then
        log "starting slurmd"
        /usr/sbin/slurmd || die "slurmd failed to start"
    fi
}

wait_node_ready() {
    local deadline=$((SECONDS + TIMEOUT)) state resumed=0
    # A partition set DOWN by hand survives restarts in the saved state; this script means "up".
    timeout 10 scontrol update PartitionName="$PARTITION" State=UP 2>/dev/null || true
    while ((SECONDS < deadline)); do
        state="$(timeout 10 sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -n 1 || true)"
        case "$state" in
            idle | mix | alloc | comp)
                # Busy is fine too: a re-run while jobs are running must not fail.
                log "node $NODE is $state"
                return 0
                ;;
            down* | drain* | drng* | fail*)
                # Left over from an earlier run (e.g. killed daemons); slurmd is up now.
                if [[ $resumed -eq 0 ]]; then
                    log "node $NODE is $state; resuming it"
                    timeout 10 scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
                    resumed=1
                fi
                ;;
        esac
        sleep 1
    done
    die "node $NODE not ready after ${TIMEOUT}s (last state: '${state:-none}')"
}

smoke_test() {
    local out
    log "running a test job (srun -N1 /bin/true)"
    if ! out="$(timeout "$TIMEOUT" srun -N1 -n1 --time=1 -J metaprod-setup-check /bin/true 2>&1)"; then
        log "$out"
        die "test job did not complete"
    fi
    log "test job completed"
}

main() {
    case "${1:-up}" in
        up) ;;
        stop)
            stop_pidfile "$SLURMD_PID" slurmd
            stop_pidfile "$CTLD_PID" slurmctld
            if pid_alive "$MUNGE_PID" munged; then
                runuser -u munge -- /usr/sbin/munged --stop || true
            fi
            return 0
            ;;
        status)
            diagnostics
            return 0
            ;;
        *)
            echo "usage: $0 [up|stop|status]" >&2
            return 2
            ;;
    esac
    [[ $EUID -eq 0 ]] || die "must run as root"
    ensure_packages
    ensure_munge
    ensure_config
    ensure_daemons
    wait_node_ready
    smoke_test
    log "single-node Slurm is up: partition '$PARTITION' on $NODE"
}

main "$@"
