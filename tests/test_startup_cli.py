"""`obsagent --help` lists every command without importing any (start-up stays a fraction of a second)."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from agent import cli


def _registered_help(name: str) -> str:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(f"agent.commands.{name}").register(sub)
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return next(c.help for c in action._choices_actions if c.dest == name) or ""


def test_summaries_read_from_source_match_what_each_command_registers() -> None:
    for name in cli.command_names():
        assert cli.command_summary(name) == _registered_help(name), name


def test_top_level_help_imports_no_command_module() -> None:
    probe = (
        "import sys, contextlib, io\n"
        "from agent import cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['--help'])\n"
        "heavy = [m for m in ('numba', 'astropy', 'PyIndi', 'agent.commands.stack') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_command_is_refused_by_the_light_parser(capsys: object) -> None:
    try:
        cli.main(["no-such-command"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("expected argparse to exit")
