"""One namespace: cqdlaser and its three subpackages import from anywhere, and a user's own
``geometry.py``, ``physics.py`` or ``studies/`` beside their script changes nothing."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

import cqdlaser

HOSTILE = "raise SystemExit('the user module {} was imported instead of cqdlaser.{}')\n"


def test_subpackages_are_modules_of_the_namespace() -> None:
    for name in ("geometry", "physics", "studies"):
        module = getattr(cqdlaser, name)
        assert isinstance(module, types.ModuleType) and module.__name__ == f"cqdlaser.{name}"


def test_version_from_one_place() -> None:
    assert cqdlaser.__version__ == importlib.metadata.version("cqdlaser")


def test_public_api_is_documented() -> None:
    assert len(set(cqdlaser.__all__)) == len(cqdlaser.__all__)
    for name in cqdlaser.__all__:
        obj = getattr(cqdlaser, name)
        if name != "__version__":
            assert (obj.__doc__ or "").strip(), f"cqdlaser.{name} has no docstring"
            assert name in (cqdlaser.__doc__ or ""), f"cqdlaser.{name} is not in the package doc"


@pytest.mark.serial
def test_user_modules_named_like_the_subpackages_change_nothing(tmp_path: Path) -> None:
    for name in ("geometry", "physics"):
        (tmp_path / f"{name}.py").write_text(HOSTILE.format(name, name))
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "__init__.py").write_text(HOSTILE.format("studies", "studies"))
    script = (
        "import importlib.util, cqdlaser, cqdlaser.studies.cli\n"
        "from cqdlaser.geometry.config import load_device\n"
        "print(cqdlaser.__version__, cqdlaser.studies.__name__)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    cli = subprocess.run(
        [sys.executable, "-m", "cqdlaser", "list", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert "fig1c" in json.loads(cli.stdout)["studies"]


@pytest.mark.serial
def test_nothing_named_like_a_subpackage_is_installed(tmp_path: Path) -> None:
    names = ("geometry", "physics", "studies")
    probe = f"import importlib.util as u; print([u.find_spec(n) for n in {names}])"
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[None, None, None]"
