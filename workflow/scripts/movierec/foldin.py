"""Fold a new user into a trained model without retraining: fit one user row, movies frozen.

A trained model knows its users by their rows of ``user_emb`` (and ``user_bias``).
Someone who was not in the training data has no row, but the movie side of the
model is fixed, so the best row for them is a small problem on their own
ratings alone: what training would have done to a new row if the movie tables
were frozen. That is what fold-in solves; nothing else in the model changes.

Dot family (``dot``, ``hybrid`` and the finetunes, all predicting with
``low + (high - low) * sigmoid(offset + b + c_j + x . v_j)`` under ``y_range``,
or ``offset + b + c_j + x . v_j`` without; `models.OutputScale`): the user
vector ``x`` and bias ``b`` come from a ridge regression on the rated movies'
factors ``v_j`` and biases ``c_j``, solved in closed form in the raw-score
domain (`ridge_solve`, `raw_targets`). Without ``y_range`` that is exactly
the training objective of the row. With it, the sigmoid makes the real loss
non-linear, so the closed form is a start (on logit targets) that a few
Gauss-Newton steps on the real squared rating error then finish
(`refine_bounded`); see `fold_in_dot` for what that buys.

MLP: the network mixes user and movie in its hidden layers, so there is no
closed form; `fold_in_mlp` optimises a new ``user_emb`` row by Adam on the
squared error of the user's ratings plus an L2 on the row, a fixed number of
steps from a seeded start, with every weight of the network frozen.

Either way the result is a `UserScores`: the user's score for every movie as
plain numpy arrays, with no model attached, and for the dot family its split
into global offset, user bias, movie bias and factor part.
"""

import contextlib
import logging
from dataclasses import dataclass

import numpy as np
import torch

from movierec.foldin_ridge import (
    EPS,
    design_matrix,
    output_scale,
    raw_targets,
    refine_bounded,
    ridge_solve,
)
from movierec.recommend import dot_tables

log = logging.getLogger(__name__)

#: L2 strength on the folded-in row per rating of the user, for a model trained
#: without ``weight_decay`` (`default_reg` otherwise uses the model's own): the
#: tuned ``weight_decay`` of config.yaml's dot models. A user with k ratings gets
#: ``reg = REG_PER_RATING * k`` unless `reg` is given.
REG_PER_RATING = 0.15
#: MLP fold-in: Adam steps, learning rate, and L2 on the row per rating (an mlp
#: trains without weight_decay; a small pull keeps a row fitted to a few ratings
#: from running off; 0 and 0.1 per rating gave validation RMSEs within 0.004).
MLP_STEPS = 300
MLP_LR = 0.05
MLP_REG_PER_RATING = 0.01


@contextlib.contextmanager
def one_thread():
    """Run torch with one intra-op thread inside the block, then restore the count.

    One user's fold-in or list is a few hundred small operations; with several
    OpenMP threads each one waits at a barrier for all of them, which on a busy
    machine is most of the time (the MLP fold-in of 50 ratings took 3.6 s with
    2 threads beside a training run, 0.17 s with 1).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class UserScores:
    """One user's scores for every movie, independent of the model they came from.

    Attributes
    ----------
    raw : numpy.ndarray, shape (n_movies,)
        The argument of the output scale, global offset included: ``offset +
        b + c_j + x . v_j`` for the dot family. Ranking on it is ranking on
        the prediction (the scale is monotone).
    y_range : (float, float) or None
        The model's output bounds; `rating` maps `raw` through them.
    parts : dict or None
        Dot family: ``global`` (the offset, a float), ``user_bias`` (float),
        ``movie_bias`` and ``factor`` (arrays over movies); they add up to
        `raw`. None for the MLP, whose score does not split.
    vector : numpy.ndarray
        The user's embedding row (fitted, or the trained one).
    bias : float or None
        The user's bias (dot family).
    method : str
        How the row was obtained (``trained``, ``ridge``, ``ridge+gauss-newton``, ``adam``).
    """

    raw: np.ndarray
    y_range: tuple | None
    parts: dict | None
    vector: np.ndarray
    bias: float | None
    method: str

    def rating(self, movies=None):
        """Predicted ratings (of `movies`, indices; default every movie)."""
        raw = self.raw if movies is None else self.raw[np.asarray(movies, dtype=np.int64)]
        return output_scale(raw, self.y_range)

    def part_table(self, movies):
        """The parts of the score of `movies` as equal-length arrays (dot family only)."""
        if self.parts is None:
            raise ValueError(f"a {self.method} score of an MLP does not split into parts")
        movies = np.asarray(movies, dtype=np.int64)
        n = len(movies)
        return {
            "global": np.full(n, self.parts["global"]),
            "user_bias": np.full(n, self.parts["user_bias"]),
            "movie_bias": self.parts["movie_bias"][movies],
            "factor": self.parts["factor"][movies],
        }


def _tables(model):
    """The dot tables and output settings as float64 numpy arrays."""
    user_f, movie_f, user_b, movie_b = (
        t.detach().cpu().double().numpy() for t in dot_tables(model)
    )
    return user_f, movie_f, user_b, movie_b, float(model.output.offset), model.output.y_range


def dot_scores(offset, vector, bias, movie_factors, movie_bias, y_range, method):
    """`UserScores` of a dot-family user row against every movie."""
    factor = np.asarray(movie_factors, dtype=np.float64) @ np.asarray(vector, dtype=np.float64)
    movie_bias = np.asarray(movie_bias, dtype=np.float64)
    parts = {
        "global": float(offset),
        "user_bias": float(bias),
        "movie_bias": movie_bias,
        "factor": factor,
    }
    return UserScores(
        raw=parts["global"] + parts["user_bias"] + movie_bias + factor,
        y_range=y_range,
        parts=parts,
        vector=np.asarray(vector, dtype=np.float64),
        bias=float(bias),
        method=method,
    )


@torch.no_grad()
def trained_user(model, user):
    """`UserScores` of a user the model was trained on (row `user`), every movie scored.

    The same numbers `recommend.ModelScorer` ranks by, in float64 and with the
    dot family's parts, so a list can show why a movie is on it.
    """
    user = int(user)
    n_users = model.user_emb.num_embeddings
    if not 0 <= user < n_users:
        raise ValueError(f"user index {user} is outside the model's [0, {n_users})")
    if dot_tables(model) is not None:
        user_f, movie_f, user_b, movie_b, offset, y_range = _tables(model)
        return dot_scores(offset, user_f[user], user_b[user], movie_f, movie_b, y_range, "trained")
    row = model.user_emb.weight[user]
    return _mlp_scores(model, row, "trained")


def _mlp_score(model, row, movies=None):
    """The MLP's score before its output scale (and its offset) for one user row."""
    movie_emb = model.movie_emb.weight if movies is None else model.movie_emb.weight[movies]
    x = torch.cat([row.expand(movie_emb.shape[0], -1), movie_emb], dim=1)
    return model.layers(x).squeeze(1)


def _mlp_scores(model, row, method):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            raw = (_mlp_score(model, row.detach()) + model.output.offset).double().numpy()
    finally:
        model.train(was_training)
    return UserScores(
        raw=raw,
        y_range=model.output.y_range,
        parts=None,
        vector=row.detach().double().numpy().copy(),
        bias=None,
        method=method,
    )


def check_ratings(model, movies, ratings):
    """The user's (movie index, rating) pairs as int64 / float64 arrays, checked.

    Raises
    ------
    ValueError
        If there are none, the lengths differ, an index is outside the
        model's movies, or a rating is not finite.
    """
    movies = np.asarray(movies, dtype=np.int64).reshape(-1)
    ratings = np.asarray(ratings, dtype=np.float64).reshape(-1)
    if movies.size == 0:
        raise ValueError("folding in a user needs at least one rating, got none")
    if movies.shape != ratings.shape:
        raise ValueError(
            f"need one rating per movie, got {movies.size} movies, {ratings.size} ratings"
        )
    n_movies = model.movie_emb.num_embeddings
    bad = np.flatnonzero((movies < 0) | (movies >= n_movies))
    if bad.size:
        raise ValueError(
            f"rating {int(bad[0])}: movie index {movies[bad[0]]} is outside the model's "
            f"[0, {n_movies})"
        )
    bad = np.flatnonzero(~np.isfinite(ratings))
    if bad.size:
        raise ValueError(f"rating {int(bad[0])}: {ratings[bad[0]]} is not a finite number")
    return movies, ratings


def default_reg(n_ratings, weight_decay=None):
    """Training's L2 on a row that `n_ratings` ratings use: ``weight_decay * n_ratings``.

    Training penalises a row once per use (`movierec.training`), so the total
    pull towards 0 grows with the user's ratings as the squared error does;
    folding in with the model's own ``weight_decay`` solves the problem
    training solved for each trained row. On ml-latest-small (dot) a user
    folded in from their training ratings gets back their trained row: the
    median correlation of the two rows' scores over all movies is 0.9997.
    A model trained without one (0 or
    None) gets `REG_PER_RATING`, since a row fitted to a few ratings without
    any pull towards 0 follows their noise.
    """
    per_rating = float(weight_decay) if weight_decay else REG_PER_RATING
    return per_rating * int(n_ratings)


def fold_in_dot(model, movies, ratings, reg=None, weight_decay=None, refine=True, eps=EPS):
    """Fold a new user into a dot-family model: ridge in the raw domain, then Gauss-Newton.

    Parameters
    ----------
    model : DotModel or HybridModel
        Trained; nothing in it changes.
    movies, ratings : arrays
        The user's ratings: movie indices (rows of movies.parquet) and ratings.
    reg : float, optional
        L2 strength on ``x`` and ``b``; default ``default_reg(len(ratings), weight_decay)``.
    weight_decay : float, optional
        The model's training ``weight_decay`` (model.json settings), for the default `reg`.
    refine : bool
        Bounded models only: finish with `refine_bounded` on the squared
        rating error, the loss the model was trained with. The closed form
        fits logits, which weights a rating near a bound of ``y_range`` as
        much as one in the middle although the sigmoid is flat there. On
        ml-latest-small (the dot model; every user folded in from k of their
        training ratings, scored on their 10,084 validation ratings) the
        refinement lowers the RMSE by 0.015 at k = 5 and 10 and by 0.008 at
        k = 20 (paired 95% intervals all below 0), which is where a new user
        is; from all their training ratings both give the trained rows' RMSE
        (0.8414 and 0.8416 against 0.8416).
    eps : float
        Clip of the bounded target fraction (`raw_targets`).

    Returns
    -------
    UserScores
    """
    movies, ratings = check_ratings(model, movies, ratings)
    _user_f, movie_f, _user_b, movie_b, offset, y_range = _tables(model)
    reg = default_reg(len(ratings), weight_decay) if reg is None else float(reg)
    targets = raw_targets(ratings, movie_b[movies], offset, y_range, eps)
    x, b = ridge_solve(movie_f[movies], targets, reg)
    method = "ridge"
    if refine and y_range is not None:
        design = design_matrix(movie_f[movies])
        w, taken = refine_bounded(
            np.append(x, b), design, offset + movie_b[movies], ratings, reg, y_range
        )
        x, b = w[:-1], float(w[-1])
        method = "ridge+gauss-newton"
        log.debug("fold-in: %d Gauss-Newton step(s) on %d ratings", taken, len(ratings))
    return dot_scores(offset, x, b, movie_f, movie_b, y_range, method)


def fold_in_mlp(model, movies, ratings, reg=None, steps=MLP_STEPS, lr=MLP_LR, seed=0):
    """Fold a new user into an MLP: Adam on a new ``user_emb`` row, network frozen.

    The loss is ``sum_j (pred_j - r_j)^2 + reg |e|^2`` over the user's
    ratings, ``pred`` the network's output (dropout off, as at prediction
    time). The row starts as a new row of training would (normal, sd
    `models.INIT_STD`, from `seed`) and takes `steps` full-batch Adam steps:
    no closed form exists, and a fixed budget keeps the result reproducible.
    On ml-latest-small (the mlp; 100 users folded in from their training
    ratings, scored on their validation ratings) the folded-in rows give an
    RMSE of 0.847, the trained rows 0.855 (trained under dropout, they are
    not the best rows for the network at prediction time).

    Parameters
    ----------
    reg : float, optional
        Default ``MLP_REG_PER_RATING * len(ratings)``.

    Returns
    -------
    UserScores
        ``parts`` is None: an MLP's score does not split into additive parts.
    """
    from movierec.models import INIT_STD

    movies, ratings = check_ratings(model, movies, ratings)
    reg = MLP_REG_PER_RATING * len(ratings) if reg is None else float(reg)
    generator = torch.Generator().manual_seed(int(seed))
    dim = model.user_emb.embedding_dim
    row = (torch.randn(dim, generator=generator) * INIT_STD).requires_grad_(True)
    movie_t = torch.from_numpy(movies)
    rating_t = torch.from_numpy(ratings.astype(np.float32))
    optimizer = torch.optim.Adam([row], lr=float(lr))
    was_training = model.training
    params = list(model.parameters())
    frozen = [p.requires_grad for p in params]
    model.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        with one_thread():
            for _ in range(int(steps)):
                optimizer.zero_grad()
                pred = model.output(_mlp_score(model, row, movie_t))
                loss = ((pred - rating_t) ** 2).sum() + reg * (row * row).sum()
                loss.backward()
                optimizer.step()
    finally:
        for p, flag in zip(params, frozen, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)
    return _mlp_scores(model, row, "adam")


def fold_in(model, movies, ratings, reg=None, weight_decay=None, seed=0):
    """Fold a new user into any trained model: `fold_in_dot` or `fold_in_mlp` by architecture.

    Parameters
    ----------
    model : torch.nn.Module
        From `checkpoint.load_model`; left unchanged.
    movies, ratings : arrays
        The user's movie indices (rows of movies.parquet) and ratings.
    reg : float, optional
        L2 on the new row (each function's default when None).
    weight_decay : float, optional
        The model's training ``weight_decay``: the dot family's default `reg` follows it.
    seed : int
        The MLP's start row (the dot family's solve is deterministic).

    Returns
    -------
    UserScores
    """
    if dot_tables(model) is not None:
        return fold_in_dot(model, movies, ratings, reg=reg, weight_decay=weight_decay)
    return fold_in_mlp(model, movies, ratings, reg=reg, seed=seed)
