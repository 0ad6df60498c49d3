"""Imports flow one way through the package, and every module imports on its own.

The order (each layer may import only itself and the layers before it):

    config/errors/utils -> data -> datasets -> encoders -> fusion -> heads -> objectives
    -> metrics -> model -> tasks (predictors, saved folders) -> training
    -> reports and analyses -> retrieval -> api -> serve -> cli

The graph is read from the source with `ast` (module-level and function-level imports;
`if TYPE_CHECKING:` blocks are type-only and ignored). `KNOWN_*` list what the code does
today against the rule; the test fails on any new violation and on any listed one that is
gone, so the lists only shrink.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[tuple[str, ...]] = [
    ("plait", "plait.config", "plait.errors", "plait.utils", "plait.threads"),
    ("plait.data",),
    (
        "plait.datasets",
        "plait.data.demo",
        "plait.data.shapes",
        "plait.data.digits",
        "plait.data.avmnist",
    ),
    ("plait.vlm",),  # large-model backends: media files and transformers only; api calls them
    ("plait.encoders",),
    ("plait.fusion",),
    ("plait.heads",),
    ("plait.objectives",),
    ("plait.evaluation.metrics", "plait.evaluation.retrieval", "plait.evaluation.caption_metrics"),
    ("plait.model", "plait.build", "plait.alignment"),
    (
        "plait.tasks",
        "plait.predictor",
        "plait.alignment.predictor",
        "plait.model_folder",
        "plait.pruned_shapes",
        "plait.export",  # beside the predictors: `plait.load` opens export folders
    ),
    ("plait.training",),
    ("plait.evaluation",),
    ("plait.retrieval",),
    ("plait.api", "plait.autoconfig", "plait.demo", "plait.demo_retrieval"),
    ("plait.compress",),
    ("plait.serve",),
    ("plait.cli", "plait.caption_cli", "plait.vlm_cli", "plait.vqa_cli"),
]
PREDICTORS = ("plait.predictor", "plait.alignment.predictor", "plait.tasks")

KNOWN_CYCLES: set[frozenset[str]] = set()
KNOWN_BACK_EDGES: set[tuple[str, str]] = set()


def module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted((SRC / "plait").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The plait modules `name` imports (a `from pkg import sub` counts as `pkg.sub`)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    tree = ast.parse(path.read_text())
    type_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node.test)
        for statement in node.body
        for child in ast.walk(statement)
    }
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def layer_of(module: str) -> int:
    best, length = -1, -1
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or (prefix != "plait" and module.startswith(prefix + "."))
            if inside and len(prefix) > length:
                best, length = rank, len(prefix)
    return best


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in graph:
        if node not in index:
            connect(node)
    return found


def back_edges(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    edges = set()
    for module, targets in graph.items():
        for target in targets:
            later = layer_of(target) > layer_of(module)
            training_to_predictor = module.startswith("plait.training") and target.startswith(
                PREDICTORS
            )
            if later or training_to_predictor:
                edges.add((module, target))
    return edges


def test_every_module_has_a_layer():
    assert [m for m in module_files() if layer_of(m) < 0] == []


def test_no_new_import_cycles():
    found = cycles(import_graph())
    assert found - KNOWN_CYCLES == set(), "new import cycle"
    assert KNOWN_CYCLES - found == set(), "a known cycle is gone: remove it from KNOWN_CYCLES"


def test_no_new_back_edges():
    found = back_edges(import_graph())
    assert found - KNOWN_BACK_EDGES == set(), "import against the layer order"
    assert KNOWN_BACK_EDGES - found == set(), "a known back-edge is gone: remove it"


def test_the_graph_sees_function_level_imports(tmp_path: Path):
    source = tmp_path / "late.py"
    source.write_text("def build():\n    from plait.data import audio\n    return audio\n")
    assert "plait.data.audio" in imports_of("plait.late", source, module_files())


def test_processor_kinds_come_from_the_table_alone():
    # the base module of the processors imports no kind; the table module imports them all
    graph = import_graph()
    kinds = {"plait.data.text", "plait.data.image", "plait.data.audio"}
    assert graph["plait.data.processor_base"] & kinds == set()
    assert kinds <= graph["plait.data.processor"]


@pytest.mark.parametrize("module", sorted(module_files()))
def test_every_module_imports_on_its_own(module: str):
    importlib.import_module(module)
