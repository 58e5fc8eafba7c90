"""Thermal runs of a device: the grating conductivity the config asks for reaches the solver."""

from __future__ import annotations

from pathlib import Path

import pytest

from cqdlaser.geometry.config import load_device
from cqdlaser.physics.materials import region_materials
from cqdlaser.studies.thermal import heat_materials

PAPER = Path(__file__).parent.parent / "studies" / "configs" / "paper_inorganic_mgf2.toml"
COARSE = ["mesh.scale=3", "mesh.optical_padding_um=1"]


def test_grating_conductivity_choices() -> None:
    rayleigh = heat_materials(load_device(PAPER, COARSE))["grating"].thermal_conductivity
    assert rayleigh == region_materials(load_device(PAPER, COARSE))["grating"].thermal_conductivity
    cell = heat_materials(load_device(PAPER, [*COARSE, "heat.grating_conductivity=cell"]))
    k_cell = cell["grating"].thermal_conductivity
    # in-plane: the cell problem agrees with Rayleigh's estimate for this small fill fraction;
    # through the layer both are the parallel average of the columns
    assert k_cell[0] == pytest.approx(rayleigh[0], rel=5e-3)
    assert k_cell[2] == pytest.approx(rayleigh[2], rel=5e-3)
    corrected = heat_materials(
        load_device(PAPER, [*COARSE, "heat.grating_conductivity=constriction"])
    )["grating"].thermal_conductivity
    # the constriction at the layer's faces lowers the effective through-plane conductivity;
    # in-plane it is the same cell problem, solved again (equal to round-off under MPI)
    assert corrected[0] == pytest.approx(k_cell[0], rel=1e-9)
    assert corrected[2] < 0.95 * k_cell[2]
