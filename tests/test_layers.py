"""The package's layers: core (warp, threats, attacks, losses, models, data, train) <- evaluation (the
`jointlab.evaluation` package: metrics, the paper's suites, the strong ensemble, gradient-free members,
diagnostics, reports, the interop boundary) <- the face (notebooks runner, widgets, explorer, book,
sweeps, zoo, CLI, ...). Imports run one way, lazy ones inside functions included, and no module
imports itself back through others."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jointlab"
CORE = {"warp", "threats", "attacks", "losses", "models", "data", "train"}
EVALUATION = {"evaluation", *(f"evaluation.{m}" for m in (
    "metrics", "paper", "strong", "gradient_free", "diagnostics", "reports", "interop"))}
CORE_LINES = 2000  # issue 17: the core stays small enough to read in an afternoon


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def _imports() -> dict[str, set[str]]:
    """Module -> the jointlab modules it imports (relative or absolute, at any depth of the file)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        package = name if path.stem == "__init__" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".") if package and package != "__init__" else []
                    base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                    if node.module:
                        found.add(".".join([*base, node.module]))
                    else:
                        found |= {".".join([*base, a.name]) for a in node.names}
                elif node.module and node.module.startswith("jointlab."):
                    found.add(node.module.removeprefix("jointlab."))
            elif isinstance(node, ast.Import):
                found |= {a.name.removeprefix("jointlab.") for a in node.names
                          if a.name.startswith("jointlab.")}
        known = set()
        for f in found:  # `from .evaluation import x` names the package; `from . import attacks` a module
            path_ = PACKAGE / f.replace(".", "/")
            is_module = path_.with_suffix(".py").exists() or path_.is_dir()
            known.add(f if is_module else f.rpartition(".")[0] or "__init__")
        graph[name] = {k for k in known if k and k != "__init__"} - {name}
    return graph


def test_every_module_has_a_layer():
    assert CORE | EVALUATION <= set(_imports())


def test_core_imports_only_core_and_evaluation_no_face():
    graph = _imports()
    face = set(graph) - CORE - EVALUATION - {"__init__"}
    for module in CORE:
        assert graph[module] <= CORE, f"core module {module} imports {sorted(graph[module] - CORE)}"
    for module in EVALUATION:
        assert graph[module] <= CORE | EVALUATION, f"{module} imports {sorted(graph[module] & face)}"


def test_the_layer_check_sees_imports():
    """The checker itself: it must see the relative imports of a package module."""
    graph = _imports()
    assert "attacks" in graph["evaluation.strong"] and "evaluation.paper" in graph["evaluation.strong"]
    assert "evaluation" in graph["cli"] or "evaluation.interop" in graph["cli"]


def test_no_import_circle():
    graph = _imports()

    def visit(module, path):
        for nxt in graph.get(module, ()):
            assert nxt not in path, "import circle: " + " -> ".join([*path, nxt])
            visit(nxt, [*path, nxt])

    for module in graph:
        if module != "evaluation":  # the package's __init__ imports its own modules, by design
            visit(module, [module])


def test_core_is_small():
    lines = sum(len((PACKAGE / f"{m}.py").read_text().splitlines()) for m in CORE)
    assert lines <= CORE_LINES, f"core is {lines} lines (goal ≤ {CORE_LINES})"
