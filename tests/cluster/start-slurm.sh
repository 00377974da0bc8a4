#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine, without systemd, for the test suite.
#
#   tests/cluster/start-slurm.sh      install slurmctld/slurmd/slurm-client/munge if missing,
#                                     write /etc/slurm/slurm.conf for this host, start munged,
#                                     slurmctld and slurmd, wait until the node is idle
#   tests/cluster/stop-slurm.sh       stop exactly the daemons this script started (by pid)
#
# State (pids, spool, logs) lives in $ECGCOHORT_SLURM_STATE (default /tmp/ecgcohort-slurm).
# Needs root. Refuses to touch an /etc/slurm/slurm.conf it did not write (a real cluster's).
set -euo pipefail

state=${ECGCOHORT_SLURM_STATE:-/tmp/ecgcohort-slurm}
conf=/etc/slurm/slurm.conf
marker="# written by ecgcohort tests/cluster/start-slurm.sh"
packages=(slurmctld slurmd slurm-client munge)

say() { printf '[start-slurm] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (installs packages, writes $conf, starts daemons)"
if [ -f "$state/pids" ] && xargs -r kill -0 < <(cut -d' ' -f2 "$state/pids") 2>/dev/null; then
  say "already running (pids in $state/pids)"; exit 0
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
  die "$conf exists and was not written by this script; refusing to replace a real cluster's configuration"
fi

host=$(hostname -s)
cpus=$(nproc)
memory_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
rm -rf "$state"
mkdir -p "$state/spool/ctld" "$state/spool/d" "$state/log"
mkdir -p /etc/slurm
cat > "$conf" <<CONF
$marker
ClusterName=ecgcohort-test
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmdSpoolDir=$state/spool/d
StateSaveLocation=$state/spool/ctld
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
# Without slurmdbd, finished jobs are known only to squeue, for MinJobAge seconds.
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

start_ms=$(date +%s%3N)
# munged refuses a socket directory that is not a+x.
install -d -o munge -g munge -m 0755 /run/munge
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key; }
munge_pid_file=/run/munge/ecgcohort-munged.pid
rm -f "$munge_pid_file"
runuser -u munge -- /usr/sbin/munged --pid-file="$munge_pid_file"
for _ in $(seq 50); do [ -s "$munge_pid_file" ] && break; sleep 0.1; done
[ -s "$munge_pid_file" ] || die "munged did not start"
echo "munged $(cat "$munge_pid_file")" > "$state/pids"

/usr/sbin/slurmctld -D -f "$conf" > "$state/log/slurmctld.out" 2>&1 &
echo "slurmctld $!" >> "$state/pids"
/usr/sbin/slurmd -D -f "$conf" > "$state/log/slurmd.out" 2>&1 &
echo "slurmd $!" >> "$state/pids"

for _ in $(seq 300); do
  node_state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
  [ "$node_state" = "idle" ] && break
  sleep 0.1
done
if [ "$node_state" != "idle" ]; then
  say "node $host did not become idle (state '$node_state'); logs:"
  tail -n 20 "$state"/log/* >&2
  exit 1
fi
say "cluster up in $(( $(date +%s%3N) - start_ms )) ms: node $host, $cpus CPUs, $memory_mb MB, partition main"
echo "$state"
