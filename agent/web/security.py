"""Who may read and who may act: the token, browser sessions and CSRF tokens.

One shared secret (the token) guards everything. Scripts send it as `Authorization: Bearer`;
a browser trades it once at /login for a session cookie (HttpOnly, SameSite=Strict) whose
signature is derived from the token, so changing the token logs every browser out. Forms that
act carry a CSRF token derived from the session; a cross-site page can neither read it nor
send the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import ConfigError
from agent.library.keys import LibraryPolicy

SESSION_COOKIE = "obsagent_session"
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class WebSettings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    anonymous_read: bool = False  # on a non-loopback address: read-only pages without the token
    policy: LibraryPolicy = field(default_factory=LibraryPolicy)
    # A library database at least this large has its largest answers computed in a worker process.
    large_library_bytes: int = 4 * 1024 * 1024

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def reads_need_token(self) -> bool:
        return not self.loopback and not self.anonymous_read

    def check(self) -> None:
        """Refuse an unsafe configuration before anything listens."""
        if not self.loopback and not self.token:
            raise ConfigError(
                f"refusing to listen on {self.host} without a token; pass --token (or set "
                "OBSAGENT_WEB_TOKEN), or listen on 127.0.0.1"
            )
        if self.token is not None and len(self.token) < 8:
            raise ConfigError("the web token is too short; use at least 8 characters (e.g. `openssl rand -hex 16`)")


def _sign(token: str, message: str) -> str:
    return hmac.new(token.encode(), message.encode(), hashlib.sha256).hexdigest()


def new_session(token: str) -> str:
    sid = secrets.token_hex(16)
    return f"{sid}.{_sign(token, 'session:' + sid)}"


def session_valid(token: str | None, cookie: str | None) -> bool:
    if not token or not cookie or "." not in cookie:
        return False
    sid, _, sig = cookie.partition(".")
    return hmac.compare_digest(sig, _sign(token, "session:" + sid))


def csrf_token(token: str | None, cookie: str | None) -> str:
    if not token or not session_valid(token, cookie):
        return ""
    assert cookie is not None
    return _sign(token, "csrf:" + cookie.partition(".")[0])


def csrf_valid(token: str | None, cookie: str | None, sent: str | None) -> bool:
    expected = csrf_token(token, cookie)
    return bool(expected) and bool(sent) and hmac.compare_digest(expected, str(sent))


def bearer_valid(token: str | None, header: str | None) -> bool:
    if not token or not header:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def safe_next(target: str | None) -> str:
    """Only a path on this site may follow a login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
