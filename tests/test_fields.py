"""Field files read back with pyvista (VTK): named arrays, global counts, region tags and values
equal to the solver's, written by one rank or several.

Reading happens on rank 0 only; every count and value compared with it is global (allreduce), so
the same assertions hold for the files written under ``mpirun -n 2``.
"""

from __future__ import annotations

import json
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest

from dolfinx import fem

from cqdlaser.geometry.config import load_device
from cqdlaser.geometry.meshdata import MeshData, write_mesh
from cqdlaser.geometry.stack import build_stack
from cqdlaser.studies.band_edges import band_edge_table
from cqdlaser.studies.fields import (
    FieldSeries,
    write_fields,
    write_mesh_vtkhdf,
    write_mode_fields,
)
from cqdlaser.studies.thermal import heat_mesh, run_heat

pyvista = pytest.importorskip("pyvista")

CONFIGS = Path(__file__).resolve().parent.parent / "studies" / "configs"
PAPER = CONFIGS / "paper_inorganic_mgf2.toml"
# A coarse axisymmetric (2D r-z) heat run: a few hundred cells, a few dozen steps.
HEAT = [
    "mesh.scale=4",
    "heat.mesh=axisymmetric",
    "heat.end_time_us=0.2",
    "pump.pulse_ns=100",
    "pump.heat_fraction=0.2",
]
BANDS = ["mesh.scale=4", "mesh.film_elements=1", "mesh.pillar_elements=3"]


def _read(path: Path, step: int | None = None):
    """The grid in a VTKHDF file (at a time step), on rank 0; None elsewhere."""
    if MPI.COMM_WORLD.rank != 0:
        return None
    reader = pyvista.get_reader(str(path))
    if step is not None:
        reader.reader.SetStep(step)
    return reader.read()


def _steps(path: Path) -> list[float] | None:
    """The time values of a VTKHDF file, on rank 0."""
    if MPI.COMM_WORLD.rank != 0:
        return None
    values = []
    reader = pyvista.get_reader(str(path))
    for step in range(reader.reader.GetNumberOfSteps()):
        reader.reader.SetStep(step)
        values.append(float(reader.read().field_data["Time"][0]))
    return values


def _global_cells_per_region(data: MeshData) -> dict[int, int]:
    tdim = data.mesh.topology.dim
    n_owned = data.mesh.topology.index_map(tdim).size_local
    owned = data.cell_tags.values[data.cell_tags.indices < n_owned]
    return {
        tag: data.comm.allreduce(int(np.sum(owned == tag)), op=MPI.SUM)
        for tag in data.regions.values()
    }


def _check_mesh(grid, data: MeshData) -> None:
    """Global point and cell counts, and the region array against the tags (rank 0)."""
    counts = data.counts()
    per_region = _global_cells_per_region(data)
    if grid is None:
        return
    assert grid.n_cells == counts["cells"] and grid.n_points == counts["vertices"]
    assert "region" in grid.cell_data
    region = grid.cell_data["region"]
    assert {int(t): int(np.sum(region == t)) for t in np.unique(region)} == per_region
    for name, tag in data.regions.items():
        assert grid.field_data[f"region_{name}"][0] == tag


def test_mesh_vtkhdf_has_region_tags(shared_tmp: Path) -> None:
    device = load_device(PAPER, HEAT)
    data = heat_mesh(device, MPI.COMM_WORLD)
    write_mesh(data, shared_tmp / "mesh")
    grid = _read(shared_tmp / "mesh" / "mesh.vtkhdf")
    _check_mesh(grid, data)
    if grid is not None:
        markers = json.loads((shared_tmp / "mesh" / "markers.json").read_text())["markers"]
        regions = {name: tag for name, (dim, tag) in markers.items() if dim == 2}
        assert set(np.unique(grid.cell_data["region"])) == set(regions.values())
        assert not list(shared_tmp.glob("mesh/.*tmp*"))


def test_point_values_follow_the_points(shared_tmp: Path) -> None:
    """A P2 field and a vector field land on the right points: f(x) read back equals f(points)."""
    device = load_device(PAPER, HEAT)
    data = heat_mesh(device, MPI.COMM_WORLD)
    V = fem.functionspace(data.mesh, ("Lagrange", 2))
    f = fem.Function(V, name="solver_name")
    f.interpolate(lambda x: 1e6 * x[0] + 3e12 * x[1] ** 2)
    W = fem.functionspace(data.mesh, ("Lagrange", 2, (2,)))
    w = fem.Function(W)
    w.interpolate(lambda x: np.vstack([x[1], -x[0]]))
    # under mpirun every rank owns a part of the mesh, so the gather order is exercised
    assert all(data.comm.allgather(data.mesh.geometry.index_map().size_local > 0))
    bp, path = write_fields(shared_tmp / "f", {"f": f, "w": w}, mesh_data=data)
    assert f.name == "solver_name"  # the caller's functions keep their names
    grid = _read(path)
    counts = data.counts()
    if grid is not None:
        assert bp.is_dir() and grid.n_points == counts["vertices"]
        x, y = grid.points[:, 0], grid.points[:, 1]
        assert np.allclose(grid["f"], 1e6 * x + 3e12 * y**2, rtol=1e-12, atol=1e-12)
        assert np.allclose(grid["w"], np.column_stack([y, -x, 0 * x]), rtol=1e-12, atol=1e-18)


def test_heat_fields_match_the_solver(shared_tmp: Path) -> None:
    device = load_device(PAPER, HEAT)
    out = shared_tmp / "heat"
    result = run_heat(device, out, progress=False)
    data = heat_mesh(device, MPI.COMM_WORLD)  # the same mesh, for the global counts
    times = np.asarray(result["times_s"])
    film_max = np.asarray(result["film_max_temperature_k"])
    # the default snapshots: the pulse end and the end time, both points of the time grid
    snapshots = [int(np.argmin(np.abs(times - t))) for t in (100e-9, 200e-9)]
    assert times[snapshots] == pytest.approx([100e-9, 200e-9], rel=1e-9)
    steps = _steps(out / "temperature.vtkhdf")
    grids = [_read(out / "temperature.vtkhdf", step) for step in range(len(snapshots))]
    steady = run_heat(device, shared_tmp / "steady", steady=True, progress=False)
    steady_grid = _read(shared_tmp / "steady" / "steady_temperature.vtkhdf")
    _check_mesh(grids[0], data)
    _check_mesh(steady_grid, data)
    if MPI.COMM_WORLD.rank != 0:
        return
    assert (out / "temperature.bp").is_dir()
    assert (shared_tmp / "steady" / "steady_temperature.bp").is_dir()
    assert steps == pytest.approx(times[snapshots].tolist(), rel=1e-12)
    film = grids[0]["region"] == grids[0].field_data["region_film"][0]
    for grid, i in zip(grids, snapshots, strict=True):
        assert "temperature" in grid.point_data
        film_points = grid.extract_cells(film)["temperature"]
        assert film_points.max() == pytest.approx(film_max[i], rel=1e-10)
        # all the heat is deposited in the film: its hottest point is the device's
        assert grid["temperature"].max() == film_points.max()
    film = steady_grid["region"] == steady_grid.field_data["region_film"][0]
    assert steady_grid.extract_cells(film)["temperature"].max() == pytest.approx(
        steady["steady_film_max_temperature_k"], rel=1e-10
    )


def test_series_keeps_each_step(shared_tmp: Path) -> None:
    data = build_stack(load_device(PAPER, ["mesh.optical_padding_um=1"]), MPI.COMM_WORLD)
    V = fem.functionspace(data.mesh, ("Lagrange", 1))
    u = fem.Function(V)
    with FieldSeries(shared_tmp / "series.bp", {"u": u}, mesh_data=data) as series:
        for t in (0.0, 1e-9, 3e-9):
            u.interpolate(lambda x, t=t: 1.0 + t * 1e9 * np.ones_like(x[0]))
            series.write(t)
    assert u.name == "u"
    steps = _steps(shared_tmp / "series.vtkhdf")
    grids = [_read(shared_tmp / "series.vtkhdf", step) for step in range(3)]
    _check_mesh(grids[-1], data)
    if MPI.COMM_WORLD.rank == 0:
        assert steps == [0.0, 1e-9, 3e-9]
        assert [g["u"].max() for g in grids] == pytest.approx([1.0, 2.0, 4.0], rel=1e-14)
        assert (shared_tmp / "series.bp").is_dir()


def test_band_edge_fields(shared_tmp: Path) -> None:
    device = load_device(PAPER, BANDS)
    doc = band_edge_table(device, MPI.COMM_WORLD, n_bands=2, out=shared_tmp)
    grid = _read(shared_tmp / "band_edges.vtkhdf")
    if grid is None:
        return
    assert (shared_tmp / "band_edges.bp").is_dir()
    for i, edge in enumerate(doc["band_edges"]):
        u = grid[f"band_edge_{i}"]
        # fields are scaled to max |u| = 1 at a node; P2 midpoints are not points of the grid
        assert 0.9 < np.abs(u).max() <= 1.0 + 1e-12
        wavelength = grid.field_data[f"band_edge_{i}_wavelength_nm"][0]
        assert wavelength == pytest.approx(edge["wavelength_nm"], rel=1e-12)
    assert "region" in grid.cell_data


def test_mode_fields(shared_tmp: Path) -> None:
    from cqdlaser.physics.modes import stack_modes
    from cqdlaser.physics.permittivity import region_permittivity

    device = load_device(PAPER, ["mesh.optical_padding_um=1"])
    data = build_stack(device, MPI.COMM_WORLD, optical=True)
    eps = region_permittivity(device, list(data.regions))
    modes = [
        m
        for pol in ("TE", "TM")
        for m in stack_modes(data, eps, device.optics.wavelength, pol, degree=1)
    ]
    write_mode_fields(shared_tmp / "modes", modes, data)
    grid = _read(shared_tmp / "modes.vtkhdf")
    _check_mesh(grid, data)
    if grid is None:
        return
    for m in modes:
        name = f"{m.polarisation}{m.order}"
        assert grid[name].max() == pytest.approx(1.0, rel=1e-12)
        assert grid.field_data[f"{name}_n_eff"][0] == pytest.approx(m.n_eff, rel=1e-14)


def test_mesh_file_without_fields(shared_tmp: Path) -> None:
    data = build_stack(load_device(PAPER, ["mesh.optical_padding_um=1"]), MPI.COMM_WORLD)
    path = write_mesh_vtkhdf(shared_tmp / "stack.vtkhdf", data)
    _check_mesh(_read(path), data)


def test_rejects_fields_on_other_meshes(shared_tmp: Path) -> None:
    device = load_device(PAPER, ["mesh.optical_padding_um=1"])
    a = build_stack(device, MPI.COMM_WORLD)
    b = build_stack(device, MPI.COMM_WORLD)
    u = fem.Function(fem.functionspace(a.mesh, ("Lagrange", 1)))
    v = fem.Function(fem.functionspace(b.mesh, ("Lagrange", 1)))
    with pytest.raises(ValueError, match="one mesh"):
        write_fields(shared_tmp / "x", {"u": u, "v": v})
    with pytest.raises(ValueError, match="one mesh"):
        write_fields(shared_tmp / "x", {"u": u}, mesh_data=b)
