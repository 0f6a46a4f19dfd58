"""Formats of single values: baseUrl as host[:port], image references.

Hand-written because the standard library has no host-and-port parser that refuses what a
Django ALLOWED_HOSTS entry cannot be (``urllib.parse`` accepts ``user@``, ``?`` and ``#``
and raises only when a bad port is read), and docker's reference grammar is a short regex
(github.com/distribution/reference, regexp.go).
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$", re.ASCII)
"""Django's host validation refuses '_' (and anything outside ASCII letters and digits)."""
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)


def split_base_url(value: str) -> tuple[str, int | None]:
    """(host, port) of ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``.

    :raises ValueError: ``"what|fix"``, the form the model's validators use.
    """
    if "://" in value:
        raise ValueError("must not contain a scheme such as http://|write only the host, "
                         "e.g. localhost; useHttp decides the scheme")
    if not value or any(c.isspace() for c in value):
        raise ValueError("must be a host name without spaces|write it like localhost or "
                         "loon.example.org")
    if "/" in value:
        raise ValueError("must not contain a slash or path|write only the host, with an "
                         "optional :port")
    for char, what in (("@", "user information"), ("?", "a query"), ("#", "a fragment")):
        if char in value:
            raise ValueError(f"must not contain {what} ('{char}')|write only the host, with "
                             "an optional :port")
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError("has an unclosed '['|write an IPv6 address as [2001:db8::1]")
        host, rest = value[:end + 1], value[end + 1:]
        if "%" in host:
            raise ValueError("holds an IPv6 zone ('%...'), which Django does not accept in a "
                             "host|use a global address, or a host name")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError("is not a valid IPv6 address in brackets|write it like "
                             "[2001:db8::1]") from None
        if rest and not rest.startswith(":"):
            raise ValueError("has text after the IPv6 address|write [address] or "
                             "[address]:port")
        port_text = rest[1:] if rest else None
    else:
        if value.count(":") > 1:
            raise ValueError("looks like an IPv6 address without brackets|write it in "
                             "brackets, e.g. [::1] or [::1]:8443")
        host, _, port_text = value.partition(":")
        port_text = port_text if ":" in value else None
        labels = host.rstrip(".").split(".")
        if not host or not all(_LABEL.match(label) for label in labels):
            raise ValueError("is not a valid host name (Django accepts ASCII letters, "
                             "digits, '-' and dots, no '_')|write it like loon.example.org")
    if port_text is None:
        return host, None
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise ValueError(f"has port '{port_text}', which is not 1-65535|write host:port with "
                         "a port number from 1 to 65535")
    return host, int(port_text)


_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?$")


def check_image_reference(value: str) -> str:
    """An image name docker accepts as a tag (lowercase repository, optional :tag)."""
    if len(value) > 255 or not _REFERENCE.match(value):
        hint = f"; perhaps '{value.lower()}'" if _REFERENCE.match(value.lower()) else ""
        raise ValueError("is not a valid image reference|use a lowercase name with an "
                         f"optional :tag, e.g. loon:latest{hint}")
    return value
