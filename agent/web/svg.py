"""Small inline SVG plots drawn on the server: the night's timeline, cooler and weather, bars.

Inline SVG needs no JavaScript, no plotting library in the web process and no file to serve.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape
from typing import Any

COLOURS = {"dark": "#1d2433", "flats": "#2aa9c9", "lights": "#3fae5a", "gap": "#b05ac8", "now": "#e8423f"}
FILTER_COLOURS = ["#888", "#d9534f", "#5cb85c", "#428bca", "#f0ad4e", "#9b59b6", "#1abc9c", "#e67e22"]


def _parse(when: Any) -> dt.datetime | None:
    """A plan time ({"utc": iso}) or an ISO string, as an aware datetime."""
    if isinstance(when, dict):
        when = when.get("utc")
    if not isinstance(when, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(when)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def timeline(plan: dict[str, Any], now: dt.datetime | None = None, width: int = 900) -> str:
    """Twilights, sky-flat windows, imaging blocks and gaps on one time axis."""
    start, end = _parse(plan.get("start")), _parse(plan.get("end"))
    if start is None or end is None or end <= start:
        return ""
    span = (end - start).total_seconds()
    left, right = 10, width - 10

    def x(moment: dt.datetime | None) -> float:
        if moment is None:
            return left
        return left + (right - left) * min(max((moment - start).total_seconds() / span, 0.0), 1.0)

    parts = [f'<svg class="plot timeline" viewBox="0 0 {width} 120" role="img" aria-label="plan of the night">']
    dark = plan.get("dark") or {}
    if dark:
        x0, x1 = x(_parse(dark.get("start"))), x(_parse(dark.get("end")))
        parts.append(f'<rect x="{x0:.1f}" y="0" width="{x1 - x0:.1f}" height="100" fill="{COLOURS["dark"]}" opacity="0.25"/>')

    def band(y: int, kind: str, s: Any, e: Any, label: str) -> None:
        x0, x1 = x(_parse(s)), x(_parse(e))
        parts.append(
            f'<g class="band {kind}"><title>{escape(label)}</title>'
            f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1.5):.1f}" height="20" rx="3" fill="{COLOURS[kind]}"/>'
            f'<text x="{x0 + 3:.1f}" y="{y + 14}" class="band-label">{escape(label[:40])}</text></g>'
        )

    for w in plan.get("sky_flat_windows") or []:
        if w.get("start") and w.get("end"):
            band(8, "flats", w["start"], w["end"], f"sky flats ({w.get('period', '')})")
    for b in plan.get("blocks") or []:
        band(36, "lights", b.get("start"), b.get("end"),
             f"{b.get('target')} {b.get('count')}×{b.get('exposure')}s {b.get('filter')}")  # fmt: skip
    for g in plan.get("gaps") or []:
        band(64, "gap", g.get("start"), g.get("end"), str(g.get("label") or "gap"))
    # hour ticks
    tick = start.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    while tick < end:
        tx = x(tick)
        parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="92" y2="100" stroke="#999"/>'
                     f'<text x="{tx:.1f}" y="114" class="tick">{tick:%H}</text>')  # fmt: skip
        tick += dt.timedelta(hours=1)
    if now is not None and start <= now <= end:
        parts.append(f'<line class="now" x1="{x(now):.1f}" x2="{x(now):.1f}" y1="0" y2="100" stroke="{COLOURS["now"]}" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def line_plot(
    series: Sequence[tuple[str, Sequence[tuple[dt.datetime, float]], str]],
    *, width: int = 900, height: int = 160, unit: str = "", label: str = "plot",
) -> str:
    """One or more time series (name, points, colour) on shared axes."""
    points = [p for _, pts, _ in series for p in pts]
    if len(points) < 2:
        return ""
    t0 = min(p[0] for p in points)
    t1 = max(p[0] for p in points)
    lo = min(p[1] for p in points)
    hi = max(p[1] for p in points)
    if hi - lo < 1.0:
        lo, hi = lo - 0.5, hi + 0.5
    tspan = (t1 - t0).total_seconds() or 1.0
    pad_l, pad_b = 40, 20

    def xy(t: dt.datetime, v: float) -> str:
        px = pad_l + (width - pad_l - 10) * (t - t0).total_seconds() / tspan
        py = 8 + (height - pad_b - 8) * (1 - (v - lo) / (hi - lo))
        return f"{px:.1f},{py:.1f}"

    out = [f'<svg class="plot" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">']
    for v in (lo, hi):
        y = 8 + (height - pad_b - 8) * (1 - (v - lo) / (hi - lo))
        out.append(f'<text x="2" y="{y + 4:.1f}" class="tick">{v:.1f}{escape(unit)}</text>')
    out.append(f'<text x="{pad_l}" y="{height - 4}" class="tick">{t0:%H:%M}</text>'
               f'<text x="{width - 50}" y="{height - 4}" class="tick">{t1:%H:%M}</text>')  # fmt: skip
    for name, pts, colour in series:
        if pts:
            path = " ".join(xy(t, v) for t, v in pts)
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"><title>{escape(name)}</title></polyline>')
    out.append("</svg>")
    return "".join(out)


def safety_strip(samples: Sequence[tuple[dt.datetime, bool]], width: int = 900) -> str:
    """Safe (green) and unsafe (red) stretches of the night."""
    if len(samples) < 2:
        return ""
    t0, t1 = samples[0][0], samples[-1][0]
    span = (t1 - t0).total_seconds() or 1.0
    out = [f'<svg class="plot strip" viewBox="0 0 {width} 24" role="img" aria-label="weather safety">']
    for (t, safe), (t_next, _) in zip(samples, samples[1:], strict=False):
        x0 = (width - 2) * (t - t0).total_seconds() / span
        x1 = (width - 2) * (t_next - t0).total_seconds() / span
        out.append(f'<rect x="{x0:.1f}" y="2" width="{max(x1 - x0, 0.5):.1f}" height="20" fill="{"#3fae5a" if safe else "#d9534f"}"/>')
    out.append("</svg>")
    return "".join(out)


def bars(rows: Sequence[tuple[str, Sequence[tuple[str, float]]]], *, unit: str = "", width: int = 700) -> str:
    """Horizontal stacked bars: one row per label, segments (name, value)."""
    if not rows:
        return ""
    top = max(sum(v for _, v in segs) for _, segs in rows) or 1.0
    names = sorted({n for _, segs in rows for n, _ in segs})
    colour = {n: FILTER_COLOURS[i % len(FILTER_COLOURS)] for i, n in enumerate(names)}
    h = 22 * len(rows) + 26
    out = [f'<svg class="plot bars" viewBox="0 0 {width} {h}" role="img" aria-label="bar chart">']
    for i, (label, segs) in enumerate(rows):
        y = 4 + 22 * i
        out.append(f'<text x="0" y="{y + 14}" class="tick">{escape(label[:22])}</text>')
        x = 150.0
        for name, v in segs:
            w = (width - 220) * v / top
            out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="18" fill="{colour[name]}"><title>{escape(name)}: {v:g}{escape(unit)}</title></rect>')
            x += w
        out.append(f'<text x="{x + 4:.1f}" y="{y + 14}" class="tick">{sum(v for _, v in segs):g}{escape(unit)}</text>')
    legend_y = h - 6
    for i, n in enumerate(names):
        out.append(f'<rect x="{150 + 70 * i}" y="{legend_y - 10}" width="10" height="10" fill="{colour[n]}"/>'
                   f'<text x="{164 + 70 * i}" y="{legend_y}" class="tick">{escape(n)}</text>')  # fmt: skip
    out.append("</svg>")
    return "".join(out)


def cooler_plot(cooler: Sequence[dict[str, Any]]) -> str:
    temps, sets = [], []
    for s in cooler:
        t = _parse(s.get("time"))
        if t is None:
            continue
        if s.get("temperature") is not None:
            temps.append((t, float(s["temperature"])))
        if s.get("set_point") is not None:
            sets.append((t, float(s["set_point"])))
    return line_plot([("sensor", temps, "#428bca"), ("set-point", sets, "#999")], unit=" °C", label="cooler temperature")


def weather_strip(weather: Sequence[dict[str, Any]]) -> str:
    samples = [(t, bool(s.get("safe"))) for s in weather if (t := _parse(s.get("time"))) is not None]
    return safety_strip(samples)
