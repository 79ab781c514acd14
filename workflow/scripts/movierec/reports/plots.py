"""Figures of the reports, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Every figure is saved as PNG (to look at) and SVG (to zoom and to put in a
paper), atomically. Labels on scatter plots are placed by `place_labels`, a
small deterministic placer: for each point, in order of importance, it scores
candidate positions around the point (16 directions, growing distances) and
keeps the best: no overlap with a placed label, another point or the axes
edge first, then as few leader-line crossings as possible, then the closest.
That is enough for the 50 labels of the PCA figure without a new dependency
(adjustText would do it iteratively, with more tuning and less determinism).
"""

import logging
import math
import re

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from movierec.atomic import atomic_path
from movierec.reports.inputs import ratings_per_second, training_seconds

log = logging.getLogger(__name__)

PNG_DPI = 150
ARTICLE = re.compile(r"^(?P<name>.+), (?P<article>The|A|An) (?P<year>\(\d{4}\))$")


def new_figure(width, height):
    """A figure bound to an Agg canvas, so it can be drawn and measured without pyplot."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, png_path, svg_path):
    """Write `fig` as PNG and SVG, each atomically, without timestamps in the files."""
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=PNG_DPI, metadata={"Software": None})
    # A fixed hash salt gives stable element ids: same data, same SVG bytes.
    with atomic_path(svg_path) as tmp, matplotlib.rc_context({"svg.hashsalt": "movierec"}):
        fig.savefig(tmp, format="svg", metadata={"Date": None})


def display_title(title, width=32):
    """A movie title for a chart label: "Godfather, The (1972)" -> "The Godfather (1972)", cut."""
    match = ARTICLE.match(str(title))
    if match:
        title = f"{match['article']} {match['name']} {match['year']}"
    title = str(title)
    return title if len(title) <= width else title[: width - 1] + "…"


# Directions tried around a point (right first: text reads left to right), and distances.
_ANGLES = (0, 45, -45, 90, -90, 180, 135, -135)
_ANGLES += (22.5, -22.5, 157.5, -157.5, 67.5, -67.5, 112.5, -112.5)
_DIRECTIONS = [(math.cos(math.radians(a)), math.sin(math.radians(a))) for a in _ANGLES]
_RADII_PT = [3, 8, 14, 21, 29, 38, 48, 60, 74]
LEADER_PT = 8  # labels further than this from their point get a leader line
CROSSING_COST_PT = 60  # a leader line crossing a label, point or line costs 60 pt of distance


def _side(component):
    """-1, 0 or 1: which side of the anchor a label extends to along one axis."""
    return 0 if abs(component) < 0.3 else (1 if component > 0 else -1)


def _overlap(a, b):
    """Overlapping area of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _crosses(p, q, box):
    """Whether the segment p-q passes through the box (Liang-Barsky clipping)."""
    x0, y0, x1, y1 = box
    dx, dy = q[0] - p[0], q[1] - p[1]
    lo, hi = 0.0, 1.0
    for step, gap in ((-dx, p[0] - x0), (dx, x1 - p[0]), (-dy, p[1] - y0), (dy, y1 - p[1])):
        if step == 0:
            if gap < 0:
                return False
            continue
        t = gap / step
        if step < 0:
            lo = max(lo, t)
        else:
            hi = min(hi, t)
        if lo > hi:
            return False
    return True


def _segments_cross(p1, p2, q1, q2):
    """Whether segments p1-p2 and q1-q2 properly intersect (shared endpoints do not count)."""

    def turn(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = turn(q1, q2, p1), turn(q1, q2, p2)
    d3, d4 = turn(p1, p2, q1), turn(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def place_labels(ax, x, y, labels, fontsize=8, marker_pt=4.0, pad_px=1.5, avoid=()):
    """Annotate points with labels that overlap neither each other nor other points.

    Points are labelled in the given order, so pass the most important first:
    they get the closest positions. A label moved further than a few points
    from its point gets a thin leader line. Axis limits must be final before
    calling (the placement works in display coordinates).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    x, y : array-like
        Data coordinates of the points.
    labels : sequence of str
    fontsize : float
    marker_pt : float
        Half-size, in points, of the box each point's marker occupies.
    pad_px : float
        Extra space kept around every label box.
    avoid : sequence of matplotlib artists
        Artists (a legend, say) that labels must not cover.

    Returns
    -------
    list of matplotlib.transforms.Bbox
        The display-space boxes of the placed labels, in input order. Labels
        that could not be placed cleanly (overlapping a label, a point, a
        leader line or the axes edge) are counted in a logged warning.
    """
    fig = ax.figure
    fig.draw_without_rendering()  # settle the layout, so display coordinates are final
    fig.set_layout_engine("none")  # and keep it: moving the axes now would undo the placement
    renderer = fig.canvas.get_renderer()
    to_px = fig.dpi / 72.0
    points = ax.transData.transform(np.column_stack([x, y]).astype(float))
    area = ax.get_window_extent(renderer)
    r = marker_pt * to_px
    point_boxes = [(px - r, py - r, px + r, py + r) for px, py in points]
    placed, leaders, boxes, unclean = [], [], [], 0
    for artist in avoid:
        extent = artist.get_window_extent(renderer)
        placed.append((extent.x0, extent.y0, extent.x1, extent.y1))
    bounds = (area.x0, area.y0, area.x1, area.y1)
    for i, label in enumerate(labels):
        probe = ax.text(0, 0, label, fontsize=fontsize)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        w, h = extent.width + 2 * pad_px, extent.height + 2 * pad_px
        px, py = points[i]
        best = None
        for radius in _RADII_PT:
            if best is not None and best[0] == 0 and best[1] <= radius:
                break  # nothing further out can beat a clean, uncrossed closer spot
            for k, (dx, dy) in enumerate(_DIRECTIONS):
                ax_, ay_ = px + dx * radius * to_px, py + dy * radius * to_px
                x0 = ax_ - w * (0.5 - 0.5 * _side(dx))
                y0 = ay_ - h * (0.5 - 0.5 * _side(dy))
                box = (x0, y0, x0 + w, y0 + h)
                hard = sum(_overlap(box, b) for b in placed)
                hard += sum(_overlap(box, b) for j, b in enumerate(point_boxes) if j != i)
                hard += w * h - _overlap(box, bounds)
                soft = sum(_crosses(p, q, box) for p, q in leaders)
                if radius > LEADER_PT:
                    soft += sum(_crosses((px, py), (ax_, ay_), b) for b in placed)
                    soft += sum(
                        _crosses((px, py), (ax_, ay_), b)
                        for j, b in enumerate(point_boxes)
                        if j != i
                    )
                    soft += sum(_segments_cross((px, py), (ax_, ay_), p, q) for p, q in leaders)
                score = (hard * 1000 + soft * CROSSING_COST_PT, radius + 0.01 * k)
                if best is None or score < best[:2]:
                    best = (*score, hard, dx, dy, radius, box, (ax_, ay_))
        _, _, hard, dx, dy, radius, box, anchor = best
        unclean += hard > 0
        offset = (dx * radius, dy * radius)
        note = ax.annotate(
            label,
            xy=(x[i], y[i]),
            xytext=offset,
            textcoords="offset points",
            fontsize=fontsize,
            ha={1: "left", -1: "right", 0: "center"}[_side(dx)],
            va={1: "bottom", -1: "top", 0: "center"}[_side(dy)],
            arrowprops=(
                {"arrowstyle": "-", "color": "0.55", "lw": 0.6, "shrinkA": 0, "shrinkB": 2}
                if radius > LEADER_PT
                else None
            ),
        )
        note.set_in_layout(False)
        placed.append(box)
        boxes.append(Bbox.from_extents(*box))
        if radius > LEADER_PT:
            leaders.append(((px, py), anchor))
    if unclean:
        log.warning(
            "%d of %d labels overlap a label, a point or the edge; the figure is crowded",
            unclean,
            len(labels),
        )
    return boxes


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


def _phase_starts(epochs):
    """(epoch, lr) where each phase after the first begins."""
    starts = []
    for prev, cur in zip(epochs, epochs[1:], strict=False):
        if cur["phase"] != prev["phase"]:
            starts.append((cur["epoch"], cur["lr"]))
    return starts


def learning_curves_figure(metrics, pretrain, baselines, dataset):
    """One panel per model: train and validation RMSE per epoch, phases and baselines marked.

    Parameters
    ----------
    metrics : dict
        Model name -> its metrics.json content, in display order.
    pretrain : dict
        Model name -> metrics of the stage it was initialised from (drawn at
        epochs <= 0, shaded), or absent.
    baselines : dict
        baselines.json content (their validation RMSEs are drawn).
    """
    baselines = {f"{k}_rmse": v["val_rmse"] for k, v in baselines["baselines"].items()}
    n = len(metrics)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = new_figure(5.2 * cols, 3.9 * rows + 0.6)
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False).ravel()
    top = 1.12 * baselines["global_mean_rmse"]
    low = min(
        [baselines["bias_only_rmse"]]
        + [min(e["val_rmse"] for e in m["history"]) for m in metrics.values()]
        + [min(math.sqrt(max(e["train_mse"], 0)) for e in m["history"]) for m in metrics.values()]
    )
    for ax, (model, m) in zip(axes, metrics.items(), strict=False):
        epochs = m["history"]
        x = [e["epoch"] for e in epochs]
        pre = pretrain.get(model)
        if pre:
            shift = max(e["epoch"] for e in pre["history"])
            px = [e["epoch"] - shift for e in pre["history"]]
            ax.axvspan(min(px) - 0.5, 0.5, color="0.93", zorder=0)
            ax.text(min(px) - 0.4, top, "pretrain", va="top", fontsize=8, color="0.4")
            ax.plot(
                px,
                [math.sqrt(max(e["train_mse"], 0)) for e in pre["history"]],
                ls="--",
                color="C0",
                alpha=0.6,
            )
            ax.plot(px, [e["val_rmse"] for e in pre["history"]], marker=".", color="C1", alpha=0.6)
        ax.plot(
            x,
            [math.sqrt(max(e["train_mse"], 0)) for e in epochs],
            ls="--",
            color="C0",
            label="train RMSE (during epoch)",
        )
        ax.plot(x, [e["val_rmse"] for e in epochs], marker=".", color="C1", label="validation RMSE")
        best = m["best_epoch"]
        best_rmse = m["val_rmse"]
        ax.plot(
            [best],
            [best_rmse],
            marker="*",
            ms=12,
            color="C3",
            ls="none",
            label="kept (best validation) epoch",
            zorder=4,
        )
        ax.annotate(
            f"{best_rmse:.3f}",
            (best, best_rmse),
            xytext=(0, -12),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            color="C3",
        )
        for key, name, color, style in (
            ("bias_only_rmse", "bias-only baseline", "0.3", ":"),
            ("global_mean_rmse", "global mean", "0.6", "-."),
        ):
            ax.axhline(
                baselines[key], color=color, ls=style, lw=1, label=f"{name} {baselines[key]:.3f}"
            )
        phases = [(x[0], epochs[0]["lr"])] + _phase_starts(epochs)
        for k, (start, lr) in enumerate(phases):
            edge = start - 0.5
            if k:
                ax.axvline(edge, color="0.5", ls="--", lw=0.8)
            ax.text(
                edge, top, f" lr {lr:g}", rotation=90, va="top", ha="left", fontsize=7, color="0.35"
            )
        ranked = m.get("selected_by")
        if ranked:
            # Kept by a ranking score (sampled negatives): draw it on its own axis.
            twin = ax.twinx()
            twin.plot(x, [e[ranked] for e in epochs], marker=".", color="C2")
            twin.plot([best], [m[ranked]], marker="*", ms=12, color="C3", ls="none", zorder=4)
            twin.set_ylabel(f"{ranked.replace('val_', 'validation ')} (kept epoch: its best)",
                            color="C2")  # fmt: skip
            twin.tick_params(axis="y", colors="C2")
        if best_rmse > top:
            ax.text(
                0.5,
                0.5,
                f"validation RMSE {best_rmse:.3f} of the kept epoch\nis above this axis",
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="C3",
            )
        first = min(px) if pre else x[0]
        ax.set_xlim(first - 0.7, x[-1] + 0.7)
        ax.set_title(model)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].set_ylim(low - 0.03, top)
    for ax in axes[::cols]:
        ax.set_ylabel("RMSE (stars)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=9)
    fig.suptitle(
        f"Learning curves on {dataset}, validation only (dashed verticals: learning-rate "
        f"phase changes; y axis cut at 1.12x the global-mean RMSE)",
        fontsize=11,
    )
    return fig


def comparison_figure(metrics, baselines, dataset, peers=None):
    """Test RMSE (mean and sd over replicates) of every model against the baselines, and its cost.

    Parameters
    ----------
    metrics : dict
        Model name -> list of its replicates' metrics.json contents.
    baselines : dict
        baselines.json content (their test RMSEs are drawn).
    peers : dict, optional
        Peer name -> its metrics.json (a reference library on the same split),
        drawn in green and labelled "(peer)".
    """
    peers = peers or {}
    test = {k: np.array([m["test_rmse"] for m in ms]) for k, ms in metrics.items()}
    test |= {f"{k} (peer)": np.array([m["test_rmse"]]) for k, m in peers.items()}
    names = sorted(test, key=lambda k: test[k].mean())
    rmse = [float(test[k].mean()) for k in names]
    sd = [float(test[k].std(ddof=1)) if len(test[k]) > 1 else 0.0 for k in names]
    is_peer = [k.endswith(" (peer)") for k in names]
    seconds = [
        float(peers[k[: -len(" (peer)")]]["fit_seconds"])
        if peer
        else float(np.mean([training_seconds(m) for m in metrics[k]]))
        for k, peer in zip(names, is_peer, strict=True)
    ]
    base = {k: v["test_rmse"] for k, v in baselines["baselines"].items()}
    fig = new_figure(11, 0.55 * len(names) + 2.6)
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    ypos = np.arange(len(names))[::-1]  # best on top
    left.hlines(ypos, 0, rmse, color="0.8", lw=2)
    for y, v, e, peer in zip(ypos, rmse, sd, is_peer, strict=True):
        left.errorbar(
            v, y, xerr=e, fmt="D" if peer else "o", color="C2" if peer else "C1", ms=8,
            capsize=4, zorder=3,
        )  # fmt: skip
    for y, v, e in zip(ypos, rmse, sd, strict=True):
        gain = base["bias_only"] - v
        left.annotate(
            f"{v:.4f} ± {e:.4f} ({abs(gain):.3f} {'better' if gain > 0 else 'worse'} "
            "than bias-only)",
            (v, y),
            xytext=(0, 8),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    for value, label, style in (
        (base["bias_only"], "bias-only baseline", ":"),
        (base["global_mean"], "global-mean baseline", "-."),
    ):
        left.axvline(value, color="0.3", ls=style, lw=1.2, label=f"{label} ({value:.3f})")
    fig.legend(loc="outside lower center", ncol=2, fontsize=9)
    lo = min([v - e for v, e in zip(rmse, sd, strict=True)] + [base["bias_only"]])
    hi = max(rmse + [base["global_mean"]])
    span = hi - lo or 0.1
    left.set_xlim(lo - 0.15 * span, hi + 0.1 * span)
    left.set_ylim(-0.6, len(names) - 0.4)
    left.set_yticks(ypos, names)
    n_rep = max(len(ms) for ms in metrics.values())
    left.set_xlabel(f"test RMSE, mean ± sd over {n_rep} replicate(s) (stars; lower is better)")
    left.grid(axis="x", alpha=0.3)
    right.barh(ypos, seconds, color=["C2" if p else "C0" for p in is_peer], alpha=0.8)
    for y, s_, k, peer in zip(ypos, seconds, names, is_peer, strict=True):
        rate = None if peer else ratings_per_second(metrics[k][0])
        text = f"{s_:.1f} s" + (f", {rate / 1e6:.2f}M ratings/s" if rate else "")
        right.annotate(
            text, (s_, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8
        )
    right.set_xlim(0, max(seconds) * 1.6 if max(seconds) > 0 else 1)
    right.set_xlabel("training time (s, mean over replicates)")
    right.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Model comparison on {dataset} (test set)", fontsize=12)
    return fig


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


def plot_learning_curves(
    metrics_paths, pretrain_paths, baselines_path, png_path, svg_path, dataset
):
    """Write learning_curves.png/.svg from every model's metrics.json.

    Parameters
    ----------
    metrics_paths : dict
        Model name -> metrics.json, in panel order.
    pretrain_paths : dict
        Model name -> history.json (or metrics.json) of the stage it was initialised from.
    baselines_path : path
        baselines.json, drawn as reference lines.
    """
    from movierec.reports.inputs import read_json, read_metrics

    metrics = {m: read_metrics(p) for m, p in metrics_paths.items()}
    pretrain = {m: read_metrics(p, test=False) for m, p in pretrain_paths.items()}
    baselines = read_json(baselines_path, ("baselines",))
    save_figure(learning_curves_figure(metrics, pretrain, baselines, dataset), png_path, svg_path)
    log.info("learning curves of %d models", len(metrics))


def plot_model_comparison(
    metrics_paths, baselines_path, png_path, svg_path, dataset, peer_paths=None
):
    """Write model_comparison.png/.svg: test RMSE against the baselines, and training time.

    `metrics_paths` maps each model to its replicates' metrics.json files,
    `peer_paths` each peer to its metrics.json.
    """
    from movierec.reports.inputs import read_json, read_metrics

    metrics = {m: [read_metrics(p) for p in ps] for m, ps in metrics_paths.items()}
    peers = {
        p: read_json(path, ("test_rmse", "fit_seconds")) for p, path in (peer_paths or {}).items()
    }
    baselines = read_json(baselines_path, ("baselines",))
    save_figure(comparison_figure(metrics, baselines, dataset, peers), png_path, svg_path)
    log.info("compared %d models", len(metrics))


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
