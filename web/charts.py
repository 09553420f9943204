"""Charts as inline SVG rendered on the server: no script, no build, readable on a phone."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

ROW = 22
LABEL_W = 110
BAR_W = 220
NUM_W = 90


def hbars(items: Sequence[tuple[str, float, str]], *, chart_id: str = "", title: str = "",
          color: str = "#2d6cdf") -> Markup:
    """Horizontal bars: (label, value, text shown at the end); scaled to the largest value."""
    top = max((v for _, v, _ in items), default=0) or 1
    height = ROW * max(len(items), 1) + 4
    width = LABEL_W + BAR_W + NUM_W
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
             f'width="100%" preserveAspectRatio="xMinYMin meet"'
             + (f' id="{escape(chart_id)}"' if chart_id else "")
             + f'><title>{escape(title)}</title>']
    for i, (label, value, shown) in enumerate(items):
        y = i * ROW + 2
        w = 0 if value <= 0 else max(2.0, BAR_W * value / top)
        parts.append(
            f'<g class="bar" data-label="{escape(label)}" data-value="{value:g}">'
            f'<text x="{LABEL_W - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{LABEL_W}" y="{y + 3}" width="{w:.1f}" height="{ROW - 6}" rx="2" '
            f'fill="{color}"/>'
            f'<text x="{LABEL_W + w + 4:.1f}" y="{y + 15}">{escape(shown)}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def columns(items: Sequence[tuple[str, int]], *, chart_id: str = "", title: str = "",
            color: str = "#2d6cdf", every: int = 7) -> Markup:
    """Vertical columns over time (e.g. sign-ups per day), a label every ``every`` columns."""
    n = max(len(items), 1)
    top = max((v for _, v in items), default=0) or 1
    col = 12
    width, plot_h = n * col + 40, 120
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {plot_h + 24}" '
             f'width="100%" preserveAspectRatio="xMinYMin meet"'
             + (f' id="{escape(chart_id)}"' if chart_id else "")
             + f'><title>{escape(title)}</title>'
             f'<text x="0" y="10" class="axis">{top:,}</text>'
             f'<line x1="36" y1="{plot_h}" x2="{width}" y2="{plot_h}" stroke="#ccd"/>']
    for i, (label, value) in enumerate(items):
        h = 0 if value <= 0 else max(1.0, (plot_h - 14) * value / top)
        x = 38 + i * col
        parts.append(f'<rect x="{x}" y="{plot_h - h:.1f}" width="{col - 3}" height="{h:.1f}" '
                     f'fill="{color}" data-label="{escape(label)}" data-value="{value}">'
                     f'<title>{escape(label)}: {value:,}</title></rect>')
        if i % every == 0 or i == n - 1:
            parts.append(f'<text x="{x}" y="{plot_h + 16}" class="axis">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
