"""Versions on a real engine: every build an immutable tag, `up --replace` building while
the old version serves, pruning by label. The Loon source is a git checkout of the
stand-in Loon, so every version carries a revision (see support.py)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.engine_helpers import wait_until
from tests.versions.support import Poller, Site, commit, make_site

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]


@pytest.fixture
def site(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = make_site(tmp_path)
    try:
        yield s
    finally:
        s.cleanup()


def _tags(site: Site) -> list[str]:
    out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}",
                          "--filter", f"reference=loon-test:{site.name}*"],
                         capture_output=True, text=True, check=True).stdout.split()
    return sorted(t for t in out if t != f"loon-test:{site.name}")


def _up_ok(site: Site, *args: str) -> str:
    result = site.up(*args)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    return out


def test_source_change_redeployed_keeps_the_previous_tag(site: Site) -> None:
    first = site.deployment.config  # noqa: F841 - the same config throughout
    _up_ok(site)
    assert site.get() == "version 1\n"
    rev1 = site.versions_file()["versions"][0]["revision"]
    rev2 = commit(site.checkout, {"index.html": "version 2\n"}, "two")
    out = _up_ok(site, "--replace")
    assert site.get() == "version 2\n"
    tags = _tags(site)
    assert len(tags) == 2 and tags[0].endswith(rev1[:7]) and tags[1].endswith(rev2[:7]), tags
    stored = site.versions_file()
    assert stored["current"] == tags[1]
    assert [v["revision"] for v in stored["versions"]] == [rev1, rev2]
    assert all(v["outcome"] == "deployed" for v in stored["versions"])
    # imageTag points at what runs
    inspect = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}",
                              f"loon-test:{site.name}", tags[1]], capture_output=True,
                             text=True, check=True).stdout.split()
    assert inspect[0] == inspect[1]
    # downtime measured and written to out.log
    out_log = (site.deployment.session() / "out.log").read_text()
    assert "downtime: " in out_log and "downtime: " in out, out_log
    assert stored["versions"][1]["downtime"] is not None
    listing = site.loon("versions")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    row1 = next(line for line in lines if tags[0] in line)
    row2 = next(line for line in lines if tags[1] in line)
    assert row2.startswith("*") and not row1.startswith("*"), listing.stdout
    assert rev1[:12] in row1 and rev2[:12] in row2 and "deployed" in row2, listing.stdout


def test_a_broken_build_leaves_the_old_version_serving(site: Site) -> None:
    _up_ok(site)
    before = subprocess.run(["docker", "inspect", "--format", "{{.Id}}", site.name],
                            capture_output=True, text=True, check=True).stdout.strip()
    commit(site.checkout, {"index.html": "version 2\n",
                           "build.sh": "echo 'syntax error in the new source' >&2; exit 3\n"},
           "broken")
    with Poller(site) as poll:
        result = site.up("--replace")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "build failed" in out and "keeps serving" in out, out
    assert poll.failures == [] and len(poll.answers) > 5, poll.failures
    assert set(poll.answers) == {"version 1\n"}
    after = subprocess.run(["docker", "inspect", "--format", "{{.Id}}", site.name],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert after == before  # never stopped
    assert len(_tags(site)) == 1
    assert site.loon("status").returncode == 0  # its logger still follows it


def test_pruning_keeps_exactly_keep_versions_and_other_images(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site", stage=True)
    try:
        _prune_check(site, tmp_path)
    finally:
        site.cleanup()


def _exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True
                          ).returncode == 0


def _prune_check(site: Site, tmp_path: Path) -> None:
    config = json.loads(site.deployment.config.read_text())
    config["deploymentSettings"]["keepVersions"] = 2
    site.deployment.config.write_text(json.dumps(config))
    # Another project's version image and an unlabelled image in the same repository.
    other = tmp_path / "other"
    other.mkdir()
    (other / "Dockerfile").write_text("FROM scratch\nLABEL org.loon.version.project="
                                      f"{site.name}@000000000000\n")
    foreign = [f"loon-test:{site.name}-other-project", f"loon-test:{site.name}-unlabelled"]
    subprocess.run(["docker", "build", "-q", "-t", foreign[0], str(other)], check=True,
                   capture_output=True)
    (other / "Dockerfile").write_text("FROM scratch\nLABEL x=y\n")
    subprocess.run(["docker", "build", "-q", "-t", foreign[1], str(other)], check=True,
                   capture_output=True)
    try:
        revs = []
        steps: dict[str, list[str]] = {}  # version tag -> its build's step images
        for i in range(4):
            if i:
                revs.append(commit(site.checkout, {"index.html": f"version {i + 1}\n"},
                                   f"v{i + 1}"))
            _up_ok(site, "--replace")
            for v in site.versions_file()["versions"]:
                steps.setdefault(v["tag"], v["intermediates"])
        assert site.get() == "version 4\n"
        ours = [t for t in _tags(site) if t not in foreign]
        assert len(ours) == 2 and ours[0].endswith(revs[-2][:7]) and \
            ours[1].endswith(revs[-1][:7]), ours
        assert set(foreign) <= set(_tags(site))  # never another project's
        stored = site.versions_file()
        assert [v["tag"] for v in stored["versions"]] == ours
        # The stage images: each build left its own dangling; the pruned versions' are gone,
        # the kept versions' stay (the next build's cache).
        kept_steps = {i for t in ours for i in steps[t]}
        pruned_only = {i for t, ids in steps.items() if t not in ours for i in ids} - kept_steps
        assert pruned_only, steps
        assert [i for i in pruned_only if _exists(i)] == []
        dangling = subprocess.run(["docker", "images", "-q", "--no-trunc", "--filter",
                                   "dangling=true"], capture_output=True, text=True,
                                  check=True).stdout.split()
        kept_dangling = [i for i in kept_steps
                         if any(d.removeprefix("sha256:").startswith(i) for d in dangling)]
        assert len(kept_dangling) == 2, (kept_steps, dangling)  # one stage image per kept
    finally:
        subprocess.run(["docker", "rmi", *foreign], capture_output=True)


def test_ctrl_c_during_the_new_build_leaves_the_old_version_serving(site: Site) -> None:
    _up_ok(site)
    before = subprocess.run(["docker", "inspect", "--format", "{{.Id}}", site.name],
                            capture_output=True, text=True, check=True).stdout.strip()
    current = site.versions_file()["current"]
    commit(site.checkout, {"index.html": "version 2\n", "build.sh": "sleep 120\n"}, "slow")
    first = site.deployment.session()
    with Poller(site) as poll:
        proc = site.deployment.start("-d", "--replace")

        def building() -> bool:  # the new run's session, at the slow step
            now = site.deployment.session()
            return now != first and "RUN sh /app/src/build.sh" in (
                (now / "out.log").read_text() if (now / "out.log").exists() else "")
        wait_until(building, timeout=120)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert poll.failures == [] and set(poll.answers) == {"version 1\n"}, poll.failures
    after = subprocess.run(["docker", "inspect", "--format", "{{.Id}}", site.name],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert after == before and site.get() == "version 1\n"
    assert site.versions_file()["current"] == current
    assert site.loon("status").returncode == 0  # its logger still follows it
