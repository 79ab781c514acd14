"""Top-N lists (movierec.recommend) and sampled negatives (movierec.negatives) on small fixtures.

Lists are checked against brute force: every (user, movie) pair scored by the
model's own forward pass, seen pairs removed, sorted. The baselines are checked
on data with a planted popularity, and the negatives-trained model's epoch
choice against a planted validation score.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from movierec import models, negatives, recommend, training
from schema_defaults import model_block

N_USERS, N_MOVIES = 23, 40


def small_model(arch):
    settings = model_block(arch=arch, n_factors=4, y_range=[0.5, 5.5], seed=3)
    if arch == "mlp":
        settings.update(hidden=[8], dropouts=[0.2])
    model = models.build_model(settings, N_USERS, N_MOVIES)
    with torch.no_grad():  # spread the scores (the init is near zero)
        for p in model.parameters():
            p.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
        models.set_output_offset(model, 3.5)
    return model.eval()


def random_seen(seed=0, per_user=(0, 39)):
    rng = np.random.default_rng(seed)
    user, movie = [], []
    for u in range(N_USERS):
        k = rng.integers(per_user[0], per_user[1] + 1)
        picked = rng.choice(N_MOVIES, size=k, replace=False)
        user += [u] * k
        movie += picked.tolist()
    return np.array(user), np.array(movie)


def brute_force(model, seen_user, seen_movie, n):
    users = torch.arange(N_USERS).repeat_interleave(N_MOVIES)
    movies = torch.arange(N_MOVIES).repeat(N_USERS)
    with torch.no_grad():
        pred = model(users, movies).view(N_USERS, N_MOVIES).double().numpy()
    pred[seen_user, seen_movie] = -np.inf
    lists = {}
    for u in range(N_USERS):
        order = [m for m in np.argsort(-pred[u], kind="stable") if np.isfinite(pred[u, m])]
        lists[u] = (order[:n], pred[u, order[:n]])
    return lists


@pytest.mark.parametrize("arch", ["dot", "hybrid", "mlp"])
@pytest.mark.parametrize("block", [None, 3 * N_MOVIES])
def test_lists_equal_brute_force_and_leave_out_seen_movies(arch, block, monkeypatch):
    if block is not None:  # several blocks of users (and a short last one)
        monkeypatch.setattr(recommend, "BLOCK_ELEMENTS", block)
        monkeypatch.setattr(recommend, "MLP_BLOCK_PAIRS", block)
    model = small_model(arch)
    seen_user, seen_movie = random_seen()
    seen = recommend.Seen.from_pairs(seen_user, seen_movie, N_USERS)
    lists = recommend.top_n(recommend.ModelScorer(model), seen, n=10)
    expected = brute_force(model, seen_user, seen_movie, 10)
    table = pd.DataFrame(lists)
    for u in range(N_USERS):
        mine = table[table["user"] == u]
        movies, scores = expected[u]
        assert mine["rank"].tolist() == list(range(1, len(movies) + 1))
        assert mine["movie"].tolist() == list(movies), u
        np.testing.assert_allclose(mine["score"], scores, rtol=1e-5, atol=1e-5)
        assert not set(mine["movie"]) & set(seen_movie[seen_user == u])
        assert (np.diff(mine["score"].to_numpy()) <= 1e-6).all()


def test_a_user_with_fewer_unseen_movies_than_n_gets_them_all():
    model = small_model("dot")
    user = np.zeros(N_MOVIES - 3, dtype=np.int64)
    seen = recommend.Seen.from_pairs(user, np.arange(N_MOVIES - 3), N_USERS)
    lists = recommend.top_n(recommend.ModelScorer(model), seen, n=10, users=[0, 1])
    got = pd.DataFrame(lists)
    assert sorted(got[got["user"] == 0]["movie"]) == [N_MOVIES - 3, N_MOVIES - 2, N_MOVIES - 1]
    assert (got["user"] == 1).sum() == 10


def test_n_below_one_is_an_error():
    seen = recommend.Seen.from_pairs([], [], N_USERS)
    with pytest.raises(ValueError, match="at least 1"):
        recommend.top_n(recommend.FixedScorer(np.ones(N_MOVIES)), seen, n=0)


def planted_popularity(seed=0):
    """Ratings where movie m is rated by about (m + 1) * 2 users: popularity rises with m."""
    rng = np.random.default_rng(seed)
    user, movie, rating = [], [], []
    for m in range(N_MOVIES):
        raters = rng.choice(200, size=min(200, 2 * (m + 1)), replace=False)
        user += raters.tolist()
        movie += [m] * raters.size
        rating += rng.choice([1.0, 3.0, 5.0], raters.size).tolist()
    return np.array(user), np.array(movie), np.array(rating)


def test_popularity_list_is_most_rated_first_without_seen_movies():
    user, movie, _ = planted_popularity()
    scores = recommend.popularity_scores(movie, N_MOVIES)
    seen = recommend.Seen.from_pairs(user, movie, 200)
    lists = pd.DataFrame(recommend.top_n(recommend.FixedScorer(scores), seen, n=5))
    for u, mine in lists.groupby("user"):
        unseen = [m for m in range(N_MOVIES - 1, -1, -1) if m not in set(movie[user == u])]
        assert mine.sort_values("rank")["movie"].tolist() == unseen[:5]


def test_popularity_ties_go_to_the_lower_movie_index():
    scores = recommend.popularity_scores(np.array([2, 2, 5, 5, 1]), 6)
    assert list(np.argsort(-scores, kind="stable")) == [2, 5, 1, 0, 3, 4]


def test_shrunk_mean_by_hand():
    movie = np.array([0, 0, 1])
    rating = np.array([5.0, 3.0, 5.0])  # global mean 13/3
    got = recommend.shrunk_mean_scores(movie, rating, 3, shrinkage=2.0)
    mean = 13 / 3
    np.testing.assert_allclose(got, [(8 + 2 * mean) / 4, (5 + 2 * mean) / 3, mean])
    # No shrinkage: the one 5-star rating ties the top; with it, the better-supported movie wins.
    assert recommend.shrunk_mean_scores(movie, rating, 3, 0.0)[1] == 5.0


def test_list_table_maps_indices_to_release_ids():
    lists = {"user": np.array([1]), "rank": np.array([1]), "movie": np.array([2]),
             "score": np.array([4.5])}  # fmt: skip
    table = recommend.list_table(lists, np.array([10, 11]), np.array([100, 101, 102])).to_pandas()
    assert list(table.columns) == list(recommend.LIST_COLUMNS)
    assert table.iloc[0][["userId", "movieId"]].tolist() == [11, 102]


# --- sampled negatives ---------------------------------------------------------------


def ratings(user, movie, rating):
    return training.Ratings(
        torch.as_tensor(user, dtype=torch.int64),
        torch.as_tensor(movie, dtype=torch.int64),
        torch.as_tensor(rating, dtype=torch.float32),
    )


def test_negatives_are_unrated_training_pairs_with_the_target_and_seeded():
    user, movie = random_seen(per_user=(5, 30))
    train = ratings(user, movie, np.full(user.size, 4.0))
    more = negatives.add_negatives(train, N_MOVIES, per_rating=3, rating=0.5, seed=7)
    n = len(train)
    assert torch.equal(more.user[:n], train.user) and torch.equal(more.rating[:n], train.rating)
    sampled = set(zip(more.user[n:].tolist(), more.movie[n:].tolist(), strict=True))
    assert not sampled & set(zip(user.tolist(), movie.tolist(), strict=True))
    assert 0 < len(more) - n <= 3 * n
    assert (more.rating[n:] == 0.5).all()
    # Each rating draws for its own user: a user gets about per_rating negatives per rating.
    drawn = np.bincount(more.user[n:].numpy(), minlength=N_USERS)
    assert (drawn <= 3 * np.bincount(user, minlength=N_USERS)).all()
    again = negatives.add_negatives(train, N_MOVIES, per_rating=3, rating=0.5, seed=7)
    assert torch.equal(again.movie, more.movie)
    other = negatives.add_negatives(train, N_MOVIES, per_rating=3, rating=0.5, seed=8)
    assert not torch.equal(other.movie, more.movie)


def test_per_rating_below_one_is_an_error():
    train = ratings([0], [0], [4.0])
    with pytest.raises(ValueError, match="per_rating"):
        negatives.add_negatives(train, N_MOVIES, per_rating=0, rating=0.5, seed=1)


class PlantedScore:
    """A validation score that peaks at a chosen epoch, whatever the RMSE does."""

    name = "val_ndcg@10"

    def __init__(self, peak):
        self.peak, self.calls = peak, 0

    def __call__(self, model):
        self.calls += 1
        return -abs(self.calls - self.peak)


def test_fit_keeps_the_best_validation_ranking_epoch_not_the_best_rmse():
    user, movie = random_seen(per_user=(10, 30))
    rng = np.random.default_rng(0)
    train = ratings(user, movie, rng.choice([1.0, 3.0, 5.0], user.size))
    val = ratings(user[:50], movie[:50], rng.choice([1.0, 5.0], 50))
    model = models.build_model(model_block(arch="dot", n_factors=4), N_USERS, N_MOVIES)
    score = PlantedScore(peak=2)
    result = training.fit(
        model, train, val, phases=[{"lr": 0.05, "epochs": 5}], batch_size=64,
        rating_scale=(0.5, 5.0), val_ranking=score,
    )  # fmt: skip
    assert score.calls == 5
    assert result["best_epoch"] == 2 and result["selected_by"] == "val_ndcg@10"
    assert result["val_ndcg@10"] == 0
    assert all("val_ndcg@10" in epoch for epoch in result["history"])
    assert result["val_rmse"] == result["history"][1]["val_rmse"]


def test_val_ranking_scores_a_model_that_ranks_the_validation_movies_first():
    # Users rated movies 0..9 in training; each likes movie 10 + u % 5 in validation.
    n_users = 10
    train_user = np.repeat(np.arange(n_users), 10)
    train_movie = np.tile(np.arange(10), n_users)
    train = ratings(train_user, train_movie, np.full(train_user.size, 3.0))
    val_user = np.arange(n_users)
    val = ratings(val_user, 10 + val_user % 5, np.full(n_users, 5.0))
    model = models.build_model(model_block(arch="dot", n_factors=5), n_users, 20)
    with torch.no_grad():
        model.user_emb.weight.zero_()
        model.movie_emb.weight.zero_()
        model.user_emb.weight[val_user, val_user % 5] = 1.0
        model.movie_emb.weight[10 + np.arange(5), np.arange(5)] = 1.0
    perfect = negatives.ValRanking(train, val, n_users, relevant_rating=4.0)(model)
    assert perfect == pytest.approx(1.0)
    with torch.no_grad():
        model.user_emb.weight.neg_()
    assert negatives.ValRanking(train, val, n_users, relevant_rating=4.0)(model) < 0.5
