"""The DAG on a real single-node SLURM cluster, through workflow/profiles/slurm-gpu.

tests/slurm/slurm-up.sh installs (apt, if missing) and starts munged, MariaDB + slurmdbd,
slurmctld and slurmd with one fake GPU; tests/slurm/slurm-down.sh stops them by PID.
The evidence comes from SLURM's own records: sacct (every non-local job is a SLURM job
that COMPLETED in this project's directory; training jobs were allocated gres/gpu=1 and
no other job was) and the per-job logs under .snakemake/slurm_logs/.

Needs root and apt-get (CI has both); elsewhere it fails with a message saying so.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import MIRROR, copy_workflow
from rule_info import parse_jobs, workflow_rules

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
UP = REPO / "tests" / "slurm" / "slurm-up.sh"
DOWN = REPO / "tests" / "slurm" / "slurm-down.sh"
DATASET = "ml-latest-small"
TRAINING_RULES = {"train_model", "pretrain_model", "train_trial"}
RESULTS = f"results/{DATASET}/random"
# A slice of the DAG with every kind of job (data, baselines, pretrain -> finetune ->
# evaluate, and tests/config/slurm.yaml's two-trial sweep): the rules are the same as
# in `rule all`, at a sixth of its jobs (each a SLURM job that starts Python afresh).
TARGETS = [
    f"{RESULTS}/models/mlp_then_dot/rep1/metrics.json",
    f"{RESULTS}/models/baselines.json",
    f"{RESULTS}/sweeps/slurm_tiny/sweep.md",
]
# Seconds the whole snakemake run may take before SIGINT (which makes it scancel its jobs).
RUN_LIMIT_S = 420


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running cluster for the session; always stopped again, even when tests fail."""
    if os.geteuid() != 0:
        pytest.fail(
            "the slurm tests need root: tests/slurm/slurm-up.sh installs slurm-wlm and munge "
            "with apt-get and starts the daemons as root. Run `pytest -m slurm` as root "
            "(CI does), or deselect with -m 'not slurm'."
        )
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.fail("no SLURM client (sbatch) and no apt-get to install one (Debian/Ubuntu needed)")
    base = tmp_path_factory.mktemp("slurm-base")
    # The profiles size jobs for real datasets (training: 4 CPUs, 8 GB); advertise enough
    # that two trainings and a few small jobs can be scheduled side by side on this host.
    env = {
        **os.environ,
        "SLURM_BASE": str(base),
        "WITH_DBD": "1",
        "FAKE_GPUS": "2",
        "NODE_CPUS": "12",
        "NODE_MEM_MB": "64000",
    }
    etc_before = etc_slurm()
    t0 = time.monotonic()
    up = subprocess.run(["bash", str(UP)], env=env, capture_output=True, text=True, timeout=900)
    try:
        if up.returncode != 0:
            pytest.fail(f"slurm-up.sh failed ({up.returncode}):\n{up.stderr[-6000:]}")
        print(f"slurm-up.sh: {time.monotonic() - t0:.1f} s")
        yield base
    finally:
        t1 = time.monotonic()
        down = subprocess.run(
            ["bash", str(DOWN)], env=env, capture_output=True, text=True, timeout=300
        )
        print(f"slurm-down.sh: {time.monotonic() - t1:.1f} s\n{down.stderr}")
        # A config left for a stopped controller makes every later snakemake call wait
        # for `scontrol` (the SLURM plugin asks it at import): the machine is put back.
        assert etc_slurm() == etc_before, "slurm-down.sh did not restore /etc/slurm"


def etc_slurm():
    """The cluster configuration files on this machine, {name: text}."""
    names = ("slurm.conf", "gres.conf", "slurmdbd.conf")
    etc = Path("/etc/slurm")
    return {name: (etc / name).read_text() for name in names if (etc / name).is_file()}


def sacct_rows(job_ids, timeout_s=60):
    """{jobid: {JobName, State, AllocTRES, WorkDir}} from slurmdbd, once all are final."""
    fields = ["JobIDRaw", "JobName", "State", "AllocTRES", "WorkDir"]
    deadline = time.monotonic() + timeout_s
    while True:
        proc = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-a", "-S", "now-3hours", "-o", ",".join(fields)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        rows = {}
        for line in proc.stdout.splitlines():
            values = line.split("|")
            if len(values) == len(fields):
                rows[values[0]] = dict(zip(fields[1:], values[1:], strict=True))
        # Accounting reaches slurmdbd asynchronously: wait for every job's final state.
        if all(j in rows and rows[j]["State"] != "RUNNING" for j in job_ids):
            return rows
        if time.monotonic() > deadline:
            return rows
        time.sleep(1)


def test_dag_runs_as_slurm_jobs_with_gpu_for_training(slurm_cluster, tmp_path):
    project = copy_workflow(tmp_path / "project")
    for name in ("fast.yaml", "slurm.yaml"):
        assert (project / "tests" / "config" / name).exists(), f"tests/config/{name} missing"
    rules = {r["name"]: r for r in workflow_rules(project)}
    local_rules = {name for name, r in rules.items() if r["local"]}
    assert {"download_release", "all"} <= local_rules, local_rules

    cmd = [
        "timeout", "-s", "INT", "-k", "30", str(RUN_LIMIT_S),
        sys.executable, "-m", "snakemake", *TARGETS,  # (before --config, which
        "--workflow-profile", "workflow/profiles/slurm-gpu",       # takes what follows it)
        "--configfile", "tests/config/fast.yaml", "tests/config/slurm.yaml",
        "--config", f"dataset={DATASET}", f"mirror={MIRROR}",
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=project, capture_output=True, text=True, timeout=RUN_LIMIT_S + 60
    )
    elapsed = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    print(f"snakemake on SLURM: {elapsed:.1f} s, exit {proc.returncode}")
    assert proc.returncode == 0, f"snakemake exited {proc.returncode}:\n{out[-8000:]}"

    # What the run executed, from its own job blocks: `localrule` ones ran on this host.
    jobs = parse_jobs(out)
    assert jobs, out[-3000:]
    executed = Counter(rule for rule, _, _ in jobs)
    printed_local = {rule for rule, _, local in jobs if local}
    assert printed_local <= local_rules, printed_local
    remote_expected = Counter(rule for rule, _, local in jobs if not local)
    for rule in ("index_ratings", "split_ratings", "compute_baselines", "evaluate_model",
                 *TRAINING_RULES):  # fmt: skip
        assert remote_expected[rule] >= 1, f"{rule} did not run: {executed}"
    assert executed["train_model"] == executed["pretrain_model"] == 1, executed
    assert executed["train_trial"] == 2, executed

    # Every non-local job was submitted with sbatch and has its SLURM log.
    submitted = re.findall(
        r"submitted with SLURM jobid (\d+) \(log: (\S+?/slurm_logs/rule_(\w+)/\S*?\d+\.log)\)", out
    )
    by_rule = Counter(rule for _, _, rule in submitted)
    assert by_rule == remote_expected, f"submitted {by_rule} != non-local jobs {remote_expected}"
    for _, log, rule in submitted:
        text = Path(log).read_text()
        assert f"rule {rule}:" in text, f"SLURM log {log} does not show rule {rule}"

    # SLURM's accounting: each job COMPLETED, in this project, under this run's name;
    # training jobs (and only they) were allocated the GPU.
    ids = [job_id for job_id, _, _ in submitted]
    rows = sacct_rows(ids)
    run_names = set()
    for job_id, _, rule in submitted:
        assert job_id in rows, f"sacct has no record of job {job_id} ({rule})"
        row = rows[job_id]
        assert row["State"] == "COMPLETED", f"job {job_id} ({rule}): {row}"
        assert Path(row["WorkDir"]).resolve() == project.resolve(), row
        has_gpu = "gres/gpu=1" in row["AllocTRES"]
        assert has_gpu == (rule in TRAINING_RULES), f"job {job_id} ({rule}): {row['AllocTRES']}"
        run_names.add(row["JobName"])
    assert len(run_names) == 1, run_names

    # The results are there.
    results = project / RESULTS
    metrics = (results / "models" / "mlp_then_dot" / "rep1" / "metrics.json").read_text()
    assert '"test_rmse"' in metrics, metrics
    best = (results / "sweeps" / "slurm_tiny" / "best.json").read_text()
    assert '"n_trials": 2' in best, best

    # Switching profile reruns nothing: the local profile finds the SLURM results up to date.
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            *TARGETS,
            "--workflow-profile",
            "workflow/profiles/local",
            "--configfile",
            "tests/config/fast.yaml",
            "tests/config/slurm.yaml",
            "--config",
            f"dataset={DATASET}",
            f"mirror={MIRROR}",
        ],  # fmt: skip
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stderr[-3000:]
    assert "Nothing to be done" in check.stdout + check.stderr, check.stdout[-3000:]
    print(f"submitted {len(submitted)} SLURM jobs: {dict(by_rule)}")
