"""The house rules of the package layout (README, "Layout"): the public API, no import cycles,
and which folder may import which."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import gecko_distill

PACKAGE = Path(gecko_distill.__file__).parent

#: What each room may import (besides itself). "plumbing" is the top-level modules.
ALLOWED = {
    "plumbing": {"plumbing", "llm"},
    "llm": {"plumbing", "llm"},
    "embedder": {"plumbing", "embedder"},
    "fret": {"plumbing", "llm", "embedder", "fret", "scale"},  # scale: only build_fret's executor dispatch
    "e5": {"plumbing", "llm", "embedder", "e5"},
    "scale": {"plumbing", "llm", "embedder", "fret", "scale"},
    "cli": {"plumbing", "llm", "embedder", "fret", "e5", "scale", "cli"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["gecko_distill", *parts])


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that ``name`` imports anywhere (also inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("gecko_distill"):
                continue
            submodules = {f"{target}.{a.name}" for a in node.names} & known
            found.update(submodules)
            if len(submodules) < len(node.names):  # names defined in the module itself
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gecko_distill"))
    return {t for t in found if t in known} - {name}


def room(name: str) -> str:
    parts = name.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED):
        return parts[1]
    return "plumbing"


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, set(known)) for name, path in known.items()}


def test_every_public_name_imports() -> None:
    for name in gecko_distill.__all__:
        assert getattr(gecko_distill, name) is not None, name
    from gecko_distill.testing import FakeLLM

    assert FakeLLM().name


def test_every_module_imports() -> None:
    for name in modules():
        if not name.endswith("__main__"):
            importlib.import_module(name)


def test_no_import_cycles() -> None:
    """No module reaches itself through imports (a package's facade ``__init__`` is left out,
    as no module below the top imports it)."""
    edges = {n: {t for t in ts if not t == "gecko_distill"} for n, ts in graph().items() if n != "gecko_distill"}
    for name, targets in edges.items():
        assert "gecko_distill" not in targets, f"{name} imports the package facade"
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_rooms_import_only_what_the_readme_allows() -> None:
    wrong = []
    for name, targets in graph().items():
        if name == "gecko_distill":
            continue  # the facade re-exports the public API
        for target in targets:
            if target == "gecko_distill":
                continue
            if room(target) not in ALLOWED[room(name)]:
                wrong.append(f"{name} ({room(name)}) imports {target} ({room(target)})")
    assert not wrong, "\n".join(wrong)


def test_the_layout_checks_can_fail(tmp_path: Path) -> None:
    """The checks above see a cycle and a wrong-room import when there is one."""
    fake = tmp_path / "gecko_distill"
    (fake / "fret").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "fret" / "__init__.py").write_text("")
    (fake / "fret" / "a.py").write_text("from ..cli import x\nfrom .b import y\n")
    (fake / "fret" / "b.py").write_text("def f():\n    from .a import z\n")
    known = {module_name_in(p, fake) for p in fake.rglob("*.py")} | {"gecko_distill.cli"}
    a = imports_of("gecko_distill.fret.a", fake / "fret" / "a.py", known)
    b = imports_of("gecko_distill.fret.b", fake / "fret" / "b.py", known)
    assert a == {"gecko_distill.cli", "gecko_distill.fret.b"} and b == {"gecko_distill.fret.a"}
    assert room("gecko_distill.cli") not in ALLOWED[room("gecko_distill.fret.a")]


def module_name_in(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["gecko_distill", *parts])


def test_the_command_runs_as_a_module() -> None:
    proc = subprocess.run([sys.executable, "-m", "gecko_distill.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("gecko-distill ")
