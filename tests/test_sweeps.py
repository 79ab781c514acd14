"""Sweeps: trial expansion and names, seeded draws, the choice on validation, failed trials."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from movierec import checkpoint, sweep_plan, sweeps, trials
from movierec.evaluation import predict
from schema_defaults import model_block

DOT = {
    "arch": "dot",
    "n_factors": 4,
    "batch_size": 512,
    "phases": [{"lr": 0.03, "epochs": 8}],
    "weight_decay": 0.05,
    "y_range": [0.5, 5.5],
    "seed": 1,
    "device": "cpu",
}
DOT = model_block(DOT)
MODEL_KEYS = {"arch", "n_factors", "batch_size", "phases", "weight_decay", "y_range",
              "seed", "device", "loss_weights", "pretrain"}  # fmt: skip


def test_grid_is_every_combination_in_key_order():
    grid = {"weight_decay": [0.05, 0.15, 0.3], "n_factors": [32, 64]}
    got = sweeps.grid_trials(grid)
    assert len(got) == 6
    assert got[0] == {"weight_decay": 0.05, "n_factors": 32}
    assert got[1] == {"weight_decay": 0.05, "n_factors": 64}
    assert {json.dumps(t, sort_keys=True) for t in got} == {
        json.dumps({"weight_decay": w, "n_factors": n}, sort_keys=True)
        for w in grid["weight_decay"]
        for n in grid["n_factors"]
    }


def test_adding_a_grid_value_keeps_every_other_trial_name():
    before = sweeps.sweep_trials(
        {"model": "dot", "grid": {"weight_decay": [0.05, 0.15], "n_factors": [32]}}
    )
    after = sweeps.sweep_trials(
        {"model": "dot", "grid": {"weight_decay": [0.05, 0.15, 0.3], "n_factors": [32]}}
    )
    assert set(before) < set(after)
    assert len(after) - len(before) == 1
    for name, overrides in before.items():
        assert after[name] == overrides


def test_trial_name_ignores_key_order_and_tells_values_apart():
    a = sweeps.trial_name({"weight_decay": 0.1, "n_factors": 32})
    assert a == sweeps.trial_name({"n_factors": 32, "weight_decay": 0.1})
    assert a != sweeps.trial_name({"n_factors": 32, "weight_decay": 0.10001})
    assert a.startswith("t") and len(a) == 11


SPACE = {
    "weight_decay": {"log_uniform": [0.01, 1.0]},
    "dropout": {"uniform": [0.0, 0.5]},
    "epochs": {"int_uniform": [3, 5]},
    "n_factors": {"choice": [16, 32, 64, 128]},
}


def test_random_draws_are_deterministic_for_a_seed_and_stay_in_their_ranges():
    a = sweeps.random_trials(30, 0, SPACE)
    assert a == sweeps.random_trials(30, 0, SPACE)
    assert a != sweeps.random_trials(30, 1, SPACE)
    for t in a:
        assert 0.01 <= t["weight_decay"] <= 1.0
        assert 0.0 <= t["dropout"] <= 0.5
        assert t["epochs"] in (3, 4, 5)
        assert t["n_factors"] in (16, 32, 64, 128)
        assert float(f"{t['weight_decay']:.4g}") == t["weight_decay"]
    # Log-uniform: about as many draws below 0.1 as above.
    below = sum(t["weight_decay"] < 0.1 for t in sweeps.random_trials(400, 0, SPACE))
    assert 150 < below < 250
    assert {t["epochs"] for t in a} == {3, 4, 5}


def test_a_larger_n_keeps_the_first_draws():
    assert sweeps.random_trials(25, 3, SPACE)[:10] == sweeps.random_trials(10, 3, SPACE)


def test_unknown_distribution_is_named():
    with pytest.raises(ValueError, match="normal"):
        sweeps.draw({"normal": [0, 1]}, np.random.default_rng(0))


def test_dotted_keys_set_nested_values_and_leave_the_block_alone():
    block = {"arch": "hybrid", "loss_weights": {"linear": 0.2, "dot": 1.0}, "n_factors": 8}
    out = sweeps.apply_overrides(block, {"loss_weights.linear": 0.5, "n_factors": 16})
    assert out == {"arch": "hybrid", "loss_weights": {"linear": 0.5, "dot": 1.0}, "n_factors": 16}
    assert block["loss_weights"]["linear"] == 0.2


@pytest.mark.parametrize(
    ("key", "message"),
    [("wieght_decay", "not a setting of models.dot; known settings"), ("arch", "cannot be swept"),
     ("pretrain.n_factors", "cannot be swept")],
)  # fmt: skip
def test_bad_keys_are_named(key, message):
    sweep = {"model": "dot", "grid": {key: [1, 2]}}
    with pytest.raises(ValueError, match=message) as err:
        sweeps.check_keys("s", sweep, MODEL_KEYS)
    assert f"sweeps.s: {key!r}" in str(err.value)


SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
BLOCKS = {"dot": DOT}


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"model": "dot", "grid": {"wieght_decay": [0.1]}},
         "sweeps.bad: 'wieght_decay' is not a setting of models.dot"),
        ({"model": "dot", "grid": {"weight_decay": [0.1, -1.0]}},
         "sweeps.bad: the trial {'weight_decay': -1.0} gives models.dot settings the schema "
         "rejects at weight_decay"),
        ({"model": "dot", "grid": {"phases": [[{"lr": 0.1}]]}},
         "rejects at phases.0: 'epochs' is a required property"),
        ({"model": "dott", "grid": {"weight_decay": [0.1]}},
         "sweeps.bad: model 'dott' is not under models: (dot)"),
        ({"model": "dot"}, "sweeps.bad: give exactly one of grid: or random: (got neither)"),
        ({"model": "dot", "grid": {"n_factors": [4]}, "random": {"n": 1, "space": {}}},
         "(got both)"),
    ],
    ids=["unknown-key", "bad-value", "bad-nested-value", "unknown-model", "no-space", "both"],
)  # fmt: skip
def test_bad_sweeps_are_named(sweep, message):
    with pytest.raises(ValueError) as err:
        sweep_plan.plan_sweeps({"bad": sweep}, BLOCKS, SCHEMA)
    assert message in str(err.value)


def test_plan_lists_every_trial_of_every_sweep():
    plans = sweep_plan.plan_sweeps(
        {"g": {"model": "dot", "grid": {"weight_decay": [0.1, 0.2], "n_factors": [4, 8, 8]}},
         "r": {"model": "dot", "random": {"n": 5, "seed": 0, "space": SPACE_DOT}}},
        BLOCKS, SCHEMA,
    )  # fmt: skip
    assert len(plans["g"]) == 4  # the repeated 8 is one trial
    assert len(plans["r"]) <= 5 and all(t["n_factors"] in (4, 8) for t in plans["r"].values())


SPACE_DOT = {"weight_decay": {"log_uniform": [0.01, 1.0]}, "n_factors": {"choice": [4, 8]}}


def test_choose_ignores_failed_and_breaks_ties_by_name():
    results = {
        "tb": {"status": "ok", "val_rmse": 0.9},
        "ta": {"status": "ok", "val_rmse": 0.9},
        "tc": {"status": "failed", "val_rmse": math.nan, "error": "diverged"},
        "td": {"status": "ok", "val_rmse": 0.95},
    }
    assert sweeps.choose(results) == "ta"
    with pytest.raises(ValueError, match="every trial of the sweep failed.*diverged"):
        sweeps.choose({"tc": results["tc"]})


# --- train_trial and score_sweep on files --------------------------------------------


def _write_part(path, user, movie, rating):
    frame = pd.DataFrame({"user": user.astype(np.int32), "movie": movie.astype(np.int32),
                          "rating": rating.astype(np.float32)})  # fmt: skip
    frame.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def split_files(tmp_path_factory):
    """A low-rank train / val part, id maps, and two test parts (see the winner test)."""
    root = tmp_path_factory.mktemp("sweep-split")
    rng = np.random.default_rng(0)
    n_users, n_movies, n = 60, 80, 4000
    p, q = rng.normal(0, 0.8, (n_users, 2)), rng.normal(0, 0.8, (n_movies, 2))
    user, movie = rng.integers(0, n_users, n), rng.integers(0, n_movies, n)
    rating = np.clip(np.round((3.5 + (p[user] * q[movie]).sum(1)) * 2) / 2, 0.5, 5.0)
    cut = int(0.8 * n)
    pd.DataFrame({"userId": np.arange(n_users)}).to_parquet(root / "users.parquet")
    pd.DataFrame({"movieId": np.arange(n_movies)}).to_parquet(root / "movies.parquet")
    return {
        "train_path": _write_part(root / "train.parquet", user[:cut], movie[:cut], rating[:cut]),
        "val_path": _write_part(root / "val.parquet", user[cut:], movie[cut:], rating[cut:]),
        "users_path": root / "users.parquet",
        "movies_path": root / "movies.parquet",
        "mean": float(rating[:cut].mean()),
        "n_users": n_users,
        "n_movies": n_movies,
    }


def run_trial(tmp_path, split_files, overrides):
    settings = sweeps.apply_overrides(DOT, overrides)
    name = sweeps.trial_name(overrides)
    out = tmp_path / name
    out.mkdir()
    args = {k: split_files[k] for k in ("train_path", "val_path", "users_path", "movies_path")}
    result = trials.train_trial(
        name=name, overrides=overrides, settings=settings, result_json=out / "trial.json",
        model_pt=out / "model.pt", model_json=out / "model.json", history_json=out / "history.json",
        rating_scale=(0.5, 5.0), threads=1, **args,
    )  # fmt: skip
    assert json.loads((out / "trial.json").read_text()) == json.loads(json.dumps(result))
    return name, out


def test_a_diverging_trial_is_recorded_as_failed_with_a_checkpoint(tmp_path, split_files):
    name, out = run_trial(
        tmp_path, split_files, {"phases": [{"lr": 1e12, "epochs": 3}], "y_range": None}
    )
    result = json.loads((out / "trial.json").read_text())
    assert result["status"] == "failed"
    assert result["val_rmse"] is None
    assert "diverged" in result["error"]
    model, meta = checkpoint.load_model(out / "model.pt")
    assert "diverged" in meta["failed"]
    assert json.loads((out / "history.json").read_text())["status"] == "failed"


def test_winner_is_chosen_on_validation_even_when_another_is_better_on_test(tmp_path, split_files):
    """A trained trial (best on validation) against a near-constant one (huge weight decay).

    The test part is built to favour the near-constant trial: every rating
    equals what it predicts. score_sweep must still pick the trained one, and
    report that one's (worse) test RMSE.
    """
    good, good_dir = run_trial(tmp_path, split_files, {"weight_decay": 0.05})
    flat, flat_dir = run_trial(tmp_path, split_files, {"weight_decay": 50.0})
    failed, failed_dir = run_trial(
        tmp_path, split_files, {"phases": [{"lr": 1e12, "epochs": 2}], "y_range": None}
    )
    val = {
        n: json.loads((d / "trial.json").read_text())["val_rmse"]
        for n, d in ((good, good_dir), (flat, flat_dir))
    }
    assert val[good] < val[flat]

    rng = np.random.default_rng(5)
    user = rng.integers(0, split_files["n_users"], 500)
    movie = rng.integers(0, split_files["n_movies"], 500)
    flat_model, _ = checkpoint.load_model(flat_dir / "model.pt")
    import torch

    target = np.clip(predict(flat_model, torch.from_numpy(user), torch.from_numpy(movie)), 0.5, 5.0)
    test_path = _write_part(tmp_path / "test.parquet", user, movie, target)
    good_model, _ = checkpoint.load_model(good_dir / "model.pt")
    good_pred = np.clip(
        predict(good_model, torch.from_numpy(user), torch.from_numpy(movie)), 0.5, 5.0
    )
    good_test = math.sqrt(float(np.mean((good_pred - target.astype(np.float32)) ** 2)))
    assert good_test > 0.1  # the flat trial is (nearly) perfect on this test part

    dirs = {good: good_dir, flat: flat_dir, failed: failed_dir}
    sweep = {"model": "dot", "grid": {"weight_decay": [0.05, 50.0]}}
    best = trials.score_sweep(
        sweep_name="s", sweep=sweep,
        results_paths={n: d / "trial.json" for n, d in dirs.items()},
        model_paths={n: d / "model.pt" for n, d in dirs.items()},
        test_path=test_path, rating_scale=(0.5, 5.0),
        trials_csv=tmp_path / "trials.csv", best_json=tmp_path / "best.json",
    )  # fmt: skip
    assert best["trial"] == good
    assert best["selected_by"] == "val_rmse"
    assert best["test_rmse"] == pytest.approx(good_test, rel=1e-5)
    assert best["val_rmse"] == pytest.approx(val[good])
    assert (best["n_trials"], best["n_failed"]) == (3, 1)
    assert json.loads((tmp_path / "best.json").read_text())["trial"] == good
    table = pd.read_csv(tmp_path / "trials.csv")
    assert list(table["trial"]) == [good, flat, failed]  # best validation first, failed last
    assert list(table["status"]) == ["ok", "ok", "failed"]
    assert table.loc[0, "weight_decay"] == 0.05
    assert {"val_rmse", "seconds", "best_epoch"} <= set(table.columns)
    assert "test_rmse" not in table.columns
