"""Test-set scoring: error metrics, cold rows, evaluate_model, and paired comparisons."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from movierec import atomic, baselines, checkpoint, evaluation, models, training
from schema_defaults import model_block

SCALE = (0.5, 5.0)
DOT = model_block(arch="dot", n_factors=4, y_range=[0.5, 5.5], seed=1)
HYBRID = {**DOT, "arch": "hybrid"}


def as_ratings(user, movie, rating):
    return training.Ratings(
        torch.from_numpy(np.asarray(user, dtype=np.int64)),
        torch.from_numpy(np.asarray(movie, dtype=np.int64)),
        torch.from_numpy(np.asarray(rating, dtype=np.float32)),
    )


def cold_problem(seed=0, n_users=80, n_movies=60, n_cold=10, n=4000):
    """Biases plus a rank-2 interaction; the last `n_cold` movies appear only in test.

    Returns train, val and test as (user, movie, rating) numpy triples, and the
    table sizes. Validation and a tenth of test are warm rows.
    """
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_movies, n, replace=False)
    user, movie = pairs // n_movies, pairs % n_movies
    raw = 3.6 + rng.normal(0, 0.4, n_users)[user] + rng.normal(0, 0.5, n_movies)[movie]
    p, q = rng.normal(0, 0.6, (n_users, 2)), rng.normal(0, 0.6, (n_movies, 2))
    raw += (p[user] * q[movie]).sum(1) + rng.normal(0, 0.3, n)
    rating = np.clip(np.round(raw * 2) / 2, *SCALE)
    cold = movie >= n_movies - n_cold
    warm = rng.permutation(np.flatnonzero(~cold))
    n_val = len(warm) // 10
    val, test_warm, train = warm[:n_val], warm[n_val : 2 * n_val], warm[2 * n_val :]
    test = np.concatenate([test_warm, np.flatnonzero(cold)])
    parts = [(user[i], movie[i], rating[i]) for i in (train, val, test)]
    return (*parts, n_users, n_movies)


def rmse(pred, rating):
    return math.sqrt(float(np.mean((np.asarray(pred, np.float64) - rating) ** 2)))


# --- error_metrics, cold_masks, test_metrics ---------------------------------------------


def test_error_metrics_by_hand():
    got = evaluation.error_metrics([3.0, 4.0, 2.0, 5.0], [4.0, 4.0, 4.0, 4.0])
    assert got["rmse"] == pytest.approx(math.sqrt(1.5))
    assert got["mae"] == pytest.approx(1.0)
    empty = evaluation.error_metrics([], [])
    assert math.isnan(empty["rmse"]) and math.isnan(empty["mae"])


def test_cold_masks_by_hand():
    train_user = np.array([0, 0, 2, 2])
    train_movie = np.array([0, 1, 1, 3])
    # user 1 sits inside the training range but has no rating; 5 is past its end.
    user = np.array([0, 1, 2, 5, 2])
    movie = np.array([3, 0, 2, 1, 7])
    cold_user, cold_movie = evaluation.cold_masks(train_user, train_movie, user, movie)
    assert cold_user.tolist() == [False, True, False, True, False]
    assert cold_movie.tolist() == [False, False, True, False, True]
    # Test indices all below the training maxima.
    cold_user, cold_movie = evaluation.cold_masks(
        train_user, train_movie, np.array([0]), np.array([0])
    )
    assert cold_user.tolist() == [False] and cold_movie.tolist() == [False]


def test_test_metrics_by_hand():
    pred = np.array([3.0, 4.0, 2.0, 5.0, 4.5])
    rating = np.array([4.0, 4.0, 4.0, 4.0, 4.5])
    cold_user = np.array([False, True, False, True, False])
    cold_movie = np.array([False, False, True, True, False])
    got = evaluation.test_metrics(pred, rating, cold_user, cold_movie)
    # errors -1, 0, -2, 1, 0
    assert got["test_rmse"] == pytest.approx(math.sqrt(6 / 5))
    assert got["test_mae"] == pytest.approx(4 / 5)
    assert got["n_test"] == 5
    assert got["cold"]["unseen_user"] == {"rows": 2, "rmse": pytest.approx(math.sqrt(1 / 2))}
    assert got["cold"]["unseen_movie"] == {"rows": 2, "rmse": pytest.approx(math.sqrt(5 / 2))}
    assert got["cold"]["warm"] == {"rows": 2, "rmse": pytest.approx(math.sqrt(1 / 2))}
    # No cold rows: their RMSE is None (null in JSON), not NaN.
    none = np.zeros(5, dtype=bool)
    got = evaluation.test_metrics(pred, rating, none, none)
    assert got["cold"]["unseen_user"] == {"rows": 0, "rmse": None}
    assert got["cold"]["warm"]["rows"] == 5
    assert got["cold"]["warm"]["rmse"] == pytest.approx(got["test_rmse"])
    json.dumps(got, allow_nan=False)


def test_predictions_round_trip_and_row_count_check(tmp_path):
    path = tmp_path / "test_predictions.parquet"
    evaluation.write_predictions(path, [3.5, 4.25, 1.0])
    assert evaluation.read_predictions(path, 3).tolist() == [3.5, 4.25, 1.0]
    with pytest.raises(ValueError, match=r"test_predictions\.parquet: 3 predictions.*4 rows"):
        evaluation.read_predictions(path, 4)


# --- the cold-start correction ------------------------------------------------------------


def test_trained_dot_model_predicts_unseen_movies_at_the_training_mean():
    """An unseen movie's row is untrained (raw score ~ user bias): it predicts about the
    training mean, and does no worse there than the bias-only baseline."""
    (tu, tm, tr), val, (su, sm, sr), n_users, n_movies = cold_problem()
    model = models.build_model(DOT, n_users, n_movies)
    training.fit(
        model, as_ratings(tu, tm, tr), as_ratings(*val), phases=[{"lr": 0.03, "epochs": 8}],
        batch_size=256, rating_scale=SCALE, weight_decay=0.05, seed=1,
    )  # fmt: skip
    model.eval()
    cold_user, cold_movie = evaluation.cold_masks(tu, tm, su, sm)
    assert cold_movie.sum() > 300 and not cold_user.any() and (~cold_movie).sum() > 300
    pred = np.clip(evaluation.predict(model, torch.from_numpy(su), torch.from_numpy(sm)), *SCALE)
    mean = float(tr.mean())
    # The offset puts a raw 0 at the mean; with a zero offset it would be 3.0 here.
    assert abs(pred[cold_movie].mean() - mean) < 0.05
    mean_, b_user, b_movie = baselines.fit_biases(tu, tm, tr, 5.0, 20, n_users, n_movies)
    assert mean_ == pytest.approx(mean)
    bias_pred = np.clip(mean + b_user[su] + b_movie[sm], *SCALE)
    cold_rmse = rmse(pred[cold_movie], sr[cold_movie])
    assert cold_rmse <= rmse(bias_pred[cold_movie], sr[cold_movie]) + 0.01
    # ... and it learned something where it has data.
    warm = ~cold_movie
    assert rmse(pred[warm], sr[warm]) < rmse(bias_pred[warm], sr[warm])


# --- evaluate_model -------------------------------------------------------------------------


def write_part(path, user, movie, rating):
    pd.DataFrame(
        {
            "user": np.asarray(user, dtype=np.int32),
            "movie": np.asarray(movie, dtype=np.int32),
            "rating": np.asarray(rating, dtype=np.float32),
            "timestamp": np.zeros(len(user), dtype=np.int64),
        }
    ).to_parquet(path)


@pytest.fixture(params=["dot", "hybrid"])
def trained(request, tmp_path):
    """A tiny trained checkpoint, its history.json, and the train/test parts beside it."""
    settings = DOT if request.param == "dot" else HYBRID
    train, val, test, n_users, n_movies = cold_problem(n=2000)
    model = models.build_model(settings, n_users, n_movies)
    history = training.fit(
        model, as_ratings(*train), as_ratings(*val), phases=[{"lr": 0.03, "epochs": 2}],
        batch_size=256, rating_scale=SCALE, weight_decay=0.05, seed=1,
        loss_weights=settings["loss_weights"],
    )  # fmt: skip
    history.pop("engine")  # as train_model writes it
    with torch.no_grad():
        # Push one movie above the rating scale (the y_range reaches 5.5), so clipping counts.
        model.movie_bias.weight[int(test[1][0])] = 6.0
    meta = {"arch": settings["arch"], "settings": settings}
    meta.update(n_users=n_users, n_movies=n_movies)
    out = tmp_path / "model"
    checkpoint.save_model(model, meta, out / "model.pt")
    atomic.write_json(out / "history.json", history)
    write_part(tmp_path / "train.parquet", *train)
    write_part(tmp_path / "test.parquet", *test)
    return model.eval(), history, test, tmp_path


def run_evaluate(root, test_path=None):
    return evaluation.evaluate_model(
        model_pt=root / "model" / "model.pt",
        history_json=root / "model" / "history.json",
        train_path=root / "train.parquet",
        test_path=test_path or root / "test.parquet",
        metrics_json=root / "model" / "metrics.json",
        predictions_out=root / "model" / "test_predictions.parquet",
        rating_scale=list(SCALE),
    )


def test_evaluate_model_scores_the_checkpoint_on_test(trained):
    model, history, (user, movie, rating), root = trained
    metrics = run_evaluate(root)
    on_disk = json.loads((root / "model" / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    # Everything training recorded, unchanged, plus the test scores.
    for key, value in json.loads(json.dumps(history)).items():
        assert on_disk[key] == value, key
    with torch.no_grad():
        u, m = torch.from_numpy(user.astype(np.int64)), torch.from_numpy(movie.astype(np.int64))
        raw = model(u, m).double().numpy()
    assert raw.max() > SCALE[1]  # the construct: some predictions need clipping
    expected = np.clip(raw, *SCALE)
    assert metrics["test_rmse"] == pytest.approx(rmse(expected, rating), rel=1e-6)
    assert metrics["test_rmse"] != pytest.approx(rmse(raw, rating), rel=1e-6)
    assert metrics["test_mae"] == pytest.approx(float(np.mean(np.abs(expected - rating))), rel=1e-6)
    assert metrics["n_test"] == len(rating)
    cold = metrics["cold"]
    assert cold["unseen_movie"]["rows"] == int((movie >= 50).sum()) > 0
    assert cold["unseen_user"] == {"rows": 0, "rmse": None}
    assert cold["warm"]["rows"] + cold["unseen_movie"]["rows"] == len(rating)
    pred = evaluation.read_predictions(root / "model" / "test_predictions.parquet", len(rating))
    assert np.allclose(pred, expected, atol=1e-6)
    if model.arch == "hybrid":
        with torch.no_grad():
            linear = np.clip(model.heads(u, m)[1].double().numpy(), *SCALE)
        assert metrics["test_rmse_linear"] == pytest.approx(rmse(linear, rating), rel=1e-5)
    else:
        assert "test_rmse_linear" not in metrics


def test_evaluate_model_refuses_a_test_part_of_another_index(trained):
    _, _, (user, movie, rating), root = trained
    movie = movie.copy()
    movie[3] = 60  # the model has 60 movie rows
    bad = root / "other_test.parquet"
    write_part(bad, user, movie, rating)
    with pytest.raises(ValueError, match=r"other_test\.parquet: movie index outside \[0, 60\)"):
        run_evaluate(root, bad)
    assert not (root / "model" / "metrics.json").exists()
    assert not (root / "model" / "test_predictions.parquet").exists()


# --- paired comparisons -------------------------------------------------------------------


def squared_errors(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.9, n) ** 2


@pytest.mark.parametrize("max_rows", [evaluation.BOOTSTRAP_MAX_ROWS, 10])
def test_identical_models_differ_by_zero(monkeypatch, max_rows):
    monkeypatch.setattr(evaluation, "BOOTSTRAP_MAX_ROWS", max_rows)
    sq = squared_errors(500)
    got = evaluation.bootstrap_rmse_difference(sq, sq.copy())
    assert got["method"] == ("bootstrap" if max_rows > 500 else "delta")
    assert got["diff"] == 0.0
    assert got["low"] <= 0.0 <= got["high"]
    assert got["n_rows"] == 500 and got["level"] == 0.95


def test_a_clearly_better_model_gets_an_interval_below_zero():
    rng = np.random.default_rng(1)
    sq_b = squared_errors(3000)
    sq_a = sq_b * 0.8 * rng.uniform(0.7, 1.3, sq_b.size)
    got = evaluation.bootstrap_rmse_difference(sq_a, sq_b, seed=3)
    assert got["method"] == "bootstrap" and got["n_boot"] == evaluation.N_BOOTSTRAP
    assert got["diff"] == pytest.approx(math.sqrt(sq_a.mean()) - math.sqrt(sq_b.mean()))
    assert got["low"] < got["diff"] < got["high"] < 0
    # The same comparison the other way round is its mirror image.
    back = evaluation.bootstrap_rmse_difference(sq_b, sq_a, seed=3)
    assert back["diff"] == pytest.approx(-got["diff"])
    assert 0 < back["low"] < back["high"]


def test_the_bootstrap_is_seeded():
    sq_a, sq_b = squared_errors(800, 1), squared_errors(800, 2)
    a = evaluation.bootstrap_rmse_difference(sq_a, sq_b, seed=7)
    assert evaluation.bootstrap_rmse_difference(sq_a, sq_b, seed=7) == a
    assert evaluation.bootstrap_rmse_difference(sq_a, sq_b, seed=8) != a


def test_delta_method_agrees_with_the_bootstrap(monkeypatch):
    """Both paths on the same few thousand rows: same centre, half-widths within 15%."""
    rng = np.random.default_rng(4)
    n = 4000
    sq_b = squared_errors(n, 5)
    sq_a = sq_b * 0.95 * rng.uniform(0.5, 1.5, n)
    monkeypatch.setattr(evaluation, "BOOTSTRAP_MAX_ROWS", n)  # n rows: the bootstrap
    boot = evaluation.bootstrap_rmse_difference(sq_a, sq_b, n_boot=2000, seed=0)
    monkeypatch.setattr(evaluation, "BOOTSTRAP_MAX_ROWS", n - 1)  # above it: delta method
    delta = evaluation.bootstrap_rmse_difference(sq_a, sq_b, n_boot=2000, seed=0)
    assert (boot["method"], delta["method"]) == ("bootstrap", "delta")
    assert delta["n_boot"] == 0
    assert delta["diff"] == boot["diff"]
    half_boot = (boot["high"] - boot["low"]) / 2
    half_delta = (delta["high"] - delta["low"]) / 2
    assert half_delta == pytest.approx(half_boot, rel=0.15)
    assert delta["low"] < delta["diff"] < delta["high"]
    # The bootstrap interval sits around the same centre.
    assert (boot["low"] + boot["high"]) / 2 == pytest.approx(delta["diff"], abs=0.25 * half_boot)


@pytest.mark.parametrize(("a", "b"), [([1.0, 2.0], [1.0]), ([], [])])
def test_bootstrap_needs_equal_non_empty_rows(a, b):
    with pytest.raises(ValueError, match="equal non-empty"):
        evaluation.bootstrap_rmse_difference(a, b)
