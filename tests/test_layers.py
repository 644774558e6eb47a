"""The import contracts hold on the tree, and they do fail when an arrow runs the wrong way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is a dev dependency")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


def _copy_tree(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("agent", "indi_sim"):
        shutil.copytree(ROOT / part, dest / part, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_contracts_hold_on_the_tree() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


WRONG_IMPORTS = [
    ("agent/stacking/_wrong.py", "import agent.library.store\n", "stacking is pure numerics"),
    ("agent/devices/_wrong.py", "from agent.night import runner\n", "devices know INDI"),
    ("agent/library/_wrong.py", "import agent.devices.camera\n", "the library calls stacking"),
    ("agent/sky/_wrong.py", "import agent.devices\n", "sky is pure astronomy"),
    ("agent/config/_wrong.py", "import agent.planner\n", "the sequence-file model"),
    ("agent/night/_wrong.py", "import agent.sync.worker\n", "the night decides"),
]


def test_a_wrong_import_breaks_make_lint(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    for module, line, _ in WRONG_IMPORTS:
        (tree / module).write_text(line)
    result = _lint(tree)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[1]
    for module, _, contract in WRONG_IMPORTS:
        assert contract in broken, contract
        assert module.removesuffix(".py").replace("/", ".") in broken, module


def test_no_module_is_over_500_lines() -> None:
    """A module that long holds more than one idea: split it by idea (docs/architecture.md)."""
    long = {
        str(p.relative_to(ROOT)): n
        for part in ("agent", "indi_sim")
        for p in (ROOT / part).rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert not long, long
