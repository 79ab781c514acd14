"""Scores of a fitted peer for every (user, movie) pair, for its top-N lists.

Ranking needs a score for every movie a user has not rated: 6 million pairs on
ml-latest-small. Through the libraries' own per-pair ``predict`` that takes
about 20 s for a Surprise SVD and 2-3 minutes for a myFM model (measured on
this 2-core machine). Both models are sums of biases and inner products, so
the same numbers come from their fitted parameters with matrix products, in a
second: this module reads those parameters and evaluates the library's own
prediction formula on a block of users against all movies.
`tests/test_peers.py` checks every scorer against the library's ``predict``.

* Surprise: ``BaselineOnly``, ``SVD`` and ``SVDpp`` estimate
  ``mu + b_u + b_i (+ q_i . p_u)``, with SVD++'s user vector ``p_u +
  |N(u)|^-1/2 sum of y_j``, and drop the terms of a side training never saw
  (as their ``estimate`` does). Scores are the estimates before Surprise's
  clipping to the rating scale, which would tie every movie above the top of
  the scale. Other algorithms (KNN) have no such form and are scored by
  ``algo.estimate`` per pair (slow; they are explicit targets).
* myFM: the posterior predictive mean, ``mean over samples of w0 + w.x +
  sum_{i<j} <v_i, v_j> x_i x_j``, where a pair's features are its user-side
  row plus its movie-side row (disjoint columns). The pairwise sum splits
  into a user part, a movie part and ``a_u . b_m`` with ``a_u = V^T x_u``; the
  samples' ``a`` and ``b`` are stacked side by side, so the mean over samples
  of ``a_u . b_m`` is one matrix product.
"""

import numpy as np

#: Scores held at once per block of users (float64).
BLOCK_ELEMENTS = 1 << 23


class GridScorer:
    """`movierec.recommend` scorer over a function ``users -> scores (users x movies)``."""

    def __init__(self, grid, n_movies):
        import torch

        self.grid = grid
        self.n_movies = int(n_movies)
        self.device = torch.device("cpu")
        self.block_elements = BLOCK_ELEMENTS

    def rank_scores(self, users):
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.grid(users.numpy()), np.float64))

    def to_rating(self, scores):
        return scores


def _inner_ids(trainset, n, users):
    """Our index -> Surprise's inner id (-1 where training never saw it)."""
    to_inner = trainset.to_inner_uid if users else trainset.to_inner_iid
    inner = np.full(n, -1, dtype=np.int64)
    for raw in range(n):
        try:
            inner[raw] = to_inner(raw)
        except ValueError:
            pass
    return inner


def surprise_grid(algo, trainset, n_users, n_movies):
    """``users -> scores`` of a fitted Surprise algorithm (see the module docstring)."""
    user_inner = _inner_ids(trainset, n_users, users=True)
    movie_inner = _inner_ids(trainset, n_movies, users=False)
    known_movie = movie_inner >= 0
    name = type(algo).__name__
    if name not in ("BaselineOnly", "SVD", "SVDpp"):
        return _estimate_grid(algo, user_inner, movie_inner)
    mu = trainset.global_mean
    biased = name != "SVD" or algo.biased
    movie_bias = np.where(known_movie, algo.bi[movie_inner], 0.0) if biased else None
    qi = None
    if name != "BaselineOnly":
        qi = np.where(known_movie[:, None], algo.qi[movie_inner], 0.0)
        pu = _svdpp_users(algo, trainset) if name == "SVDpp" else algo.pu

    def grid(users):
        inner = user_inner[users]
        known = inner >= 0
        both = known[:, None] & known_movie[None, :]
        dot = 0.0
        if qi is not None:  # the inner product only where both sides are known
            dot = np.where(both, np.where(known[:, None], pu[inner], 0.0) @ qi.T, 0.0)
        if not biased:  # unbiased SVD: the training mean where it cannot predict
            return np.where(both, dot, mu)
        user_bias = np.where(known, algo.bu[inner], 0.0)
        return mu + user_bias[:, None] + movie_bias[None, :] + dot

    return grid


def _svdpp_users(algo, trainset):
    """SVD++'s user vectors: ``p_u + |N(u)|^-1/2 * sum of y_j over the movies u rated``."""
    vectors = np.array(algo.pu, dtype=np.float64, copy=True)
    for u in range(trainset.n_users):
        rated = [j for j, _ in trainset.ur[u]]
        vectors[u] += algo.yj[rated].sum(axis=0) / np.sqrt(len(rated))
    return vectors


def _estimate_grid(algo, user_inner, movie_inner):
    """``users -> scores`` through ``algo.estimate`` per pair (algorithms without a factor form)."""
    from surprise import PredictionImpossible

    fallback = algo.default_prediction()

    def grid(users):
        out = np.empty((len(users), len(movie_inner)), dtype=np.float64)
        for row, u in enumerate(user_inner[users]):
            for m, i in enumerate(movie_inner):
                try:
                    est = algo.estimate(u, i) if u >= 0 and i >= 0 else fallback
                except PredictionImpossible:
                    est = fallback
                out[row, m] = est[0] if isinstance(est, tuple) else est
        return out

    return grid


def myfm_grid(model, user_features, movie_features):
    """``users -> scores``: myFM's predictive mean for every (user, movie) pair.

    Parameters
    ----------
    model : myfm.MyFMRegressor
        Fitted; its kept Gibbs samples are averaged, as its ``predict`` does.
    user_features, movie_features : scipy.sparse matrix
        Row u (m): the features of user u (movie m) in the model's full
        feature space (X's columns, then each relation block's), zero
        elsewhere; a pair's feature vector is the sum of its two rows.
    """
    samples = model.predictor_.samples
    user_features = user_features.tocsr()
    movie_features = movie_features.tocsr()
    user_sq = user_features.multiply(user_features)
    movie_sq = movie_features.multiply(movie_features)
    user_const = np.zeros(user_features.shape[0])
    movie_const = np.zeros(movie_features.shape[0])
    a_parts, b_parts = [], []
    for sample in samples:
        w = np.asarray(sample.w, dtype=np.float64)
        v = np.asarray(sample.V, dtype=np.float64)
        a = np.asarray(user_features @ v)
        b = np.asarray(movie_features @ v)
        v_sq = (v * v).sum(axis=1)
        user_const += sample.w0 + user_features @ w
        user_const += 0.5 * ((a * a).sum(axis=1) - user_sq @ v_sq)
        movie_const += movie_features @ w + 0.5 * ((b * b).sum(axis=1) - movie_sq @ v_sq)
        a_parts.append(a)
        b_parts.append(b)
    n = len(samples)
    user_const /= n
    movie_const /= n
    a_all = np.hstack(a_parts) / n
    b_all = np.hstack(b_parts)

    def grid(users):
        return user_const[users][:, None] + movie_const[None, :] + a_all[users] @ b_all.T

    return grid
