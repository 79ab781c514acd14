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

The calls into each library are in `movierec.peer_libraries`; this module
names the peers and scores them.
"""

import logging
import math
import time
from typing import NamedTuple

import numpy as np

from movierec import atomic, evaluation, peer_lists
from movierec.peer_libraries import fit_myfm, fit_surprise, import_myfm

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


def library_version(library):
    """The installed version of a peer's library."""
    if library == "surprise":
        import surprise

        return surprise.__version__
    if library == "myfm":
        return import_myfm().__version__
    raise ValueError(f"unknown peer library {library!r}; expected surprise or myfm")


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
