"""A matplotlib figure without pyplot, and the one way every report figure is saved.

Figures are bound to an Agg canvas (no display, no pyplot state), so they can
be drawn and measured anywhere a rule runs. Every figure is saved as PNG
(to look at) and SVG (to zoom and to put in a paper), atomically and without
timestamps, so the same data gives the same files.
"""

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from movierec.atomic import atomic_path

PNG_DPI = 150


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
