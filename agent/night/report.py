"""The morning report: what was captured, which masters were built, what is still needed, warnings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.night.progress import ProgressStore

if TYPE_CHECKING:
    from agent.library.keys import LibraryPolicy


def build_report(root: Path, night: str | None = None, policy: LibraryPolicy | None = None) -> dict[str, Any]:
    """The report of `night` (default: the latest). What is still needed is judged with `policy`,
    the sequence file's (`library_policy`), else the library's defaults."""
    from agent.library.keys import LibraryPolicy
    from agent.library.needs import needs
    from agent.library.store import Library

    store = ProgressStore(root)
    nights = store.nights()
    if night is None:
        if not nights:
            return {"night": None, "error": "no night has run yet with this data directory"}
        night = nights[-1]
    elif night not in nights and not (root / "frames" / night).is_dir():
        known = ", ".join(nights[-5:]) if nights else "none yet"
        return {"night": None, "error": f"no night {night} in {root} (nights: {known})"}
    progress = store.load(night)
    night_dir = (root / "frames" / night).resolve()
    with Library.open(root) as lib:
        captured, lights, tonight = lib.night_summary(night_dir)
        gates = lib.night_gates(night_dir)
        masters = []
        for m in lib.masters():
            if m.id in tonight:
                entry = m.as_dict()
                entry["describe"] = m.key.describe()
                masters.append(entry)
        judged = policy if policy is not None else LibraryPolicy()
        remaining = [n.as_dict() for n in needs(lib, judged) if n.kind in ("missing", "expired", "waiting")]
    return {
        "night": night,
        "state": progress.state if progress else None,
        "resumed": progress.resumed if progress else 0,
        "captured": captured,
        "lights": lights,
        "masters_built": masters,
        "needs": remaining,
        "warnings": progress.warnings if progress else [],
        "faults": dict(progress.faults) if progress else {},
        "closed_up": list(progress.safety) if progress else [],
        "gates": gates,
        "frames_dir": str(night_dir),
        "data_dir": str(root),
    }


def print_report(report: dict[str, Any], as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if report.get("night") is None:
        console.print(report.get("error", "nothing to report"))
        return
    console.print(f"[bold]Night of {report['night']}[/bold] — final state {report['state']}"
                  + (f", resumed {report['resumed']}×" if report["resumed"] else ""))
    table = Table(title="captured")
    table.add_column("frame type")
    table.add_column("frames", justify="right")
    for kind, n in sorted(report["captured"].items()):
        table.add_row(str(kind), str(n))
    console.print(table)
    if report["lights"]:
        console.print("lights: " + ", ".join(f"{n} {status}" for status, n in sorted(report["lights"].items())))
    masters = Table(title="masters")
    for col in ("id", "type", "configuration", "frames"):
        masters.add_column(col)
    for m in report["masters_built"]:
        masters.add_row(str(m.get("id")), str(m.get("frame_type")), str(m.get("describe", m.get("key", ""))),
                        str(m.get("n_sources")))
    console.print(masters)
    if report["needs"]:
        console.print(f"still needed: {len(report['needs'])}")
        for n in report["needs"][:10]:
            console.print(f"  - {n.get('reason')}")
    if report.get("gates"):
        console.print(f"[yellow]quality gates fired: {len(report['gates'])}[/yellow]")
        for g in report["gates"][:20]:
            console.print(f"  - {g['gate']}: {g['file']}: {g['reason']}")
    for c in report.get("closed_up", []):
        steps = ", ".join(f"{what} {c[key]:.1f} s" for what, key in (
            ("exposure stopped", "aborted_s"), ("cap closed", "cap_closed_s"), ("parked", "parked_s"))
            if c.get(key) is not None)
        again = f"; sky used again at {c['reopened'][11:16]}" if c.get("reopened") else ""
        console.print(f"closed up at {c['at'][11:19]} UTC ({c['reason']}): {steps}{again}")
    if report.get("faults"):
        console.print("faults: " + ", ".join(f"{n} {cause}" for cause, n in sorted(report["faults"].items())))
    for w in report["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {w}")
    console.print(f"frames: {report['frames_dir']}")
