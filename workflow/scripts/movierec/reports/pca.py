"""PCA of movie embeddings: which directions of the embedding space separate movies.

Rows are movies, columns are embedding factors. We centre the columns and take
the leading right-singular vectors as components, so every movie gets
coordinates (pc1, pc2, ...) that can be plotted and ranked. The 2017 notebook
fitted PCA on the transposed matrix (factors as rows); its ``components_`` are
still the movies' coordinates, each scaled by 1/s_k (|r| >= 0.99 with ours on
the same movies), so that was not its fault. Its faults were centring each
movie across its factors (not each factor across movies), fitting on every
movie including one-rating ones, and plotting the first 20 movies in index
order. Here only the most-rated movies enter the fit (an embedding learned
from a handful of ratings is mostly its random initialisation and would add
noise directions) and the scatter shows the most-rated ones.
"""

import logging

import numpy as np
import pandas as pd

from movierec.atomic import atomic_path, write_text
from movierec.reports.bias import most_rated
from movierec.reports.canvas import save_figure
from movierec.reports.inputs import check_rows, movie_parameters, read_movies
from movierec.reports.movie_plots import pca_scatter_figure
from movierec.reports.tables import markdown_table, shorten

log = logging.getLogger(__name__)

TITLE_WIDTH = 55


def fit_pca(matrix, n_components):
    """Principal components of the rows of `matrix`.

    Signs are fixed deterministically (the row with the largest absolute
    score on a component scores positive), so reruns and refits with the same
    data give the same picture.

    Parameters
    ----------
    matrix : array-like, shape (n_rows, n_features)
    n_components : int
        At most min(n_rows, n_features).

    Returns
    -------
    scores : numpy.ndarray, shape (n_rows, n_components)
        Coordinates of each row on each component.
    ratios : numpy.ndarray, shape (n_components,)
        Fraction of the total variance each component explains.
    components : numpy.ndarray, shape (n_components, n_features)
        Unit directions in feature space.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"PCA needs a 2-d matrix, got shape {matrix.shape}")
    limit = min(matrix.shape)
    if not 1 <= n_components <= limit:
        raise ValueError(
            f"reports.pca.n_components is {n_components}; a {matrix.shape[0]} x "
            f"{matrix.shape[1]} matrix allows 1 to {limit}"
        )
    centred = matrix - matrix.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    scores = u[:, :n_components] * s[:n_components]
    components = vt[:n_components]
    for k in range(n_components):
        if scores[np.argmax(np.abs(scores[:, k])), k] < 0:
            scores[:, k] *= -1
            components[k] *= -1
    total = float((s**2).sum())
    ratios = (s[:n_components] ** 2) / total if total > 0 else np.zeros(n_components)
    return scores, ratios, components


def pca_table(movies, embedding, n_movies, n_components):
    """Coordinates of the `n_movies` most-rated movies, most-rated first, and the ratios."""
    popular = most_rated(movies, n_movies)
    popular = popular.iloc[
        np.lexsort((popular["movieId"].to_numpy(), -popular["n_ratings"].to_numpy()))
    ]
    if len(popular) < n_components:
        raise ValueError(
            f"only {len(popular)} movies to fit {n_components} components; "
            "lower reports.pca.n_components"
        )
    scores, ratios, _ = fit_pca(embedding[popular["movie"].to_numpy()], n_components)
    table = popular[["movieId", "title", "n_ratings"]].reset_index(drop=True)
    for k in range(n_components):
        table[f"pc{k + 1}"] = scores[:, k]
    return table, ratios


def pca_markdown(table, ratios, model, dataset, extremes, n_factors):
    """pca.md: what was fitted and why, explained variance, and the movies at each end."""
    ratio_rows = pd.DataFrame(
        {
            "component": [f"pc{k + 1}" for k in range(len(ratios))],
            "explained variance": ratios,
            "cumulative": np.cumsum(ratios),
        }
    )
    lines = [
        f"# PCA of movie embeddings: `{model}` on `{dataset}`",
        "",
        f"Fitted on the {n_factors}-factor embeddings of the {len(table)} most-rated movies",
        "(rows are movies, columns centred), so each movie gets coordinates on each",
        "component and `pca.csv` lists them. (The 2017 notebook fitted the transposed",
        "matrix; its components are the same movie coordinates scaled by 1/s_k, but it",
        "centred each movie across factors instead of each factor across movies, fitted",
        "every movie including one-rating ones, and plotted the first 20 movies in index",
        "order.) A component's sign is arbitrary: read its two ends together.",
        "",
        markdown_table(ratio_rows, formats={"explained variance": ".3f", "cumulative": ".3f"}),
    ]
    for k in range(len(ratios)):
        column = f"pc{k + 1}"
        ordered = table.sort_values([column, "movieId"], ascending=[False, True])
        for label, rows in (
            ("Highest", ordered.head(extremes)),
            ("Lowest", ordered.tail(extremes).iloc[::-1]),
        ):
            view = rows[["title", "n_ratings", column]].rename(columns={"n_ratings": "ratings"})
            view["title"] = view["title"].map(lambda t: shorten(t, TITLE_WIDTH))
            lines += [
                f"## {label} {column} ({ratios[k]:.1%} of variance)",
                "",
                markdown_table(view, formats={column: "+.3f"}),
            ]
    return "\n".join(lines)


def pca_movie_embeddings(
    vectors_path,
    movies_path,
    csv_path,
    md_path,
    png_path,
    svg_path,
    model,
    dataset,
    n_movies,
    n_components,
    extremes,
    scatter_movies,
):
    """Write pca.csv, pca.md and the PC2-against-PC3 scatter (PNG and SVG).

    Parameters
    ----------
    vectors_path, movies_path : path
        movie_vectors.parquet and the movie index it was trained against.
    csv_path, md_path, png_path, svg_path : path
        Outputs, written atomically.
    model, dataset : str
        Names for headings.
    n_movies : int
        The PCA is fitted on this many most-rated movies.
    n_components : int
        Components kept (3 by default; the scatter needs at least 3).
    extremes : int
        Movies listed at each end of each component.
    scatter_movies : int
        The scatter shows this many most-rated movies, labelled.
    """
    for name, value in (("n_movies", n_movies), ("extremes", extremes)):
        if int(value) < 1:
            raise ValueError(f"reports.pca.{name} is {value}; expected a positive integer")
    if n_components < 3:
        raise ValueError(
            f"reports.pca.n_components is {n_components}; the PC2-PC3 scatter needs at least 3"
        )
    movies = read_movies(movies_path)
    embedding, _ = movie_parameters(vectors_path)
    check_rows(embedding, movies, vectors_path, movies_path)
    table, ratios = pca_table(movies, embedding, n_movies, n_components)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    write_text(md_path, pca_markdown(table, ratios, model, dataset, extremes, embedding.shape[1]))
    fig = pca_scatter_figure(table.head(scatter_movies), ratios, f"{model} on {dataset}")
    save_figure(fig, png_path, svg_path)
    log.info(
        "PCA of %d movies (%s): explained variance %s",
        len(table),
        model,
        ", ".join(f"{r:.3f}" for r in ratios),
    )
    return table, ratios
