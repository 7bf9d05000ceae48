#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm.py (Debian bookworm, root, no systemd).
#
# Installs munge + slurmctld + slurmd + slurm-client from Debian when they are missing, writes
# /etc/slurm/slurm.conf for this host alone, starts munged, slurmctld and slurmd by hand (the package
# postinsts start nothing: policy-rc.d denies it and there is no systemd), and waits until the node
# is `idle`. Idempotent: daemons that are already up are left running.
#
# Prints `started=<daemons started by this call>` as its last line, so a caller can stop only those.
# Facts this relies on: /work/shared/methods/slurm-single-node.md (checked on this machine kind).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
    || ! command -v sbatch >/dev/null; then
  # --no-install-recommends: the slurm-wlm metapackage would pull ~37 packages none of which we need.
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null
fi

HOST=$(hostname -s)
CPUS=$(nproc)
MEM_TOTAL=$(free -m | awk '/^Mem:/{print $2}')
# Leave 1 GiB: a RealMemory above what slurmd measures drains the node.
REALMEM=$((MEM_TOTAL - 1024))
# Sockets x cores as the hardware has them; CPUs=N alone implies N single-core sockets, which makes
# slurmd log a reconfiguration warning. `slurmd -C` prints the real layout (no config needed).
LAYOUT=$(slurmd -C 2>/dev/null | head -1 | grep -o 'Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' || true)

MARK="# Written by weak3d .ci/slurm-up.sh (removed by slurm-down.sh)."
if [ -s /etc/slurm/slurm.conf ] && ! grep -qxF "$MARK" /etc/slurm/slurm.conf; then
  echo "slurm-up: /etc/slurm/slurm.conf exists and was not written by this script; not replacing it" >&2
  exit 1
fi
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
# MinJobAge stays at its default of 300 s: the Snakemake plugin's squeue status route needs finished
# jobs to stay listed (and falls back to sacct, which hangs without accounting, below 3 x init seconds).
cat >/etc/slurm/slurm.conf <<EOF
${MARK}
ClusterName=ci
SlurmctldHost=${HOST}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SlurmctldDebug=info
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdDebug=info
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=${HOST} CPUs=${CPUS} ${LAYOUT} RealMemory=${REALMEM} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
STARTED=""

# munge: the Debian postinst writes /etc/munge/munge.key; make one if it is missing. munged runs as
# user munge and needs /run/munge owned by it.
if [ ! -s /etc/munge/munge.key ]; then
  /usr/sbin/mungekey --create --force
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge
chown munge:munge /run/munge
if ! alive /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged
  STARTED="$STARTED munged"
fi
munge -n | unmunge >/dev/null

# Both daemonize and write their pid files, which slurm-down.sh reads.
if ! alive /run/slurmctld.pid; then
  /usr/sbin/slurmctld
  STARTED="$STARTED slurmctld"
fi
if ! alive /run/slurmd.pid; then
  /usr/sbin/slurmd
  STARTED="$STARTED slurmd"
fi

# Wait (at most 60 s) for the node to be idle. Right after a (re)start it shows `unk` for a few
# seconds; a node left down/drained by an earlier run is resumed.
state=""
for _ in $(seq 120); do
  state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  case "$state" in down* | drain*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;; esac
  sleep 0.5
done
sinfo
if [ "$state" != idle ]; then
  echo "slurm-up: node $HOST is '$state', not idle after 60 s; see /var/log/slurm/" >&2
  exit 1
fi
echo "started=${STARTED# }"
