"""Who sent a request, for lockouts and log lines: the peer address, or behind a proxy
that ``--trusted-proxy`` names, the address that proxy forwarded.

``X-Forwarded-For`` is read only when the TCP peer is a trusted proxy, and then from the
right: the first address that is not itself a trusted proxy is the client (the left part
is whatever the client chose to send). Without ``--trusted-proxy`` the header is ignored,
so nobody can escape a lockout by inventing addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from loon_supervisor.deploy.handshake_guard import Network


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_trusted(host: str, trusted: Sequence[Network]) -> bool:
    addr = _ip(host)
    return addr is not None and any(addr in net for net in trusted)


def client_address(request: web.Request, trusted: Sequence[Network]) -> str:
    """The address a request is counted and logged under (see the module docstring)."""
    peer = request.remote or "?"
    if not trusted or not is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for value in request.headers.getall("X-Forwarded-For", [])
            for h in value.split(",")]
    for hop in reversed(hops):
        addr = _ip(hop)
        if addr is None:
            return peer  # a malformed hop: the chain cannot be trusted past it
        if not any(addr in net for net in trusted):
            return str(addr)
    return peer
