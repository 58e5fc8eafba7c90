"""Material data: required names, sources for every value, orientation and homogenisation."""

from __future__ import annotations

import math

import pytest

from cqdlaser.geometry.config import load_device
from cqdlaser.physics.materials import (
    CONTRACT_MATERIALS,
    get_material,
    homogenised_grating,
    known_materials,
    region_materials,
)


def test_required_materials_present_with_sources() -> None:
    for name in CONTRACT_MATERIALS:
        assert name in known_materials()
        m = get_material(name)
        assert m.sources, name
        assert all(k > 0 for k in m.thermal_conductivity)
        assert m.density > 0 and m.specific_heat > 0


def test_paper_values_for_the_films() -> None:
    inorganic, organic = get_material("cqd_inorganic"), get_material("cqd_organic")
    assert inorganic.thermal_conductivity == (0.24, 0.24, 0.24)
    assert organic.thermal_conductivity == (0.22, 0.22, 0.22)
    assert inorganic.refractive_index.real == 1.97 and organic.refractive_index.real == 1.74
    # rho c_p reproduces the paper's ~70 ns for heat to cross 120 nm: t = d^2 / alpha
    t_cross = (120e-9) ** 2 / inorganic.diffusivity()
    assert t_cross == pytest.approx(70e-9, rel=0.02)
    # equal optical density of the 120 nm inorganic and 300 nm organic films (as the paper)
    od_ratio = (inorganic.absorption_coefficient * 120e-9) / (
        organic.absorption_coefficient * 300e-9
    )
    assert od_ratio == pytest.approx(1.0, rel=0.02)


def test_uniaxial_orientation_follows_c_axis() -> None:
    assert get_material("mgf2", c_axis="z").thermal_conductivity == (30.0, 30.0, 21.0)
    assert get_material("mgf2", c_axis="x").thermal_conductivity == (21.0, 30.0, 30.0)
    device = load_device(None, ["substrate.material=sapphire", "substrate.c_axis=y"])
    assert region_materials(device)["substrate"].thermal_conductivity == (33.0, 35.1, 33.0)


def test_overrides_change_a_property_and_define_new_materials() -> None:
    device = load_device(
        None,
        [
            "materials.mgf2.thermal_conductivity_w_mk=25",
            "materials.mygel.thermal_conductivity_w_mk=0.3",
            "materials.mygel.density_kg_m3=1000",
            "materials.mygel.specific_heat_j_kgk=1500",
            "materials.mygel.refractive_index=1.45",
            "cap.material=mygel",
        ],
    )
    mats = region_materials(device)
    assert mats["substrate"].thermal_conductivity == (25.0, 25.0, 25.0)
    assert mats["cap"].volumetric_heat_capacity == pytest.approx(1.5e6)
    assert "override" in mats["substrate"].sources["thermal_conductivity_w_mk"]


def test_homogenised_grating_bounds_and_physics_md_index() -> None:
    pillar, fill = get_material("sio2"), get_material("cqd_inorganic")
    f = math.pi * 80.0**2 / 430.0**2
    g = homogenised_grating(pillar, fill, f)
    kx, ky, kz = g.thermal_conductivity
    # Wiener bounds: series <= in-plane <= parallel = k_zz
    series = 1.0 / (f / pillar.thermal_conductivity[0] + (1 - f) / fill.thermal_conductivity[0])
    assert series <= kx <= kz and kx == ky
    assert g.refractive_index.real == pytest.approx(1.921, abs=1e-3)  # physics.md 1.1
    assert g.volumetric_heat_capacity == pytest.approx(
        f * pillar.volumetric_heat_capacity + (1 - f) * fill.volumetric_heat_capacity
    )
