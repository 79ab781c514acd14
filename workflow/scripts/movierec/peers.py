"""The field's reference libraries on our split files, scored like our models.

A peer is one algorithm of a published library (Surprise, myFM), called
through that library's own API on exactly our ``train`` part; it predicts the
``val`` and ``test`` parts, and its ``metrics.json`` and
``test_predictions.parquet`` have the fields and layout of our models' (see
`movierec.evaluation`), so reports can set them side by side and compare them
on the same test rows. Nothing here re-implements an algorithm: this module
only turns our parquet parts into each library's input and reads its
predictions back.

* Surprise (``surprise_*``): ``Dataset.load_from_df`` with a ``Reader`` on our
  rating scale, ``build_full_trainset``, ``algo.fit``, ``algo.predict`` per
  row. A user or movie training never saw is predicted the way the algorithm
  does it (the baseline of the side it knows, or the training mean).
* myFM (``myfm_*``): ``MyFMRegressor`` (Gibbs sampling) as in myFM's MovieLens
  examples. ``myfm_bmf`` one-hot encodes user and movie (an id training never
  saw is an all-zero row, as ``OneHotEncoder(handle_unknown="ignore")`` fitted
  on train makes it); ``myfm_bfm_implicit`` adds each user's set of rated
  movies and each movie's set of raters, scaled by ``1 / sqrt(size)``, taken
  from the training part only and given as ``RelationBlock`` inputs (each
  user's and each movie's row is stored once instead of once per rating).
"""

import inspect
import logging
import math
import time
import warnings
from typing import NamedTuple

import numpy as np

from movierec import atomic, evaluation, peer_lists

log = logging.getLogger(__name__)


class Peer(NamedTuple):
    """How a peer is built: its library, the algorithm's name there, and its inputs."""

    library: str
    algorithm: str
    #: myFM only: add the implicit user and movie relation features.
    implicit: bool = False


#: Peer name -> how it is built. Its settings are its block under ``peers:`` in the config.
PEERS = {
    "surprise_baseline": Peer("surprise", "BaselineOnly"),
    "surprise_svd": Peer("surprise", "SVD"),
    "surprise_svdpp": Peer("surprise", "SVDpp"),
    "surprise_knn_baseline": Peer("surprise", "KNNBaseline"),
    "myfm_bmf": Peer("myfm", "MyFMRegressor"),
    "myfm_bfm_implicit": Peer("myfm", "MyFMRegressor", implicit=True),
}


def import_myfm():
    """``myfm``, without the deprecation warning its ``import pkg_resources`` raises (0.4.0)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
        import myfm
    return myfm


def library_version(library):
    """The installed version of a peer's library."""
    if library == "surprise":
        import surprise

        return surprise.__version__
    if library == "myfm":
        return import_myfm().__version__
    raise ValueError(f"unknown peer library {library!r}; expected surprise or myfm")


def _constructor_defaults(cls):
    """A class's keyword arguments with their defaults (no ``*args``/``**kwargs``)."""
    out = {}
    for name, param in inspect.signature(cls).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        out[name] = None if param.default is param.empty else param.default
    return out


def surprise_arguments(algorithm, options, seed):
    """Keyword arguments of a Surprise algorithm: its defaults, `options`, and the seed.

    Parameters
    ----------
    algorithm : str
        A class of ``surprise`` (``SVD``, ``KNNBaseline``, ...).
    options : dict
        Keyword arguments of that class; ``{}`` keeps all of the library's defaults.
    seed : int or None
        ``random_state`` of an algorithm that draws random numbers (SVD, SVD++);
        must be None for one that does not.

    Returns
    -------
    dict
        Every argument the constructor gets, defaults included (the effective
        settings written to metrics.json); ``verbose``, which only prints, is
        left out and set off by `fit_surprise`.
    """
    import surprise

    cls = getattr(surprise, algorithm)
    defaults = _constructor_defaults(cls)
    if "random_state" in options:
        raise ValueError(
            f"surprise.{algorithm}: give random_state as the peer's seed, not in its options"
        )
    known = set(defaults) - {"verbose", "random_state"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"surprise.{algorithm} has no option(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    kwargs = {k: v for k, v in defaults.items() if k != "verbose"}
    kwargs.update(options)
    if "random_state" in defaults:
        if seed is None:
            raise ValueError(f"surprise.{algorithm} draws random numbers: give the peer a seed")
        kwargs["random_state"] = int(seed)
    elif seed is not None:
        raise ValueError(f"surprise.{algorithm} draws no random numbers: remove the peer's seed")
    return kwargs


def fit_surprise(peer, train, settings, seed, rating_scale, n_users, n_movies, **_):
    """Fit a Surprise algorithm on the training part: (predict, grid, settings, fit seconds).

    ``predict(part)`` calls ``algo.predict(user, movie)`` per row (clipped to
    the scale by Surprise itself, its default); ``grid(users)`` scores every
    movie for those users (`movierec.peer_lists`).
    """
    import pandas as pd
    import surprise

    kwargs = surprise_arguments(peer.algorithm, settings["options"], seed)
    reader = surprise.Reader(rating_scale=tuple(float(v) for v in rating_scale))
    frame = pd.DataFrame(
        {"user": train["user"], "movie": train["movie"], "rating": train["rating"]}
    )
    trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()
    cls = getattr(surprise, peer.algorithm)
    quiet = {"verbose": False} if "verbose" in _constructor_defaults(cls) else {}
    algo = cls(**kwargs, **quiet)
    start = time.perf_counter()
    algo.fit(trainset)
    fit_seconds = time.perf_counter() - start

    def predict(part):
        pairs = zip(part["user"].tolist(), part["movie"].tolist(), strict=True)
        return np.array([algo.predict(u, m).est for u, m in pairs], dtype=np.float64)

    grid = peer_lists.surprise_grid(algo, trainset, n_users, n_movies)
    return predict, grid, kwargs, fit_seconds


def train_columns(codes, size):
    """Code -> column of the codes training saw (sorted, as OneHotEncoder orders them); -1 else."""
    seen = np.unique(codes)
    columns = np.full(size, -1, dtype=np.int64)
    columns[seen] = np.arange(seen.size)
    return columns


def one_hot(codes, columns, width):
    """CSR one-hot rows of `codes` through `columns`; a code with column -1 is an all-zero row."""
    import scipy.sparse as sps

    col = columns[codes]
    rows = np.flatnonzero(col >= 0)
    data = np.ones(rows.size)
    return sps.csr_matrix((data, (rows, col[rows])), shape=(len(codes), width))


def implicit_blocks(train_user, train_movie, n_users, n_movies):
    """Rows of myFM's user and movie relation blocks, from the training pairs only.

    Row ``u`` of the user block is user u's one-hot, then the movies u rated in
    training, each ``1 / sqrt(count)``; row ``m`` of the movie block is movie
    m's one-hot, then the users who rated m in training, each ``1 /
    sqrt(count)`` (myFM's MovieLens examples, after SVD++'s implicit term).
    A user or movie training never saw has an all-zero row.

    Returns
    -------
    (scipy.sparse.csr_matrix, scipy.sparse.csr_matrix, dict)
        The user block (``n_users`` rows), the movie block (``n_movies`` rows),
        and the column layout (``user_columns``, ``movie_columns``: code ->
        column, -1 for unseen; ``n_train_users``, ``n_train_movies``).
    """
    import scipy.sparse as sps

    # The sets of pairs: a repeated pair would count once, as in the examples' dicts.
    pair = np.unique(np.asarray(train_user, np.int64) * n_movies + np.asarray(train_movie))
    user, movie = pair // n_movies, pair % n_movies
    user_columns = train_columns(user, n_users)
    movie_columns = train_columns(movie, n_movies)
    n_train_users = int(user_columns.max(initial=-1)) + 1
    n_train_movies = int(movie_columns.max(initial=-1)) + 1
    per_user = np.bincount(user, minlength=n_users)
    per_movie = np.bincount(movie, minlength=n_movies)
    implicit_user = sps.csr_matrix(
        (1 / np.sqrt(per_user[user]), (user, movie_columns[movie])),
        shape=(n_users, n_train_movies),
    )
    implicit_movie = sps.csr_matrix(
        (1 / np.sqrt(per_movie[movie]), (movie, user_columns[user])),
        shape=(n_movies, n_train_users),
    )
    user_block = sps.hstack(
        [one_hot(np.arange(n_users), user_columns, n_train_users), implicit_user], format="csr"
    )
    movie_block = sps.hstack(
        [one_hot(np.arange(n_movies), movie_columns, n_train_movies), implicit_movie],
        format="csr",
    )
    layout = {
        "user_columns": user_columns,
        "movie_columns": movie_columns,
        "n_train_users": n_train_users,
        "n_train_movies": n_train_movies,
    }
    return user_block, movie_block, layout


def fit_myfm(peer, train, settings, seed, n_users, n_movies, threads=1, **_):
    """Fit myFM's Bayesian FM on the training part: (predict, grid, settings, fit seconds).

    ``myfm_bmf``: X is [one-hot user | one-hot movie]. ``myfm_bfm_implicit``:
    no X, two ``RelationBlock``s (`implicit_blocks`), each rating pointing at
    its user's and its movie's row.
    """
    import scipy.sparse as sps

    myfm = import_myfm()
    if seed is None:
        raise ValueError("myfm draws random numbers (Gibbs sampling): give the peer a seed")
    if not 1 <= settings["n_kept_samples"] <= settings["n_iter"]:
        raise ValueError(
            f"myfm: n_kept_samples {settings['n_kept_samples']} must be in [1, n_iter "
            f"{settings['n_iter']}]: the kept samples are the last ones drawn"
        )
    y = train["rating"]
    if peer.implicit:
        user_block, movie_block, _layout = implicit_blocks(
            train["user"], train["movie"], n_users, n_movies
        )
        # Feature space: the user block's columns, then the movie block's.
        sides = (
            sps.hstack([user_block, sps.csr_matrix((n_users, movie_block.shape[1]))]),
            sps.hstack([sps.csr_matrix((n_movies, user_block.shape[1])), movie_block]),
        )

        def inputs(part):
            relations = [
                myfm.RelationBlock(part["user"].astype(np.int64), user_block),
                myfm.RelationBlock(part["movie"].astype(np.int64), movie_block),
            ]
            return None, relations
    else:
        user_columns = train_columns(train["user"], n_users)
        movie_columns = train_columns(train["movie"], n_movies)
        widths = int(user_columns.max(initial=-1)) + 1, int(movie_columns.max(initial=-1)) + 1
        sides = (
            sps.hstack(
                [
                    one_hot(np.arange(n_users), user_columns, widths[0]),
                    sps.csr_matrix((n_users, widths[1])),
                ]
            ),
            sps.hstack(
                [
                    sps.csr_matrix((n_movies, widths[0])),
                    one_hot(np.arange(n_movies), movie_columns, widths[1]),
                ]
            ),
        )

        def inputs(part):
            x = sps.hstack(
                [
                    one_hot(part["user"], user_columns, widths[0]),
                    one_hot(part["movie"], movie_columns, widths[1]),
                ],
                format="csr",
            )
            return x, []

    model = myfm.MyFMRegressor(rank=int(settings["rank"]), random_seed=int(seed))
    x, relations = inputs(train)
    start = time.perf_counter()
    model.fit(
        x,
        y,
        X_rel=relations,
        n_iter=int(settings["n_iter"]),
        n_kept_samples=int(settings["n_kept_samples"]),
    )
    fit_seconds = time.perf_counter() - start

    def predict(part):
        x, relations = inputs(part)
        return np.asarray(model.predict(x, X_rel=relations, n_workers=int(threads)), np.float64)

    grid = peer_lists.myfm_grid(model, *sides)
    effective = _constructor_defaults(myfm.MyFMRegressor)
    effective.update(rank=int(settings["rank"]), random_seed=int(seed))
    effective.update(
        n_iter=int(settings["n_iter"]),
        n_kept_samples=int(settings["n_kept_samples"]),
        implicit=peer.implicit,
    )
    return predict, grid, effective, fit_seconds


_FITTERS = {"surprise": fit_surprise, "myfm": fit_myfm}


def fit_peer(*, peer, train_path, val_path, test_path, settings, rating_scale, metrics_out,
             predictions_out, seed, threads=1, lists_out=None, users_path=None,
             movies_path=None, n=None):  # fmt: skip
    """What rule fit_peer runs: fit one peer on train, predict val and test, score both.

    Parameters
    ----------
    peer : str
        A name in `PEERS`.
    train_path, val_path, test_path : path
        The split's parts (user, movie, rating).
    settings : dict
        The peer's block under ``peers:`` without its seed: ``options`` for
        Surprise; ``rank``, ``n_iter``, ``n_kept_samples`` for myFM.
    rating_scale : (float, float)
        Predictions are clipped to it, as our models' are.
    seed : int or None
        Surprise's ``random_state`` (SVD, SVD++), myFM's ``random_seed``; None
        for an algorithm that draws nothing (BaselineOnly, KNNBaseline).
    threads : int
        Threads of myFM's prediction (its sampler and Surprise use one).
    lists_out, users_path, movies_path, n : optional
        Also write the peer's top-`n` list of every user (movies not rated in
        train or validation; `movierec.recommend`) to `lists_out`, with the
        ids of the two index files. Users and movies are those of the index.

    Returns
    -------
    dict
        What ``metrics.json`` holds: ``peer``, ``library``, ``library_version``,
        ``algorithm``, ``settings`` (every argument the algorithm got, its
        defaults included), ``fit_seconds``, ``predict_seconds``, ``val_rmse``,
        ``val_mae``, ``n_val`` and, from `movierec.evaluation.test_metrics`,
        ``test_rmse``, ``test_mae``, ``n_test``, ``cold``.
    """
    if peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")
    spec = PEERS[peer]
    low, high = (float(v) for v in rating_scale)
    train, val, test = (evaluation.read_part(p) for p in (train_path, val_path, test_path))
    if train["rating"].size == 0:
        raise ValueError(f"{train_path}: no training ratings")
    parts = (train, val, test)
    n_users = max(int(p["user"].max(initial=-1)) for p in parts) + 1
    n_movies = max(int(p["movie"].max(initial=-1)) for p in parts) + 1
    if lists_out is not None:  # every user and movie of the index gets a score
        import pyarrow.parquet as pq

        n_users = max(n_users, pq.ParquetFile(users_path).metadata.num_rows)
        n_movies = max(n_movies, pq.ParquetFile(movies_path).metadata.num_rows)
    for path, part in zip((train_path, val_path, test_path), parts, strict=True):
        for name in ("user", "movie"):
            if part[name].size and part[name].min() < 0:
                raise ValueError(f"{path}: negative {name} index {part[name].min()}")
    log.info(
        "%s: %s.%s on %d training ratings (%d users, %d movies in the index range)",
        peer, spec.library, spec.algorithm, train["rating"].size, n_users, n_movies,
    )  # fmt: skip
    predict, grid, effective, fit_seconds = _FITTERS[spec.library](
        spec,
        train,
        settings,
        seed,
        rating_scale=(low, high),
        n_users=n_users,
        n_movies=n_movies,
        threads=threads,
    )
    start = time.perf_counter()
    val_pred = np.clip(predict(val), low, high)
    test_pred = np.clip(predict(test), low, high)
    predict_seconds = time.perf_counter() - start
    val_scores = evaluation.error_metrics(val_pred, val["rating"])
    cold_user, cold_movie = evaluation.cold_masks(
        train["user"], train["movie"], test["user"], test["movie"]
    )
    metrics = {
        "peer": peer,
        "library": spec.library,
        "library_version": library_version(spec.library),
        "algorithm": spec.algorithm,
        "settings": effective,
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "val_rmse": _or_none(val_scores["rmse"]),
        "val_mae": _or_none(val_scores["mae"]),
        "n_val": int(val["rating"].size),
    }
    metrics.update(evaluation.test_metrics(test_pred, test["rating"], cold_user, cold_movie))
    if lists_out is not None:
        from movierec import recommend

        start = time.perf_counter()
        seen = recommend.read_seen(train_path, val_path, n_users)
        lists = recommend.top_n(peer_lists.GridScorer(grid, n_movies), seen, n)
        recommend.write_lists(lists_out, lists, users_path, movies_path)
        metrics["list_seconds"] = time.perf_counter() - start
    evaluation.write_predictions(predictions_out, test_pred)
    atomic.write_json(metrics_out, metrics)
    log.info(
        "%s: fit %.1f s; val RMSE %.4f, test RMSE %.4f, MAE %.4f on %d rows",
        peer, fit_seconds, val_scores["rmse"], metrics["test_rmse"], metrics["test_mae"],
        metrics["n_test"],
    )  # fmt: skip
    return metrics


def _or_none(value):
    return None if math.isnan(value) else value
