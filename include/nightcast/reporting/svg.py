"""Inline SVG charts for the nightly report: no plotting library, no JavaScript.

Each chart is one ``<svg role="img">`` with a ``<title>`` and ``<desc>`` (read by
screen readers and shown as a tooltip), a visible title, labelled axes and a legend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from html import escape
from itertools import count

from nightcast.reporting.fmt import human

_ids = count(1)

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
ACTUAL_COLOUR = "#333333"


@dataclass(frozen=True)
class Line:
    """One polyline: ``ys[i]`` at ``xs[i]``; NaN values break nothing, they are skipped."""

    label: str
    xs: Sequence[date]
    ys: Sequence[float]
    colour: str = PALETTE[0]
    dashed: bool = False


@dataclass(frozen=True)
class Band:
    """A shaded interval between ``lo`` and ``hi`` (e.g. P10 to P90)."""

    label: str
    xs: Sequence[date]
    lo: Sequence[float]
    hi: Sequence[float]
    colour: str = PALETTE[0]


@dataclass(frozen=True)
class Frame:
    """Plot area geometry and data ranges, mapping data to pixels."""

    x0: date
    x1: date
    y1: float
    width: int
    height: int
    left: int = 64
    right: int = 16
    top: int = 34
    bottom: int = 58
    y0: float = 0.0
    marks: list[str] = field(default_factory=list)

    def x(self, d: date) -> float:
        span = max((self.x1 - self.x0).days, 1)
        return self.left + (d - self.x0).days / span * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.top + (1 - (v - self.y0) / span) * (self.height - self.top - self.bottom)


def nice_ticks(hi: float, n: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``hi`` (1, 2, 2.5 or 5 times a power of ten)."""
    if not math.isfinite(hi) or hi <= 0:
        return [0.0, 1.0]
    raw = hi / n
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [i * step for i in range(math.ceil(hi / step - 1e-9) + 1)]


def _points(frame: Frame, xs: Sequence[date], ys: Sequence[float]) -> str:
    return " ".join(
        f"{frame.x(x):.1f},{frame.y(y):.1f}"
        for x, y in zip(xs, ys, strict=True)
        if math.isfinite(y)
    )


def _axes(frame: Frame, ticks: list[float], x_label: str, y_label: str, percent: bool) -> str:
    parts = []
    bottom = frame.height - frame.bottom
    for t in ticks:
        yy = frame.y(t)
        text = f"{t:.0%}" if percent else human(t)
        parts.append(
            f'<line class="grid" x1="{frame.left}" x2="{frame.width - frame.right}" '
            f'y1="{yy:.1f}" y2="{yy:.1f}"/>'
            f'<text class="tick" x="{frame.left - 6}" y="{yy + 4:.1f}" text-anchor="end">{text}</text>'
        )
    days = (frame.x1 - frame.x0).days
    step = max(1, math.ceil(days / 6))
    for i in range(0, days + 1, step):
        d = date.fromordinal(frame.x0.toordinal() + i)
        xx = frame.x(d)
        parts.append(
            f'<line class="axis" x1="{xx:.1f}" x2="{xx:.1f}" y1="{bottom}" y2="{bottom + 4}"/>'
            f'<text class="tick" x="{xx:.1f}" y="{bottom + 16}" text-anchor="middle">'
            f"{d:%d %b}</text>"
        )
    parts.append(
        f'<line class="axis" x1="{frame.left}" x2="{frame.width - frame.right}" '
        f'y1="{bottom}" y2="{bottom}"/>'
        f'<text class="label" x="{(frame.left + frame.width - frame.right) / 2:.0f}" '
        f'y="{frame.height - 22}" text-anchor="middle">{escape(x_label)}</text>'
        f'<text class="label" transform="translate(14 {(frame.top + bottom) / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    return "".join(parts)


def _legend(frame: Frame, entries: list[tuple[str, str, str]]) -> str:
    parts, x = [], float(frame.left)
    for label, colour, kind in entries:
        swatch = (
            f'<rect x="{x:.0f}" y="{frame.height - 12}" width="14" height="8" fill="{colour}" '
            'fill-opacity="0.25"/>'
            if kind == "band"
            else f'<line x1="{x:.0f}" x2="{x + 14:.0f}" y1="{frame.height - 8}" '
            f'y2="{frame.height - 8}" stroke="{colour}" stroke-width="2"'
            + (' stroke-dasharray="4 3"' if kind == "dashed" else "")
            + "/>"
        )
        parts.append(
            swatch
            + f'<text class="tick" x="{x + 18:.0f}" y="{frame.height - 4}">{escape(label)}</text>'
        )
        x += 30 + 6.5 * len(label)
    return "".join(parts)


def _svg(title: str, desc: str, width: int, height: int, body: str) -> str:
    n = next(_ids)
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" aria-labelledby="chart{n}-title chart{n}-desc" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart{n}-title">{escape(title)}</title>'
        f'<desc id="chart{n}-desc">{escape(desc)}</desc>'
        f'<text class="title" x="8" y="20">{escape(title)}</text>{body}</svg>'
    )


def time_chart(
    title: str,
    desc: str,
    *,
    lines: Sequence[Line],
    bands: Sequence[Band] = (),
    y_label: str,
    x_label: str = "date",
    size: tuple[int, int] = (760, 300),
    percent: bool = False,
) -> str:
    """A time-series chart: shaded bands under lines, y axis from zero."""
    xs = [x for s in lines for x in s.xs] + [x for b in bands for x in b.xs]
    ys = [y for s in lines for y in s.ys] + [y for b in bands for y in b.hi]
    finite = [y for y in ys if math.isfinite(y)]
    if not xs or not finite:
        return _svg(title, desc + " (no data)", size[0], 60, '<text x="8" y="44">no data</text>')
    ticks = nice_ticks(max(finite))
    frame = Frame(min(xs), max(xs), ticks[-1], *size)
    body = [_axes(frame, ticks, x_label, y_label, percent)]
    for b in bands:
        upper = _points(frame, b.xs, b.hi)
        lower = " ".join(reversed(_points(frame, b.xs, b.lo).split()))
        body.append(
            f'<polygon class="band" points="{upper} {lower}" fill="{b.colour}" fill-opacity="0.22">'
            f"<title>{escape(b.label)}</title></polygon>"
        )
    for s in lines:
        pts = _points(frame, s.xs, s.ys)
        dash = ' stroke-dasharray="4 3"' if s.dashed else ""
        body.append(
            f'<polyline class="line" points="{pts}" fill="none" stroke="{s.colour}" '
            f'stroke-width="2"{dash}><title>{escape(s.label)}</title></polyline>'
        )
    legend = [(b.label, b.colour, "band") for b in bands] + [
        (s.label, s.colour, "dashed" if s.dashed else "line") for s in lines
    ]
    body.append(_legend(frame, legend))
    return _svg(title, desc, size[0], size[1], "".join(body))


def bar_chart(
    title: str,
    desc: str,
    bars: Sequence[tuple[str, float]],
    *,
    x_label: str,
    width: int = 760,
) -> str:
    """Horizontal bars around zero (increases right, decreases left), one per label."""
    if not bars:
        return _svg(title, desc + " (no data)", width, 60, '<text x="8" y="44">no data</text>')
    row, top, label_w = 22, 34, 260
    height = top + row * len(bars) + 44
    reach = max(abs(v) for _, v in bars) or 1.0
    mid = label_w + (width - label_w - 70) / 2
    scale = (width - label_w - 70) / 2 / reach
    body = [f'<line class="axis" x1="{mid:.1f}" x2="{mid:.1f}" y1="{top - 4}" y2="{height - 40}"/>']
    for i, (label, value) in enumerate(bars):
        y = top + i * row
        x = mid if value >= 0 else mid + value * scale
        colour = PALETTE[0] if value >= 0 else PALETTE[5]
        body.append(
            f'<text class="tick" x="{label_w - 8}" y="{y + 14}" text-anchor="end">{escape(label[:40])}</text>'
            f'<rect class="bar" x="{x:.1f}" y="{y + 3}" width="{max(abs(value) * scale, 1):.1f}" '
            f'height="{row - 6}" fill="{colour}"><title>{escape(label)}: {value:+,.0f}</title></rect>'
            f'<text class="tick" x="{mid + (value * scale if value >= 0 else 0) + 4:.1f}" '
            f'y="{y + 14}">{human(value, signed=True)}</text>'
        )
    body.append(
        f'<text class="label" x="{mid:.0f}" y="{height - 16}" text-anchor="middle">{escape(x_label)}</text>'
    )
    return _svg(title, desc, width, height, "".join(body))
