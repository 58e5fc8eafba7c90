"""VTKHDF files that VTK opens (pyvista, ParaView >= 5.12): a mesh with named arrays and time steps.

DOLFINx 0.11's :mod:`dolfinx.io.vtkhdf` writes the mesh collectively (MPI-IO), but its data
writers name every array ``u``, keep one array per file and fail when point data follow cell data.
Here DOLFINx writes the mesh, and the named arrays are added to that file afterwards: every rank
hands its owned values to rank 0 (in the order of the global geometry and cell index maps, which
is the order DOLFINx wrote the points and cells in), and rank 0 appends them through the HDF5
library DOLFINx itself is linked against (by ``ctypes``: no h5py dependency).

File layout (VTKHDF 2.x ``UnstructuredGrid``): ``/VTKHDF/{Points, Connectivity, Offsets, Types,
NumberOf*}`` from DOLFINx; ``/VTKHDF/PointData/<name>``, ``/VTKHDF/CellData/<name>`` and
``/VTKHDF/FieldData/<name>`` (one number each: a wavelength, a region's tag). With time steps,
``/VTKHDF/Steps/Values`` holds the times, point arrays hold the steps one after another and
``/VTKHDF/Steps/PointDataOffsets/<name>`` says where each step starts; the mesh, the cell arrays
and the field data are shared by all steps (offsets 0).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mpi4py import MPI

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

_LIBRARY = re.compile(r"/libhdf5(_openmpi|_mpich|_serial)?\.(so[.\d]*|dylib)$")


def write_mesh(path: str | Path, msh: dolfinx.mesh.Mesh) -> Path:
    """Write the mesh of a VTKHDF file (collective; an existing file is replaced).

    Args:
        path: The ``.vtkhdf`` file.
        msh: The mesh (its geometry nodes become the points, in global index order).
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
    """One value per local cell from cell tags (``untagged`` where a cell has no tag)."""
    imap = tags.topology.index_map(tags.dim)
    values = np.full(imap.size_local + imap.num_ghosts, untagged, dtype=np.int32)
    values[tags.indices] = tags.values
    return values


def region_data(
    msh: dolfinx.mesh.Mesh, tags: dolfinx.mesh.MeshTags, regions: Mapping[str, int]
) -> dict[str, dict[str, Any]]:
    """The cell array ``region`` (the cell tags) and the field data ``region_<name>`` (the tag of
    each region name), as keyword arguments of :func:`write_vtkhdf` (collective).

    Args:
        msh: The mesh.
        tags: Its cell tags (untagged cells get -1).
        regions: Region name -> tag.
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
    """Write a VTKHDF file atomically (collective): the mesh by DOLFINx to a temporary name, the
    arrays by rank 0, then rank 0 renames it.

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
    error = comm.bcast(error, root=0)
    if error is not None:
        raise RuntimeError(f"VTKHDF output {path} failed: {error}") from error
    return path


def _append_arrays(
    path: Path,
    point_data: Mapping[str, Sequence[np.ndarray]],
    cell_data: Mapping[str, np.ndarray],
    field_data: Mapping[str, float | np.number],
    times: Sequence[float] | None,
) -> None:
    """Add named arrays to a VTKHDF mesh file written by :func:`write_mesh` (one rank)."""
    n_steps = 1 if not times else len(times)
    for name, steps in point_data.items():
        if len(steps) != n_steps:
            raise ValueError(f"point array {name!r}: {len(steps)} steps for {n_steps} times")
    arrays = {
        "PointData": {name: np.concatenate(steps) for name, steps in point_data.items()},
        "CellData": cell_data,
        "FieldData": {name: np.atleast_1d(value) for name, value in field_data.items()},
    }
    with _hdf5().open(path) as f:
        for group, named in arrays.items():
            if named:
                f.group(f"/VTKHDF/{group}")
            for name, values in named.items():
                f.dataset(f"/VTKHDF/{group}/{name}", values)
        if not times:
            return
        # Static mesh: every step reads part 0 of the points and cells, and the cell and field
        # arrays from their start; point arrays hold the steps one after another.
        zeros = np.zeros(n_steps, dtype=np.int64)
        f.group("/VTKHDF/Steps")
        f.attribute("/VTKHDF/Steps", "NSteps", np.int32(n_steps))
        f.dataset("/VTKHDF/Steps/Values", np.asarray(times, dtype=np.float64))
        f.dataset("/VTKHDF/Steps/NumberOfParts", np.ones(n_steps, dtype=np.int64))
        for name in ("PartOffsets", "PointOffsets", "CellOffsets", "ConnectivityIdOffsets"):
            f.dataset(f"/VTKHDF/Steps/{name}", zeros)
        for group in ("PointDataOffsets", "CellDataOffsets", "FieldDataOffsets", "FieldDataSizes"):
            f.group(f"/VTKHDF/Steps/{group}")
        for name, steps in point_data.items():
            starts = np.cumsum([0] + [len(s) for s in steps[:-1]], dtype=np.int64)
            f.dataset(f"/VTKHDF/Steps/PointDataOffsets/{name}", starts)
        for name in cell_data:
            f.dataset(f"/VTKHDF/Steps/CellDataOffsets/{name}", zeros)
        for name in field_data:
            f.dataset(f"/VTKHDF/Steps/FieldDataOffsets/{name}", zeros)
            # (components, tuples) of the field array at each step: one number
            f.dataset(f"/VTKHDF/Steps/FieldDataSizes/{name}", np.ones((n_steps, 2), np.int64))


def _gather(comm: MPI.Comm, owned: np.ndarray) -> np.ndarray | None:
    parts = comm.gather(np.ascontiguousarray(owned), root=0)
    return None if parts is None else np.concatenate(parts)


_HID = ctypes.c_int64  # hid_t is 64-bit since HDF5 1.10
_HERR = ctypes.c_int
_NAME = ctypes.c_char_p
_DIMS = ctypes.POINTER(ctypes.c_uint64)
# name -> (argument types, result type) of the HDF5 C functions used here
_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
    "H5open": ([], _HERR),
    "H5get_libversion": ([ctypes.POINTER(ctypes.c_uint)] * 3, _HERR),
    "H5Fopen": ([_NAME, ctypes.c_uint, _HID], _HID),
    "H5Fclose": ([_HID], _HERR),
    "H5Lexists": ([_HID, _NAME, _HID], ctypes.c_int),
    "H5Gcreate2": ([_HID, _NAME, _HID, _HID, _HID], _HID),
    "H5Gopen2": ([_HID, _NAME, _HID], _HID),
    "H5Gclose": ([_HID], _HERR),
    "H5Screate": ([ctypes.c_int], _HID),
    "H5Screate_simple": ([ctypes.c_int, _DIMS, _DIMS], _HID),
    "H5Sclose": ([_HID], _HERR),
    "H5Dcreate2": ([_HID, _NAME, _HID, _HID, _HID, _HID, _HID], _HID),
    "H5Dwrite": ([_HID, _HID, _HID, _HID, _HID, ctypes.c_void_p], _HERR),
    "H5Dclose": ([_HID], _HERR),
    "H5Acreate2": ([_HID, _NAME, _HID, _HID, _HID, _HID], _HID),
    "H5Awrite": ([_HID, _HID, ctypes.c_void_p], _HERR),
    "H5Aclose": ([_HID], _HERR),
}
_NATIVE_TYPES = {
    np.dtype(np.float64): "H5T_NATIVE_DOUBLE_g",
    np.dtype(np.int64): "H5T_NATIVE_LLONG_g",
    np.dtype(np.int32): "H5T_NATIVE_INT_g",
}
_DEFAULT = 0  # H5P_DEFAULT, and H5S_ALL
_SCALAR = 0  # H5S_SCALAR
_READ_WRITE = 1  # H5F_ACC_RDWR


class _HDF5Library:
    """The few HDF5 C functions needed to add groups, datasets and attributes to a file."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        self._functions = {}
        for name, (args, result) in _SIGNATURES.items():
            function = getattr(lib, name)
            function.argtypes, function.restype = args, result
            self._functions[name] = function
        self.call("H5open")
        version = [ctypes.c_uint() for _ in range(3)]
        self.call("H5get_libversion", *(ctypes.byref(v) for v in version))
        if (version[0].value, version[1].value) < (1, 10):
            raise RuntimeError(f"HDF5 {version[0].value}.{version[1].value} < 1.10 at {path}")
        self.types = {
            dtype: _HID.in_dll(lib, symbol).value for dtype, symbol in _NATIVE_TYPES.items()
        }

    def call(self, name: str, *args: Any) -> int:
        """Call an HDF5 function; a negative result (an HDF5 error) raises RuntimeError."""
        result = self._functions[name](*args)
        if result < 0:
            raise RuntimeError(f"HDF5 {name} failed")
        return int(result)

    def native(self, data: npt.ArrayLike) -> tuple[np.ndarray, int]:
        """``data`` as a C-contiguous array of a supported type, and that type's HDF5 id."""
        data = np.asarray(data)
        data = np.ascontiguousarray(data, dtype=np.float64 if data.dtype.kind == "f" else None)
        if data.dtype not in self.types:
            raise TypeError(f"arrays of {data.dtype} are not supported")
        return data, self.types[data.dtype]

    def open(self, path: Path) -> _File:
        """Open an existing file for writing."""
        return _File(self, self.call("H5Fopen", str(path).encode(), _READ_WRITE, _DEFAULT))


class _File:
    """An HDF5 file open for writing (a context manager that closes it)."""

    def __init__(self, lib: _HDF5Library, fid: int) -> None:
        self.lib, self.fid = lib, fid

    def __enter__(self) -> _File:
        return self

    def __exit__(self, *exc: object) -> None:
        self.lib.call("H5Fclose", self.fid)

    def group(self, name: str) -> None:
        """Create the group ``name`` (an absolute path) unless it exists."""
        if self.lib.call("H5Lexists", self.fid, name.encode(), _DEFAULT) > 0:
            return
        gid = self.lib.call("H5Gcreate2", self.fid, name.encode(), _DEFAULT, _DEFAULT, _DEFAULT)
        self.lib.call("H5Gclose", gid)

    def dataset(self, name: str, data: npt.ArrayLike) -> None:
        """Create the dataset ``name`` holding ``data`` (float64, int64 or int32)."""
        data, dtype = self.lib.native(data)
        dims = (ctypes.c_uint64 * data.ndim)(*data.shape)
        space = self.lib.call("H5Screate_simple", data.ndim, dims, None)
        try:
            dset = self.lib.call(
                "H5Dcreate2", self.fid, name.encode(), dtype, space, _DEFAULT, _DEFAULT, _DEFAULT
            )
            try:
                self.lib.call(
                    "H5Dwrite", dset, dtype, _DEFAULT, _DEFAULT, _DEFAULT, data.ctypes.data
                )
            finally:
                self.lib.call("H5Dclose", dset)
        finally:
            self.lib.call("H5Sclose", space)

    def attribute(self, group: str, name: str, value: np.number) -> None:
        """Create the scalar attribute ``name`` of the group ``group``."""
        data, dtype = self.lib.native(value)
        gid = self.lib.call("H5Gopen2", self.fid, group.encode(), _DEFAULT)
        space = self.lib.call("H5Screate", _SCALAR)
        try:
            attr = self.lib.call("H5Acreate2", gid, name.encode(), dtype, space, _DEFAULT, _DEFAULT)
            try:
                self.lib.call("H5Awrite", attr, dtype, data.ctypes.data)
            finally:
                self.lib.call("H5Aclose", attr)
        finally:
            self.lib.call("H5Sclose", space)
            self.lib.call("H5Gclose", gid)


@functools.cache
def _hdf5() -> _HDF5Library:
    """The HDF5 library DOLFINx is linked against (found among the loaded libraries), or else
    the system's."""
    path = None
    maps = Path("/proc/self/maps")
    if maps.exists():
        loaded = (line.split()[-1] for line in maps.read_text().splitlines() if "/" in line)
        path = next((p for p in loaded if _LIBRARY.search(p)), None)
    path = path or ctypes.util.find_library("hdf5")
    if path is None:
        raise RuntimeError("no HDF5 library found for VTKHDF output")
    return _HDF5Library(path)
