"""`make demo`: a whole simulated night, end to end, then the morning report and where the files are.

Starts the real indiserver with the indi_sim driver (site and clock from the example sequence),
runs the agent over the night at high speed, and prints the report.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from agent.cli import main as cli_main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "night.yaml"


def main() -> int:
    data = Path.cwd() / "demo-data"
    if data.exists():
        shutil.rmtree(data)
    print(f"running a simulated night from {EXAMPLE} (data in {data}) …")
    rc = cli_main(["run", str(EXAMPLE), "--sim", "--data", str(data)])
    if rc == 0:
        print(f"\nframes: {data / 'frames'}\ncalibrated lights: {data / 'calibrated'}\nmasters: {data / 'masters'}")
        print(f"try: .venv/bin/obsagent library status --data {data}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
