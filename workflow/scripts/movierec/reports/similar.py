"""similar_movies.md: the nearest movies of the most-rated ones (and any asked for), by embedding.

Cosine similarity of the movie embeddings (`movierec.similar`): movies the
model places in the same direction are liked by the same users. Neighbours
are drawn only from movies with at least `min_ratings` ratings, whose
embeddings rest on data rather than on their random start.
"""

import logging

import numpy as np
import pandas as pd

from movierec.atomic import write_text
from movierec.reports.inputs import check_rows, movie_parameters, read_movies
from movierec.reports.tables import markdown_table
from movierec.similar import nearest_movies

log = logging.getLogger(__name__)


def query_movies(movies, most_rated, movie_ids, movies_path):
    """Rows of the most-rated movies, then of each movieId asked for (an unknown one: an error)."""
    order = np.lexsort((movies["movie"].to_numpy(), -movies["n_ratings"].to_numpy()))
    rows = list(order[: int(most_rated)])
    row_of = dict(zip(movies["movieId"].to_numpy().tolist(), range(len(movies)), strict=True))
    for movie_id in movie_ids:
        if int(movie_id) not in row_of:
            raise ValueError(
                f"reports.similar.movie_ids: movieId {movie_id} is not in {movies_path}"
            )
        if row_of[int(movie_id)] not in rows:
            rows.append(row_of[int(movie_id)])
    return np.asarray(rows, dtype=np.int64)


def similar_movies(*, vectors_path, movies_path, md_path, model, dataset, most_rated, movie_ids, n,
                   min_ratings):  # fmt: skip
    """What rule find_similar_movies runs: one table of neighbours per query movie."""
    movies = read_movies(movies_path)
    factors, _bias = movie_parameters(vectors_path)
    check_rows(factors, movies, vectors_path, movies_path)
    queries = query_movies(movies, most_rated, movie_ids, movies_path)
    eligible = movies["n_ratings"].to_numpy() >= int(min_ratings)
    neighbours, similarity = nearest_movies(factors, queries, int(n), eligible)
    titles = movies["title"].to_numpy()
    lines = [
        f"# Similar movies: `{model}` on `{dataset}`",
        "",
        f"Nearest movies by cosine similarity of `{model}`'s movie embeddings, among movies",
        f"with at least {min_ratings} ratings; the {most_rated} most-rated movies"
        + (f" and movieIds {', '.join(map(str, movie_ids))}" if movie_ids else "")
        + ".",
        "",
    ]
    for q, near, sim in zip(queries, neighbours, similarity, strict=True):
        keep = near >= 0
        frame = pd.DataFrame(
            {
                "movieId": movies["movieId"].to_numpy()[near[keep]],
                "title": titles[near[keep]],
                "ratings": movies["n_ratings"].to_numpy()[near[keep]],
                "cosine": sim[keep],
            }
        )
        lines += [
            f"## {titles[q]} (movieId {movies['movieId'].iloc[q]}, "
            f"{movies['n_ratings'].iloc[q]} ratings)",
            "",
            markdown_table(frame, formats={"cosine": ".3f"}),
        ]
    write_text(md_path, "\n".join(lines))
    log.info("%s: neighbours of %d movies", vectors_path, len(queries))
