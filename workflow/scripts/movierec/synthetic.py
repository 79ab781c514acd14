"""Synthetic MovieLens-like releases with a known (planted) answer.

Real releases cannot tell us whether a learned movie bias or embedding axis is
*right*; a synthetic release can, because we chose the truth. `generate` writes
a release in the GroupLens CSV layout (``ratings.csv``, ``movies.csv``) so that
it flows through the same index rule as a download, plus the planted truth
(``planted_movies.csv``, ``planted_users.csv``, ``planted.json``) that report
tests compare against.

The model behind a rating of user u for movie m::

    r = clip(round_half(mean + b_u + b_m + p_u . q_m + noise), 0.5, 5.0)

with user activity and movie popularity drawn from lognormal weights (heavy
tails, as in MovieLens), every user and every movie rated at least once, and
unique (user, movie) pairs, so the indexed counts equal the spec exactly.
Everything is vectorised numpy; the same spec gives the same bytes. How the
(user, movie) pairs are drawn is in `movierec.synthetic_pairs`.
"""

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from movierec.synthetic_pairs import sample_pairs

log = logging.getLogger(__name__)

#: The generator's settings by type; the schema gives each its range and default.
INTEGER_KEYS = ("n_users", "n_movies", "n_ratings", "n_factors", "seed", "min_user_ratings",
                "n_classics")  # fmt: skip
FLOAT_KEYS = (
    "mean_rating", "user_bias_sd", "movie_bias_sd", "factor_sd", "factor_decay", "noise_sd",
    "user_activity_sigma", "movie_popularity_sigma", "movie_popularity_floor",
    "bias_popularity_corr", "classic_bias",
)  # fmt: skip
GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
HALF_STARS = tuple(f"{x / 2:.1f}" for x in range(1, 11))  # "0.5" .. "5.0"
CSV_CHUNK_ROWS = 1_000_000
T_START, T_END = 946_684_800, 1_672_531_200  # 2000-01-01 .. 2023-01-01 (UTC)


def resolve_spec(spec):
    """A complete generator spec as `generate` uses it: typed, and with counts that can be met.

    `spec` is a ``synthetic:`` block as the config schema validated it and
    filled in its defaults (the schema checks each setting's type and range;
    the library does not repeat that). What one setting cannot say alone is
    checked here.

    Raises
    ------
    ValueError
        On counts that cannot be met (more classics than movies, fewer ratings
        than users or movies, more than half of all pairs).
    """
    out = dict(spec)
    for key in INTEGER_KEYS:
        out[key] = int(out[key])
    for key in FLOAT_KEYS:
        out[key] = float(out[key])
    if out["n_classics"] > out["n_movies"]:
        raise ValueError(
            f"synthetic spec: n_classics={out['n_classics']} exceeds n_movies={out['n_movies']}"
        )
    n_users, n_movies, n_ratings = out["n_users"], out["n_movies"], out["n_ratings"]
    if n_ratings < max(n_users, n_movies):
        raise ValueError(
            f"synthetic spec: n_ratings={n_ratings} is fewer than n_users={n_users} or "
            f"n_movies={n_movies}; every user and movie needs at least one rating"
        )
    if n_ratings > n_users * n_movies // 2:
        raise ValueError(
            f"synthetic spec: n_ratings={n_ratings} exceeds half of all "
            f"{n_users} x {n_movies} (user, movie) pairs; expected a sparse matrix"
        )
    return out


def _movie_ids(rng, n_movies):
    """Increasing movieIds from 1 with gaps, so the index step has work to do."""
    return 1 + np.cumsum(rng.geometric(0.6, n_movies)) - 1


def plant(spec, rng):
    """Draw activity, popularity, biases and factors (the planted truth)."""
    n_users, n_movies, k = spec["n_users"], spec["n_movies"], spec["n_factors"]
    activity = rng.lognormal(0.0, spec["user_activity_sigma"], n_users)
    z_pop = rng.standard_normal(n_movies)
    popularity = np.exp(spec["movie_popularity_sigma"] * z_pop) + spec["movie_popularity_floor"]
    rho = spec["bias_popularity_corr"]
    movie_bias = spec["movie_bias_sd"] * (
        rho * z_pop + np.sqrt(1 - rho**2) * rng.standard_normal(n_movies)
    )
    # A few "classics", drawn ∝ popularity, stand clearly above the rest
    # (bias = classic_bias + |ordinary draw|), so that "the best movies" is a
    # question with a recoverable answer rather than a near-tie in a normal tail.
    classics = rng.choice(
        n_movies, spec["n_classics"], replace=False, p=popularity / popularity.sum()
    )
    movie_bias[classics] = spec["classic_bias"] + np.abs(movie_bias[classics])
    user_bias = spec["user_bias_sd"] * rng.standard_normal(n_users)
    user_factors = rng.standard_normal((n_users, k))
    user_factors -= user_factors.mean(axis=0)  # so movie biases stay identifiable
    scales = spec["factor_sd"] * spec["factor_decay"] ** np.arange(k)
    movie_factors = rng.standard_normal((n_movies, k)) * scales
    return {
        "activity": activity,
        "popularity": popularity,
        "movie_bias": movie_bias,
        "user_bias": user_bias,
        "user_factors": user_factors,
        "movie_factors": movie_factors,
    }


def rate(spec, truth, user, movie, rng, chunk=CSV_CHUNK_ROWS):
    """Half-star ratings (as indices 0..9 into HALF_STARS) for the given pairs."""
    out = np.empty(len(user), dtype=np.int8)
    for start in range(0, len(user), chunk):
        u, m = user[start : start + chunk], movie[start : start + chunk]
        score = (
            spec["mean_rating"]
            + truth["user_bias"][u]
            + truth["movie_bias"][m]
            + np.einsum("ij,ij->i", truth["user_factors"][u], truth["movie_factors"][m])
            + spec["noise_sd"] * rng.standard_normal(len(u))
        )
        out[start : start + chunk] = np.clip(np.rint(score * 2), 1, 10) - 1
    return out


def _write_csv(path, header, table):
    """GroupLens style CSV: plain header, no quotes (no field holds a comma)."""
    with open(path, "wb") as f:
        f.write((",".join(header) + "\n").encode())
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        with pacsv.CSVWriter(f, table.schema, write_options=options) as writer:
            for batch in table.to_batches(max_chunksize=CSV_CHUNK_ROWS):
                writer.write_batch(batch)


def _movies_table(rng, movie_ids):
    n = len(movie_ids)
    years = 1920 + np.floor(103 * rng.beta(4.0, 1.5, n)).astype(int)  # mostly recent
    has_year = rng.random(n) >= 0.01  # a few titles without a year, as in MovieLens
    titles = [
        f"Synthetic Movie {i} ({y})" if keep else f"Synthetic Movie {i}"
        for i, y, keep in zip(movie_ids.tolist(), years.tolist(), has_year.tolist(), strict=True)
    ]
    n_genres = rng.integers(1, 4, n)
    picks = np.argsort(rng.random((n, len(GENRES))), axis=1)
    genres = [
        "|".join(sorted(GENRES[j] for j in row[:c])) for row, c in zip(picks, n_genres, strict=True)
    ]
    no_genre = rng.random(n) < 0.005
    genres = ["(no genres listed)" if flag else g for g, flag in zip(genres, no_genre, strict=True)]
    return pa.table({"movieId": pa.array(movie_ids, pa.int64()), "title": titles, "genres": genres})


def _planted_table(id_name, ids, bias, factors):
    columns = {id_name: pa.array(ids, pa.int64()), "bias": pa.array(bias)}
    for j in range(factors.shape[1]):
        columns[f"factor_{j + 1}"] = pa.array(factors[:, j])
    return pa.table(columns)


def generate(spec, out_dir):
    """Write a synthetic release into the directory `out_dir`.

    Parameters
    ----------
    spec : dict
        Generator settings, complete as the schema fills them in: ``n_users``,
        ``n_movies``, ``n_ratings`` (exact counts after indexing), and (defaults
        in the schema)
        ``n_factors`` (planted rank), ``seed``, ``mean_rating``, ``user_bias_sd``,
        ``movie_bias_sd``, ``factor_sd`` (sd of the first movie factor; user
        factors are standard normal), ``factor_decay`` (each further factor's sd
        is this times the previous one's, so PCA axes are identifiable),
        ``noise_sd``, ``user_activity_sigma`` and ``movie_popularity_sigma``
        (lognormal sigmas of the heavy tails), ``movie_popularity_floor``
        (added to each popularity weight, so few movies rest on one rating),
        ``min_user_ratings`` (floor of a user's count, lowered if the spec
        cannot afford it; no user rates more than half of the movies),
        ``bias_popularity_corr`` (popular movies tend to be better, as in
        MovieLens), ``n_classics`` and ``classic_bias`` (a few popular movies
        with bias ``classic_bias + |ordinary bias|``, so the top of the ranking
        is a clear answer, not a near-tie). The schema describes each one.
    out_dir : path
        Must not exist (or be empty). Written under a temporary name and
        renamed, so a failure leaves nothing behind.

    Returns
    -------
    dict
        Summary: counts, rating mean, top-10% movie share.

    Files
    -----
    ``ratings.csv`` (userId,movieId,rating,timestamp; sorted by userId, movieId;
    userIds 1..n_users, movieIds increasing with gaps), ``movies.csv``
    (movieId,title,genres; titles like "Synthetic Movie 17 (1994)"),
    ``planted_movies.csv`` (movieId, bias, factor_1..factor_k),
    ``planted_users.csv`` (userId, bias, factor_1..factor_k) and
    ``planted.json`` (the resolved spec).
    """
    spec = resolve_spec(spec)
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir() or any(out_dir.iterdir()):
            raise ValueError(f"{out_dir}: output directory exists and is not empty")
        out_dir.rmdir()
    log.info("generating %s into %s", spec, out_dir)
    rng = np.random.default_rng(spec["seed"])
    truth = plant(spec, rng)
    movie_ids = _movie_ids(rng, spec["n_movies"])
    user, movie = sample_pairs(spec, truth, rng)
    rating = rate(spec, truth, user, movie, rng)
    start = rng.integers(T_START, T_END, spec["n_users"])
    span = rng.integers(86_400, 4 * 365 * 86_400, spec["n_users"])
    timestamp = start[user] + (rng.random(len(user)) * span[user]).astype(np.int64)
    timestamp = np.minimum(timestamp, T_END)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the release is not
    try:
        ratings = pa.table(
            {
                "userId": pa.array(user + 1, pa.int32()),
                "movieId": pa.array(movie_ids[movie], pa.int64()),
                "rating": pa.DictionaryArray.from_arrays(
                    pa.array(rating, pa.int8()), pa.array(HALF_STARS)
                ),
                "timestamp": pa.array(timestamp, pa.int64()),
            }
        )
        _write_csv(tmp / "ratings.csv", ratings.column_names, ratings)
        movies = _movies_table(rng, movie_ids)
        _write_csv(tmp / "movies.csv", movies.column_names, movies)
        for name, id_name, ids, side in (
            ("planted_movies.csv", "movieId", movie_ids, "movie"),
            ("planted_users.csv", "userId", np.arange(1, spec["n_users"] + 1), "user"),
        ):
            table = _planted_table(id_name, ids, truth[f"{side}_bias"], truth[f"{side}_factors"])
            _write_csv(tmp / name, table.column_names, table)
        (tmp / "planted.json").write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    counts = np.bincount(movie, minlength=spec["n_movies"])
    top = np.sort(counts)[::-1][: max(1, spec["n_movies"] // 10)].sum() / len(movie)
    summary = {
        "n_users": int((np.bincount(user) > 0).sum()),
        "n_movies": int((counts > 0).sum()),
        "n_ratings": len(user),
        "mean_rating": float((rating.astype(np.float64) + 1).mean() / 2),
        "top10pct_movie_share": float(top),
    }
    log.info("wrote %s: %s", out_dir, summary)
    return summary
