#!/usr/bin/env bash
# Bring up a single-node Slurm cluster with accounting on this machine (Debian's slurm-wlm 22.05, munge, MariaDB),
# for trying the Slurm path locally and for the tests. Needs root. Idempotent: a running cluster is left as it is.
#
#   sudo bash scripts/slurm_local.sh          # then: sinfo; ladder sweep hydra/launcher=submitit_slurm ...
#   sudo bash scripts/slurm_local.sh stop
#
# No systemd here, so the daemons start by hand. DefMemPerCPU keeps one job from taking the node's whole memory
# (else jobs run one at a time); task/affinity pins a 1-CPU job to 1 CPU (else torch oversubscribes); accounting
# (slurmdbd) lets submitit see a job that died instead of waiting for it forever.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "error: needs root (it installs packages and starts daemons)" >&2; exit 2; }
host=$(hostname -s)
conf=/etc/slurm
state=/var/lib/ladder-slurm

stop() {
  pkill -x slurmd || true; pkill -x slurmctld || true; pkill -x slurmdbd || true
  pkill -x mariadbd || true; pkill -x munged || true
}
if [ "${1:-}" = stop ]; then stop; exit 0; fi

if sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|alloc"; then echo "slurm: already up"; exit 0; fi

if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q slurm-wlm slurmdbd munge mariadb-server >/dev/null
fi
grep -q "$host" /etc/hosts || echo "127.0.0.1 $host" >> /etc/hosts

# munge: one key, its daemon
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged --force

# MariaDB for slurmdbd
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if ! pgrep -x mariadbd >/dev/null; then
  (mariadbd --user=mysql --skip-networking=0 --bind-address=127.0.0.1 >/var/log/ladder-mariadb.log 2>&1 &)
  for _ in $(seq 60); do mariadb -e "select 1" >/dev/null 2>&1 && break; sleep 0.5; done
fi
mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

mkdir -p $conf $state/ctld $state/d /var/log/slurm
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > $conf/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
CONF
chmod 600 $conf/slurmdbd.conf
cat > $conf/slurm.conf <<CONF
ClusterName=ladder
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$(( mem_mb / cpus / 2 ))
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
KillWait=10
MinJobAge=300
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
pgrep -x slurmdbd >/dev/null || slurmdbd
for _ in $(seq 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
sacctmgr -i add cluster ladder >/dev/null 2>&1 || true
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed" && break; sleep 0.5; done
sacctmgr -i add account ladder >/dev/null 2>&1 || true
sacctmgr -i add user root account=ladder >/dev/null 2>&1 || true
sinfo -h -o "%P %D %c %m %T" | sed 's/^/slurm: /'
