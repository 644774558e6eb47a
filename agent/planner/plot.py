"""Draw a night plan: Sun and target altitudes, sky-flat windows, scheduled lights and gaps.

matplotlib is an optional extra (`pip install obsagent[plot]`): it is imported only here, only
when a plot is asked for.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from agent.errors import ObsAgentError
from agent.planner import NightPlan


class PlotUnavailable(ObsAgentError):
    """matplotlib is not installed."""


def plot_night(plan: NightPlan, path: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib; install the plot extra: pip install 'obsagent[plot]'"
        ) from None
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(plan.timezone)

    def x(moment: dt.datetime) -> float:
        return float(mdates.date2num(moment))

    def xs(unix: np.ndarray) -> np.ndarray:
        return np.asarray(mdates.date2num([dt.datetime.fromtimestamp(float(t), tz=dt.UTC) for t in unix]))

    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=100)
    tracks = plan.tracks
    if tracks is not None:
        ax.plot(xs(tracks.sun_times), tracks.sun_altitude, color="black", ls="--", lw=1.5, label="Sun")
        for name, altitude in tracks.target_altitude.items():
            ax.plot(xs(tracks.target_times), altitude, lw=1.2, label=name)
    for window in plan.sky_flat_windows:
        if window.start is not None and window.end is not None:
            ax.axvspan(x(window.start), x(window.end), color="tab:cyan", alpha=0.25)
    for gap in plan.gaps:
        ax.axvspan(x(gap.start), x(gap.end), color="tab:purple", alpha=0.15)
    for block in plan.blocks:
        ax.plot([x(block.start), x(block.end)], [-25, -25], lw=8, solid_capstyle="butt")
        ax.text(x(block.start), -22, f"{block.target} {block.filter}", fontsize=7, rotation=30)
    for level in (0, -6, -12, -18):
        ax.axhline(level, color="grey", lw=0.5, ls=":")
    ax.set_ylim(-30, 90)
    ax.set_xlim(x(plan.start), x(plan.end))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone))
    ax.set_xlabel(f"local time ({plan.timezone})")
    ax.set_ylabel("altitude (deg)")
    ax.set_title(f"{plan.site}, night of {plan.date.isoformat()}: flats (cyan), gaps (purple), lights (bars)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out
