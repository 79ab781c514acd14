"""The training loop, the fused dot step, checkpoints on disk, and the baselines."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from movierec import baselines, checkpoint, models, synthetic, training
from movierec.training import fast
from schema_defaults import model_block, synthetic_spec

REPO = Path(__file__).resolve().parents[1]
TIMING = ("seconds", "ratings_per_s", "train_seconds")


def low_rank(n_users=60, n_movies=80, n_ratings=3000, rank=3, seed=0, noise=0.3):
    """Small ratings with biases and a planted rank-`rank` interaction, as `Ratings`."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_movies, n_ratings, replace=False)
    user, movie = pairs // n_movies, pairs % n_movies
    p = rng.normal(0, 0.8, (n_users, rank))
    q = rng.normal(0, 0.8, (n_movies, rank))
    raw = 3.5 + rng.normal(0, 0.4, n_users)[user] + rng.normal(0, 0.5, n_movies)[movie]
    raw += (p[user] * q[movie]).sum(1) + rng.normal(0, noise, n_ratings)
    rating = np.clip(np.round(raw * 2) / 2, 0.5, 5.0).astype(np.float32)
    return training.Ratings(
        torch.from_numpy(user.astype(np.int64)),
        torch.from_numpy(movie.astype(np.int64)),
        torch.from_numpy(rating),
    )


def split(ratings, val_fraction=0.2, seed=42):
    """The data contract's split: the first round(n * f) positions of perm are validation."""
    n = len(ratings)
    perm = np.random.default_rng(seed).permutation(n)
    n_val = round(n * val_fraction)
    val = torch.from_numpy(np.sort(perm[:n_val]))
    train = torch.from_numpy(np.sort(perm[n_val:]))
    return training.Ratings(*(t[train] for t in ratings)), training.Ratings(
        *(t[val] for t in ratings)
    )


SMALL = {
    "dot": {"arch": "dot", "n_factors": 4, "y_range": [0.5, 5.5], "seed": 2},
    "hybrid": {"arch": "hybrid", "n_factors": 4, "y_range": [0.5, 5.5], "seed": 2},
    "mlp": {
        "arch": "mlp",
        "n_factors": 4,
        "hidden": [8, 8],
        "dropouts": [0.3, 0.2],
        "y_range": [0.5, 5.5],
        "seed": 2,
    },
}
SMALL = {arch: model_block(block) for arch, block in SMALL.items()}


def small_fit(arch, train, val, engine="fast", **overrides):
    model = models.build_model(SMALL[arch], 60, 80)
    kwargs = dict(
        phases=[{"lr": 0.03, "epochs": 2}, {"lr": 0.01, "epochs": 1}],
        batch_size=500,
        rating_scale=(0.5, 5.0),
        weight_decay=0.05,
        loss_weights={"linear": 0.2, "dot": 1.0} if arch == "hybrid" else None,
        seed=5,
    )
    kwargs.update(overrides)
    return model, training.fit(model, train, val, engine=engine, **kwargs)


def without_timing(metrics):
    out = {k: v for k, v in metrics.items() if k not in TIMING}
    out["history"] = [{k: v for k, v in e.items() if k not in TIMING} for e in metrics["history"]]
    return out


# --- fit ------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["dot", "hybrid", "mlp"])
def test_fit_records_the_issue_metrics(arch):
    train, val = split(low_rank())
    model, metrics = small_fit(arch, train, val)
    keys = {"epoch", "phase", "lr", "train_mse", "val_rmse", "val_mae", "seconds", "ratings_per_s"}
    best = min(metrics["history"], key=lambda e: e["val_rmse"])
    if arch == "hybrid":
        keys.add("val_rmse_linear")
        assert metrics["val_rmse_linear"] == best["val_rmse_linear"]  # of the kept epoch
    assert [set(e) for e in metrics["history"]] == [keys] * 3
    assert [e["epoch"] for e in metrics["history"]] == [1, 2, 3]
    assert [e["phase"] for e in metrics["history"]] == [0, 0, 1]
    assert [e["lr"] for e in metrics["history"]] == [0.03, 0.03, 0.01]
    assert metrics["val_rmse"] == best["val_rmse"]
    assert metrics["val_mae"] == best["val_mae"]
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["stopped_epoch"] == 3
    assert metrics["n_params"] == sum(p.numel() for p in model.parameters())
    assert metrics["device"] == "cpu"
    assert all(e["ratings_per_s"] > 0 for e in metrics["history"])
    # The model holds the best epoch's weights: evaluating it reproduces val_rmse.
    again = training.evaluate(model, val, (0.5, 5.0))
    assert again["rmse"] == pytest.approx(metrics["val_rmse"], rel=1e-6)
    assert again["mae"] == pytest.approx(metrics["val_mae"], rel=1e-6)
    # The loop learns: better than predicting the mean.
    mean_rmse = (val.rating - train.rating.mean()).square().mean().sqrt().item()
    assert metrics["val_rmse"] < mean_rmse


def test_validation_clips_predictions_to_the_rating_scale():
    _, val = split(low_rank())
    model = models.build_model({**SMALL["dot"], "y_range": None}, 60, 80).eval()
    model.output.offset.fill_(100.0)  # every prediction far above 5
    metrics = training.evaluate(model, val, (0.5, 5.0))
    expected = (5.0 - val.rating).square().mean().sqrt().item()
    assert metrics["rmse"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("arch", ["dot", "hybrid", "mlp"])
def test_fit_is_deterministic_on_cpu(arch):
    train, val = split(low_rank())
    model_a, a = small_fit(arch, train, val)
    model_b, b = small_fit(arch, train, val)
    assert without_timing(a) == without_timing(b)
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, model_b.state_dict()[key]), key
    _, c = small_fit(arch, train, val, seed=6)  # the seed matters
    assert without_timing(c) != without_timing(a)


@pytest.mark.parametrize("arch", ["dot", "hybrid", "mlp"])
def test_worker_threads_are_deterministic(arch, monkeypatch):
    """Two worker threads (torch threads = 2) give the same numbers on every run."""
    monkeypatch.setattr(fast, "CPU_CHUNK", 500)  # several chunks per batch
    train, val = split(low_rank(n_ratings=4000))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _, a = small_fit(arch, train, val, batch_size=2048)
        assert torch.get_num_threads() == 2  # restored after the workers
        assert a["engine"] == f"fast-{arch}" or arch == "mlp"
        _, b = small_fit(arch, train, val, batch_size=2048)
        torch.set_num_threads(1)
        _, single = small_fit(arch, train, val, batch_size=2048)
    finally:
        torch.set_num_threads(threads)
    assert without_timing(a) == without_timing(b)
    # Another split of the work only changes the rounding of sums (and the mlp's dropout
    # draws: each worker thread draws its own masks).
    assert a["val_rmse"] == pytest.approx(single["val_rmse"], abs=1e-2 if arch == "mlp" else 1e-3)


def test_max_steps_stops_early():
    train, val = split(low_rank())
    _, metrics = small_fit("dot", train, val, batch_size=100, max_steps=3)
    assert len(metrics["history"]) == 1 and metrics["stopped_epoch"] == 1
    assert np.isfinite(metrics["history"][0]["train_mse"])


# A good phase, then a learning rate so high that validation only gets worse.
GOOD_THEN_BAD = [{"lr": 0.05, "epochs": 3}, {"lr": 2.0, "epochs": 10}]


@pytest.mark.parametrize("arch", ["dot", "mlp"])
def test_patience_stops_when_validation_stops_improving(arch):
    train, val = split(low_rank())
    model, metrics = small_fit(arch, train, val, phases=GOOD_THEN_BAD, patience=2)
    history = metrics["history"]
    rmse = [e["val_rmse"] for e in history]
    # Stopped `patience` epochs after the best one, long before the end of the schedule.
    assert metrics["stopped_epoch"] == len(history) == metrics["best_epoch"] + 2 < 13
    assert [e["epoch"] for e in history] == list(range(1, len(history) + 1))
    assert metrics["best_epoch"] == int(np.argmin(rmse)) + 1
    assert metrics["val_rmse"] == history[metrics["best_epoch"] - 1]["val_rmse"]
    assert metrics["val_mae"] == history[metrics["best_epoch"] - 1]["val_mae"]
    assert all(r > metrics["val_rmse"] for r in rmse[metrics["best_epoch"] :])
    # The returned model holds the kept epoch's weights, not the last epoch's.
    again = training.evaluate(model, val, (0.5, 5.0))
    assert again["rmse"] == pytest.approx(metrics["val_rmse"], rel=1e-6)
    assert again["rmse"] < rmse[-1]


def test_without_patience_the_whole_schedule_runs():
    train, val = split(low_rank())
    _, stopped = small_fit("dot", train, val, phases=GOOD_THEN_BAD, patience=2)
    _, full = small_fit("dot", train, val, phases=GOOD_THEN_BAD)
    assert full["stopped_epoch"] == len(full["history"]) == 13
    # Early stopping changes when training ends, not what the epochs before it did.
    assert full["best_epoch"] == stopped["best_epoch"]
    assert full["val_rmse"] == stopped["val_rmse"]
    assert (
        without_timing(full)["history"][: len(stopped["history"])]
        == without_timing(stopped)["history"]
    )


def test_hybrid_reports_the_linear_head_of_the_kept_epoch():
    """val_rmse_linear belongs to the kept checkpoint, not to the linear head's best epoch."""
    train, val = split(low_rank())
    model, metrics = small_fit("hybrid", train, val, phases=[{"lr": 0.03, "epochs": 6}])
    history = metrics["history"]
    linear = [e["val_rmse_linear"] for e in history]
    best_linear_epoch = int(np.argmin(linear)) + 1
    # The construct: the dot head keeps improving after the linear head's best epoch.
    assert best_linear_epoch != metrics["best_epoch"]
    kept = history[metrics["best_epoch"] - 1]
    assert metrics["val_rmse_linear"] == kept["val_rmse_linear"]
    assert metrics["val_rmse_linear"] > min(linear)
    again = training.evaluate(model, val, (0.5, 5.0))
    assert again["rmse_linear"] == pytest.approx(metrics["val_rmse_linear"], rel=1e-6)


@pytest.mark.parametrize(
    ("phases", "message"),
    [([], "non-empty"), ([{"lr": 0, "epochs": 1}], "lr must be"), ([{"lr": 0.1}], "epochs")],
)
def test_bad_schedules_are_clear_errors(phases, message):
    train, val = split(low_rank())
    with pytest.raises(ValueError, match=message):
        small_fit("dot", train, val, phases=phases)


def test_device_setting(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training.resolve_device("auto") == torch.device("cpu")
    assert training.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="device: cuda was requested"):
        training.resolve_device("cuda")
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        training.resolve_device("gpu")


def test_promised_gpu_that_is_not_visible_fails_loudly(monkeypatch):
    """A job the gpu profile gave a GPU must not quietly train on the CPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"promised 1 GPU.*resources: gpu=1"):
        training.resolve_device("auto", gpus=1)
    # An explicit cpu setting wins (the SLURM test's fake GPU relies on it).
    assert training.resolve_device("cpu", gpus=1) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training.resolve_device("auto", gpus=1) == torch.device("cuda")


# --- train_model: files in, files out ---------------------------------------------------


def write_split(root, ratings=None):
    """Split parquet files and id maps as the data stages write them."""
    ratings = low_rank() if ratings is None else ratings
    train, val = split(ratings)
    root.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("val", val)):
        pd.DataFrame(
            {
                "user": part.user.numpy().astype(np.int32),
                "movie": part.movie.numpy().astype(np.int32),
                "rating": part.rating.numpy(),
                "timestamp": np.zeros(len(part), dtype=np.int64),
            }
        ).to_parquet(root / f"{name}.parquet")
    pd.DataFrame({"user": np.arange(60, dtype=np.int32), "userId": np.arange(1, 61)}).to_parquet(
        root / "users.parquet"
    )
    pd.DataFrame({"movie": np.arange(80, dtype=np.int32), "movieId": np.arange(80) * 3}).to_parquet(
        root / "movies.parquet"
    )
    return root


def run_train_model(data, out, settings, init=None):
    return training.train_model(
        train_path=data / "train.parquet",
        val_path=data / "val.parquet",
        users_path=data / "users.parquet",
        movies_path=data / "movies.parquet",
        settings=settings,
        rating_scale=[0.5, 5.0],
        model_pt=out / "model.pt",
        model_json=out / "model.json",
        history_json=out / "history.json",
        init=init,
    )


def test_train_model_writes_checkpoint_meta_and_history(tmp_path):
    data = write_split(tmp_path / "data")
    settings = {**SMALL["hybrid"], "batch_size": 400, "phases": [{"lr": 0.02, "epochs": 2}]}
    metrics = run_train_model(data, tmp_path / "hybrid", {**settings, "device": "cpu"})
    on_disk = json.loads((tmp_path / "hybrid" / "history.json").read_text())
    assert on_disk["val_rmse"] == metrics["val_rmse"]
    assert "val_rmse_linear" in on_disk
    # Training never scores the test part: that is evaluate_model's job.
    assert not any(k.startswith("test_") for k in on_disk)
    assert not (tmp_path / "hybrid" / "metrics.json").exists()
    meta = json.loads((tmp_path / "hybrid" / "model.json").read_text())
    assert meta["arch"] == "hybrid"
    assert meta["settings"]["n_factors"] == 4
    assert (meta["n_users"], meta["n_movies"]) == (60, 80)
    assert meta["users"].endswith("users.parquet") and meta["movies"].endswith("movies.parquet")
    assert meta["rating_scale"] == [0.5, 5.0]
    assert meta["torch_version"] == torch.__version__
    assert meta["device"] == "cpu" and meta["init"] is None
    model, _ = checkpoint.load_model(tmp_path / "hybrid" / "model.pt")
    _, val = split(low_rank())
    assert training.evaluate(model, val, (0.5, 5.0))["rmse"] == pytest.approx(
        metrics["val_rmse"], rel=1e-6
    )


@pytest.mark.parametrize("pre_arch", ["hybrid", "mlp"])
def test_pretrain_weights_transfer_to_the_finetune(tmp_path, pre_arch):
    data = write_split(tmp_path / "data")
    pre = {**SMALL[pre_arch], "batch_size": 500, "phases": [{"lr": 0.05, "epochs": 2}]}
    run_train_model(data, tmp_path / "pre", pre)
    pretrained, _ = checkpoint.load_model(tmp_path / "pre" / "model.pt")
    # A learning rate of 1e-12 leaves the finetune where the transfer put it.
    fine = {**SMALL["dot"], "seed": 9, "batch_size": 500, "phases": [{"lr": 1e-12, "epochs": 1}]}
    run_train_model(data, tmp_path / "fine", fine, init=tmp_path / "pre" / "model.pt")
    finetuned, meta = checkpoint.load_model(tmp_path / "fine" / "model.pt")
    fresh = models.build_model(fine, 60, 80)
    assert not torch.allclose(fresh.movie_emb.weight, pretrained.movie_emb.weight)
    for name in ("user_emb", "movie_emb"):
        assert torch.allclose(
            getattr(finetuned, name).weight, getattr(pretrained, name).weight, atol=1e-6
        )
    if pre_arch == "hybrid":
        assert pretrained.movie_bias.weight.abs().sum() > 0
        assert torch.allclose(finetuned.movie_bias.weight, pretrained.movie_bias.weight, atol=1e-6)
        assert meta["init"]["copied"] == ["user_emb", "movie_emb", "user_bias", "movie_bias"]
    else:
        assert finetuned.movie_bias.weight.abs().max() < 1e-6
        assert meta["init"]["copied"] == ["user_emb", "movie_emb"]
    assert meta["init"]["path"] == str(tmp_path / "pre" / "model.pt")


def test_finetune_refuses_a_pretrain_of_another_index(tmp_path):
    data = write_split(tmp_path / "data")
    other = models.build_model(SMALL["hybrid"], 61, 80)
    meta = {"arch": "hybrid", "settings": SMALL["hybrid"], "n_users": 61, "n_movies": 80}
    checkpoint.save_model(other, meta, tmp_path / "pre" / "model.pt")
    fine = {**SMALL["dot"], "batch_size": 500, "phases": [{"lr": 0.01, "epochs": 1}]}
    with pytest.raises(ValueError, match="pretrained on 61 users"):
        run_train_model(data, tmp_path / "fine", fine, init=tmp_path / "pre" / "model.pt")
    assert not (tmp_path / "fine").exists()


def test_bad_input_is_a_clear_error_and_leaves_no_output(tmp_path):
    data = write_split(tmp_path / "data")
    frame = pd.read_parquet(data / "val.parquet")
    frame.loc[7, "movie"] = 80  # outside the 80-movie index
    frame.to_parquet(data / "val.parquet")
    settings = {**SMALL["dot"], "batch_size": 500, "phases": [{"lr": 0.01, "epochs": 1}]}
    with pytest.raises(ValueError, match=r"val\.parquet: row 7: movie index 80"):
        run_train_model(data, tmp_path / "out", settings)
    assert not (tmp_path / "out").exists()
    frame.loc[7, "movie"] = 3
    frame.loc[9, "rating"] = 7.0
    frame.to_parquet(data / "val.parquet")
    with pytest.raises(ValueError, match=r"row 9: rating 7.0 is not a number in the rating scale"):
        run_train_model(data, tmp_path / "out", settings)


# --- baselines ------------------------------------------------------------------------


def test_bias_als_matches_the_ridge_solution():
    ratings = low_rank(n_users=12, n_movies=15, n_ratings=120)
    user, movie = ratings.user.numpy(), ratings.movie.numpy()
    rating = ratings.rating.numpy().astype(np.float64)
    reg = 2.0
    mean, b_user, b_movie = baselines.fit_biases(user, movie, rating, reg, 500, 12, 15)
    # min sum (r - mean - b_u - b_m)^2 + reg (|b_u|^2 + |b_m|^2), solved directly.
    design = np.zeros((len(rating), 27))
    design[np.arange(len(rating)), user] = 1
    design[np.arange(len(rating)), 12 + movie] = 1
    solution = np.linalg.solve(design.T @ design + reg * np.eye(27), design.T @ (rating - mean))
    assert np.allclose(np.concatenate([b_user, b_movie]), solution, atol=1e-6)


def test_compute_baselines_writes_both_rmses(tmp_path):
    data = write_split(tmp_path / "data")
    out = tmp_path / "baselines.json"
    result = baselines.compute_baselines(
        train_path=data / "train.parquet",
        val_path=data / "val.parquet",
        test_path=data / "val.parquet",  # (tests/test_baselines.py has a real test part)
        out_path=out,
        predictions_out=tmp_path / "baseline_predictions.parquet",
        bias_reg=5.0,
        iterations=20,
        rating_scale=[0.5, 5.0],
    )
    assert json.loads(out.read_text()) == result
    train, val = split(low_rank())
    mean = train.rating.double().mean()
    expected = (val.rating.double() - mean).square().mean().sqrt().item()
    global_mean, bias_only = (result["baselines"][k] for k in ("global_mean", "bias_only"))
    assert global_mean["val_rmse"] == pytest.approx(expected, rel=1e-6)
    assert bias_only["val_rmse"] < global_mean["val_rmse"]
    assert result["settings"]["bias_reg"] == 5.0


# --- the tuned defaults beat the bias-only baseline -------------------------------------


@pytest.fixture(scope="module")
def synthetic_100k(tmp_path_factory):
    """synthetic-100k (the registry's spec), indexed and split per the data contract."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    spec = synthetic_spec(config["datasets"]["synthetic-100k"]["synthetic"])
    raw = tmp_path_factory.mktemp("synthetic") / "raw"
    synthetic.generate(spec, raw)
    frame = pd.read_csv(raw / "ratings.csv")
    user = np.unique(frame.userId, return_inverse=True)[1]
    movie = np.unique(frame.movieId, return_inverse=True)[1]
    ratings = training.Ratings(
        torch.from_numpy(user.astype(np.int64)),
        torch.from_numpy(movie.astype(np.int64)),
        torch.from_numpy(frame.rating.to_numpy(np.float32)),
    )
    return (*split(ratings), int(user.max()) + 1, int(movie.max()) + 1, config)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["mlp", "dot", "hybrid", "mlp_then_dot", "hybrid_then_dot", "implicit"]
)
def test_default_models_beat_the_bias_baseline(synthetic_100k, name):
    train, val, n_users, n_movies, config = synthetic_100k
    mean, b_user, b_movie = baselines.fit_biases(
        train.user.numpy(),
        train.movie.numpy(),
        train.rating.numpy().astype(np.float64),
        config["baselines"]["bias_reg"],
        config["baselines"]["iterations"],
        n_users,
        n_movies,
    )
    pred = np.clip(mean + b_user[val.user.numpy()] + b_movie[val.movie.numpy()], 0.5, 5.0)
    bias_rmse = float(np.sqrt(np.mean((pred - val.rating.numpy()) ** 2)))

    def train_block(settings, init=None):
        model = models.build_model(settings, n_users, n_movies)
        if init is not None:
            models.transfer_embeddings(init, model)
        if hasattr(model, "set_neighbours"):
            model.set_neighbours(train.user, train.movie)
        metrics = training.fit(
            model,
            train,
            val,
            phases=settings["phases"],
            batch_size=settings["batch_size"],
            rating_scale=(0.5, 5.0),
            weight_decay=settings["weight_decay"],
            loss_weights=settings["loss_weights"],
            seed=settings["seed"],
            engine=settings["engine"],
        )
        return model, metrics

    settings = model_block(config["models"][name])
    pretrained = None
    if "pretrain" in settings:
        pretrained, _ = train_block(settings.pop("pretrain"))
    elif settings["init_from"]:  # hybrid_then_dot starts from the hybrid model
        pretrained, _ = train_block(model_block(config["models"][settings["init_from"]]))
    _, metrics = train_block(settings, pretrained)
    assert metrics["val_rmse"] < bias_rmse - 0.02, (name, metrics["val_rmse"], bias_rmse)
