"""The source tree stays a house a newcomer can find their way in.

No import cycle between phaseloop's Python modules (a cycle is what turns a
refactor into a tangle), and no source file outgrows about 700 lines (the
loop's core, loop.pyx, aside: Cython keeps a cdef class in one file).
docs/architecture.md says which file does what.
"""
import ast

import pytest

from support.paths import REPO_ROOT

SRC = REPO_ROOT / "src"
PACKAGE = SRC / "phaseloop"
MAX_LINES = 720
LONG_ALLOWED = {"src/phaseloop/loop.pyx"}


def module_name(path):
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def python_modules():
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def is_module(name, modules):
    return name in modules or name == "phaseloop.loop"


def runtime_nodes(tree):
    """Every node of a module but what `if TYPE_CHECKING:` guards (imports
    for annotations only, never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
                continue
            todo.append(child)


def imports_of(name, path, modules):
    """The phaseloop modules a module imports when it runs, at any level of
    its code (a function's import too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "phaseloop":
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if base.split(".")[0] != "phaseloop":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if is_module(candidate, modules) else base)
    return {m for m in found if m != name and (is_module(m, modules))}


def find_cycle(graph):
    """One import cycle as a list of modules, or None (depth-first search)."""
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_between_phaseloops_modules():
    modules = python_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    # A submodule's `from . import x` goes through its package: an edge from a
    # package to its own submodule is how a package is built, not a cycle,
    # unless the submodule imports the package back.
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


SOURCES = sorted(
    p for pattern in ("src/phaseloop/**/*.py", "src/phaseloop/**/*.pyx", "src/phaseloop/**/*.pxi",
                      "src/phaseloop/**/*.pxd", "src/phaseloop/**/*.pyi", "csrc/*.c", "csrc/*.h",
                      "csrc/tests/*.c", "csrc/tests/*.h")
    for p in REPO_ROOT.glob(pattern) if str(p.relative_to(REPO_ROOT)) not in LONG_ALLOWED)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_source_file_outgrows_700_lines(path):
    relative = str(path.relative_to(REPO_ROOT))
    lines = path.read_text().count("\n")
    assert lines <= MAX_LINES, f"{relative} has {lines} lines: split it by what it does"
