"""The periodic optical meshes: the 2D DFB cross-section and the 3D unit cell (optical and heat).

Coarse meshes (``mesh.scale = 4``, 0.5 um padding). What is exact and checked to rounding: every
planar layer's area/volume, the pillar rectangle of the cross-section, pillars + fill = the grating
layer, the boundary measures, the element counts across layers, the node and facet matching of the
periodic faces. The cylindrical pillar is checked against bounds that follow from its mesh (see
:func:`test_cell_pillar_volume`).
"""

from __future__ import annotations

import math

from mpi4py import MPI

import numpy as np
import pytest
from scipy.spatial import cKDTree

import dolfinx
import ufl
from dolfinx import fem

from cqdlaser.geometry.cell import build_cell
from cqdlaser.geometry.cross_section import (
    BULK_LAYERS,
    CORE_LAYERS,
    build_cross_section,
    circle_segments,
    core_extent,
    growth_rate,
    layer_elements,
    layer_progression,
    optical_layers,
)
from cqdlaser.geometry.device import (
    Cap,
    Cladding,
    Device,
    Film,
    Grating,
    MeshResolution,
    Substrate,
)
from cqdlaser.geometry.errors import ConfigError
from cqdlaser.geometry.layers import layer_stack
from cqdlaser.geometry.meshdata import MeshData

RTOL = 1e-10  # planar faces are meshed exactly: only floating-point summation remains
COARSE = MeshResolution(scale=4.0, optical_padding_um=0.5)


def paper_device(**changes: object) -> Device:
    """The paper's DFB laser (430 nm period, 160 x 130 nm SiO2 pillars, 120 nm film, 1 um SOG cap,
    MgF2), coarse."""
    fields: dict[str, object] = {
        "film": Film("cqd_inorganic", 120.0),
        "grating": Grating("square", 430.0, 160.0, 130.0, "sio2"),
        "cap": Cap("sog", 1000.0),
        "substrate": Substrate("mgf2", 500.0),
        "mesh": COARSE,
    }
    fields.update(changes)
    return Device(**fields)  # type: ignore[arg-type]


def cladding_device() -> Device:
    """A cladding and no cap: the other optional layers."""
    return paper_device(
        cap=None, cladding=Cladding("sio2", 300.0), substrate=Substrate("si", 500.0)
    )


BUILDS = {
    "cross_section": (paper_device, lambda d, c: build_cross_section(d, c)),
    "cross_section_cladding": (cladding_device, lambda d, c: build_cross_section(d, c)),
    "cell": (paper_device, lambda d, c: build_cell(d, c)),
    "cell_heat": (paper_device, lambda d, c: build_cell(d, c, optical=False)),
}


@pytest.fixture(scope="module")
def meshes() -> dict[str, tuple[Device, MeshData]]:
    """Every mesh of the module, built once on COMM_WORLD."""
    out = {}
    for name, (make, build) in BUILDS.items():
        device = make()
        out[name] = (device, build(device, MPI.COMM_WORLD))
    return out


def expected_layers(device: Device, name: str) -> dict[str, tuple[float, float]]:
    """Region name -> (z_bottom, z_top) of the planar layers of mesh ``name`` (m)."""
    layers = (
        [la for la in layer_stack(device) if la.name == "grating"]
        if name == "cell_heat"
        else optical_layers(device)
    )
    return {la.name: (la.z_bottom, la.z_top) for la in layers}


def measure(data: MeshData, form: ufl.Form) -> float:
    """Global value of a scalar form."""
    return data.comm.allreduce(fem.assemble_scalar(fem.form(form)), op=MPI.SUM)


def facet_points(data: MeshData, name: str) -> np.ndarray:
    """Vertex coordinates (n_facets, vertices per facet, gdim) of a boundary, from all ranks."""
    msh = data.mesh
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    facets = data.facet_tags.find(data.boundary(name))
    dofs = dolfinx.mesh.entities_to_geometry(msh, tdim - 1, facets)
    local = msh.geometry.x[dofs][:, :, : msh.geometry.dim]
    return np.concatenate(data.comm.allgather(local))


def all_vertices(data: MeshData) -> np.ndarray:
    """Coordinates of every mesh node (gdim columns), from all ranks (with duplicates)."""
    x = data.mesh.geometry.x[:, : data.mesh.geometry.dim]
    return np.concatenate(data.comm.allgather(x))


@pytest.mark.parametrize("name", list(BUILDS))
def test_names_and_tags(meshes, name):
    device, data = meshes[name]
    regions = {"pillars", "grating_fill"} | set(expected_layers(device, name)) - {"grating"}
    assert set(data.regions) == regions
    sides = {"top", "bottom", "periodic_x_min", "periodic_x_max"}
    if data.kind == "cell":
        sides |= {"periodic_y_min", "periodic_y_max"}
    assert set(data.boundaries) == sides
    assert data.untagged_cells() == 0
    assert data.kind == ("cell" if name.startswith("cell") else "cross-section")
    assert data.mesh.geometry.dim == (3 if data.kind == "cell" else 2)


@pytest.mark.parametrize("name", list(BUILDS))
def test_planar_layer_measures(meshes, name):
    """Layers: period^(gdim-1) x thickness; pillars + fill: the grating layer, to rounding."""
    device, data = meshes[name]
    g = device.grating
    cross = g.period ** (data.mesh.geometry.dim - 1)
    measures = data.region_measures()
    for region, (z0, z1) in expected_layers(device, name).items():
        expected = cross * (z1 - z0)
        if region == "grating":
            got = measures["pillars"] + measures["grating_fill"]
        else:
            got = measures[region]
        assert got == pytest.approx(expected, rel=RTOL), region
    if data.kind == "cross-section":
        d, h = 2 * g.pillar_radius, g.pillar_height
        assert measures["pillars"] == pytest.approx(d * h, rel=RTOL)
        assert measures["grating_fill"] == pytest.approx((g.period - d) * h, rel=RTOL)


@pytest.mark.parametrize("name", list(BUILDS))
def test_boundary_measures_and_extent(meshes, name):
    """Top and bottom: one period (squared); periodic faces: the height (times a period)."""
    device, data = meshes[name]
    levels = expected_layers(device, name)
    z_bot, z_top = min(z for z, _ in levels.values()), max(z for _, z in levels.values())
    one = fem.Constant(data.mesh, dolfinx.default_scalar_type(1.0))
    period = device.grating.period
    width = period ** (data.mesh.geometry.dim - 2)
    for side in data.boundaries:
        area = width * (z_top - z_bot if side.startswith("periodic") else period)
        assert measure(data, one * data.ds(side)) == pytest.approx(area, rel=RTOL), side
    z = all_vertices(data)[:, -1]
    assert z.min() == pytest.approx(z_bot, abs=1e-15)
    assert z.max() == pytest.approx(z_top, abs=1e-15)
    top_layer = "grating" if name == "cell_heat" else "cover"
    assert data.z_levels[f"{top_layer}_top"] == pytest.approx(z_top)


@pytest.mark.parametrize("name", list(BUILDS))
def test_periodic_faces_match(meshes, name):
    """Every vertex and every facet of a max face is one of the min face, translated."""
    device, data = meshes[name]
    assert len(data.periodic) == (2 if data.kind == "cell" else 1)
    tol = 1e-9 * device.grating.period
    for pair in data.periodic:
        shift = np.asarray(pair.translation)
        assert np.linalg.norm(shift) == pytest.approx(device.grating.period)
        source, image = facet_points(data, pair.source), facet_points(data, pair.image)
        src_vertices = np.unique(source.reshape(-1, shift.size), axis=0)
        img_vertices = np.unique(image.reshape(-1, shift.size), axis=0)
        tree = cKDTree(src_vertices)
        dist, _ = tree.query(img_vertices - shift)
        assert dist.max() < tol
        assert len(img_vertices) == len(src_vertices)

        def facet_set(points: np.ndarray) -> set[frozenset[int]]:
            dist, idx = tree.query(points.reshape(-1, shift.size))
            assert dist.max() < tol
            return {frozenset(f) for f in idx.reshape(points.shape[:2])}

        facets = facet_set(source)
        assert len(facets) > 0
        assert facet_set(image - shift) == facets


@pytest.mark.parametrize("name", list(BUILDS))
def test_elements_across_layers(meshes, name):
    """Along the periodic corner edge each layer has exactly its element count, at least
    ``mesh.film_elements`` in the thin layers; outside the guiding layers the element sizes grow
    geometrically away from them by :func:`layer_progression`, at most by 1 + ``growth_rate``."""
    device, data = meshes[name]
    half = 0.5 * device.grating.period
    x = all_vertices(data)
    edge = np.all(np.isclose(x[:, :-1], -half, rtol=0, atol=1e-9 * half), axis=1)
    z = np.unique(np.round(x[edge, -1] / 1e-15)) * 1e-15
    layers = (
        optical_layers(device)
        if name != "cell_heat"
        else [la for la in layer_stack(device) if la.name == "grating"]
    )
    core = 0.5 * sum(core_extent(device))
    for layer in layers:
        tol = 1e-9 * layer.thickness
        inside = z[(z >= layer.z_bottom - tol) & (z <= layer.z_top + tol)]
        n = layer_elements(device, layer)
        assert inside.size - 1 == n, layer.name
        assert n >= (1 if layer.name in BULK_LAYERS else device.mesh.film_elements)
        sizes = np.diff(inside)
        if layer.z_bottom < core:
            sizes = sizes[::-1]  # ordered away from the guiding layers
        ratio = layer_progression(device, layer)
        assert ratio <= 1.0 + growth_rate(device) + 1e-12
        if layer.name in CORE_LAYERS:
            assert ratio == 1.0
        assert np.allclose(sizes[1:] / sizes[:-1], ratio, rtol=1e-6), layer.name


@pytest.mark.parametrize("name", ["cell", "cell_heat"])
def test_cell_pillar_volume(meshes, name):
    """The pillar: its circles are regular N-gons (N = circle_segments), and its volume V obeys
    pi (r cos(a/2))^2 h <= V <= pi r^2 h, a the largest angle spanned by two vertices on the
    cylinder in one pillar cell: every lateral facet lies in the cylinder (vertices on it) and at
    least r cos(a/2) from the axis. Besides, V is within twice the defect of the inscribed N-gon,
    1 - N sin(2 pi/N) / (2 pi), of pi r^2 h (the lateral surface is as fine as the polygons)."""
    device, data = meshes[name]
    g = device.grating
    r, h = g.pillar_radius, g.pillar_height
    n = circle_segments(device)

    x = all_vertices(data)
    rho = np.hypot(x[:, 0], x[:, 1])
    on_cylinder = np.isclose(rho, r, rtol=1e-9, atol=0)
    for z in (0.0, h):
        ring = x[on_cylinder & np.isclose(x[:, 2], z, rtol=0, atol=1e-15)]
        ring = np.unique(np.round(ring / 1e-18), axis=0) * 1e-18
        theta = np.sort(np.arctan2(ring[:, 1], ring[:, 0]))
        gaps = np.diff(np.append(theta, theta[0] + 2 * math.pi))
        assert len(ring) == n
        assert np.allclose(gaps, 2 * math.pi / n, rtol=1e-9)

    cells = data.cell_tags.find(data.region("pillars"))
    pts = data.mesh.geometry.x[dolfinx.mesh.entities_to_geometry(data.mesh, 3, cells)]
    angle = np.arctan2(pts[:, :, 1], pts[:, :, 0])
    on = np.isclose(np.hypot(pts[:, :, 0], pts[:, :, 1]), r, rtol=1e-9, atol=0)
    span = 0.0
    for i in range(4):
        for j in range(i + 1, 4):
            both = on[:, i] & on[:, j]
            d = np.abs(angle[both, i] - angle[both, j])
            d = np.minimum(d, 2 * math.pi - d)
            span = max(span, float(d.max(initial=0.0)))
    span = data.comm.allreduce(span, op=MPI.MAX)
    assert 2 * math.pi / n - 1e-9 <= span < math.pi / 2

    volume = data.region_measures()["pillars"]
    cylinder = math.pi * r**2 * h
    assert math.pi * (r * math.cos(span / 2)) ** 2 * h <= volume <= cylinder
    defect = 1 - n * math.sin(2 * math.pi / n) / (2 * math.pi)
    assert abs(volume / cylinder - 1) <= 2 * defect


@pytest.mark.parametrize("name", list(BUILDS))
def test_same_mesh_in_parallel_as_serial(meshes, name):
    """A serial build (on COMM_SELF of each rank) has the distributed mesh's counts and measures."""
    _, data = meshes[name]
    make, build = BUILDS[name]
    serial = build(make(), MPI.COMM_SELF)
    assert serial.counts() == data.counts()
    ref = serial.region_measures()
    got = data.region_measures()
    assert set(got) == set(ref)
    for region, value in ref.items():
        assert got[region] == pytest.approx(value, rel=1e-12), region


@pytest.mark.serial
def test_reproducible():
    """Two builds give the same nodes in the same order."""
    device = cladding_device()
    a = build_cross_section(device, MPI.COMM_SELF)
    b = build_cross_section(device, MPI.COMM_SELF)
    assert np.array_equal(a.mesh.geometry.x, b.mesh.geometry.x)


@pytest.mark.parametrize("build", [build_cross_section, build_cell])
def test_missing_grating_raises(build):
    with pytest.raises(ConfigError, match=r"needs a \[grating\] section") as err:
        build(paper_device(grating=None))
    assert err.value.key == "grating"
