"""`make demo`: a short session against simulated devices, printing where the files are.

Runs the real indiserver with simulator drivers on a free port, connects through the device
layer and captures a few frames of every kind.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from agent.cli import main as cli_main
from indi_sim.server import STOCK_SIMULATORS, IndiServer


def main() -> int:
    out = Path.cwd() / "demo-data" / "capture"
    if out.exists():
        shutil.rmtree(out)
    home = tempfile.mkdtemp(prefix="obsagent-demo-home-")
    with IndiServer(STOCK_SIMULATORS, env={"HOME": home}) as server:
        print(f"indiserver with the stock simulators on {server.address}")
        rc = cli_main(["devices", "--indi", server.address])
        plan = [
            ("bias", 0.0, None), ("dark", 1.0, None), ("flat", 0.5, "Red"), ("darkflat", 0.5, None),
            ("light", 1.0, "Red"),
        ]
        for frame_type, exposure, filt in plan:
            args = ["capture", "--indi", server.address, "--type", frame_type, "--exposure", str(exposure),
                    "--count", "2", "--out", str(out / frame_type)]
            if filt:
                args += ["--filter", filt]
            rc = rc or cli_main(args)
    shutil.rmtree(home, ignore_errors=True)
    if rc == 0:
        print(f"\ndemo frames are in {out}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
