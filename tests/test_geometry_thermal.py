"""Thermal meshes: the r-z section and the 3D quarter device (homogenised and resolved pillars).

Measures are checked against the analytic areas and volumes of the layers; boundary measures
against the faces of the domain; the total exterior measure against the surface of the box, which
fails if the swept tetrahedra do not conform (an interior face would count as exterior).
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest

import ufl
from dolfinx import fem, mesh

from cqdlaser.geometry.axisymmetric import build_axisymmetric, graded_nodes
from cqdlaser.geometry.config import device_from_dict
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.device_mesh import (
    build_device,
    edge_segments,
    patch_pillars,
    pillar_segments,
)
from cqdlaser.geometry.errors import ConfigError
from cqdlaser.geometry.layers import layer_stack
from cqdlaser.geometry.meshdata import MeshData

PAPER = {
    "film": {"material": "cqd_inorganic", "thickness_nm": 120},
    "grating": {"period_nm": 430, "pillar_diameter_nm": 160, "pillar_height_nm": 130},
    "cap": {"material": "sog", "thickness_nm": 1000},
    "substrate": {"material": "mgf2", "thickness_um": 500},
    "pump": {"spot_um": [30, 50]},
}
# A small device: 20 um substrate, 12 um quarter, 4 x 6 um spot, coarse.
SMALL = PAPER | {
    "substrate": {"material": "mgf2", "thickness_um": 20},
    "pump": {"spot_um": [4, 6]},
    "mesh": {"scale": 2.0, "lateral_extent_um": 12, "resolved_pillars_um": 0.8},
}
# Resolved pillars on a cladding, without a cap: the fine sweep reaches the top.
RESOLVED_CLADDED = {k: v for k, v in SMALL.items() if k != "cap"} | {
    "cladding": {"material": "sio2", "thickness_nm": 300},
    "mesh": SMALL["mesh"] | {"resolved_pillars_um": 1.2},
}
# No grating and no cap, with a cladding: other optional layers and the interface under the film.
CLADDED = {
    "film": {"thickness_nm": 60},
    "cladding": {"material": "sio2", "thickness_nm": 300},
    "substrate": {"material": "si", "thickness_um": 100},
    "pump": {"spot_um": [30, 50]},
    "mesh": {"lateral_extent_um": 100},
}


def _measure(data: MeshData, form: ufl.Form) -> float:
    return float(data.comm.allreduce(fem.assemble_scalar(fem.form(form)), op=MPI.SUM))


def _one(data: MeshData) -> fem.Constant:
    return fem.Constant(data.mesh, 1.0)


def _interface(data: MeshData) -> float:
    """Measure of the interior ``interface`` facets, summed from their vertices over owned facets
    (a ``dS`` integral needs shared-facet ghosts, which these meshes do not have)."""
    msh = data.mesh
    fdim = msh.topology.dim - 1
    n_owned = msh.topology.index_map(fdim).size_local
    facets = data.facet_tags.find(data.boundary("interface"))
    facets = facets[facets < n_owned]
    x = msh.geometry.x[mesh.entities_to_geometry(msh, fdim, facets)]
    if fdim == 1:
        local = np.linalg.norm(x[:, 1] - x[:, 0], axis=1).sum()
    else:
        # Triangles (0, 1, 2); quadrilaterals in DOLFINx order as triangles (0, 1, 3), (0, 3, 2).
        tris = [(0, 1, 2)] if x.shape[1] == 3 else [(0, 1, 3), (0, 3, 2)]
        local = sum(
            0.5 * np.linalg.norm(np.cross(x[:, j] - x[:, i], x[:, k] - x[:, i]), axis=1).sum()
            for i, j, k in tris
        )
    return float(data.comm.allreduce(local, op=MPI.SUM))


def _levels(data: MeshData, axis: int, lo: float, hi: float, tol: float) -> np.ndarray:
    """Distinct vertex coordinates along ``axis`` in [lo, hi], over all ranks."""
    x = data.mesh.geometry.x[:, axis]
    x = x[(x > lo - tol) & (x < hi + tol)]
    x = np.concatenate(data.comm.allgather(x))
    return np.unique(np.round(x / tol)) * tol


def _height(device: Device) -> float:
    layers = layer_stack(device)
    return layers[-1].z_top - layers[0].z_bottom


@pytest.fixture(scope="module", params=["paper", "cladded"])
def axisym(request: pytest.FixtureRequest) -> tuple[Device, MeshData]:
    device = device_from_dict(PAPER if request.param == "paper" else CLADDED)
    return device, build_axisymmetric(device, MPI.COMM_WORLD)


@pytest.fixture(scope="module")
def homogenised() -> tuple[Device, MeshData]:
    device = device_from_dict(SMALL)
    return device, build_device(device, MPI.COMM_WORLD)


@pytest.fixture(scope="module")
def resolved() -> tuple[Device, MeshData]:
    device = device_from_dict(SMALL)
    return device, build_device(device, MPI.COMM_WORLD, resolved=True)


@pytest.fixture(scope="module")
def resolved_cladded() -> tuple[Device, MeshData]:
    device = device_from_dict(RESOLVED_CLADDED)
    return device, build_device(device, MPI.COMM_WORLD, resolved=True)


def test_graded_nodes() -> None:
    # Growth from 40 nm at the top of 500 um with ratio 1.3: ratios <= 1.3, the end size kept.
    s = graded_nodes(500e-6, h_end=40e-9, ratio=1.3) * 500e-6
    h = np.diff(np.concatenate([[0.0], s]))
    assert h[-1] == pytest.approx(40e-9, rel=0.15)
    assert np.all(h[:-1] / h[1:] <= 1.3 * 1.01)
    assert np.all(h[:-1] > h[1:])
    u = graded_nodes(120e-9, h_start=40e-9, h_end=40e-9, n_min=5)
    assert np.allclose(u, np.arange(1, 6) / 5)


def test_axisymmetric_regions(axisym: tuple[Device, MeshData]) -> None:
    device, data = axisym
    assert data.kind == "axisymmetric" and data.mesh.geometry.dim == 2
    assert data.mesh.topology.cell_type == mesh.CellType.quadrilateral
    layers = layer_stack(device)
    assert set(data.regions) == {la.name for la in layers}
    measures = data.region_measures()
    for la in layers:
        assert measures[la.name] == pytest.approx(device.lateral_extent * la.thickness, rel=1e-10)
    assert data.untagged_cells() == 0


def test_axisymmetric_boundaries(axisym: tuple[Device, MeshData]) -> None:
    device, data = axisym
    big_r, height = device.lateral_extent, _height(device)
    expected = {"axis": height, "side": height, "top": big_r, "bottom": big_r}
    assert set(data.boundaries) == {*expected, "interface"}
    for name, length in expected.items():
        assert _measure(data, _one(data) * data.ds(name)) == pytest.approx(length, rel=1e-10)
    assert _measure(data, _one(data) * ufl.ds(domain=data.mesh)) == pytest.approx(
        2 * (big_r + height), rel=1e-10
    )
    assert _interface(data) == pytest.approx(big_r, rel=1e-10)
    gain = next(la for la in layer_stack(device) if la.name in ("grating", "film"))
    assert data.z_levels["interface"] == gain.z_bottom


def test_axisymmetric_resolution(axisym: tuple[Device, MeshData]) -> None:
    device, data = axisym
    film = next(la for la in layer_stack(device) if la.name == "film")
    tol = 1e-3 * film.thickness / device.mesh.film_elements
    z = _levels(data, 1, film.z_bottom, film.z_top, tol)
    assert len(z) >= device.mesh.film_elements + 1
    # A node row at the radius of the spot (the edge of the top-hat source).
    rs = device.spot_radius
    assert len(_levels(data, 0, rs, rs, 1e-3 * tol)) == 1
    # Small enough for heat runs of seconds.
    assert data.counts()["cells"] < 20_000


def _check_device(device: Device, data: MeshData) -> None:
    big_l, height = device.lateral_extent, _height(device)
    expected = {
        "top": big_l**2,
        "bottom": big_l**2,
        "side": 2 * big_l * height,
        "symmetry_x": big_l * height,
        "symmetry_y": big_l * height,
    }
    assert set(data.boundaries) == {*expected, "interface"}
    for name, area in expected.items():
        assert _measure(data, _one(data) * data.ds(name)) == pytest.approx(area, rel=1e-10)
    assert _measure(data, _one(data) * ufl.ds(domain=data.mesh)) == pytest.approx(
        2 * big_l**2 + 4 * big_l * height, rel=1e-10
    )
    assert _interface(data) == pytest.approx(big_l**2, rel=1e-10)
    assert data.untagged_cells() == 0
    film = next(la for la in layer_stack(device) if la.name == "film")
    tol = 1e-3 * film.thickness / device.mesh.film_elements
    assert len(_levels(data, 2, film.z_bottom, film.z_top, tol)) >= device.mesh.film_elements + 1


def test_device_homogenised(homogenised: tuple[Device, MeshData]) -> None:
    device, data = homogenised
    assert data.kind == "device"
    assert data.mesh.topology.cell_type == mesh.CellType.hexahedron
    _check_device(device, data)
    layers = layer_stack(device)
    assert set(data.regions) == {la.name for la in layers}
    measures = data.region_measures()
    for la in layers:
        assert measures[la.name] == pytest.approx(
            device.lateral_extent**2 * la.thickness, rel=1e-10
        )
    # Node planes at the spot edges.
    tol = 1e-12
    for axis, half in enumerate(0.5 * s for s in device.pump.spot):
        assert len(_levels(data, axis, half, half, tol)) == 1


def test_device_resolved(resolved: tuple[Device, MeshData]) -> None:
    device, data = resolved
    assert data.mesh.topology.cell_type == mesh.CellType.tetrahedron
    _check_device(device, data)
    assert set(data.regions) == {"substrate", "grating", "grating_fill", "pillars", "film", "cap"}
    grating = device.grating
    assert grating is not None
    nx, ny = patch_pillars(device)
    assert (nx, ny) == (2, 2)
    px, py, h, r = (
        nx * grating.period,
        ny * grating.period,
        grating.pillar_height,
        grating.pillar_radius,
    )
    measures = data.region_measures()
    # Pillars are meshed as inscribed n-gons: their volume is exactly that of the prisms, and below
    # that of the cylinders by the polygon's relative deficit 1 - sin(2 pi/n)/(2 pi/n).
    n = pillar_segments(device)
    polygon = 0.5 * n * r**2 * math.sin(2 * math.pi / n)
    assert measures["pillars"] == pytest.approx(nx * ny * polygon * h, rel=1e-10)
    cylinders = nx * ny * math.pi * r**2 * h
    deficit = 1 - math.sin(2 * math.pi / n) / (2 * math.pi / n)
    assert measures["pillars"] == pytest.approx(cylinders, rel=1.01 * deficit)
    assert measures["pillars"] + measures["grating_fill"] == pytest.approx(px * py * h, rel=1e-10)
    big_l = device.lateral_extent
    assert measures["grating"] == pytest.approx((big_l**2 - px * py) * h, rel=1e-10)
    for la in layer_stack(device):
        if la.name != "grating":
            assert measures[la.name] == pytest.approx(big_l**2 * la.thickness, rel=1e-10)


def _plane_points(data: MeshData, z: float, px: float, py: float, tol: float) -> int:
    """Distinct vertices on the plane at height z within [0, px] x [0, py], over all ranks."""
    x = data.mesh.geometry.x
    x = x[(np.abs(x[:, 2] - z) < tol) & (x[:, 0] < px + tol) & (x[:, 1] < py + tol)]
    x = np.concatenate(data.comm.allgather(x[:, :2]))
    return len(np.unique(np.round(x / tol), axis=0))


def test_device_resolved_coarsens(resolved: tuple[Device, MeshData]) -> None:
    # The fine lateral mesh of the pillars stops short of the bottom and the top: there the patch
    # holds the cell corners only, plus the cell-edge nodes along its outer edges (x = P_x, y = P_y)
    # that match the grid outside, and the centres of the fans that join them in the outer cells.
    device, data = resolved
    assert device.grating is not None
    nx, ny = patch_pillars(device)
    px, py = nx * device.grating.period, ny * device.grating.period
    n_edge = edge_segments(device)
    coarse = (nx + 1) * (ny + 1) + (n_edge - 1) * (nx + ny) + (nx + ny - 1)
    tol = 1e-3 * device.grating.pillar_radius / pillar_segments(device)
    layers = layer_stack(device)
    assert _plane_points(data, layers[0].z_bottom, px, py, tol) == coarse
    assert _plane_points(data, layers[-1].z_top, px, py, tol) == coarse
    # Where the pillars are, every rim node is there.
    rims = nx * ny * pillar_segments(device)
    for name in ("grating", "film"):
        la = next(la for la in layers if la.name == name)
        assert _plane_points(data, la.z_top, px, py, tol) > coarse + rims


def test_device_resolved_cladded(resolved_cladded: tuple[Device, MeshData]) -> None:
    # A cladding under the grating (the lower transition lies in it) and no cap (the fine sweep
    # reaches the top).
    device, data = resolved_cladded
    _check_device(device, data)
    assert set(data.regions) == {
        "substrate",
        "cladding",
        "grating",
        "grating_fill",
        "pillars",
        "film",
    }
    assert device.grating is not None
    nx, ny = patch_pillars(device)
    assert (nx, ny) == (3, 3)
    px, py = nx * device.grating.period, ny * device.grating.period
    measures = data.region_measures()
    big_l, h = device.lateral_extent, device.grating.pillar_height
    assert measures["pillars"] + measures["grating_fill"] == pytest.approx(px * py * h, rel=1e-10)
    assert measures["grating"] == pytest.approx((big_l**2 - px * py) * h, rel=1e-10)
    for la in layer_stack(device):
        if la.name != "grating":
            assert measures[la.name] == pytest.approx(big_l**2 * la.thickness, rel=1e-10)
    tol = 1e-3 * device.grating.pillar_radius / pillar_segments(device)
    top = layer_stack(device)[-1].z_top
    assert _plane_points(data, top, px, py, tol) > nx * ny * pillar_segments(device)


@pytest.mark.parametrize("kind", ["axisymmetric", "device", "device-resolved"])
def test_same_measures_serial_and_parallel(kind: str) -> None:
    device = device_from_dict(SMALL)
    build = {
        "axisymmetric": build_axisymmetric,
        "device": build_device,
        "device-resolved": partial(build_device, resolved=True),
    }[kind]
    distributed = build(device, MPI.COMM_WORLD).region_measures()
    serial = build(device, MPI.COMM_SELF)
    assert distributed.keys() == serial.region_measures().keys()
    for name, value in serial.region_measures().items():
        assert distributed[name] == pytest.approx(value, rel=1e-12)
    # Reproducible: the same mesh, node for node, when built again.
    again = build(device, MPI.COMM_SELF)
    assert np.array_equal(again.mesh.geometry.x, serial.mesh.geometry.x)
    assert np.array_equal(again.mesh.geometry.dofmap, serial.mesh.geometry.dofmap)


def test_msh_file(shared_tmp: Path) -> None:
    device = device_from_dict(SMALL)
    path = shared_tmp / "axisymmetric.msh"
    build_axisymmetric(device, MPI.COMM_WORLD, msh_file=str(path))
    assert path.is_file() and path.stat().st_size > 0


def test_patch_must_fit() -> None:
    device = device_from_dict(
        SMALL | {"mesh": {"lateral_extent_um": 12, "resolved_pillars_um": 20}}
    )
    with pytest.raises(ConfigError, match=r"mesh\.resolved_pillars_um"):
        patch_pillars(device)
    with pytest.raises(ConfigError, match="grating"):
        build_device(device_from_dict(CLADDED), MPI.COMM_WORLD, resolved=True)
