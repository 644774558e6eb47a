"""What flat acquisition learns and keeps between nights: trained panel settings and twilight samples.

Small JSON files under the data directory, rewritten atomically (temp file, fsync, rename) so a crash
mid-write leaves the previous version.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agent.errors import ObsAgentError
from agent.fitsfile import atomic_output
from agent.flats.target import PanelSettings

PANEL_FILE = "panel_flats.json"
TWILIGHT_FILE = "twilight.json"


class FlatStoreError(ObsAgentError):
    """A learned-settings file is unreadable."""


def read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise FlatStoreError(f"{path}: cannot read learned flat settings ({exc}); delete the file to relearn") from None
    if not isinstance(data, dict):
        raise FlatStoreError(f"{path}: not a JSON object; delete the file to relearn")
    return data


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    with atomic_output(path, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)


class TrainedPanelTable:
    """Brightness and exposure per flat group key (camera|filter|gain|binning|readout mode)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data = read_json(path)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> TrainedPanelTable:
        return cls(data_dir / "flats" / PANEL_FILE)

    def get(self, key: str) -> PanelSettings | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        try:
            return PanelSettings(entry["brightness"], float(entry["exposure"]), float(entry["level"]))
        except (KeyError, TypeError, ValueError):
            raise FlatStoreError(f"{self.path}: entry {key!r} is malformed; delete it to retrain") from None

    def put(self, key: str, settings: PanelSettings) -> None:
        self._data[key] = asdict(settings)
        write_json_atomic(self.path, self._data)

    def forget(self, key: str) -> None:
        if self._data.pop(key, None) is not None:
            write_json_atomic(self.path, self._data)

    def keys(self) -> list[str]:
        return sorted(self._data)
