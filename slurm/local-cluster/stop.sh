#!/usr/bin/env bash
# slurm/local-cluster/stop.sh: stop exactly the daemons that start.sh started, by PID file
# (each PID is checked against the expected command name before it is signalled).
#   SLURM_BASE=/tmp/sparta-slurm   same as for start.sh
#   SLURM_ONLY=1                 stop only slurmd(s) and slurmctld; keep munged, MariaDB, slurmdbd
set -uo pipefail
BASE=${SLURM_BASE:-/tmp/sparta-slurm}
SLURM_ONLY=${SLURM_ONLY:-0}
export SLURM_CONF=$BASE/etc/slurm.conf

# running PID: exists and is not a zombie waiting for PID 1 to reap it
running() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1; [[ -n $st && $st != Z ]]; }
alive() { [[ -s $1 ]] || return 1; local p; p=$(<"$1"); [[ $(cat "/proc/$p/comm" 2>/dev/null) == "$2"* ]] && running "$p"; }
stop() { # PIDFILE COMM
  local f=$1 comm=$2 p i
  [[ -e $f ]] || return 0
  if alive "$f" "$comm"; then
    p=$(<"$f")
    kill -TERM "$p"
    for i in $(seq 1 300); do running "$p" || break; sleep 0.1; done
    if running "$p"; then echo "$comm ($p) ignored SIGTERM for 30 s: SIGKILL"; kill -KILL "$p"; fi
    echo "stopped $comm (pid $p)"
  fi
  rm -f "$f"
}

# Cancel remaining jobs first, so that no slurmstepd outlives its slurmd.
if alive "$BASE/run/slurmctld.pid" slurmctld; then
  jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')
  if [[ -n ${jobs// } ]]; then
    echo "cancelling jobs: $jobs"
    scancel $jobs
    for i in $(seq 1 150); do [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break; sleep 0.1; done
  fi
fi
for f in "$BASE"/run/slurmd-*.pid; do stop "$f" slurmd; done
stop "$BASE/run/slurmctld.pid" slurmctld
[[ $SLURM_ONLY == 1 ]] && exit 0
stop "$BASE/run/slurmdbd.pid" slurmdbd
stop "$BASE/db/run/mysqld.pid" mariadbd
stop "$BASE/run/munged.pid" munged
exit 0
