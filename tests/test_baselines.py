"""The baselines on a hand-made split: what they predict and how they are scored."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from movierec import baselines

SCALE = (0.5, 5.0)
REG = 2.0
# (user, movie, rating). User 3 and movie 3 have no training rating.
TRAIN = [(0, 0, 4.0), (0, 1, 3.0), (1, 0, 5.0), (1, 2, 2.0), (2, 1, 4.0)]
VAL = [(0, 2, 3.0), (2, 0, 5.0)]
TEST = [(1, 1, 4.0), (2, 2, 1.0), (3, 0, 4.5), (0, 3, 2.5)]
N_USERS = N_MOVIES = 4


def columns(rows):
    user, movie, rating = (np.array(c) for c in zip(*rows, strict=True))
    return user.astype(np.int64), movie.astype(np.int64), rating.astype(np.float64)


def write_part(path, rows):
    user, movie, rating = columns(rows) if rows else ([], [], [])
    pd.DataFrame(
        {
            "user": np.asarray(user, dtype=np.int32),
            "movie": np.asarray(movie, dtype=np.int32),
            "rating": np.asarray(rating, dtype=np.float32),
        }
    ).to_parquet(path)
    return path


def ridge_biases():
    """min sum (r - mean - b_u - b_m)^2 + REG (|b_u|^2 + |b_m|^2), solved directly."""
    user, movie, rating = columns(TRAIN)
    mean = rating.mean()
    design = np.zeros((len(rating), N_USERS + N_MOVIES))
    design[np.arange(len(rating)), user] = 1
    design[np.arange(len(rating)), N_USERS + movie] = 1
    gram = design.T @ design + REG * np.eye(N_USERS + N_MOVIES)
    solution = np.linalg.solve(gram, design.T @ (rating - mean))
    return mean, solution[:N_USERS], solution[N_USERS:]


def rmse(pred, rating):
    return math.sqrt(float(np.mean((pred - rating) ** 2)))


def run(tmp_path, test_rows=TEST):
    paths = {
        name: write_part(tmp_path / f"{name}.parquet", rows)
        for name, rows in (("train", TRAIN), ("val", VAL), ("test", test_rows))
    }
    return baselines.compute_baselines(
        train_path=paths["train"],
        val_path=paths["val"],
        test_path=paths["test"],
        out_path=tmp_path / "out" / "baselines.json",
        predictions_out=tmp_path / "out" / "baseline_predictions.parquet",
        bias_reg=REG,
        iterations=200,
        rating_scale=list(SCALE),
    )


def test_global_mean_predicts_the_training_mean(tmp_path):
    result = run(tmp_path)
    assert result["global_mean"] == pytest.approx(3.6)
    predictions = pd.read_parquet(tmp_path / "out" / "baseline_predictions.parquet")
    assert list(predictions.columns) == ["global_mean", "bias_only"]
    assert len(predictions) == len(TEST)
    assert np.allclose(predictions["global_mean"], 3.6)
    _, _, val = columns(VAL)
    _, _, test = columns(TEST)
    scores = result["baselines"]["global_mean"]
    assert scores["val_rmse"] == pytest.approx(rmse(np.full(2, 3.6), val))
    assert scores["val_mae"] == pytest.approx(float(np.mean(np.abs(3.6 - val))))
    assert scores["test_rmse"] == pytest.approx(rmse(np.full(4, 3.6), test))
    assert scores["test_mae"] == pytest.approx(float(np.mean(np.abs(3.6 - test))))


def test_bias_only_matches_a_direct_ridge_solution(tmp_path):
    result = run(tmp_path)
    mean, b_user, b_movie = ridge_biases()
    scores = result["baselines"]["bias_only"]
    for name, rows in (("val", VAL), ("test", TEST)):
        user, movie, rating = columns(rows)
        pred = np.clip(mean + b_user[user] + b_movie[movie], *SCALE)
        assert scores[f"{name}_rmse"] == pytest.approx(rmse(pred, rating), rel=1e-6), name
        assert scores[f"{name}_mae"] == pytest.approx(float(np.mean(np.abs(pred - rating))))
    user, movie, _ = columns(TEST)
    predictions = pd.read_parquet(tmp_path / "out" / "baseline_predictions.parquet")
    expected = np.clip(mean + b_user[user] + b_movie[movie], *SCALE)
    assert np.allclose(predictions["bias_only"], expected, atol=1e-6)
    # Unseen in training: bias 0, so user 3 gets mean + b_movie[0] and movie 3 mean + b_user[0].
    assert b_user[3] == pytest.approx(0) and b_movie[3] == pytest.approx(0)
    assert predictions["bias_only"][2] == pytest.approx(mean + b_movie[0], abs=1e-6)
    assert predictions["bias_only"][3] == pytest.approx(mean + b_user[0], abs=1e-6)
    assert result["bias_only_train_rmse"] < rmse(np.full(5, mean), columns(TRAIN)[2])


def test_baselines_json_has_the_model_fields_and_cold_rows(tmp_path):
    result = run(tmp_path)
    on_disk = json.loads((tmp_path / "out" / "baselines.json").read_text())
    assert on_disk == result
    assert list(result["baselines"]) == ["global_mean", "bias_only"]
    for name, scores in result["baselines"].items():
        assert scores["best_epoch"] is None and scores["history"] is None, name
        assert scores["n_test"] == len(TEST)
        cold = scores["cold"]
        assert cold["unseen_user"]["rows"] == 1  # user 3
        assert cold["unseen_movie"]["rows"] == 1  # movie 3
        assert cold["warm"]["rows"] == 2
    # The global mean's cold RMSE is its error on that single row.
    cold = result["baselines"]["global_mean"]["cold"]
    assert cold["unseen_user"]["rmse"] == pytest.approx(abs(4.5 - 3.6))
    assert cold["unseen_movie"]["rmse"] == pytest.approx(abs(2.5 - 3.6))
    assert (result["n_train"], result["n_val"], result["n_test"]) == (5, 2, 4)
    assert result["settings"]["bias_reg"] == REG
    assert result["settings"]["rating_scale"] == list(SCALE)


def test_an_empty_test_part_is_a_clear_error_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"test\.parquet: no ratings"):
        run(tmp_path, test_rows=[])
    assert not (tmp_path / "out").exists()


def test_bias_als_converges_to_the_ridge_solution():
    user, movie, rating = columns(TRAIN)
    mean, b_user, b_movie = baselines.fit_biases(user, movie, rating, REG, 200, N_USERS, N_MOVIES)
    ridge_mean, ridge_user, ridge_movie = ridge_biases()
    assert mean == pytest.approx(ridge_mean)
    assert np.allclose(b_user, ridge_user, atol=1e-8)
    assert np.allclose(b_movie, ridge_movie, atol=1e-8)
