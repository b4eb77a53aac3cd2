"""Package layout: the import graph of topokd has no cycles.

The graph is built from the source (``ast``), not by importing: one node per
module of ``topokd/``, one edge per ``import`` / ``from ... import`` that
names another topokd module.  ``from .pkg import name`` counts as an edge to
``pkg.name`` when that is a module, else to ``pkg``.  Imports under ``if
TYPE_CHECKING:`` are left out (they never run).  Importing a submodule also
runs its package's ``__init__``, but a package importing its own submodules
is how packages work, so that implicit edge is not drawn.

* module level, whole package: must be acyclic (a cycle there is an import
  error waiting for the right import order);
* function level too, inside topokd.compress and for topokd.config: these
  were tangled (prune <-> quantize <-> profile) and now depend one way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "topokd"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module, function_level: bool):
    """Import nodes of the module body (and of function bodies if asked)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            continue
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            if function_level:
                stack.extend(ast.iter_child_nodes(node))
        else:
            stack.extend(ast.iter_child_nodes(node))


def import_graph(function_level: bool = False) -> dict[str, set[str]]:
    modules = all_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in _imports(tree, function_level):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve(name, is_package, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:  # import topokd.a.b.c -> the module that exists
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan),
    each as one cycle through it."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, set(c)) for c in comps]


def _cycle_in(graph, comp: set[str]) -> list[str]:
    start = min(comp)
    path, seen = [start], {start}
    # walk inside the component until a node repeats, then cut the loop out
    while True:
        nxt = min(w for w in graph[path[-1]] if w in comp)
        if nxt in seen:
            return path[path.index(nxt):] + [nxt]
        path.append(nxt)
        seen.add(nxt)


def _describe(cycles) -> str:
    return "; ".join(" -> ".join(c) for c in cycles)


def test_the_graph_builder_sees_relative_and_absolute_imports():
    graph = import_graph()
    assert "topokd.compress._common" in graph["topokd.compress.prune"]
    assert "topokd.compress.profile" in graph["topokd.compress.quantize"]
    assert "topokd.config" in graph["topokd.compress.config"]
    assert "topokd.compress.pipeline" in graph["topokd.compress"]
    cyclic = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(cyclic) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_at_module_level():
    cycles = find_cycles(import_graph())
    assert not cycles, f"module-level import cycles: {_describe(cycles)}"


@pytest.mark.parametrize("prefix", ["topokd.compress", "topokd.config"])
def test_no_import_cycles_even_inside_functions(prefix):
    graph = import_graph(function_level=True)
    mine = {k: {w for w in v if w.startswith(prefix)} for k, v in graph.items() if k.startswith(prefix)}
    cycles = find_cycles(mine)
    assert not cycles, f"import cycles in {prefix} (function-level imports included): {_describe(cycles)}"


def test_config_modules_import_no_torch_at_module_level():
    for name in ("topokd.config", "topokd.compress.config", "topokd.compress.report", "topokd.cli.compress"):
        tree = ast.parse(all_modules()[name].read_text())
        top = {alias.name.split(".")[0] for node in _imports(tree, False) if isinstance(node, ast.Import)
               for alias in node.names}
        top |= {(node.module or "").split(".")[0] for node in _imports(tree, False)
                if isinstance(node, ast.ImportFrom) and not node.level}
        assert "torch" not in top, name
    cli = import_graph()["topokd.cli.compress"]
    assert not any(m.startswith("topokd.compress") for m in cli), cli
