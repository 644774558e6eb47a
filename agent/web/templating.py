"""The page templates and the filters they format times and numbers with."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

from agent import __version__
from agent.web import svg

TEMPLATES = Path(__file__).parent / "templates"


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    env = templates.env
    env.filters["when"] = when
    env.filters["ago"] = ago
    env.filters["num"] = num
    env.globals["version"] = __version__
    return templates


def when(ts: Any) -> str:
    if ts is None or ts == "":
        return "—"
    if isinstance(ts, str):
        moment = svg._parse(ts)
        return ts if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")
    return dt.datetime.fromtimestamp(float(ts), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(ts: Any) -> str:
    if ts is None:
        return "—"
    if isinstance(ts, str):
        moment = svg._parse(ts)
        if moment is None:
            return ts
        seconds = (dt.datetime.now(dt.UTC) - moment).total_seconds()
    else:
        seconds = time.time() - float(ts)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def num(v: Any, digits: int = 1) -> str:
    if v is None or v == "":
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}".rstrip("0").rstrip(".") if v != int(v) else f"{v:g}"
    return str(v)
