"""Finite-element helpers shared by the solvers: global integrals and maxima, per-region DG0
fields, Dirichlet dofs on named boundaries and the peak normalisation of eigenvectors.

Every function here is collective on the mesh's communicator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from mpi4py import MPI

import numpy as np
import numpy.typing as npt

from dolfinx import fem

from cqdlaser.geometry.meshdata import MeshData


def global_sum(form: fem.Form) -> float:
    """The integral of a compiled scalar form over the whole mesh (all ranks)."""
    return float(form.mesh.comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM))


def global_max(u: fem.Function, dofs: npt.NDArray[np.int32]) -> float:
    """The largest value of ``u`` at the local dofs ``dofs`` of every rank (-inf if none)."""
    local = float(np.max(u.x.array[dofs])) if len(dofs) else -math.inf
    return float(u.function_space.mesh.comm.allreduce(local, op=MPI.MAX))


def region_function(
    mesh_data: MeshData, values: Mapping[str, float], name: str | None = None
) -> fem.Function:
    """A DG0 function equal to ``values[region]`` on the cells of each region of the mesh.

    Args:
        mesh_data: The mesh with its named regions.
        values: Region name -> value, for every region.
        name: The function's name (for output).
    """
    Q = fem.functionspace(mesh_data.mesh, ("DG", 0))
    f = fem.Function(Q) if name is None else fem.Function(Q, name=name)
    ct = mesh_data.cell_tags
    for region, tag in mesh_data.regions.items():
        cells = ct.indices[ct.values == tag]
        f.x.array[Q.dofmap.list[cells, 0]] = values[region]
    f.x.scatter_forward()
    return f


def boundary_dofs(
    V: fem.FunctionSpace, mesh_data: MeshData, names: Sequence[str]
) -> npt.NDArray[np.int32]:
    """Local dofs (owned and ghost) of ``V`` on the facets of the named boundaries."""
    tdim = mesh_data.mesh.topology.dim
    mesh_data.mesh.topology.create_connectivity(tdim - 1, tdim)
    facets = [mesh_data.facet_tags.find(mesh_data.boundary(name)) for name in names]
    unique = np.unique(np.concatenate([np.empty(0, np.int32), *facets])).astype(np.int32)
    return fem.locate_dofs_topological(V, tdim - 1, unique)


def normalise_peak(uh: fem.Function) -> None:
    """Scale a real field to max |u| = 1, positive there (the sign of an eigenvector is free)."""
    n_owned = uh.function_space.dofmap.index_map.size_local
    owned = uh.x.array[:n_owned]
    i = int(np.argmax(np.abs(owned))) if owned.size else -1
    local = (abs(owned[i]), owned[i]) if owned.size else (-1.0, 0.0)
    peak = max(uh.function_space.mesh.comm.allgather(local), key=lambda pair: pair[0])
    uh.x.array[:] /= peak[1]
