"""`obsagent validate FILE`: check a sequence file and list every problem with its line."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from agent.config import SequenceError, load_sequence


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a sequence file (every problem at once, with file:line)")
    p.add_argument("file", help="sequence file (YAML)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        seq = load_sequence(args.file)
    except SequenceError as exc:
        if not args.json:
            raise
        print(
            json.dumps(
                {"file": args.file, "valid": False, "problems": [asdict(p) for p in exc.problems]}, indent=2
            )
        )
        return 2
    summary = {
        "file": args.file,
        "valid": True,
        "site": seq.site.name,
        "filters": list(seq.filters),
        "targets": [
            {
                "name": t.name,
                "ra": round(t.ra_deg, 5),
                "dec": round(t.dec_deg, 5),
                "from_catalogue": t.catalogue_name,
                "frames": sum(e.count for e in t.exposures),
                "hours": round(sum(e.count * e.exposure for e in t.exposures) / 3600.0, 2),
            }
            for t in seq.targets
        ],
        "flats": seq.calibration.flats.source,
        "sync": seq.sync.url if seq.sync else None,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{args.file}: valid (version {seq.version})")
    print(
        f"  site     {seq.site.name} ({seq.site.latitude:+.4f}, {seq.site.longitude:+.4f}, {seq.site.timezone})"
    )
    print(f"  camera   {seq.indi.devices.camera} on {seq.indi.address}; filters {', '.join(seq.filters)}")
    for t in summary["targets"]:
        source = f" (catalogue {t['from_catalogue']})" if t["from_catalogue"] else ""
        print(f"  target   {t['name']}{source}: {t['frames']} frames, {t['hours']} h")
    print(f"  flats    {seq.calibration.flats.source}")
    return 0
