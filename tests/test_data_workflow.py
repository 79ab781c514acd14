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
from conftest import MIRROR, copy_workflow, model_names, scheduled_rules, snakemake

pytestmark = pytest.mark.slow

DATASETS = ("ml-latest-small", "seed-sample", "synthetic-20k")
SPLIT = "random"
TARGETS = [f"results/{d}/{SPLIT}/split/split.json" for d in DATASETS]
PARTS = ("train", "val", "test")
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


def keys(table):
    """(user, movie) pairs as one int per row; pairs are unique, so they identify rows."""
    return table.column("user").to_numpy().astype(np.int64) * 1_000_000 + table.column(
        "movie"
    ).to_numpy().astype(np.int64)


def read_parts(project, dataset, split):
    parts = {p: read(project, dataset, f"{split}/split/{p}.parquet") for p in PARTS}
    summary = json.loads((project / "results" / dataset / split / "split/split.json").read_text())
    return parts, summary


def check_partition(ratings, parts):
    """The parts are disjoint and together exactly the ratings, with the index's schema."""
    assert all(t.schema == RATINGS_SCHEMA for t in parts.values())
    k = {name: keys(t) for name, t in parts.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert len(np.intersect1d(k[a], k[b])) == 0, (a, b)
    assert np.array_equal(np.sort(np.concatenate(list(k.values()))), np.sort(keys(ratings)))


def check_split(project, dataset, n_ratings):
    """Sizes, disjointness, union and the contract's algorithm; returns the summary."""
    ratings = read(project, dataset, "data/ratings.parquet")
    parts, summary = read_parts(project, dataset, SPLIT)
    n_test = n_val = round(n_ratings * 0.1)
    assert (summary["n_ratings"], summary["n_train"], summary["n_val"], summary["n_test"]) == (
        n_ratings,
        n_ratings - n_val - n_test,
        n_val,
        n_test,
    )
    assert summary["scheme"] == {
        "method": "random",
        "seed": 42,
        "val_fraction": 0.1,
        "test_fraction": 0.1,
    }
    check_partition(ratings, parts)
    perm = np.random.default_rng(42).permutation(n_ratings)
    assert parts["test"].equals(ratings.take(np.sort(perm[:n_test])))
    assert parts["val"].equals(ratings.take(np.sort(perm[n_test : n_test + n_val])))
    train = parts["train"]
    for part in ("val", "test"):
        for side in ("user", "movie"):
            values = parts[part].column(side).to_numpy()
            seen = np.isin(values, train.column(side).to_numpy())
            assert summary[f"{part}_rows_with_unseen_{side}"] == int((~seen).sum())
            assert summary[f"{part}_unseen_{side}s"] == len(np.unique(values[~seen]))
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
    assert summary["test_rows_with_unseen_movie"] > 0  # many movies have one rating


def test_seed_sample_has_no_timestamps(built):
    ratings = read(built, "seed-sample", "data/ratings.parquet")
    assert ratings.num_rows == 100_000
    assert ratings.column("timestamp").null_count == 100_000
    check_split(built, "seed-sample", 100_000)
    test = read(built, "seed-sample", f"{SPLIT}/split/test.parquet")
    assert test.column("timestamp").null_count == test.num_rows


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
    override.write_text("splits:\n  random: {seed: 1}\n")
    assert scheduled_rules(built, *TARGETS, "--configfile", str(override)) == {"split_ratings": 3}
    # Another scheme's settings are not this split's provenance.
    override.write_text("splits:\n  temporal: {test_fraction: 0.3}\n")
    assert scheduled_rules(built, *TARGETS, "--configfile", str(override)) == {}


def test_editing_the_split_module_reruns_the_split_only(project):
    target = f"results/synthetic-20k/{SPLIT}/split/split.json"
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
        (f"results/ml-nonesuch/{SPLIT}/split/split.json",),
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


# --- Split schemes through the workflow ---------------------------------------------

METHOD_SPLITS = ["temporal", "temporal-user", *(f"cv5-{i}" for i in range(1, 6))]


@pytest.fixture(scope="module")
def schemes(built):
    """ml-latest-small's temporal, per-user temporal and 5-fold splits, built once."""
    snakemake(built, *(f"results/ml-latest-small/{s}/split/split.json" for s in METHOD_SPLITS))
    return built


def test_every_scheme_partitions_the_ratings(schemes):
    ratings = read(schemes, "ml-latest-small", "data/ratings.parquet")
    for split in METHOD_SPLITS:
        parts, summary = read_parts(schemes, "ml-latest-small", split)
        check_partition(ratings, parts)
        assert summary["n_test"] > 0 and summary["n_val"] > 0, split


def test_temporal_split_leaks_no_later_rating_into_training(schemes):
    parts, summary = read_parts(schemes, "ml-latest-small", "temporal")
    latest_train = parts["train"].column("timestamp").to_numpy().max()
    earliest_val = parts["val"].column("timestamp").to_numpy().min()
    earliest_test = parts["test"].column("timestamp").to_numpy().min()
    assert latest_train < earliest_val <= earliest_test
    assert parts["val"].column("timestamp").to_numpy().max() <= earliest_test
    assert summary["leak_free"] is True
    assert summary["train_max_timestamp"] == latest_train


def test_per_user_temporal_split_tests_each_users_latest(schemes):
    parts, _ = read_parts(schemes, "ml-latest-small", "temporal-user")
    train = parts["train"].to_pandas()
    test = parts["test"].to_pandas()
    assert test.groupby("user").size().max() == 5
    last_train = train.groupby("user")["timestamp"].max()
    first_test = test.groupby("user")["timestamp"].min()
    assert (last_train.loc[first_test.index] <= first_test).all()


def test_kfold_test_parts_partition_the_ratings(schemes):
    ratings = read(schemes, "ml-latest-small", "data/ratings.parquet")
    tests = [read_parts(schemes, "ml-latest-small", f"cv5-{i}")[0]["test"] for i in range(1, 6)]
    all_test = np.concatenate([keys(t) for t in tests])
    assert len(np.unique(all_test)) == len(all_test) == ratings.num_rows
    assert np.array_equal(np.sort(all_test), np.sort(keys(ratings)))


def test_temporal_split_of_a_release_without_timestamps_is_a_clear_error(built):
    proc = snakemake(built, "results/seed-sample/temporal/split/split.json", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "seed-sample" in out and "timestamp" in out, out[-3000:]
    assert not (built / "results/seed-sample/temporal/split").exists()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("results/ml-latest-small/nonesuch/split/split.json", "Unknown split 'nonesuch'"),
        ("results/ml-latest-small/cv5-6/split/split.json", "fold 6 of the 5-fold scheme"),
        ("results/ml-latest-small/cv5/split/split.json", "is a k-fold scheme"),
    ],
)
def test_unknown_split_names_the_known_ones(built, target, message):
    proc = snakemake(built, "-n", target, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_kfold_scheme_plans_every_fold_and_one_aggregate(built, tmp_path):
    # (as a file: scheduled_rules passes its own --config, which would replace ours)
    override = tmp_path / "cv5.yaml"
    override.write_text("split: cv5\n")
    counts = scheduled_rules(built, "--configfile", "tests/config/fast.yaml", str(override))
    n_models = len(model_names("tests/config/fast.yaml"))
    assert counts["train_model"] == 5 * n_models and counts["evaluate_model"] == 5 * n_models
    assert counts["summarize_folds"] == 1 and "summarize_models" not in counts


# --- A predefined split: ml-100k's u1.base / u1.test ---------------------------------


def ml100k_fixture(root, overlap=False, unknown=False):
    """A tiny ml-100k.zip (u.data, u.item, u1.base, u1.test) in a mirror dir; its sha256."""
    import hashlib
    import zipfile

    rng = np.random.default_rng(3)
    rows = []
    for user in range(1, 21):
        for movie in rng.choice(np.arange(1, 31), size=10, replace=False):
            rows.append((user, int(movie), int(rng.integers(1, 6)), 880000000 + len(rows)))
    base, test = rows[:160], rows[160:]
    if overlap:
        test = test[:5] + [base[7]] + test[5:]
    if unknown:
        test = test[:3] + [(99, 1, 3, 881000000)] + test[3:]

    def lines(rs):
        return "".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in rs)

    item = "".join(
        f"{m}|Movie {m} (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 18 + ["1"]) + "\n"
        for m in range(1, 31)
    )
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ml-100k/u.data", lines(rows))
        z.writestr("ml-100k/u.item", item.encode("latin-1"))
        z.writestr("ml-100k/u1.base", lines(base))
        z.writestr("ml-100k/u1.test", lines(test))
    return hashlib.sha256(archive.read_bytes()).hexdigest(), len(base), len(test)


def predefined_run(project, tmp_path, **fixture):
    digest, n_base, n_test = ml100k_fixture(tmp_path / "mirror", **fixture)
    override = tmp_path / "ml100k.yaml"
    override.write_text(f"datasets:\n  ml-100k: {{sha256: {digest}, md5: null}}\n")
    proc = snakemake(
        project, "results/ml-100k/u1/split/split.json", "--configfile", str(override),
        "--config", f"mirror={tmp_path / 'mirror'}", mirror=False, check=False,
    )  # fmt: skip
    return proc, n_base, n_test


def test_predefined_split_reproduces_the_release_files(project, tmp_path):
    proc, n_base, n_test = predefined_run(project, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parts, summary = read_parts(project, "ml-100k", "u1")
    assert parts["test"].num_rows == n_test
    assert parts["train"].num_rows + parts["val"].num_rows == n_base
    assert parts["val"].num_rows == round(n_base * 0.1)
    assert summary["scheme"]["train"] == "ml-100k/u1.base"


@pytest.mark.parametrize(
    ("fixture", "message"),
    [({"overlap": True}, "u1.test, line 6"), ({"unknown": True}, "u1.test, line 4")],
    ids=["overlap", "unknown-id"],
)
def test_predefined_split_rejects_a_bad_test_file(project, tmp_path, fixture, message):
    proc, _, _ = predefined_run(project, tmp_path, **fixture)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in out, out[-3000:]
    assert not (project / "results/ml-100k/u1/split").exists()
