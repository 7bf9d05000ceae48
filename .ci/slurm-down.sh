#!/usr/bin/env bash
# Stop daemons started by slurm-up.sh, by the PIDs in their pid files (never by process name).
#   slurm-down.sh                      stop slurmd, slurmctld and munged
#   slurm-down.sh slurmd slurmctld     stop only those (what slurm-up.sh reported as started=...)
set -uo pipefail

pidfile() {
  case "$1" in
    slurmd) echo /run/slurmd.pid ;;
    slurmctld) echo /run/slurmctld.pid ;;
    munged) echo /run/munge/munged.pid ;;
    *) echo "slurm-down: unknown daemon '$1'" >&2 ;;
  esac
}

# slurmd before slurmctld before munged: each needs the next one to shut down cleanly.
DAEMONS=("$@")
[ ${#DAEMONS[@]} -gt 0 ] || DAEMONS=(slurmd slurmctld munged)
ORDERED=()
for d in slurmd slurmctld munged; do
  for want in "${DAEMONS[@]}"; do [ "$want" = "$d" ] && ORDERED+=("$d"); done
done

for d in "${ORDERED[@]}"; do
  f=$(pidfile "$d")
  pid=$(cat "$f" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    # Wait up to 5 s for it to exit.
    for _ in $(seq 20); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
  fi
done

# With slurmctld gone, remove the slurm.conf that slurm-up.sh wrote: while it names a controller
# that is down, every SLURM client command waits ~9 s for it, and the Snakemake SLURM plugin runs
# `scontrol show config` whenever it is imported, i.e. at the start of every `snakemake` call.
# Without the file the client tools fail at once.
MARK="# Written by weak3d .ci/slurm-up.sh (removed by slurm-down.sh)."
for d in "${ORDERED[@]}"; do
  if [ "$d" = slurmctld ] && grep -qxF "$MARK" /etc/slurm/slurm.conf 2>/dev/null; then
    rm -f /etc/slurm/slurm.conf
  fi
done
exit 0
