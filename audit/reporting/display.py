"""Showing figures, tables and captions in a notebook, so that the HTML is self-contained.

Figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot state, no backend) and go
out as PNG bytes: ``image/png`` outputs, which nbconvert embeds as base64. Tables go out as plain
HTML without index columns.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import Any

import matplotlib as mpl
import pandas as pd
from matplotlib.figure import Figure

from audit.reporting.escape import html_text, md_plain, visible

#: Options the notebooks' ``parameters`` cell may set (see :func:`setup`).
OPTIONS: dict[str, Any] = {"dpi": 100, "max_rows": 60}

NOT_COMPUTED = "not computed in this run"
SMALL_N_MARK = "\u2020"  # dagger marks an estimate from fewer images than stats.min_n


def setup(dpi: int = 100, max_rows: int = 60) -> None:
    """Set the report's display options and a readable plotting theme."""
    import seaborn as sns

    OPTIONS.update(dpi=int(dpi), max_rows=int(max_rows))
    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
    mpl.rcParams.update({"figure.dpi": dpi, "axes.titleweight": "bold", "axes.titlesize": 12})
    pd.set_option("display.max_colwidth", 120)


def _display(*objs: Any) -> None:
    from IPython.display import display

    display(*objs)


def markdown(text: str) -> None:
    """Show a line of markdown (captions, short explanations)."""
    from IPython.display import Markdown

    _display(Markdown(text))


def caption(text: str) -> None:
    """Show a one-line caption in italics: what to look at in the figure or table above."""
    markdown(f"*{text}*")


def skip(what: str, why: str = NOT_COMPUTED) -> None:
    """Say in one line that a section has nothing to show."""
    markdown(f"**{what}:** {why}.")


def banner(lines: Iterable[str]) -> None:
    """A conspicuous notice box (e.g. 'random weights: numbers carry no meaning')."""
    from IPython.display import HTML

    for line in lines:
        _display(HTML(
            '<div style="border:2px solid #b45309;background:#fef3c7;color:#78350f;'
            'padding:10px 14px;margin:8px 0;font-weight:bold;font-size:1.1em">'
            f"&#9888; Notice: {html_text(line)}</div>"
        ))


def new_figure(width: float, height: float) -> Figure:
    """A figure outside pyplot's global state (nothing to close, no backend needed)."""
    return Figure(figsize=(width, height), layout="constrained")


def figure_png(fig: Figure, dpi: int | None = None) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or OPTIONS["dpi"], bbox_inches="tight")
    return buf.getvalue()


def alt_text(fig: Figure, what: str) -> str:
    """A figure's alternative text: what it shows, then its panels' titles."""
    titles = [ax.get_title() or ax.get_title(loc="right") for ax in fig.axes]
    titles = [t for t in dict.fromkeys(titles) if t]
    return "; ".join([md_plain(what), *titles[:8]])


def show(fig: Figure | None, text: str | None = None, what: str = "Figure") -> None:
    """Show a figure (as an embedded PNG with alt text) and its caption.

    ``fig=None`` (no rows for the section) prints the "not computed in this run" line instead.
    ``what`` and ``text`` are trusted markdown: escape user strings in them with
    :func:`audit.reporting.escape.md_text`.
    """
    if fig is None:
        skip(what)
        return
    from IPython.display import Image

    _display(Image(data=figure_png(fig), format="png", alt=alt_text(fig, what)))
    if text:
        caption(text)


def table(df: pd.DataFrame | None, what: str = "Table", text: str | None = None) -> None:
    """Show a table as HTML (no index), at most ``max_rows`` rows, with an optional caption."""
    if df is None or df.empty:
        skip(what)
        return
    from IPython.display import HTML

    limit = OPTIONS["max_rows"]
    shown = df.head(limit).map(visible).rename(columns=visible)
    out = shown.to_html(index=False, na_rep="\u2013", escape=True, border=0, classes="dataframe")
    if len(df) > limit:
        out += f"<p><i>showing {limit} of {len(df)} rows</i></p>"
    _display(HTML(out))
    if text:
        caption(text)


# --------------------------------------------------------------------------- number formatting


def pct(x: float | None, digits: int = 1) -> str:
    """0.1234 -> '12.3%'; NaN -> '–'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "\u2013"
    return f"{100 * x:.{digits}f}%"


def interval(lo: float | None, hi: float | None, scale: float = 100.0, digits: int = 1) -> str:
    """(0.1, 0.2) -> '10.0–20.0'; a negative bound -> '-16.2 to -9.0' (never '--');
    missing or infinite bounds -> '–'."""
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return "\u2013"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "\u2013"
    a, b = f"{scale * lo:.{digits}f}", f"{scale * hi:.{digits}f}"
    return f"{a} to {b}" if a.startswith("-") or b.startswith("-") else f"{a}\u2013{b}"


def count(n: float | None) -> str:
    return "\u2013" if n is None or pd.isna(n) else f"{int(n):,}"


def status_table(df: pd.DataFrame, colours: dict[str, str], what: str = "Table",
                 text: str | None = None) -> None:
    """Like :func:`table`, with the first column ('status') drawn as a coloured badge that
    keeps its text (PASS, WARN, FAIL), so the table reads the same printed in grey."""
    if df.empty:
        skip(what)
        return
    from IPython.display import HTML

    head = "".join(f"<th>{html_text(c)}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        status = str(row[0])
        badge = (f'<td><span style="background:{colours.get(status, "#6b7280")};color:white;'
                 f'font-weight:bold;padding:2px 8px;border-radius:3px;white-space:nowrap">'
                 f"{html_text(status)}</span></td>")
        body.append("<tr>" + badge + "".join(f"<td>{html_text(v)}</td>" for v in row[1:]) + "</tr>")
    _display(HTML(f'<table class="dataframe"><thead><tr>{head}</tr></thead>'
                  f"<tbody>{''.join(body)}</tbody></table>"))
    if text:
        caption(text)
