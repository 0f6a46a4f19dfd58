from __future__ import annotations

from pathlib import Path

import pytest

from loon_supervisor.engine.build_context import context_files, is_ignored, read_dockerignore


@pytest.mark.parametrize("patterns,path,ignored", [
    (["*.log"], "a.log", True),
    (["*.log"], "sub/a.log", False),
    (["**/*.log"], "sub/deep/a.log", True),
    (["**/*.log"], "a.log", True),
    (["node_modules"], "node_modules/x/y.js", True),
    (["build", "!build/keep.txt"], "build/keep.txt", False),
    (["build", "!build/keep.txt"], "build/other.txt", True),
    (["!a.txt", "*.txt"], "a.txt", True),
    (["/abs.txt"], "abs.txt", True),
    (["dir/"], "dir/file", True),
    (["f?o"], "foo", True),
    (["f[a-c]o"], "fbo", True),
    (["f[!a-c]o"], "fbo", False),
    (["# comment", ""], "# comment", False),
])
def test_dockerignore_rules(tmp_path: Path, patterns: list[str], path: str,
                            ignored: bool) -> None:
    (tmp_path / ".dockerignore").write_text("\n".join(patterns) + "\n")
    assert is_ignored(path, read_dockerignore(tmp_path)) is ignored


def test_context_files_keep_dockerfile(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("*\n!keep\n")
    (tmp_path / "keep").write_text("k")
    (tmp_path / "drop").write_text("d")
    assert sorted(context_files(tmp_path)) == [".dockerignore", "Dockerfile", "keep"]


def test_included_directories_are_merged_and_checked(tmp_path: Path) -> None:
    from loon_supervisor.engine.build_context import included_files

    image, common = tmp_path / "image", tmp_path / "common"
    (image / "rootfs").mkdir(parents=True)
    (common / "rootfs" / "bin").mkdir(parents=True)
    (image / "Dockerfile").write_text("FROM scratch\n")
    (image / ".dockerignore").write_text("**/*.pyc\n")
    (image / "rootfs" / "own.conf").write_text("own")
    (common / "rootfs" / "bin" / "tool").write_text("shared")
    (common / "rootfs" / "bin" / "junk.pyc").write_text("x")
    assert included_files(image) == {}
    (image / ".loon-include").write_text("# shared scripts\n../common\n")
    assert included_files(image) == {"rootfs/bin/tool": common / "rootfs" / "bin" / "tool"}
    (common / "rootfs" / "own.conf").write_text("clash")
    with pytest.raises(ValueError, match="rootfs/own.conf is both in"):
        included_files(image)
    (image / ".loon-include").write_text("../missing\n")
    with pytest.raises(ValueError, match="not a directory"):
        included_files(image)
