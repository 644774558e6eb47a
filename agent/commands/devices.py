"""`obsagent devices`: what is on the INDI server and what each device can do."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from agent.devices import IndiClient, describe, parse_address

DEFAULT_INDI = "localhost:7624"


def add_indi_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--indi", default=DEFAULT_INDI, metavar="HOST:PORT", help="INDI server (default %(default)s)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list INDI devices, their capabilities and key settings")
    add_indi_option(p)
    p.add_argument("--connect", action="store_true", help="connect each device first to read its settings")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    host, port = parse_address(args.indi)
    with IndiClient(host, port) as client:
        client.settle(quiet=0.5, timeout=5.0)
        client.wait_driver_info()
        if args.connect:
            for device in client.devices():
                client.connect_device(device)
        found = [describe(client, d) for d in client.devices()]
    if args.json:
        print(json.dumps([asdict(d) for d in found], indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"INDI devices on {args.indi}")
    for column in ("device", "driver", "connected", "capabilities", "settings"):
        table.add_column(column)
    for d in found:
        settings = ", ".join(f"{k}={v}" for k, v in d.settings.items())
        table.add_row(d.name, d.driver, "yes" if d.connected else "no", ", ".join(d.capabilities), settings)
    Console().print(table)
    if not found:
        print("no devices: is a driver running under this indiserver?")
    return 0
