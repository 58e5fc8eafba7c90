"""The device description: validation messages, overrides and TOML round trips."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cqdlaser
from cqdlaser.geometry.config import (
    apply_overrides,
    device_from_dict,
    dump_device,
    load_device,
    parse_override,
    read_config,
)
from cqdlaser.geometry.device import Device, MaterialOverride
from cqdlaser.geometry.errors import ConfigError
from cqdlaser.geometry.layers import gain_thickness, layer_stack
from cqdlaser.physics.materials import get_material, known_materials, validate_materials

CONFIGS = sorted((Path(__file__).parent.parent / "studies" / "configs").glob("*.toml"))
PAPER = Path(__file__).parent.parent / "studies" / "configs" / "paper_inorganic_mgf2.toml"

# (override, key named in the message, text the message must contain)
INVALID = [
    ("film.thickness_nm=-3", "film.thickness_nm", "must be in [5, 5000]"),
    ("film.thickness_nm=0", "film.thickness_nm", "must be in [5, 5000]"),
    ("film.thickness_nm='thin'", "film.thickness_nm", "must be a number"),
    ("film.thicknes_nm=100", "film.thicknes_nm", "did you mean 'thickness_nm'"),
    ("flim.thickness_nm=100", "flim", "did you mean 'film'"),
    (
        "grating.pillar_diameter_nm=500",
        "grating.pillar_diameter_nm",
        "smaller than grating.period_nm",
    ),
    ("grating.lattice='hexagonal'", "grating.lattice", "must be one of 'square'"),
    ("grating.period_nm=50", "grating.period_nm", "must be in [100, 5000]"),
    ("pump.intensity_kw_cm2=0", "pump.intensity_kw_cm2", "must be in (0, 100000]"),
    ("pump.shape='square'", "pump.shape", "'rectangle', 'ellipse', 'gaussian'"),
    ("pump.spot_um=[30]", "pump.spot_um", "two numbers"),
    ("pump.spot_um=[30, -1]", "pump.spot_um", "must be in [0.1, 10000]"),
    ("pump.heat_fraction=1.5", "pump.heat_fraction", "must be in (0, 1]"),
    ("pump.period_us=1", "pump.period_us", "must exceed the pulse length"),
    ("optics.polarisation='TEM'", "optics.polarisation", "'TE', 'TM'"),
    ("heat.mesh='cube'", "heat.mesh", "'axisymmetric', 'device', 'stack'"),
    ("mesh.film_elements=2.5", "mesh.film_elements", "must be an integer"),
    ("mesh.film_elements=200", "mesh.film_elements", "must be in [1, 100]"),
    (
        "mesh.film_elements=10;film.thickness_nm=8",
        "film.thickness_nm",
        "to hold mesh.film_elements = 10",
    ),
    ("cap=3", "cap", "must be a table of keys"),
    ("mesh.lateral_extent_um=10", "mesh.lateral_extent_um", "must exceed the spot half-width 25"),
    ("substrate.c_axis='w'", "substrate.c_axis", "'x', 'y', 'z'"),
    ("substrate.material='mgf3'", "substrate.material", "did you mean 'mgf2'"),
    ("film.material='cqd_inorganik'", "film.material", "did you mean 'cqd_inorganic'"),
    ("materials.mgf2.density_kg_m3=-1", "materials.mgf2.density_kg_m3", "must be in [0.01"),
    (
        "materials.mgf2.thermal_conductivity_w_mk=[1, 2]",
        "materials.mgf2.thermal_conductivity_w_mk",
        "[k_xx, k_yy, k_zz]",
    ),
    ("materials.unobtainium.density_kg_m3=1000", "materials.unobtainium", "a new material needs"),
    ("materials.mgf2.colour='blue'", "materials.mgf2.colour", "unknown key"),
    ("film.material=3", "film.material", "must be a material name"),
    ("film.thickness_nm=[]", "film.thickness_nm", "must be a number in [5, 5000]"),
    ("film.thickness_nm=true", "film.thickness_nm", "must be a number"),
    ("grating.material={}", "grating.material", "must be a material name"),
    ("mesh.lateral_extent_um=[1]", "mesh.lateral_extent_um", "must be a number"),
    ("substrate.thickness_um=[1,2]", "substrate.thickness_um", "must be a number"),
    ('heat.nonlinear="false"', "heat.nonlinear", "must be true or false"),
    ("pump.spot_um=30", "pump.spot_um", "must be two numbers"),
    ("pump.spot_um=[30, true]", "pump.spot_um", "must be two numbers"),
    ("film.thickness_nm=nan", "film.thickness_nm", "must be in [5, 5000]"),
    ("film.thickness_nm=inf", "film.thickness_nm", "must be in [5, 5000]"),
    ("film={thickness_nm=[60]}", "film.thickness_nm", "must be a number"),
    ("cap=true", "cap", "or false to remove it"),
    ("materials.mgf2.refractive_index=0", "materials.mgf2.refractive_index", "in [1, 100]"),
    ("materials.mgf2.refractive_index=0.9", "materials.mgf2.refractive_index", "in [1, 100]"),
    (
        "materials.mgf2.refractive_index=[0.9, 0]",
        "materials.mgf2.refractive_index",
        "n >= 1 where kappa = 0",
    ),
    (
        "materials.mgf2.refractive_index_pump=[0, 2]",
        "materials.mgf2.refractive_index_pump",
        "n must be in (0, 100]",
    ),
    ("materials.si.refractive_index=[3.8, -0.1]", "materials.si.refractive_index", "kappa must"),
    ("materials.si.refractive_index=[3.8, 0, 1]", "materials.si.refractive_index", "[n, kappa]"),
    ("materials.si.thermal_conductivity_w_mk=0", "materials.si.thermal_conductivity_w_mk", "(0"),
    ("materials.si.specific_heat_j_kgk=0", "materials.si.specific_heat_j_kgk", "must be in [1,"),
    ("materials.si=1", "materials.si", "must be a table of keys"),
]


@pytest.mark.parametrize(("override", "key", "text"), INVALID)
def test_invalid_config_names_key_value_and_range(override: str, key: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_materials(load_device(PAPER, override.split(";")))
    message = str(info.value)
    assert info.value.key == key
    assert message.startswith(f"{key} = ")
    assert text in message
    assert "\n" not in message


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_example_configs_load_and_round_trip(path: Path) -> None:
    device = load_device(path)
    validate_materials(device)
    again = device_from_dict(__import__("tomllib").loads(dump_device(device)))
    assert again == device


def test_overrides_parse_toml_values_and_strings() -> None:
    assert parse_override("film.thickness_nm=60") == (["film", "thickness_nm"], 60)
    assert parse_override("substrate.material=si") == (["substrate", "material"], "si")
    assert parse_override("pump.spot_um=[10, 20]") == (["pump", "spot_um"], [10, 20])
    device = load_device(PAPER, ["film.thickness_nm=60", "substrate.material=si"])
    assert device.film.thickness_nm == 60 and device.substrate.material == "si"
    assert device.film.thickness == pytest.approx(60e-9)
    data = apply_overrides(read_config(PAPER), ["grating=false"])
    assert device_from_dict(data).grating is None


def test_layer_stack_heights_and_gain_thickness() -> None:
    device = load_device(PAPER)
    layers = layer_stack(device)
    assert [la.name for la in layers] == ["substrate", "grating", "film", "cap"]
    for below, above in itertools.pairwise(layers):
        assert below.z_top == pytest.approx(above.z_bottom)
    assert layers[0].z_top == 0.0 and layers[0].thickness == pytest.approx(500e-6)
    f = device.grating.fill_fraction
    assert f == pytest.approx(0.1087, abs=1e-4)  # pi 80^2 / 430^2 (physics.md 1.1)
    assert gain_thickness(device) == pytest.approx(120e-9 + 130e-9 * (1 - f))


@pytest.mark.serial
def test_cli_wrong_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "cqdlaser",
        "mesh",
        str(PAPER),
        "--kind",
        "stack",
        "--out",
        str(tmp_path),
        "--set",
        "grating.pillar_diameter_nm=600",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "cqdlaser: error: grating.pillar_diameter_nm = 600: must be smaller than "
        "grating.period_nm = 430"
    ]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_absorbing_index_may_be_below_one_and_python_values_are_made_plain() -> None:
    device = load_device(PAPER, ["materials.al.refractive_index=[0.5, 3]"])
    assert device.materials["al"].refractive_index == (0.5, 3)
    data = {
        "film": {"thickness_nm": np.float64(100)},
        "mesh": {"film_elements": np.int64(4)},
        "pump": {"spot_um": np.array([20.0, 30.0]), "pulse_ns": None},
    }
    device = cqdlaser.load_device(data)
    assert type(device.film.thickness_nm) is float and type(device.mesh.film_elements) is int
    assert device.pump.spot_um == (20.0, 30.0) and device.pump.pulse_ns is None
    with pytest.raises(ConfigError, match=r"^film.thickness_nm = None: must be a number"):
        cqdlaser.load_device({"film": {"thickness_nm": None}})
    with pytest.raises(ConfigError, match=r"^film = 'thin': must be a \[film\] table"):
        Device(film="thin")  # type: ignore[arg-type]


def test_a_cw_device_stays_cw_through_load_device() -> None:
    device = load_device(PAPER)
    cw = dataclasses.replace(device, pump=dataclasses.replace(device.pump, pulse_ns=None))
    assert cqdlaser.load_device(cw) == cw
    assert cqdlaser.load_device(cw, ["pump.intensity_kw_cm2=10"]).pump.pulse_ns is None


def test_a_message_stays_one_line_and_short() -> None:
    for data in ({"film": {"thick\nness_nm": 1}}, {"fi\nlm": {}}, {"film": {"material": "a\nb"}}):
        with pytest.raises(ConfigError) as info:
            cqdlaser.load_device(data)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        cqdlaser.load_device({"film": {"thickness_nm": 10**400}})
    assert len(str(info.value)) < 150


@pytest.mark.parametrize("name", known_materials())
def test_data_file_materials_are_within_the_override_bounds(name: str) -> None:
    """What a user may not write, the data file does not hold either."""
    material = get_material(name)
    kx, ky, kz = material.thermal_conductivity
    n, n_pump = material.refractive_index, material.refractive_index_pump
    MaterialOverride(
        thermal_conductivity_w_mk=(kx, ky, kz),
        density_kg_m3=material.density,
        specific_heat_j_kgk=material.specific_heat,
        refractive_index=(n.real, n.imag),
        refractive_index_pump=(n_pump.real, n_pump.imag),
        dn_dt_per_k=material.dn_dt,
        plqy=material.plqy,
    )


def test_a_file_that_is_not_utf8_toml_or_not_a_path_is_one_error(tmp_path: Path) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'[film]\nmaterial = "\xff"\n')
    with pytest.raises(ConfigError, match="cannot be read"):
        cqdlaser.load_device(binary)
    with pytest.raises(ConfigError, match="must be the path of a TOML file"):
        cqdlaser.load_device(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no such file"):
        cqdlaser.load_device(tmp_path)
