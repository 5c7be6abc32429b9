"""Lower layers never import higher ones: the package's import graph, read from the source with
ast, against the layer order below (a package may import its own layer and those before it). The
core (sql .. evaluation) runs without Ray; Ray enters at raylayer."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "platform/sqlfoundry"
# Lowest first. Packages in one tuple are one layer: the playground is part of the HTTP app that
# serving builds (mounted at /ui, behind serving's keys), so the two import each other's helpers.
LAYERS = [("sql", "config", "storage", "logs"), ("data",), ("modeling",), ("answering",), ("databases",),
          ("evaluation",), ("raylayer",), ("training",), ("tuning",), ("serving", "playground"), ("cli",)]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}
RAY_FREE = {name for name in LEVEL if LEVEL[name] < LEVEL["raylayer"]}


def _package(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Top-level module names imported anywhere in the file (function-level imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if _package(p) not in ("__init__", "__main__"))


def test_every_package_has_a_layer():
    assert {_package(p) for p in MODULES} <= set(LEVEL), {_package(p) for p in MODULES} - set(LEVEL)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_the_layers(path):
    own = LEVEL[_package(path)]
    higher = sorted(name for name in _imports(path) if name.startswith("sqlfoundry.")
                    and name.split(".")[1] in LEVEL and LEVEL[name.split(".")[1]] > own)
    assert not higher, f"{path.relative_to(PACKAGE)} ({_package(path)}) imports a higher layer: {higher}"


@pytest.mark.parametrize("path", [p for p in MODULES if _package(p) in RAY_FREE],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_does_not_import_ray(path):
    assert not {name for name in _imports(path) if name == "ray" or name.startswith("ray.")}
