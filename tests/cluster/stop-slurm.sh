#!/usr/bin/env bash
# Stop the daemons tests/cluster/start-slurm.sh started (by pid, nothing else), and remove
# the slurm.conf it wrote.
set -uo pipefail
state=${ECGCOHORT_SLURM_STATE:-/tmp/ecgcohort-slurm}
conf=/etc/slurm/slurm.conf
[ -f "$state/pids" ] || { echo "[stop-slurm] nothing started from $state" >&2; exit 0; }
# slurmd and slurmctld first, munged last: they need it to say goodbye.
tac "$state/pids" | while read -r name pid; do
  if kill -0 "$pid" 2>/dev/null && grep -q "$name" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "[stop-slurm] stopped $name ($pid)" >&2
  fi
done
rm -f "$state/pids"
grep -qF "# written by ecgcohort tests/cluster/start-slurm.sh" "$conf" 2>/dev/null && rm -f "$conf"
exit 0
