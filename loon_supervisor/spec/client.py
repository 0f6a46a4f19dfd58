"""Say when an image built from a Loon checkout has no client, and why.

``docker-common/build/client.sh`` keeps the reason in the image when the build went on without
the client (``LOON_CLIENT_REQUIRED=false`` and a locked version the registry could not give, or
a checkout without a client). Only a running container can be asked (the Engine API has no
"read a file of an image"), so ``up`` and ``status`` ask right after start / while running.
"""

from __future__ import annotations

from collections.abc import Collection

from loon_supervisor.engine.base import CommandRunner
from loon_supervisor.errors import LoonError

CLIENT_ABSENT_FILE = "/opt/loon/meta/client-absent.txt"


async def client_absence(engine: CommandRunner, cid: str, services: Collection[str]) -> str | None:
    """The recorded reason when an image with Loon's server has no client, else None (an image
    without a Loon checkout has neither, and its status page says so: no warning for it)."""
    if "server" not in services:
        return None
    try:
        code, out = await engine.run_capture(cid, ["cat", CLIENT_ABSENT_FILE])
    except LoonError:
        return None
    reason = out.decode(errors="replace").strip() if code == 0 else ""
    return reason or None


def absent_message(reason: str) -> str:
    """One loud line for the terminal, out.log and ``loon status``."""
    return (f"WARNING: the Loon client is NOT in this image: {reason}; / serves a status page "
            "instead of Loon (docs/real-loon.md, LOON_CLIENT_REQUIRED)")
