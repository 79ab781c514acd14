"""movierec.split: the contract's seeded split, its summary, and its input checks."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from movierec import split

N_ROWS = 5003


def write_ratings(path, n_rows=N_ROWS, n_users=300, n_movies=400, seed=0, timestamps=True):
    """A ratings.parquet with the contract's schema; `timestamp` doubles as a row id."""
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "user": pa.array(rng.integers(0, n_users, n_rows), pa.int32()),
            "movie": pa.array(rng.integers(0, n_movies, n_rows), pa.int32()),
            "rating": pa.array(rng.integers(1, 11, n_rows) / 2, pa.float32()),
            "timestamp": pa.array(np.arange(n_rows) if timestamps else [None] * n_rows, pa.int64()),
        }
    )
    pq.write_table(table, path)
    return table


def run(tmp_path, ratings, seed=42, val_fraction=0.2, tag="out"):
    out = tmp_path / tag
    paths = {
        "train_out": out / "train.parquet",
        "val_out": out / "val.parquet",
        "summary_out": out / "split.json",
    }
    summary = split.split_ratings(ratings, seed, val_fraction, **paths)
    return summary, paths


@pytest.fixture
def ratings(tmp_path):
    path = tmp_path / "ratings.parquet"
    write_ratings(path)
    return path


def test_disjoint_union_sizes_and_order(tmp_path, ratings):
    summary, out = run(tmp_path, ratings)
    train = pq.read_table(out["train_out"])
    val = pq.read_table(out["val_out"])
    source = pq.read_table(ratings)
    assert train.schema == source.schema and val.schema == source.schema
    t_ids = train.column("timestamp").to_numpy()
    v_ids = val.column("timestamp").to_numpy()
    assert len(np.intersect1d(t_ids, v_ids)) == 0
    assert np.array_equal(np.sort(np.concatenate([t_ids, v_ids])), np.arange(N_ROWS))
    assert len(v_ids) == round(N_ROWS * 0.2) == 1001
    assert np.all(np.diff(t_ids) > 0) and np.all(np.diff(v_ids) > 0)  # original order
    # Rows are carried whole: each one equals its source row.
    assert val.to_pylist() == source.take(v_ids).to_pylist()
    assert (summary["n_ratings"], summary["n_train"], summary["n_val"]) == (N_ROWS, 4002, 1001)


def test_follows_the_data_contract(tmp_path, ratings):
    """Anyone can rebuild the split from the seed alone."""
    _, out = run(tmp_path, ratings, seed=123, val_fraction=0.3)
    perm = np.random.default_rng(123).permutation(N_ROWS)
    expected = np.sort(perm[: round(N_ROWS * 0.3)])
    assert np.array_equal(pq.read_table(out["val_out"]).column("timestamp").to_numpy(), expected)


def test_deterministic_for_a_seed_and_different_for_another(tmp_path, ratings):
    _, a = run(tmp_path, ratings, seed=7, tag="a")
    _, b = run(tmp_path, ratings, seed=7, tag="b")
    _, c = run(tmp_path, ratings, seed=8, tag="c")
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes(), key
    va = pq.read_table(a["val_out"]).column("timestamp").to_numpy()
    vc = pq.read_table(c["val_out"]).column("timestamp").to_numpy()
    assert len(va) == len(vc) and not np.array_equal(va, vc)
    assert len(np.intersect1d(va, vc)) < 0.5 * len(va)


def test_summary_fields_and_unseen_counts(tmp_path):
    path = tmp_path / "ratings.parquet"
    # Sparse ids, so that validation holds users and movies training never saw.
    write_ratings(path, n_rows=2000, n_users=1500, n_movies=1800, seed=1)
    summary, out = run(tmp_path, path, seed=5, val_fraction=0.25)
    on_disk = json.loads(out["summary_out"].read_text())
    assert on_disk == summary
    assert set(on_disk) == {
        "n_ratings",
        "n_train",
        "n_val",
        "seed",
        "val_fraction",
        "val_unseen_users",
        "val_unseen_movies",
        "val_rows_with_unseen_user",
        "val_rows_with_unseen_movie",
    }
    assert (on_disk["seed"], on_disk["val_fraction"]) == (5, 0.25)
    train = pq.read_table(out["train_out"]).to_pydict()
    val = pq.read_table(out["val_out"]).to_pydict()
    for side in ("user", "movie"):
        seen = set(train[side])
        unseen_rows = [x for x in val[side] if x not in seen]
        assert on_disk[f"val_unseen_{side}s"] == len(set(unseen_rows))
        assert on_disk[f"val_rows_with_unseen_{side}"] == len(unseen_rows)
        assert 0 < len(set(unseen_rows)) < len(unseen_rows)  # the test has teeth


def test_null_timestamps_survive(tmp_path):
    path = tmp_path / "ratings.parquet"
    write_ratings(path, n_rows=300, timestamps=False)
    _, out = run(tmp_path, path)
    val = pq.read_table(out["val_out"])
    assert val.schema.field("timestamp").type == pa.int64()
    assert val.column("timestamp").null_count == val.num_rows == 60


@pytest.mark.parametrize("val_fraction", [0, 1, 1.5, -0.1, True, "0.2", None, float("nan")])
def test_bad_val_fraction(tmp_path, ratings, val_fraction):
    with pytest.raises(ValueError, match="val_fraction must be a number in"):
        run(tmp_path, ratings, val_fraction=val_fraction)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seed", [-1, 1.5, "42", None, False])
def test_bad_seed(tmp_path, ratings, seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        run(tmp_path, ratings, seed=seed)
    assert not (tmp_path / "out").exists()


def test_empty_input_is_an_error_and_writes_nothing(tmp_path):
    path = tmp_path / "ratings.parquet"
    write_ratings(path, n_rows=0)
    with pytest.raises(ValueError, match=r"ratings\.parquet: no rating rows"):
        run(tmp_path, path)
    assert not (tmp_path / "out").exists()


def test_a_side_left_empty_is_an_error(tmp_path):
    path = tmp_path / "ratings.parquet"
    write_ratings(path, n_rows=2)
    with pytest.raises(ValueError, match="leaves no validation rows"):
        run(tmp_path, path, val_fraction=0.2)  # round(0.4) == 0
    with pytest.raises(ValueError, match="leaves no training rows"):
        run(tmp_path, path, val_fraction=0.8)  # round(1.6) == 2
    assert not (tmp_path / "out").exists()


def test_missing_column_names_the_file(tmp_path):
    path = tmp_path / "ratings.parquet"
    pq.write_table(pa.table({"userId": [1, 2, 3], "movie": [0, 1, 2]}), path)
    with pytest.raises(ValueError, match=r"ratings\.parquet: missing column\(s\) \['user'\]"):
        run(tmp_path, path)
    assert not (tmp_path / "out").exists()
