"""VTKHDF files that VTK opens (pyvista, ParaView >= 5.12): a mesh with named arrays and time steps.

DOLFINx 0.11's :mod:`dolfinx.io.vtkhdf` writes the mesh collectively (MPI-IO), but its data
writers name every array ``u``, keep one array per file and fail when point data follow cell data.
Here DOLFINx writes the mesh, and the named arrays are added to that file afterwards: every rank
hands its owned values to rank 0 (in the order of the global geometry and cell index maps, which
is the order DOLFINx wrote the points and cells in), and rank 0 appends them with serial
:mod:`h5py` once DOLFINx has closed the file.

File layout (VTKHDF 2.x ``UnstructuredGrid``): ``/VTKHDF/{Points, Connectivity, Offsets, Types,
NumberOf*}`` from DOLFINx; ``/VTKHDF/PointData/<name>``, ``/VTKHDF/CellData/<name>`` and
``/VTKHDF/FieldData/<name>`` (one number each: a wavelength, a region's tag), as float64, int64
or int32. With time steps, ``/VTKHDF/Steps/Values`` holds the times, point arrays hold the steps
one after another and ``/VTKHDF/Steps/PointDataOffsets/<name>`` says where each step starts; the
mesh, the cell arrays and the field data are shared by all steps (offsets 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mpi4py import MPI

import h5py
import numpy as np
import numpy.typing as npt

import basix
import basix.ufl
import dolfinx
import dolfinx.io.vtkhdf
from dolfinx import fem

__all__ = [
    "cell_tag_values",
    "gather_cell_values",
    "gather_point_values",
    "region_data",
    "write_mesh",
    "write_vtkhdf",
]

# Array types written as they are (floating-point arrays are written as float64)
_TYPES = (np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.int32))
# Steps datasets and groups of a static mesh: every step reads part 0 of the points and cells
_MESH_OFFSETS = ("PartOffsets", "PointOffsets", "CellOffsets", "ConnectivityIdOffsets")
_OFFSET_GROUPS = ("PointDataOffsets", "CellDataOffsets", "FieldDataOffsets", "FieldDataSizes")


def write_mesh(path: str | Path, msh: dolfinx.mesh.Mesh) -> Path:
    """Write the mesh of a VTKHDF file (collective; an existing file is replaced).

    Args:
        path: The ``.vtkhdf`` file.
        msh: The mesh (its geometry nodes become the points, in global index order).

    Returns:
        ``path``.
    """
    dolfinx.io.vtkhdf.write_mesh(Path(path), msh)
    return Path(path)


def gather_point_values(u: fem.Function) -> np.ndarray | None:
    """A function's values at the mesh's geometry nodes, global, on rank 0 (collective).

    The points of a VTKHDF mesh are the geometry nodes (the vertices of a degree-1 mesh), so a
    function is interpolated into the Lagrange space of the geometry's degree first: exact for
    P1 fields on a degree-1 mesh; for P2 (or Nedelec) fields the nodal values, with the values
    between the nodes lost. Vector values are padded to 3 components, as VTK expects.

    Args:
        u: A scalar or vector function.

    Returns:
        On rank 0 shape ``(n_nodes,)`` or ``(n_nodes, 3)``, in the order of
        :func:`write_mesh`'s points; ``None`` on the other ranks.
    """
    msh = u.function_space.mesh
    shape = u.ufl_shape
    if len(shape) > 1:
        raise ValueError(f"function {u.name!r} of shape {shape}: only scalars and vectors")
    cmap = msh.geometry.cmaps[0]
    # Lagrange variants differ from degree 3 on only
    variant = basix.LagrangeVariant(cmap.variant) if cmap.degree > 2 else None
    element = basix.ufl.element(
        "Lagrange",
        msh.basix_cell(),
        cmap.degree,
        **({} if variant is None else {"lagrange_variant": variant}),
        shape=shape,
        dtype=dolfinx.default_real_type,
    )
    if u.function_space.ufl_element() == element:
        w = u
    else:
        w = fem.Function(fem.functionspace(msh, element))
        w.interpolate(u)
    W = w.function_space
    bs = W.dofmap.index_map_bs
    n_nodes = msh.geometry.index_map().size_local + msh.geometry.index_map().num_ghosts
    nodal = np.zeros((n_nodes, bs), dtype=np.float64)
    nodal[msh.geometry.dofmap.ravel()] = w.x.array.reshape(-1, bs)[W.dofmap.list.ravel()]
    owned = nodal[: msh.geometry.index_map().size_local]
    if bs > 1:
        owned = np.hstack([owned, np.zeros((owned.shape[0], 3 - bs))])
    else:
        owned = owned[:, 0]
    return _gather(msh.comm, owned)


def gather_cell_values(
    msh: dolfinx.mesh.Mesh, values: npt.ArrayLike, *, dtype: npt.DTypeLike = np.float64
) -> np.ndarray | None:
    """Values on the owned cells, global, on rank 0 (collective).

    Args:
        msh: The mesh.
        values: One value per local cell (owned first; values past the owned cells are ignored).
        dtype: Type of the array in the file.

    Returns:
        On rank 0 the values of all cells in the order of :func:`write_mesh`; ``None`` elsewhere.
    """
    n_owned = msh.topology.index_map(msh.topology.dim).size_local
    owned = np.asarray(values, dtype=dtype)[:n_owned]
    return _gather(msh.comm, owned)


def cell_tag_values(tags: dolfinx.mesh.MeshTags, *, untagged: int = -1) -> np.ndarray:
    """One value per local cell from cell tags.

    Args:
        tags: Cell tags.
        untagged: The value of a cell without a tag.

    Returns:
        The values of the owned and ghost cells (int32).
    """
    imap = tags.topology.index_map(tags.dim)
    values = np.full(imap.size_local + imap.num_ghosts, untagged, dtype=np.int32)
    values[tags.indices] = tags.values
    return values


def region_data(
    msh: dolfinx.mesh.Mesh, tags: dolfinx.mesh.MeshTags, regions: Mapping[str, int]
) -> dict[str, dict[str, Any]]:
    """The region tags as keyword arguments of :func:`write_vtkhdf` (collective).

    Args:
        msh: The mesh.
        tags: Its cell tags (untagged cells get -1).
        regions: Region name -> tag.

    Returns:
        ``cell_data`` with the cell array ``region`` (the cell tags; on rank 0) and
        ``field_data`` with ``region_<name>`` (the tag of each region name).
    """
    values = gather_cell_values(msh, cell_tag_values(tags), dtype=np.int32)
    return {
        "cell_data": {"region": values},
        "field_data": {f"region_{name}": np.int32(tag) for name, tag in regions.items()},
    }


def write_vtkhdf(
    path: str | Path,
    msh: dolfinx.mesh.Mesh,
    *,
    point_data: Mapping[str, Sequence[np.ndarray | None]] | None = None,
    cell_data: Mapping[str, np.ndarray | None] | None = None,
    field_data: Mapping[str, float | np.number] | None = None,
    times: Sequence[float] | None = None,
) -> Path:
    """Write a VTKHDF file atomically (collective).

    DOLFINx writes the mesh to a temporary name, rank 0 adds the arrays and renames the file. An
    error on rank 0 is raised on every rank (no rank is left waiting), and no file is left behind.

    Args:
        path: The ``.vtkhdf`` file.
        msh: The mesh.
        point_data: Name -> one array per time step (a single array in a static file), each the
            rank-0 result of :func:`gather_point_values` (ignored on the other ranks).
        cell_data: Name -> the rank-0 result of :func:`gather_cell_values`, for all steps.
        field_data: Name -> a number describing the whole data set (a wavelength, a region tag).
        times: Time of every step (s); ``None`` (or no steps) for a static file.

    Returns:
        ``path``.

    Raises:
        RuntimeError: On every rank, when rank 0 could not add the arrays or rename the file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    comm = msh.comm
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    write_mesh(tmp, msh)
    error = None
    if comm.rank == 0:
        try:
            _append_arrays(tmp, point_data or {}, cell_data or {}, field_data or {}, times)
            tmp.replace(path)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            error = exc
    _raise_on_every_rank(comm, error, f"VTKHDF output {path} failed")
    return path


def _append_arrays(
    path: Path,
    point_data: Mapping[str, Sequence[np.ndarray]],
    cell_data: Mapping[str, np.ndarray],
    field_data: Mapping[str, float | np.number],
    times: Sequence[float] | None,
) -> None:
    """Add named arrays, and the time steps if any, to a mesh file of :func:`write_mesh`.

    Args:
        path: The file (closed by DOLFINx); opened here by one rank.
        point_data: Name -> one array per time step.
        cell_data: Name -> array, shared by all steps.
        field_data: Name -> number, shared by all steps.
        times: Time of every step; ``None`` or empty for a static file.
    """
    n_steps = len(times) if times else 1
    for name, steps in point_data.items():
        if len(steps) != n_steps:
            raise ValueError(f"point array {name!r}: {len(steps)} steps for {n_steps} times")
    arrays = {
        "PointData": {name: np.concatenate(steps) for name, steps in point_data.items()},
        "CellData": cell_data,
        "FieldData": {name: np.atleast_1d(value) for name, value in field_data.items()},
    }
    with h5py.File(path, "a") as f:
        root = f["VTKHDF"]
        for group, named in arrays.items():
            for name, values in named.items():
                root.require_group(group).create_dataset(name, data=_supported(values))
        if times:
            _write_steps(root, times, point_data, cell_data, field_data)


def _write_steps(
    root: h5py.Group,
    times: Sequence[float],
    point_data: Mapping[str, Sequence[np.ndarray]],
    cell_names: Iterable[str],
    field_names: Iterable[str],
) -> None:
    """Write the ``Steps`` group of a static mesh with time-dependent point arrays.

    Args:
        root: The ``/VTKHDF`` group.
        times: Time of every step.
        point_data: Name -> one array per step (stored one after another).
        cell_names: Names of the cell arrays (shared by all steps: offsets 0).
        field_names: Names of the field arrays (one number, shared by all steps).
    """
    n_steps = len(times)
    zeros = np.zeros(n_steps, dtype=np.int64)
    steps = root.require_group("Steps")
    steps.attrs["NSteps"] = np.int32(n_steps)
    steps.create_dataset("Values", data=np.asarray(times, dtype=np.float64))
    steps.create_dataset("NumberOfParts", data=np.ones(n_steps, dtype=np.int64))
    for name in _MESH_OFFSETS:
        steps.create_dataset(name, data=zeros)
    offsets = {group: steps.require_group(group) for group in _OFFSET_GROUPS}
    for name, arrays in point_data.items():
        starts = np.cumsum([0] + [len(a) for a in arrays[:-1]], dtype=np.int64)
        offsets["PointDataOffsets"].create_dataset(name, data=starts)
    for name in cell_names:
        offsets["CellDataOffsets"].create_dataset(name, data=zeros)
    for name in field_names:
        offsets["FieldDataOffsets"].create_dataset(name, data=zeros)
        # (components, tuples) of the field array at each step: one number
        offsets["FieldDataSizes"].create_dataset(name, data=np.ones((n_steps, 2), np.int64))


def _supported(data: npt.ArrayLike) -> np.ndarray:
    """``data`` as an array of a type written as it is.

    Args:
        data: Numbers.

    Returns:
        The array; floating-point values as float64.

    Raises:
        TypeError: For other types than floats, int64 and int32.
    """
    data = np.asarray(data)
    if data.dtype.kind == "f":
        data = data.astype(np.float64, copy=False)
    if data.dtype not in _TYPES:
        raise TypeError(f"arrays of {data.dtype} are not supported")
    return data


def _raise_on_every_rank(comm: MPI.Comm, error: Exception | None, context: str) -> None:
    """Raise rank 0's error on every rank (collective).

    Only the message travels, so an exception that cannot be pickled cannot leave the other
    ranks waiting.

    Args:
        comm: The communicator.
        error: Rank 0's error, or ``None`` (ignored on the other ranks).
        context: What failed; the start of the message.

    Raises:
        RuntimeError: ``"<context>: <error>"`` when rank 0 had an error (chained to it on
            rank 0).
    """
    message = comm.bcast(None if error is None else f"{context}: {error}", root=0)
    if message is not None:
        raise RuntimeError(message) from error


def _gather(comm: MPI.Comm, owned: np.ndarray) -> np.ndarray | None:
    """Concatenate every rank's owned values on rank 0 (collective).

    Args:
        comm: The communicator.
        owned: This rank's values, in the global order of its owned entities.

    Returns:
        All values in rank order on rank 0; ``None`` elsewhere.
    """
    parts = comm.gather(np.ascontiguousarray(owned), root=0)
    return None if parts is None else np.concatenate(parts)
