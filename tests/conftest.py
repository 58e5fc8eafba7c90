"""Shared fixtures: an MPI-shared temporary directory, serial-only skipping, collective GC."""

from __future__ import annotations

import gc
import shutil
import tempfile
from pathlib import Path

from mpi4py import MPI

import pytest

import cqdlaser.geometry  # noqa: F401  (orders the DOLFINx imports)


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
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
