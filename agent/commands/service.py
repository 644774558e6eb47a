"""`obsagent service install FILE`: run `obsagent serve FILE` as a systemd service, night after night."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

import agent
from agent.config import load_sequence
from agent.service.install import install_unit
from agent.service.unit import SERVICE_USER, UnitSettings, render_unit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("service", help="install the systemd unit that runs `obsagent serve` at boot")
    actions = p.add_subparsers(dest="service_action", metavar="ACTION")
    actions.required = True
    i = actions.add_parser("install", help="write the unit (checks the sequence file first)")
    i.add_argument("file", help="sequence file (YAML) the service runs")
    scope = i.add_mutually_exclusive_group()
    scope.add_argument("--system", dest="scope", action="store_const", const="system",
                       help=f"a system unit run by user {SERVICE_USER}, data in /var/lib/obsagent (default; needs root)")  # fmt: skip
    scope.add_argument("--user", dest="scope", action="store_const", const="user",
                       help="a unit of your own user, data in ~/.local/share/obsagent")  # fmt: skip
    i.add_argument("--print", dest="print_only", action="store_true", help="print the unit, write nothing")
    i.add_argument("--data", help="data directory the service uses instead of the default")
    i.set_defaults(handler=run, scope="system")


def run(args: argparse.Namespace) -> int:
    sequence = Path(args.file).expanduser().absolute()
    load_sequence(sequence)  # a file that does not validate would fail at every start
    settings = UnitSettings(
        sequence=sequence,
        scope=args.scope,
        data=Path(args.data).expanduser().absolute() if args.data else None,
        python=Path(sys.executable),
    )
    if args.print_only:
        sys.stdout.write(render_unit(settings))
        return 0
    done = install_unit(settings, package=Path(agent.__file__).parent)
    what = "replaced" if done.replaced else "wrote"
    user = f"; created system user {SERVICE_USER}" if done.created_user else ""
    print(f"{what} {done.path}{user}")
    if settings.scope == "system":
        if settings.data:
            print(f"the service writes to {settings.data}: make it writable by {SERVICE_USER} "
                  f"(sudo chown -R {SERVICE_USER}: {settings.data})")  # fmt: skip
        print("start it now and at every boot: sudo systemctl daemon-reload && sudo systemctl enable --now obsagent")
        print("follow it: journalctl -u obsagent -f")
    else:
        print("start it now and at every boot: systemctl --user daemon-reload && systemctl --user enable --now obsagent")
        print(f"keep it running without a login: sudo loginctl enable-linger {getpass.getuser()}")
        print("follow it: journalctl --user -u obsagent -f")
    return 0
