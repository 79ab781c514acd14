"""The training benchmark: its pieces (settings, budgets, the naive loop) and a quick
end-to-end run of `results/benchmarks/training-{dataset}.json` on a tiny synthetic set.

Timing targets live in the benchmark's output, not here: these tests check that
both loops ran and that every figure is there and sane, never a speed ratio.
"""

import json
import math

import pytest
import torch
import yaml
from conftest import copy_workflow, model_names, scheduled_rules, snakemake
from movierec import bench, models, training
from schema_defaults import model_block

DATASET = "synthetic-20k"
MODELS = ["mlp", "dot", "hybrid", "mlp_then_dot", "hybrid_then_dot"]
TARGET = f"results/benchmarks/training-{DATASET}.json"
FAST = "tests/config/fast.yaml"
FIGURES = (
    "ratings_per_s", "naive_ratings_per_s", "speedup", "epoch_seconds", "naive_epoch_seconds",
    "val_rmse", "naive_val_rmse", "full_best_val_rmse",
)  # fmt: skip
# A benchmark small enough for a test: few steps, one repeat.
QUICK_BENCH = {
    "bench": {
        "steps": 4,
        "naive_steps": 6,
        "naive_batch_size": 64,
        "warmup_steps": 1,
        "repeats": 1,
        "epochs": 1,
        "full_schedule": True,
    }
}


def toy_ratings(n_users=40, n_movies=30, n=3000, n_val=500, seed=0):
    """Training and validation ratings of one planted rank-2 model plus movie biases."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n_users, 2, generator=g)
    m = torch.randn(n_movies, 2, generator=g)
    bias = torch.randn(n_movies, generator=g) * 0.5
    user = torch.randint(n_users, (n + n_val,), generator=g)
    movie = torch.randint(n_movies, (n + n_val,), generator=g)
    rating = (3.5 + (u[user] * m[movie]).sum(1) * 0.6 + bias[movie]).clamp(0.5, 5.0).float()
    train = training.Ratings(user[:n], movie[:n], rating[:n])
    val = training.Ratings(user[n:], movie[n:], rating[n:])
    return train, val


# --- settings and budgets ------------------------------------------------------


def test_bench_settings_defaults_and_overrides():
    settings = bench.bench_settings({"steps": 7})
    assert settings["steps"] == 7
    assert settings["naive_batch_size"] == bench.DEFAULTS["naive_batch_size"]
    assert bench.bench_settings(None) == bench.DEFAULTS
    assert bench.bench_settings({}) is not bench.DEFAULTS  # a copy, never the defaults


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"stepz": 3}, "unknown setting"),
        ({"steps": 0}, "bench.steps must be an integer >= 1, got 0"),
        ({"epochs": -1}, "bench.epochs must be an integer >= 0, got -1"),
        ({"naive_batch_size": 2.5}, "bench.naive_batch_size"),
        ({"repeats": True}, "bench.repeats"),
        ({"warmup_steps": -1}, "bench.warmup_steps must be an integer >= 0"),
        ({"naive_lr": 0}, "bench.naive_lr must be a positive number"),
        ({"full_schedule": "yes"}, "bench.full_schedule"),
        ({"goals": {"dot": -1}}, "bench.goals"),
    ],
)
def test_bench_settings_reject_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        bench.bench_settings(bad)


def test_truncate_phases_keeps_the_first_epochs_of_the_schedule():
    phases = [{"lr": 0.03, "epochs": 20}, {"lr": 0.01, "epochs": 10}]
    assert bench.truncate_phases(phases, 1) == [{"lr": 0.03, "epochs": 1}]
    assert bench.truncate_phases(phases, 25) == [
        {"lr": 0.03, "epochs": 20},
        {"lr": 0.01, "epochs": 5},
    ]
    assert bench.truncate_phases(phases, 99) == phases


def test_ratings_seen_counts_the_short_last_batch_of_each_epoch():
    # 10 ratings in batches of 4: 4, 4, 2 per epoch.
    assert bench.ratings_seen(10, 4, 1) == 4
    assert bench.ratings_seen(10, 4, 3) == 10
    assert bench.ratings_seen(10, 4, 4) == 14
    assert bench.ratings_seen(10, 4, 6) == 20
    assert bench.ratings_seen(10, 64, 2) == 20


def test_model_stages_split_pretrain_from_train():
    block = {"arch": "dot", "phases": [], "pretrain": {"arch": "mlp", "hidden": [4]}}
    stages = bench.model_stages(block)
    assert [name for name, _ in stages] == ["pretrain", "train"]
    assert stages[0][1]["arch"] == "mlp"
    assert "pretrain" not in stages[1][1]
    assert "pretrain" in block  # the config block itself is left alone
    assert [name for name, _ in bench.model_stages({"arch": "dot"})] == ["train"]
    # init_from: the named model's block is the pretrain stage.
    models_config = {"hybrid": {"arch": "hybrid"}, "h_dot": {"arch": "dot", "init_from": "hybrid"}}
    stages = bench.model_stages(models_config["h_dot"], models_config)
    assert [(name, s["arch"]) for name, s in stages] == [("pretrain", "hybrid"), ("train", "dot")]


def test_subset_draws_distinct_rows_in_order():
    n = 100
    ratings = training.Ratings(torch.arange(n), torch.arange(n) % 7, torch.arange(n).float())
    part = bench.subset(ratings, 30, torch.Generator().manual_seed(0))
    assert len(part) == 30
    rows = part.rating.long()  # the rating of row i is i
    assert rows.tolist() == sorted(set(rows.tolist()))  # distinct, in the original order
    assert torch.equal(part.user, rows) and torch.equal(part.movie, rows % 7)
    assert bench.subset(ratings, 500, torch.Generator()) is ratings


# --- the naive loop ------------------------------------------------------------


def test_l2_penalty_is_the_per_use_l2_of_our_loop():
    """Its gradient is 2 * uses * row / batch: what training's RowAdam adds per row."""
    model = models.build_model(model_block(arch="dot", n_factors=3, seed=2), 5, 4)
    with torch.no_grad():
        model.user_bias.weight.normal_()
        model.movie_bias.weight.normal_()
    user = torch.tensor([0, 0, 3, 1])
    movie = torch.tensor([2, 2, 2, 0])
    bench.l2_penalty(model, user, movie).backward()
    uses = torch.bincount(user, minlength=5).float().unsqueeze(1)
    expected = 2.0 * uses * model.user_emb.weight.detach() / len(user)
    torch.testing.assert_close(model.user_emb.weight.grad, expected)
    muses = torch.bincount(movie, minlength=4).float().unsqueeze(1)
    expected_bias = 2.0 * muses * model.movie_bias.weight.detach() / len(user)
    torch.testing.assert_close(model.movie_bias.weight.grad, expected_bias)
    # An mlp has no bias tables; its penalty covers the two embeddings only.
    mlp_settings = model_block(arch="mlp", n_factors=3, hidden=[4], dropouts=[0.0])
    mlp = models.build_model(mlp_settings, 5, 4)
    value = bench.l2_penalty(mlp, user, movie)
    manual = (mlp.user_emb(user).square().sum() + mlp.movie_emb(movie).square().sum()) / 4
    torch.testing.assert_close(value, manual)


@pytest.mark.parametrize("arch", ["dot", "hybrid", "mlp"])
def test_naive_fit_trains_and_reports(arch):
    train, val = toy_ratings()
    settings = model_block(arch=arch, n_factors=4, hidden=[8], dropouts=[0.1], seed=3)
    settings["y_range"] = [0.5, 5.5]
    model = models.build_model(settings, 40, 30)
    before = training.evaluate(model, val, (0.5, 5.0))["rmse"]
    result = bench.naive_fit(
        model, train, val, lr=0.01, batch_size=64, rating_scale=(0.5, 5.0), epochs=3,
        weight_decay=0.01, loss_weights={"linear": 0.2, "dot": 1.0},
    )  # fmt: skip
    assert result["steps"] == 3 * math.ceil(len(train) / 64)
    assert result["ratings"] == 3 * len(train)
    assert len(result["losses"]) == 3
    assert result["seconds"] > 0 and result["ratings_per_s"] > 0
    assert result["val_rmse"] < before
    assert ("val_rmse_linear" in result) == (arch == "hybrid")
    assert not any(emb.sparse for emb in model.modules() if isinstance(emb, torch.nn.Embedding))


@pytest.mark.parametrize("y_range", [[0.5, 5.5], None])
def test_naive_fit_starts_at_the_same_offset_as_fit(y_range):
    """Both loops put a raw score of 0 at the training mean (inside the sigmoid if bounded)."""
    train, val = toy_ratings()
    settings = model_block(arch="dot", n_factors=4, seed=3, y_range=y_range)
    ours, naive = (models.build_model(settings, 40, 30) for _ in range(2))
    training.fit(
        ours, train, val, phases=[{"lr": 0.01, "epochs": 1}], batch_size=256,
        rating_scale=(0.5, 5.0),
    )  # fmt: skip
    bench.naive_fit(
        naive, train, val, lr=0.01, batch_size=64, rating_scale=(0.5, 5.0), epochs=1, max_steps=2
    )
    assert float(naive.output.offset) == float(ours.output.offset) != 0.0
    with torch.no_grad():
        naive.user_bias.weight.zero_()
        naive.movie_bias.weight.zero_()
        naive.user_emb.weight.zero_()
        pred = naive(torch.tensor([0]), torch.tensor([0]))
    assert pred.item() == pytest.approx(float(train.rating.double().mean()), abs=1e-4)


def test_naive_fit_stops_after_max_steps():
    train, val = toy_ratings()
    model = models.build_model(model_block(arch="dot", n_factors=4), 40, 30)
    result = bench.naive_fit(
        model, train, val, lr=0.01, batch_size=64, rating_scale=(0.5, 5.0), epochs=5, max_steps=7
    )
    assert result["steps"] == 7
    assert result["ratings"] == 7 * 64


def page_fields(settings, figures, train, val):
    """What `bench.markdown` reads besides the figures."""
    return {
        "dataset": "toy", "date": "today", "machine": "m", "torch": "t", "threads": 1,
        "load_average_before": 0.0, "load_average_after": 0.0, "n_train": len(train),
        "n_users": 40, "n_movies": 30, "n_val": len(val), "command": "cmd",
        "settings": settings, "models": figures,
    }  # fmt: skip


def test_run_benchmark_reuses_identical_stages_and_combines_two():
    train, val = toy_ratings()
    dot = model_block(arch="dot", n_factors=4, batch_size=256, phases=[{"lr": 0.03, "epochs": 2}])
    config = {
        "dot": dict(dot),
        "dot_then_dot": dict(dot, init_from="dot"),
    }
    settings = bench.bench_settings(
        {"steps": 3, "naive_steps": 4, "warmup_steps": 1, "repeats": 1, "goals": {"dot": 1e9}}
    )
    out = bench.run_benchmark(config, settings, train, val, 40, 30, (0.5, 5.0))
    single, double = out["dot"], out["dot_then_dot"]
    assert [s["stage"] for s in double["stages"]] == ["pretrain", "train"]
    # Same settings as `dot`: the pretrain stage is dot's measurement, reused.
    assert double["stages"][0]["timed_seconds"] == single["stages"][0]["timed_seconds"]
    assert double["stages"][0]["val_rmse"] == single["val_rmse"]
    # One epoch of each stage, back to back.
    assert double["stages"][0]["epoch_seconds"] == single["epoch_seconds"]
    assert double["epoch_seconds"] == pytest.approx(
        sum(stage["epoch_seconds"] for stage in double["stages"])
    )
    assert double["full_epochs"] == 4
    assert single["goal_met"] is False and "goal_speedup" not in double
    page = bench.markdown(page_fields(settings, out, train, val))
    assert ">= 1e+09x: MISSED" in page
    assert "| dot_then_dot | all |" in page and "|  | pretrain |" in page


def test_zero_epochs_measures_speed_only():
    train, val = toy_ratings()
    dot = model_block(arch="dot", n_factors=4, batch_size=256, phases=[{"lr": 0.03, "epochs": 2}])
    settings = bench.bench_settings(
        {"steps": 2, "naive_steps": 3, "warmup_steps": 0, "repeats": 1, "epochs": 0,
         "full_schedule": False}
    )  # fmt: skip
    out = bench.run_benchmark({"x": dict(dot, pretrain=dict(dot))}, settings, train, val, 40, 30,
                              (0.5, 5.0))  # fmt: skip
    fig = out["x"]
    assert fig["ratings_per_s"] > 0 and fig["naive_ratings_per_s"] > 0
    assert fig["val_rmse"] is None and fig["naive_val_rmse"] is None
    assert "full_best_val_rmse" not in fig
    page = bench.markdown(page_fields(settings, out, train, val))
    assert "speed only" in page and "val RMSE" not in page
    assert page.count("| x |") == 1 and page.count("|  | pretrain |") == 1


def test_benchmark_training_rejects_an_empty_split(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    empty = pa.table(
        {
            "user": pa.array([], pa.int32()),
            "movie": pa.array([], pa.int32()),
            "rating": pa.array([], pa.float32()),
        }
    )
    ids = pa.table({"user": pa.array([0], pa.int32())})
    for name, table in (("train", empty), ("val", empty), ("users", ids), ("movies", ids)):
        pq.write_table(table, tmp_path / f"{name}.parquet")
    with pytest.raises(ValueError, match="need training and validation ratings, got 0 and 0"):
        bench.benchmark_training(
            train_path=tmp_path / "train.parquet", val_path=tmp_path / "val.parquet",
            users_path=tmp_path / "users.parquet", movies_path=tmp_path / "movies.parquet",
            models_config={"dot": {"arch": "dot"}}, bench={}, rating_scale=(0.5, 5.0),
            dataset="x", json_path=tmp_path / "b.json", md_path=tmp_path / "b.md",
        )  # fmt: skip
    assert not (tmp_path / "b.json").exists() and not (tmp_path / "b.md").exists()


# --- the workflow target -------------------------------------------------------


@pytest.fixture(scope="module")
def benchmarked(tmp_path_factory):
    """A workflow copy in which the benchmark target of a tiny dataset has been built."""
    project = copy_workflow(tmp_path_factory.mktemp("bench") / "project")
    (project / "quick.yaml").write_text(yaml.safe_dump(QUICK_BENCH))
    snakemake(project, TARGET, "--configfile", FAST, "quick.yaml")
    return project


@pytest.mark.slow
def test_benchmark_target_writes_every_figure(benchmarked):
    result = json.loads((benchmarked / TARGET).read_text())
    assert result["dataset"] == DATASET
    assert result["settings"]["steps"] == 4  # bench: reached the rule through params
    assert result["threads"] == 2
    assert list(result["models"]) == MODELS
    fast = yaml.safe_load((benchmarked / FAST).read_text())["models"]
    for name, fig in result["models"].items():
        for key in FIGURES:
            assert math.isfinite(fig[key]) and fig[key] > 0, (name, key)
        assert fig["device"] == "cpu"
        assert fig["batch_size"] == fast[name]["batch_size"]
        assert fig["naive_batch_size"] == 64
        assert fig["epochs"] == 1
        for stage in fig["stages"]:
            # Both loops ran their timed steps.
            assert len(stage["timed_seconds"]) == 1 and stage["timed_seconds"][0] > 0
            assert len(stage["naive_timed_seconds"]) == 1 and stage["naive_timed_seconds"][0] > 0
            assert stage["naive_timed_ratings"] == 6 * 64
            assert stage["naive_threads"] in (1, 2)
            assert stage["naive_train_seconds"] > 0 and stage["train_seconds"] > 0
        n_stages = 2 if "pretrain" in fast[name] else 1
        assert len(fig["stages"]) == n_stages, name
    assert "goal_met" in result["models"]["dot"] and "goal_met" in result["models"]["mlp"]
    page = (benchmarked / TARGET).with_suffix(".md").read_text()
    for name in MODELS:
        assert f"| {name} |" in page
    assert "1 epoch(s)" in page and "DataLoader(shuffle=True, batch_size=64)" in page
    log = benchmarked / "results" / DATASET / "logs" / "benchmark_training.log"
    assert "benchmarking 5 models" in log.read_text()
    tsv = benchmarked / "results" / "benchmarks" / DATASET / "benchmark_training.tsv"
    assert tsv.read_text().startswith("s\t")


@pytest.mark.slow
def test_benchmark_is_never_part_of_rule_all(benchmarked):
    (benchmarked / "dataset.yaml").write_text(f"dataset: {DATASET}\n")
    for configs in ([FAST], [FAST, "dataset.yaml"]):
        scheduled = scheduled_rules(benchmarked, "--configfile", *configs)
        # The dry run saw the DAG (every model; the benchmark leaves out dot_negatives).
        assert scheduled.get("train_model") == len(model_names(FAST))
        assert "benchmark_training" not in scheduled


@pytest.mark.slow
def test_bench_and_model_settings_rerun_the_benchmark_only(benchmarked):
    quick = ["--configfile", FAST, "quick.yaml"]
    assert scheduled_rules(benchmarked, TARGET, *quick) == {}
    changed = dict(QUICK_BENCH["bench"], steps=5)
    (benchmarked / "changed.yaml").write_text(yaml.safe_dump({"bench": changed}))
    assert scheduled_rules(benchmarked, TARGET, "--configfile", FAST, "changed.yaml") == {
        "benchmark_training": 1
    }
    (benchmarked / "dot.yaml").write_text(yaml.safe_dump({"models": {"dot": {"batch_size": 512}}}))
    assert scheduled_rules(benchmarked, TARGET, *quick, "dot.yaml") == {"benchmark_training": 1}
