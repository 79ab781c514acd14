"""Report library on fixtures: rankings, PCA, label placement, figures, summary.

The trained-model loader (`movierec.checkpoint.load_model`, helper D's) is
replaced by a fake with the same shape (a module with `movie_emb` and, except
for mlp, `movie_bias` embeddings), so these tests need no training run; the
end-to-end tests in test_report_workflow.py use the real loader.
"""

import json
import struct
import xml.etree.ElementTree as ET

import matplotlib.image
import matplotlib.text
import numpy as np
import pandas as pd
import pytest
from movierec import vectors
from movierec.reports import bias as bias_mod
from movierec.reports import canvas, movie_plots, plots, summary, summary_table
from movierec.reports import labels as labels_mod
from movierec.reports import pca as pca_mod
from movierec.reports.inputs import read_benchmark, read_metrics, read_movies
from movierec.reports.tables import markdown_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_real_png(path, min_width=400, min_height=300):
    """A PNG with the right signature and size whose pixels are not all one colour."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= min_width and height >= min_height, (width, height)
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels.std() > 0.01, f"{path} looks blank"


def assert_svg(path):
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")


def make_movies(n, seed=0):
    """A movie index shaped like movies.parquet, with varied rating counts."""
    rng = np.random.default_rng(seed)
    counts = np.maximum(1, rng.lognormal(3, 1.3, n).astype(int))
    years = 1950 + rng.integers(0, 70, n)
    return pd.DataFrame(
        {
            "movie": np.arange(n, dtype=np.int32),
            "movieId": np.arange(1, n + 1) * 3,
            "title": [
                f"Movie {i}, The ({y})" if i % 7 == 0 else f"Movie {i} ({y})"
                for i, y in enumerate(years)
            ],
            "genres": "Drama",
            "year": years,
            "n_ratings": counts,
            "mean_rating": np.clip(3.5 + rng.normal(0, 0.5, n), 0.5, 5),
        }
    )


@pytest.fixture
def fake_checkpoints(tmp_path):
    """Write a model's movie vectors as training does (movie_vectors.parquet)."""

    def save(name, embedding, bias=None):
        path = tmp_path / f"{name}_movie_vectors.parquet"
        vectors.write_movie_vectors(path, embedding, bias)
        return path

    return save


@pytest.fixture
def movies_file(tmp_path):
    movies = make_movies(300)
    path = tmp_path / "movies.parquet"
    movies.to_parquet(path)
    return movies, path


# --- tables -------------------------------------------------------------------


def test_markdown_table_is_aligned_and_escaped():
    frame = pd.DataFrame({"title": ["A | B", "Longer title"], "n": [3, 12345], "x": [0.5, np.nan]})
    text = markdown_table(frame, formats={"x": "+.2f"})
    lines = text.strip().split("\n")
    assert len({len(line) for line in lines}) == 1, "columns are not padded to equal width"
    assert lines[1].split("|")[2].strip().endswith(":"), "numbers should be right-aligned"
    assert "A \\| B" in text and "+0.50" in text
    assert lines[3].split("|")[3].strip() == "-", "NaN should show as a dash"
    assert "|     3 |" in lines[2], "numbers right-aligned in the padding"


# --- bias ranking -------------------------------------------------------------


def test_rank_movies_orders_by_bias_with_ties_by_movie_id():
    movies = make_movies(5)
    ranked = bias_mod.rank_movies(movies, [0.1, 0.5, 0.5, -1.0, 0.2])
    assert ranked["movieId"].tolist() == [6, 9, 15, 3, 12]
    assert ranked["rank"].tolist() == [1, 2, 3, 4, 5]
    assert list(ranked.columns) == bias_mod.CSV_COLUMNS


@pytest.mark.parametrize("bad", [[0.1, 0.2], [0.1, np.nan, 0, 0, 0]])
def test_rank_movies_rejects_wrong_shape_or_nan(bad):
    with pytest.raises(ValueError, match="bias"):
        bias_mod.rank_movies(make_movies(5), bad)


def test_rank_movie_bias_writes_csv_and_views(fake_checkpoints, movies_file, tmp_path):
    movies, movies_path = movies_file
    rng = np.random.default_rng(1)
    bias = rng.normal(0, 1, len(movies))
    model_pt = fake_checkpoints("dot", rng.normal(size=(len(movies), 8)), bias)
    csv, md = tmp_path / "r" / "movie_bias.csv", tmp_path / "r" / "movie_bias.md"
    bias_mod.rank_movie_bias(model_pt, movies_path, csv, md, "dot", "toy", 15, 100, 10)

    table = pd.read_csv(csv)
    assert list(table.columns) == [
        "movieId",
        "title",
        "year",
        "n_ratings",
        "mean_rating",
        "bias",
        "rank",
    ]
    assert len(table) == len(movies)
    assert table["bias"].is_monotonic_decreasing
    best = movies.iloc[int(np.argmax(bias))]
    assert table.iloc[0]["movieId"] == best["movieId"]

    text = md.read_text()
    assert "## Top 15 overall" in text and "## Bottom 15 overall" in text
    assert "## Top 10 among the 100 most-rated movies" in text
    # The popular view holds only movies among the 100 most-rated.
    popular_section = text.split("## Top 10 among")[1].split("## Bottom")[0]
    floor = movies["n_ratings"].nlargest(100).min()
    counts = [
        int(line.split("|")[3])
        for line in popular_section.splitlines()
        if line.startswith("|") and line.split("|")[1].strip().isdigit()
    ]
    assert len(counts) == 10 and min(counts) >= floor
    # Rating counts sit beside titles in every view.
    assert text.count("| ratings |") == 4


def test_rank_movie_bias_rejects_mismatched_model_and_writes_nothing(
    fake_checkpoints, movies_file, tmp_path
):
    movies, movies_path = movies_file
    model_pt = fake_checkpoints("dot", np.zeros((len(movies) - 1, 4)), np.zeros(len(movies) - 1))
    csv, md = tmp_path / "out" / "movie_bias.csv", tmp_path / "out" / "movie_bias.md"
    with pytest.raises(ValueError, match="trained on another index"):
        bias_mod.rank_movie_bias(model_pt, movies_path, csv, md, "dot", "toy", 15, 100, 10)
    assert not csv.exists() and not md.exists()
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_rank_movie_bias_rejects_model_without_bias(fake_checkpoints, movies_file, tmp_path):
    movies, movies_path = movies_file
    model_pt = fake_checkpoints("mlp", np.zeros((len(movies), 4)))
    with pytest.raises(ValueError, match="no movie bias"):
        bias_mod.rank_movie_bias(
            model_pt, movies_path, tmp_path / "a.csv", tmp_path / "a.md", "mlp", "toy", 15, 100, 10
        )


def test_read_movies_rejects_gaps(tmp_path):
    movies = make_movies(6)
    movies.loc[3, "movie"] = 9
    path = tmp_path / "movies.parquet"
    movies.to_parquet(path)
    with pytest.raises(ValueError, match=r"row 3 has movie=9, expected 3"):
        read_movies(path)


# --- PCA ------------------------------------------------------------------------


def test_fit_pca_recovers_planted_axes_and_is_deterministic():
    rng = np.random.default_rng(3)
    latent = rng.normal(size=(500, 3)) * [3.0, 2.0, 1.0]
    rotation, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    matrix = latent @ rotation[:3] + 0.05 * rng.normal(size=(500, 10)) + 7.0
    scores, ratios, components = pca_mod.fit_pca(matrix, 3)
    for k in range(3):
        assert abs(np.corrcoef(scores[:, k], latent[:, k])[0, 1]) > 0.99
    assert np.all(np.diff(ratios) < 0) and 0.98 < ratios.sum() <= 1.0
    assert np.allclose(components @ components.T, np.eye(3), atol=1e-8)
    again, _, _ = pca_mod.fit_pca(matrix[::-1].copy(), 3)
    assert np.allclose(again[::-1], scores), "signs must not depend on row order"


def test_fit_pca_rejects_too_many_components():
    with pytest.raises(ValueError, match="n_components is 5"):
        pca_mod.fit_pca(np.ones((10, 4)), 5)


def test_pca_movie_embeddings_writes_all_outputs(fake_checkpoints, movies_file, tmp_path):
    movies, movies_path = movies_file
    rng = np.random.default_rng(2)
    model_pt = fake_checkpoints("mlp", rng.normal(size=(len(movies), 12)))
    out = tmp_path / "pca"
    paths = [out / n for n in ("pca.csv", "pca.md", "pca_scatter.png", "pca_scatter.svg")]
    pca_mod.pca_movie_embeddings(
        model_pt,
        movies_path,
        *paths,
        "mlp",
        "toy",
        n_movies=120,
        n_components=3,
        extremes=5,
        scatter_movies=30,
    )
    table = pd.read_csv(paths[0])
    assert list(table.columns) == ["movieId", "title", "n_ratings", "pc1", "pc2", "pc3"]
    assert len(table) == 120
    assert table["n_ratings"].is_monotonic_decreasing
    assert set(table["movieId"]) == set(movies.nlargest(120, "n_ratings")["movieId"]) or (
        table["n_ratings"].min() == movies.nlargest(120, "n_ratings")["n_ratings"].min()
    )
    text = paths[1].read_text()
    assert "transposed" in text and "rows are movies" in text
    assert text.count("## Highest pc") == 3 and text.count("## Lowest pc") == 3
    assert_real_png(paths[2])
    assert_svg(paths[3])


# --- label placement and figures -------------------------------------------------


def test_place_labels_leaves_no_overlap_in_a_crowd():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=50), rng.normal(size=50)
    fig = canvas.new_figure(12, 9.5)
    ax = fig.add_subplot()
    ax.scatter(x, y)
    movie_plots._pad_limits(ax, x, y, 0.18)
    labels = [
        labels_mod.display_title(f"Some Rather Long Movie Title {i} (1999)") for i in range(50)
    ]
    planned = labels_mod.place_labels(ax, x, y, labels)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    # Text.get_window_extent: the label's own box (an Annotation's adds its leader line).
    drawn = [matplotlib.text.Text.get_window_extent(t, renderer) for t in ax.texts]
    assert len(drawn) == 50
    area = ax.get_window_extent(renderer)
    for i, box in enumerate(drawn):
        # What was drawn is where the placer planned it (within rounding).
        assert box.x0 >= planned[i].x0 - 1 and box.x1 <= planned[i].x1 + 1
        assert box.y0 >= planned[i].y0 - 1 and box.y1 <= planned[i].y1 + 1
        assert area.contains(box.x0, box.y0) and area.contains(box.x1, box.y1)
        for j in range(i):
            assert not box.overlaps(drawn[j]), (labels[i], labels[j])
    # Labels cover no other point's marker, bar a rare crowded spot.
    points = ax.transData.transform(np.column_stack([x, y]))
    covered = sum(
        box.contains(px, py)
        for i, box in enumerate(drawn)
        for j, (px, py) in enumerate(points)
        if i != j
    )
    assert covered <= 2


def test_display_title_moves_articles_and_cuts():
    assert labels_mod.display_title("Shawshank Redemption, The (1994)") == (
        "The Shawshank Redemption (1994)"
    )
    assert labels_mod.display_title("x" * 50, 10) == "x" * 9 + "…"


def fake_metrics(phases, seed, base=0.9, test_rmse=None):
    """A metrics.json as evaluate_model writes it: the training history plus test scores."""
    rng = np.random.default_rng(seed)
    epochs, n = [], 0
    for p, (lr, count) in enumerate(phases):
        for _ in range(count):
            n += 1
            val = base + 0.3 / n + rng.uniform(0, 0.01)
            epochs.append(
                {
                    "epoch": n,
                    "phase": p,
                    "lr": lr,
                    "train_mse": (val - 0.1) ** 2,
                    "val_rmse": val,
                    "val_mae": val * 0.78,
                    "seconds": 0.5,
                    "ratings_per_s": 1.6e6 + seed,
                }
            )
    best = min(epochs, key=lambda e: e["val_rmse"])
    test = best["val_rmse"] + 0.01 if test_rmse is None else test_rmse
    return {
        "val_rmse": best["val_rmse"],
        "val_mae": best["val_mae"],
        "best_epoch": best["epoch"],
        "stopped_epoch": n,
        "n_params": 1000,
        "history": epochs,
        "device": "cpu",
        "train_seconds": 0.5 * n,
        "test_rmse": test,
        "test_mae": test * 0.78,
        "n_test": 100,
        "cold": {
            "unseen_user": {"rows": 0, "rmse": None},
            "unseen_movie": {"rows": 5, "rmse": test + 0.2},
            "warm": {"rows": 95, "rmse": test - 0.01},
        },
    }


def fake_baseline(val_rmse, test_rmse):
    return {
        "val_rmse": val_rmse,
        "val_mae": 0.8 * val_rmse,
        "test_rmse": test_rmse,
        "test_mae": 0.8 * test_rmse,
        "n_test": 100,
        "best_epoch": None,
        "history": None,
    }


# baselines.json: validation RMSEs (learning curves) differ from test RMSEs (comparison).
BASELINES = {
    "baselines": {"global_mean": fake_baseline(1.04, 1.05), "bias_only": fake_baseline(0.88, 0.89)}
}


def test_learning_curves_mark_phase_boundaries_and_baselines(tmp_path):
    metrics = {
        "dot": fake_metrics([(1e-3, 3), (1e-2, 4), (1e-3, 2)], 1),
        "mlp": fake_metrics([(3e-3, 6)], 2),
    }
    fig = plots.learning_curves_figure(
        metrics, {"dot": fake_metrics([(1e-2, 2)], 3)}, BASELINES, "toy"
    )
    dot_ax, mlp_ax = fig.axes[:2]
    verticals = [
        line.get_xdata()[0]
        for line in dot_ax.lines
        if len(set(line.get_xdata())) == 1 and line.get_linestyle() == "--"
    ]
    assert verticals == [3.5, 7.5], "phase boundaries sit between epochs 3|4 and 7|8"
    horizontals = {
        round(line.get_ydata()[0], 3)
        for line in mlp_ax.lines
        if len(set(line.get_ydata())) == 1 and len(line.get_ydata()) == 2
    }
    assert {0.88, 1.04} <= horizontals
    assert not {0.89, 1.05} & horizontals, "validation, not test, RMSEs of the baselines"
    assert any(min(line.get_xdata()) <= 0 for line in dot_ax.lines), "pretrain drawn at <= 0"
    canvas.save_figure(fig, tmp_path / "lc.png", tmp_path / "lc.svg")
    assert_real_png(tmp_path / "lc.png")
    assert_svg(tmp_path / "lc.svg")


def test_a_model_kept_by_ranking_gets_its_ranking_curve(tmp_path):
    """dot_negatives keeps its best validation NDCG@10 epoch: that curve is drawn (own axis)."""
    ranked = fake_metrics([(1e-2, 4)], 4, base=1.6)
    scores = [0.05, 0.11, 0.09, 0.08]
    for epoch, score in zip(ranked["history"], scores, strict=True):
        epoch["val_ndcg@10"] = score
    ranked.update({"selected_by": "val_ndcg@10", "val_ndcg@10": 0.11, "best_epoch": 2})
    metrics = {"dot": fake_metrics([(1e-2, 4)], 1), "dot_negatives": ranked}
    fig = plots.learning_curves_figure(metrics, {}, BASELINES, "toy")
    twins = [ax for ax in fig.axes if "ndcg@10" in ax.get_ylabel()]
    assert len(twins) == 1, "one ranking axis, for the model kept by ranking only"
    curve = max(twins[0].lines, key=lambda line: len(line.get_ydata()))
    assert list(curve.get_ydata()) == scores
    star = [line for line in twins[0].lines if line.get_marker() == "*"][0]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (2, 0.11)
    assert any("above this axis" in t.get_text() for t in fig.axes[1].texts)


def test_model_comparison_and_bias_vs_mean_figures(tmp_path):
    metrics = {  # two replicates per model
        m: [fake_metrics([(1e-2, 5)], 10 * i + r, base=0.85 + 0.01 * i) for r in range(2)]
        for i, m in enumerate(["mlp", "dot", "hybrid"])
    }
    fig = plots.comparison_figure(metrics, BASELINES, "toy")
    left = fig.axes[0]
    names = [t.get_text() for t in left.get_yticklabels()]
    ticks = sorted(zip(left.get_yticks(), names, strict=True))
    assert [name for _, name in ticks][::-1] == ["mlp", "dot", "hybrid"], "best on top"
    lines_x = {
        round(line.get_xdata()[0], 3) for line in left.lines if len(set(line.get_xdata())) == 1
    }
    assert {0.89, 1.05} <= lines_x, "the baselines' test RMSEs"
    assert not {0.88, 1.04} & lines_x
    canvas.save_figure(fig, tmp_path / "c.png", tmp_path / "c.svg")
    assert_real_png(tmp_path / "c.png")

    movies = make_movies(400)
    ranked = bias_mod.rank_movies(movies, np.random.default_rng(0).normal(size=400))
    fig = movie_plots.bias_vs_mean_figure(ranked, 5, 50, "dot on toy")
    labelled = {t.get_text() for t in fig.axes[0].texts}
    popular = ranked[ranked["n_ratings"] >= 50]
    expected = {
        labels_mod.display_title(t, 36)
        for t in pd.concat([popular.head(5), popular.tail(5)])["title"]
    }
    assert labelled == expected
    canvas.save_figure(fig, tmp_path / "b.png", tmp_path / "b.svg")
    assert_real_png(tmp_path / "b.png")


def test_spearman_matches_definition():
    a = [1, 2, 3, 4, 5]
    assert movie_plots.spearman(a, [5, 6, 7, 8, 70]) == pytest.approx(1.0)
    assert movie_plots.spearman(a, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert movie_plots.spearman([1, 2], [2, 1]) is None


# --- summary --------------------------------------------------------------------

BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_read_benchmark_handles_unmeasured_values(tmp_path):
    path = tmp_path / "b.tsv"
    path.write_text(BENCH_HEADER + "1.5\t0:00:01\t-\t-\t-\t-\t-\t-\t-\t-\n")
    assert read_benchmark(path) == {"seconds": 1.5, "max_rss_mb": None}
    path.write_text("nothing\n1\n")
    with pytest.raises(ValueError, match="not a Snakemake benchmark"):
        read_benchmark(path)


def write_run(root, seed=0, n=300, replicates=2):
    """One split's evaluated runs as the workflow lays them out, with consistent numbers.

    Errors share a common part (so the paired comparisons are sharp): the bias-only
    baseline errs by e, mlp by 0.8 e and dot by 0.85 e, plus a little noise each.
    """
    rng = np.random.default_rng(seed)
    rating = np.clip(np.round(rng.normal(3.5, 1.0, n) * 2) / 2, 0.5, 5.0)
    common = rng.normal(0, 1.0, n)
    test = root / "split" / "test.parquet"
    test.parent.mkdir(parents=True)
    pd.DataFrame({"user": np.arange(n), "movie": np.arange(n) % 7, "rating": rating}).to_parquet(
        test
    )
    split = root / "split" / "split.json"
    audit = {"method": "random", "n_train": 800, "n_val": 100, "n_test": n}
    audit.update(test_unseen_users=0, test_unseen_movies=2, test_rows_with_unseen_movie=5)
    split.write_text(json.dumps(audit))
    metrics_paths, predictions_paths, predictions = {}, {}, {}
    for i, (model, scale) in enumerate((("mlp", 0.8), ("dot", 0.85))):
        metrics_paths[model], predictions_paths[model], predictions[model] = [], [], []
        for r in range(replicates):
            pred = rating + scale * common + rng.normal(0, 0.1, n)
            folder = root / "models" / model / f"rep{r + 1}"
            folder.mkdir(parents=True)
            pd.DataFrame({"prediction": pred.astype(np.float32)}).to_parquet(
                folder / "test_predictions.parquet"
            )
            pred = pred.astype(np.float32).astype(np.float64)
            err = pred - rating
            metrics = fake_metrics([(1e-2, 4), (1e-3, 2)], 10 * i + r, 0.84 + 0.02 * i)
            metrics.update(test_rmse=float(np.sqrt(np.mean(err**2))))
            metrics.update(test_mae=float(np.mean(np.abs(err))))
            (folder / "metrics.json").write_text(json.dumps(metrics))
            metrics_paths[model].append(folder / "metrics.json")
            predictions_paths[model].append(folder / "test_predictions.parquet")
            predictions[model].append(pred)
    base = {"global_mean": np.full(n, 3.5), "bias_only": rating + common}
    base = {k: v.astype(np.float32).astype(np.float64) for k, v in base.items()}
    baseline_predictions = root / "models" / "baseline_predictions.parquet"
    pd.DataFrame(base).to_parquet(baseline_predictions)
    baselines = root / "models" / "baselines.json"
    scores = {
        k: fake_baseline(1.0, float(np.sqrt(np.mean((v - rating) ** 2)))) for k, v in base.items()
    }
    baselines.write_text(json.dumps({"baselines": scores}))
    return {
        "rating": rating,
        "predictions": predictions,
        "baseline": base,
        "inputs": {
            "metrics_paths": metrics_paths,
            "predictions_paths": predictions_paths,
            "baselines_path": baselines,
            "baseline_predictions_path": baseline_predictions,
            "test_path": test,
            "split_path": split,
        },
    }


def pooled_rmse(predictions, rating):
    """RMSE of the per-row squared error averaged over replicates."""
    return float(np.sqrt(np.mean([(p - rating) ** 2 for p in predictions], axis=0).mean()))


def test_summarize_models_writes_table_links_and_timings(tmp_path):
    run = write_run(tmp_path)
    bench = tmp_path / "bench.tsv"
    bench.write_text(BENCH_HEADER + "12.25\t0:00:12\t812.4\t900\t1\t1\t0\t0\t90\t11\n")
    reports = tmp_path / "reports"
    links = {
        "dot": [reports / "dot" / "movie_bias.md", reports / "dot" / "pca.md"],
        "mlp": [reports / "mlp" / "pca.md"],
    }
    out_md, out_csv = reports / "summary.md", reports / "models.csv"
    summary.summarize_models(
        **run["inputs"],
        benchmarks={"train_model dot": bench, "index_ratings": bench},
        summary_path=out_md,
        csv_path=out_csv,
        dataset="toy",
        split="random",
        links=links,
        figures={"Learning curves": reports / "learning_curves.png"},
    )
    table = pd.read_csv(out_csv)
    assert list(table.columns) == summary_table.CSV_COLUMNS
    assert table["model"].tolist() == ["mlp", "dot", "global mean", "bias only"]
    assert table["kind"].tolist() == ["model", "model", "baseline", "baseline"]
    dots = [json.loads(p.read_text()) for p in run["inputs"]["metrics_paths"]["dot"]]
    row = table.set_index("model").loc["dot"]
    assert row["runs"] == 2
    assert row["test_rmse"] == pytest.approx(np.mean([d["test_rmse"] for d in dots]))
    assert row["test_rmse_sd"] == pytest.approx(np.std([d["test_rmse"] for d in dots], ddof=1))
    assert row["test_mae"] == pytest.approx(np.mean([d["test_mae"] for d in dots]))
    assert row["val_rmse"] == pytest.approx(np.mean([d["val_rmse"] for d in dots]))
    assert row["best_epoch"] == "/".join(str(e) for e in sorted(d["best_epoch"] for d in dots))
    assert row["test_rmse_unseen_movie"] == pytest.approx(
        np.mean([d["cold"]["unseen_movie"]["rmse"] for d in dots])
    )
    # Paired differences on the same rows, replicates' squared errors averaged per row.
    rating = run["rating"]
    dot_rmse = pooled_rmse(run["predictions"]["dot"], rating)
    bias_rmse = pooled_rmse([run["baseline"]["bias_only"]], rating)
    mlp_rmse = pooled_rmse(run["predictions"]["mlp"], rating)
    assert row["diff_vs_bias_only"] == pytest.approx(dot_rmse - bias_rmse, rel=1e-6)
    assert row["diff_vs_bias_only_low"] < row["diff_vs_bias_only"] < row["diff_vs_bias_only_high"]
    assert row["diff_vs_bias_only_high"] < 0  # clearly better than the baseline
    assert row["diff_vs_best"] == pytest.approx(dot_rmse - mlp_rmse, rel=1e-6)
    best_row = table.set_index("model").loc["mlp"]
    assert pd.isna(best_row["diff_vs_best"])  # the best is not compared with itself
    assert pd.isna(table.set_index("model").loc["bias only", "diff_vs_bias_only"])
    assert row["ratings_per_s"] == pytest.approx(1.6e6 + 10)  # replicate 1 of dot
    # The ensemble: the replicates' predictions averaged row by row, then scored.
    ensemble_rmse = float(np.sqrt(np.mean((np.mean(run["predictions"]["mlp"], 0) - rating) ** 2)))
    assert best_row["ensemble_test_rmse"] == pytest.approx(ensemble_rmse, rel=1e-6)
    assert best_row["ensemble_test_rmse"] < best_row["test_rmse"]  # noise averages out
    assert best_row["diff_vs_best_ensemble"] == pytest.approx(mlp_rmse - ensemble_rmse, rel=1e-6)
    assert row["diff_vs_best_ensemble"] == pytest.approx(dot_rmse - ensemble_rmse, rel=1e-6)
    assert pd.isna(table.set_index("model").loc["bias only", "ensemble_test_rmse"])
    text = out_md.read_text()
    assert "(dot/movie_bias.md)" in text and "(mlp/pca.md)" in text
    assert "(learning_curves.png)" in text
    assert "| train_model   | dot    |" in text and "812" in text and "12.25" in text
    assert "Lowest test RMSE of our models: **mlp**" in text
    assert f"(their ensemble): {ensemble_rmse:.4f}; single replicates against it: +" in text
    assert "## Split audit" in text and "method `random`" in text


def test_summarize_folds_pools_every_fold_and_replicate(tmp_path):
    folds = {f"cv2-{k}": write_run(tmp_path / f"cv2-{k}", seed=k) for k in (1, 2)}
    inputs = {f: r["inputs"] for f, r in folds.items()}
    out_md, out_csv = tmp_path / "summary.md", tmp_path / "models.csv"
    summary.summarize_folds(
        metrics_paths={f: i["metrics_paths"] for f, i in inputs.items()},
        predictions_paths={f: i["predictions_paths"] for f, i in inputs.items()},
        baselines_paths={f: i["baselines_path"] for f, i in inputs.items()},
        baseline_predictions_paths={f: i["baseline_predictions_path"] for f, i in inputs.items()},
        test_paths={f: i["test_path"] for f, i in inputs.items()},
        audit_paths={f: i["split_path"] for f, i in inputs.items()},
        summary_path=out_md,
        csv_path=out_csv,
        dataset="toy",
        scheme="cv2",
    )
    table = pd.read_csv(out_csv).set_index("model")
    assert table.loc["dot", "runs"] == 4 and table.loc["bias only", "runs"] == 2
    dots = [json.loads(p.read_text()) for i in inputs.values() for p in i["metrics_paths"]["dot"]]
    assert table.loc["dot", "test_rmse"] == pytest.approx(np.mean([d["test_rmse"] for d in dots]))
    # The paired comparison pools the folds' test rows.
    rating = np.concatenate([r["rating"] for r in folds.values()])
    dot = [np.concatenate([r["predictions"]["dot"][k] for r in folds.values()]) for k in (0, 1)]
    bias = np.concatenate([r["baseline"]["bias_only"] for r in folds.values()])
    expected = pooled_rmse(dot, rating) - pooled_rmse([bias], rating)
    assert table.loc["dot", "diff_vs_bias_only"] == pytest.approx(expected, rel=1e-6)
    # The ensemble averages each fold's replicates on that fold's rows.
    ensemble = np.mean(dot, 0)
    assert table.loc["dot", "ensemble_test_rmse"] == pytest.approx(
        float(np.sqrt(np.mean((ensemble - rating) ** 2))), rel=1e-6
    )
    text = out_md.read_text()
    assert "2-fold scheme `cv2`" in text and "## Test RMSE per fold" in text
    assert "`cv2-1`" in text and "`cv2-2`" in text


def test_read_metrics_needs_test_scores_unless_told_otherwise(tmp_path):
    history = fake_metrics([(1e-2, 2)], 0)
    for key in ("test_rmse", "test_mae", "n_test", "cold"):
        history.pop(key)
    path = tmp_path / "history.json"
    path.write_text(json.dumps(history))
    assert read_metrics(path, test=False)["best_epoch"] == history["best_epoch"]
    with pytest.raises(
        ValueError, match=r"history\.json: missing key\(s\) \['test_rmse', 'test_mae'\]"
    ):
        read_metrics(path)


def test_summarize_models_rejects_broken_metrics_without_output(tmp_path):
    path = tmp_path / "metrics.json"
    broken = {"val_rmse": 0.9, "best_epoch": 1, "n_params": 3, "history": [{"epoch": 1}]}
    path.write_text(json.dumps({**broken, "test_rmse": 0.9, "test_mae": 0.7}))
    with pytest.raises(ValueError, match=r"history\[0\] lacks"):
        read_metrics(path)
    run = write_run(tmp_path / "run")
    inputs = run["inputs"]
    inputs["metrics_paths"]["dot"][1] = path
    with pytest.raises(ValueError, match="metrics.json"):
        summary.summarize_models(
            **inputs, benchmarks={}, summary_path=tmp_path / "s.md", csv_path=tmp_path / "m.csv",
            dataset="toy", split="random", links={}, figures={},
        )  # fmt: skip
    assert not (tmp_path / "s.md").exists() and not (tmp_path / "m.csv").exists()


def test_figures_are_byte_for_byte_reproducible(tmp_path):
    metrics = {"dot": [fake_metrics([(1e-2, 4)], 1), fake_metrics([(1e-2, 4)], 2)]}
    for run in ("a", "b"):
        fig = plots.comparison_figure(metrics, BASELINES, "toy")
        canvas.save_figure(fig, tmp_path / f"{run}.png", tmp_path / f"{run}.svg")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
