"""Peers (movierec.peers): the reference libraries on our split files, scored like our models.

Each peer's metrics must be what the library itself gives when called directly on
the same data, written here the way each library's documentation does it; the
implicit features must come from training pairs only; and no peer may read a
validation or test rating while fitting.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from movierec import peer_libraries, peers
from movierec.evaluation import read_predictions

# myFM 0.4.0 imports pkg_resources, which warns about its own deprecation.
pytestmark = pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:UserWarning")

REPO = Path(__file__).resolve().parents[1]
SCALE = (0.5, 5.0)
N_USERS, N_MOVIES, RANK = 120, 80, 2
# Codes no training rating has: user 120 only in test, user 121 only in validation,
# movie 80 in validation and test. The largest codes are in those parts, so the
# encoders must be sized from every part, not from training.
COLD_USER_TEST, COLD_USER_VAL, COLD_MOVIE = 120, 121, 80
SURPRISE = {
    "surprise_baseline": ({}, None),
    "surprise_svd": ({}, 3),
    "surprise_svdpp": ({}, 3),
    "surprise_knn_baseline": (
        {"sim_options": {"name": "pearson_baseline", "user_based": False}},
        None,
    ),
}
MYFM = {"rank": 4, "n_iter": 60, "n_kept_samples": 50}
MYFM_SEED = 5


def planted_ratings(seed=0, n_ratings=3000):
    """Ratings of a rank-2 model with biases and noise, on half-stars of [0.5, 5]."""
    rng = np.random.default_rng(seed)
    pair = rng.choice(N_USERS * N_MOVIES, size=n_ratings, replace=False)
    user, movie = pair // N_MOVIES, pair % N_MOVIES
    u = rng.normal(0, 0.6, (N_USERS, RANK))
    v = rng.normal(0, 0.6, (N_MOVIES, RANK))
    b_user, b_movie = rng.normal(0, 0.4, N_USERS), rng.normal(0, 0.5, N_MOVIES)
    score = 3.5 + b_user[user] + b_movie[movie] + (u[user] * v[movie]).sum(1)
    score += rng.normal(0, 0.4, n_ratings)
    rating = np.clip(np.round(score * 2) / 2, *SCALE)
    return pd.DataFrame({"user": user, "movie": movie, "rating": rating})


def split_parts(ratings, seed=1):
    """80/10/10 at random, plus cold rows: a test-only user, a validation-only user, a new movie."""
    order = np.random.default_rng(seed).permutation(len(ratings))
    n_test = n_val = len(ratings) // 10
    test = ratings.iloc[order[:n_test]]
    val = ratings.iloc[order[n_test : n_test + n_val]]
    train = ratings.iloc[order[n_test + n_val :]]
    cold_test = pd.DataFrame(
        {
            "user": [COLD_USER_TEST, COLD_USER_TEST, COLD_USER_TEST, 3, 7],
            "movie": [0, 5, COLD_MOVIE, COLD_MOVIE, COLD_MOVIE],
            "rating": [4.0, 2.5, 3.0, 4.5, 1.0],
        }
    )
    cold_val = pd.DataFrame(
        {
            "user": [COLD_USER_VAL, COLD_USER_VAL, 2],
            "movie": [1, 2, COLD_MOVIE],
            "rating": [3.0] * 3,
        }
    )
    return {
        "train": train,
        "val": pd.concat([val, cold_val], ignore_index=True),
        "test": pd.concat([test, cold_test], ignore_index=True),
    }


def write_part(path, frame):
    pd.DataFrame(
        {
            "user": frame["user"].to_numpy(np.int32),
            "movie": frame["movie"].to_numpy(np.int32),
            "rating": frame["rating"].to_numpy(np.float32),
        }
    ).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def parts():
    # As the rule reads them: int32 codes and float32 ratings, back through parquet.
    return {
        name: frame.astype({"user": np.int32, "movie": np.int32, "rating": np.float32})
        for name, frame in split_parts(planted_ratings()).items()
    }


@pytest.fixture(scope="module")
def part_paths(parts, tmp_path_factory):
    base = tmp_path_factory.mktemp("split")
    return {name: write_part(base / f"{name}.parquet", frame) for name, frame in parts.items()}


def settings_of(peer):
    if peer in SURPRISE:
        return {"options": SURPRISE[peer][0]}, SURPRISE[peer][1]
    return dict(MYFM), MYFM_SEED


def run_peer(peer, paths, out, settings=None, seed=None):
    default_settings, default_seed = settings_of(peer)
    out.mkdir(parents=True, exist_ok=True)
    metrics = peers.fit_peer(
        peer=peer,
        train_path=paths["train"],
        val_path=paths["val"],
        test_path=paths["test"],
        settings=default_settings if settings is None else settings,
        seed=default_seed if seed is None else seed,
        rating_scale=list(SCALE),
        metrics_out=out / "metrics.json",
        predictions_out=out / "test_predictions.parquet",
    )
    n_test = len(pd.read_parquet(paths["test"]))
    return metrics, read_predictions(out / "test_predictions.parquet", n_test)


def rmse(pred, rating):
    return math.sqrt(float(np.mean((np.asarray(pred) - np.asarray(rating, np.float64)) ** 2)))


# --- the registry matches the config ------------------------------------------------


def test_registry_config_and_schema_name_the_same_peers():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    names = set(peers.PEERS)
    assert names == set(SURPRISE) | {"myfm_bmf", "myfm_bfm_implicit"}
    assert set(config["peers"]) == names
    assert set(schema["properties"]["peers"]["properties"]) == names
    assert set(schema["properties"]["peers_in_all"]["items"]["enum"]) == names
    assert set(config["peers_in_all"]) <= names


# --- each peer equals its library called directly ----------------------------------


@pytest.mark.parametrize("peer", sorted(SURPRISE))
def test_surprise_peer_equals_surprise_called_directly(peer, parts, part_paths, tmp_path):
    import surprise
    from surprise import accuracy

    metrics, saved = run_peer(peer, part_paths, tmp_path)

    # Surprise's own way: a DataFrame through a Reader, the full trainset, algo.test.
    options, seed = SURPRISE[peer]
    reader = surprise.Reader(rating_scale=SCALE)
    data = surprise.Dataset.load_from_df(parts["train"][["user", "movie", "rating"]], reader)
    cls = getattr(surprise, peers.PEERS[peer].algorithm)
    algo = cls(**options, **({} if seed is None else {"random_state": seed}))
    algo.fit(data.build_full_trainset())
    scored = {}
    for name in ("val", "test"):
        rows = parts[name][["user", "movie", "rating"]].itertuples(index=False)
        scored[name] = algo.test([(int(u), int(m), float(r)) for u, m, r in rows])

    assert metrics["test_rmse"] == pytest.approx(accuracy.rmse(scored["test"], verbose=False))
    assert metrics["test_mae"] == pytest.approx(accuracy.mae(scored["test"], verbose=False))
    assert metrics["val_rmse"] == pytest.approx(accuracy.rmse(scored["val"], verbose=False))
    est = np.array([p.est for p in scored["test"]], dtype=np.float32)
    assert np.array_equal(saved.astype(np.float32), est)
    assert metrics["library"] == "surprise"
    assert metrics["library_version"] == surprise.__version__
    # The effective settings: every constructor argument, the library's defaults included.
    expected = {"surprise_svd": {"n_factors": 100, "n_epochs": 20, "random_state": 3}}
    expected["surprise_svdpp"] = {"n_factors": 20, "random_state": 3}
    expected["surprise_knn_baseline"] = {"k": 40, "sim_options": options.get("sim_options")}
    for key, value in expected.get(peer, {"bsl_options": {}}).items():
        assert metrics["settings"][key] == value


def one_hot_inputs(parts):
    """myFM's MovieLens tutorial: OneHotEncoder(handle_unknown='ignore') fitted on train."""
    from sklearn.preprocessing import OneHotEncoder

    encoder = OneHotEncoder(handle_unknown="ignore").fit(parts["train"][["user", "movie"]])
    return {name: encoder.transform(frame[["user", "movie"]]) for name, frame in parts.items()}


def test_myfm_bmf_equals_myfm_called_directly(parts, part_paths, tmp_path):
    import myfm

    metrics, saved = run_peer("myfm_bmf", part_paths, tmp_path)

    x = one_hot_inputs(parts)
    fm = myfm.MyFMRegressor(rank=MYFM["rank"], random_seed=MYFM_SEED)
    fm.fit(
        x["train"],
        parts["train"]["rating"].to_numpy(np.float64),
        n_iter=MYFM["n_iter"],
        n_kept_samples=MYFM["n_kept_samples"],
    )
    direct = np.clip(fm.predict(x["test"]), *SCALE)
    assert metrics["test_rmse"] == pytest.approx(rmse(direct, parts["test"]["rating"]), rel=1e-9)
    assert np.array_equal(saved.astype(np.float32), direct.astype(np.float32))
    assert metrics["val_rmse"] == pytest.approx(
        rmse(np.clip(fm.predict(x["val"]), *SCALE), parts["val"]["rating"]), rel=1e-9
    )
    assert metrics["library_version"] == myfm.__version__
    assert metrics["settings"]["rank"] == MYFM["rank"]
    assert metrics["settings"]["random_seed"] == MYFM_SEED
    assert metrics["settings"]["implicit"] is False


def tutorial_relation_blocks(parts):
    """The implicit user and movie features as myFM's relation-block tutorial builds them.

    Dicts of each user's watched movies and each movie's watchers from training,
    one sparse row per distinct id of a part, and each rating pointing at its row.
    Columns are the training ids in sorted order (the one-hot encoder's order).
    """
    import scipy.sparse as sps
    from myfm import RelationBlock

    train = parts["train"]
    user_index = {u: i for i, u in enumerate(np.unique(train["user"]))}
    movie_index = {m: i for i, m in enumerate(np.unique(train["movie"]))}
    watched, watchers = {}, {}
    for row in train.itertuples(index=False):
        watched.setdefault(row.user, []).append(row.movie)
        watchers.setdefault(row.movie, []).append(row.user)

    def rows(ids, index, other_index, neighbours):
        one_hot = sps.lil_matrix((len(ids), len(index)))
        implicit = sps.lil_matrix((len(ids), len(other_index)))
        for i, key in enumerate(ids):
            if key in index:
                one_hot[i, index[key]] = 1
            seen = neighbours.get(key, [])
            for other in seen:
                implicit[i, other_index[other]] = 1 / max(len(seen), 1) ** 0.5
        return sps.hstack([one_hot, implicit], format="csr")

    blocks = {}
    for name, frame in parts.items():
        users, user_of_row = np.unique(frame["user"], return_inverse=True)
        movies, movie_of_row = np.unique(frame["movie"], return_inverse=True)
        blocks[name] = [
            RelationBlock(user_of_row, rows(users, user_index, movie_index, watched)),
            RelationBlock(movie_of_row, rows(movies, movie_index, user_index, watchers)),
        ]
    return blocks


def test_myfm_bfm_implicit_equals_myfm_called_directly(parts, part_paths, tmp_path):
    import myfm

    metrics, saved = run_peer("myfm_bfm_implicit", part_paths, tmp_path)

    blocks = tutorial_relation_blocks(parts)
    fm = myfm.MyFMRegressor(rank=MYFM["rank"], random_seed=MYFM_SEED)
    fm.fit(
        None,
        parts["train"]["rating"].to_numpy(np.float64),
        X_rel=blocks["train"],
        n_iter=MYFM["n_iter"],
        n_kept_samples=MYFM["n_kept_samples"],
    )
    direct = np.clip(fm.predict(None, X_rel=blocks["test"]), *SCALE)
    # The same model and draws; only the order of floating-point sums may differ.
    assert metrics["test_rmse"] == pytest.approx(rmse(direct, parts["test"]["rating"]), rel=1e-9)
    assert np.allclose(saved, direct, rtol=0, atol=1e-6)
    assert metrics["settings"]["implicit"] is True


# --- the implicit features are training pairs only ----------------------------------


def test_implicit_features_are_exactly_the_training_pairs(parts):
    train = parts["train"]
    n_users = max(int(f["user"].max()) for f in parts.values()) + 1
    n_movies = max(int(f["movie"].max()) for f in parts.values()) + 1
    user_block, movie_block, layout = peer_libraries.implicit_blocks(
        train["user"].to_numpy(), train["movie"].to_numpy(), n_users, n_movies
    )
    n_train_users, n_train_movies = layout["n_train_users"], layout["n_train_movies"]
    assert user_block.shape == (n_users, n_train_users + n_train_movies)
    assert movie_block.shape == (n_movies, n_train_movies + n_train_users)
    movie_of_column = np.flatnonzero(layout["movie_columns"] >= 0)
    user_of_column = np.flatnonzero(layout["user_columns"] >= 0)

    def pairs_in(block, width, code_of_column, transpose):
        implicit = block[:, width:].tocoo()
        pairs = set()
        for row, col, value in zip(implicit.row, implicit.col, implicit.data, strict=True):
            pairs.add((code_of_column[col], row) if transpose else (row, code_of_column[col]))
            # Normalised by the size of the set the value belongs to.
            count = block[row, width:].nnz
            assert value == pytest.approx(1 / math.sqrt(count))
        return pairs

    train_pairs = set(zip(train["user"].tolist(), train["movie"].tolist(), strict=True))
    from_users = pairs_in(user_block, n_train_users, movie_of_column, transpose=False)
    from_movies = pairs_in(movie_block, n_train_movies, user_of_column, transpose=True)
    assert from_users == train_pairs
    assert from_movies == train_pairs
    for name in ("val", "test"):
        other = set(zip(parts[name]["user"].tolist(), parts[name]["movie"].tolist(), strict=True))
        assert not other & from_users, f"{name} pairs in the implicit features"
    # One-hot part: a training id has its 1, an id training never saw an all-zero row.
    for block, width, seen in (
        (user_block, n_train_users, set(train["user"])),
        (movie_block, n_train_movies, set(train["movie"])),
    ):
        one_hot = block[:, :width]
        for code in range(block.shape[0]):
            assert one_hot[code].sum() == (1 if code in seen else 0)
    for code in (COLD_USER_TEST, COLD_USER_VAL):
        assert user_block[code].nnz == 0
    assert movie_block[COLD_MOVIE].nnz == 0


# --- fitting reads train only --------------------------------------------------------


@pytest.mark.parametrize("peer", sorted(peers.PEERS))
def test_fitting_reads_no_validation_or_test_rating(peer, parts, tmp_path):
    """Other validation rows and noise for test ratings leave the test predictions as they are."""
    rng = np.random.default_rng(9)
    paths = {name: write_part(tmp_path / f"{name}.parquet", frame) for name, frame in parts.items()}
    metrics, saved = run_peer(peer, paths, tmp_path / "a")
    changed = {
        "train": parts["train"],
        # Half the validation rows, without the validation-only user (fewer codes in all).
        "val": parts["val"][parts["val"]["user"] != COLD_USER_VAL].iloc[::2],
        "test": parts["test"].assign(rating=rng.choice(np.arange(1, 11) / 2, len(parts["test"]))),
    }
    other = tmp_path / "other"
    other.mkdir()
    paths = {name: write_part(other / f"{name}.parquet", frame) for name, frame in changed.items()}
    _, saved_again = run_peer(peer, paths, tmp_path / "b")
    assert np.array_equal(saved, saved_again)


# --- what metrics.json holds ---------------------------------------------------------


@pytest.mark.parametrize("peer", ["surprise_svd", "myfm_bmf"])
def test_metrics_have_the_models_fields(peer, parts, part_paths, tmp_path):
    import json

    metrics, saved = run_peer(peer, part_paths, tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    for key in ("val_rmse", "val_mae", "test_rmse", "test_mae", "n_test", "cold"):
        assert key in metrics
    for key in ("peer", "library", "library_version", "settings", "fit_seconds"):
        assert key in metrics
    assert metrics["peer"] == peer
    test = parts["test"]
    assert metrics["n_test"] == len(test) == len(saved)
    assert saved.min() >= SCALE[0] and saved.max() <= SCALE[1]
    assert metrics["test_rmse"] == pytest.approx(rmse(saved, test["rating"]), rel=1e-6)
    assert metrics["cold"]["unseen_user"]["rows"] == int((test["user"] == COLD_USER_TEST).sum())
    assert metrics["cold"]["unseen_movie"]["rows"] == int((test["movie"] == COLD_MOVIE).sum())
    # Better than the training mean on a planted model.
    mean = parts["train"]["rating"].mean()
    assert metrics["test_rmse"] < rmse(np.full(len(test), mean), test["rating"])


# --- clear errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "settings", "seed", "message"),
    [
        ("surprise_svd", {"options": {"n_factor": 5}}, 1, "no option.*n_factor.*known:.*n_factors"),
        ("surprise_svd", {"options": {}}, None, "give the peer a seed"),
        ("surprise_baseline", {"options": {}}, 1, "draws no random numbers"),
        ("surprise_baseline", {"options": {"verbose": True}}, None, "no option.*verbose"),
        ("surprise_svd", {"options": {"random_state": 2}}, 1, "random_state as the peer's seed"),
        ("myfm_bmf", {"rank": 2, "n_iter": 5, "n_kept_samples": 6}, 1, "n_kept_samples 6"),
        ("myfm_bmf", {"rank": 2, "n_iter": 5, "n_kept_samples": 5}, None, "give the peer a seed"),
        ("lightfm", {}, None, "unknown peer 'lightfm'"),
    ],
)
def test_bad_settings_are_clear_errors(peer, settings, seed, message, part_paths, tmp_path):
    with pytest.raises(ValueError, match=message):
        peers.fit_peer(
            peer=peer,
            train_path=part_paths["train"],
            val_path=part_paths["val"],
            test_path=part_paths["test"],
            settings=settings,
            seed=seed,
            rating_scale=list(SCALE),
            metrics_out=tmp_path / "metrics.json",
            predictions_out=tmp_path / "test_predictions.parquet",
        )
    assert not (tmp_path / "metrics.json").exists()


# --- top-N scores from the fitted parameters equal the library's predict ---------------


def fitted(peer, parts):
    spec = peers.PEERS[peer]
    settings, seed = settings_of(peer)
    n_users, n_movies = COLD_USER_VAL + 1, COLD_MOVIE + 1
    predict, grid, _, _ = peers._FITTERS[spec.library](
        spec, {k: v.to_numpy() for k, v in parts["train"].items()}, settings, seed,
        rating_scale=SCALE, n_users=n_users, n_movies=n_movies,
    )  # fmt: skip
    return predict, grid, n_users, n_movies


@pytest.mark.parametrize(
    "peer", ["surprise_baseline", "surprise_svd", "surprise_svdpp", "myfm_bmf", "myfm_bfm_implicit"]
)
def test_grid_scores_equal_the_librarys_predictions(peer, parts):
    predict, grid, n_users, n_movies = fitted(peer, parts)
    scores = grid(np.arange(n_users))
    assert scores.shape == (n_users, n_movies)
    # Every pair, cold users and the cold movie included, through the library's predict.
    user = np.repeat(np.arange(n_users), n_movies)
    movie = np.tile(np.arange(n_movies), n_users)
    expected = predict({"user": user, "movie": movie}).reshape(n_users, n_movies)
    if peer.startswith("surprise"):  # Surprise's predict clips to the scale; the grid does not
        scores = np.clip(scores, *SCALE)
    np.testing.assert_allclose(scores, expected, rtol=1e-9, atol=1e-9)


def test_peer_lists_leave_out_train_and_validation_movies(parts, part_paths, tmp_path):
    from movierec import recommend

    index = tmp_path / "index"
    index.mkdir()
    users = pd.DataFrame({"user": np.arange(COLD_USER_VAL + 1, dtype=np.int32)})
    users["userId"] = users["user"] * 10
    movies = pd.DataFrame({"movie": np.arange(COLD_MOVIE + 1, dtype=np.int32)})
    movies["movieId"] = movies["movie"] + 1000
    users.to_parquet(index / "users.parquet")
    movies.to_parquet(index / "movies.parquet")
    out = tmp_path / "peer"
    out.mkdir()
    settings, seed = settings_of("surprise_svd")
    peers.fit_peer(
        peer="surprise_svd", train_path=part_paths["train"], val_path=part_paths["val"],
        test_path=part_paths["test"], settings=settings, seed=seed, rating_scale=list(SCALE),
        metrics_out=out / "metrics.json", predictions_out=out / "pred.parquet",
        lists_out=out / "top5.parquet", users_path=index / "users.parquet",
        movies_path=index / "movies.parquet", n=5,
    )  # fmt: skip
    lists = pd.read_parquet(out / "top5.parquet")
    assert list(lists.columns) == list(recommend.LIST_COLUMNS)
    assert lists["user"].nunique() == COLD_USER_VAL + 1  # cold users get a list too
    rated = pd.concat([parts["train"], parts["val"]])
    seen = set(zip(rated["user"], rated["movie"], strict=True))
    assert not any((u, m) in seen for u, m in zip(lists["user"], lists["movie"], strict=True))
    assert (lists.groupby("user")["score"].diff().dropna() <= 1e-9).all()
    assert (lists["movieId"] == lists["movie"] + 1000).all()
