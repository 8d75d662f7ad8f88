"""Telling a request a web page on another site made from one of our own clients: one rule for every part.

Browsers send ``Origin`` with every cross-origin POST, PUT and DELETE; curl, the engine and the parts'
own clients send none. A request whose ``Origin`` is present and not this server's own scheme, host and
port (``null``, from a sandboxed or privacy-hiding page, counts as foreign) is cross-site. A web page can
neither send a custom header (``X-Smartlock-Request``) cross-site without a CORS preflight, which no part
ever approves, nor forge ``Origin``.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from urllib.parse import urlsplit

from starlette.types import Scope

REQUEST_HEADER = "X-Smartlock-Request"  # any value ("1" by convention): forces a browser's preflight
DEFAULT_PORTS = {"http": 80, "https": 443}


def same_origin(scope: Scope) -> bool:
    """True without an ``Origin`` header, or when it names this server's scheme, host and port."""
    origin = header(scope, b"origin")
    if origin is None:
        return True
    own = _origin_of(str(scope.get("scheme", "http")), header(scope, b"host") or "")
    return own is not None and _parse_origin(origin) == own


def browser_may_be_rebound(scope: Scope) -> bool:
    """True when a browser sent this request (it carries ``Origin``) to a host *name* this machine does not
    answer to: DNS rebinding, where an attacker's page points its own name at this machine's address and
    so passes as same-origin. An IP address, ``localhost`` and this machine's own names are trusted; the
    parts that use this (a ``--no-auth`` door or recognition server) are reached by address anyway."""
    if header(scope, b"origin") is None:
        return False
    host = _host_name(header(scope, b"host") or "")
    if host is None:
        return True
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        return host not in own_names()


@functools.cache
def own_names() -> frozenset[str]:
    """The names this machine answers to without a DNS server's say-so."""
    # Not getfqdn(): it asks DNS, which may hang, and a name DNS gives is what rebinding abuses anyway.
    names = {"localhost", socket.gethostname().lower()}
    names |= {f"{name.split('.')[0]}.local" for name in list(names) if name != "localhost"}
    return frozenset(name.rstrip(".") for name in names if name)


def _host_name(host: str) -> str | None:
    try:
        name = urlsplit(f"//{host}").hostname
    except ValueError:
        return None
    return name.lower().rstrip(".") if name else None


def header(scope: Scope, name: bytes) -> str | None:
    """One request header from an ASGI scope (``name`` in lower case), or None."""
    value = next((value for key, value in scope.get("headers", ()) if key == name), None)
    return value.decode("latin-1") if value is not None else None


def _parse_origin(origin: str) -> tuple[str, str, int] | None:
    parts = urlsplit(origin.strip())
    if parts.path or parts.query or parts.fragment or parts.username is not None:
        return None
    return _origin_of(parts.scheme, parts.netloc)


def _origin_of(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS or not netloc or "@" in netloc:
        return None
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:  # a port that is not a number, or out of range
        return None
    if not parts.hostname:
        return None
    return scheme, parts.hostname.lower().rstrip("."), port
