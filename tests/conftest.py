"""Shared fixtures: a throwaway copy of the workflow and a way to run Snakemake in it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "data" / "movielens-mirror"
FORMATS = REPO.parent / "shared" / "data" / "movielens-formats"


def copy_workflow(dest):
    """Copy what Snakemake needs into `dest`, so tests can edit code and config freely."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(REPO / name, dest / name)
    for name in ("workflow", "envs", "config", "tests/config"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def snakemake(project, *args, check=True, mirror=True, timeout=900):
    """Run `python -m snakemake` in `project`; return the CompletedProcess.

    Output is captured; on failure (with check=True) it is shown in the assertion.
    """
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    if mirror:
        cmd += ["--config", f"mirror={MIRROR}"]
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    return proc


def scheduled_rules(project, *args):
    """Rules a dry run would execute, as {rule: count}, parsed from the job stats.

    `args` (targets, --configfile ...) go before `--quiet rules`, which would
    otherwise swallow the targets as its own choices.
    """
    proc = snakemake(project, "-n", *args, "--quiet", "rules")
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


def model_names(*configfiles):
    """The models a run trains: config.yaml's, plus any a --configfile adds (merged by key)."""
    import yaml

    names = dict.fromkeys(yaml.safe_load((REPO / "config.yaml").read_text())["models"])
    for path in configfiles:
        names |= dict.fromkeys(yaml.safe_load((REPO / path).read_text()).get("models", {}))
    return list(names)


@pytest.fixture
def project(tmp_path):
    """A fresh copy of the workflow in a temporary directory."""
    return copy_workflow(tmp_path / "project")


@pytest.fixture(scope="session")
def mirror():
    if not MIRROR.is_dir():
        pytest.fail(f"shared mirror missing: {MIRROR} (the tests need ../shared beside the repo)")
    return MIRROR


@pytest.fixture(scope="session")
def ml_small_run(tmp_path_factory, mirror):
    """The default target (all reports of ml-latest-small), run once per session with the
    default config and shared by every module that checks a finished run (read-only use,
    or dry runs and targets outside `rule all`)."""
    project = copy_workflow(tmp_path_factory.mktemp("ml-latest-small"))
    snakemake(project, timeout=1500)
    return project
