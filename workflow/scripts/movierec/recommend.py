"""Top-N lists: every user's best unrated movies, scored exactly, in bounded memory.

A list ranks *all* movies the user has not rated in train or validation (the
candidates of the ranking protocol), so a block of users is scored against the
whole catalogue at once: for the dot family one matrix product ``U @ M.T``
plus the biases, for the MLP its layers over every (user, movie) pair of the
block (the first one from per-user and per-movie halves). Seen movies are set
to ``-inf`` and ``torch.topk`` keeps the best `n`. Blocks are sized so one
block's score matrix stays near `BLOCK_ELEMENTS` floats, whatever the catalogue.

The output scale of a bounded model (``y_range``: a sigmoid) is monotone, so
lists are ranked on the raw score and only the kept scores are mapped to
ratings. Baselines that score every movie the same for everyone (popularity,
a shrunk mean rating) go through the same code as a fixed score vector.
"""

import logging
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

#: Scores held at once per block (float32): 2**24 is 64 MiB for the dot family.
BLOCK_ELEMENTS = 1 << 24
#: The MLP's forward pass holds a hidden layer per pair, so its blocks are smaller:
#: a few users' pairs, or one user's whole catalogue, whose hidden layers are
#: nearer the cache (ml-latest-small's mlp, 1 thread: 2.8-3.8 s a replicate against
#: 5.9-6.3 s at 2**18 pairs; synthetic-25m's shape: 4.0-4.8 s per 100 users
#: against 6.0-6.5 s; the same lists).
MLP_BLOCK_PAIRS = 1 << 14
#: Columns of a list table, in order.
LIST_COLUMNS = ("user", "userId", "rank", "movie", "movieId", "score")


@dataclass(frozen=True)
class Seen:
    """The movies each user rated (CSR: user u's movies are ``movies[start[u]:start[u + 1]]``)."""

    start: np.ndarray
    movies: np.ndarray

    @classmethod
    def from_pairs(cls, user, movie, n_users):
        """From (user, movie) index arrays, e.g. train and validation concatenated."""
        user = np.asarray(user, dtype=np.int64)
        movie = np.asarray(movie, dtype=np.int64)
        order = np.argsort(user, kind="stable")
        counts = np.bincount(user, minlength=n_users)
        start = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=start[1:])
        return cls(start=start, movies=movie[order])

    def count(self, users):
        users = np.asarray(users, dtype=np.int64)
        return self.start[users + 1] - self.start[users]

    def rows_and_movies(self, users):
        """(row in `users`, movie) of every seen pair of the given users, for masking."""
        users = np.asarray(users, dtype=np.int64)
        counts = self.count(users)
        rows = np.repeat(np.arange(len(users)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return rows, self.movies[np.repeat(self.start[users], counts) + offsets]


def dot_tables(model):
    """(user vectors, movie vectors, user bias, movie bias) of a dot-family model, else None.

    The model's own `dot_tables` (dot, hybrid: its dot head, implicit: its
    composed vectors); an mlp has none and is scored pair by pair.
    """
    tables = getattr(model, "dot_tables", None)
    return None if tables is None else tables()


@torch.no_grad()
def _first_layer_halves(model):
    """The MLP's first Linear split by input: ``W [u; m] + b = (W_u u + b) + W_m m``.

    Computed once per user and once per movie, so for each pair of a block that
    layer is one addition of two rows instead of a matrix-vector product (the
    other layers run as before; the same scores to float rounding).
    """
    first = model.layers[0]
    f = model.user_emb.embedding_dim
    by_user = model.user_emb.weight @ first.weight[:, :f].T + first.bias
    by_movie = model.movie_emb.weight @ first.weight[:, f:].T
    return by_user, by_movie


class ModelScorer:
    """Raw scores of a trained module for a block of users against every movie.

    `rank_scores` is monotone in the prediction (what the list is sorted by);
    `to_rating` maps kept raw scores to predicted ratings.
    """

    def __init__(self, model):
        self.model = model
        self.tables = dot_tables(model)
        self.n_movies = model.movie_emb.num_embeddings
        self.device = model.movie_emb.weight.device
        self.block_elements = BLOCK_ELEMENTS if self.tables is not None else MLP_BLOCK_PAIRS
        if self.tables is None:
            self.first_layer = _first_layer_halves(model)

    def rank_scores(self, users):
        if self.tables is not None:
            user_f, movie_f, user_b, movie_b = self.tables
            scores = user_f[users] @ movie_f.T
            return scores.add_(user_b[users].unsqueeze(1)).add_(movie_b.unsqueeze(0))
        by_user, by_movie = self.first_layer
        hidden = by_user[users].unsqueeze(1) + by_movie.unsqueeze(0)  # the first Linear's output
        out = self.model.layers[1:](hidden.view(-1, hidden.shape[-1]))
        return self.model.output(out.view(len(users), self.n_movies))

    def to_rating(self, scores):
        if self.tables is not None:
            return self.model.output(scores)
        return scores


class FixedScorer:
    """The same score vector for every user (popularity, shrunk mean rating)."""

    def __init__(self, scores):
        self.scores = torch.as_tensor(np.asarray(scores, dtype=np.float64))
        self.n_movies = len(self.scores)
        self.device = self.scores.device
        self.block_elements = BLOCK_ELEMENTS

    def rank_scores(self, users):
        return self.scores.unsqueeze(0).repeat(len(users), 1)

    def to_rating(self, scores):
        return scores


@torch.no_grad()
def top_n(scorer, seen, n, users=None):
    """The best `n` unseen movies of each user, best first.

    Parameters
    ----------
    scorer : ModelScorer or FixedScorer
    seen : Seen
        Movies to leave out per user (train and validation ratings).
    n : int
        List length; a user with fewer unseen movies gets them all.
    users : array of int, optional
        User indices to score (default every user of `seen`).

    Returns
    -------
    dict of numpy arrays
        ``user``, ``rank`` (1 = best), ``movie``, ``score`` (the prediction),
        users in the given order and ranks ascending within a user.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"list length n must be at least 1, got {n}")
    if users is None:
        users = np.arange(len(seen.start) - 1)
    users = np.asarray(users, dtype=np.int64)
    n_movies = scorer.n_movies
    keep = min(n, n_movies)
    block = max(1, scorer.block_elements // n_movies)
    out = {name: [] for name in ("user", "rank", "movie", "score")}
    for begin in range(0, len(users), block):
        chunk = users[begin : begin + block]
        scores = scorer.rank_scores(torch.from_numpy(chunk).to(scorer.device))
        rows, movies = (torch.from_numpy(a).to(scorer.device) for a in seen.rows_and_movies(chunk))
        scores[rows, movies] = -torch.inf
        best, movie = torch.topk(scores, keep, dim=1)
        valid = torch.isfinite(best).cpu().numpy()
        rating = scorer.to_rating(best).cpu().numpy()
        movie = movie.cpu()
        out["user"].append(np.repeat(chunk, keep).reshape(-1, keep)[valid])
        out["rank"].append(np.tile(np.arange(1, keep + 1), (len(chunk), 1))[valid])
        out["movie"].append(movie.numpy()[valid])
        out["score"].append(rating[valid])
    return {
        name: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        for name, parts in out.items()
    }


def popularity_scores(train_movie, n_movies):
    """Training ratings per movie, ties broken towards the lower movie index (deterministic)."""
    counts = np.bincount(np.asarray(train_movie, dtype=np.int64), minlength=n_movies)
    return counts + 0.5 * (1.0 - np.arange(n_movies) / n_movies)


def shrunk_mean_scores(train_movie, train_rating, n_movies, shrinkage):
    """Each movie's mean training rating pulled towards the global mean by `shrinkage` ratings.

    ``(sum of ratings + shrinkage * global mean) / (count + shrinkage)``: a
    movie rated 5 once does not top the list; with shrinkage 0 it would.
    """
    train_movie = np.asarray(train_movie, dtype=np.int64)
    train_rating = np.asarray(train_rating, dtype=np.float64)
    sums = np.bincount(train_movie, weights=train_rating, minlength=n_movies)
    counts = np.bincount(train_movie, minlength=n_movies)
    mean = float(train_rating.mean()) if train_rating.size else 0.0
    weight = counts + shrinkage
    # A movie without ratings (and no shrinkage) gets the global mean, not 0/0.
    return np.divide(sums + shrinkage * mean, weight, out=np.full(n_movies, mean), where=weight > 0)


def list_table(lists, user_ids, movie_ids):
    """A list table (pyarrow) with the release's userId and movieId beside the indices."""
    import pyarrow as pa

    from movierec.arrays import to_arrow

    columns = {
        "user": lists["user"].astype(np.int32),
        "userId": np.asarray(user_ids)[lists["user"]],
        "rank": lists["rank"].astype(np.int32),
        "movie": lists["movie"].astype(np.int32),
        "movieId": np.asarray(movie_ids)[lists["movie"]],
        "score": lists["score"].astype(np.float32),
    }
    return pa.table({name: to_arrow(columns[name]) for name in LIST_COLUMNS})


def read_seen(train_path, val_path, n_users):
    """What each user rated in train and validation: the movies their lists leave out."""
    from movierec.evaluation import read_part

    train = read_part(train_path, ("user", "movie"))
    val = read_part(val_path, ("user", "movie"))
    return Seen.from_pairs(
        np.concatenate([train["user"], val["user"]]),
        np.concatenate([train["movie"], val["movie"]]),
        n_users,
    )


def write_lists(path, lists, users_path, movies_path):
    """A list table with ids, as Parquet, written atomically."""
    import pyarrow.parquet as pq

    from movierec import atomic
    from movierec.arrays import read_parquet, to_numpy

    user_ids = to_numpy(read_parquet(users_path, ["userId"]).column(0))
    movie_ids = to_numpy(read_parquet(movies_path, ["movieId"]).column(0))
    table = list_table(lists, user_ids, movie_ids)
    with atomic.atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return table


def recommend_replicates(*, model_pts, outputs, train_path, val_path, users_path, movies_path,
                         n, threads=1):  # fmt: skip
    """What rule recommend_model runs: the top-`n` list of every user, per trained replicate."""
    import time

    from movierec import checkpoint

    if len(model_pts) != len(outputs):
        raise ValueError(f"need one output per checkpoint, got {len(model_pts)} and {len(outputs)}")
    torch.set_num_threads(int(threads))
    seen = None
    for model_pt, out in zip(model_pts, outputs, strict=True):
        model, meta = checkpoint.load_model(model_pt)
        if seen is None:
            seen = read_seen(train_path, val_path, meta["n_users"])
        started = time.perf_counter()
        lists = top_n(ModelScorer(model), seen, n)
        seconds = time.perf_counter() - started
        write_lists(out, lists, users_path, movies_path)
        log.info(
            "%s: top %d of %d users x %d movies in %.1f s -> %s",
            model_pt, n, meta["n_users"], meta["n_movies"], seconds, out,
        )  # fmt: skip


def recommend_baseline(*, baseline, output, train_path, val_path, users_path, movies_path, n,
                       shrinkage=None):  # fmt: skip
    """What rule recommend_baseline runs: `popularity` or `shrunk_mean` lists for every user."""
    import pyarrow.parquet as pq

    from movierec.evaluation import read_part

    n_users = pq.ParquetFile(users_path).metadata.num_rows
    n_movies = pq.ParquetFile(movies_path).metadata.num_rows
    train = read_part(train_path)
    if baseline == "popularity":
        scores = popularity_scores(train["movie"], n_movies)
    elif baseline == "shrunk_mean":
        scores = shrunk_mean_scores(train["movie"], train["rating"], n_movies, float(shrinkage))
    else:
        raise ValueError(f"unknown list baseline {baseline!r}; known: popularity, shrunk_mean")
    lists = top_n(FixedScorer(scores), read_seen(train_path, val_path, n_users), n)
    write_lists(output, lists, users_path, movies_path)
    log.info("%s: top %d of %d users -> %s", baseline, n, n_users, output)
