"""MPI sweeps: the same table whatever the number of ranks, each point on its own communicator."""

from __future__ import annotations

from mpi4py import MPI

import numpy as np
import pytest

import ufl
from dolfinx import fem, mesh

from cqdlaser.studies.sweep import SweepError, failures, sweep


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


def _fails_on_odd(n: int, comm: MPI.Comm) -> int:
    if n % 2:
        raise RuntimeError(f"point {n} is odd")
    return n * comm.size


def test_a_failed_point_does_not_stop_or_hang_the_others() -> None:
    """Under mpirun the odd points fail on one group while the other group goes on; every rank
    then gets the same SweepError naming the failed points and their reasons."""
    points = [0, 1, 2, 3, 4, 5]
    with pytest.raises(SweepError, match=r"3 point\(s\) failed.*point 1 is odd") as info:
        sweep(points, _fails_on_odd, MPI.COMM_WORLD, desc="odd")
    assert [f.point for f in info.value.failures] == [1, 3, 5]


def test_keep_going_returns_the_failures_in_place() -> None:
    results = sweep([0, 1, 2], _fails_on_odd, MPI.COMM_WORLD, keep_going=True)
    assert results[0] == 0 and results[2] == 2
    (failure,) = failures(results)
    assert failure.index == 1 and failure.reason == "RuntimeError: point 1 is odd"
