"""The tree's layering, checked on the source (issue 27): config -> spec -> engine ->
streams -> sinks, with the engine at the bottom. The engine imports nothing of the layers
above it, and nothing above it touches aiodocker or the engine's raw client: every call
goes through DockerEngine's methods (and its ``swarm``), which the fake engine mirrors."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "loon_supervisor"
ENGINE = PKG / "engine"
# what engine/ may import from the package: itself and the shared error types
ENGINE_MAY_IMPORT = {"loon_supervisor.engine", "loon_supervisor.errors"}


def modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(PKG.rglob("*.py"))]


def imported(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_only_the_engine_imports_aiodocker() -> None:
    bad = [str(p.relative_to(PKG)) for p, tree in modules()
           if ENGINE not in p.parents
           and any(m == "aiodocker" or m.startswith("aiodocker.") for m in imported(tree))]
    assert bad == [], f"aiodocker imported outside engine/: {bad}"


def test_nothing_above_the_engine_reaches_its_raw_client() -> None:
    bad = [f"{p.relative_to(PKG)}:{node.lineno}" for p, tree in modules()
           if ENGINE not in p.parents
           for node in ast.walk(tree)
           if isinstance(node, ast.Attribute) and node.attr == "docker"]
    assert bad == [], f"engine.docker used outside engine/ (add a DockerEngine method): {bad}"


def test_the_engine_imports_nothing_above_it() -> None:
    bad = sorted({f"{p.relative_to(PKG)}: {m}" for p, tree in modules()
                  if ENGINE in p.parents
                  for m in imported(tree)
                  if m.startswith("loon_supervisor")
                  and not any(m == ok or m.startswith(ok + ".") for ok in ENGINE_MAY_IMPORT)})
    assert bad == [], f"engine/ imports from layers above it: {bad}"


def test_the_checks_see_the_tree() -> None:
    """Guard against a check that passes because it read nothing."""
    found = modules()
    assert len(found) > 100
    assert any(ENGINE in p.parents and "aiodocker" in imported(t) for p, t in found)
