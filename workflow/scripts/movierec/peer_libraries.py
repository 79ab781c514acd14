"""Each peer library called through its own API: our parts in, its predictions out.

Surprise gets a ``Dataset`` built from our training part and predicts per row;
myFM gets sparse one-hot (and, for the implicit peer, relation-block) inputs
built from the same part. `fit_surprise` and `fit_myfm` return the same four
things, so `movierec.peers.fit_peer` scores every peer alike; everything that
knows a library's argument names and input layout is here, and nothing else.
"""

import inspect
import time
import warnings

import numpy as np

from movierec import peer_lists


def import_myfm():
    """``myfm``, without the deprecation warning its ``import pkg_resources`` raises (0.4.0)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
        import myfm
    return myfm


def constructor_defaults(cls):
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
    defaults = constructor_defaults(cls)
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
    quiet = {"verbose": False} if "verbose" in constructor_defaults(cls) else {}
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
    effective = constructor_defaults(myfm.MyFMRegressor)
    effective.update(rank=int(settings["rank"]), random_seed=int(seed))
    effective.update(
        n_iter=int(settings["n_iter"]),
        n_kept_samples=int(settings["n_kept_samples"]),
        implicit=peer.implicit,
    )
    return predict, grid, effective, fit_seconds
