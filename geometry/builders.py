"""One entry point for every mesh kind: ``build_mesh(device, kind)``.

Every build is timed with ``dolfinx.common.Timer``: :data:`GMSH_TIMER` (Gmsh on rank 0, the
hand-over included) and :data:`DISTRIBUTE_TIMER` (the hand-over to a distributed DOLFINx mesh);
read them with ``dolfinx.common.timing(name)``.
"""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

from cqdlaser.geometry._gmsh import DISTRIBUTE_TIMER, GMSH_TIMER
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.errors import unknown_name
from cqdlaser.geometry.meshdata import KINDS, MeshData

__all__ = ["DISTRIBUTE_TIMER", "GMSH_TIMER", "build_mesh"]


def build_mesh(
    device: Device,
    kind: str,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    resolved: bool = False,
    optical: bool | None = None,
    msh_file: str | Path | None = None,
) -> MeshData:
    """Build the mesh of one kind for a device (Gmsh on rank 0, distributed over ``comm``).

    Args:
        device: The device description.
        kind: One of ``stack``, ``cross-section``, ``cell``, ``quarter-cell``, ``device``,
            ``axisymmetric``.
        comm: Communicator.
        resolved: For ``device``: resolve the pillars under the spot instead of homogenising.
        optical: For ``stack`` and ``cell``: the optical (truncated, with cover) variant, or the
            thermal one; default optical for ``cell``, thermal for ``stack`` only when asked.
        msh_file: Also write the Gmsh mesh to this file.
    """
    if kind == "stack":
        from cqdlaser.geometry.stack import build_stack

        return build_stack(
            device, comm, optical=True if optical is None else optical, msh_file=msh_file
        )
    if kind == "cross-section":
        from cqdlaser.geometry.cross_section import build_cross_section

        return build_cross_section(device, comm, msh_file=msh_file)
    if kind == "cell":
        from cqdlaser.geometry.cell import build_cell

        return build_cell(
            device, comm, optical=True if optical is None else optical, msh_file=msh_file
        )
    if kind == "quarter-cell":
        from cqdlaser.geometry.quarter_cell import build_quarter_cell

        return build_quarter_cell(device, comm, msh_file=msh_file)
    if kind == "device":
        from cqdlaser.geometry.device_mesh import build_device

        return build_device(device, comm, resolved=resolved, msh_file=msh_file)
    if kind == "axisymmetric":
        from cqdlaser.geometry.axisymmetric import build_axisymmetric

        return build_axisymmetric(device, comm, msh_file=msh_file)
    raise unknown_name("--kind", kind, KINDS)
