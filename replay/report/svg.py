"""Hand-written inline SVG charts for the replay report: no scripts, fonts or files from anywhere else."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
WIN, TIE, LOSS = "#55a868", "#bbbbbb", "#c44e52"
FONT = 'font-family="sans-serif" font-size="11"'


def colour(index: int) -> str:
    """The palette colour of the arm at ``index`` (cycles)."""
    return PALETTE[index % len(PALETTE)]


def fmt(value: float | None, digits: int = 3) -> str:
    """A compact number: ``digits`` significant figures, thousands without exponent; '–' for None."""
    if value is None:
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """At least ``count`` - 1 round tick values (steps of 1, 2 or 5 x 10^k) inside [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / (count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = max(m * magnitude for m in (1, 2, 5) if m * magnitude <= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 12) for i in range(int((high - first) / step + 1e-9) + 1)]


def _padded(low: float, high: float, keep_sign: bool = True) -> tuple[float, float]:
    """The range widened by 5% each side; with ``keep_sign`` non-negative values (latencies) stay non-negative."""
    pad = (high - low) * 0.05 if high > low else abs(low) * 0.1 or 1.0
    return (max(0.0, low - pad) if keep_sign and low >= 0 else low - pad), high + pad


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" {FONT}><title>{escape(title)}</title>' + "".join(body) + "</svg>"
    )


def forest_plot(
    title: str, labels: Sequence[str], estimates: Sequence[tuple[float, float | None, float | None]]
) -> str:
    """Points with 95% CI whiskers, one row per label, and a dashed line at zero (no difference)."""
    row_h, left, right, top = 26, 170, 30, 26
    width, height = 640, top + row_h * len(labels) + 30
    values = [v for est in estimates for v in est if v is not None] + [0.0]
    low, high = _padded(min(values), max(values), keep_sign=False)

    def x(v: float) -> float:
        return left + (v - low) / (high - low) * (width - left - right)

    body = [f'<text x="{left}" y="16" font-weight="bold">{escape(title)}</text>']
    zero = x(0.0)
    body.append(
        f'<line x1="{zero:.1f}" y1="{top}" x2="{zero:.1f}" y2="{height - 28}" stroke="#888" stroke-dasharray="4 3"/>'
    )
    for i, (label, (mean, ci_low, ci_high)) in enumerate(zip(labels, estimates, strict=True)):
        y = top + row_h * i + row_h / 2
        body.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        if ci_low is not None and ci_high is not None:
            body.append(
                f'<line x1="{x(ci_low):.1f}" y1="{y:.1f}" x2="{x(ci_high):.1f}" y2="{y:.1f}" '
                f'stroke="{colour(i)}" stroke-width="2"/>'
            )
        body.append(f'<circle cx="{x(mean):.1f}" cy="{y:.1f}" r="4.5" fill="{colour(i)}"/>')
    for tick in _ticks(low, high):
        body.append(f'<text x="{x(tick):.1f}" y="{height - 10}" text-anchor="middle" fill="#555">{fmt(tick)}</text>')
    return _svg(width, height, body, title)


def cdf_plot(title: str, unit: str, probabilities: Sequence[float], series: dict[str, Sequence[float] | None]) -> str:
    """Empirical CDFs, one line per arm (x: value from its quantiles, y: share of calls at or below)."""
    width, height, left, right, top, bottom = 640, 300, 50, 140, 26, 34
    present = {name: values for name, values in series.items() if values}
    values = [v for line in present.values() for v in line] or [0.0]
    low, high = _padded(min(values), max(values))

    def x(v: float) -> float:
        return left + (v - low) / (high - low) * (width - left - right)

    def y(p: float) -> float:
        return top + (1 - p) * (height - top - bottom)

    body = [f'<text x="{left}" y="16" font-weight="bold">{escape(title)}</text>']
    body.append(
        f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
        'fill="none" stroke="#ccc"/>'
    )
    for p in (0.25, 0.5, 0.75, 1.0):
        body.append(f'<text x="{left - 6}" y="{y(p) + 4:.1f}" text-anchor="end" fill="#555">{p:g}</text>')
    for tick in _ticks(low, high):
        body.append(f'<text x="{x(tick):.1f}" y="{height - 18}" text-anchor="middle" fill="#555">{fmt(tick)}</text>')
    body.append(
        f'<text x="{(left + width - right) / 2:.0f}" y="{height - 4}" text-anchor="middle">{escape(unit)}</text>'
    )
    for i, (name, line) in enumerate(series.items()):
        if not line:
            continue
        points = " ".join(f"{x(v):.1f},{y(p):.1f}" for v, p in zip(line, probabilities, strict=True))
        body.append(f'<polyline points="{points}" fill="none" stroke="{colour(i)}" stroke-width="2"/>')
        body.append(f'<rect x="{width - right + 10}" y="{top + 16 * i}" width="10" height="10" fill="{colour(i)}"/>')
        body.append(f'<text x="{width - right + 25}" y="{top + 16 * i + 9}">{escape(name)}</text>')
    if not present:
        body.append(f'<text x="{left + 10}" y="{top + 20}" fill="#555">no values</text>')
    return _svg(width, height, body, title)


def histogram(title: str, counts: Sequence[int], colour_index: int) -> str:
    """Bars over equal-width bins of [0, 1]."""
    width, height, left, top, bottom = 320, 180, 36, 26, 30
    plot_w, plot_h = width - left - 10, height - top - bottom
    peak = max(counts) if counts and max(counts) else 1
    bar = plot_w / max(len(counts), 1)
    body = [f'<text x="{left}" y="16" font-weight="bold">{escape(title)}</text>']
    for i, count in enumerate(counts):
        h = count / peak * plot_h
        body.append(
            f'<rect x="{left + i * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
            f'fill="{colour(colour_index)}"><title>{i / len(counts):.2f}–{(i + 1) / len(counts):.2f}: '
            f"{count}</title></rect>"
        )
    body.append(f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" fill="#555">{peak}</text>')
    for tick in (0, 0.5, 1):
        body.append(
            f'<text x="{left + tick * plot_w:.1f}" y="{height - 14}" text-anchor="middle" fill="#555">{tick:g}</text>'
        )
    body.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 2}" text-anchor="middle">edit similarity</text>')
    return _svg(width, height, body, title)


def wins_bars(title: str, labels: Sequence[str], counts: Sequence[tuple[int, int, int]]) -> str:
    """Stacked horizontal bars of wins / ties / losses as shares of the paired rows."""
    row_h, left, right, top = 22, 230, 20, 40
    width, height = 640, top + row_h * len(labels) + 10
    plot_w = width - left - right
    body = [f'<text x="10" y="16" font-weight="bold">{escape(title)}</text>']
    for i, (name, fill) in enumerate((("wins", WIN), ("ties", TIE), ("losses", LOSS))):
        body.append(f'<rect x="{left + 80 * i}" y="22" width="10" height="10" fill="{fill}"/>')
        body.append(f'<text x="{left + 80 * i + 14}" y="31">{name}</text>')
    for i, (label, triple) in enumerate(zip(labels, counts, strict=True)):
        y, total, x = top + row_h * i, max(sum(triple), 1), float(left)
        body.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{escape(label)}</text>')
        for count, fill in zip(triple, (WIN, TIE, LOSS), strict=True):
            w = count / total * plot_w
            body.append(
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" fill="{fill}">'
                f"<title>{count}</title></rect>"
            )
            x += w
    return _svg(width, height, body, title)
