"""Gmsh on rank 0 only, and the hand-over of its model to a distributed DOLFINx mesh.

Both steps are timed with ``dolfinx.common.Timer`` (:data:`GMSH_TIMER`, :data:`DISTRIBUTE_TIMER`),
so that a benchmark reads the time of each from ``dolfinx.common.timing``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mpi4py import MPI

import gmsh
import numpy as np

import dolfinx
import dolfinx.graph
from dolfinx.io import gmsh as gmshio

from cqdlaser.geometry.meshdata import MeshData, PeriodicPair

GEOMETRY_TOLERANCE = 1e-13
"""Gmsh's point-merging tolerance (m): far below the thinnest layer validation accepts (1 nm)."""
GMSH_TIMER = "cqdlaser: gmsh model and mesh (rank 0)"
"""Timer of a Gmsh block: geometry, meshing and the hand-over (:func:`gmsh_model`)."""
DISTRIBUTE_TIMER = "cqdlaser: distribute mesh"
"""Timer of the hand-over of a Gmsh mesh to a distributed DOLFINx mesh (:func:`to_mesh_data`)."""


@contextmanager
def gmsh_model(comm: MPI.Comm, name: str) -> Iterator[object | None]:
    """Yield ``gmsh.model`` on rank 0 (None elsewhere), initialised for reproducible meshing.

    Gmsh runs single-threaded and quietly; it is finalised on leaving the block.
    """
    if comm.rank != 0:
        yield None
        return
    initialised_here = not gmsh.isInitialized()
    if initialised_here:
        gmsh.initialize(interruptible=False)
    try:
        with dolfinx.common.Timer(GMSH_TIMER):
            gmsh.option.setNumber("General.Terminal", 0)
            gmsh.option.setNumber("General.NumThreads", 1)
            gmsh.option.setNumber("Mesh.Algorithm", 6)
            gmsh.option.setNumber("Mesh.Algorithm3D", 1)
            # Coordinates are in metres: Gmsh's default merge tolerance (1e-8, absolute) would
            # fuse the points of layers thinner than 10 nm. 1e-13 m is far below any layer.
            gmsh.option.setNumber("Geometry.Tolerance", GEOMETRY_TOLERANCE)
            gmsh.model.add(name)
            yield gmsh.model
    finally:
        gmsh.model.remove()
        if initialised_here:
            gmsh.finalize()


def min_quality(model: object) -> float:
    """Minimum scaled-Jacobian quality (minSICN) of the highest-dimension elements, on rank 0."""
    dim = gmsh.model.getDimension()
    if dim <= 1:
        return 1.0
    _, tags, _ = gmsh.model.mesh.getElements(dim)
    q = [gmsh.model.mesh.getElementQualities(t, "minSICN") for t in tags if len(t)]
    return float(np.min(np.concatenate(q))) if q else 1.0


def to_mesh_data(
    model: object | None,
    comm: MPI.Comm,
    *,
    gdim: int,
    kind: str,
    periodic: tuple[PeriodicPair, ...] = (),
    z_levels: dict[str, float] | None = None,
    msh_file: str | Path | None = None,
) -> MeshData:
    """Distribute the meshed Gmsh model of rank 0 over ``comm`` and name its tags.

    Physical groups of the top dimension become regions, those one dimension lower boundaries.
    Must be called inside :func:`gmsh_model` (collective).
    """
    with dolfinx.common.Timer(DISTRIBUTE_TIMER):
        quality = 1.0
        if comm.rank == 0:
            quality = min_quality(model)
            if msh_file is not None:
                Path(msh_file).parent.mkdir(parents=True, exist_ok=True)
                gmsh.write(str(msh_file))
        quality = comm.bcast(quality, root=0)
        # Ghosts across shared facets, so that interior-facet integrals (dS) work on any partition.
        partitioner = dolfinx.mesh.create_cell_partitioner(
            dolfinx.graph.partitioner(), dolfinx.mesh.GhostMode.shared_facet, 2
        )
        data = gmshio.model_to_mesh(model, comm, 0, gdim=gdim, partitioner=partitioner)
    tdim = data.mesh.topology.dim
    groups = data.physical_groups
    regions = {n: int(g.tag) for n, g in groups.items() if g.dim == tdim}
    boundaries = {n: int(g.tag) for n, g in groups.items() if g.dim == tdim - 1}
    return MeshData(
        data.mesh,
        data.cell_tags,
        data.facet_tags,
        regions,
        boundaries,
        kind,
        periodic,
        dict(z_levels or {}),
        quality,
    )
