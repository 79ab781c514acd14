"""The workflow profiles: valid options, a comment for every entry, GPU requests only on
the training rules, slurm-gpu = slurm + GPUs, and nothing in them that is provenance
(so switching profile can rerun nothing; tests/test_rerun.py shows that on a finished run).
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow
from rule_info import workflow_rules

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "workflow" / "profiles"
NAMES = ["local", "gpu", "slurm", "slurm-gpu"]
TRAINING_RULES = {"train_model", "pretrain_model", "train_trial"}
# Options that change what a run computes or how Snakemake records it: a profile that set
# one would make switching profile rerun jobs (config/params) or every job (conda on/off).
PROVENANCE_KEYS = {
    "config",
    "configfile",
    "configfiles",
    "C",
    "software-deployment-method",
    "sdm",
    "use-conda",
    "use-singularity",
    "use-apptainer",
    "max-checksum-file-size",
}


def load(name):
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


@pytest.fixture(scope="module")
def cli_help():
    """`snakemake --help`, which lists core options and the installed plugins' ones."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def rule_names():
    return {r["name"] for r in workflow_rules(REPO)}


@pytest.mark.parametrize("name", NAMES)
def test_profile_options_exist(name, cli_help):
    profile = load(name)
    assert isinstance(profile, dict) and profile, f"{name}: empty or not a mapping"
    unknown = [k for k in profile if not re.search(rf"--{re.escape(k)}\b", cli_help)]
    assert not unknown, f"{name}: not snakemake options: {unknown}"
    assert not PROVENANCE_KEYS & set(profile), f"{name}: sets {PROVENANCE_KEYS & set(profile)}"


@pytest.mark.parametrize("name", NAMES)
def test_every_entry_has_a_comment(name):
    """Each top-level key sits in a block that opens with a comment saying why."""
    lines = (PROFILES / name / "config.yaml").read_text().splitlines()
    uncommented = []
    for i, line in enumerate(lines):
        if not re.match(r"^[A-Za-z][\w-]*:", line):
            continue
        j = i - 1
        # Walk up over the block's other keys and their nested lines.
        while j >= 0 and lines[j].strip() and not lines[j].startswith("#"):
            j -= 1
        if j < 0 or not lines[j].startswith("#"):
            uncommented.append(line.split(":")[0])
    assert not uncommented, f"{name}: entries without a comment above them: {uncommented}"


@pytest.mark.parametrize("name", NAMES)
def test_rules_named_in_profile_exist(name, rule_names):
    """A typo in set-resources/set-threads is silently ignored by Snakemake: catch it here."""
    profile = load(name)
    named = set(profile.get("set-resources", {})) | set(profile.get("set-threads", {}))
    assert named <= rule_names, f"{name}: unknown rules {named - rule_names}"


def test_local_profile():
    p = load("local")
    assert p["cores"] == "all"
    assert set(p["rerun-triggers"]) == {"mtime", "params", "input", "software-env", "code"}
    assert p["printshellcmds"] is True and p["show-failed-logs"] is True
    assert "executor" not in p and "set-resources" not in p


def test_gpu_profile_gives_training_rules_one_gpu():
    p = load("gpu")
    assert "executor" not in p
    assert p["resources"]["gpu"] >= 1
    gpu_rules = {r for r, res in p["set-resources"].items() if "gpu" in res}
    assert gpu_rules == TRAINING_RULES
    assert all(p["set-resources"][r]["gpu"] == 1 for r in TRAINING_RULES)


def test_slurm_profile():
    p = load("slurm")
    assert p["executor"] == "slurm"
    # sacct needs slurmdbd; without it the plugin's sacct polling hangs the run.
    assert p["slurm-status-command"] == "squeue"
    # squeue polling needs MinJobAge (default 300 s) >= 3 x this; and low keeps steps short.
    assert 1 <= p["slurm-init-seconds-before-status-checks"] <= 10
    assert {"mem_mb", "runtime"} <= set(p["default-resources"])
    assert TRAINING_RULES <= set(p["set-threads"])
    for rule in TRAINING_RULES | {"index_ratings"}:
        assert {"mem_mb", "runtime"} <= set(p["set-resources"][rule]), rule
    assert not any("gpu" in res or "gres" in res for res in p["set-resources"].values())


def test_slurm_gpu_is_slurm_plus_gpus():
    slurm, gpu = load("slurm"), load("slurm-gpu")
    for rule in TRAINING_RULES:
        assert gpu["set-resources"][rule].pop("gpu") == 1, rule
    assert gpu == slurm, "slurm-gpu must differ from slurm only by the training rules' gpu: 1"
    # The plugin rejects GPU flags inside slurm_extra; requests must use gpu/gres resources.
    resources = [gpu["default-resources"], *gpu["set-resources"].values()]
    assert not any("slurm_extra" in res for res in resources)


def test_all_profiles_share_the_staleness_policy():
    triggers = {name: tuple(sorted(load(name)["rerun-triggers"])) for name in NAMES}
    assert len(set(triggers.values())) == 1, triggers


def _dry_run_resources(project, profile):
    """{rule: resources line} of a dry run scheduling every job (sweeps too) under `profile`."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--forceall",
            "all",
            "sweeps",
            "--workflow-profile",
            f"workflow/profiles/{profile}",
            "--config",
            "dataset=synthetic-20k",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    found = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        r = re.search(r"resources: (.*)", block)
        if m and r:
            found.setdefault(m.group(1), r.group(1))
    return found


@pytest.mark.parametrize("profile", ["gpu", "slurm-gpu"])
def test_gpu_request_reaches_training_jobs_only(profile, tmp_path):
    project = copy_workflow(tmp_path / "project")
    res = _dry_run_resources(project, profile)
    assert TRAINING_RULES <= set(res), f"training jobs not scheduled: {sorted(res)}"
    for rule, line in res.items():
        has_gpu = re.search(r"\bgpu=1\b", line) is not None
        assert has_gpu == (rule in TRAINING_RULES), f"{profile}: {rule}: {line}"


def test_jobs_on_a_small_training_part_take_one_thread_on_a_large_one_two(tmp_path):
    """Threads follow the training part's size (on ml-latest-small, two 1-thread training
    jobs side by side beat one 2-thread job); before the split exists, a dry run sees 2."""
    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    small.write_bytes(b"x" * 1_000_000)  # ml-latest-small's train.parquet: about 1 MB
    with large.open("wb") as f:
        f.truncate(13_000_000)  # about 1M ratings
    missing = tmp_path / "not-yet.parquet"
    rules = {r["name"]: r for r in workflow_rules(REPO, [small, large, missing])}
    for name in ("train_model", "pretrain_model", "recommend_model", "fit_peer"):
        assert rules[name]["threads"] == {str(small): 1, str(large): 2, str(missing): 2}, name
    assert rules["train_trial"]["threads"] == 1  # sweep trials: many small jobs
