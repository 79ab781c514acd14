"""Sampled negatives: train a rating model to rank, and choose its epoch on validation ranking.

A model fitted to ratings alone learns how much a user would like a movie *if*
they watched it, not which movies they pick: its top-N lists fill with
obscure films that a handful of people rated 5, and a plain most-rated list
beats it on NDCG (measured on ml-latest-small: 0.002 against 0.12). The
field's oldest fix is to show the model what users did *not* rate: each
training rating brings `per_rating` movies drawn uniformly from the catalogue
(not rated by that user in training) with a low target rating, so the score
learns "rated and liked" against "not chosen". This is the rating-loss form of
implicit-feedback training (the unobserved-as-low of PureSVD and weighted
matrix factorisation), and it runs through the same fast training step.

The sample is drawn once, seeded, before training (not per epoch): the
training step stays the one tested against autograd, and a rerun is
reproducible. Validation RMSE means little for such a model, so `ValRanking`
scores each epoch by NDCG@10 on the validation part (lists over the movies
the user did not rate in training, relevant = a validation rating at or above
`relevant_rating`); `training.fit` keeps the best epoch by it.
"""

import numpy as np
import torch

from movierec import ranking, recommend

#: List length of the validation ranking that picks the kept epoch.
VAL_K = 10


def add_negatives(train, n_movies, per_rating, rating, seed):
    """`train` plus `per_rating` sampled unrated movies per rating, each with target `rating`.

    Parameters
    ----------
    train : training.Ratings
    n_movies : int
        Catalogue size (rows of the movie table); movies are drawn uniformly.
    per_rating : int
        Draws per training rating; a draw that hits a pair the user rated in
        training is dropped (not redrawn), so slightly fewer may be added.
    rating : float
        Target of a sampled pair (the bottom of the rating scale, say).
    seed : int

    Returns
    -------
    training.Ratings
        The training ratings followed by the sampled pairs (same dtypes).
    """
    if int(per_rating) < 1:
        raise ValueError(f"negatives.per_rating must be at least 1, got {per_rating!r}")
    user = train.user.numpy()
    movie = train.movie.numpy()
    rng = np.random.default_rng(int(seed))
    draw_user = np.repeat(user, int(per_rating))
    draw_movie = rng.integers(0, int(n_movies), draw_user.size)
    rated = np.unique(user * np.int64(n_movies) + movie)
    keep = ~np.isin(draw_user * np.int64(n_movies) + draw_movie, rated, assume_unique=False)
    draw_user, draw_movie = draw_user[keep], draw_movie[keep]
    target = torch.full((draw_user.size,), float(rating), dtype=train.rating.dtype)
    return type(train)(
        torch.cat([train.user, torch.from_numpy(draw_user)]),
        torch.cat([train.movie, torch.from_numpy(draw_movie)]),
        torch.cat([train.rating, target]),
    )


class ValRanking:
    """Mean NDCG@10 of a model's lists on the validation part (the epoch choice of `fit`).

    Candidates are the movies a user did not rate in training; relevant are
    the user's validation movies rated at least `relevant_rating`. Users
    with no relevant validation movie do not count.
    """

    name = f"val_ndcg@{VAL_K}"

    def __init__(self, train, val, n_users, relevant_rating):
        self.seen = recommend.Seen.from_pairs(train.user.numpy(), train.movie.numpy(), n_users)
        self.relevant = ranking.relevant_sets(
            val.user.numpy(), val.movie.numpy(), val.rating.numpy(), relevant_rating
        )

    @torch.no_grad()
    def __call__(self, model):
        was_training = model.training
        model.eval()
        try:
            lists = recommend.top_n(recommend.ModelScorer(model), self.seen, VAL_K)
        finally:
            model.train(was_training)
        per_user = ranking.per_user_metrics(lists, self.relevant, [VAL_K])
        return float(np.mean(per_user[f"ndcg@{VAL_K}"]))
