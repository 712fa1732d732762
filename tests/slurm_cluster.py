"""A real one-node Slurm cluster on this machine, for the tests: Debian's ``slurm-wlm`` and
``munge`` (CI installs them), configured in a temporary directory and started as root; its
daemons are stopped afterwards. ``SLURM_CONF`` points Slurm's commands at it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


class Unavailable(Exception):
    """The machine cannot run the cluster (its daemons would not start): the test is skipped
    with this reason, as where Slurm is not installed."""


def missing() -> str | None:
    """Why a cluster cannot be started here, or None."""
    for tool in ("sbatch", "squeue", "scontrol", "munge"):
        if shutil.which(tool) is None:
            return f"needs Slurm and munge ({tool} not found: apt-get install slurm-wlm munge)"
    for daemon in DAEMONS:
        if not Path("/usr/sbin", daemon).exists():
            return f"needs /usr/sbin/{daemon}"
    if os.geteuid() != 0:
        return "starting Slurm's daemons needs root"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def cluster(directory: Path):
    """A started cluster whose configuration lies in ``directory``; yields the environment
    (``SLURM_CONF``) its commands need."""
    host = socket.gethostname().split(".")[0]
    for name in ("state", "spool"):
        (directory / name).mkdir(parents=True, exist_ok=True)
    conf = directory / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=specrobust-test", f"SlurmctldHost={host}", "SlurmUser=root",
        "SlurmdUser=root", "AuthType=auth/munge", f"StateSaveLocation={directory / 'state'}",
        f"SlurmdSpoolDir={directory / 'spool'}",
        f"SlurmctldPidFile={directory / 'slurmctld.pid'}",
        f"SlurmdPidFile={directory / 'slurmd.pid'}",
        f"SlurmctldLogFile={directory / 'slurmctld.log'}",
        f"SlurmdLogFile={directory / 'slurmd.log'}",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "MpiDefault=none",
        "ReturnToService=2", "JobRequeue=1", "SchedulerType=sched/backfill",
        "JobCompType=jobcomp/none", "AccountingStorageType=accounting_storage/none",
        f"NodeName={host} CPUs={os.cpu_count() or 1} State=UNKNOWN",
        "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started = []
    if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["/usr/sbin/munged", "--force"], capture_output=True, text=True)
        if done.returncode != 0:
            raise Unavailable(f"munged would not start here: {done.stderr.strip()[-300:]}")
    for daemon in ("slurmctld", "slurmd"):
        started.append(subprocess.Popen([f"/usr/sbin/{daemon}", "-D", "-f", str(conf)],
                                        env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))
        time.sleep(1)
    try:
        for _ in range(60):
            idle = subprocess.run(["sinfo", "--noheader", "--format=%t"], env=env,
                                  capture_output=True, text=True)
            if idle.stdout.strip().startswith("idle"):
                break
            time.sleep(0.5)
        else:
            log = directory / "slurmctld.log"
            raise Unavailable("the one-node cluster did not come up here: "
                              + (log.read_text()[-300:] if log.is_file() else "no log"))
        yield env
    finally:
        subprocess.run(["scancel", "--full", "--user", "root"], env=env, capture_output=True)
        for process in reversed(started):
            process.terminate()
            process.wait(timeout=30)
