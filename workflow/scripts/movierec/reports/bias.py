"""Movie-bias ranking: what a model thinks of each movie once each user's taste is factored out.

A dot-product model predicts ``user . movie + user_bias + movie_bias`` (then
the optional ``y_range`` sigmoid). The movie bias is the part of a movie's
predicted rating that is the same for every user, which is why the notebook
read it as "how good the model thinks the movie is". A bias learned from three
ratings says little, so every view shows the rating count beside the title,
and the second view keeps only the most-rated movies.
"""

import logging

import numpy as np

from movierec.atomic import atomic_path, write_text
from movierec.reports.inputs import check_rows, movie_parameters, read_movies
from movierec.reports.tables import markdown_table, shorten

log = logging.getLogger(__name__)

CSV_COLUMNS = ["movieId", "title", "year", "n_ratings", "mean_rating", "bias", "rank"]
TITLE_WIDTH = 60


def rank_movies(movies, bias):
    """Every movie with its bias and rank (1 = largest bias), in rank order.

    Ties in bias are broken by movieId so that the ranking is deterministic.

    Parameters
    ----------
    movies : pandas.DataFrame
        The movie index (movies.parquet); row ``i`` is movie ``i``.
    bias : array-like, shape (len(movies),)
        Learned movie bias per movie row.
    """
    bias = np.asarray(bias, dtype=float)
    if bias.shape != (len(movies),):
        raise ValueError(f"bias has shape {bias.shape}, expected ({len(movies)},)")
    if not np.isfinite(bias).all():
        bad = int(np.flatnonzero(~np.isfinite(bias))[0])
        raise ValueError(f"bias of movie row {bad} is {bias[bad]}; expected a finite number")
    table = movies[["movieId", "title", "year", "n_ratings", "mean_rating"]].copy()
    table["bias"] = bias
    order = np.lexsort((table["movieId"].to_numpy(), -bias))
    table = table.iloc[order].reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table[CSV_COLUMNS]


def ranked_movies(vectors_path, movies_path, model, purpose):
    """Read movie vectors and movies.parquet, check they agree, and rank by movie bias.

    ``purpose`` ("rank", "plot") only words the error for a model without biases.
    """
    movies = read_movies(movies_path)
    embedding, bias = movie_parameters(vectors_path)
    if bias is None:
        raise ValueError(
            f"{vectors_path}: model {model!r} has no movie bias to {purpose} (an mlp?)"
        )
    check_rows(embedding, movies, vectors_path, movies_path)
    return rank_movies(movies, bias)


def most_rated(table, n):
    """The `n` most-rated rows of `table` (ties by movieId), in `table`'s order."""
    order = np.lexsort((table["movieId"].to_numpy(), -table["n_ratings"].to_numpy()))
    keep = np.zeros(len(table), dtype=bool)
    keep[order[:n]] = True
    return table[keep]


def _view(table):
    view = table[["rank", "title", "n_ratings", "mean_rating", "bias"]].copy()
    view["title"] = view["title"].map(lambda t: shorten(t, TITLE_WIDTH))
    return view.rename(columns={"n_ratings": "ratings", "mean_rating": "mean"})


def _table(frame):
    return markdown_table(_view(frame), formats={"mean": ".2f", "bias": "+.3f"})


def bias_markdown(ranked, model, dataset, top_n, popular_n, popular_top_n):
    """The two views of the notebook as Markdown: overall, and among the most-rated movies."""
    popular = most_rated(ranked, popular_n)
    floor = int(popular["n_ratings"].min()) if len(popular) else 0
    top, bottom = ranked.head(top_n), ranked.tail(top_n).iloc[::-1]
    thin = int((top["n_ratings"] < 10).sum() + (bottom["n_ratings"] < 10).sum())
    lines = [
        f"# Movie bias: `{model}` on `{dataset}`",
        "",
        "The movie bias is the part of a movie's predicted rating that is the same for",
        "every user: larger means the model predicts a higher rating for this movie",
        "than for an average one, whoever watches it. It is in the model's output units",
        "before the `y_range` sigmoid (when the model has one), so compare ranks, not",
        "values, across models. `ratings` is how many ratings the movie has in the",
        "whole dataset and `mean` their mean; a bias resting on a few ratings is shrunk",
        "toward zero by training and says little. `rank` is over all",
        f"{len(ranked)} movies; every movie is in `movie_bias.csv`.",
        "",
        f"## Top {min(top_n, len(ranked))} overall",
        "",
        _table(top),
        f"## Bottom {min(top_n, len(ranked))} overall",
        "",
        _table(bottom),
    ]
    if thin:
        lines += [f"{thin} of the movies above have fewer than 10 ratings.", ""]
    lines += [
        f"## Top {min(popular_top_n, len(popular))} among the {len(popular)} most-rated movies",
        "",
        f"(each has at least {floor} ratings)",
        "",
        _table(popular.head(popular_top_n)),
        f"## Bottom {min(popular_top_n, len(popular))} among the {len(popular)} most-rated movies",
        "",
        _table(popular.tail(popular_top_n).iloc[::-1]),
    ]
    return "\n".join(lines)


def rank_movie_bias(
    vectors_path, movies_path, csv_path, md_path, model, dataset, top_n, popular_n, popular_top_n
):
    """Write movie_bias.csv (every movie, ranked) and movie_bias.md (the readable views).

    Parameters
    ----------
    vectors_path, movies_path : path
        The trained model's movie_vectors.parquet and the movie index it was trained against.
    csv_path, md_path : path
        Outputs, written atomically.
    model, dataset : str
        Names for the report's heading.
    top_n : int
        Movies at each end of the overall ranking.
    popular_n, popular_top_n : int
        The second view ranks only the `popular_n` most-rated movies and shows
        `popular_top_n` at each end.
    """
    for name, value in (
        ("top_n", top_n),
        ("popular_n", popular_n),
        ("popular_top_n", popular_top_n),
    ):
        if int(value) < 1:
            raise ValueError(f"reports.bias.{name} is {value}; expected a positive integer")
    ranked = ranked_movies(vectors_path, movies_path, model, "rank")
    with atomic_path(csv_path) as tmp:
        ranked.to_csv(tmp, index=False)
    write_text(md_path, bias_markdown(ranked, model, dataset, top_n, popular_n, popular_top_n))
    log.info("ranked %d movies of %s by bias; top: %s", len(ranked), model, ranked.title.iloc[0])
    return ranked
