#!/usr/bin/env bash
# npm run slurm:up — a single-node Slurm cluster on this machine (localhost), for the Slurm executor's
# tests and benchmark, or to try `executor: slurm` without a cluster. Debian/Ubuntu, as root, no
# systemd needed. Idempotent: installs Slurm and munge from the distribution if missing, starts only
# the daemons not already running, rewrites slurm.conf and reconfigures only when it changed.
#   SLURM_LOCAL_DIR   state, logs and pid files (default: .slurm/ in the current folder)
#   SLURM_LOCAL_CPUS  CPUs the node advertises (default: nproc; more lets more array tasks run at once)
set -euo pipefail

dir=$(realpath -m "${SLURM_LOCAL_DIR:-$PWD/.slurm}")
cpus=${SLURM_LOCAL_CPUS:-$(nproc)}
node=$(hostname -s)
mem=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
say() { echo "slurm:up: $*"; }
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "$(id -u)" != 0 ]; then
  echo "slurm:up: needs root (it installs packages and starts the Slurm daemons)" >&2
  exit 1
fi

missing=()
for cmd in slurmctld slurmd sbatch munged; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# munge authenticates the daemons and the client commands to each other.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  head -c 1024 /dev/urandom > /etc/munge/munge.key
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key && chmod 755 /run/munge
running /run/munge/munged.pid || { say "starting munged"; runuser -u munge -- /usr/sbin/munged; }
for _ in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
munge -n </dev/null | unmunge >/dev/null || { echo "slurm:up: munge does not work" >&2; exit 1; }

# No cgroups and no accounting database: process tracking by /proc, job state from squeue/scontrol
# (finished jobs kept 10 minutes) and a jobcomp file. Scheduling without delays, and a job whose
# dependency failed is cancelled instead of pending forever.
mkdir -p "$dir"/{state,spool,log,run} /etc/slurm
overrides=""
[ "$cpus" -gt "$(nproc)" ] && overrides="SlurmdParameters=config_overrides"
conf="ClusterName=local
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
DependencyParameters=kill_invalid_depend
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
InactiveLimit=0
KillWait=5
$overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
changed=0
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]; then
  printf '%s\n' "$conf" > /etc/slurm/slurm.conf.new && mv /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf
  changed=1
fi
if running "$dir/run/slurmctld.pid"; then
  [ $changed = 1 ] && { say "slurm.conf changed: reconfiguring"; scontrol reconfigure; }
else
  say "starting slurmctld"
  slurmctld -i
fi
running "$dir/run/slurmd.pid" || { say "starting slurmd"; slurmd -N "$node"; }

state=""
for _ in $(seq 150); do
  state=$(sinfo -h -n "$node" -o %t 2>/dev/null || true)
  case "$state" in idle|mix|alloc) break ;; drain*|down*) scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;; esac
  sleep 0.2
done
case "$state" in
  idle|mix|alloc) say "ready: node $node ($state), $cpus CPUs, ${mem} MB; state in $dir" ;;
  *) echo "slurm:up: node $node is not usable (state '$state'); logs in $dir/log" >&2
     tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
     exit 1 ;;
esac
