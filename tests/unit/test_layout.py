"""The house keeps its rooms: imports point one way, no module grows past a
screenful of screens, checks only assert, every doctest holds, and the private
pytest APIs the suite leans on are still there."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import lxc_compliance
from conftest import ROOT

# The unit tier (./lxcc test --unit): no root, no container, no network.
pytestmark = pytest.mark.unit

PACKAGE = Path(lxc_compliance.__file__).parent
# Lower parts never import higher ones.
LAYERS = ["model", "readers", "lab", "report", "plugin"]
# Modules anything may import, which import nothing of the suite's.
FOUNDATIONS = {"lxc_compliance", "lxc_compliance.pytest_internals"}
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(("lxc_compliance",) + tuple(p for p in parts if p != "__init__"))


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Project modules PATH imports anywhere in it (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a package's own __init__ aside)."""
    modules = _modules()
    known = set(modules)
    return {name: {target for target in _imports(path, known) if target != name and not name.startswith(target + ".")
                   or target in FOUNDATIONS - {"lxc_compliance"}}
            for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), and self-imports."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_loop():
    found = cycles(import_graph())
    assert not found, "import loops among: " + "; ".join(", ".join(loop) for loop in found)


def test_the_loop_finder_finds_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_imports_point_down_the_layers():
    upward = [(source, target) for source, targets in import_graph().items() for target in targets
              if _layer(source) is not None and _layer(target) is not None and _layer(target) > _layer(source)]
    assert upward == [], "imports from a lower part to a higher one: " + ", ".join(f"{a} -> {b}" for a, b in upward)


def test_foundations_import_nothing_of_the_suite():
    graph = import_graph()
    assert {module: graph[module] - {"lxc_compliance"} for module in FOUNDATIONS - {"lxc_compliance"}} == {
        module: set() for module in FOUNDATIONS - {"lxc_compliance"}}


def test_no_module_is_too_long():
    long = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {name: lines for name, lines in long.items() if lines > MAX_LINES} == {}


def test_checks_only_assert():
    """checks/ imports pytest and readers only, and runs no command itself."""
    for path in sorted((ROOT / "checks").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    assert name in ("pytest", "ipaddress", "time") or name.startswith("lxc_compliance.readers"), (
                        f"{path.name}:{node.lineno}: imports {name}")
            if isinstance(node, ast.Attribute) and node.attr in ("run", "check_output", "Popen", "attach", "query"):
                pytest.fail(f"{path.name}:{node.lineno}: runs a command (.{node.attr}); a reader should")
            if isinstance(node, ast.FunctionDef) and node.decorator_list:
                pytest.fail(f"{path.name}:{node.lineno}: defines a fixture ({node.name}); fixtures live in plugin/")


@pytest.mark.parametrize("module", sorted(name for name in _modules() if not name.endswith("dhcp_probe")))
def test_doctests(module):
    imported = importlib.import_module(module)
    result = doctest.testmod(imported, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_private_pytest_apis_are_still_there():
    from lxc_compliance import pytest_internals

    assert pytest_internals.problems() == []


def test_every_module_is_in_a_part():
    stray = [name for name in _modules() if _layer(name) is None and name not in FOUNDATIONS
             and name not in ("lxc_compliance.cli",)]
    assert stray == []


def test_pkgutil_sees_the_same_modules():
    walked = {info.name for info in pkgutil.walk_packages(lxc_compliance.__path__, "lxc_compliance.")}
    assert walked == set(_modules()) - {"lxc_compliance"}
