"""Package hygiene read from the source: every third-party import is a declared dependency,
and no module installs a warning filter when it is imported."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest brings tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "plait"

# Lightning's own chatter is filtered by training/fit.py when it is imported; training's
# warning filters are reworked with the training loop, not here.
FILTERS_ALLOWED_IN: set[str] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text()) for p in sorted(SRC.rglob("*.py"))}


def _normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


# Modules (or packages) that may import an extra: export, quantization, pruning and the
# service use `ship`, caption metrics `caption`, the OpenAI-compatible client `vlm`; everything else must work with
# `pip install plait` alone.
EXTRA_OF = {
    "plait.export": "ship",
    "plait.compress": "ship",
    "plait.serve": "ship",
    "plait.evaluation.caption_metrics": "caption",
    "plait.vlm.openai_chat": "vlm",
}


def declared_distributions(extra: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    if extra is not None:
        specs += project["optional-dependencies"][extra]
    names = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
    return {_normalise(names.match(spec).group(1)) for spec in specs}  # type: ignore[union-attr]


def _extra_of(module: str) -> str | None:
    for prefix, extra in EXTRA_OF.items():
        if module == prefix or module.startswith(prefix + "."):
            return extra
    return None


def third_party_imports(tree: ast.Module) -> set[str]:
    """Top-level names of the absolute imports in `tree` that are neither stdlib nor plait."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return {m for m in found if m != "plait" and m not in sys.stdlib_module_names}


def test_every_imported_package_is_declared() -> None:
    allowed = {extra: declared_distributions(extra) for extra in set(EXTRA_OF.values())}
    core = declared_distributions()
    providers = packages_distributions()
    undeclared: dict[str, list[str]] = {}
    for module, tree in _sources().items():
        extra = _extra_of(module)
        declared = core if extra is None else allowed[extra]
        for name in third_party_imports(tree):
            distributions = {_normalise(d) for d in providers.get(name, [])}
            if not distributions & declared:
                undeclared.setdefault(f"{name} ({sorted(distributions)})", []).append(module)
    assert undeclared == {}, (
        "imported but not declared: core modules need [project] dependencies; "
        "the modules in EXTRA_OF may also use their extra"
    )


def test_the_import_reader_sees_every_form() -> None:
    tree = ast.parse(
        "import os, numpy.linalg as la\nfrom PIL import Image\nfrom . import x\n"
        "def f():\n    import jinja2\n    from plait.data import processor\n"
    )
    assert third_party_imports(tree) == {"numpy", "PIL", "jinja2"}


def _module_level_filter_calls(tree: ast.Module) -> list[int]:
    """Lines of `warnings.filterwarnings`/`simplefilter` calls run when the module is imported
    (outside any function body, and not inside a `warnings.catch_warnings()` block)."""
    lines: list[int] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return  # runs when called, not on import
        if isinstance(node, ast.With) and any(
            "catch_warnings" in ast.unparse(item.context_expr) for item in node.items
        ):
            return  # restored when the block ends
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in {"filterwarnings", "simplefilter", "resetwarnings"}
        ):
            lines.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return lines


def test_no_warning_filters_are_installed_on_import() -> None:
    found = {
        module: lines
        for module, tree in _sources().items()
        if module not in FILTERS_ALLOWED_IN and (lines := _module_level_filter_calls(tree))
    }
    assert found == {}, "filter warnings inside `with warnings.catch_warnings():` where needed"


def test_the_filter_finder_sees_module_level_calls() -> None:
    tree = ast.parse(
        "import warnings\nwarnings.filterwarnings('ignore')\n"
        "def f():\n    warnings.simplefilter('ignore')\n"
        "with warnings.catch_warnings():\n    warnings.simplefilter('ignore')\n"
        "if True:\n    warnings.simplefilter('error')\n"
    )
    assert _module_level_filter_calls(tree) == [2, 8]


def test_every_template_ships_as_package_data() -> None:
    from fnmatch import fnmatch

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["plait"]
    templates = sorted((SRC / "evaluation" / "templates").iterdir())
    assert templates
    for path in templates:
        relative = path.relative_to(SRC).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in patterns), relative
