"""The command line: JSON output contract of doctor, materials and mesh."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cqdlaser.physics.materials import CONTRACT_MATERIALS

PAPER = Path(__file__).parent.parent / "studies" / "configs" / "paper_inorganic_mgf2.toml"


def _cqdlaser(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cqdlaser", *args], capture_output=True, text=True, timeout=300
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
    assert set(CONTRACT_MATERIALS) <= names


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


@pytest.mark.serial
def test_heat_json_contract_and_outputs(tmp_path: Path) -> None:
    common = [
        "--set",
        "heat.mesh=stack",
        "--set",
        "pump.heat_fraction=0.17",
        "--set",
        "heat.end_time_us=2",
        "--set",
        "pump.intensity_kw_cm2=51",
    ]
    proc = _cqdlaser("heat", str(PAPER), "--out", str(tmp_path / "t"), "--json", *common)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    times, temps = doc["times_s"], doc["film_max_temperature_k"]
    assert times[0] == 0.0 and times[-1] == pytest.approx(2e-6)
    assert temps[0] == pytest.approx(295.0) and all(b >= a for a, b in itertools.pairwise(temps))
    assert (tmp_path / "t" / "heat.csv").is_file() and (tmp_path / "t" / "temperature.bp").is_dir()
    steady = json.loads(
        _cqdlaser(
            "heat", str(PAPER), "--steady", "--json", "--out", str(tmp_path / "s"), *common
        ).stdout
    )
    # 1D stack: the steady rise is q (d_film/(2 k_f) + grating + substrate resistances) > transient
    assert steady["steady_film_max_temperature_k"] > temps[-1]


@pytest.mark.serial
def test_lasing_json_contract(tmp_path: Path) -> None:
    proc = _cqdlaser(
        "lasing",
        str(PAPER),
        "--out",
        str(tmp_path),
        "--json",
        "--set",
        "heat.mesh=stack",
        "--set",
        "pump.heat_fraction=0.17",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    for key in (
        "lasing_duration_s",
        "thermal_resistance_k_cm2_per_kw",
        "cw_possible",
        "cw_pump_range_kw_cm2",
    ):
        assert key in doc
    assert 0.0 < doc["lasing_duration_s"] < 2.5e-6
    assert doc["cw_possible"] is False and doc["cw_pump_range_kw_cm2"] is None


@pytest.mark.serial
def test_bands_and_modes_json_contract(tmp_path: Path) -> None:
    proc = _cqdlaser("bands", str(PAPER), "--out", str(tmp_path), "--json", "--set", "mesh.scale=2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    edges = doc["band_edges"]
    assert edges and all(set(e) >= {"wavelength_nm", "confinement"} for e in edges)
    # the band edges sit within the grating's stop band around the Bragg estimate
    assert all(abs(e["wavelength_nm"] / doc["bragg_estimate_nm"] - 1) < 0.05 for e in edges)
    modes = json.loads(_cqdlaser("modes", str(PAPER), "--json").stdout)["modes"]
    assert {m["polarisation"] for m in modes} == {"TE", "TM"}
    for m in modes:
        assert set(m) >= {"polarisation", "order", "n_eff", "confinement", "loss_per_cm"}
        assert sum(m["confinement"].values()) == pytest.approx(1.0)
    te0 = next(m for m in modes if m["polarisation"] == "TE" and m["order"] == 0)
    assert 1.38 < te0["n_eff"] < 1.97


@pytest.mark.serial
def test_lasing_emission_delays_runaway(tmp_path: Path) -> None:
    """With part of the pump leaving as laser light the film heats more slowly: it lases longer."""
    common = ["--set", "heat.mesh=stack", "--set", "pump.heat_fraction=0.1"]
    plain = json.loads(
        _cqdlaser("lasing", str(PAPER), "--json", "--out", str(tmp_path / "a"), *common).stdout
    )
    emitting = json.loads(
        _cqdlaser(
            "lasing",
            str(PAPER),
            "--json",
            "--out",
            str(tmp_path / "b"),
            *common,
            "--set",
            "laser.slope_efficiency=0.05",
        ).stdout
    )
    assert emitting["lasing_duration_s"] > 1.05 * plain["lasing_duration_s"]
    assert emitting["slope_efficiency"] == 0.05 and "laser emission" in emitting["cw_method"]


@pytest.mark.serial
def test_petsc_options_with_values_pass_through() -> None:
    ok = _cqdlaser(
        "modes",
        str(PAPER),
        "--json",
        "-modes_stack_eps_tol",
        "1e-9",
        "-modes_stack_eps_ncv",
        "24",
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["modes"]
    bad = _cqdlaser("modes", str(PAPER), "stray", "words")
    assert bad.returncode != 0 and "unrecognised arguments" in bad.stderr
