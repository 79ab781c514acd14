"""Top-N ranking metrics: hand-worked lists, torchmetrics as the reference, and list checks."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from movierec import ranking
from torchmetrics import retrieval as tm

KS = (1, 5, 10)
METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")
REFERENCE = {
    "precision": tm.RetrievalPrecision,
    "recall": tm.RetrievalRecall,
    "ndcg": tm.RetrievalNormalizedDCG,
    "map": tm.RetrievalMAP,
    "hit_rate": tm.RetrievalHitRate,
}


def as_table(lists):
    """A list table from {user: [movie at rank 1, rank 2, ...]}."""
    rows = [(u, r, m) for u, movies in lists.items() for r, m in enumerate(movies, start=1)]
    return pd.DataFrame(rows, columns=["user", "rank", "movie"]).astype("int64")


def as_test(ratings):
    """Test arrays from {user: {movie: rating}}."""
    rows = [(u, m, r) for u, movies in ratings.items() for m, r in movies.items()]
    user, movie, rating = (np.array(c) for c in zip(*rows, strict=True))
    return user.astype(np.int64), movie.astype(np.int64), rating.astype(np.float64)


# Hand-worked: lists of 5, cut at k = 3.
HAND_LISTS = {
    0: [1, 2, 3, 4, 5],  # perfect: 1, 2, 3 relevant
    1: [1, 2, 3, 4, 5],  # no hit: only 9 relevant
    2: [6, 7, 8, 1, 2],  # one relevant movie, at rank 3
    3: [1, 2, 3, 4, 5],  # 5 relevant > k: hits at ranks 1 and 3 in the top 3
    4: [1, 2, 3, 4, 5],  # first hit at rank 5, beyond k
    5: [1, 2, 3],  # in the test without a relevant movie: left out, counted
}
HAND_TEST = {
    0: {1: 5.0, 2: 4.0, 3: 4.5, 7: 2.0},
    1: {9: 4.0, 1: 3.5},
    2: {8: 5.0},
    3: {1: 4.0, 3: 4.0, 4: 4.0, 5: 4.0, 20: 5.0, 2: 1.0},
    4: {5: 4.0},
    5: {1: 3.0, 2: 2.5},
    6: {3: 5.0},  # relevant movie, no list: zero everywhere
}
IDEAL_3 = 1 + 1 / math.log2(3) + 1 / 2
HAND_EXPECTED = {  # per user 0, 1, 2, 3, 4, 6
    "precision@3": [1, 0, 1 / 3, 2 / 3, 0, 0],
    "recall@3": [1, 0, 1, 2 / 5, 0, 0],
    "ndcg@3": [1, 0, 1 / 2, (1 + 1 / 2) / IDEAL_3, 0, 0],
    # Precision at each hit, averaged over the hits in the top 3 (torchmetrics).
    "map@3": [1, 0, 1 / 3, (1 / 1 + 2 / 3) / 2, 0, 0],
    "hit_rate@3": [1, 0, 1, 1, 0, 0],
    "mrr": [1, 0, 1 / 3, 1, 1 / 5, 0],
}


def hand_case():
    return as_table(HAND_LISTS), ranking.relevant_sets(*as_test(HAND_TEST))


def test_hand_worked_lists():
    lists, relevant = hand_case()
    assert relevant.n_without_relevant == 1
    got = ranking.per_user_metrics(lists, relevant, ks=(3,))
    np.testing.assert_array_equal(got["user"], [0, 1, 2, 3, 4, 6])
    assert set(got) == {"user", *HAND_EXPECTED}
    for name, expected in HAND_EXPECTED.items():
        np.testing.assert_allclose(got[name], expected, atol=1e-12, err_msg=name)


def test_relevant_sets_are_csr_by_user():
    relevant = ranking.relevant_sets([3, 1, 3, 3, 2, 1], [7, 4, 2, 7, 5, 9], [5, 4, 4, 4, 3, 1])
    np.testing.assert_array_equal(relevant.user, [1, 3])
    np.testing.assert_array_equal(relevant.indptr, [0, 1, 3])
    np.testing.assert_array_equal(relevant.movie, [4, 2, 7])  # the repeated (3, 7) once
    assert relevant.n_without_relevant == 1  # user 2


def test_summarize_hand_case():
    user, movie, rating = as_test(HAND_TEST)
    popularity = np.arange(21)[::-1]  # movie 0 most rated
    lists = as_table(HAND_LISTS)
    got = ranking.summarize(lists, user, movie, rating, n_movies=21, popularity=popularity, ks=(3,))
    for name, expected in HAND_EXPECTED.items():
        assert got[name] == pytest.approx(np.mean(expected)), name
    assert got["n_users_evaluated"] == 6
    assert got["n_users_without_relevant"] == 1
    assert got["coverage@3"] == pytest.approx(6 / 21)  # movies 1, 2, 3, 6, 7, 8
    assert got["novelty@3"] == pytest.approx((5 * (2 + 3 + 4) + 7 + 8 + 9) / 18)


def random_case(seed=0, n_users=300, n_movies=60, n=12):
    """Lists of 0..n movies and test ratings; a third of the users rated only unlisted movies."""
    rng = np.random.default_rng(seed)
    lists, test = {}, {}
    for u in range(n_users):
        order = rng.permutation(n_movies)
        length = n if u == 0 else int(rng.integers(0, n + 1))
        if length:
            lists[u] = order[:length].tolist()
        pool = order[length:] if u % 3 == 0 else order[: length + 8]
        rated = rng.choice(pool, size=int(rng.integers(0, min(15, pool.size) + 1)), replace=False)
        if rated.size:
            stars = rng.choice([1, 2, 3, 3.5, 4, 4.5, 5], rated.size)
            test[u] = dict(zip(rated.tolist(), stars.tolist(), strict=True))
    return lists, test


def reference(lists, test, metric, k, n, threshold=4.0, empty_target_action="skip"):
    """torchmetrics per user (or their mean) on "every unrated movie a candidate, top n listed".

    Each user's candidates: the list in rank order, fillers (not relevant) up to
    max(n, k) entries, then the relevant test movies the list misses. Scores are
    positive and distinct, since torchmetrics drops targets whose score is <= 0.
    """
    indexes, targets = [], []
    for u in sorted(set(lists) | set(test)):
        listed = lists.get(u, [])
        relevant = {m for m, r in test.get(u, {}).items() if r >= threshold}
        target = [m in relevant for m in listed] + [False] * (max(n, k) - len(listed))
        target += [True] * len(relevant - set(listed))
        indexes += [u] * len(target)
        targets += target
    preds = torch.arange(len(targets), 0, -1, dtype=torch.float32)  # decreasing within a user
    aggregation = "mean" if empty_target_action != "skip" else (lambda values, dim=None: values)
    # MRR looks at the whole list: top n.
    metric_class, top_k = (tm.RetrievalMRR, n) if metric == "mrr" else (REFERENCE[metric], k)
    reference_metric = metric_class(
        top_k=top_k, empty_target_action=empty_target_action, aggregation=aggregation
    )
    reference_metric.update(preds, torch.tensor(targets), indexes=torch.tensor(indexes))
    return reference_metric.compute().double().numpy()


@pytest.fixture(scope="module")
def random_scores():
    lists, test = random_case()
    relevant = ranking.relevant_sets(*as_test(test))
    return lists, test, relevant, ranking.per_user_metrics(as_table(lists), relevant, KS)


def test_random_case_covers_the_edges(random_scores):
    lists, test, relevant, _ = random_scores
    assert relevant.n_without_relevant > 10
    evaluated = set(relevant.user.tolist())
    assert len(evaluated - set(lists)) > 5  # relevant users without a list
    listed = evaluated & set(lists)
    short = [u for u in listed if len(lists[u]) < max(KS)]
    outside = [u for u in listed if not {m for m, r in test[u].items() if r >= 4} & set(lists[u])]
    assert len(short) > 20 and len(outside) > 20


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("metric", METRICS)
def test_equals_torchmetrics(random_scores, metric, k):
    lists, test, relevant, got = random_scores
    expected = reference(lists, test, metric, k, n=12)
    assert expected.shape == relevant.user.shape  # the same users: skip = left out
    np.testing.assert_allclose(got[f"{metric}@{k}"], expected, atol=1e-6, rtol=0)


def test_mrr_equals_torchmetrics_over_the_whole_list(random_scores):
    lists, test, _, got = random_scores
    np.testing.assert_allclose(got["mrr"], reference(lists, test, "mrr", 1, n=12), atol=1e-6)


def test_users_without_relevant_are_left_out_and_counted(random_scores):
    lists, test, relevant, got = random_scores
    no_relevant = [u for u, movies in test.items() if max(movies.values()) < 4]
    assert relevant.n_without_relevant == len(no_relevant)
    assert not set(no_relevant) & set(got["user"].tolist())
    # torchmetrics' default ("neg") averages them in as zeros instead.
    queries = len(set(lists) | set(test))
    neg = reference(lists, test, "ndcg", 10, n=12, empty_target_action="neg")
    assert neg == pytest.approx(got["ndcg@10"].sum() / queries)


def test_relevant_user_without_list_scores_zero(random_scores):
    lists, _, _, got = random_scores
    unlisted = ~np.isin(got["user"], list(lists))
    assert unlisted.sum() > 0
    for name, values in got.items():
        if name != "user":
            assert not values[unlisted].any(), name


def test_ndcg_curve_is_the_mean_ndcg_at_each_k(random_scores):
    lists, _, relevant, _ = random_scores
    curve = ranking.ndcg_curve(as_table(lists), relevant, 15)  # beyond the lists' 12
    at = ranking.per_user_metrics(as_table(lists), relevant, range(1, 16))
    np.testing.assert_allclose(curve, [at[f"ndcg@{k}"].mean() for k in range(1, 16)], atol=1e-12)


def test_coverage_and_novelty_by_hand():
    lists = as_table({0: [4, 1, 3], 1: [2, 4]})
    popularity = [5, 3, 3, 0, 9, 1]  # ranks 2, 3, 3, 6, 1, 5: the tie shares rank 3
    np.testing.assert_array_equal(ranking.popularity_rank(popularity), [2, 3, 3, 6, 1, 5])
    assert ranking.catalogue_coverage(lists, 6, k=2) == pytest.approx(3 / 6)  # 4, 1, 2
    assert ranking.catalogue_coverage(lists, 6, k=3) == pytest.approx(4 / 6)
    assert ranking.novelty(lists, popularity, k=2) == pytest.approx((1 + 3 + 3 + 1) / 4)
    assert ranking.novelty(lists, popularity, k=3) == pytest.approx((1 + 3 + 6 + 3 + 1) / 5)
    with pytest.raises(ValueError, match="movie 4 is outside the catalogue of 4"):
        ranking.catalogue_coverage(lists, 4, k=2)


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    a = rng.random(500)
    b = a + 0.05 + rng.normal(0, 0.1, a.size)
    same = ranking.paired_bootstrap(a, a.copy(), seed=1)
    assert same["diff"] == same["low"] == same["high"] == 0
    better = ranking.paired_bootstrap(b, a, seed=1)
    assert 0 < better["low"] < better["diff"] < better["high"]
    assert better["diff"] == pytest.approx(np.mean(b - a))
    assert better == ranking.paired_bootstrap(b, a, seed=1)
    assert better["low"] != ranking.paired_bootstrap(b, a, seed=2)["low"]
    assert (better["n_resamples"], better["n_users"], better["level"]) == (1000, 500, 0.95)
    with pytest.raises(ValueError, match="equal non-empty"):
        ranking.paired_bootstrap(a, a[:-1], seed=1)


@pytest.mark.parametrize(
    ("lists", "message"),
    [
        ({0: [1, 2], 3: [1, 2, 3, 4]}, None),
        (pd.DataFrame({"user": [0, 0, 3, 3, 3], "rank": [1, 2, 1, 2, 4], "movie": [1, 2, 1, 2, 3]}),
         "user 3: expected ranks 1..3, .* rank 3 is missing"),
        (pd.DataFrame({"user": [2, 2, 5, 5], "rank": [2, 3, 2, 1], "movie": [1, 2, 1, 2]}),
         "user 2: expected ranks 1..2, .* rank 1 is missing"),
        (pd.DataFrame({"user": [4, 4, 4, 1], "rank": [1, 1, 2, 1], "movie": [1, 2, 3, 9]}),
         "user 4: .* rank 1 appears more than once"),
        (pd.DataFrame({"user": [1, 1, 6, 6, 6], "rank": [1, 2, 1, 2, 3], "movie": [3, 4, 8, 9, 8]}),
         "user 6: movie 8 is listed at ranks 1, 3; expected each movie at most once"),
    ],
)  # fmt: skip
def test_bad_lists_name_the_user(lists, message):
    table = as_table(lists) if isinstance(lists, dict) else lists
    if message is None:
        assert ranking.ranked_lists(table).length.tolist() == [2, 0, 0, 4]
    else:
        with pytest.raises(ValueError, match=message):
            ranking.ranked_lists(table)
