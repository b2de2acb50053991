"""The learning-curves chart: one plotly figure, shown on the page and exported as a PNG.

The PNG is the very figure the page shows, not a second chart. Plotly's own image export
(kaleido, which drives a headless Chrome or Debian's chromium) draws it exactly as the browser
does. Where kaleido or a browser is missing, the same figure object is drawn with matplotlib
trace by trace (its lines, colours, bands, markers, vertical lines, axis ranges and percent
ticks), so the download never falls back to another chart.
"""

from __future__ import annotations

import html
import importlib.util
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from memp_core.conditions import Condition, ConditionPoint
from memp_core.curves import CurvePoint, to_frame
from memp_core.markers import MemoryMarker

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f"]  # fmt: skip
# Memory changes get a colour no line has (black) and a symbol per kind of change.
MARKER_COLOR = "#111111"
MARKER_SYMBOLS = {"revision added": "triangle-down", "approved": "star", "rolled back": "x",
                  "deprecated": "square", "rejected": "diamond", "edited": "circle"}  # fmt: skip
BAND_ALPHA = 0.2
MARKER_ROW = 0.07  # the height (in success, 0..1) between two kinds of memory change
EXPORT_WIDTH = 1100
# plotly symbol -> matplotlib marker, for the symbols figure() uses
SYMBOLS = {"circle": "o", "triangle-down": "v", "star": "*", "x": "X", "square": "s",
           "diamond": "D"}  # fmt: skip


def _plain(text: str) -> str:
    """Data in a plotly string (legend, hover): plotly renders <a href>, <b>, <br> tags, and
    run names and origins come from imported files. (No quote escaping: plotly would show
    ``&quot;`` as is, and without ``<`` a quote opens nothing.)"""
    return html.escape(text, quote=False).replace("%{", "%&#123;")


def _rgba(color: str, alpha: float) -> str:
    """``#rrggbb`` as ``rgba(...)``: a band is its line's colour, see-through."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def figure(
    points: Sequence[CurvePoint],
    band_points: Sequence[ConditionPoint] = (),
    markers: Sequence[MemoryMarker] = (),
    *,
    color_by: str = "condition",
) -> go.Figure:
    """Success (top, percent) and mean steps (bottom) per group; bands across seeds in their
    lines' colour; memory changes as black symbols and dotted lines (a colour no line has).

    ``color_by`` is ``run``, ``condition``, ``policy`` or ``model``: runs sharing that value
    share a colour, so policies or models can be compared at a glance.
    """
    fig = _subplots()
    frame = to_frame(points)
    keys = list(dict.fromkeys(frame[color_by])) if len(frame) else []
    colors = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(keys)}
    band_key: dict[str, str] = {}  # condition -> the colour key of its first line
    shown: set[str] = set()
    for run, df in frame.groupby("run", sort=False):
        key = str(df[color_by].iloc[0])
        band_key.setdefault(str(df["condition"].iloc[0]), key)
        for row, col_name, fmt in ((1, "success_rate", ".0%"), (2, "mean_steps", ".1f")):
            fig.add_trace(
                go.Scatter(
                    x=df["group"], y=df[col_name], mode="lines+markers", name=_plain(key),
                    legendgroup=_plain(key), showlegend=row == 1 and key not in shown,
                    line={"color": colors[key]},
                    hovertemplate=f"{_plain(str(run))}<br>group %{{x}}: %{{y:{fmt}}}"
                    "<extra></extra>",
                ),
                row=row, col=1,
            )  # fmt: skip
        shown.add(key)
    _add_bands(fig, band_points, {c: colors[k] for c, k in band_key.items()}, band_key)
    _add_markers(fig, markers)
    return _laid_out(fig, len({m.kind for m in markers}))


def _subplots() -> go.Figure:
    return make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                         subplot_titles=("success rate", "mean steps"))  # fmt: skip


def _laid_out(fig: go.Figure, marker_rows: int = 1) -> go.Figure:
    top = 1.1 + MARKER_ROW * max(marker_rows - 1, 0)
    fig.update_yaxes(range=[-0.02, top], tickformat=".0%", tickvals=[0, 0.25, 0.5, 0.75, 1],
                     row=1, col=1)  # fmt: skip
    fig.update_xaxes(dtick=1)
    fig.update_xaxes(title_text="group of tasks", row=2, col=1)
    # l=60: room for the percent ticks (an exported image does not grow its margins)
    fig.update_layout(height=560, margin={"l": 60, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.12})  # fmt: skip
    return fig


# A policy keeps its colour wherever it is shown; no memory is grey, the baseline.
POLICY_COLORS = {"none": "#7f7f7f", "vanilla": "#1f77b4", "validation": "#2ca02c",
                 "reflect": "#ff7f0e"}  # fmt: skip


def condition_colors(conds: Sequence[Condition], by: str = "condition") -> dict[str, str]:
    """A colour per condition. ``by="condition"``: its policy's colour, or (a second
    condition of one policy, an import) the next palette colour no other line has.
    ``policy`` or ``model``: conditions sharing that value share a colour (policies keep
    theirs), so strong and weak agents, say, can be told apart at a glance."""
    if by in ("policy", "model"):
        keys = {c.name: c.policy if by == "policy" else c.model for c in conds}
        fixed = POLICY_COLORS if by == "policy" else {}
        rest = iter(p for p in PALETTE if p not in fixed.values())
        colour: dict[str, str] = {}
        for key in dict.fromkeys(keys.values()):
            colour[key] = fixed.get(key) or next(rest, PALETTE[len(colour) % len(PALETTE)])
        return {name: colour[key] for name, key in keys.items()}
    out: dict[str, str] = {}
    for c in conds:
        own = POLICY_COLORS.get(c.policy)
        if own and own not in out.values():
            out[c.name] = own
    free = iter(p for p in PALETTE if p not in out.values() and p not in POLICY_COLORS.values())
    spare = iter(PALETTE * 2)
    for c in conds:
        out.setdefault(c.name, next(free, None) or next(spare))
    return out


def condition_figure(
    cpoints: Sequence[ConditionPoint],
    markers: Sequence[MemoryMarker] = (),
    *,
    names: dict[str, str],
    colors: dict[str, str],
) -> go.Figure:
    """One line per condition (the mean over its seeds) with its spread as a band in the
    line's colour where two or more seeds have the group; memory changes as in
    :func:`figure`. ``names`` are the legend names, ``colors`` the lines' colours."""
    fig = _subplots()
    by_cond: dict[str, list[ConditionPoint]] = defaultdict(list)
    for p in cpoints:
        by_cond[p.condition].append(p)
    for cond, ps in by_cond.items():
        name, color = _plain(names.get(cond, cond)), colors.get(cond, PALETTE[0])
        seeds = max(p.seeds for p in ps)
        legend = f"{name} ({seeds} seed{'s' if seeds != 1 else ''})"
        for row, key, fmt in ((1, "success", ".0%"), (2, "steps", ".1f")):
            for seg in _segments(
                [p for p in ps if p.seeds >= 2 and _get(p, key, "lo") is not None]
            ):
                fig.add_trace(_band(seg, key, color, name), row=row, col=1)
            shown = [p for p in ps if _get(p, key, "mean") is not None]
            fig.add_trace(
                go.Scatter(
                    x=[p.group for p in shown], y=[_get(p, key, "mean") for p in shown],
                    mode="lines+markers", name=legend, legendgroup=name,
                    showlegend=row == 1, line={"color": color, "width": 2.5},
                    text=[_hover(name, p, key, fmt) for p in shown],
                    hovertemplate="%{text}<extra></extra>",
                ),
                row=row, col=1,
            )  # fmt: skip
    _add_markers(fig, markers)
    return _laid_out(fig, len({m.kind for m in markers}))


def _band(seg: Sequence[ConditionPoint], key: str, color: str, group: str) -> go.Scatter:
    """The spread over seeds: hi along the groups and lo back, filled in the line's colour
    and in its legend group (hiding the line hides its band)."""
    xs = [p.group for p in seg]
    ys = [_get(p, key, "hi") for p in seg] + [_get(p, key, "lo") for p in seg][::-1]
    return go.Scatter(x=xs + xs[::-1], y=ys, fill="toself", mode="lines",
                      line={"width": 0, "color": color}, fillcolor=_rgba(color, BAND_ALPHA),
                      hoverinfo="skip", legendgroup=group, showlegend=False)  # fmt: skip


def _get(p: ConditionPoint, key: str, which: str) -> float | None:
    return getattr(p, f"{key}_{which}")  # type: ignore[no-any-return]


def _segments(ps: Sequence[ConditionPoint]) -> list[list[ConditionPoint]]:
    """Runs of consecutive groups: a band is not drawn across a group it lacks."""
    out: list[list[ConditionPoint]] = []
    for p in ps:
        if out and p.group == out[-1][-1].group + 1:
            out[-1].append(p)
        else:
            out.append([p])
    return out


def _hover(name: str, p: ConditionPoint, key: str, fmt: str) -> str:
    mean, lo, hi = (_get(p, key, w) for w in ("mean", "lo", "hi"))
    text = f"{name}<br>group {p.group}: {mean:{fmt}}"
    if p.seeds >= 2 and lo is not None and hi is not None:
        text += f" (mean of {p.seeds} seeds; band {lo:{fmt}} to {hi:{fmt}})"
    else:
        text += f" ({p.seeds} seed)"
    if p.unknown:
        text += f"<br>{p.unknown} tasks with no recorded outcome (not counted)"
    return text


def _add_bands(
    fig: go.Figure, band_points: Sequence[ConditionPoint], color: dict[str, str],
    group: dict[str, str],
) -> None:  # fmt: skip
    """Min..max across seeds, filled in the colour of the condition's line (and in its legend
    group, so hiding the line hides its band)."""
    band_frame = pd.DataFrame(
        [asdict(b) for b in band_points], columns=list(ConditionPoint.__dataclass_fields__)
    )
    for cond, bf in band_frame.groupby("condition", sort=False):
        fill = _rgba(color.get(str(cond), "#888888"), BAND_ALPHA)
        seeds = int(bf["seeds"].max())
        for row, lo, hi in ((1, "success_lo", "success_hi"), (2, "steps_lo", "steps_hi")):
            fig.add_trace(
                go.Scatter(
                    x=list(bf["group"]) + list(bf["group"])[::-1],
                    y=list(bf[hi]) + list(bf[lo])[::-1],
                    fill="toself", mode="lines", line={"width": 0, "color": fill},
                    fillcolor=fill, hoverinfo="skip",
                    legendgroup=_plain(group.get(str(cond), str(cond))),
                    name=_plain(f"range across {seeds} seeds: {cond}"), showlegend=row == 1,
                ),
                row=row, col=1,
            )  # fmt: skip


def _add_markers(fig: go.Figure, markers: Sequence[MemoryMarker]) -> None:
    """One legend entry per kind of change, a symbol each, all in MARKER_COLOR; a dotted line
    through both rows at each change, so a drop can be read against it."""
    for pos in sorted({m.position for m in markers}):
        fig.add_vline(x=pos, line={"color": MARKER_COLOR, "dash": "dot", "width": 1},
                      opacity=0.45)  # fmt: skip
    by_kind: dict[str, list[MemoryMarker]] = defaultdict(list)
    for m in markers:
        by_kind[m.kind].append(m)
    for row, (kind, ms) in enumerate(by_kind.items()):
        fig.add_trace(
            go.Scatter(
                # a row of its own per kind above 100%: two kinds at one group both show
                x=[m.position for m in ms], y=[1.05 + MARKER_ROW * row] * len(ms),
                mode="markers",
                marker={"symbol": MARKER_SYMBOLS.get(kind, "circle"), "size": 11,
                        "color": MARKER_COLOR},
                hovertext=[_plain(m.label) for m in ms], hoverinfo="text",
                name=_plain(f"memory: {kind}"), legendgroup="memory changes",
            ),
            row=1, col=1,
        )  # fmt: skip


@dataclass(frozen=True)
class PngExport:
    data: bytes
    engine: str  # "kaleido" (plotly's own export) or "matplotlib" (same figure, redrawn)


def figure_png(fig: go.Figure, *, width: int = EXPORT_WIDTH, engine: str = "auto") -> PngExport:
    """``fig`` as a PNG; ``engine`` is ``auto``, ``kaleido`` or ``matplotlib``."""
    height = int(fig.layout.height or 560)
    if engine in ("auto", "kaleido") and importlib.util.find_spec("kaleido") is not None:
        try:
            return PngExport(fig.to_image(format="png", width=width, height=height), "kaleido")
        except RuntimeError:
            # plotly raises RuntimeError when kaleido finds no Chrome/chromium to drive:
            # draw the same figure with matplotlib instead (below).
            if engine == "kaleido":
                raise
    return PngExport(draw_with_matplotlib(fig, width=width, height=height), "matplotlib")


def png_bytes(figure_json: str, *, engine: str = "auto") -> bytes:
    """The PNG of a figure given as its JSON (what a deferred download calls on click)."""
    return figure_png(pio.from_json(figure_json), engine=engine).data


def _text(value: Any) -> str:
    """A plotly string as matplotlib text: plotly shows HTML entities decoded, and ``$``
    would start matplotlib's mathtext (a run name like ``$x`` would fail the export)."""
    return html.unescape(str(value or "")).replace("$", r"\$")


def _color(value: Any) -> tuple[float, float, float, float] | str:
    """Plotly colours are ``#rrggbb`` or ``rgba(r, g, b, a)``."""
    text = str(value or "#555555")
    if text.startswith("rgba(") or text.startswith("rgb("):
        parts = [float(p) for p in text[text.index("(") + 1 : -1].split(",")]
        alpha = parts[3] if len(parts) > 3 else 1.0
        return (parts[0] / 255, parts[1] / 255, parts[2] / 255, alpha)
    return text


def draw_with_matplotlib(fig: go.Figure, *, width: int, height: int, dpi: int = 100) -> bytes:
    """The subplots of ``fig`` (one x axis shared by rows) drawn trace by trace."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import PercentFormatter

    layout = fig.layout
    axis_names = sorted({str(t.yaxis or "y") for t in fig.data} | {"y"}, key=_axis_order)
    mfig, axes = plt.subplots(len(axis_names), 1, figsize=(width / dpi, height / dpi),
                              dpi=dpi, sharex=True, squeeze=False)  # fmt: skip
    ax_of = {name: axes[i][0] for i, name in enumerate(axis_names)}
    for trace in fig.data:
        _draw_trace(ax_of[str(trace.yaxis or "y")], trace)
    titles = [a.text for a in (layout.annotations or ()) if a.text]
    for i, name in enumerate(axis_names):
        ax, yaxis = ax_of[name], layout[_layout_key(name)]
        if yaxis.range:
            ax.set_ylim(*yaxis.range)
        if yaxis.tickvals:
            ax.set_yticks(list(yaxis.tickvals))
        if yaxis.tickformat and yaxis.tickformat.endswith("%"):
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        if i < len(titles):
            ax.set_title(_text(titles[i]), fontsize=10)
        ax.grid(alpha=0.3)
    for shape in layout.shapes or ():
        if shape.type == "line" and shape.x0 == shape.x1:
            for ax in ax_of.values():
                ax.axvline(shape.x0, color=_color(shape.line.color), linestyle=":",
                           linewidth=1, alpha=shape.opacity or 1.0)  # fmt: skip
    bottom = axes[-1][0]
    xaxis = layout[_layout_key("x" + axis_names[-1][1:])]
    if xaxis.title and xaxis.title.text:
        bottom.set_xlabel(_text(xaxis.title.text))
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        mfig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    mfig.tight_layout(rect=(0, 0.04 + 0.025 * ((len(handles) + 1) // 2), 1, 1))
    buf = io.BytesIO()
    mfig.savefig(buf, format="png")
    plt.close(mfig)
    return buf.getvalue()


def _axis_order(name: str) -> int:
    return int(name[1:] or 1)


def _layout_key(axis: str) -> str:
    """``y`` -> ``yaxis``, ``y2`` -> ``yaxis2``."""
    return f"{axis[0]}axis{axis[1:]}"


def _draw_trace(ax: Any, trace: Any) -> None:
    if trace.visible is False:
        return
    x = [] if trace.x is None else list(trace.x)
    y = [] if trace.y is None else list(trace.y)
    label = _text(trace.name) if trace.showlegend is not False else None
    if trace.fill == "toself":
        ax.fill(x, y, color=_color(trace.fillcolor), linewidth=0, label=label)
        return
    mode = str(trace.mode or "lines+markers")
    marker = trace.marker
    color = _color(trace.line.color if "lines" in mode else marker.color)
    symbol = SYMBOLS.get(str(marker.symbol or "circle"), "o")
    if "lines" in mode:
        ax.plot(x, y, color=color, marker=symbol if "markers" in mode else None,
                markersize=5, linewidth=2, label=label)  # fmt: skip
    else:
        ax.scatter(x, y, color=color, marker=symbol, s=(marker.size or 8) ** 2, label=label,
                   clip_on=False)  # fmt: skip
