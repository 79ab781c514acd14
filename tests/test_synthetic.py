"""movierec.synthetic: exact counts, heavy tails, determinism, and a recoverable truth."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from movierec import synthetic
from schema_defaults import synthetic_spec
from snakemake.exceptions import WorkflowError

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
SPEC_100K = synthetic_spec(CONFIG["datasets"]["synthetic-100k"]["synthetic"])
SMALL = {"n_users": 120, "n_movies": 300, "n_ratings": 6000, "seed": 3}


def generate(spec, out_dir):
    """synthetic.generate on `spec` completed from the schema, as the rule gets it."""
    return synthetic.generate(synthetic_spec(spec), out_dir)


@pytest.fixture(scope="module")
def release_100k(tmp_path_factory):
    """synthetic-100k exactly as the registry specifies it (about a second)."""
    out = tmp_path_factory.mktemp("synthetic") / "raw"
    generate(SPEC_100K, out)
    return out


@pytest.fixture(scope="module")
def ratings_100k(release_100k):
    return pd.read_csv(release_100k / "ratings.csv")


def test_release_layout(release_100k):
    names = sorted(p.name for p in release_100k.iterdir())
    assert names == [
        "movies.csv",
        "planted.json",
        "planted_movies.csv",
        "planted_users.csv",
        "ratings.csv",
    ]
    lines = (release_100k / "ratings.csv").read_text().splitlines()
    assert lines[0] == "userId,movieId,rating,timestamp"
    # GroupLens writes ratings as "4.0", unquoted.
    assert all(line.split(",")[2] in synthetic.HALF_STARS for line in lines[1:200])
    movies_head = (release_100k / "movies.csv").read_text().splitlines()[:3]
    assert movies_head[0] == "movieId,title,genres"
    assert movies_head[1].startswith("1,Synthetic Movie 1")
    planted = json.loads((release_100k / "planted.json").read_text())
    assert planted == synthetic.resolve_spec(SPEC_100K)


def test_exact_counts_every_user_and_movie_rated(release_100k, ratings_100k):
    r = ratings_100k
    movies = pd.read_csv(release_100k / "movies.csv")
    assert len(r) == SPEC_100K["n_ratings"]
    assert r.userId.nunique() == SPEC_100K["n_users"]
    assert len(movies) == SPEC_100K["n_movies"]
    assert set(r.movieId) == set(movies.movieId)  # every listed movie has a rating
    assert not r.duplicated(["userId", "movieId"]).any()
    assert r.timestamp.notna().all() and (r.timestamp > 0).all()


def test_ids_are_not_an_index(release_100k, ratings_100k):
    """userIds 1..n, movieIds sorted with gaps: the index step must remap them."""
    movies = pd.read_csv(release_100k / "movies.csv")
    assert ratings_100k.userId.min() == 1
    assert ratings_100k.userId.max() == SPEC_100K["n_users"]
    assert movies.movieId.is_monotonic_increasing and movies.movieId.is_unique
    assert movies.movieId.max() > 1.2 * SPEC_100K["n_movies"]
    # Sorted by user, then movie, like GroupLens' ratings.csv.
    keys = ratings_100k.userId.to_numpy(np.int64) * 10**9 + ratings_100k.movieId
    assert np.all(np.diff(keys) > 0)


def test_half_stars_in_range(ratings_100k):
    rating = ratings_100k.rating.to_numpy()
    assert rating.min() >= 0.5 and rating.max() <= 5.0
    assert np.array_equal(rating * 2, np.round(rating * 2))
    # Not degenerate: every half star occurs, and the spread is MovieLens-like.
    assert len(np.unique(rating)) == 10
    assert 0.8 < rating.std() < 1.2
    assert 3.0 < rating.mean() < 3.8


def test_heavy_tails(ratings_100k):
    per_movie = np.sort(ratings_100k.movieId.value_counts().to_numpy())[::-1]
    per_user = np.sort(ratings_100k.userId.value_counts().to_numpy())[::-1]
    top_movies = per_movie[: len(per_movie) // 10].sum() / per_movie.sum()
    top_users = per_user[: len(per_user) // 10].sum() / per_user.sum()
    assert top_movies > 0.4, top_movies
    assert top_users > 0.3, top_users
    assert per_movie.max() > 10 * np.median(per_movie)
    assert per_user.max() > 10 * np.median(per_user)


def test_planted_files_match_release(release_100k):
    movies = pd.read_csv(release_100k / "movies.csv")
    pm = pd.read_csv(release_100k / "planted_movies.csv")
    pu = pd.read_csv(release_100k / "planted_users.csv")
    k = SPEC_100K["n_factors"]
    factors = [f"factor_{j + 1}" for j in range(k)]
    assert list(pm.columns) == ["movieId", "bias", *factors]
    assert list(pu.columns) == ["userId", "bias", *factors]
    assert pm.movieId.tolist() == movies.movieId.tolist()
    assert pu.userId.tolist() == list(range(1, SPEC_100K["n_users"] + 1))
    # Factor sds decay, so the planted axes are distinguishable by PCA.
    sds = pm[factors].std().to_numpy()
    assert np.all(np.diff(sds) < 0)
    # The classics stand above every other movie.
    top = pm.bias.nlargest(SPEC_100K.get("n_classics", 10) + 1).to_numpy()
    assert top[-2] >= synthetic.resolve_spec(SPEC_100K)["classic_bias"]


def _spearman(a, b):
    return pd.Series(a).corr(pd.Series(b), method="spearman")


def _als(user, movie, rating, n_users, n_movies, k, reg=1.0, iterations=15):
    """Biased rank-k ALS (ridge on both sides): a model-free check of the truth."""
    mu = rating.mean()
    rng = np.random.default_rng(0)
    # Columns: [bias, factors..., 1]; the trailing 1 multiplies the other side's bias.
    P = np.hstack([np.zeros((n_users, 1)), 0.1 * rng.standard_normal((n_users, k))])
    Q = np.hstack([np.zeros((n_movies, 1)), 0.1 * rng.standard_normal((n_movies, k))])

    def solve(idx, other, n):
        # Features of each rating: [1, other's factors]; target minus other's bias.
        X = np.hstack([np.ones((len(idx), 1)), other[:, 1:]])
        y = rating - mu - other[:, 0]
        A = np.zeros((n, k + 1, k + 1))
        b = np.zeros((n, k + 1))
        np.add.at(A, idx, X[:, :, None] * X[:, None, :])
        np.add.at(b, idx, X * y[:, None])
        A += reg * np.eye(k + 1)
        return np.linalg.solve(A, b[..., None])[..., 0]

    for _ in range(iterations):
        P = solve(user, Q[movie], n_users)
        Q = solve(movie, P[user], n_movies)
    return Q[:, 0], Q[:, 1:]


def test_planted_truth_is_recoverable(release_100k, ratings_100k):
    """A plain least-squares fit finds the planted biases, the top movies and the axes.

    These are the properties the report tests of issue 4 check with the dot
    model; if the generator loses its signal, this fails first, and cheaply.
    """
    r = ratings_100k
    pm = pd.read_csv(release_100k / "planted_movies.csv")
    movie_index = {m: i for i, m in enumerate(pm.movieId)}
    user = r.userId.to_numpy() - 1
    movie = r.movieId.map(movie_index).to_numpy()
    k = SPEC_100K["n_factors"]
    bias, factors = _als(user, movie, r.rating.to_numpy(float), SPEC_100K["n_users"], len(pm), k)
    counts = np.bincount(movie, minlength=len(pm))
    assert _spearman(bias, pm.bias) >= 0.9
    enough = np.flatnonzero(counts >= 20)
    planted_top = set(enough[np.argsort(-pm.bias.to_numpy()[enough])[:10]])
    learned_top = set(enough[np.argsort(-bias[enough])[:10]])
    assert len(planted_top & learned_top) >= 7
    # PCA of the movie factors of the 2000 most-rated movies.
    rows = np.argsort(-counts, kind="stable")[:2000]
    X = factors[rows] - factors[rows].mean(axis=0)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    pcs = X @ vt.T
    for j in range(k):
        corr = np.corrcoef(pcs[:, j], pm[f"factor_{j + 1}"].to_numpy()[rows])[0, 1]
        assert abs(corr) >= 0.9, (j, corr)


def test_deterministic_same_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(SMALL, a)
    generate(dict(SMALL), b)
    generate({**SMALL, "seed": SMALL["seed"] + 1}, c)
    for name in ("ratings.csv", "movies.csv", "planted_movies.csv", "planted_users.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "ratings.csv").read_bytes() != (c / "ratings.csv").read_bytes()


@pytest.mark.parametrize(
    "spec",
    [
        {"n_users": 5, "n_movies": 500, "n_ratings": 600},  # users at the floor, many movies
        {"n_users": 400, "n_movies": 12, "n_ratings": 2400},  # half of all pairs: dense
        {"n_users": 30, "n_movies": 30, "n_ratings": 30},  # one rating each
        {"n_users": 50, "n_movies": 80, "n_ratings": 900, "n_factors": 5, "n_classics": 0},
    ],
)
def test_exact_counts_at_the_edges(tmp_path, spec):
    generate(spec, tmp_path / "raw")
    r = pd.read_csv(tmp_path / "raw" / "ratings.csv")
    assert len(r) == spec["n_ratings"]
    assert r.userId.nunique() == spec["n_users"]
    assert r.movieId.nunique() == spec["n_movies"]
    assert not r.duplicated(["userId", "movieId"]).any()
    pm = pd.read_csv(tmp_path / "raw" / "planted_movies.csv")
    assert pm.shape[1] == 2 + spec.get("n_factors", 2)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**SMALL, "n_ratings": 100}, "every user and movie needs at least one rating"),
        ({**SMALL, "n_ratings": 20_000}, "half of all"),
        ({**SMALL, "n_classics": 301}, "n_classics=301 exceeds n_movies=300"),
    ],
)
def test_bad_spec_is_a_clear_error(tmp_path, spec, message):
    """Counts that cannot be met together: the library's check (no schema can say it)."""
    with pytest.raises(ValueError, match=message):
        generate(spec, tmp_path / "raw")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**SMALL, "n_moviez": 3}, "n_moviez"),
        ({"n_users": 10, "n_movies": 10}, "'n_ratings' is a required property"),
        ({**SMALL, "n_users": 12.5}, "12.5 is not of type 'integer'"),
        ({**SMALL, "seed": True}, "True is not of type 'integer'"),
        ({**SMALL, "noise_sd": -0.1}, "-0.1 is less than the minimum of 0"),
        ({**SMALL, "bias_popularity_corr": 1.5}, "1.5 is greater than the maximum of 1"),
    ],
)
def test_the_schema_refuses_a_bad_setting(spec, message):
    """One setting's type or range is the schema's to check, before any rule runs."""
    with pytest.raises(WorkflowError, match=message):
        synthetic_spec(spec)


def test_refuses_non_empty_output(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        generate(SMALL, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def failing_write(path, header, table):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real_write(path, header, table)

    real_write = synthetic._write_csv
    monkeypatch.setattr(synthetic, "_write_csv", failing_write)
    with pytest.raises(OSError, match="disk full"):
        generate(SMALL, tmp_path / "raw")
    assert list(tmp_path.iterdir()) == []  # neither raw/ nor its temporary folder


def test_schema_documents_every_setting_the_library_types():
    props = SCHEMA["properties"]["datasets"]["additionalProperties"]["properties"]
    block = props["synthetic"]
    documented = block["properties"]
    assert set(documented) == set(synthetic.INTEGER_KEYS) | set(synthetic.FLOAT_KEYS)
    for key in synthetic.INTEGER_KEYS:
        assert documented[key]["type"] == "integer", key
    for key, entry in documented.items():
        assert entry["description"], key
        assert key in block["required"] or "default" in entry, key


def test_registry_sizes():
    """The registry's synthetic-25m has ml-25m's counts; every spec resolves."""
    spec = CONFIG["datasets"]["synthetic-25m"]["synthetic"]
    assert (spec["n_users"], spec["n_movies"], spec["n_ratings"]) == (162_541, 59_047, 25_000_095)
    for name in ("synthetic-100k", "synthetic-1m", "synthetic-25m"):
        synthetic.resolve_spec(synthetic_spec(CONFIG["datasets"][name]["synthetic"]))
