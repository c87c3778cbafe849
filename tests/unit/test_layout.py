"""The package's layout holds: imports point one way between rooms, no module imports another in a
circle, and only ``runtime/uwsgi_api.py`` imports ``uwsgi`` (docs/LAYOUT.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "otel_uwsgi"

#: Each room's floor: a module may import its own room and rooms on lower floors only.
FLOORS = {
    "native": 0,
    "config": 0,
    "semconv": 0,
    "export": 1,
    "traces": 2,
    "metrics": 2,
    "logs": 2,
    "instrumentation": 3,
    "runtime": 4,
    "tools": 5,
    "demo": 6,
    "": 6,  # __init__, auto, __main__
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """otel_uwsgi modules ``path`` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in modules}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in FLOORS) else ""


def test_every_room_has_a_floor():
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms <= set(FLOORS), f"give {sorted(rooms - set(FLOORS))} a floor in FLOORS and in docs/LAYOUT.md"


def test_imports_point_down_between_rooms():
    """A room imports only itself and rooms on lower floors (never sideways or up)."""
    modules = _modules()
    wrong = []
    for name, path in sorted(modules.items()):
        room = _room(name)
        for imported in sorted(_imports(path, modules)):
            other = _room(imported)
            if other != room and FLOORS[other] >= FLOORS[room] and other != "":
                wrong.append(f"{name} -> {imported}")
            if other == "" and imported != "otel_uwsgi" and room not in ("", "demo"):  # the demo is an app
                wrong.append(f"{name} -> {imported}")
    assert not wrong, "imports against the layout:\n" + "\n".join(wrong)


def test_no_import_circles():
    """No chain of imports (function-level ones included) leads a module back to itself."""
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    # A package's __init__ is imported with every submodule: not an edge worth following back.
    graph = {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " -> ".join(stack[stack.index(nxt) :] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_only_uwsgi_api_imports_uwsgi():
    """The library reads uWSGI through one module (the demo app, like any app, may import it)."""
    importers = []
    for name, path in _modules().items():
        if _room(name) == "demo":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if {"uwsgi", "uwsgidecorators"} & {n.split(".")[0] for n in names}:
                importers.append(name)
    assert sorted(set(importers)) == ["otel_uwsgi.runtime.uwsgi_api"]
