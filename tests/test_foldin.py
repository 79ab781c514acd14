"""Fold-in (movierec.foldin): a new user's row from their ratings, on a planted dataset.

The data are low-rank by construction (`planted_ratings`), so the truth about
every user is known; one user's ratings are kept out of training entirely, so
folding them in is the real new-user case. `build_project` writes the files in
the workflow's layout and trains tiny models with `training.fit`; test_cli.py
uses it too.
"""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from movierec import checkpoint, foldin, foldin_ridge, models, training
from movierec.training import Ratings
from schema_defaults import model_block

DATASET = "planted-test"
SPLIT = "random"
N_USERS, N_MOVIES, N_PLANTED = 200, 150, 3
#: Movies come in groups of this many with nearly the same planted factors.
GROUP = 3
#: The user whose ratings are in the release but in neither train nor validation.
HELD_OUT = 0
RATING_SCALE = (0.5, 5.0)
#: config.yaml's dot block, made small (weight_decay scaled to ~55 ratings per row).
DOT_SETTINGS = {
    "arch": "dot",
    "n_factors": 4,
    "batch_size": 1024,
    "phases": [{"lr": 0.03, "epochs": 15}],
    "weight_decay": 0.05,
    "y_range": [0.5, 5.5],
    "seed": 1,
    "device": "cpu",
}
DOT_SETTINGS = model_block(DOT_SETTINGS)
MLP_SETTINGS = {
    "arch": "mlp",
    "n_factors": 8,
    "hidden": [32],
    "dropouts": [0.0],
    "batch_size": 1024,
    "phases": [{"lr": 0.01, "epochs": 30}],
    "weight_decay": 0.0,
    "y_range": [0.5, 5.5],
    "seed": 1,
    "device": "cpu",
}
MLP_SETTINGS = model_block(MLP_SETTINGS)
#: Correlation with the planted truth a folded-in user must reach (`test_fold_in_recovers_*`).
RECOVERY_CORR = 0.97


def user_id(user):
    """The release's userId of a user index (not the index itself, to catch mix-ups)."""
    return 1001 + np.asarray(user)


def movie_id(movie):
    return 10 * np.asarray(movie) + 7


def planted_ratings(seed=0):
    """Ratings from ``mean + b_u + b_m + p_u . q_m + noise``, rounded to half stars.

    Movies come in groups of `GROUP` sharing a planted direction (plus a little
    jitter), so "nearest movie" has a known answer; movies differ in how often
    they are rated (5-70% of users), and `HELD_OUT` rates 60% of them.
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, (N_MOVIES // GROUP, N_PLANTED))
    q = np.repeat(centers, GROUP, axis=0) + rng.normal(0.0, 0.05, (N_MOVIES, N_PLANTED))
    p = rng.normal(0.0, 0.6, (N_USERS, N_PLANTED))
    b_user = rng.normal(0.0, 0.3, N_USERS)
    b_movie = rng.normal(0.0, 0.4, N_MOVIES)
    truth = 3.4 + b_user[:, None] + b_movie[None, :] + p @ q.T
    observed = rng.random((N_USERS, N_MOVIES)) < rng.uniform(0.05, 0.7, N_MOVIES)[None, :]
    observed[HELD_OUT] = rng.random(N_MOVIES) < 0.6
    noisy = truth + rng.normal(0.0, 0.3, truth.shape)
    rating = np.clip(np.round(noisy * 2) / 2, *RATING_SCALE)
    user, movie = np.nonzero(observed)
    return {
        "p": p,
        "q": q,
        "truth": truth,
        "user": user,
        "movie": movie,
        "rating": rating[user, movie],
    }


def _write(frame, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def write_release(root, data, seed=1):
    """users/movies.parquet and the train/val split under `root`, in the workflow's layout.

    Returns the paths relative to `root`, as model.json records them.
    """
    rel = {
        "users": f"results/{DATASET}/data/users.parquet",
        "movies": f"results/{DATASET}/data/movies.parquet",
        "train": f"results/{DATASET}/{SPLIT}/split/train.parquet",
        "val": f"results/{DATASET}/{SPLIT}/split/val.parquet",
    }
    users = np.arange(N_USERS)
    movies = np.arange(N_MOVIES)
    user, movie, rating = data["user"], data["movie"], data["rating"]
    _write(
        pd.DataFrame({
            "user": users.astype(np.int32),
            "userId": user_id(users).astype(np.int64),
            "n_ratings": np.bincount(user, minlength=N_USERS).astype(np.int64),
        }),
        root / rel["users"],
    )  # fmt: skip
    counts = np.bincount(movie, minlength=N_MOVIES)
    sums = np.bincount(movie, weights=rating, minlength=N_MOVIES)
    _write(
        pd.DataFrame({
            "movie": movies.astype(np.int32),
            "movieId": movie_id(movies).astype(np.int64),
            "title": [f"Planted movie {m} ({1950 + m % 70})" for m in movies],
            "genres": ["Drama|Comedy" if m % 2 else "Action" for m in movies],
            "year": (1950 + movies % 70).astype(np.float64),
            "n_ratings": counts.astype(np.int64),
            "mean_rating": sums / np.maximum(counts, 1),
        }),
        root / rel["movies"],
    )  # fmt: skip
    keep = np.flatnonzero(user != HELD_OUT)
    is_val = np.random.default_rng(seed).random(keep.size) < 0.1
    for name, rows in (("train", keep[~is_val]), ("val", keep[is_val])):
        _write(
            pd.DataFrame({
                "user": user[rows].astype(np.int32),
                "movie": movie[rows].astype(np.int32),
                "rating": rating[rows].astype(np.float32),
                "timestamp": np.arange(rows.size, dtype=np.int64),
            }),
            root / rel[name],
        )  # fmt: skip
    return rel


def read_split(path):
    frame = pd.read_parquet(path)
    return Ratings(
        torch.from_numpy(frame["user"].to_numpy().astype(np.int64)),
        torch.from_numpy(frame["movie"].to_numpy().astype(np.int64)),
        torch.from_numpy(frame["rating"].to_numpy().astype(np.float32)),
    )


def train_and_save(root, rel, settings, name):
    """Train with `training.fit` and save as rule train_model does; returns the model dir."""
    model = models.build_model(settings, N_USERS, N_MOVIES)
    with foldin.one_thread():  # tiny batches: one thread is fastest, more so on a busy machine
        metrics = training.fit(
            model,
            read_split(root / rel["train"]),
            read_split(root / rel["val"]),
            phases=settings["phases"],
            batch_size=settings["batch_size"],
            rating_scale=RATING_SCALE,
            weight_decay=settings["weight_decay"],
            seed=settings["seed"],
            device="cpu",
        )
    model_dir = root / "results" / DATASET / SPLIT / "models" / name / "rep1"
    meta = {
        "arch": settings["arch"],
        "settings": copy.deepcopy(settings),
        "n_users": N_USERS,
        "n_movies": N_MOVIES,
        **rel,
        "rating_scale": list(RATING_SCALE),
        "torch_version": torch.__version__,
        "device": "cpu",
        "threads": 1,
        "init": None,
        "engine": metrics["engine"],
    }
    model_dir.mkdir(parents=True)
    checkpoint.save_model(model, meta, model_dir / "model.pt")
    return model_dir


def build_project(root, archs=("dot",)):
    """A project dir with the planted release, its split and trained models (one per arch)."""
    data = planted_ratings()
    rel = write_release(root, data)
    settings = {"dot": DOT_SETTINGS, "mlp": MLP_SETTINGS}
    dirs = {arch: train_and_save(root, rel, settings[arch], arch) for arch in archs}
    return {"root": root, "data": data, "rel": rel, "models": dirs}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return build_project(tmp_path_factory.mktemp("foldin") / "project", archs=("dot", "mlp"))


@pytest.fixture(scope="module")
def dot(project):
    return checkpoint.load_model(project["models"]["dot"] / "model.pt")[0]


@pytest.fixture(scope="module")
def mlp(project):
    return checkpoint.load_model(project["models"]["mlp"] / "model.pt")[0]


def held_out_ratings(data, user=HELD_OUT, seed=2):
    """(fit movies, fit ratings, test movies, test ratings): 2/3 to fold in, 1/3 to predict."""
    rows = np.flatnonzero(data["user"] == user)
    rows = rows[np.random.default_rng(seed).permutation(rows.size)]
    k = 2 * rows.size // 3
    movie, rating = data["movie"], data["rating"]
    return movie[rows[:k]], rating[rows[:k]], movie[rows[k:]], rating[rows[k:]]


def rmse(pred, rating):
    pred = np.clip(pred, *RATING_SCALE)
    return float(np.sqrt(np.mean((pred - rating) ** 2)))


def tables(model):
    return [t.detach().double().numpy() for t in foldin.dot_tables(model)]


def test_fold_in_recovers_a_held_out_user(project, dot):
    data = project["data"]
    fit_movies, fit_ratings, test_movies, test_ratings = held_out_ratings(data)
    folded = foldin.fold_in(dot, fit_movies, fit_ratings, weight_decay=DOT_SETTINGS["weight_decay"])
    assert folded.method == "ridge+gauss-newton"
    truth = data["truth"][HELD_OUT]
    corr = np.corrcoef(folded.rating(), truth)[0, 1]
    assert corr >= RECOVERY_CORR, corr
    # The threshold is one a random user of the same length and bias rarely meets (1.3%
    # of 1000 draws here; the fold-in reaches 0.988, a zero row 0.47).
    _, movie_f, _, movie_b = tables(dot)
    offset, y_range = float(dot.output.offset), dot.output.y_range
    rng = np.random.default_rng(0)
    random_corrs = []
    for _ in range(1000):
        x = rng.normal(size=movie_f.shape[1])
        x *= np.linalg.norm(folded.vector) / np.linalg.norm(x)
        s = foldin.dot_scores(offset, x, folded.bias, movie_f, movie_b, y_range, "random")
        random_corrs.append(np.corrcoef(s.rating(), truth)[0, 1])
    assert np.mean(np.asarray(random_corrs) >= RECOVERY_CORR) < 0.05
    # Its unseen ratings are predicted near the noise level (sd 0.3 plus half-star
    # rounding), far better than a user with a zero row (movie biases alone).
    zero = foldin.dot_scores(
        offset, np.zeros(movie_f.shape[1]), 0.0, movie_f, movie_b, y_range, "0"
    )
    held = rmse(folded.rating(test_movies), test_ratings)
    assert held < 0.45, held
    assert held < 0.6 * rmse(zero.rating(test_movies), test_ratings)


def test_ridge_equals_numpy_least_squares(project, dot):
    fit_movies, fit_ratings, _, _ = held_out_ratings(project["data"])
    _, movie_f, _, movie_b = tables(dot)
    offset, y_range = float(dot.output.offset), dot.output.y_range
    targets = foldin_ridge.raw_targets(fit_ratings, movie_b[fit_movies], offset, y_range)
    inside = fit_ratings > 0.5  # 0.5, the lower bound of y_range, is clipped (test below)
    logit = np.log((fit_ratings[inside] - 0.5) / (5.5 - fit_ratings[inside]))
    np.testing.assert_allclose(targets[inside], logit - offset - movie_b[fit_movies][inside])
    reg = 2.5
    x, b = foldin_ridge.ridge_solve(movie_f[fit_movies], targets, reg)
    design = np.hstack([movie_f[fit_movies], np.ones((len(fit_movies), 1))])
    stacked = np.vstack([design, np.sqrt(reg) * np.eye(design.shape[1])])
    w, *_ = np.linalg.lstsq(stacked, np.append(targets, np.zeros(design.shape[1])), rcond=None)
    np.testing.assert_allclose(np.append(x, b), w, rtol=1e-10, atol=1e-12)
    # fold_in_dot without refinement is exactly that solve on the model's own tables.
    plain = foldin.fold_in_dot(dot, fit_movies, fit_ratings, reg=reg, refine=False)
    assert plain.method == "ridge"
    np.testing.assert_allclose(plain.vector, x, rtol=1e-12)
    assert plain.bias == pytest.approx(b, rel=1e-12)


def test_bound_ratings_are_clipped_to_finite_targets():
    # Under y_range [0.5, 5.5] a 0.5 would be logit(0) = -inf.
    targets = foldin_ridge.raw_targets([0.5, 5.5, 3.0], [0.0, 0.0, 0.0], 0.0, (0.5, 5.5))
    eps = foldin_ridge.EPS
    np.testing.assert_allclose(targets, [np.log(eps / (1 - eps)), np.log((1 - eps) / eps), 0.0])
    assert np.all(np.isfinite(targets))


def test_refinement_minimises_the_real_loss(project, dot):
    fit_movies, fit_ratings, _, _ = held_out_ratings(project["data"])
    _, movie_f, _, movie_b = tables(dot)
    offset, y_range = float(dot.output.offset), dot.output.y_range
    reg = foldin.default_reg(len(fit_ratings), DOT_SETTINGS["weight_decay"])
    ridge = foldin.fold_in_dot(dot, fit_movies, fit_ratings, reg=reg, refine=False)
    refined = foldin.fold_in_dot(dot, fit_movies, fit_ratings, reg=reg)
    design = np.hstack([movie_f[fit_movies], np.ones((len(fit_movies), 1))])
    base = offset + movie_b[fit_movies]

    def loss(s):
        w = np.append(s.vector, s.bias)
        return foldin_ridge.bounded_loss(w, design, base, fit_ratings, reg, y_range)

    assert loss(refined) < loss(ridge)
    # Stationary: the gradient of the real loss vanishes at the refined row.
    w = np.append(refined.vector, refined.bias)
    sig = 1 / (1 + np.exp(-(base + design @ w)))
    err = 0.5 + 5.0 * sig - fit_ratings
    grad = 2 * design.T @ (err * 5.0 * sig * (1 - sig)) + 2 * reg * w
    assert np.abs(grad).max() < 1e-6


def test_unbounded_model_fold_in_is_the_exact_training_objective(dot):
    unbounded = models.DotModel(N_USERS, N_MOVIES, DOT_SETTINGS["n_factors"], y_range=None)
    unbounded.load_state_dict(dot.state_dict())
    models.set_output_offset(unbounded, 3.4)
    movies_ = np.array([3, 10, 20, 40, 41, 77, 120])
    ratings = np.array([4.0, 3.5, 1.0, 5.0, 4.5, 2.0, 3.0])
    folded = foldin.fold_in_dot(unbounded, movies_, ratings, reg=0.7)
    assert folded.method == "ridge"  # no sigmoid, nothing to refine
    _, movie_f, _, movie_b = tables(unbounded)
    offset = float(unbounded.output.offset)  # 3.4 as float32
    w = np.append(folded.vector, folded.bias)
    design = np.hstack([movie_f[movies_], np.ones((len(movies_), 1))])
    pred = offset + movie_b[movies_] + design @ w
    np.testing.assert_allclose(2 * design.T @ (pred - ratings) + 2 * 0.7 * w, 0.0, atol=1e-9)
    np.testing.assert_allclose(folded.rating(movies_), pred)


def test_parts_add_up_and_trained_user_matches_the_model(dot):
    user = 5
    scores = foldin.trained_user(dot, user)
    parts = scores.part_table(np.arange(N_MOVIES))
    np.testing.assert_allclose(sum(parts.values()), scores.raw, atol=1e-12)
    with torch.no_grad():
        pred = dot(torch.full((N_MOVIES,), user), torch.arange(N_MOVIES)).double().numpy()
    np.testing.assert_allclose(scores.rating(), pred, atol=1e-5)
    assert scores.parts["global"] == pytest.approx(float(dot.output.offset))


def test_fold_in_leaves_the_model_unchanged(project, dot, mlp):
    fit_movies, fit_ratings, _, _ = held_out_ratings(project["data"])
    for model in (dot, mlp):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        flags = [p.requires_grad for p in model.parameters()]
        foldin.fold_in(model, fit_movies, fit_ratings)
        after = model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert [p.requires_grad for p in model.parameters()] == flags
        assert not model.training


def test_mlp_fold_in_optimises_a_new_row(project, mlp):
    data = project["data"]
    fit_movies, fit_ratings, test_movies, test_ratings = held_out_ratings(data)
    folded = foldin.fold_in(mlp, fit_movies, fit_ratings, seed=3)
    assert folded.method == "adam" and folded.parts is None and folded.bias is None
    again = foldin.fold_in(mlp, fit_movies, fit_ratings, seed=3)
    np.testing.assert_array_equal(folded.vector, again.vector)  # seeded, fixed steps
    # Better than the row it starts from, on the ratings it fits and on those it does not.
    start = torch.randn(mlp.user_emb.embedding_dim, generator=torch.Generator().manual_seed(3))
    start_scores = foldin._mlp_scores(mlp, start * models.INIT_STD, "start")
    assert rmse(folded.rating(fit_movies), fit_ratings) < rmse(
        start_scores.rating(fit_movies), fit_ratings
    )
    assert rmse(folded.rating(test_movies), test_ratings) < rmse(
        start_scores.rating(test_movies), test_ratings
    )


def test_mlp_fold_in_of_trained_users_predicts_like_their_trained_rows(project, mlp):
    root, rel = project["root"], project["rel"]
    train, val = pd.read_parquet(root / rel["train"]), pd.read_parquet(root / rel["val"])
    folded_err, trained_err = [], []
    for user in range(1, 21):
        tr, va = train[train["user"] == user], val[val["user"] == user]
        if va.empty:
            continue
        folded = foldin.fold_in(mlp, tr["movie"].to_numpy(), tr["rating"].to_numpy())
        trained = foldin.trained_user(mlp, user)
        for scores, errs in ((folded, folded_err), (trained, trained_err)):
            pred = np.clip(scores.rating(va["movie"].to_numpy()), *RATING_SCALE)
            errs.extend(pred - va["rating"].to_numpy())
    folded_rmse = np.sqrt(np.mean(np.square(folded_err)))
    trained_rmse = np.sqrt(np.mean(np.square(trained_err)))
    assert folded_rmse < trained_rmse + 0.05, (folded_rmse, trained_rmse)


def test_dot_fold_in_of_trained_users_reproduces_their_rows(project, dot):
    # With the model's own weight_decay the fold-in solves the problem training solved
    # for each row (movies frozen): the rows come back close to the trained ones.
    root, rel = project["root"], project["rel"]
    train = pd.read_parquet(root / rel["train"])
    corrs = []
    for user in range(1, 31):
        tr = train[train["user"] == user]
        folded = foldin.fold_in(
            dot, tr["movie"].to_numpy(), tr["rating"].to_numpy(),
            weight_decay=DOT_SETTINGS["weight_decay"],
        )  # fmt: skip
        corrs.append(np.corrcoef(folded.raw, foldin.trained_user(dot, user).raw)[0, 1])
    assert np.median(corrs) > 0.98, np.median(corrs)


@pytest.mark.parametrize(
    ("movies_", "ratings", "message"),
    [
        ([], [], "at least one rating"),
        ([1, 2], [3.0], "one rating per movie"),
        ([1, N_MOVIES], [3.0, 4.0], f"rating 1: movie index {N_MOVIES} is outside"),
        ([1, 2], [3.0, float("nan")], "rating 1: nan is not a finite number"),
    ],
)
def test_bad_ratings_are_named(dot, movies_, ratings, message):
    with pytest.raises(ValueError, match=message):
        foldin.fold_in(dot, movies_, ratings)


def test_ridge_needs_a_positive_reg_with_few_ratings():
    with pytest.raises(ValueError, match="reg must be positive"):
        foldin_ridge.ridge_solve(np.ones((2, 4)), np.ones(2), 0.0)
