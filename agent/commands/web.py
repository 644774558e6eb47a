"""`obsagent web`: the dashboard and JSON API, served from the mount."""

from __future__ import annotations

import argparse
import errno
import os
import socket
from typing import TYPE_CHECKING

from agent.errors import ConfigError, ObsAgentError
from agent.paths import data_dir

if TYPE_CHECKING:
    from agent.web.security import WebSettings

DEFAULT_LISTEN = "127.0.0.1:8080"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="serve the dashboard and JSON API (read-only; actions need a token)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"address to listen on (default {DEFAULT_LISTEN}; any other host needs --token)")  # fmt: skip
    p.add_argument("--data", help="data directory (default: OBSAGENT_DATA or ~/.local/share/obsagent)")
    p.add_argument("--token", help="shared secret for actions and remote access (default: OBSAGENT_WEB_TOKEN)")
    p.add_argument("--anonymous-read", action="store_true",
                   help="on a non-loopback address, show read-only pages without the token")  # fmt: skip
    p.add_argument("--sequence", metavar="FILE",
                   help="sequence file whose calibration policy (frames per master, ages, tolerances) "
                        "the pages use; default: the library's defaults")  # fmt: skip
    p.set_defaults(handler=run)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "8080"
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"--listen {text!r}: write HOST:PORT, e.g. --listen 127.0.0.1:8080")
    return host, int(port)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from agent.web.app import create_app
    except ImportError as exc:
        raise ConfigError(f"the web dashboard needs its extra packages ({exc.name}); "
                          "install them with `pip install 'obsagent[web]'`") from exc  # fmt: skip
    settings = web_settings(args)
    app = create_app(settings)  # refuses an unsafe configuration before listening
    host, port = settings.host, settings.port
    policy = f", calibration policy of {args.sequence}" if getattr(args, "sequence", None) else ""
    print(f"obsagent web on http://{host}:{port}/ (data {settings.data_dir}{policy})", flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            server_header=False, proxy_headers=False)  # fmt: skip
    sock = bind(host, port)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def web_settings(args: argparse.Namespace) -> WebSettings:
    """The dashboard's settings from the command line (and OBSAGENT_WEB_TOKEN)."""
    from agent.web.security import WebSettings

    host, port = parse_listen(args.listen)
    token = args.token or os.environ.get("OBSAGENT_WEB_TOKEN") or None
    settings = WebSettings(
        data_dir=data_dir(args.data), host=host, port=port, token=token, anonymous_read=args.anonymous_read
    )
    if getattr(args, "sequence", None):
        from agent.config import load_sequence
        from agent.library.policy import library_policy

        settings.policy = library_policy(load_sequence(args.sequence))
    return settings


def bind(host: str, port: int) -> socket.socket:
    """Bind here, so a taken port is one line naming the fix (uvicorn would exit on its own)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off only on sockets that say they are TCP, and with
    # Nagle on a small page waits 40 ms for the client's delayed ACK of its headers.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ObsAgentError(f"{host}:{port} is already in use; choose another with --listen") from exc
        raise ObsAgentError(f"cannot listen on {host}:{port} ({exc.strerror}); check --listen") from exc
    sock.set_inheritable(True)
    return sock
