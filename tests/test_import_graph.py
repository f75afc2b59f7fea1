"""The package's import graph, read from the source (AST), every import statement counted
(also those inside functions): the library never imports the command line, and no module
imports itself back through others (no cycle)."""

import ast
import pathlib

import pytest

import streamconv

ROOT = pathlib.Path(streamconv.__file__).parent


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """The package modules `name` imports (``from P import m`` counts as P.m when m is one)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for a in node.names:
                sub = f"{module}.{a.name}"
                found.add(sub if sub in MODULES else module)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def test_the_graph_is_read():
    """The reader sees the imports it must (a test that cannot pass on an empty graph)."""
    assert "streamconv.detect" in GRAPH["streamconv.archive"]
    assert "streamconv.io.rows" in GRAPH["streamconv.io.files"]
    assert "streamconv.detect" in GRAPH["streamconv.commands.match"]
    assert len(MODULES) > 40


@pytest.mark.parametrize("name", sorted(MODULES))
def test_the_library_does_not_import_the_command_line(name):
    if name == "streamconv.cli" or name.startswith("streamconv.commands"):
        return
    assert not {m for m in GRAPH[name] if m.startswith("streamconv.commands")}


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    path: list[str] = []
    cycles = []

    def walk(u: str) -> None:
        state[u] = 1
        path.append(u)
        for v in sorted(GRAPH[u]):
            if state.get(v) == 1:
                cycles.append(" -> ".join([*path[path.index(v) :], v]))
            elif v not in state:
                walk(v)
        path.pop()
        state[u] = 2

    for name in sorted(GRAPH):
        if name not in state:
            walk(name)
    assert cycles == []
