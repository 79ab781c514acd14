"""Scatter plots of movies, one model at a time: its embeddings' PCA and its learned biases.

Both are labelled with movie titles (`movierec.reports.labels`) and drawn on
the canvas every report figure uses (`movierec.reports.canvas`).
"""

import math

import numpy as np
import pandas as pd

from movierec.reports.canvas import new_figure, save_figure
from movierec.reports.labels import display_title, place_labels


def pca_scatter_figure(table, ratios, subtitle):
    """PC2 against PC3 of the given movies (most-rated first), labelled, coloured by PC1.

    The notebook's figure: PC1 of movie embeddings mostly tracks how well
    liked and how widely seen a movie is, so the notebook plotted the next two
    components, where genres and tastes separate; colour keeps PC1 visible.
    """
    fig = new_figure(12, 9.5)
    ax = fig.add_subplot()
    points = ax.scatter(
        table["pc2"],
        table["pc3"],
        c=table["pc1"],
        cmap="coolwarm",
        s=28,
        edgecolors="0.25",
        linewidths=0.5,
        zorder=3,
    )
    fig.colorbar(points, ax=ax, shrink=0.6, label=f"PC1 ({ratios[0]:.1%} of variance)")
    ax.set_xlabel(f"PC2 ({ratios[1]:.1%} of variance)")
    ax.set_ylabel(f"PC3 ({ratios[2]:.1%} of variance)")
    ax.set_title(
        f"Movie embeddings, PC2 against PC3: the {len(table)} most-rated movies ({subtitle})"
    )
    ax.axhline(0, color="0.85", lw=0.8, zorder=1)
    ax.axvline(0, color="0.85", lw=0.8, zorder=1)
    _pad_limits(ax, table["pc2"], table["pc3"], 0.18)
    place_labels(
        ax,
        table["pc2"].to_numpy(),
        table["pc3"].to_numpy(),
        [display_title(t) for t in table["title"]],
    )
    return fig


def _pad_limits(ax, x, y, fraction):
    """Fix axis limits with room for labels around the outermost points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx = (x.max() - x.min()) or 1.0
    dy = (y.max() - y.min()) or 1.0
    ax.set_xlim(x.min() - fraction * dx, x.max() + fraction * dx)
    ax.set_ylim(y.min() - fraction * dy, y.max() + fraction * dy)


def bias_vs_mean_figure(ranked, label_n, min_ratings, subtitle):
    """Learned bias against mean rating, one dot per movie sized by its rating count.

    Movies with fewer than `min_ratings` ratings are grey: their mean rating
    is noisy and training shrinks their bias toward zero, which is the
    horizontal band the plot shows. The `label_n` highest and lowest biases
    among the others are labelled.
    """
    fig = new_figure(10, 7.5)
    ax = fig.add_subplot()
    counts = ranked["n_ratings"].to_numpy(float)
    size = 3 + 120 * np.sqrt(counts / max(counts.max(), 1))
    enough = counts >= min_ratings
    ax.scatter(
        ranked["mean_rating"][~enough],
        ranked["bias"][~enough],
        s=size[~enough],
        color="0.7",
        alpha=0.4,
        lw=0,
        label=f"< {min_ratings} ratings",
    )
    ax.scatter(
        ranked["mean_rating"][enough],
        ranked["bias"][enough],
        s=size[enough],
        color="C0",
        alpha=0.5,
        lw=0.3,
        edgecolors="C0",
        label=f">= {min_ratings} ratings",
    )
    rho = spearman(ranked["mean_rating"][enough], ranked["bias"][enough])
    _pad_limits(ax, ranked["mean_rating"], ranked["bias"], 0.08)
    for n in (10, 100, 1000):
        if n <= counts.max():
            ax.scatter(
                [],
                [],
                s=3 + 120 * math.sqrt(n / counts.max()),
                color="C0",
                alpha=0.5,
                label=f"{n} ratings",
            )
    legend = ax.legend(loc="upper left", fontsize=8, frameon=True)
    ax.set_xlabel("mean rating in the data (stars)")
    ax.set_ylabel("learned movie bias (model units)")
    title = f"Learned movie bias against mean rating ({subtitle})"
    if rho is not None:
        title += f"\nSpearman rank correlation over movies with >= {min_ratings} ratings: {rho:.2f}"
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    popular = ranked[enough]
    chosen = pd.concat([popular.head(label_n), popular.tail(label_n)]).drop_duplicates("movieId")
    place_labels(
        ax,
        chosen["mean_rating"].to_numpy(),
        chosen["bias"].to_numpy(),
        [display_title(t, 36) for t in chosen["title"]],
        marker_pt=3,
        avoid=[legend],
    )
    return fig


def spearman(a, b):
    """Spearman rank correlation (average ranks for ties); None for fewer than 3 pairs."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if len(a) < 3:
        return None
    ra = pd.Series(a).rank().to_numpy()
    rb = pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def plot_bias_vs_mean(
    vectors_path, movies_path, png_path, svg_path, model, dataset, label_n, min_ratings
):
    """Write bias_vs_mean.png/.svg for one model: learned bias against mean rating.

    Reads the model itself rather than movie_bias.csv, so that changing a
    ranking threshold does not redraw this figure.
    """
    from movierec.reports.bias import ranked_movies

    if int(label_n) < 0 or int(min_ratings) < 0:
        raise ValueError(
            f"reports.bias_plot: label_n={label_n}, min_ratings={min_ratings}; "
            "expected non-negative integers"
        )
    ranked = ranked_movies(vectors_path, movies_path, model, "plot")
    fig = bias_vs_mean_figure(ranked, int(label_n), int(min_ratings), f"{model} on {dataset}")
    save_figure(fig, png_path, svg_path)
