#!/usr/bin/env bash
# A real single-node Slurm on localhost for the slurm tests.
#   cluster.sh start DIR   writes DIR/slurm.conf, starts munged, slurmctld and
#                          slurmd, waits until the node is idle; prints the
#                          SLURM_CONF path to export
#   cluster.sh stop DIR    stops the daemons it started (safe to call twice)
# Needs root, slurm-wlm and munge (scripts/install-deps.sh).
set -euo pipefail
cmd=${1:?usage: cluster.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: cluster.sh start|stop DIR}")

stop() {
  for d in slurmd slurmctld; do
    if [[ -f "$dir/$d.pid" ]]; then
      kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
    fi
  done
  for d in slurmd slurmctld; do
    if [[ -f "$dir/$d.pid" ]]; then
      pid=$(cat "$dir/$d.pid")
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$d.pid"
    fi
  done
  if [[ -f "$dir/munged.started" ]]; then
    # Wait until munged is gone: a cluster started right after must not
    # find it still exiting (and then run without it).
    pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
    if [[ -n "$pid" ]]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$dir/munged.started"
  fi
}

start() {
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  cpus=$(getconf _NPROCESSORS_ONLN)  # nproc would honour OMP_NUM_THREADS
  cat > "$dir/slurm.conf" <<CONF
ClusterName=sotutest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldPort=6917
SlurmdPort=6918
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=5
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
Waittime=0
NodeName=localhost NodeHostname=localhost CPUs=$cpus RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  if ! pgrep -x munged >/dev/null; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge /etc/munge/munge.key
    chmod 0700 /etc/munge
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
    touch "$dir/munged.started"
  fi
  export SLURM_CONF="$dir/slurm.conf"
  /usr/sbin/slurmctld -f "$dir/slurm.conf"
  /usr/sbin/slurmd -f "$dir/slurm.conf" -N localhost
  for _ in $(seq 100); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)
    if [[ "$state" == idle* ]]; then
      echo "$dir/slurm.conf"
      return 0
    fi
    sleep 0.2
  done
  echo "cluster.sh: node did not become idle (state '$state'); logs in $dir/log" >&2
  tail -n 20 "$dir/log/"*.log >&2 || true
  stop
  return 1
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
