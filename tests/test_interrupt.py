"""A run killed with SIGKILL during training resumes without redoing finished steps and
leaves no half-written file in results/.

SIGKILL is the hard case: neither Snakemake nor the rule scripts get to clean up. What
protects the results is that every output is written under a temporary name and renamed
(movierec.atomic), and that Snakemake marks running jobs incomplete in .snakemake/.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import torch
from conftest import MIRROR
from rule_info import parse_jobs

pytestmark = pytest.mark.slow

DATASET = "ml-latest-small"
SPLIT = "random"
FAST = "tests/config/fast.yaml"


def command(*extra):
    return [
        sys.executable, "-m", "snakemake", "--cores", "2", *extra,
        "--configfile", FAST, "--config", f"dataset={DATASET}", f"mirror={MIRROR}",
    ]  # fmt: skip


def snapshot(root):
    """{relative path: mtime_ns} of every file under root."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def training_state(log_text):
    """(finished, running) model names of train_model jobs, from Snakemake's own output.

    A job counts as finished only once Snakemake says so ("Finished jobid"), which is after
    it recorded the job's metadata; outputs on disk alone could belong to a job killed
    between writing them and that record.
    """
    models = {}
    # Local jobs print as "localrule <name>:", cluster jobs as "rule <name>:".
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", log_text):
        if re.match(r"(?:local)?rule train_model:\n", block):
            jobid = re.search(r"^\s+jobid: (\d+)$", block, re.M)
            model = re.search(r"^\s+wildcards: .*\bmodel=([^,\s]+)", block, re.M)
            if jobid and model:
                models[jobid.group(1)] = model.group(1)
    finished_ids = set(re.findall(r"Finished jobid: (\d+)", log_text))
    finished = {m for j, m in models.items() if j in finished_ids}
    running = {m for j, m in models.items() if j not in finished_ids}
    return finished, running


def wait_for_training(log_path, proc, timeout_s=600):
    """Block until one model has finished training and another is training."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before it could be interrupted")
        finished, running = training_state(log_path.read_text())
        if finished and running:
            return finished, running
        time.sleep(0.02)
    pytest.fail("training did not start within the time limit")


def test_sigkill_during_training_then_resume(project, tmp_path):
    if not (project / FAST).exists():
        pytest.fail(f"{FAST} (the fast test config) is missing")
    results = project / "results" / DATASET / SPLIT
    first_log = tmp_path / "first.log"
    with first_log.open("w") as log:
        proc = subprocess.Popen(
            command(), cwd=project, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            finished, in_progress = wait_for_training(first_log, proc)
        finally:
            # The whole process group: Snakemake and the job it is running, no cleanup.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    before = snapshot(project / "results")
    data_files = [
        p
        for p in before
        if p.startswith(DATASET) and (p.split("/")[1] in ("raw", "data") or "/split/" in p)
    ]
    assert any(p.endswith("split/train.parquet") for p in data_files), sorted(before)
    # Resume the way a user would: plain rerun; add --unlock / --rerun-incomplete only if
    # Snakemake asks for it.
    runs, steps = [], []
    args = []
    for _ in range(3):
        resumed = subprocess.run(
            command(*args), cwd=project, capture_output=True, text=True, timeout=900
        )
        out = resumed.stdout + resumed.stderr
        runs.append((args, resumed.returncode, out))
        if resumed.returncode == 0:
            break
        if "cannot be locked" in out or "LockException" in out:
            steps.append("--unlock")
            subprocess.run(command("--unlock"), cwd=project, capture_output=True, timeout=300)
        elif "--rerun-incomplete" in out or "incomplete" in out.lower():
            steps.append("--rerun-incomplete")
            args = ["--rerun-incomplete"]
        else:
            break
    args, rc, out = runs[-1]
    assert rc == 0, f"resume failed (args {args}):\n{out[-6000:]}"
    print(f"resumed after {len(runs)} attempt(s); Snakemake asked for: {steps or 'nothing'}")

    # Nothing finished was redone: no data job ran, no finished model was retrained,
    # and their files kept their mtimes.
    jobs = parse_jobs(out)
    ran_rules = {rule for rule, _, _ in jobs}
    assert not ran_rules & {"download_release", "index_ratings", "split_ratings"}, ran_rules
    retrained = {wc["model"] for rule, wc, _ in jobs if rule == "train_model"}
    assert in_progress <= retrained, (in_progress, retrained)
    assert not finished & retrained, f"finished models retrained: {finished & retrained}"
    after = snapshot(project / "results")
    for path in data_files:
        assert after.get(path) == before[path], f"{path} was rewritten"
    for model in finished:
        for name in ("model.pt", "history.json"):
            rel = f"{DATASET}/{SPLIT}/models/{model}/rep1/{name}"
            assert after[rel] == before[rel], f"{rel} was rewritten"

    # No half-written file anywhere: no temporaries, and every output loads.
    leftovers = [p for p in after if ".tmp" in os.path.basename(p)]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    counts = {"parquet": 0, "pt": 0, "json": 0}
    for rel in after:
        path = project / "results" / rel
        if rel.endswith(".parquet"):
            pq.read_table(path)
            counts["parquet"] += 1
        elif rel.endswith(".pt"):
            torch.load(path, weights_only=True)
            counts["pt"] += 1
        elif rel.endswith(".json"):
            json.loads(path.read_text())
            counts["json"] += 1
    assert counts["parquet"] >= 5 and counts["pt"] >= 5, counts
    assert (results / "reports" / "summary.md").stat().st_size > 0
