"""The public API is the CLI's code path: every command and the same API call give the same numbers.

Each CLI command runs in-process (``main([...])``, collective under mpirun) with ``--json`` on
example configs, and its document is compared key by key with ``result.to_dict()`` of the API
call on the same device; only timings, timestamps and output paths may differ.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
import pytest

import cqdlaser
from cqdlaser.studies.cli import main
from cqdlaser.studies.output import to_json

CONFIGS = Path(__file__).parent.parent / "studies" / "configs"
ALL_CONFIGS = sorted(p.stem for p in CONFIGS.glob("*.toml"))
VOLATILE = {"created", "wall_time_s", "build_s", "command", "out", "git"}
THERMAL = ["heat.mesh=stack", "heat.end_time_us=0.5", "mesh.optical_padding_um=1"]
BANDS = ["mesh.film_elements=1", "mesh.pillar_elements=3", "mesh.optical_padding_um=1.0"]


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    code = main([*args, "--json"])
    out = capsys.readouterr().out
    assert code == 0
    text = MPI.COMM_WORLD.bcast(out if MPI.COMM_WORLD.rank == 0 else None, root=0)
    return json.loads(text)


def _same(cli: Any, api: Any, path: str = "") -> None:
    """Equal documents: integers and strings exactly, floats to round-off, ignoring timings,
    timestamps, paths and the git revision (commits may land while the suite runs)."""
    if isinstance(cli, dict):
        assert isinstance(api, dict), path
        keys = set(cli) - VOLATILE
        assert keys == set(api) - VOLATILE, path
        for k in keys:
            _same(cli[k], api[k], f"{path}.{k}")
    elif isinstance(cli, list):
        assert isinstance(api, list) and len(cli) == len(api), path
        for i, (a, b) in enumerate(zip(cli, api, strict=True)):
            _same(a, b, f"{path}[{i}]")
    elif isinstance(cli, float) and math.isnan(cli):
        assert isinstance(api, float) and math.isnan(api), path
    elif isinstance(cli, float):
        # to round-off: an eigensolver's random start vector differs between two calls
        assert math.isclose(cli, api, rel_tol=1e-10, abs_tol=1e-14), f"{path}: {cli!r} != {api!r}"
    else:
        assert cli == api, f"{path}: {cli!r} != {api!r}"


def _doc(result: Any) -> dict[str, Any]:
    return json.loads(to_json(result.to_dict()))


def _config(name: str) -> str:
    return str(CONFIGS / f"{name}.toml")


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def _check(
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    config: str,
    overrides: list[str],
    call: Callable[[cqdlaser.Device], Any],
) -> dict[str, Any]:
    cli = _cli(capsys, command[0], _config(config), *command[1:], *_sets(overrides))
    api = _doc(call(cqdlaser.load_device(_config(config), overrides)))
    _same(cli, api)
    return cli


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_modes_cli_equals_api(capsys: pytest.CaptureFixture[str], config: str) -> None:
    doc = _check(capsys, ["modes"], config, [], cqdlaser.modes)
    assert doc["wavelength_nm"] == cqdlaser.load_device(_config(config)).optics.wavelength_nm


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_mesh_cli_equals_api(
    capsys: pytest.CaptureFixture[str], config: str, shared_tmp: Path
) -> None:
    doc = _check(
        capsys,
        ["mesh", "--kind", "stack", "--out", str(shared_tmp / "cli")],
        config,
        ["mesh.optical_padding_um=1"],
        lambda d: cqdlaser.mesh(d, "stack"),
    )
    assert doc["cells"] > 0 and doc["untagged_cells"] == 0


@pytest.mark.parametrize("config", ["paper_inorganic_mgf2", "al_mgf2_cladding"])
def test_heat_cli_equals_api(
    capsys: pytest.CaptureFixture[str], config: str, shared_tmp: Path
) -> None:
    doc = _check(
        capsys,
        ["heat", "--out", str(shared_tmp / "cli")],
        config,
        THERMAL,
        lambda d: cqdlaser.heat(d, out=shared_tmp / "api"),
    )
    assert len(doc["times_s"]) == doc["steps"] + 1
    MPI.COMM_WORLD.barrier()  # rank 0 writes the files
    saved = json.loads((shared_tmp / "api" / "heat.json").read_text())
    assert saved["film_max_temperature_k"] == doc["film_max_temperature_k"]


def test_heat_steady_cli_equals_api(capsys: pytest.CaptureFixture[str], shared_tmp: Path) -> None:
    doc = _check(
        capsys,
        ["heat", "--steady", "--out", str(shared_tmp / "cli")],
        "ase_inorganic_glass",
        THERMAL,
        lambda d: cqdlaser.heat(d, steady=True),
    )
    assert "times_s" not in doc and doc["steady_film_max_temperature_k"] > doc["sink_temperature_k"]


@pytest.mark.parametrize("config", ["paper_organic_mgf2", "si_sio2_cladding"])
def test_lasing_cli_equals_api(
    capsys: pytest.CaptureFixture[str], config: str, shared_tmp: Path
) -> None:
    doc = _check(
        capsys,
        ["lasing", "--out", str(shared_tmp / "cli")],
        config,
        [*THERMAL, "pump.pulse_ns=500"],
        cqdlaser.lasing,
    )
    assert doc["heat_fraction"] > 0 and isinstance(doc["cw_possible"], bool)


def test_bands_cli_equals_api(capsys: pytest.CaptureFixture[str], shared_tmp: Path) -> None:
    doc = _check(
        capsys,
        ["bands", "--bands", "2", "--out", str(shared_tmp / "cli")],
        "paper_inorganic_mgf2",
        BANDS,
        lambda d: cqdlaser.bands(d, n_bands=2),
    )
    assert len(doc["band_edges"]) == 2


def test_list_names_the_api_studies(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["list", "--json"]) == 0
    out = capsys.readouterr().out
    if MPI.COMM_WORLD.rank == 0:
        assert json.loads(out)["studies"] == cqdlaser.list_studies()


def test_results_are_frozen_and_typed() -> None:
    device = cqdlaser.load_device(_config("ase_inorganic_glass"))
    result = cqdlaser.modes(device, polarisations=["TE"])
    with pytest.raises(AttributeError):
        result.wavelength_nm = 1.0  # type: ignore[misc]
    te0 = result.select("TE", 0)
    assert isinstance(result.n_eff, np.ndarray) and result.n_eff[0] == te0.n_eff
    assert 1.5 < te0.n_eff < 1.97 and 0 < te0.gain_confinement < 1
    assert result.device == device and result.provenance["versions"]["cqdlaser"]
    assert result.to_dict()["inputs"]["film"]["thickness_nm"] == device.film.thickness_nm


def test_load_device_from_mapping_device_and_overrides() -> None:
    from_file = cqdlaser.load_device(_config("paper_inorganic_mgf2"), ["film.thickness_nm=60"])
    from_map = cqdlaser.load_device({"film": {"thickness_nm": 60}, "substrate": {"material": "si"}})
    again = cqdlaser.load_device(from_file, ["substrate.material=sapphire"])
    assert from_file.film.thickness_nm == from_map.film.thickness_nm == 60
    assert again.substrate.material == "sapphire" and again.film == from_file.film
    with pytest.raises(cqdlaser.ConfigError, match=r"substrate\.material"):
        cqdlaser.load_device({"substrate": {"material": "unobtainium"}})


def test_run_study_rejects_a_device_for_paper_only_studies() -> None:
    device = cqdlaser.load_device(_config("si_sio2_cladding"))
    with pytest.raises(cqdlaser.ConfigError, match="fig1c"):
        cqdlaser.run_study("fig1c", device)
    with pytest.raises(cqdlaser.ConfigError, match="study"):
        cqdlaser.run_study("no_such_study")


def test_modes_writes_tables_and_named_fields(shared_tmp: Path) -> None:
    device = cqdlaser.load_device(_config("ase_inorganic_glass"))
    result = cqdlaser.modes(device, out=shared_tmp)
    MPI.COMM_WORLD.barrier()
    if MPI.COMM_WORLD.rank == 0:
        import pyvista

        grid = pyvista.read(shared_tmp / "modes.vtkhdf")
        for m in result.modes:
            name = f"{m.polarisation}{m.order}"
            assert name in grid.point_data
            assert grid.field_data[f"{name}_n_eff"][0] == pytest.approx(m.fem_n_eff, rel=1e-12)
            assert m.fem_n_eff == pytest.approx(m.n_eff, abs=1e-5)
        saved = json.loads((shared_tmp / "modes.json").read_text())
        assert [r["n_eff"] for r in saved["modes"]] == list(result.n_eff)
        assert (shared_tmp / "modes.csv").read_text().startswith("polarisation,order,n_eff")


@pytest.mark.study
def test_run_cli_equals_api(capsys: pytest.CaptureFixture[str], shared_tmp: Path) -> None:
    capsys.readouterr()
    assert (
        main(["run", "fig1c", "--quick", "--no-figures", "--json", "--out", str(shared_tmp)]) == 0
    )
    out = capsys.readouterr().out
    cli = json.loads(MPI.COMM_WORLD.bcast(out if MPI.COMM_WORLD.rank == 0 else None, root=0))
    api = cqdlaser.run_study("fig1c", quick=True, out=shared_tmp / "api", figures=False)
    _same(cli["fig1c"], _doc(api))
    assert api.summary["gamma_inorganic_120nm"] == pytest.approx(0.54, abs=0.01)
    assert not list((shared_tmp / "api").glob("*.png"))


def test_results_state_the_heat_fraction_and_its_origin() -> None:
    given = cqdlaser.load_device(
        _config("paper_inorganic_mgf2"), [*THERMAL, "pump.heat_fraction=0.1"]
    )
    computed = cqdlaser.load_device(
        _config("paper_inorganic_mgf2"), [*THERMAL, "pump.heat_fraction_model=absorption"]
    )
    calibrated = cqdlaser.load_device(_config("paper_inorganic_mgf2"), THERMAL)
    heat = cqdlaser.heat(given, steady=True)
    assert heat.heat_fraction == 0.1 and heat.heat_fraction_origin == "given"
    assert heat.to_dict()["heat_fraction_origin"] == "given"
    laser = cqdlaser.lasing(computed)
    assert laser.heat_fraction_origin == "computed from absorption and PLQY"
    assert 0.0 < laser.heat_fraction < 1.0 and laser.heat_fraction != 0.1
    default = cqdlaser.lasing(calibrated)
    assert default.heat_fraction_origin == "calibrated"
    assert default.heat_fraction == pytest.approx(0.09987)
