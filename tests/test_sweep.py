"""MPI sweeps: the same table whatever the number of ranks, each point on its own communicator."""

from __future__ import annotations

from mpi4py import MPI

import numpy as np

import ufl
from dolfinx import fem, mesh

from cqdlaser.studies.sweep import sweep


def _poisson_energy(n: int, comm: MPI.Comm) -> tuple[int, float, int]:
    """A collective FE computation on the point's communicator: int u^2 for u = x (n cells)."""
    msh = mesh.create_unit_interval(comm, n)
    x = ufl.SpatialCoordinate(msh)
    value = comm.allreduce(fem.assemble_scalar(fem.form(x[0] ** 2 * ufl.dx)), op=MPI.SUM)
    return n, value, comm.size


def test_sweep_matches_serial_and_keeps_order() -> None:
    points = [4, 8, 16, 32, 64]
    results = sweep(points, _poisson_energy, MPI.COMM_WORLD)
    serial = [_poisson_energy(n, MPI.COMM_SELF) for n in points]
    assert [r[0] for r in results] == points
    assert np.allclose([r[1] for r in results], [s[1] for s in serial], rtol=0, atol=0)
    assert all(r[2] == 1 for r in results)


def test_groups_of_ranks() -> None:
    world = MPI.COMM_WORLD
    results = sweep([1, 2, 3], lambda p, c: (p, c.size), world, ranks_per_point=world.size)
    assert results == [(1, world.size), (2, world.size), (3, world.size)]
