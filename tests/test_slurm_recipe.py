"""``examples/slurm/sweep-array.sh``: run as sbatch runs an array task (the SLURM_ARRAY_* environment
of sbatch(1)), every array index base and step becomes shard K of N with K from 1, a requeued task
resumes its shard, two tasks of real sweeps merge into one report; and, where Debian's slurm-wlm
and munge are installed, the same script under a real single-node Slurm (slurmctld, slurmd, sbatch
--array --wait)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_cli

SCRIPT = REPO / "examples" / "slurm" / "sweep-array.sh"
EB = f"{sys.executable} -m energybench"


def _task(args: list[str], *, command: str = "echo", **slurm: str) -> subprocess.CompletedProcess[str]:
    """The script as one array task: SLURM_* as sbatch sets them, ``command`` in energybench's place."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update({"ENERGYBENCH_CMD": command, **slurm})
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize(("task_id", "first", "step", "count", "k"), [
    ("0", "0", "1", "4", 1), ("3", "0", "1", "4", 4),  # --array=0-3
    ("1", "1", "1", "4", 1), ("4", "1", "1", "4", 4),  # --array=1-4
    ("10", "10", "2", "3", 1), ("14", "10", "2", "3", 3),  # --array=10-14:2
])
def test_the_array_index_becomes_shard_k_of_n(tmp_path, task_id, first, step, count, k):
    r = _task(["quick", str(tmp_path / "out"), "-r", "5"], SLURM_ARRAY_TASK_ID=task_id, SLURM_ARRAY_TASK_MIN=first,
              SLURM_ARRAY_TASK_STEP=step, SLURM_ARRAY_TASK_COUNT=count, SLURM_ARRAY_JOB_ID="4242",
              SLURM_JOB_ID=str(4242 + int(task_id)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["sweep", "--config", "quick", "--shard", f"{k}/{count}", "--sweep-id", "4242",
                                "--out", f"{tmp_path}/out/shard-{k}-of-{count}", "--quiet", "-r", "5"]


def test_a_requeued_task_resumes_and_a_bare_run_is_refused(tmp_path):
    env = dict(SLURM_ARRAY_TASK_ID="2", SLURM_ARRAY_TASK_MIN="1", SLURM_ARRAY_TASK_COUNT="2", SLURM_ARRAY_JOB_ID="7")
    r = _task(["quick", "s3://bucket/study/"], SLURM_RESTART_COUNT="1", **env)
    assert r.returncode == 0 and r.stdout.split() == ["sweep", "--resume", "s3://bucket/study/shard-2-of-2", "--quiet"]
    (tmp_path / "shard-2-of-2").mkdir()
    (tmp_path / "shard-2-of-2" / "metadata.json").write_text("{}")  # started by an earlier attempt
    r = _task(["quick", str(tmp_path)], **env)
    assert r.stdout.split()[:3] == ["sweep", "--resume", f"{tmp_path}/shard-2-of-2"]
    r = _task(["quick", str(tmp_path)])  # no SLURM_ARRAY_*: not an array task
    assert r.returncode != 0 and "not an array task" in r.stderr and not r.stdout
    r = _task([], **env)
    assert r.returncode == 2 and "usage: sbatch --array=1-N" in r.stderr


def _config(path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "array", "models": ["synthetic:tiny"],
        "grid": {"threads": [1, 2], "batch": [16, 32], "prompt": {"n_prompt": 16}, "n_gen": 8},
        "warmup": 0, "repetitions": {"fixed": 2}, "cooldown": {"fixed_s": 0}, "idle_baseline_s": 0.2,
        "meters": ["estimate"], "cpu_tdp_w": 6}))
    return path


def _merged(out: Path, tmp_path: Path) -> dict:
    r = run_cli("report", str(out / "*"), "--no-figures", "--format", "json", "-o", str(tmp_path / "report"))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.slow
def test_two_array_tasks_of_real_sweeps_merge_into_one_report(tiny_model, tmp_path):
    cfg, out = _config(tmp_path / "array.yaml"), tmp_path / "out"
    for task in ("1", "2"):  # --array=1-2
        r = _task([str(cfg), str(out)], command=EB, SLURM_ARRAY_TASK_ID=task, SLURM_ARRAY_TASK_MIN="1",
                  SLURM_ARRAY_TASK_STEP="1", SLURM_ARRAY_TASK_COUNT="2", SLURM_ARRAY_JOB_ID="99")
        assert r.returncode == 0, r.stderr
    (one,) = _merged(out, tmp_path)["sets"]
    assert one["label"] == "out" and one["configurations"] == 4 and one["runs"] == 8


# ----------------------------------------------------------------------------- a real Slurm


def _slurm_conf(d: Path, host: str) -> Path:
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    for sub in ("state", "spool", "log"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    conf = d / "slurm.conf"
    conf.write_text(f"""ClusterName=eb
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
AuthType=auth/munge
AuthInfo=socket={d}/munge.sock
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SchedulerType=sched/builtin
ReturnToService=2
MpiDefault=none
NodeName={host} CPUs={os.cpu_count()} State=UNKNOWN
PartitionName=eb Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    return conf


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A single-node Slurm (munged, slurmctld, slurmd) from Debian's packages, up within a minute."""
    need = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo")
    missing = [b for b in need if shutil.which(b) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(f"a real Slurm needs root and {', '.join(missing) or 'root'} (apt-get install slurm-wlm munge)")
    d = tmp_path_factory.mktemp("slurm")
    host = socket.gethostname().split(".")[0]
    env = dict(os.environ, SLURM_CONF=str(_slurm_conf(d, host)))
    (d / "munge.key").write_bytes(os.urandom(1024))  # a private munged: its own key, socket and files
    (d / "munge.key").chmod(0o400)
    subprocess.run(["munged", "--force", f"--socket={d}/munge.sock", f"--key-file={d}/munge.key",
                    f"--pid-file={d}/munged.pid", f"--log-file={d}/log/munged.log", f"--seed-file={d}/munge.seed"],
                   check=True, timeout=30)
    procs = []
    try:
        for daemon in ("slurmctld", "slurmd"):
            err = (d / "log" / f"{daemon}.err").open("w")
            procs.append(subprocess.Popen([daemon, "-D", "-f", env["SLURM_CONF"]], env=env, start_new_session=True,
                                          stdout=subprocess.DEVNULL, stderr=err))
        deadline = time.monotonic() + 60
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True,
                                           text=True).stdout:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = "".join(p.read_text()[-1500:] for p in (d / "log").iterdir())
                pytest.fail(f"Slurm did not come up within a minute: {logs}")
            time.sleep(0.5)
        yield env
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        os.kill(int((d / "munged.pid").read_text()), signal.SIGTERM)


@pytest.mark.slow
def test_the_script_under_a_real_slurm_job_array(slurm, tiny_model, tmp_path):
    cfg, out = _config(tmp_path / "array.yaml"), tmp_path / "out"
    env = dict(slurm, ENERGYBENCH_CMD=EB)
    r = subprocess.run(["sbatch", "--array=0-1", "--wait", "--chdir", str(tmp_path), str(SCRIPT), str(cfg), str(out)],
                       env=env, capture_output=True, text=True, timeout=600)
    logs = "".join(p.read_text() for p in tmp_path.glob("energybench-*.log"))
    assert r.returncode == 0, r.stderr + logs
    assert "shard 1/2 of sweep" in logs and "shard 2/2 of sweep" in logs
    metas = [json.loads((out / f"shard-{k}-of-2" / "metadata.json").read_text()) for k in (1, 2)]
    assert len({m["sweep_id"] for m in metas}) == 1 and metas[0]["sweep_id"] == r.stdout.split()[-1]
    (one,) = _merged(out, tmp_path)["sets"]
    assert one["configurations"] == 4
