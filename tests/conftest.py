"""Shared fixtures: MPI-shared temporary directories (one per test, one for the study tier's
outputs), serial-only skipping, figure tests last, collective GC."""

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
