"""The largest answers, computed in a short-lived process of their own.

Working out what 50,000 frames need, or every light's night and target, builds millions of small
objects; even once freed, what they leave behind pins the allocator's arenas and the web process
would stay megabytes larger for good. Computed in a child that exits, the web keeps only the
answer, which is a few buffers (`NeedsView`, `LightsIndex`). The work also leaves the web's
interpreter lock alone, so pages stay quick while it runs.

    python -m agent.web.answer_worker DATA NAME < policy.pickle > answer.pickle

Only the web's own child writes what the parent unpickles.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import agent
from agent.library.keys import LibraryPolicy
from agent.library.queries import groups, lights, needs_view
from agent.library.queries.readonly import ReadOnlyLibrary, open_readonly

MODULE = "agent.web.answer_worker"
TIMEOUT_SECONDS = 600.0

COMPUTE: dict[str, Callable[[ReadOnlyLibrary, LibraryPolicy], Any]] = {
    "needs": lambda lib, policy: needs_view.needs_view(lib, policy),
    "lights": lambda lib, policy: lights.lights_index(lib),
    "groups": lambda lib, policy: groups.groups_view(lib, policy),
}


class AnswerWorkerFailed(RuntimeError):
    """The worker process could not compute the answer (its last words say why)."""


def compute_elsewhere(root: Path, name: str, policy: LibraryPolicy, timeout: float = TIMEOUT_SECONDS) -> Any:
    """Answer `name` for the library in `root` from a child process."""
    source = str(Path(agent.__file__).resolve().parent.parent)  # the child finds this very package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run(
        [sys.executable, "-m", MODULE, str(root), name],
        input=pickle.dumps(policy),
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise AnswerWorkerFailed(f"answer {name!r}: worker exited with {done.returncode}: {last[0]}")
    return pickle.loads(done.stdout)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[1] not in COMPUTE:
        print(f"usage: python -m {MODULE} DATA {{{','.join(COMPUTE)}}} < policy.pickle", file=sys.stderr)
        return 2
    policy = pickle.load(sys.stdin.buffer)
    lib = open_readonly(Path(argv[0]))
    if lib is None:
        print(f"no library in {argv[0]}", file=sys.stderr)
        return 1
    pickle.dump(COMPUTE[argv[1]](lib, policy), sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
