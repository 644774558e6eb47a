"""Test-wide settings: numba cache in a writable place, astropy offline, no network beyond loopback."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "obsagent" / "numba"))
Path(os.environ["NUMBA_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)

from agent import offline  # noqa: E402

offline.configure()

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    """Tests must never reach the network: refuse any non-loopback TCP/UDP destination."""
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = ipaddress.ip_address(socket.gethostbyname(host)) if host == "localhost" else None
        if ip is None or not ip.is_loopback:
            raise OSError(f"test tried to reach the network ({host}); tests must run offline")
    return _real_connect(self, address)  # type: ignore[arg-type]


socket.socket.connect = _loopback_only  # type: ignore[method-assign]

# Every tests/*_fixtures.py module is a fixture plugin: test modules use its fixtures without importing them.
pytest_plugins = sorted(f"tests.{p.stem}" for p in Path(__file__).parent.glob("*_fixtures.py"))
