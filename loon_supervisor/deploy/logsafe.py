"""What a log line may say about a request's path: escaped, and only for paths the server
serves.

aiohttp hands out ``request.path`` percent-decoded, so ``/deploy%0A<fake line>`` would write a
line of the sender's choosing, and ``POST /<token>`` would write a token. Known paths are
logged with every control character escaped; any other path is logged only as its length.
"""

from __future__ import annotations

import re

from loon_supervisor.deploy.runner import DEPLOY_ID_PATTERN

# Only what the routes accept: a deploy id never looks like a token.
_KNOWN = re.compile(r"/(?:healthz|deploy(?:/" + DEPLOY_ID_PATTERN + r")?)"
                    # the dashboard's fixed pages (paths naming a service are not logged)
                    r"|/dashboard(?:/|/(?:login|logout|logs|logs/stream|doctor|deploys|versions"
                    r"|versions/rollback|actions/rollback"
                    r"|static/app\.js|static/dash\.css|confirm/redeploy|actions/redeploy"
                    r"|(?:deploys|confirm/cancel|actions/cancel)/" + DEPLOY_ID_PATTERN + r"))?")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\\\"]")


def escape(text: str) -> str:
    """Printable ASCII only: control characters, quotes and backslashes as ``\\xNN``, other
    non-ASCII as backslash escapes, so one value is always one piece of one line."""
    text = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text.encode("ascii", "backslashreplace").decode("ascii")


def loggable_path(path: str) -> str:
    """The path when it is one the server serves; otherwise ``<other path, N characters>``."""
    if _KNOWN.fullmatch(path):
        return escape(path)
    return f"<other path, {len(path)} characters>"
