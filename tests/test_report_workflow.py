"""The report rules end to end: DAG shape, real runs on ml-latest-small and synthetic-100k.

Dry-run tests need no training. The slow tests train for real (the default
config on ml-latest-small, the dot model on synthetic-100k) and check what the
reports say against what we know: Shawshank near the top of the popular
ranking, and the synthetic generator's planted movie biases and taste axes.
"""

import json
import os
import struct
from pathlib import Path

import conftest
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import scheduled_rules, snakemake

DOT_FAMILY = ["dot", "hybrid", "mlp_then_dot", "hybrid_then_dot"]
BIAS_MODELS = [*DOT_FAMILY, "dot_negatives", "implicit"]
MODELS = ["mlp", *DOT_FAMILY, "dot_negatives", "implicit"]
#: Models fitted to ratings alone (dot_negatives is trained to rank: its RMSE is poor by design).
RATING_MODELS = ["mlp", *DOT_FAMILY, "implicit"]
LIST_BASELINES = ["popularity", "shrunk_mean"]
REPORT_RULES = {
    "rank_movie_bias": len(BIAS_MODELS),
    "pca_movie_embeddings": len(MODELS),
    "plot_bias_vs_mean": len(BIAS_MODELS),
    "find_similar_movies": len(MODELS),
    "recommend_model": len(MODELS),
    "recommend_baseline": len(LIST_BASELINES),
    "score_recommendations": 1,
    "plot_learning_curves": 1,
    "plot_model_comparison": 1,
    "summarize_models": 1,
}
TRAINING_RULES = {"train_model", "pretrain_model", "compute_baselines", "evaluate_model"}
REPLICATES = 3  # config.yaml's default
PEERS = ["surprise_baseline", "surprise_svd", "myfm_bmf", "myfm_bfm_implicit"]  # peers_in_all
SMALL = "results/ml-latest-small/random"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# "Enough ratings" for the planted-truth checks: a bias learned from fewer is mostly prior.
MIN_RATINGS = 20

_RUNS = {}  # one run per session even when a fixture is imported into another module
# ml_small_run (the default run of ml-latest-small, shared by several modules) is in conftest.py.


def targets(*paths):
    """Targets for a dry run; --nolock lets dry runs share a finished project."""
    return ("--nolock", *paths)


def assert_png(path, min_side=300):
    import matplotlib.image

    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path}: not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert min(width, height) >= min_side, (path, width, height)
    pixels = matplotlib.image.imread(path)
    assert pixels.std() > 0.01, f"{path} looks blank"


def spearman(a, b):
    return float(np.corrcoef(pd.Series(a).rank(), pd.Series(b).rank())[0, 1])


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory, mirror):
    """The dot model's bias ranking and PCA on synthetic-100k (planted truth known)."""
    if "synthetic" not in _RUNS:
        project = conftest.copy_workflow(tmp_path_factory.mktemp("synthetic-100k"))
        base = "results/synthetic-100k/random/reports/dot"
        snakemake(project, f"{base}/movie_bias.csv", f"{base}/pca.csv", timeout=1200)
        _RUNS["synthetic"] = project
    return _RUNS["synthetic"]


# --- DAG shape (dry runs, no training) ---------------------------------------------


def test_default_target_builds_the_summary_and_every_report(project):
    counts = scheduled_rules(project)
    for rule, n in REPORT_RULES.items():
        assert counts.get(rule) == n, (rule, counts)


@pytest.mark.parametrize("dataset", ["ml-100k", "synthetic-1m"])
def test_summary_target_builds_every_report_of_any_dataset(project, dataset):
    counts = scheduled_rules(project, *targets(f"results/{dataset}/random/reports/summary.md"))
    for rule, n in REPORT_RULES.items():
        assert counts.get(rule) == n, (rule, counts)
    assert counts.get("train_model") == len(MODELS) * REPLICATES
    assert counts.get("evaluate_model") == len(MODELS)


def test_mlp_has_pca_but_no_bias_ranking(project):
    proc = snakemake(project, "-n", f"{SMALL}/reports/mlp/movie_bias.csv", check=False)
    assert proc.returncode != 0
    assert "MissingRuleException" in proc.stdout + proc.stderr
    counts = scheduled_rules(project, *targets(f"{SMALL}/reports/mlp/pca.csv"))
    assert counts.get("pca_movie_embeddings") == 1


# --- ml-latest-small, default config -------------------------------------------------


@pytest.mark.slow
def test_ml_latest_small_reports_exist_and_parse(ml_small_run):
    reports = ml_small_run / SMALL / "reports"
    movies = pd.read_parquet(ml_small_run / "results/ml-latest-small/data/movies.parquet")
    for model in BIAS_MODELS:
        table = pd.read_csv(reports / model / "movie_bias.csv")
        assert list(table.columns) == [
            "movieId",
            "title",
            "year",
            "n_ratings",
            "mean_rating",
            "bias",
            "rank",
        ]
        assert len(table) == len(movies) and table["movieId"].is_unique
        assert table["rank"].tolist() == list(range(1, len(movies) + 1))
        text = (reports / model / "movie_bias.md").read_text()
        assert "## Top 15 overall" in text and "## Bottom 10 among the 2000 most-rated" in text
        assert_png(reports / model / "bias_vs_mean.png")
    for model in MODELS:
        pca = pd.read_csv(reports / model / "pca.csv")
        assert list(pca.columns) == ["movieId", "title", "n_ratings", "pc1", "pc2", "pc3"]
        assert len(pca) == 2000
        assert pca[["pc1", "pc2", "pc3"]].notna().all().all()
        assert "explained variance" in (reports / model / "pca.md").read_text()
        assert_png(reports / model / "pca_scatter.png", min_side=1000)
        assert (reports / model / "pca_scatter.svg").read_text().lstrip().startswith("<?xml")
    for name in ("learning_curves", "model_comparison"):
        assert_png(reports / f"{name}.png")
    models = pd.read_csv(reports / "models.csv")
    assert models["model"].tolist() == [*MODELS, *PEERS, "global mean", "bias only"]
    peers = models[models["kind"] == "peer"].set_index("model")
    assert peers["test_rmse"].between(0.7, 1.0).all() and (peers["runs"] == 1).all()
    ours = models[models["kind"] == "model"]
    assert ours.set_index("model").loc[RATING_MODELS, "test_rmse"].between(0.5, 1.2).all()
    assert ours.set_index("model").loc["dot_negatives", "test_rmse"] > 1.2
    assert (ours["runs"] == REPLICATES).all() and (ours["test_rmse_sd"] > 0).all()
    summary = (reports / "summary.md").read_text()
    best = ours.loc[ours["test_rmse"].idxmin()]
    assert summary.splitlines()[2].startswith(
        f"Lowest test RMSE of our models: **{best['model']}**, {best['test_rmse']:.4f} ± "
    ), summary[:400]
    assert "## Split audit" in summary
    assert "Best peer (a reference library on the same split): **myfm_bfm_implicit**" in summary
    for model in MODELS:
        assert f"| {model} " in summary and f"({model}/pca.md)" in summary
    assert "| train_model" in summary and "| rank_movie_bias" in summary


@pytest.mark.slow
def test_shawshank_is_near_the_top_among_popular_movies(ml_small_run):
    ranked = pd.read_csv(ml_small_run / SMALL / "reports/dot/movie_bias.csv")
    popular = ranked.sort_values(["n_ratings", "movieId"], ascending=[False, True]).head(2000)
    top20 = popular.sort_values("bias", ascending=False).head(20)["title"].tolist()
    assert "Shawshank Redemption, The (1994)" in top20, top20
    md = (ml_small_run / SMALL / "reports/dot/movie_bias.md").read_text()
    assert "Shawshank Redemption, The (1994)" in md


@pytest.mark.slow
@pytest.mark.parametrize(
    ("section", "key", "value", "rule", "count"),
    [
        ("bias", "top_n", 5, "rank_movie_bias", len(BIAS_MODELS)),
        ("pca", "scatter_movies", 30, "pca_movie_embeddings", len(MODELS)),
        ("bias_plot", "min_ratings", 10, "plot_bias_vs_mean", len(BIAS_MODELS)),
    ],
)
def test_changing_a_threshold_reruns_only_that_report(
    ml_small_run, section, key, value, rule, count
):
    assert set(scheduled_rules(ml_small_run)) <= {"all"}, "the finished run is not up to date"
    configfile = ml_small_run / f"override-{section}.yaml"
    configfile.write_text(f"reports:\n  {section}:\n    {key}: {value}\n")
    counts = scheduled_rules(ml_small_run, "--configfile", str(configfile))
    counts.pop("all", None)
    assert counts == {rule: count}


@pytest.mark.slow
def test_changing_a_peers_setting_reruns_only_that_peer(ml_small_run):
    configfile = ml_small_run / "override-peer.yaml"
    configfile.write_text("peers:\n  myfm_bmf: {n_iter: 150}\n")
    counts = scheduled_rules(ml_small_run, "--configfile", str(configfile))
    counts.pop("all", None)
    # The peer's top-N list is rescored with the others.
    assert counts == {
        "fit_peer": 1,
        "plot_model_comparison": 1,
        "score_recommendations": 1,
        "summarize_models": 1,
    }


@pytest.mark.slow
def test_editing_report_code_reruns_reports_not_training(ml_small_run):
    # The canvas every figure is drawn on and saved by: each figure rule uses it.
    module = ml_small_run / "workflow/scripts/movierec/reports/canvas.py"
    original, stat = module.read_text(), module.stat()
    try:
        module.write_text(original + "\n# edited\n")
        counts = scheduled_rules(ml_small_run)
    finally:
        module.write_text(original)
        os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    counts.pop("all", None)
    assert not TRAINING_RULES & set(counts), counts
    assert counts == {
        "pca_movie_embeddings": len(MODELS),
        "plot_bias_vs_mean": len(BIAS_MODELS),
        "plot_learning_curves": 1,
        "plot_model_comparison": 1,
        # Its NDCG@k figure, and the summary that quotes its ranking.md.
        "score_recommendations": 1,
        "summarize_models": 1,
    }


@pytest.mark.slow
def test_paired_differences_recompute_from_the_predictions(ml_small_run):
    """What the summary (and the README) says about models against each other is recomputed
    here from the test predictions: the table's paired differences are the real ones."""
    from movierec import evaluation

    base = ml_small_run / SMALL
    rating = pd.read_parquet(base / "split/test.parquet")["rating"].to_numpy(np.float64)
    models = pd.read_csv(base / "reports/models.csv").set_index("model")
    sq = {
        m: np.mean(
            [
                (pd.read_parquet(base / f"models/{m}/rep{r}/test_predictions.parquet")[
                    "prediction"
                ].to_numpy(np.float64) - rating) ** 2
                for r in range(1, REPLICATES + 1)
            ],
            axis=0,
        )
        for m in MODELS
    }  # fmt: skip
    baselines = pd.read_parquet(base / "models/baselines_test_predictions.parquet")
    sq["bias only"] = (baselines["bias_only"].to_numpy(np.float64) - rating) ** 2
    for m in MODELS:
        cmp = evaluation.bootstrap_rmse_difference(sq[m], sq["bias only"])
        row = models.loc[m]
        assert row["diff_vs_bias_only"] == pytest.approx(cmp["diff"], abs=1e-9)
        assert row["diff_vs_bias_only_low"] == pytest.approx(cmp["low"], abs=1e-9)
        assert row["diff_vs_bias_only_high"] == pytest.approx(cmp["high"], abs=1e-9)
        assert np.sqrt(sq[m].mean()) == pytest.approx(row["test_rmse"], abs=5e-3)
    # The README's sentences on peers: our best is the implicit model; myfm_bfm_implicit
    # cannot be told apart from it nor from its replicates' ensemble, myfm_bmf is behind
    # it, both Surprise defaults behind our bias-only baseline.
    assert models.loc[list(RATING_MODELS), "test_rmse"].idxmin() == "implicit"
    for column in ("diff_vs_best", "diff_vs_best_ensemble"):
        peer = models.loc["myfm_bfm_implicit"]
        assert peer[f"{column}_low"] <= 0 <= peer[f"{column}_high"], column
    assert models.loc["myfm_bmf", "diff_vs_best_low"] > 0
    # The ensemble column is the replicates' predictions averaged, and it beats them.
    predictions = [
        pd.read_parquet(base / f"models/implicit/rep{r}/test_predictions.parquet")["prediction"]
        for r in range(1, REPLICATES + 1)
    ]
    ensemble = np.sqrt(np.mean((np.mean(predictions, axis=0) - rating) ** 2))
    assert models.loc["implicit", "ensemble_test_rmse"] == pytest.approx(ensemble, abs=1e-6)
    assert models.loc["implicit", "diff_vs_best_ensemble_low"] > 0
    for peer in ("surprise_baseline", "surprise_svd"):
        assert models.loc[peer, "diff_vs_bias_only_low"] > 0, peer
    # The README's sentences: the dot family beats the bias-only baseline (interval below 0)
    # and is behind the implicit model; the MLP cannot be told apart from bias-only.
    for m in DOT_FAMILY:
        assert models.loc[m, "diff_vs_bias_only_high"] < 0, m
        assert models.loc[m, "diff_vs_best_low"] > 0, m
    assert (
        models.loc["mlp", "diff_vs_bias_only_low"]
        <= 0
        <= models.loc["mlp", "diff_vs_bias_only_high"]
    )


@pytest.mark.slow
def test_averaged_models_keep_the_mean_of_their_epochs(ml_small_run):
    """config.yaml's average_from reaches training: implicit and dot validate the mean of
    their weights from that epoch on and keep one of those means; the models that turn it
    off validate each epoch's own weights."""
    config = yaml.safe_load((ml_small_run / "config.yaml").read_text())["models"]
    for model in MODELS:
        start = config[model].get("average_from")
        for r in range(1, REPLICATES + 1):
            run = json.loads(
                (ml_small_run / SMALL / f"models/{model}/rep{r}/history.json").read_text()
            )
            if start is None:
                assert all("averaged_epochs" not in e for e in run["history"]), model
                continue
            counts = [e["averaged_epochs"] for e in run["history"]]
            assert counts == [max(0, e["epoch"] - start + 1) for e in run["history"]], model
            assert run["best_epoch"] >= start, (model, run["best_epoch"])
    assert config["implicit"]["average_from"] and config["dot"]["average_from"]


@pytest.mark.slow
def test_cold_movies_start_at_the_training_mean(ml_small_run):
    """Movies unseen in training are predicted around the training mean by the dot family
    (the y_range offset; without it a raw score of 0 meant 3.0, the middle of [0.5, 5.5]),
    and better than the global mean on those rows. (The bias-only baseline is still better
    there: see README.) The implicit model learns more: its biases from who rated a movie
    are 0 for a movie nobody rated, and such movies are rated lower than the training mean
    (3.22 against 3.50 on this split), which its predictions there follow."""
    from movierec import evaluation

    base = ml_small_run / SMALL
    train = pd.read_parquet(base / "split/train.parquet")
    test = pd.read_parquet(base / "split/test.parquet")
    _, cold = evaluation.cold_masks(
        train.user.to_numpy(), train.movie.to_numpy(), test.user.to_numpy(), test.movie.to_numpy()
    )
    assert cold.sum() > 100
    models = pd.read_csv(base / "reports/models.csv").set_index("model")
    cold_mean = test.rating[cold].mean()
    assert train.rating.mean() - cold_mean > 0.2  # why the implicit model's check differs
    for m in [*DOT_FAMILY, "implicit"]:  # dot_negatives learns that an unknown pair is a 0.5
        pred = pd.read_parquet(base / f"models/{m}/rep1/test_predictions.parquet")["prediction"]
        if m == "implicit":
            assert abs(pred[cold].mean() - cold_mean) < 0.1, (pred[cold].mean(), cold_mean)
        else:
            assert abs(pred[cold].mean() - train.rating.mean()) < 0.25, m
        worst = models.loc["global mean", "test_rmse_unseen_movie"]
        assert models.loc[m, "test_rmse_unseen_movie"] < worst, m


# --- synthetic-100k: planted truth ---------------------------------------------------


def _planted(project):
    return pd.read_csv(project / "results/synthetic-100k/raw/planted_movies.csv")


@pytest.mark.slow
def test_dot_movie_bias_recovers_the_planted_bias(synthetic_run):
    learned = pd.read_csv(
        synthetic_run / "results/synthetic-100k/random/reports/dot/movie_bias.csv"
    )
    both = learned.merge(_planted(synthetic_run), on="movieId", suffixes=("", "_planted"))
    assert len(both) == len(learned)
    enough = both[both["n_ratings"] >= MIN_RATINGS]
    assert len(enough) >= 200
    rho = spearman(enough["bias"], enough["bias_planted"])
    assert rho >= 0.9, f"Spearman {rho:.3f} over {len(enough)} movies"
    top_learned = set(enough.nlargest(10, "bias")["movieId"])
    top_planted = set(enough.nlargest(10, "bias_planted")["movieId"])
    assert len(top_learned & top_planted) >= 7, len(top_learned & top_planted)


@pytest.mark.slow
def test_pca_recovers_the_planted_axes(synthetic_run):
    pca = pd.read_csv(synthetic_run / "results/synthetic-100k/random/reports/dot/pca.csv")
    both = pca.merge(_planted(synthetic_run), on="movieId")
    assert len(both) == len(pca)
    enough = both[both["n_ratings"] >= MIN_RATINGS]
    for factor in ("factor_1", "factor_2"):
        corr = max(abs(np.corrcoef(enough[factor], enough[pc])[0, 1]) for pc in ("pc1", "pc2"))
        assert corr >= 0.9, f"{factor}: best |corr| with pc1/pc2 is {corr:.3f}"
