"""Text that came from data, made inert before a page shows it.

Anything read from the database may have been written by an imported file or an agent:
procedure keys and titles, task types, sources, run names, revision origins, authors and
models. Streamlit renders Markdown in ``st.markdown``, captions, alerts, headings and in the
labels of widgets, tabs, expanders, metrics and badges (an image in a label is fetched, a
link is clickable); plotly renders a few HTML tags (``<a href>``, ``<b>``, ``<br>``) in trace
names, legends, hover text and tick labels. So a page never interpolates data into those
raw: it passes it through :func:`md` (Markdown) or :func:`plot` (plotly), or shows it with
``st.text``, ``st.code`` or ``st.dataframe``, which show text as text.
"""

from __future__ import annotations

import html
import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark, and escaping all
# of them covers Streamlit's extensions too: ``:material/icon:`` and emoji shortcodes,
# ``:red[coloured]`` directives, ``$LaTeX$``, ``~~strike~~`` and tables' ``|``.
_MD_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
# Streamlit also turns bare ``http://...``, ``www.x`` and ``a@b.c`` in text into links, after
# parsing (escapes do not stop it, checked in chromium). An invisible WORD JOINER (U+2060)
# after the scheme, ``www`` or ``@`` breaks the pattern; the text reads the same.
_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|xmpp|www)(?=[:.])|(@)")
WORD_JOINER = "\u2060"


def md(value: object) -> str:
    """``value`` as Markdown that renders as exactly its text, on one line.

    For st.markdown / st.caption / st.info ..., headings and any label. Line breaks become
    spaces: a label or an inline value has one line (show multi-line text with st.text).
    """
    text = _LINE_BREAKS.sub(" ", "" if value is None else str(value))
    text = _AUTOLINK.sub(lambda m: m.group(0) + WORD_JOINER, text)
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_badge(value: object) -> str:
    """``value`` for ``st.badge``, which escapes ``[`` and ``]`` itself (twice would show)."""
    return md(value).replace("\\[", "[").replace("\\]", "]")


def plot(value: object) -> str:
    """``value`` for a plotly string (trace name, legend, hover text, tick label): HTML-escaped,
    so ``<a href=...>`` or ``<img ...>`` in data is shown, not rendered. Quotes stay: plotly
    would show ``&quot;`` as it is, and without ``<`` a quote opens nothing."""
    return html.escape("" if value is None else str(value), quote=False)
