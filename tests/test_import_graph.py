"""No import cycle among mtbench's modules, function-level imports included.

Every module is parsed with :mod:`ast` (nothing is imported). ``import a.b`` is an edge to ``a.b``;
``from a import b`` is an edge to ``a.b`` when that is a module, else to ``a``; relative imports
are resolved against the importing module's package. A package's ``__init__`` importing its own
submodules is an ordinary edge (package -> submodule), so it is a cycle only when a submodule
imports a name back from the package's ``__init__``. Cycles are the strongly connected components
of more than one module (Tarjan), or a module importing itself.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_files(package_dir: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` of a package and all its subpackages."""
    base = package_dir.parent
    mods: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if all(p.isidentifier() for p in parts):
            mods[".".join(parts)] = path
    return mods


def _imports(tree: ast.AST, name: str, is_package: bool, modules: Mapping[str, Path]) -> Iterator[str]:
    """The modules of ``modules`` that the module ``name`` imports, at any depth of its code."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                if node.level > 1:
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    yield sub
                elif base in modules:
                    yield base


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """``{module: modules it imports}`` for every module under ``package_dir``."""
    modules = module_files(package_dir)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = set(_imports(tree, name, path.name == "__init__.py", modules))
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with a cycle (Tarjan), each sorted; sorted by first name."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                found.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found)


def _describe(graph: Mapping[str, set[str]], comp: list[str]) -> str:
    members = set(comp)
    edges = [f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in members]
    return "{" + ", ".join(comp) + "}: " + "; ".join(edges)


def test_mtbench_has_no_import_cycle() -> None:
    graph = import_graph(ROOT / "mtbench")
    assert "mtbench.sweeps.model" in graph and "mtbench.tracking.store" in graph  # it saw the tree
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(_describe(graph, c) for c in found)


def test_tracking_does_not_import_sweeps() -> None:
    graph = import_graph(ROOT / "mtbench")
    back = sorted(f"{m} -> {d}" for m, deps in graph.items() if m.startswith("mtbench.tracking")
                  for d in deps if d.startswith("mtbench.sweeps"))
    assert not back


# ------------------------------------------------------------------------- the checker itself


def _write(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


@pytest.mark.parametrize(("files", "graph", "found"), [
    pytest.param({  # a cycle hidden in a function
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import f\n",
        "pkg/b.py": "def f():\n    from pkg import c\n    return c\n",
        "pkg/c.py": "import pkg.a\n",
        "pkg/d.py": "from pkg import a\n",  # into the cycle, not part of it
    }, {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": {"pkg.a"}, "pkg.d": {"pkg.a"}},
        [["pkg.a", "pkg.b", "pkg.c"]], id="cycle_hidden_in_a_function"),
    pytest.param({
        "pkg/__init__.py": "from pkg.sub import thing\n",
        "pkg/sub/__init__.py": "from .impl import thing\n",
        "pkg/sub/impl.py": "from ..util import helper\nthing = helper\n",
        "pkg/util.py": "def helper():\n    pass\n",
    }, {"pkg": {"pkg.sub"}, "pkg.sub": {"pkg.sub.impl"}, "pkg.sub.impl": {"pkg.util"}, "pkg.util": set()},
        [],  # a package importing its submodules is no cycle by itself
        id="relative_imports_and_package_names"),
    pytest.param({
        "pkg/__init__.py": "from pkg.x import X\nVERSION = 1\n",
        "pkg/x.py": "from pkg import VERSION\nX = VERSION\n",  # a name, not a module: pkg itself
        "pkg/y.py": "from . import y\n",  # a module importing itself
    }, {"pkg": {"pkg.x"}, "pkg.x": {"pkg"}, "pkg.y": {"pkg.y"}},
        [["pkg", "pkg.x"], ["pkg.y"]], id="submodule_importing_back_from_its_package"),
])
def test_checker_graph_and_cycles(tmp_path: Path, files: Mapping[str, str], graph: dict[str, set[str]],
                                  found: list[list[str]]) -> None:
    got = import_graph(_write(tmp_path, files))
    assert got == graph
    assert cycles(got) == found


@pytest.mark.parametrize("stmt", ["import pkg.a", "from pkg import a", "from . import a",
                                  "from .a import name"])
def test_checker_sees_every_import_form(tmp_path: Path, stmt: str) -> None:
    pkg = _write(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "import pkg.b\n",
                            "pkg/b.py": f"if True:\n    {stmt}\n"})
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.b"]]
