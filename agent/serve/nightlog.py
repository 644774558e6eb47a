"""One log file per night under `<data>/logs/`, beside whatever else the process logs to."""

from __future__ import annotations

import logging
from pathlib import Path


def attach_night_log(root: Path, night: str) -> logging.Handler:
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(logs / f"{night}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
        for h in logging.getLogger().handlers:
            if h is not handler and isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                h.setLevel(logging.WARNING)
    return handler
