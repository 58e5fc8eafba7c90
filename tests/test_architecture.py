"""The architecture, checked on the source: dependencies point one way (studies -> physics ->
geometry), physics solves on meshes it is given (it imports neither Gmsh nor a mesh builder), and
every import of the package goes through the ``cqdlaser`` namespace.

Imports are read with ``ast`` from every module (those inside functions too); relative imports are
resolved against the module's package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"geometry": "cqdlaser.geometry", "physics": "cqdlaser.physics"}
BUILDERS = ("stack", "cell", "cross_section", "device_mesh", "axisymmetric", "builders", "_gmsh")
MESH_BUILDERS = tuple(f"cqdlaser.geometry.{name}" for name in BUILDERS)
TOP_LEVEL = ("geometry", "physics", "studies")
FOLDERS = ("geometry", "physics", "studies", "cqdlaser", "src", "tests", "benchmarks", "examples")


def imported_modules(source: str, package: str = "") -> Iterator[str]:
    """Every module a source imports, fully qualified: ``from a import b`` yields ``a`` and
    ``a.b`` (b may be a submodule); relative imports are resolved against ``package``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``module`` is one of ``prefixes`` or inside one of them."""
    return any(module == p or module.startswith(f"{p}.") for p in prefixes)


def modules(folder: str) -> list[Path]:
    """The Python files under a top-level folder of the repository (none if it is absent)."""
    path = ROOT / folder
    return sorted(path.rglob("*.py")) if path.is_dir() else []


def imports_of(path: Path, package: str) -> set[str]:
    return set(imported_modules(path.read_text(encoding="utf-8"), package))


def test_checker_sees_every_form_of_import() -> None:
    """The checks below would catch each way of writing a forbidden import."""
    source = (
        "import gmsh\n"
        "def f():\n"
        "    from cqdlaser.geometry import cell\n"
        "    from .. import studies\n"
        "    import geometry.stack\n"
        "    from physics.heat import HeatProblem\n"
    )
    found = set(imported_modules(source, "cqdlaser.physics"))
    assert "gmsh" in found
    assert "cqdlaser.geometry.cell" in found and within("cqdlaser.geometry.cell", MESH_BUILDERS)
    assert "cqdlaser.studies" in found
    assert {"geometry.stack", "physics.heat"} <= found
    assert within("geometry.stack", TOP_LEVEL) and not within("cqdlaser.geometry", TOP_LEVEL)


def test_the_folders_are_found() -> None:
    assert len(modules("physics")) > 5 and len(modules("geometry")) > 5
    assert modules("studies") and modules("tests")


@pytest.mark.parametrize("path", modules("physics"), ids=lambda p: p.name)
def test_physics_builds_no_mesh_and_knows_no_study(path: Path) -> None:
    """physics/ solves on the meshes it is given: no Gmsh, no mesh builder, no studies."""
    found = imports_of(path, PACKAGES["physics"])
    forbidden = sorted(m for m in found if within(m, ("gmsh", *MESH_BUILDERS, "cqdlaser.studies")))
    assert not forbidden, f"{path.relative_to(ROOT)} imports {forbidden}"


@pytest.mark.parametrize("path", modules("geometry"), ids=lambda p: p.name)
def test_geometry_imports_neither_physics_nor_studies(path: Path) -> None:
    found = imports_of(path, PACKAGES["geometry"])
    forbidden = sorted(m for m in found if within(m, ("cqdlaser.physics", "cqdlaser.studies")))
    assert not forbidden, f"{path.relative_to(ROOT)} imports {forbidden}"


@pytest.mark.parametrize(
    "path",
    [p for folder in FOLDERS for p in modules(folder)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_imports_go_through_the_cqdlaser_namespace(path: Path) -> None:
    """Nothing imports a top-level ``geometry``, ``physics`` or ``studies``: they install only
    as ``cqdlaser.geometry``, ``cqdlaser.physics`` and ``cqdlaser.studies``."""
    folder = path.relative_to(ROOT).parts[0]
    package = PACKAGES.get(folder, "cqdlaser.studies" if folder == "studies" else "")
    found = imports_of(path, package)
    forbidden = sorted(m for m in found if within(m, TOP_LEVEL))
    assert not forbidden, f"{path.relative_to(ROOT)} imports {forbidden}"
