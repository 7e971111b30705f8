"""The package's shape: imports point inward, and no module imports itself back through others.

Every `import` is counted, those inside functions too (a local import that breaks a circle at
run time is still a circle in the design); only imports under `if TYPE_CHECKING:` are not.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import roombook

PACKAGE = pathlib.Path(roombook.__file__).parent

# What each part may import, besides itself. The arrow points inward: the domain at the centre,
# then routing, the ports and adapters, the actors, the services and the event side; the
# composition root, the app and the processes outermost.
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "config": {"domain"},
    "routing": {"domain"},
    "heap": set(),
    "logs": {"domain", "services"},
    "storage": {"domain", "routing"},
    "actors": {"domain", "routing", "storage", "heap"},
    "services": {"domain", "routing", "storage", "actors"},
    "events": {"domain", "storage", "services"},
    "sim": {"domain", "routing", "storage", "actors", "services"},
    "bootstrap": {"domain", "config", "routing", "storage", "actors", "services", "events"},
    "http": {"domain", "config", "routing", "storage", "actors", "services", "events", "bootstrap", "logs"},
    "ops": {"domain", "config", "routing", "storage", "services", "bootstrap"},
    "serve": {"domain", "config", "storage", "actors", "heap", "bootstrap", "http", "ops", "logs"},
    "edge": {"domain", "config", "services", "storage", "bootstrap", "http"},
    "cli": {"domain", "config", "ops", "serve", "logs", "edge"},
    "__main__": {"cli"},
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {m for m in _imports(ast.parse(path.read_text())) if m in modules and m != name}
        graph[name] = targets
    return graph


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else module


GRAPH = _graph()


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m != "roombook"))
def test_imports_point_inward(module: str) -> None:
    part = _part(module)
    assert part in ALLOWED, f"{module}: a part of the package the layering does not know"
    outward = sorted(t for t in GRAPH[module] if _part(t) not in ALLOWED[part] | {part, "roombook"})
    assert not outward, f"{module} imports outward: {outward}"


def test_no_module_imports_itself_back() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles: list[list[str]] = []

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            walk(module, [module])
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_the_layering_knows_every_part_of_the_package() -> None:
    parts = {_part(m) for m in GRAPH if m != "roombook"}
    assert parts == set(ALLOWED)
