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


def _imports(name: str, top_level: bool) -> set[str]:
    """The package modules `name` imports (``from P import m`` counts as P.m when m is one).

    `top_level`: only the statements run when the module loads (not those inside functions
    or classes), the ones that can meet a half-initialised module.
    """
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = _top_level(tree.body) if top_level else ast.walk(tree)
    found = set()
    for node in nodes:
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


def _top_level(body):
    """Statements of a module body, into ``if``/``try``/``with`` blocks, not into defs."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    yield from _top_level(child.body if isinstance(child, ast.ExceptHandler)
                                          else [child])  # fmt: skip


GRAPH = {name: _imports(name, top_level=False) for name in MODULES}
LOADING = {name: _imports(name, top_level=True) for name in MODULES}

#: Cycles closed only by an import inside a function (run after both modules have loaded), each
#: with its reason. Any other cycle fails `test_no_import_cycle`.
KNOWN_LAZY_CYCLES = {
    # Matcher(domain="spectrogram") returns a SpectroMatcher, which uses the matcher's pieces.
    "streamconv.dsp.matcher -> streamconv.dsp.spectro_matcher -> streamconv.dsp.matcher",
    # costmodel.calibrate() times the engines it models.
    "streamconv.dsp.engines -> streamconv.dsp.costmodel -> streamconv.dsp.engines",
    "streamconv.dsp.compiled -> streamconv.dsp.engines -> streamconv.dsp.costmodel"
    " -> streamconv.dsp.compiled",
    # io.files re-exports the CSV classes from their old home; they use its AtomicFile.
    "streamconv.io.files -> streamconv.io.csvstream -> streamconv.io.files",
}


def _cycles(graph) -> set[str]:
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    path: list[str] = []
    found = set()

    def walk(u: str) -> None:
        state[u] = 1
        path.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                found.add(" -> ".join([*path[path.index(v) :], v]))
            elif v not in state:
                walk(v)
        path.pop()
        state[u] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name)
    return found


def test_the_graph_is_read():
    """The reader sees the imports it must (a test that cannot pass on an empty graph)."""
    assert "streamconv.detect" in GRAPH["streamconv.archive"]
    assert "streamconv.io.rows" in GRAPH["streamconv.io.arrays"]
    assert "streamconv.detect" in GRAPH["streamconv.commands.match"]
    assert "streamconv.archive" in GRAPH["streamconv.commands.match"]  # inside a function
    assert "streamconv.archive" not in LOADING["streamconv.commands.match"]
    assert len(MODULES) > 40
    # The cycle walk finds a cycle where there is one.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == {"a -> b -> c -> a"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_the_library_does_not_import_the_command_line(name):
    if name == "streamconv.cli" or name.startswith("streamconv.commands"):
        return
    assert not {m for m in GRAPH[name] if m.startswith("streamconv.commands")}


def test_no_import_cycle():
    assert _cycles(LOADING) == set()
    assert _cycles(GRAPH) <= KNOWN_LAZY_CYCLES
