"""End to end: download/generate -> index -> split with `python -m snakemake`.

One throwaway copy of the workflow builds the three data stages of
ml-latest-small (from the shared mirror), seed-sample (the notebook's two
files, no timestamps) and synthetic-20k (a size not in the registry, scaled by
common.smk); the tests then check the files, that a second run has nothing to
do, and that only what changed reruns.
"""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import MIRROR, copy_workflow, scheduled_rules, snakemake

pytestmark = pytest.mark.slow

DATASETS = ("ml-latest-small", "seed-sample", "synthetic-20k")
TARGETS = [f"results/{d}/split/split.json" for d in DATASETS]
RATINGS_SCHEMA = pa.schema(
    [
        ("user", pa.int32()),
        ("movie", pa.int32()),
        ("rating", pa.float32()),
        ("timestamp", pa.int64()),
    ]
)


@pytest.fixture(scope="module")
def built(tmp_path_factory, mirror):
    """A workflow copy in which the three datasets' data stages have run once."""
    project = copy_workflow(tmp_path_factory.mktemp("data_workflow") / "project")
    snakemake(project, *TARGETS)
    return project


def read(project, dataset, path):
    return pq.read_table(project / "results" / dataset / path)


def check_split(project, dataset, n_ratings):
    """Sizes, disjointness, union and the contract's algorithm; returns the summary."""
    ratings = read(project, dataset, "data/ratings.parquet")
    train = read(project, dataset, "split/train.parquet")
    val = read(project, dataset, "split/val.parquet")
    summary = json.loads((project / "results" / dataset / "split/split.json").read_text())
    assert train.schema == val.schema == ratings.schema == RATINGS_SCHEMA
    n_val = round(n_ratings * 0.2)
    assert (summary["n_ratings"], summary["n_train"], summary["n_val"]) == (
        n_ratings,
        n_ratings - n_val,
        n_val,
    )
    assert (train.num_rows, val.num_rows) == (n_ratings - n_val, n_val)
    assert (summary["seed"], summary["val_fraction"]) == (42, 0.2)
    # (user, movie) pairs are unique, so they identify rows.
    keys = {
        name: table.column("user").to_numpy().astype(np.int64) * 1_000_000
        + table.column("movie").to_numpy()
        for name, table in (("all", ratings), ("train", train), ("val", val))
    }
    assert len(np.unique(keys["all"])) == n_ratings
    assert len(np.intersect1d(keys["train"], keys["val"])) == 0
    assert np.array_equal(
        np.sort(np.concatenate([keys["train"], keys["val"]])), np.sort(keys["all"])
    )
    perm = np.random.default_rng(42).permutation(n_ratings)
    assert val.equals(ratings.take(np.sort(perm[:n_val])))
    for side in ("user", "movie"):
        seen = np.isin(val.column(side).to_numpy(), train.column(side).to_numpy())
        assert summary[f"val_rows_with_unseen_{side}"] == int((~seen).sum())
        assert summary[f"val_unseen_{side}s"] == len(np.unique(val.column(side).to_numpy()[~seen]))
    return summary


def check_index(project, dataset, n_ratings, n_users, n_movies):
    ratings = read(project, dataset, "data/ratings.parquet")
    users = read(project, dataset, "data/users.parquet")
    movies = read(project, dataset, "data/movies.parquet")
    assert ratings.num_rows == n_ratings
    assert users.num_rows == n_users and movies.num_rows == n_movies
    for side, n in (("user", n_users), ("movie", n_movies)):
        ids = ratings.column(side).to_numpy()
        assert ids.min() == 0 and ids.max() == n - 1 and len(np.unique(ids)) == n
    assert users.column("user").to_pylist() == list(range(n_users))
    assert movies.column("movie").to_pylist() == list(range(n_movies))
    assert sorted(users.column("userId").to_pylist()) == users.column("userId").to_pylist()
    return ratings, users, movies


def test_ml_latest_small(built):
    ratings, _, _ = check_index(built, "ml-latest-small", 100_836, 610, 9_724)
    assert ratings.column("timestamp").null_count == 0
    summary = check_split(built, "ml-latest-small", 100_836)
    assert summary["val_rows_with_unseen_movie"] > 0  # many movies have one rating


def test_seed_sample_has_no_timestamps(built):
    ratings = read(built, "seed-sample", "data/ratings.parquet")
    assert ratings.num_rows == 100_000
    assert ratings.column("timestamp").null_count == 100_000
    check_split(built, "seed-sample", 100_000)
    val = read(built, "seed-sample", "split/val.parquet")
    assert val.column("timestamp").null_count == val.num_rows


def test_synthetic_20k_indexes_to_its_spec(built):
    raw = built / "results" / "synthetic-20k" / "raw"
    spec = json.loads((raw / "planted.json").read_text())
    assert spec["n_ratings"] == 20_000  # scaled from the name, not in the registry
    _, users, movies = check_index(
        built, "synthetic-20k", spec["n_ratings"], spec["n_users"], spec["n_movies"]
    )
    planted = pd.read_csv(raw / "planted_movies.csv")
    assert movies.column("movieId").to_pylist() == planted.movieId.tolist()
    assert users.column("userId").to_pylist() == list(range(1, spec["n_users"] + 1))
    titles = movies.column("title").to_pylist()
    assert titles[0].startswith("Synthetic Movie ")
    check_split(built, "synthetic-20k", 20_000)


def test_second_run_has_nothing_to_do(built):
    assert scheduled_rules(built, *TARGETS) == {}
    proc = snakemake(built, *TARGETS)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_split_settings_rerun_the_split_only(built, tmp_path):
    """Params are provenance: a new split seed reruns split_ratings and nothing before it."""
    override = tmp_path / "seed.yaml"
    override.write_text("split:\n  seed: 1\n")
    assert scheduled_rules(built, *TARGETS, "--configfile", str(override)) == {"split_ratings": 3}


def test_editing_the_split_module_reruns_the_split_only(project):
    target = "results/synthetic-20k/split/split.json"
    snakemake(project, target)
    module = project / "workflow" / "scripts" / "movierec" / "split.py"
    module.write_text(module.read_text() + "\n# edited\n")
    assert scheduled_rules(project, target) == {"split_ratings": 1}
    module = project / "workflow" / "scripts" / "movierec" / "synthetic.py"
    module.write_text(module.read_text() + "\n# edited\n")
    assert scheduled_rules(project, target) == {
        "generate_synthetic": 1,
        "index_ratings": 1,
        "split_ratings": 1,
    }


@pytest.mark.parametrize(
    "args",
    [
        ("results/ml-nonesuch/split/split.json",),
        ("--config", "dataset=ml-nonesuch", f"mirror={MIRROR}"),
    ],
    ids=["target", "config"],
)
def test_unknown_dataset_lists_the_known_ones(project, args):
    proc = snakemake(project, "-n", *args, check=False, mirror=args[0] != "--config")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Unknown dataset 'ml-nonesuch'" in out
    for known in ("ml-latest-small", "ml-25m", "seed-sample", "synthetic-100k", "synthetic-<N>"):
        assert known in out
    assert not (project / "results").exists()
