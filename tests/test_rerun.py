"""Only stale steps rerun. The session's finished default run (ml_small_run: ml-latest-small
from the shared mirror, config.yaml as it is), copied once, then dry runs on that copy
with one thing changed: a model's hyperparameter, the library's model
code, the split scheme's seed, a report threshold, the downloaded archive rewritten byte for byte,
and the execution profile. Each asserts exactly which jobs Snakemake would run.
"""

import os
import shutil
import time
from collections import Counter

import pytest
import yaml
from conftest import MIRROR, REPO, snakemake
from rule_info import dry_run_jobs, workflow_rules

pytestmark = pytest.mark.slow

DATASET = "ml-latest-small"
DATA_RULES = {"download_release", "index_ratings", "split_ratings"}
TRAINING_RULES = {"compute_baselines", "pretrain_model", "train_model", "evaluate_model"}
MODEL_RULES = {"train_model", "evaluate_model"}
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
REPLICATES = CONFIG["replicates"]
N_MODELS = len(CONFIG["models"])
#: Trainings of config.yaml's default run: each model, once per replicate.
N_TRAININGS = N_MODELS * REPLICATES


def base_args(*configfiles):
    configs = ["--configfile", *configfiles] if configfiles else []
    return [*configs, "--config", f"dataset={DATASET}", f"mirror={MIRROR}"]


@pytest.fixture(scope="module")
def finished(ml_small_run, tmp_path_factory):
    """A copy of the session's finished default run (mtimes and metadata kept), so that
    this module may change it; `pristine` puts it back after each test that does."""
    project = tmp_path_factory.mktemp("rerun") / "project"
    shutil.copytree(ml_small_run, project, symlinks=True)
    return project


@pytest.fixture(scope="module")
def rules(finished):
    return {r["name"]: r for r in workflow_rules(finished)}


@pytest.fixture(scope="module")
def pristine(finished):
    """A copy of the finished project, to put it back after each test that changes it."""
    keep = finished.with_name("pristine")
    shutil.copytree(finished, keep, symlinks=True)
    return keep


@pytest.fixture
def clone(finished, pristine):
    """The finished project, restored afterwards (same path, mtimes and metadata).

    Same path, not a copy elsewhere: Snakemake records input paths, and the test below
    checks separately that a moved project stays up to date.
    """
    yield finished
    shutil.rmtree(finished)
    shutil.copytree(pristine, finished, symlinks=True)


def jobs_in(project, *configfiles, extra=()):
    jobs, out = dry_run_jobs(project, *base_args(*configfiles), *extra)
    return jobs, out


def write_override(project, name, data):
    path = project / name
    path.write_text(yaml.safe_dump(data))
    return name


def report_rules(rules):
    """Rules downstream of the models: reports and recommendations."""
    stages = ("report.smk", "recommend.smk")
    return {n for n, r in rules.items() if r["snakefile"].endswith(stages)}


def test_a_second_run_has_nothing_to_do(finished):
    proc = snakemake(finished, *base_args(), mirror=False)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stderr[-3000:]
    jobs, _ = jobs_in(finished)
    assert jobs == []


def test_moved_project_is_up_to_date(finished, tmp_path):
    # Users rename or move finished run directories (and CI clones elsewhere): only the
    # content counts, so a copy at another path (mtimes kept) has nothing to do.
    moved = tmp_path / "moved"
    shutil.copytree(finished, moved, symlinks=True)
    jobs, out = jobs_in(moved)
    assert jobs == [], out[-3000:]


@pytest.mark.parametrize(
    ("model", "change"),
    [
        ("dot", {"batch_size": 1024}),
        ("dot", {"engine": "reference"}),
        ("implicit", {"implicit_weight_decay": 0.1}),
        ("implicit", {"average_from": 3}),
        ("implicit", {"bias_weight_decay": None}),
        ("dot", {"average_from": None}),  # dot's block is merged into others: only dot reruns
        ("hybrid_then_dot", {"init_from": None}),  # start from scratch, not from hybrid
    ],
)
def test_b_model_hyperparameter_reruns_that_model_and_its_reports(clone, rules, model, change):
    override = write_override(clone, "model.yaml", {"models": {model: change}})
    jobs, out = jobs_in(clone, override)
    ran = Counter(rule for rule, _, _ in jobs)
    models = {wc.get("model") for rule, wc, _ in jobs if "model" in wc}
    assert ran["train_model"] == REPLICATES and ran["evaluate_model"] == 1, jobs
    assert models == {model}, jobs
    assert not (set(ran) & (DATA_RULES | {"compute_baselines", "pretrain_model"})), ran
    assert set(ran) - MODEL_RULES <= report_rules(rules), ran
    assert ran["rank_movie_bias"] == 1 and ran["summarize_models"] == 1, ran


def test_b_init_from_source_reruns_its_finetune_too(clone, rules):
    # hybrid_then_dot starts from hybrid's checkpoint (init_from: hybrid).
    override = write_override(clone, "hybrid.yaml", {"models": {"hybrid": {"seed": 7}}})
    jobs, out = jobs_in(clone, override)
    trained = Counter(wc["model"] for rule, wc, _ in jobs if rule == "train_model")
    assert trained == {"hybrid": REPLICATES, "hybrid_then_dot": REPLICATES}, jobs
    ran = Counter(rule for rule, _, _ in jobs)
    assert "pretrain_model" not in ran, "hybrid_then_dot starts from hybrid's checkpoint"
    assert not (set(ran) & (DATA_RULES | {"compute_baselines"})), ran
    assert set(ran) - MODEL_RULES <= report_rules(rules), ran
    report_models = {wc["model"] for _, wc, _ in jobs if "model" in wc}
    assert report_models == {"hybrid", "hybrid_then_dot"}, report_models


def test_c_model_code_reruns_training_and_reports_not_data(clone, rules):
    models_py = clone / "workflow" / "scripts" / "movierec" / "models.py"
    with models_py.open("a") as f:
        f.write("\n# edited by tests/test_rerun.py\n")
    jobs, out = jobs_in(clone)
    ran = Counter(rule for rule, _, _ in jobs)
    assert not (set(ran) & DATA_RULES), ran
    assert ran["train_model"] == N_TRAININGS and ran["pretrain_model"] >= 1, ran
    assert ran["evaluate_model"] == N_MODELS, ran
    assert "compute_baselines" not in ran, "baselines do not use models.py"
    assert set(ran) & report_rules(rules), ran


def test_d_split_seed_reruns_split_training_reports_not_download_index(clone, rules):
    override = write_override(clone, "seed.yaml", {"splits": {"random": {"seed": 4242}}})
    jobs, out = jobs_in(clone, override)
    ran = Counter(rule for rule, _, _ in jobs)
    assert "download_release" not in ran and "index_ratings" not in ran, ran
    assert ran["split_ratings"] == 1 and ran["compute_baselines"] == 1, ran
    assert ran["train_model"] == N_TRAININGS and ran["pretrain_model"] >= 1, ran
    assert ran["evaluate_model"] == N_MODELS, ran
    assert set(ran) & report_rules(rules), ran


@pytest.mark.parametrize(
    "change",
    [
        {"splits": {"temporal": {"test_fraction": 0.2}}},
        {"splits": {"cv5": {"k": 10}}},
        {
            "splits": {
                "mine": {"method": "random", "seed": 1, "val_fraction": 0.2, "test_fraction": 0.2}
            }
        },
    ],  # fmt: skip
    ids=["other-scheme", "kfold-scheme", "new-scheme"],
)
def test_d_another_split_scheme_reruns_nothing_here(clone, change):
    override = write_override(clone, "scheme.yaml", change)
    jobs, out = jobs_in(clone, override)
    assert jobs == [], out[-3000:]


def test_e_report_threshold_reruns_only_that_report(clone):
    config = yaml.safe_load((clone / "config.yaml").read_text())
    top_n = config["reports"]["bias"]["top_n"] + 3
    override = write_override(clone, "report.yaml", {"reports": {"bias": {"top_n": top_n}}})
    jobs, out = jobs_in(clone, override)
    ran = Counter(rule for rule, _, _ in jobs)
    assert set(ran) == {"rank_movie_bias"}, ran
    n_bias_models = sum(1 for m in config["models"].values() if m["arch"] != "mlp")
    assert ran["rank_movie_bias"] == n_bias_models, ran


def test_f_rewriting_the_archive_with_same_bytes_reruns_nothing(clone):
    raw = clone / "results" / DATASET / "raw"
    archive = raw / "ml-latest-small.zip"
    assert archive.is_file(), sorted(p.name for p in raw.iterdir())
    data = archive.read_bytes()
    before = archive.stat().st_mtime_ns
    time.sleep(0.05)
    archive.write_bytes(data)  # in place: same bytes, newer mtime
    assert archive.stat().st_mtime_ns > before
    jobs, out = jobs_in(clone)
    assert jobs == [], out[-3000:]
    # And as a download tool would do it: a new file renamed over the old one.
    tmp = raw / ".ml-latest-small.zip.part"
    tmp.write_bytes(data)
    os.replace(tmp, archive)
    jobs, out = jobs_in(clone)
    assert jobs == [], out[-3000:]


def test_f_small_files_are_compared_by_checksum_not_mtime(clone):
    # Why the rewrite above reruns nothing, and the counterpart that does rerun: inputs under
    # --max-checksum-file-size (1 MB) whose mtime is newer are compared by their recorded
    # checksum; with checksums off (size 0), the same rewrite makes every consumer stale.
    movies = clone / "results" / DATASET / "data" / "movies.parquet"
    assert movies.stat().st_size < 1_000_000, movies.stat().st_size
    time.sleep(0.05)
    movies.write_bytes(movies.read_bytes())
    jobs, out = jobs_in(clone)
    assert jobs == [], out[-3000:]
    jobs, out = jobs_in(clone, extra=["--max-checksum-file-size", "0"])
    ran = Counter(rule for rule, _, _ in jobs)
    assert ran["train_model"] == N_TRAININGS, ran
    assert not (set(ran) & {"download_release", "index_ratings", "split_ratings"}), ran


@pytest.mark.parametrize("profile", ["local", "gpu", "slurm", "slurm-gpu"])
def test_switching_profile_reruns_nothing(finished, profile):
    jobs, out = jobs_in(finished, extra=["--workflow-profile", f"workflow/profiles/{profile}"])
    assert jobs == [], f"{profile}: {jobs}\n{out[-3000:]}"
    assert "Nothing to be done" in out
