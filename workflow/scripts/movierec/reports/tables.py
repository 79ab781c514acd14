"""Markdown tables that read well in a terminal as well as rendered."""

import math

import pandas as pd


def _cell(value, fmt):
    """Text of one cell: floats with `fmt`, missing values as a dash, pipes escaped."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    if isinstance(value, float) and fmt:
        return format(value, fmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def shorten(text, width):
    """Cut `text` to `width` characters with an ellipsis, so one long title can't widen a table."""
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def markdown_table(frame, formats=None, align=None):
    """Render `frame` as a pipe table whose columns are padded to equal width.

    Rendered Markdown ignores the padding; a reader with `less` or `cat` gets
    aligned columns. Numeric columns are right-aligned (and marked so for
    renderers), text columns left-aligned.

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows to show, in order; the column names become the header.
    formats : dict, optional
        Column -> format spec for floats (e.g. ``{"bias": "+.3f"}``); ``.3f`` otherwise.
    align : dict, optional
        Column -> ``"left"`` or ``"right"`` to override the default by dtype.
    """
    formats = formats or {}
    align = dict(align or {})
    columns = [str(c) for c in frame.columns]
    rows = []
    for record in frame.itertuples(index=False, name=None):
        rows.append(
            [_cell(v, formats.get(c, ".3f")) for c, v in zip(frame.columns, record, strict=True)]
        )
    for c in frame.columns:
        if c not in align:
            numeric = pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(
                frame[c]
            )
            align[c] = "right" if numeric else "left"
    widths = [max([len(name), 3] + [len(row[i]) for row in rows]) for i, name in enumerate(columns)]

    def line(cells):
        out = []
        for cell, c, w in zip(cells, frame.columns, widths, strict=True):
            out.append(cell.rjust(w) if align[c] == "right" else cell.ljust(w))
        return "| " + " | ".join(out) + " |"

    rule = []
    for c, w in zip(frame.columns, widths, strict=True):
        rule.append("-" * (w - 1) + ":" if align[c] == "right" else "-" * w)
    lines = [line(columns), "| " + " | ".join(rule) + " |"]
    lines += [line(row) for row in rows]
    return "\n".join(lines) + "\n"
