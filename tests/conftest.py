"""Shared fixtures: MPI-shared temporary directories (one per test, one for the study tier's
outputs), serial-only skipping, figure tests last, collective GC."""

from __future__ import annotations

import gc
import shutil
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest

import dolfinx.mesh as dmesh

import cqdlaser.geometry  # noqa: F401  (orders the DOLFINx imports)
from cqdlaser.geometry.meshdata import MeshData


@pytest.fixture
def comm() -> MPI.Comm:
    """The world communicator."""
    return MPI.COMM_WORLD


@pytest.fixture
def shared_tmp(request: pytest.FixtureRequest) -> Path:
    """A temporary directory made on rank 0 and shared by all ranks (removed afterwards)."""
    c = MPI.COMM_WORLD
    path = Path(tempfile.mkdtemp(prefix=f"cqd-{request.node.name[:40]}-")) if c.rank == 0 else None
    path = c.bcast(path, root=0)
    yield path
    c.barrier()
    if c.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def study_outputs() -> Path:
    """One folder, shared by all ranks and all study tests of the session, that holds each
    study's outputs (``<study>/``): the study tests compute into it, the figure tests draw from it.
    """
    c = MPI.COMM_WORLD
    path = Path(tempfile.mkdtemp(prefix="cqd-studies-")) if c.rank == 0 else None
    path = c.bcast(path, root=0)
    yield path
    c.barrier()
    if c.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Figures are drawn from the files the study tests wrote: run those tests first.
    items.sort(key=lambda item: "figures" in item.keywords)
    if MPI.COMM_WORLD.size > 1:
        skip = pytest.mark.skip(reason="serial test: skipped under mpirun")
        for item in items:
            if "serial" in item.keywords:
                item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    yield
    # PETSc objects are destroyed collectively: collect garbage on every rank together.
    MPI.COMM_WORLD.barrier()
    gc.collect()
    MPI.COMM_WORLD.barrier()


# -- shared helpers (import them with `from conftest import ...`) ------------------------------


def on_rank0(check: Callable[[], None]) -> None:
    """Run rank-0 assertions; a failure fails every rank (rank 0 alone would hang the rest)."""
    error = None
    if MPI.COMM_WORLD.rank == 0:
        try:
            check()
        except AssertionError as exc:
            error = f"{exc!r}\n{traceback.format_exc()}"
    error = MPI.COMM_WORLD.bcast(error, root=0)
    assert error is None, error


def structured_mesh(
    comm: MPI.Comm,
    kind: str,
    z_nodes: np.ndarray,
    layers: list[tuple[str, float, float]],
    lateral_nodes: np.ndarray | None = None,
    interface: float | None = None,
) -> MeshData:
    """A structured interval/quadrilateral/hexahedral mesh with nodes at the given coordinates.

    The vertical axis is the last one; regions are the ``layers`` (name, z_bottom, z_top);
    boundaries ``bottom``, ``top``, ``interface`` (the plane z = ``interface``), and ``axis``
    (r = 0) or ``symmetry_x``/``symmetry_y`` (x = 0, y = 0), and ``side`` (the lateral end).
    """
    nz = len(z_nodes) - 1
    if kind == "stack":
        msh = dmesh.create_interval(comm, nz, [0.0, 1.0])
    elif kind == "axisymmetric":
        n = len(lateral_nodes) - 1
        msh = dmesh.create_rectangle(
            comm, [[0.0, 0.0], [1.0, 1.0]], [n, nz], dmesh.CellType.quadrilateral
        )
    else:
        n = len(lateral_nodes) - 1
        msh = dmesh.create_box(
            comm, [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], [n, n, nz], dmesh.CellType.hexahedron
        )
    x = msh.geometry.x
    zaxis = msh.geometry.dim - 1
    x[:, zaxis] = np.interp(x[:, zaxis], np.linspace(0, 1, nz + 1), z_nodes)
    for axis in range(zaxis):
        grid = np.linspace(0, 1, len(lateral_nodes))
        x[:, axis] = np.interp(x[:, axis], grid, lateral_nodes)
    tdim = msh.topology.dim
    imap = msh.topology.index_map(tdim)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    mid = dmesh.compute_midpoints(msh, tdim, cells)[:, zaxis]
    values = np.zeros(len(cells), dtype=np.int32)
    for i, (_, zb, zt) in enumerate(layers):
        values[(mid > zb) & (mid < zt)] = i + 1
    ct = dmesh.meshtags(msh, tdim, cells, values)
    regions = {name: i + 1 for i, (name, _, _) in enumerate(layers)}

    tol = 1e-9 * (z_nodes[-1] - z_nodes[0])
    planes: dict[str, list[tuple[int, float]]] = {
        "bottom": [(zaxis, z_nodes[0])],
        "top": [(zaxis, z_nodes[-1])],
    }
    if interface is not None:
        planes["interface"] = [(zaxis, interface)]
    if kind == "axisymmetric":
        planes["axis"] = [(0, 0.0)]
    elif kind == "device":
        planes["symmetry_x"] = [(0, 0.0)]
        planes["symmetry_y"] = [(1, 0.0)]
    if kind != "stack":
        planes["side"] = [(axis, lateral_nodes[-1]) for axis in range(zaxis)]
    fdim = tdim - 1
    msh.topology.create_connectivity(fdim, tdim)
    entities, tags, boundaries = [], [], {}
    for tag, (name, where) in enumerate(planes.items(), start=1):
        found = dmesh.locate_entities(
            msh,
            fdim,
            lambda p, where=where: np.any([np.abs(p[a] - c) < tol for a, c in where], axis=0),
        )
        entities.append(found)
        tags.append(np.full(len(found), tag, dtype=np.int32))
        boundaries[name] = tag
    entities_all = np.concatenate(entities)
    order = np.argsort(entities_all)
    ft = dmesh.meshtags(
        msh, fdim, entities_all[order].astype(np.int32), np.concatenate(tags)[order]
    )
    return MeshData(msh, ct, ft, regions, boundaries, kind)
