"""The layer rule of docs/ARCHITECTURE.md, read from the code: every import inside ``oreo_agents`` (module level or
inside a function, it makes no difference to the dependency) goes to the same layer or one below, siblings of a layer
do not import each other, and no two modules import each other in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "oreo_agents"

# Lowest first. A module belongs to the first entry one of whose prefixes it matches; entries sharing a layer number are
# siblings (neither may import the other).
LAYERS: list[tuple[int, str]] = [
    (0, "oreo_agents.errors"),
    (0, "oreo_agents.console"),
    (0, "oreo_agents.config"),
    (0, "oreo_agents.stats"),
    (1, "oreo_agents.envs"),
    (2, "oreo_agents.turns"),
    (2, "oreo_agents.prompting"),
    (3, "oreo_agents.recording"),
    (3, "oreo_agents.policies"),
    (4, "oreo_agents.rollouts"),
    (5, "oreo_agents.models"),
    (6, "oreo_agents.learning"),
    (6, "oreo_agents.agent"),
    (7, "oreo_agents.pipeline"),
    (8, "oreo_agents.cli"),
]
APART = {3, 6}  # layers whose members are siblings: recording and policies, learning and agent, never import each other
ROOT_MAY_IMPORT = {"oreo_agents.envs"}  # the package's __init__ registers the env ids (lazily), nothing else


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package: Path = PACKAGE) -> set[str]:
    """Every ``oreo_agents`` module this file imports (``from x import y`` counts y when it is a submodule)."""
    name = module_name(path, package)
    parent = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parent.split(".")[: len(parent.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("oreo_agents"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}", package))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("oreo_agents"))
    return found - {name}


def _is_module(name: str, package: Path) -> bool:
    rel = package.parent.joinpath(*name.split("."))
    return rel.with_suffix(".py").is_file() or (rel / "__init__.py").is_file()


def layer_of(module: str) -> tuple[int, str] | None:
    for layer, prefix in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer, prefix
    return None


def graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    return {module_name(p, package): imports_of(p, package) for p in sorted(package.rglob("*.py"))}


def test_every_module_has_a_layer():
    unplaced = [m for m in graph() if m != "oreo_agents" and layer_of(m) is None]
    assert not unplaced, f"modules outside every layer (add them to LAYERS and docs/ARCHITECTURE.md): {unplaced}"


def test_imports_only_go_down():
    upward = upward_imports(graph())
    assert not upward, "imports that go up or sideways:\n" + "\n".join(upward)


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    upward = []
    for module, targets in edges.items():
        if module == "oreo_agents":
            upward += [f"oreo_agents -> {t}" for t in targets if t not in ROOT_MAY_IMPORT]
            continue
        mine = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            if target == "oreo_agents" or theirs is None or mine is None:
                continue
            if theirs[0] > mine[0] or (theirs[0] == mine[0] in APART and theirs[1] != mine[1]):
                upward.append(f"{module} (layer {mine[0]}) -> {target} (layer {theirs[0]})")
    return upward


def test_no_import_circles():
    circles = import_circles(graph())
    assert not circles, "import circles:\n" + "\n".join(circles)


def import_circles(edges: dict[str, set[str]]) -> list[str]:
    circles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            nxt = nxt if nxt in edges else None
            if nxt is None or nxt == "oreo_agents":
                continue
            if state.get(nxt) == "open" and not _package_and_child(stack[stack.index(nxt):] + [nxt]):
                circles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in edges:
        if module not in state:
            visit(module, [module])
    return circles


def _package_and_child(cycle: list[str]) -> bool:
    """A package's __init__ re-exporting its own submodule, which imports a sibling through the package, is no circle
    of dependencies; any cycle through two different modules' code is."""
    mods = set(cycle)
    return len(mods) == 2 and any(a != b and b.startswith(a + ".") for a in mods for b in mods)


def test_the_checker_sees_upward_sideways_and_circular_imports(tmp_path):
    """The rule can fail: a made-up package with an upward import (also inside a function), a sideways one between
    siblings and a circle is reported for each."""
    pkg = tmp_path / "oreo_agents"
    files = {
        "__init__.py": "",
        "envs/__init__.py": "",
        "envs/core.py": "def f():\n    from oreo_agents.cli import app\n",
        "recording/__init__.py": "from oreo_agents.policies import base\n",
        "policies/__init__.py": "",
        "policies/base.py": "from . import other\n",
        "policies/other.py": "from oreo_agents.policies.base import X\n",
        "cli/__init__.py": "",
        "cli/app.py": "import oreo_agents.envs.core\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    edges = graph(pkg)
    assert edges["oreo_agents.envs.core"] == {"oreo_agents.cli", "oreo_agents.cli.app"}
    assert upward_imports(edges) == [
        "oreo_agents.envs.core (layer 1) -> oreo_agents.cli (layer 8)",
        "oreo_agents.envs.core (layer 1) -> oreo_agents.cli.app (layer 8)",
        "oreo_agents.recording (layer 3) -> oreo_agents.policies (layer 3)",
        "oreo_agents.recording (layer 3) -> oreo_agents.policies.base (layer 3)",
    ]
    assert import_circles(edges) == [
        "oreo_agents.cli.app -> oreo_agents.envs.core -> oreo_agents.cli.app",
        "oreo_agents.policies.base -> oreo_agents.policies.other -> oreo_agents.policies.base",
    ]
