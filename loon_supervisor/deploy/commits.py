"""Replays cannot redeploy: a signed deploy names the commit it deploys, and each commit is
deployed once.

The webhook signature covers the body, not ``X-GitHub-Delivery``, so a captured request
replays with any new delivery id. What a replay cannot change is the signed body: the
pushed commit (``after`` or ``head_commit.id`` of a GitHub push, or ``sha``). A commit
whose deploy succeeded (or runs) is refused unless the signed body says ``"force": true``;
a commit older than the working copy's HEAD (its ancestor) is refused always. The commits
are kept (the newest :data:`KEEP`) in a 0600 JSON file, so a restart does not forget them.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from loon_supervisor.atomic import write_text_atomic
from loon_supervisor.deploy.children import run_grouped

log = logging.getLogger("loon_supervisor.deploy")

KEEP = 1000
COMMIT_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")  # SHA-1 or SHA-256 object ids
NO_COMMIT = "0" * 40  # GitHub's "after" when a branch is deleted
GIT_CHECK_TIMEOUT_S = 10.0


class NoCommit(ValueError):
    """The signed body names no commit; the text says what to send."""


def pushed_commit(payload: dict[str, Any]) -> str | None:
    """The commit a signed body deploys; None for a push that deleted the branch."""
    head = payload.get("head_commit")
    candidates = [payload.get("after"), head.get("id") if isinstance(head, dict) else None,
                  payload.get("sha")]
    for value in candidates:
        if isinstance(value, str) and COMMIT_RE.match(value.lower()):
            commit = value.lower()
            return None if commit == NO_COMMIT else commit
    raise NoCommit("a signed body must name the commit it deploys (after or head_commit.id "
                   "as GitHub sends, or sha: a full 40-character commit id), so a replay "
                   "cannot deploy again")


class CommitLog:
    """Bounded, persisted map commit -> the id of the deploy that deployed it."""

    def __init__(self, path: Path, keep: int = KEEP) -> None:
        self.path = path
        self.keep = keep
        self._deploys: OrderedDict[str, str] = OrderedDict()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            for commit, deploy_id in list(data.items())[-keep:]:
                if isinstance(commit, str) and isinstance(deploy_id, str):
                    self._deploys[commit] = deploy_id
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("cannot read %s (%s); starting with no deployed commits", path,
                        type(exc).__name__)

    def deploy_of(self, commit: str) -> str | None:
        return self._deploys.get(commit)

    def remember(self, commit: str, deploy_id: str) -> None:
        self._deploys.pop(commit, None)
        self._deploys[commit] = deploy_id
        while len(self._deploys) > self.keep:
            self._deploys.popitem(last=False)
        try:
            write_text_atomic(self.path, json.dumps(dict(self._deploys)), mode=0o600)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc.strerror or exc)


async def older_than_head(repo_dir: Path, commit: str) -> bool:
    """True when ``commit`` is a strict ancestor of the working copy's HEAD (an older
    push); False when it is HEAD, newer, or unknown to the working copy (not fetched yet)."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    git = ["git", "-C", str(repo_dir)]
    try:
        code, out, _ = await run_grouped([*git, "rev-parse", "--verify", "-q", "HEAD"], env=env)
        if code != 0 or out.decode().strip() == commit:
            return False
        code, _, _ = await run_grouped([*git, "merge-base", "--is-ancestor", commit, "HEAD"],
                                       env=env)
    except OSError:  # git missing (checked at start-up with --git-branch) or no descriptors
        return False
    return code == 0
