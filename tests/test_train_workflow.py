"""The training rules end to end: a real `python -m snakemake` run on a small dataset
with two replicates, then dry runs that show what a change reruns (and what it
leaves alone), and the proof that test ratings never reach training."""

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import copy_workflow, model_names, scheduled_rules, snakemake

DATASET = "synthetic-20k"
SPLIT = "random"
MODELS = ["mlp", "dot", "hybrid", "mlp_then_dot", "hybrid_then_dot"]
FAST = "tests/config/fast.yaml"
REPLICATES = 2
BASE = f"results/{DATASET}/{SPLIT}"
TARGETS = [
    f"{BASE}/models/{m}/rep{r}/metrics.json" for m in MODELS for r in range(1, REPLICATES + 1)
] + [f"{BASE}/models/baselines.json"]

pytestmark = pytest.mark.slow


def configs(project, *extra):
    """--configfile arguments: fast models, two replicates, then `extra` overrides."""
    reps = project / "replicates.yaml"
    reps.write_text(f"replicates: {REPLICATES}\n")
    return ("--configfile", FAST, str(reps), *map(str, extra))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workflow copy in which the training targets have been built once."""
    project = copy_workflow(tmp_path_factory.mktemp("train") / "project")
    snakemake(project, *TARGETS, *configs(project), mirror=False)
    return project


def models_dir(project):
    return project / BASE / "models"


def read_json(path):
    return json.loads(path.read_text())


def test_training_targets_are_built(trained):
    base = read_json(models_dir(trained) / "baselines.json")["baselines"]
    assert base["bias_only"]["test_rmse"] < base["global_mean"]["test_rmse"]
    fast = yaml.safe_load((trained / FAST).read_text())["models"]
    for name in MODELS:
        seeds = []
        for rep in range(1, REPLICATES + 1):
            run = models_dir(trained) / name / f"rep{rep}"
            metrics = read_json(run / "metrics.json")
            meta = read_json(run / "model.json")
            epochs = sum(p["epochs"] for p in fast[name]["phases"])
            assert len(metrics["history"]) == epochs, name
            vals = [e["val_rmse"] for e in metrics["history"]]
            assert metrics["best_epoch"] == int(np.argmin(vals)) + 1, name
            assert metrics["val_rmse"] == min(vals), name
            assert metrics["test_rmse"] < base["global_mean"]["test_rmse"], name
            assert (
                metrics["n_test"]
                == pq.ParquetFile(trained / BASE / "split/test.parquet").metadata.num_rows
            )
            assert meta["settings"]["n_factors"] == 8, name  # fast.yaml reached the rule
            assert meta["n_users"] > 0 and meta["users"].endswith("data/users.parquet")
            assert "test" not in meta and meta["val"].endswith("split/val.parquet")
            seeds.append(meta["settings"]["seed"])
            log = trained / BASE / "logs" / "train_model" / f"{name}-rep{rep}.log"
            assert f"epoch {epochs}/{epochs}" in log.read_text()
            bench = trained / "results/benchmarks" / DATASET / SPLIT / "train_model"
            assert (bench / f"{name}-rep{rep}.tsv").is_file()
        assert seeds == [seeds[0] + r for r in range(REPLICATES)], name
        first, second = (
            read_json(models_dir(trained) / name / f"rep{r}/metrics.json")["test_rmse"]
            for r in (1, 2)
        )
        assert first != second, f"{name}: two seeds gave the same test RMSE"


def test_pretrain_edges(trained):
    models = models_dir(trained)
    for rep in range(1, REPLICATES + 1):
        mlp_init = read_json(models / "mlp_then_dot" / f"rep{rep}" / "model.json")["init"]
        assert mlp_init["path"].endswith(f"models/mlp_then_dot/rep{rep}/pretrain/model.pt")
        assert mlp_init["arch"] == "mlp"
        assert (models / "mlp_then_dot" / f"rep{rep}" / "pretrain" / "history.json").is_file()
        # hybrid_then_dot starts from hybrid's checkpoint (init_from): no pretrain stage.
        hybrid = read_json(models / "hybrid_then_dot" / f"rep{rep}" / "model.json")["init"]
        assert hybrid["path"].endswith(f"models/hybrid/rep{rep}/model.pt")
        assert hybrid["copied"] == ["user_emb", "movie_emb", "user_bias", "movie_bias"]
    assert not list((models / "hybrid_then_dot").glob("rep*/pretrain"))


def test_nothing_to_do_after_the_run(trained):
    assert scheduled_rules(trained, *TARGETS, *configs(trained)) == {}


def test_one_models_setting_reruns_only_that_model(trained):
    override = trained / "dot-batch.yaml"
    override.write_text(yaml.safe_dump({"models": {"dot": {"batch_size": 1024}}}))
    args = (*TARGETS, *configs(trained, override))
    assert scheduled_rules(trained, *args) == {"train_model": 2, "evaluate_model": 1}
    plan = snakemake(trained, "-n", *args, mirror=False).stdout
    jobs = {
        " ".join(line.split()[1:])
        for line in plan.splitlines()
        if line.strip().startswith("wildcards:")
    }
    assert jobs == {
        f"dataset={DATASET}, split={SPLIT}, model=dot, replicate={r}"
        for r in range(1, REPLICATES + 1)
    } | {f"dataset={DATASET}, split={SPLIT}, model=dot"}


def test_patience_reaches_its_model_only(trained):
    override = trained / "patience.yaml"
    override.write_text(yaml.safe_dump({"models": {"mlp": {"patience": 1}}}))
    args = (*TARGETS, *configs(trained, override))
    assert scheduled_rules(trained, *args) == {"train_model": 2, "evaluate_model": 1}


def test_adding_a_replicate_trains_only_the_new_one(trained):
    override = trained / "three.yaml"
    override.write_text("replicates: 3\n")
    targets = [t.replace("rep2/", "rep3/") for t in TARGETS if "rep2/" in t]
    counts = scheduled_rules(trained, *TARGETS, *targets, *configs(trained, override))
    assert counts == {"train_model": 5, "pretrain_model": 1, "evaluate_model": 5}


def test_editing_the_models_module_reruns_training_only(trained):
    # Edited in place, then restored with its old mtime for the other tests.
    models_py = trained / "workflow" / "scripts" / "movierec" / "models.py"
    text, stat = models_py.read_text(), models_py.stat()
    try:
        models_py.write_text(text + "\n# edited by a test\n")
        scheduled = scheduled_rules(trained, *TARGETS, *configs(trained))
    finally:
        models_py.write_text(text)
        os.utime(models_py, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    n = len(MODELS) * REPLICATES
    assert scheduled == {
        "train_model": n,
        "pretrain_model": REPLICATES,
        "evaluate_model": len(MODELS),
    }
    assert scheduled_rules(trained, *TARGETS, *configs(trained)) == {}


def weights_and_choices(run):
    """The saved tensors and the validation history without its timings."""
    import torch

    state = torch.load(run / "model.pt", weights_only=True)
    history = read_json(run / "history.json")
    timing = ("seconds", "ratings_per_s")
    epochs = [{k: v for k, v in e.items() if k not in timing} for e in history["history"]]
    return state, epochs, history["best_epoch"], history["val_rmse"]


def torch_equal(a, b):
    import torch

    return bool(torch.equal(a, b))


def test_test_ratings_never_reach_training(trained):
    """Replace every test rating by noise: only evaluation reruns, and retrained weights
    are bit-identical (the training rules do not even take the test part as input)."""
    test_path = trained / BASE / "split" / "test.parquet"
    dot = models_dir(trained) / "dot" / "rep1"
    state, *choices = weights_and_choices(dot)
    table = pq.read_table(test_path)
    noise = np.random.default_rng(0).choice(np.arange(0.5, 5.5, 0.5), table.num_rows)
    column = table.schema.get_field_index("rating")
    table = table.set_column(column, "rating", pa.array(noise.astype(np.float32)))
    pq.write_table(table, test_path)
    assert scheduled_rules(trained, *TARGETS, *configs(trained)) == {
        "compute_baselines": 1,
        "evaluate_model": len(MODELS),
    }
    # (--forcerun takes a list: the target goes first so it is not read as a rule name)
    snakemake(
        trained, f"{BASE}/models/dot/rep1/model.pt", "--forcerun", "train_model",
        *configs(trained), mirror=False,
    )  # fmt: skip
    new_state, *new_choices = weights_and_choices(dot)
    assert new_choices == choices
    assert state.keys() == new_state.keys()
    for key, tensor in state.items():
        assert torch_equal(tensor, new_state[key]), key
    snakemake(trained, *TARGETS, *configs(trained), mirror=False)
    noisy = read_json(dot / "metrics.json")["test_rmse"]
    assert noisy > 1.2  # scored against noise: the test part really changed


def test_notebook_config_plans_the_2017_run(project):
    """config/notebook-2017.yaml validates and plans its own pretrain for hybrid_then_dot.

    Its hybrid pretrain (15 epochs) differs from models.hybrid (5 epochs), so it
    sets init_from: null and trains a pretrain stage, unlike the defaults.
    """
    config = yaml.safe_load((project / "config.yaml").read_text())
    notebook = yaml.safe_load((project / "config/notebook-2017.yaml").read_text())
    reps = notebook.get("replicates", config["replicates"])
    counts = scheduled_rules(project, "--configfile", "config/notebook-2017.yaml")
    assert counts.get("pretrain_model") == 2 * reps, counts
    n_models = len(model_names("config/notebook-2017.yaml"))
    assert counts.get("train_model") == n_models * reps, counts
    assert counts.get("evaluate_model") == n_models, counts
    assert counts.get("download_release") == 1, counts


def test_a_finetune_with_other_n_factors_fails_when_the_dag_is_built(project):
    override = project / "bad.yaml"
    override.write_text(yaml.safe_dump({"models": {"mlp_then_dot": {"n_factors": 7}}}))
    proc = snakemake(project, "-n", "--configfile", str(override), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "models.mlp_then_dot: n_factors 7 differs from its pretrain's n_factors 50" in out


def test_kfold_scheme_aggregates_its_folds(tmp_path):
    """A 2-fold scheme trains every model on each fold; its summary pools the folds."""
    project = copy_workflow(tmp_path / "project")
    override = project / "cv2.yaml"
    override.write_text(
        "split: cv2\n"
        "splits:\n  cv2: {method: kfold, k: 2, seed: 3, val_fraction: 0.1}\n"
        "dataset: synthetic-20k\n"
    )
    snakemake(project, "--configfile", FAST, str(override), mirror=False)
    base = project / "results" / DATASET
    folds = [json.loads((base / f"cv2-{i}/split/split.json").read_text()) for i in (1, 2)]
    assert sum(f["n_test"] for f in folds) == folds[0]["n_ratings"]
    table = pd.read_csv(base / "cv2/reports/models.csv").set_index("model")
    assert (table.loc[MODELS, "runs"] == 2).all()
    for m in MODELS:
        per_fold = [
            read_json(base / f"cv2-{i}/models/{m}/rep1/metrics.json")["test_rmse"] for i in (1, 2)
        ]
        assert table.loc[m, "test_rmse"] == pytest.approx(np.mean(per_fold))
        assert table.loc[m, "test_rmse_sd"] == pytest.approx(np.std(per_fold, ddof=1))
    summary = (base / "cv2/reports/summary.md").read_text()
    assert "2-fold scheme `cv2`" in summary and "cv2-1" in summary and "cv2-2" in summary
