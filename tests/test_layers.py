"""The package's layers: core (warp, threats, attacks, losses, models, data, train, the gradient-free
members, the interop boundary) <- evaluation (evaluate, strong) <- the face (notebooks runner, widgets,
explorer, book, sweeps, zoo, CLI, ...). Imports run one way, lazy ones inside functions included, and
no module imports itself back through others."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jointlab"
CORE = {"warp", "threats", "attacks", "losses", "models", "data", "train", "gradient_free", "interop"}
EVALUATION = {"evaluate", "strong"}


def _imports() -> dict[str, set[str]]:
    """Module -> the jointlab modules it imports (relative or absolute, at any depth of the file)."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    names = [node.module] if node.module else [a.name for a in node.names]
                elif node.module and node.module.startswith("jointlab."):
                    names = [node.module.split(".")[1]]
                else:
                    continue
                found |= {n.split(".")[0] for n in names}
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("jointlab.")}
        graph[path.stem] = found - {"__init__", path.stem}
    return graph


def test_every_module_has_a_layer():
    assert CORE | EVALUATION <= set(_imports())


def test_core_imports_only_core_and_evaluation_no_face():
    graph = _imports()
    face = set(graph) - CORE - EVALUATION - {"__init__"}
    for module in CORE:
        assert graph[module] <= CORE, f"core module {module} imports {sorted(graph[module] - CORE)}"
    for module in EVALUATION:
        assert not graph[module] & face, f"{module} imports the face: {sorted(graph[module] & face)}"


def test_no_import_circle():
    graph = _imports()

    def visit(module, path):
        for nxt in graph.get(module, ()):
            assert nxt not in path, "import circle: " + " -> ".join([*path, nxt])
            visit(nxt, [*path, nxt])

    for module in graph:
        visit(module, [module])
