"""movierec.split: each scheme's contract, the three parts, the audit, and bad inputs.

Ratings fixtures are small in-memory tables with unique (user, movie) pairs, so
that every output row can be traced back to its input row; the predefined
scheme gets hand-written ml-100k style u1.base/u1.test files, indexed by the
real index stage.
"""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from movierec import split
from movierec.index import index_ratings
from movierec.index_schema import RATINGS_SCHEMA

N_ROWS = 5003
RANDOM = {"method": "random", "seed": 42, "val_fraction": 0.1, "test_fraction": 0.2}
GLOBAL = {"method": "temporal", "by": "global", "val_fraction": 0.1, "test_fraction": 0.2}
BY_USER = {"method": "temporal", "by": "user", "n_val": 1, "n_test": 2}
KFOLD = {"method": "kfold", "k": 5, "seed": 7, "val_fraction": 0.1}
PREDEFINED = {
    "method": "predefined",
    "train": "ml-100k/u1.base",
    "test": "ml-100k/u1.test",
    "val_fraction": 0.2,
    "seed": 3,
}
PART_KEYS = ("train_out", "val_out", "test_out")


def ratings_table(rows):
    """A ratings table with the index's schema from (user, movie, rating, timestamp) rows."""
    user, movie, rating, timestamp = zip(*rows, strict=True)
    return pa.table(
        {
            "user": pa.array(user, pa.int32()),
            "movie": pa.array(movie, pa.int32()),
            "rating": pa.array(rating, pa.float32()),
            "timestamp": pa.array(timestamp, pa.int64()),
        },
        schema=RATINGS_SCHEMA,
    )


def write_ratings(
    path, n_rows=N_ROWS, n_users=300, n_movies=400, seed=0, timestamps=True, n_times=None
):
    """Random ratings with unique (user, movie) pairs; timestamps tie often (`n_times` values)."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_movies, n_rows, replace=False)
    times = rng.integers(0, n_times or max(n_rows // 4, 1), n_rows) * 10 + 1_000_000
    table = ratings_table(
        zip(
            (pairs // n_movies).tolist(),
            (pairs % n_movies).tolist(),
            (rng.integers(1, 11, n_rows) / 2).tolist(),
            times.tolist() if timestamps else [None] * n_rows,
            strict=True,
        )
    )
    pq.write_table(table, path)
    return table


def run(tmp_path, ratings, scheme, tag="out", dataset="toy", **kwargs):
    out = tmp_path / tag
    paths = {
        "train_out": out / "train.parquet",
        "val_out": out / "val.parquet",
        "test_out": out / "test.parquet",
        "summary_out": out / "split.json",
    }
    summary = split.split_ratings(ratings, scheme, dataset=dataset, **paths, **kwargs)
    return summary, paths


def rows_of(part, source):
    """Row index in `source` of every row of `part` (pairs are unique in the fixtures)."""
    n_movies = 1 << 20
    key = source["user"].to_numpy().astype(np.int64) * n_movies + source["movie"].to_numpy()
    order = np.argsort(key)
    part_key = part["user"].to_numpy().astype(np.int64) * n_movies + part["movie"].to_numpy()
    rows = order[np.searchsorted(key[order], part_key)]
    assert np.array_equal(key[rows], part_key)
    return rows


def read_parts(paths, source):
    """The three parts as tables, checked to be whole source rows in source order."""
    tables = [pq.read_table(paths[key]) for key in PART_KEYS]
    rows = []
    for table in tables:
        assert table.schema == source.schema
        ids = rows_of(table, source)
        assert np.all(np.diff(ids) > 0)  # the input's order
        assert table.to_pylist() == source.take(ids).to_pylist()  # rows carried whole
        rows.append(ids)
    return tables, rows


def assert_partition(rows, n):
    """Parts are disjoint, non-empty and together exactly rows 0..n-1."""
    assert all(len(ids) for ids in rows)
    assert np.array_equal(np.sort(np.concatenate(rows)), np.arange(n))


@pytest.fixture
def ratings(tmp_path):
    path = tmp_path / "ratings.parquet"
    write_ratings(path)
    return path


# --- random ---------------------------------------------------------------------------


def test_random_parts_follow_the_contract(tmp_path, ratings):
    """Anyone can rebuild the split from the seed alone; sizes are exact."""
    summary, out = run(tmp_path, ratings, RANDOM)
    source = pq.read_table(ratings)
    _, (train, val, test) = read_parts(out, source)
    assert_partition((train, val, test), N_ROWS)
    perm = np.random.default_rng(42).permutation(N_ROWS)
    n_test, n_val = round(N_ROWS * 0.2), round(N_ROWS * 0.1)
    assert (n_test, n_val) == (1001, 500)
    assert np.array_equal(test, np.sort(perm[:n_test]))
    assert np.array_equal(val, np.sort(perm[n_test : n_test + n_val]))
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (3502, 500, 1001)
    assert summary["n_ratings"] == N_ROWS and summary["fold"] is None


def test_random_deterministic_for_a_seed_and_different_for_another(tmp_path, ratings):
    _, a = run(tmp_path, ratings, RANDOM, tag="a")
    _, b = run(tmp_path, ratings, RANDOM, tag="b")
    _, c = run(tmp_path, ratings, {**RANDOM, "seed": 43}, tag="c")
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes(), key
    ta = pq.read_table(a["test_out"]).column("timestamp").to_numpy()
    tc = pq.read_table(c["test_out"]).column("timestamp").to_numpy()
    assert len(ta) == len(tc) and not np.array_equal(ta, tc)


def test_random_unseen_counts(tmp_path):
    path = tmp_path / "ratings.parquet"
    # Sparse ids, so that validation and test hold users and movies training never saw.
    write_ratings(path, n_rows=2000, n_users=1500, n_movies=1800, seed=1)
    summary, out = run(tmp_path, path, {**RANDOM, "val_fraction": 0.25, "test_fraction": 0.25})
    train, val, test = (pq.read_table(out[key]).to_pydict() for key in PART_KEYS)
    for name, part in (("val", val), ("test", test)):
        for side in ("user", "movie"):
            seen = set(train[side])
            unseen_rows = [x for x in part[side] if x not in seen]
            assert summary[f"{name}_unseen_{side}s"] == len(set(unseen_rows))
            assert summary[f"{name}_rows_with_unseen_{side}"] == len(unseen_rows)
            assert 0 < len(set(unseen_rows)) < len(unseen_rows)  # the test has teeth


def test_random_without_timestamps(tmp_path):
    path = tmp_path / "ratings.parquet"
    write_ratings(path, n_rows=300, timestamps=False)
    summary, out = run(tmp_path, path, RANDOM)
    test = pq.read_table(out["test_out"])
    assert test.schema.field("timestamp").type == pa.int64()
    assert test.column("timestamp").null_count == test.num_rows == 60
    for key in ("train_max_timestamp", "val_min_timestamp", "test_min_timestamp", "leak_free"):
        assert summary[key] is None, key


@pytest.mark.parametrize(
    ("n_rows", "fractions", "empty"),
    [
        (4, (0.1, 0.5), "validation"),  # round(0.4) == 0
        (4, (0.5, 0.1), "test"),
        (10, (0.5, 0.5), "train"),
    ],
)
def test_random_empty_part_is_an_error(tmp_path, n_rows, fractions, empty):
    path = tmp_path / "ratings.parquet"
    write_ratings(path, n_rows=n_rows)
    scheme = {**RANDOM, "val_fraction": fractions[0], "test_fraction": fractions[1]}
    with pytest.raises(ValueError, match=rf"dataset 'toy'.*leaves the {empty} part empty"):
        run(tmp_path, path, scheme)
    assert not (tmp_path / "out").exists()


# --- temporal, global ------------------------------------------------------------------


def test_temporal_global_leaks_nothing_and_moves_ties_later(tmp_path):
    path = tmp_path / "ratings.parquet"
    source = write_ratings(path, n_rows=2000, n_times=150)  # ~13 ratings per second
    summary, out = run(tmp_path, path, GLOBAL)
    tables, rows = read_parts(out, source)
    assert_partition(rows, 2000)
    train, val, test = (t.column("timestamp").to_numpy() for t in tables)
    assert train.max() < val.min() and val.max() < test.min()
    # The contract: sort by (timestamp, row); cutoffs at the positions; ties to the later part.
    ts = source.column("timestamp").to_numpy()
    ordered = ts[np.lexsort((np.arange(2000), ts))]
    val_cutoff, test_cutoff = ordered[2000 - 400 - 200], ordered[2000 - 400]
    assert np.sum(ts == test_cutoff) > 1 and np.sum(ts == val_cutoff) > 1  # ties at both
    assert np.array_equal(rows[2], np.flatnonzero(ts >= test_cutoff))
    assert np.array_equal(rows[1], np.flatnonzero((ts >= val_cutoff) & (ts < test_cutoff)))
    assert len(rows[2]) > 400  # the tied rows were pulled into test
    assert (summary["val_cutoff"], summary["test_cutoff"]) == (val_cutoff, test_cutoff)
    assert summary["train_max_timestamp"] == train.max() < summary["val_min_timestamp"]
    assert summary["val_max_timestamp"] == val.max() < summary["test_min_timestamp"]
    assert summary["leak_free"] is True


def test_temporal_global_summary_by_hand(tmp_path):
    """Ten ratings; the two at second 800 straddle the test boundary and both go to test."""
    path = tmp_path / "ratings.parquet"
    rows = [
        (0, 0, 4.0, 100),
        (0, 1, 3.0, 200),
        (1, 0, 5.0, 300),
        (1, 2, 2.0, 400),
        (2, 1, 4.0, 500),
        (2, 3, 1.0, 600),
        (0, 2, 3.0, 700),
        (3, 0, 4.0, 800),
        (1, 3, 2.0, 800),
        (3, 4, 5.0, 900),
    ]
    pq.write_table(ratings_table(rows), path)
    scheme = {**GLOBAL, "val_fraction": 0.2, "test_fraction": 0.2}
    summary, out = run(tmp_path, path, scheme, dataset="hand")
    assert json.loads(out["summary_out"].read_text()) == summary
    assert summary == {
        "dataset": "hand",
        "method": "temporal",
        "scheme": scheme,
        "fold": None,
        "n_ratings": 10,
        "n_train": 6,
        "n_val": 1,
        "n_test": 3,
        "val_unseen_users": 0,
        "val_unseen_movies": 0,
        "val_rows_with_unseen_user": 0,
        "val_rows_with_unseen_movie": 0,
        "test_unseen_users": 1,  # user 3
        "test_unseen_movies": 1,  # movie 4
        "test_rows_with_unseen_user": 2,
        "test_rows_with_unseen_movie": 1,
        "val_cutoff": 700,
        "test_cutoff": 800,
        "train_max_timestamp": 600,
        "val_min_timestamp": 700,
        "val_max_timestamp": 700,
        "test_min_timestamp": 800,
        "leak_free": True,
    }
    assert pq.read_table(out["val_out"]).to_pylist() == [
        {"user": 0, "movie": 2, "rating": 3.0, "timestamp": 700}
    ]


def test_temporal_global_ties_that_empty_a_part(tmp_path):
    path = tmp_path / "ratings.parquet"
    # Sorted times 1 1 5 5 5 5 5 5 9 9: both cutoffs fall on second 5, which goes to test.
    rows = [(u, 0, 3.0, 1 if u < 2 else 5 if u < 8 else 9) for u in range(10)]
    pq.write_table(ratings_table(rows), path)
    scheme = {**GLOBAL, "val_fraction": 0.2, "test_fraction": 0.4}
    with pytest.raises(ValueError, match=r"leaves the validation part empty .*tied on a cutoff"):
        run(tmp_path, path, scheme)
    assert not (tmp_path / "out").exists()


# --- temporal, by user -----------------------------------------------------------------


def expected_by_user(user, timestamp, n_val, n_test):
    """The rule, one user at a time: latest to test, then validation, one kept in train."""
    label = np.zeros(len(user), dtype=np.uint8)
    for u in set(user.tolist()):
        rows = np.flatnonzero(user == u)
        rows = rows[np.argsort(timestamp[rows], kind="stable")]  # ties: row order
        c = len(rows)
        k_test = min(n_test, c - 1)
        k_val = min(n_val, c - 1 - k_test)
        label[rows[c - k_test :]] = split.TEST
        label[rows[c - k_test - k_val : c - k_test]] = split.VAL
    return label


def test_temporal_by_user_small_users_by_hand(tmp_path):
    path = tmp_path / "ratings.parquet"
    rows = [  # (user, movie, rating, timestamp); users interleaved, out of time order
        (3, 0, 1.0, 40),  # 0
        (0, 0, 2.0, 50),  # 1  user 0: one rating, train only
        (3, 1, 3.0, 10),  # 2
        (1, 0, 4.0, 10),  # 3  user 1: two ratings, the later to test, no validation
        (2, 0, 5.0, 30),  # 4
        (3, 2, 1.0, 30),  # 5
        (2, 1, 2.0, 5),  # 6
        (1, 1, 3.0, 20),  # 7
        (2, 2, 4.0, 30),  # 8  user 2: three; both 30s to test, 5 stays in train
        (3, 3, 5.0, 20),  # 9  user 3: 40 and 30 to test, 20 to validation, 10 train
        (4, 0, 1.0, 1),  # 10
        (4, 1, 2.0, 2),  # 11
        (4, 2, 3.0, 2),  # 12
        (4, 3, 4.0, 2),  # 13 user 4: tied latest broken by row: 13, 12 test; 11 val
    ]
    source = ratings_table(rows)
    pq.write_table(source, path)
    summary, out = run(tmp_path, path, BY_USER)
    _, (train, val, test) = read_parts(out, source)
    assert test.tolist() == [0, 4, 5, 7, 8, 12, 13]
    assert val.tolist() == [9, 11]
    assert train.tolist() == [1, 2, 3, 6, 10]
    assert summary["val_cutoff"] is None and summary["test_cutoff"] is None
    # User 4's training rating (second 1) is earlier than all, but user 0's (50) is not.
    assert summary["train_max_timestamp"] == 50 and summary["leak_free"] is False


def test_temporal_by_user_matches_the_rule_per_user(tmp_path):
    path = tmp_path / "ratings.parquet"
    # Few ratings per user (1 to ~12), many ties: every branch of the small-user rule.
    source = write_ratings(path, n_rows=1500, n_users=250, n_movies=600, seed=3, n_times=40)
    scheme = {**BY_USER, "n_val": 2, "n_test": 3}
    summary, out = run(tmp_path, path, scheme)
    tables, rows = read_parts(out, source)
    assert_partition(rows, 1500)
    user = source.column("user").to_numpy()
    ts = source.column("timestamp").to_numpy()
    label = expected_by_user(user, ts, 2, 3)
    for k, ids in enumerate(rows):
        assert np.array_equal(ids, np.flatnonzero(label == k))
    # Every user keeps a training rating; each user's latest rating is in test when possible.
    counts = np.bincount(user)
    assert set(tables[0].column("user").to_numpy()) == set(np.flatnonzero(counts))
    latest = {}
    for row in np.lexsort((np.arange(1500), ts)):
        latest[user[row]] = row
    in_test = set(rows[2].tolist())
    assert all((latest[u] in in_test) == (counts[u] > 1) for u in latest)
    assert summary["val_unseen_users"] == summary["test_unseen_users"] == 0
    train_max = tables[0].column("timestamp").to_numpy().max()
    held_min = min(t.column("timestamp").to_numpy().min() for t in tables[1:])
    assert summary["leak_free"] is bool(train_max <= held_min)


def test_temporal_by_user_each_users_latest_go_to_test(tmp_path):
    """With distinct times, test is exactly each user's latest n_test ratings."""
    path = tmp_path / "ratings.parquet"
    rng = np.random.default_rng(5)
    user = np.repeat(np.arange(40), 8)
    rows = list(
        zip(
            user.tolist(),
            np.tile(np.arange(8), 40).tolist(),
            [3.0] * 320,
            rng.permutation(320).tolist(),
            strict=True,
        )
    )
    pq.write_table(ratings_table(rows), path)
    _, out = run(tmp_path, path, BY_USER)
    test = pq.read_table(out["test_out"]).to_pydict()
    train = pq.read_table(out["train_out"]).to_pydict()
    for u in range(40):
        times = sorted(r[3] for r in rows if r[0] == u)
        got = sorted(t for v, t in zip(test["user"], test["timestamp"], strict=True) if v == u)
        assert got == times[-2:]
        kept = [t for v, t in zip(train["user"], train["timestamp"], strict=True) if v == u]
        assert len(kept) == 5 and max(kept) < times[-3]


# --- temporal without timestamps ------------------------------------------------------


@pytest.mark.parametrize("scheme", [GLOBAL, BY_USER], ids=["global", "user"])
def test_temporal_needs_timestamps(tmp_path, scheme):
    path = tmp_path / "ratings.parquet"
    write_ratings(path, n_rows=300, timestamps=False)
    with pytest.raises(ValueError, match=r"dataset 'ml-notime'.*temporal splits need timestamps"):
        run(tmp_path, path, scheme, dataset="ml-notime")
    pq.write_table(pq.read_table(path).drop_columns(["timestamp"]), path)
    with pytest.raises(ValueError, match=r"dataset 'ml-notime'.*no timestamp column"):
        run(tmp_path, path, scheme, dataset="ml-notime")
    assert not (tmp_path / "out").exists()


# --- kfold -----------------------------------------------------------------------------


def test_kfold_test_parts_partition_the_data(tmp_path):
    path = tmp_path / "ratings.parquet"
    n = 1003  # not a multiple of k
    source = write_ratings(path, n_rows=n)
    perm = np.random.default_rng(7).permutation(n)
    pieces = np.array_split(perm, 5)
    tests = []
    for fold in range(1, 6):
        summary, out = run(tmp_path, path, KFOLD, tag=f"fold{fold}", fold=fold)
        _, (train, val, test) = read_parts(out, source)
        assert_partition((train, val, test), n)
        # The contract: test is piece fold-1; validation leads the rest, cyclically after it.
        assert np.array_equal(test, np.sort(pieces[fold - 1]))
        rest = np.concatenate(pieces[fold:] + pieces[: fold - 1])
        n_val = round(len(rest) * 0.1)
        assert np.array_equal(val, np.sort(rest[:n_val]))
        assert (summary["fold"], summary["n_test"], summary["n_val"]) == (fold, len(test), n_val)
        tests.append(test)
    assert_partition(tests, n)
    assert sorted(len(t) for t in tests) == [200, 200, 201, 201, 201]


@pytest.mark.parametrize("fold", [None, 0, 6])
def test_kfold_needs_a_fold_in_range(tmp_path, ratings, fold):
    with pytest.raises(ValueError, match=rf"fold {fold} is not one of 1\.\.5"):
        run(tmp_path, ratings, KFOLD, fold=fold)
    assert not (tmp_path / "out").exists()


def test_a_fold_for_another_method_is_an_error(tmp_path, ratings):
    with pytest.raises(ValueError, match="a fold \\(2\\) belongs to kfold schemes only"):
        run(tmp_path, ratings, RANDOM, fold=2)
    assert not (tmp_path / "out").exists()


def test_kfold_more_folds_than_rows(tmp_path):
    path = tmp_path / "ratings.parquet"
    write_ratings(path, n_rows=20)
    with pytest.raises(ValueError, match="leaves the test part empty"):
        run(tmp_path, path, {**KFOLD, "k": 25}, fold=22)
    assert not (tmp_path / "out").exists()


# --- predefined ------------------------------------------------------------------------

BASE = [  # ml-100k u1.base style: user item rating timestamp; one row out of order
    "1\t10\t5\t1000",
    "1\t20\t3\t1001",
    "1\t30\t4\t1002",
    "4\t10\t2\t1003",
    "4\t40\t1\t1004",
    "4\t50\t5\t1005",
    "9\t20\t4\t1006",
    "9\t30\t3\t1007",
    "9\t60\t2\t1008",
    "9\t50\t1\t1009",
]
TEST = ["1\t40\t4\t2000", "4\t20\t3\t2001", "9\t10\t5\t2002"]


def predefined_release(tmp_path, base=BASE, test=TEST):
    """An ml-100k style release: u.data indexed by the index stage, u1.base/u1.test beside it."""
    raw = tmp_path / "raw"
    (raw / "ml-100k").mkdir(parents=True, exist_ok=True)
    (raw / "ml-100k" / "u.data").write_text("\n".join(reversed(BASE + TEST)) + "\n")
    data = tmp_path / "data"
    spec = {"format": "ml-100k", "ratings": "ml-100k/u.data", "movies": None}
    paths = {name: data / f"{name}.parquet" for name in ("ratings", "users", "movies")}
    index_ratings(raw, {**spec, "rating_scale": [1, 5]}, "error", *paths.values())
    (raw / "ml-100k" / "u1.base").write_text("\n".join(base) + "\n")
    (raw / "ml-100k" / "u1.test").write_text("\n".join(test) + "\n")
    return {
        "ratings": paths["ratings"],
        "raw_dir": raw,
        "release_format": "ml-100k",
        "users_path": paths["users"],
        "movies_path": paths["movies"],
    }


def run_predefined(tmp_path, release, scheme=PREDEFINED):
    inputs = {k: v for k, v in release.items() if k != "ratings"}
    return run(tmp_path, release["ratings"], scheme, dataset="ml-100k", **inputs)


def as_release_rows(table, release):
    """Rows of an output part as (userId, movieId, rating, timestamp) lines of the files."""
    user_ids = pq.read_table(release["users_path"]).column("userId").to_pylist()
    movie_ids = pq.read_table(release["movies_path"]).column("movieId").to_pylist()
    return [
        f"{user_ids[r['user']]}\t{movie_ids[r['movie']]}\t{r['rating']:g}\t{r['timestamp']}"
        for r in table.to_pylist()
    ]


def test_predefined_reproduces_the_files(tmp_path):
    release = predefined_release(tmp_path)
    summary, out = run_predefined(tmp_path, release)
    train, val, test = (pq.read_table(out[key]) for key in PART_KEYS)
    schema = pq.read_schema(release["ratings"])
    assert all(t.schema == schema for t in (train, val, test))
    assert (train.num_rows + val.num_rows, test.num_rows) == (len(BASE), len(TEST))
    assert (summary["n_ratings"], summary["n_train"], summary["n_val"]) == (13, 8, 2)
    assert as_release_rows(test, release) == TEST  # file order, codes map back
    in_val = np.zeros(len(BASE), dtype=bool)
    in_val[np.random.default_rng(3).permutation(len(BASE))[:2]] = True
    assert as_release_rows(val, release) == [b for b, v in zip(BASE, in_val, strict=True) if v]
    assert as_release_rows(train, release) == [
        b for b, v in zip(BASE, in_val, strict=True) if not v
    ]
    train_ts, val_ts = (t.column("timestamp").to_pylist() for t in (train, val))
    assert (summary["train_max_timestamp"], summary["val_min_timestamp"]) == (1008, 1006)
    assert (max(train_ts), min(val_ts), summary["test_min_timestamp"]) == (1008, 1006, 2000)
    # Validation is a random carve-out of u1.base, so training holds later ratings.
    assert summary["leak_free"] is False
    assert summary["scheme"] == PREDEFINED and summary["method"] == "predefined"


@pytest.mark.parametrize(
    ("name", "lines", "line", "message"),
    [
        ("u1.test", [TEST[0], "4\t70\t3\t2001", TEST[2]], 2, "movieId 70 is not in the index"),
        ("u1.base", BASE[:4] + ["5\t40\t1\t1004"] + BASE[5:], 5, "userId 5 is not in the index"),
        (
            "u1.test",
            TEST[:2] + ["9\t60\t5\t2002"],
            3,
            r"\(userId, movieId\) = \(9, 60\) is also in the train file .*u1\.base, line 9",
        ),
        (
            "u1.base",
            BASE + ["1\t20\t2\t1010"],
            11,
            r"\(userId, movieId\) = \(1, 20\) repeats line 2",
        ),
        (
            "u1.test",
            TEST + ["1\t40\t1\t2003"],
            4,
            r"\(userId, movieId\) = \(1, 40\) repeats line 1",
        ),
    ],
    ids=["unknown movie", "unknown user", "test row in train", "repeat in base", "repeat in test"],
)
def test_predefined_bad_rows_name_file_and_line(tmp_path, name, lines, line, message):
    files = {"u1.base": BASE, "u1.test": TEST, name: lines}
    release = predefined_release(tmp_path, base=files["u1.base"], test=files["u1.test"])
    with pytest.raises(ValueError, match=rf"ml-100k/{name}, line {line}: {message}"):
        run_predefined(tmp_path, release)
    assert not (tmp_path / "out").exists()


def test_predefined_missing_file(tmp_path):
    release = predefined_release(tmp_path)
    scheme = {**PREDEFINED, "test": "ml-100k/u9.test"}
    with pytest.raises(ValueError, match=r"u9\.test: the test file of the scheme is missing"):
        run_predefined(tmp_path, release, scheme)
    assert not (tmp_path / "out").exists()


def test_predefined_needs_its_inputs(tmp_path):
    release = predefined_release(tmp_path)
    with pytest.raises(ValueError, match="a predefined split needs raw_dir, users_path"):
        run(tmp_path, release["ratings"], PREDEFINED, release_format="ml-100k")
    assert not (tmp_path / "out").exists()


# --- common checks ---------------------------------------------------------------------


def test_empty_input_is_an_error_and_writes_nothing(tmp_path):
    path = tmp_path / "ratings.parquet"
    pq.write_table(RATINGS_SCHEMA.empty_table(), path)
    with pytest.raises(ValueError, match=r"ratings\.parquet: no rating rows"):
        run(tmp_path, path, RANDOM)
    assert not (tmp_path / "out").exists()


def test_missing_column_names_the_file(tmp_path):
    path = tmp_path / "ratings.parquet"
    pq.write_table(pa.table({"userId": [1, 2, 3], "movie": [0, 1, 2]}), path)
    with pytest.raises(ValueError, match=r"ratings\.parquet: missing column\(s\) \['user'\]"):
        run(tmp_path, path, RANDOM)
    assert not (tmp_path / "out").exists()


def test_existing_outputs_survive_a_failed_run(tmp_path, ratings):
    _, out = run(tmp_path, ratings, RANDOM)
    before = {key: path.read_bytes() for key, path in out.items()}
    with pytest.raises(ValueError, match="leaves the train part empty"):
        run(tmp_path, ratings, {**RANDOM, "val_fraction": 0.5, "test_fraction": 0.6})
    assert {key: path.read_bytes() for key, path in out.items()} == before
