"""The package's import graph, read from the source (nothing is imported): no circle between vlmscale
modules, and nothing vlmscale/models/ reaches imports Lightning or Hydra (models are plain nn.Modules).

Imports inside functions count too: a lazy import still ties the two modules together."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vlmscale"
FRAMEWORKS = ("lightning", "pytorch_lightning", "hydra")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """Every module ``name`` imports: absolute names, relative ones resolved, ``from pkg import submodule``
    counted as the submodule."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(
                f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES
            )
    return found


GRAPH = {name: {m for m in imports_of(name) if m in MODULES and m != name} for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            # A package's __init__ re-exporting its own submodules, and those submodules importing siblings
            # through the package, is how Python packages work, not a circle between concepts.
            if nxt == node.rpartition(".")[0] or node == nxt.rpartition(".")[0]:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_walker_sees_the_package():
    assert {"vlmscale.lit", "vlmscale.assemble", "vlmscale.models.vlm", "vlmscale.data.module"} <= set(
        MODULES
    )
    assert "vlmscale.assemble" in GRAPH["vlmscale.lit"]
    assert "vlmscale.models.connector" in GRAPH["vlmscale.models.vlm"]  # a relative import resolved


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_in_the_package():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(GRAPH[name])
    return seen


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("vlmscale.models")))
def test_models_reach_no_lightning_or_hydra(name):
    for module in reachable(name):
        bad = {m for m in imports_of(module) if m.split(".")[0] in FRAMEWORKS}
        assert not bad, f"{name} reaches {module}, which imports {sorted(bad)}"


def unit(name: str) -> str:
    """The concept a module belongs to: a subpackage (vlmscale.eval, vlmscale.data, ...) or a top module."""
    return ".".join(name.split(".")[:2])


def test_no_two_parts_of_the_package_import_each_other():
    units = {unit(m) for m in MODULES}
    graph = {u: set() for u in units}
    for name, targets in GRAPH.items():
        graph[unit(name)].update(unit(t) for t in targets if unit(t) != unit(name))
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)
