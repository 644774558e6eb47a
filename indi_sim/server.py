"""Start and stop a real `indiserver` with a set of drivers.

Used by `obsagent sim`, `make demo` and the test fixtures. Each server gets its own TCP port and
its own local socket path (`-u`), so several can run at once. Readiness is detected by connecting
to the port, never by sleeping a fixed time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from agent.errors import IndiError

STOCK_SIMULATORS = (
    "indi_simulator_ccd",
    "indi_simulator_wheel",
    "indi_simulator_lightpanel",
    "indi_simulator_telescope",
)


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class IndiServer:
    """An `indiserver` process with drivers; `stop()`/`start()` keep the same port (restart tests)."""

    def __init__(
        self,
        drivers: Sequence[str],
        port: int | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        max_restarts: int = 0,
    ) -> None:
        if shutil.which("indiserver") is None:
            raise IndiError("indiserver not found; install the Debian package indi-bin (make setup does it)")
        self.drivers = list(drivers)
        self.port = port or free_port()
        self._tmp = tempfile.mkdtemp(prefix="obsagent-indi-")
        self.socket_path = str(Path(self._tmp) / "indiserver.sock")
        self.fifo_path = str(Path(self._tmp) / "indiserver.fifo")
        self.log_path = Path(log_dir or self._tmp) / f"indiserver-{self.port}.log"
        self.env = {**os.environ, **(env or {})}
        self.max_restarts = max_restarts
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        if not os.path.exists(self.fifo_path):
            os.mkfifo(self.fifo_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        cmd = [
            "indiserver", "-v", "-p", str(self.port), "-u", self.socket_path,
            "-r", str(self.max_restarts), "-f", self.fifo_path, *self.drivers,
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise IndiError(f"indiserver exited at start (code {self.proc.returncode}); see {self.log_path}")
            if _port_open(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise IndiError(f"indiserver did not open port {self.port} within {timeout:.0f} s; see {self.log_path}")

    def stop(self, kill: bool = False) -> None:
        """Stop the server and its drivers (the whole process group)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def driver_command(self, line: str) -> None:
        """Send a line to the server's fifo, e.g. 'start indi_simulator_ccd' or 'stop indi_simulator_ccd'."""
        with open(self.fifo_path, "w") as fifo:
            fifo.write(line + "\n")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> IndiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)


@contextlib.contextmanager
def running_server(drivers: Sequence[str], **kwargs: object) -> Iterator[IndiServer]:
    server = IndiServer(drivers, **kwargs)  # type: ignore[arg-type]
    with server:
        yield server
