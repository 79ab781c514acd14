"""Labels on scatter plots of movies: what a label says and where it goes.

`display_title` turns a MovieLens title into chart text. `place_labels` is a
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

import numpy as np
from matplotlib.transforms import Bbox

log = logging.getLogger(__name__)

ARTICLE = re.compile(r"^(?P<name>.+), (?P<article>The|A|An) (?P<year>\(\d{4}\))$")


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
