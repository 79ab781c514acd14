"""The training rules end to end: a real `python -m snakemake` run on a small dataset,
then dry runs that show what a change reruns (and what it leaves alone)."""

import json
import os

import pytest
import yaml
from conftest import copy_workflow, scheduled_rules, snakemake

DATASET = "synthetic-20k"
MODELS = ["mlp", "dot", "hybrid", "mlp_then_dot", "hybrid_then_dot"]
FAST = "tests/config/fast.yaml"
TARGETS = [f"results/{DATASET}/models/{m}/metrics.json" for m in MODELS] + [
    f"results/{DATASET}/models/baselines.json"
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workflow copy in which the training targets have been built once."""
    project = copy_workflow(tmp_path_factory.mktemp("train") / "project")
    snakemake(project, *TARGETS, "--configfile", FAST)
    return project


def models_dir(project):
    return project / "results" / DATASET / "models"


def test_training_targets_are_built(trained):
    base = json.loads((models_dir(trained) / "baselines.json").read_text())
    assert base["bias_only_rmse"] < base["global_mean_rmse"]
    fast = yaml.safe_load((trained / FAST).read_text())["models"]
    for name in MODELS:
        metrics = json.loads((models_dir(trained) / name / "metrics.json").read_text())
        meta = json.loads((models_dir(trained) / name / "model.json").read_text())
        epochs = sum(p["epochs"] for p in fast[name]["phases"])
        assert len(metrics["epochs"]) == epochs, name
        assert metrics["best_val_rmse"] < base["global_mean_rmse"], name
        assert meta["settings"]["n_factors"] == 8, name  # fast.yaml reached the rule
        assert meta["n_users"] > 0 and meta["users"].endswith("data/users.parquet")
        log = trained / "results" / DATASET / "logs" / "train_model" / f"{name}.log"
        assert f"epoch {epochs}/{epochs}" in log.read_text()
        bench = trained / "results" / "benchmarks" / DATASET / "train_model" / f"{name}.tsv"
        assert bench.is_file()


def test_pretrain_edges(trained):
    models = models_dir(trained)
    mlp_init = json.loads((models / "mlp_then_dot" / "model.json").read_text())["init"]
    assert mlp_init["path"].endswith("models/mlp_then_dot/pretrain/model.pt")
    assert mlp_init["arch"] == "mlp"
    assert (models / "mlp_then_dot" / "pretrain" / "metrics.json").is_file()
    # hybrid_then_dot's pretrain block equals models.hybrid: hybrid is trained once, reused.
    hybrid_init = json.loads((models / "hybrid_then_dot" / "model.json").read_text())["init"]
    assert hybrid_init["path"].endswith("models/hybrid/model.pt")
    assert hybrid_init["copied"] == ["user_emb", "movie_emb", "user_bias", "movie_bias"]
    assert not (models / "hybrid_then_dot" / "pretrain").exists()


def test_nothing_to_do_after_the_run(trained):
    assert scheduled_rules(trained, *TARGETS, "--configfile", FAST) == {}


def test_one_models_setting_reruns_only_that_model(trained):
    override = trained / "dot-batch.yaml"
    override.write_text(yaml.safe_dump({"models": {"dot": {"batch_size": 1024}}}))
    # (--configfile takes several files: keep it after the targets)
    args = (*TARGETS, "--configfile", FAST, str(override))
    assert scheduled_rules(trained, *args) == {"train_model": 1}
    plan = snakemake(trained, "-n", *args).stdout
    jobs = [line.split()[1:] for line in plan.splitlines() if line.strip().startswith("wildcards:")]
    assert jobs == [[f"dataset={DATASET},", "model=dot"]]


def test_editing_the_models_module_reruns_training_only(trained):
    # Edited in place (library inputs are absolute paths, so a copied project would
    # see a new input set), then restored with its old mtime for the other tests.
    models_py = trained / "workflow" / "scripts" / "movierec" / "models.py"
    text, stat = models_py.read_text(), models_py.stat()
    try:
        models_py.write_text(text + "\n# edited by a test\n")
        scheduled = scheduled_rules(trained, *TARGETS, "--configfile", FAST)
    finally:
        models_py.write_text(text)
        os.utime(models_py, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert scheduled == {"train_model": 5, "pretrain_model": 1}
    for upstream in ("generate_synthetic", "index_ratings", "split_ratings", "compute_baselines"):
        assert upstream not in scheduled
    assert scheduled_rules(trained, *TARGETS, "--configfile", FAST) == {}


def test_notebook_config_plans_the_2017_run(project):
    """config/notebook-2017.yaml validates and plans its own pretrain for hybrid_then_dot.

    Its hybrid pretrain (15 epochs) differs from models.hybrid (5 epochs), so the
    DAG must not reuse hybrid's checkpoint there, unlike with the defaults.
    """
    counts = scheduled_rules(project, "--configfile", "config/notebook-2017.yaml")
    assert counts.get("pretrain_model") == 2, counts
    assert counts.get("train_model") == 5, counts
    assert counts.get("download_release") == 1, counts
