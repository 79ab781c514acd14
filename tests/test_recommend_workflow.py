"""Recommendations end to end on ml-latest-small (the default config's ml_small_run run).

The lists of every model, peer and baseline leave out what each user rated in
train and validation and are sorted; the ranking report scores them on test,
and the model trained with sampled negatives beats the most-rated list on
NDCG@10 (the recommendation issue's goal), by a paired interval above 0 and
in every replicate. Each new setting reruns exactly its own jobs.
"""

import numpy as np
import pandas as pd
import pytest
from conftest import scheduled_rules
from test_report_workflow import LIST_BASELINES, MODELS, PEERS, REPLICATES, SMALL

pytestmark = pytest.mark.slow

N = 100  # config.yaml's recommend.n


LISTS = [*MODELS, *PEERS, *LIST_BASELINES]


def list_file(project, name, replicate=1):
    sub = "" if replicate == 1 else f"rep{replicate}/"
    return project / SMALL / "recommendations" / name / f"{sub}top{N}.parquet"


def rated(project):
    parts = [pd.read_parquet(project / SMALL / f"split/{p}.parquet") for p in ("train", "val")]
    both = pd.concat(parts)
    return set(zip(both["user"], both["movie"], strict=True))


def test_every_list_leaves_out_seen_movies_and_is_sorted(ml_small_run):
    seen = rated(ml_small_run)
    users = pd.read_parquet(ml_small_run / "results/ml-latest-small/data/users.parquet")
    movies = pd.read_parquet(ml_small_run / "results/ml-latest-small/data/movies.parquet")
    for name in LISTS:
        reps = REPLICATES if name in MODELS else 1
        for r in range(1, reps + 1):
            table = pd.read_parquet(list_file(ml_small_run, name, r))
            assert list(table.columns) == ["user", "userId", "rank", "movie", "movieId", "score"]
            assert table["user"].nunique() == len(users), name
            assert (table.groupby("user")["rank"].agg(list).map(len) == N).all(), name
            pairs = zip(table["user"], table["movie"], strict=True)
            assert not any(p in seen for p in pairs), f"{name}: a list holds a rated movie"
            assert (table.groupby("user")["score"].diff().dropna() <= 1e-6).all(), name
            ids = movies.set_index("movie")["movieId"]
            assert (ids.loc[table["movie"]].to_numpy() == table["movieId"].to_numpy()).all()


def ndcg_at_10(project, name, replicate=1):
    from movierec import ranking

    test = pd.read_parquet(project / SMALL / "split/test.parquet")
    relevant = ranking.relevant_sets(test["user"], test["movie"], test["rating"], 4.0)
    lists = pd.read_parquet(list_file(project, name, replicate))
    return float(np.mean(ranking.per_user_metrics(lists, relevant, [10])["ndcg@10"]))


def test_ranking_report_scores_every_list_and_meets_the_goal(ml_small_run):
    reports = ml_small_run / SMALL / "reports"
    table = pd.read_csv(reports / "ranking.csv").set_index("list")
    assert list(table.index) == LISTS
    assert (table.loc[MODELS, "replicates"] == REPLICATES).all()
    for metric in ("ndcg@10", "precision@10", "recall@10", "map@10", "hit_rate@10", "mrr"):
        assert table[metric].between(0, 1).all(), metric
    assert (table["coverage@10"] > 0).all() and (table["novelty@10"] >= 1).all()
    # The goal: the negatives-trained dot model beats popularity, with an interval above 0.
    assert table.loc["dot_negatives", "ndcg@10_vs_popularity_low"] > 0
    assert table.loc["dot_negatives", "ndcg@10"] > table.loc["popularity", "ndcg@10"]
    # ... in each replicate, recomputed here from the list files themselves.
    per_rep = [ndcg_at_10(ml_small_run, "dot_negatives", r) for r in range(1, REPLICATES + 1)]
    popularity = ndcg_at_10(ml_small_run, "popularity")
    assert min(per_rep) > popularity, (per_rep, popularity)
    assert np.mean(per_rep) == pytest.approx(table.loc["dot_negatives", "ndcg@10"])
    assert popularity == pytest.approx(table.loc["popularity", "ndcg@10"])
    # A rating-only model ranks far worse than its negatives-trained twin.
    assert table.loc["dot", "ndcg@10"] < table.loc["dot_negatives", "ndcg@10"] / 2
    md = (reports / "ranking.md").read_text()
    assert md.splitlines()[2].startswith("Highest NDCG@10 of our models: **dot_negatives**")
    assert "every movie they did not rate in train or validation" in md
    assert md.count("User index") == 3 and "dot_negatives's top 10" in md
    summary = (reports / "summary.md").read_text()
    assert "## Top-N recommendations (ranking.md)" in summary
    assert "### Example: 3 users" in summary
    from test_report_workflow import assert_png

    assert_png(reports / "ndcg_at_k.png")


def test_similar_movies_lists_titled_neighbours(ml_small_run):
    md = (ml_small_run / SMALL / "reports/dot/similar_movies.md").read_text()
    assert md.count("\n## ") == 20  # the 20 most-rated movies
    assert "## Forrest Gump (1994) (movieId 356" in md
    # Star Wars IV's neighbours include another Star Wars film (the embedding knows sequels).
    section = md.split("## Star Wars: Episode IV - A New Hope (1977)")[1].split("\n## ")[0]
    assert "Star Wars: Episode" in section, section


def test_the_negatives_model_keeps_its_best_validation_ranking_epoch(ml_small_run):
    import json

    for r in range(1, REPLICATES + 1):
        run = ml_small_run / SMALL / f"models/dot_negatives/rep{r}/history.json"
        history = json.loads(run.read_text())
        assert history["selected_by"] == "val_ndcg@10"
        best = max(history["history"], key=lambda e: e["val_ndcg@10"])
        assert history["best_epoch"] == best["epoch"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "recommend: {n: 50}",
            {"recommend_model": len(MODELS), "recommend_baseline": len(LIST_BASELINES),
             "fit_peer": len(PEERS), "plot_model_comparison": 1, "score_recommendations": 1,
             "summarize_models": 1},
        ),
        (
            "recommend: {shrinkage: 10}",
            {"recommend_baseline": 1, "score_recommendations": 1, "summarize_models": 1},
        ),
        (
            "reports: {ranking: {relevant_rating: 4.5}}",
            {"score_recommendations": 1, "summarize_models": 1},
        ),
        ("reports: {similar: {n: 5}}", {"find_similar_movies": len(MODELS)}),
    ],
    ids=["list-length", "shrinkage", "relevance", "similar"],
)  # fmt: skip
def test_each_recommendation_setting_reruns_only_its_jobs(ml_small_run, override, expected):
    configfile = ml_small_run / "override-recommend.yaml"
    configfile.write_text(override + "\n")
    counts = scheduled_rules(ml_small_run, "--configfile", str(configfile))
    counts.pop("all", None)
    assert counts == expected


def test_a_negatives_setting_retrains_only_that_model(ml_small_run):
    configfile = ml_small_run / "override-negatives.yaml"
    configfile.write_text("models: {dot_negatives: {negatives: {per_rating: 3}}}\n")
    counts = scheduled_rules(ml_small_run, "--configfile", str(configfile))
    assert counts["train_model"] == REPLICATES and counts["evaluate_model"] == 1
    assert counts["recommend_model"] == 1 and "pretrain_model" not in counts
    assert "recommend_baseline" not in counts and "fit_peer" not in counts
    assert counts["score_recommendations"] == 1 and "compute_baselines" not in counts
