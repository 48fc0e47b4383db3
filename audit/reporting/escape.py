"""Escaping of user-provided text for every place a report shows it: HTML, markdown, figures.

Probe names, descriptions and notices, model and dataset names, group values, label texts and
gate ids are data, never markup. Every renderer (the report notebooks' markdown and HTML
outputs, ``model_card.md``, matplotlib titles and ticks) passes them through one of these
functions; none of them lets a string open a tag, a link, a heading, a table cell, a code span
or a mathtext formula.
"""

from __future__ import annotations

import html
import re

#: Unicode bidirectional controls: they reorder what a reader sees (e.g. an RTL override
#: makes "gpj.exe" look like "exe.jpg"); shown as visible escapes instead.
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: Markdown's ASCII punctuation that can start markup (CommonMark allows a backslash before
#: any of them); '&', '<' and '>' become HTML entities instead.
_MD_PUNCT = re.compile(r"([\\`*_\[\]#|~$])")
#: Line-start markers (list items, numbered lists) matter only at the start of the text.
_MD_LEAD = re.compile(r"^(\d+(?=[.)](?:\s|$))|(?=[-+](?:\s|$)))(.)")
_SPACE = re.compile(r"\s+")


def _plain(value: object) -> str:
    """One line of text: whitespace runs (newlines too) become one space, bidi controls
    become visible ``\\u202e``-style escapes."""
    text = _SPACE.sub(" ", str(value)).strip()
    return _BIDI.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def visible(value: object) -> object:
    """A table cell with bidi controls made visible (other characters are left for the
    table writer, which HTML-escapes them); non-strings pass through."""
    return _BIDI.sub(lambda m: f"\\u{ord(m.group()):04x}", value) if isinstance(value, str) else value


def html_text(value: object) -> str:
    """Text for an HTML element or attribute (quotes escaped too)."""
    return html.escape(_plain(value), quote=True)


def md_text(value: object) -> str:
    """Text for a line of markdown (a heading, a caption, a table cell): no HTML tags, no
    links, no emphasis, no code spans, no line breaks, no pipes that split a table cell."""
    text = _MD_LEAD.sub(r"\1\\\2", _MD_PUNCT.sub(r"\\\1", _plain(value)))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mpl_text(value: object) -> str:
    """Text for a matplotlib title, label or tick: ``$`` would start mathtext (a parse error
    or a formula), so it is escaped."""
    return _plain(value).replace("$", r"\$")


def md_join(values: object, sep: str = ", ") -> str:
    """Several user strings as one markdown-safe list."""
    return sep.join(md_text(v) for v in values)  # type: ignore[attr-defined]


def md_plain(markdown: str) -> str:
    """Markdown made by :func:`md_text` (and plain words around it) back to plain text, e.g.
    for a figure's alt text, which the HTML writer escapes itself."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))
