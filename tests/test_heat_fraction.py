"""One heat-fraction story: the default is the films' calibrated value, every result states the
value and its origin, and a film material without the data its model needs stops the run."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

from mpi4py import MPI

import pytest

from cqdlaser.geometry.config import load_device
from cqdlaser.geometry.errors import ConfigError
from cqdlaser.physics.materials import region_materials, validate_materials
from cqdlaser.physics.source import absorbed_fraction, heat_fraction, heat_fraction_origin
from cqdlaser.studies.output import write_csv
from cqdlaser.studies.paper.calibration import study_heat_fraction

CONFIGS = Path(__file__).parent.parent / "studies" / "configs"
PAPER = CONFIGS / "paper_inorganic_mgf2.toml"
NEW_FILM = """
[film]
material = "myqd"
thickness_nm = 150
[materials.myqd]
thermal_conductivity_w_mk = 0.3
density_kg_m3 = 3000
specific_heat_j_kgk = 400
refractive_index = [1.9, 0.0]
refractive_index_pump = [1.9, 0.1]
"""


def _eta(device) -> float:
    return heat_fraction(device, region_materials(device))


@pytest.mark.parametrize(
    "config", ["paper_inorganic_mgf2", "paper_organic_mgf2", "al_mgf2_cladding"]
)
def test_default_is_the_calibrated_value(config: str) -> None:
    device = load_device(CONFIGS / f"{config}.toml")
    assert device.pump.heat_fraction is None
    assert _eta(device) == region_materials(device)["film"].heat_fraction_calibrated
    assert heat_fraction_origin(device) == "calibrated"


def test_absorption_model_is_the_closed_form() -> None:
    device = load_device(PAPER, ["pump.heat_fraction_model=absorption"])
    mats = region_materials(device)
    film = mats["film"]
    alpha_d = -math.log1p(-absorbed_fraction(device, mats))
    assert alpha_d == pytest.approx(film.absorption_coefficient * 235.86e-9, rel=1e-4)
    expected = -math.expm1(-alpha_d) * (1.0 - film.plqy * 442.0 / 643.0)
    assert _eta(device) == pytest.approx(expected, rel=1e-12)
    assert heat_fraction_origin(device) == "computed from absorption and PLQY"


def test_given_value_wins() -> None:
    device = load_device(PAPER, ["pump.heat_fraction=0.2", "pump.heat_fraction_model=absorption"])
    assert _eta(device) == 0.2 and heat_fraction_origin(device) == "given"


@pytest.mark.parametrize(
    ("model", "key"), [("calibrated", "heat_fraction_calibrated"), ("absorption", "plqy")]
)
def test_missing_data_names_the_key(tmp_path: Path, model: str, key: str) -> None:
    config = tmp_path / "new_film.toml"
    config.write_text(NEW_FILM + f'[pump]\nheat_fraction_model = "{model}"\n')
    with pytest.raises(ConfigError, match=rf"materials\.myqd\.{key}.*missing"):
        validate_materials(load_device(config))
    given = load_device(config, ["pump.heat_fraction=0.3"])
    validate_materials(given)
    assert _eta(given) == 0.3


@pytest.mark.serial
def test_missing_data_cli_one_line_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "new_film.toml"
    config.write_text(NEW_FILM)
    cli = Path(sys.executable).parent / "cqdlaser"
    done = subprocess.run(
        [str(cli), "heat", str(config), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "materials.myqd.heat_fraction_calibrated" in lines[0]
    assert not (tmp_path / "o").exists()


def test_design_studies_use_the_device_default() -> None:
    eta, origin = study_heat_fraction()
    assert (eta, origin) == (_eta(load_device(PAPER)), "calibrated")
    assert study_heat_fraction(0.05) == (0.05, "given")


def test_csv_metadata_lines(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "t.csv",
        {"time_s": [0.0, 1.0], "film_max_temperature_k": [295.0, 300.0]},
        comm=MPI.COMM_SELF,
        metadata={"heat_fraction": 0.09987, "heat_fraction_origin": "calibrated"},
    )
    text = path.read_text().splitlines()
    assert text[:2] == ["# heat_fraction: 0.09987", "# heat_fraction_origin: calibrated"]
    rows = list(csv.DictReader(line for line in text if not line.startswith("#")))
    assert [float(r["film_max_temperature_k"]) for r in rows] == [295.0, 300.0]
