"""Updating the working copy before a deploy: real git repositories, no engine."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from loon_supervisor.deploy import DeployContext, DeployStepFailed
from loon_supervisor.deploy.runner import update_working_copy

pytestmark = pytest.mark.anyio


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org",
                             "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return result.stdout.strip()


@pytest.fixture
def repos(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(origin bare repo, upstream working copy that pushes, deploy host's working copy)."""
    origin, upstream, host = tmp_path / "origin.git", tmp_path / "upstream", tmp_path / "host"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    subprocess.run(["git", "clone", "-q", str(origin), str(upstream)], check=True,
                   capture_output=True)
    git(upstream, "checkout", "-q", "-b", "main")
    (upstream / "a.txt").write_text("one\n")
    git(upstream, "add", "a.txt")
    git(upstream, "commit", "-q", "-m", "one")
    git(upstream, "push", "-q", "origin", "main")
    subprocess.run(["git", "clone", "-q", "-b", "main", str(origin), str(host)], check=True)
    return origin, upstream, host


def ctx_for(repo: Path, branch: str, lines: list[str]) -> DeployContext:
    return DeployContext(deploy_id="t", log_dir=repo, config_file=repo / "config.json",
                         repo_dir=repo, git_branch=branch, log=lines.append)


async def test_pull_brings_new_commits(repos: tuple[Path, Path, Path]) -> None:
    _, upstream, host = repos
    (upstream / "a.txt").write_text("two\n")
    git(upstream, "commit", "-q", "-am", "two")
    git(upstream, "push", "-q", "origin", "main")
    lines: list[str] = []
    await update_working_copy(ctx_for(host, "main", lines))
    assert (host / "a.txt").read_text() == "two\n"
    assert any("pull --ff-only origin main" in line for line in lines)


async def test_wrong_branch_is_reported(repos: tuple[Path, Path, Path]) -> None:
    _, _, host = repos
    git(host, "checkout", "-q", "-b", "feature")
    with pytest.raises(DeployStepFailed) as info:
        await update_working_copy(ctx_for(host, "main", []))
    assert "is on branch 'feature', not 'main'" in info.value.reason


async def test_diverged_history_is_reported_not_merged(repos: tuple[Path, Path, Path]) -> None:
    _, upstream, host = repos
    (upstream / "a.txt").write_text("upstream\n")
    git(upstream, "commit", "-q", "-am", "upstream")
    git(upstream, "push", "-q", "origin", "main")
    (host / "a.txt").write_text("local edit\n")
    git(host, "commit", "-q", "-am", "local")
    before = git(host, "rev-parse", "HEAD")
    with pytest.raises(DeployStepFailed) as info:
        await update_working_copy(ctx_for(host, "main", []))
    assert info.value.reason.startswith("git pull of branch main failed (exit code ")
    assert git(host, "rev-parse", "HEAD") == before


async def test_missing_remote_branch_is_reported(repos: tuple[Path, Path, Path]) -> None:
    _, _, host = repos
    git(host, "checkout", "-q", "-b", "release")
    with pytest.raises(DeployStepFailed) as info:
        await update_working_copy(ctx_for(host, "release", []))
    assert "git pull of branch release failed" in info.value.reason
    assert "release" in info.value.reason
