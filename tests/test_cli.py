"""The command line: JSON output contract of doctor, materials and mesh."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PAPER = Path(__file__).parent.parent / "studies" / "configs" / "paper_inorganic_mgf2.toml"


def _cqdlaser(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "studies", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.serial
def test_doctor_json_reports_versions_and_passing_checks() -> None:
    proc = _cqdlaser("doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["mpi_size"] == 1
    for key in ("python", "dolfinx", "petsc", "petsc_scalar", "slepc", "gmsh", "mpi"):
        assert doc["versions"][key]
    assert set(doc["checks"]) == {"gmsh_to_dolfinx", "petsc_poisson", "slepc_eigen"}


@pytest.mark.serial
def test_materials_json_lists_required_names() -> None:
    doc = json.loads(_cqdlaser("materials", "--json").stdout)
    names = {row["name"] for row in doc["materials"]}
    assert {
        "air",
        "glass",
        "sio2",
        "sog",
        "mgf2",
        "sapphire",
        "si",
        "al",
        "diamond",
        "cqd_inorganic",
        "cqd_organic",
    } <= names


@pytest.mark.serial
def test_mesh_json_and_files(tmp_path: Path) -> None:
    proc = _cqdlaser(
        "mesh",
        str(PAPER),
        "--kind",
        "stack",
        "--out",
        str(tmp_path),
        "--json",
        "--set",
        "mesh.optical_padding_um=1.5",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["cells"] > 0 and doc["vertices"] == doc["cells"] + 1
    assert doc["min_quality"] == 1.0
    regions = doc["regions"]
    assert regions["film"] == pytest.approx(120e-9) and regions["grating"] == pytest.approx(130e-9)
    assert regions["cap"] == pytest.approx(1000e-9) and regions["cover"] == pytest.approx(1.5e-6)
    for name in ("mesh.xdmf", "mesh.h5", "mesh.msh", "markers.json", "info.json"):
        assert (tmp_path / name).is_file()
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["inputs"]["film"]["thickness_nm"] == 120 and info["versions"]["dolfinx"]
