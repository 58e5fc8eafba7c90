"""Field files of the studies: VTX (``.bp``) for ParaView and VTKHDF (``.vtkhdf``) for VTK/pyvista.

Every field file is written twice, side by side and under the same array names: ``NAME.bp`` (a
VTX folder: ParaView's ADIOS2VTXReader, the field at its own element's nodes) and
``NAME.vtkhdf`` (one HDF5 file that VTK reads: ParaView >= 5.12, ``pyvista.read``). Both are
written collectively by all ranks, to a temporary name first; rank 0 renames them when complete,
so a crash never leaves a truncated file, and an interrupted series (an error or Ctrl-C inside
its ``with`` block, or :meth:`FieldSeries.abort`) keeps its temporary name.

Array names:

- ``mesh/mesh.vtkhdf`` (``cqdlaser mesh``): cell array ``region``, the cell tag of each cell.
- ``heat/temperature.*`` (``cqdlaser heat``): point array ``temperature`` (K), one time step per
  snapshot at its time (s); ``steady_temperature.*`` (``--steady``): ``temperature`` (K).
- ``band_edges.*`` (``cqdlaser bands``): ``band_edge_0``, ``band_edge_1``, ... in the order of
  ``band_edges`` in the JSON (the mode field, max |u| = 1), with the field data
  ``band_edge_<i>_wavelength_nm``; for ``--kind vector`` the quarter cell's complex E as
  ``band_edge_<i>_re`` and ``band_edge_<i>_im`` (vectors, peak |E| about 1), with
  ``band_edge_<i>_wavelength_nm`` and ``band_edge_<i>_q_factor``.
- stack modes (:func:`write_mode_fields`): ``TE0``, ``TE1``, ``TM0``, ... (polarisation and
  order; ``E_y`` for TE, ``H_y`` for TM, max = 1), with the field data ``<name>_n_eff``.

Every ``.vtkhdf`` written with a mesh's tags also has the cell array ``region`` and the field data
``region_<name>`` (that region's tag, as in the mesh directory's ``markers.json``), so a region is
``grid.extract_cells(grid["region"] == grid.field_data["region_film"][0])``. VTKHDF points are the
mesh's geometry nodes (the vertices): a P2 field is stored by its values there (the ``.bp`` keeps
the P2 nodes).

Opening the files. ParaView: open the ``.bp`` folder with the ADIOS2VTXReader, or the ``.vtkhdf``
file directly. Python::

    import pyvista
    grid = pyvista.read("heat/temperature.vtkhdf")  # first time step
    grid["temperature"].max(), grid.field_data["Time"]
    reader = pyvista.get_reader("heat/temperature.vtkhdf")
    for step in range(reader.reader.GetNumberOfSteps()):
        reader.reader.SetStep(step)
        grid = reader.read()  # grid.field_data["Time"][0] is the time (s)
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from dolfinx import fem
from dolfinx.io import VTXWriter

from cqdlaser.geometry import vtkhdf
from cqdlaser.geometry.meshdata import MeshData

if TYPE_CHECKING:
    from cqdlaser.physics.bands import BandEdge
    from cqdlaser.physics.modes import Mode
    from cqdlaser.physics.vector_bands import VectorBandEdge

__all__ = [
    "FieldSeries",
    "write_band_edge_fields",
    "write_fields",
    "write_mesh_vtkhdf",
    "write_mode_fields",
]

_SUFFIXES = (".bp", ".vtkhdf")


def write_mesh_vtkhdf(path: str | Path, mesh_data: MeshData) -> Path:
    """Write a mesh with its cell tags as the cell array ``region`` (collective).

    Args:
        path: The ``.vtkhdf`` file.
        mesh_data: The mesh and its regions.

    Returns:
        The path written.
    """
    return vtkhdf.write_vtkhdf(
        path,
        mesh_data.mesh,
        **vtkhdf.region_data(mesh_data.mesh, mesh_data.cell_tags, mesh_data.regions),
    )


def write_fields(
    path: str | Path,
    fields: Mapping[str, fem.Function],
    *,
    mesh_data: MeshData | None = None,
    field_data: Mapping[str, float] | None = None,
    t: float = 0.0,
) -> tuple[Path, Path]:
    """Write named fields of one state to ``path.bp`` and ``path.vtkhdf`` (collective).

    Args:
        path: The files' path, without suffix (a ``.bp`` or ``.vtkhdf`` suffix is dropped).
        fields: Array name -> function; all on one mesh and, for VTX, of one element.
        mesh_data: The functions' mesh with its tags: adds ``region`` (see the module docstring).
        field_data: Name -> number stored with the VTKHDF data set (a wavelength, an index).
        t: Time stamp of the VTX step (the VTKHDF file is static).

    Returns:
        The ``.bp`` folder and the ``.vtkhdf`` file.
    """
    named = _named_copies(fields)
    stem = _stem(path)
    msh = _mesh(named, mesh_data)
    with _VTX(_suffixed(stem, ".bp"), named) as writer:
        writer.write(t)
    point_data = {name: [vtkhdf.gather_point_values(u)] for name, u in named.items()}
    target = vtkhdf.write_vtkhdf(
        _suffixed(stem, ".vtkhdf"),
        msh,
        point_data=point_data,
        **_described(mesh_data, field_data),
    )
    return _suffixed(stem, ".bp"), target


class FieldSeries:
    """Snapshots of named fields over time into ``path.bp`` and ``path.vtkhdf`` (collective).

    A context manager: ``write(t)`` stores the functions' current values as the step at time
    ``t`` (s); ``close()`` (on leaving the ``with`` block) completes both files and renames them
    from their temporary names. The VTKHDF steps are kept on rank 0 until then (global values at
    the mesh's nodes, a few arrays per snapshot). The functions are renamed to their keys.

    Args:
        path: The files' path, without suffix (a ``.bp`` or ``.vtkhdf`` suffix is dropped).
        fields: Array name -> function, all on one mesh and of one element.
        mesh_data: The functions' mesh with its tags: adds ``region`` (see the module docstring).
    """

    def __init__(
        self,
        path: str | Path,
        fields: Mapping[str, fem.Function],
        *,
        mesh_data: MeshData | None = None,
    ) -> None:
        self.fields = dict(fields)
        for name, u in self.fields.items():
            u.name = name
        self.path = _stem(path)
        self.mesh = _mesh(self.fields, mesh_data)
        self.mesh_data = mesh_data
        self.times: list[float] = []
        self._steps: dict[str, list[np.ndarray | None]] = {name: [] for name in self.fields}
        self._vtx: _VTX | None = _VTX(_suffixed(self.path, ".bp"), self.fields)

    def write(self, t: float) -> None:
        """Store the current values of the fields as the step at time ``t`` (s)."""
        if self._vtx is None:
            raise RuntimeError(f"field series {self.path} is closed")
        self._vtx.write(t)
        for name, u in self.fields.items():
            self._steps[name].append(vtkhdf.gather_point_values(u))
        self.times.append(float(t))

    def close(self) -> None:
        """Complete and rename both files (once; later calls do nothing)."""
        if self._vtx is None:
            return
        self._vtx.close()
        self._vtx = None
        vtkhdf.write_vtkhdf(
            _suffixed(self.path, ".vtkhdf"),
            self.mesh,
            point_data=self._steps if self.times else None,
            times=self.times,
            **_described(self.mesh_data, None),
        )
        self._steps = {}

    def abort(self) -> None:
        """Stop without completing: the VTX folder keeps its temporary name and no VTKHDF file
        is written, so an interrupted series never appears under its final name."""
        if self._vtx is None:
            return
        self._vtx.close(publish=False)
        self._vtx = None
        self._steps = {}

    def __enter__(self) -> FieldSeries:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_band_edge_fields(
    path: str | Path, edges: Sequence[BandEdge], mesh_data: MeshData | None = None
) -> tuple[Path, Path]:
    """Write band-edge modes as ``band_edge_<i>`` with ``band_edge_<i>_wavelength_nm`` (collective).

    Args:
        path: The files' path, without suffix (``band_edges``).
        edges: Band edges of one :func:`~cqdlaser.physics.bands.band_edges` call.
        mesh_data: The mesh they were computed on (adds ``region``).

    Returns:
        The ``.bp`` folder and the ``.vtkhdf`` file.
    """
    if not edges:
        raise ValueError("no band edges to write")
    names = [f"band_edge_{i}" for i in range(len(edges))]
    return write_fields(
        path,
        {name: edge.field for name, edge in zip(names, edges, strict=True)},
        mesh_data=mesh_data,
        field_data={
            f"{name}_wavelength_nm": edge.wavelength * 1e9
            for name, edge in zip(names, edges, strict=True)
        },
    )


def write_vector_band_edge_fields(
    path: str | Path, edges: Sequence[VectorBandEdge], mesh_data: MeshData | None = None
) -> tuple[Path, Path]:
    """Write full-vector band-edge modes as ``band_edge_<i>_re`` and ``band_edge_<i>_im`` (the
    real and imaginary parts of E on the quarter cell, discontinuous P2 vectors in the ``.bp``),
    with ``band_edge_<i>_wavelength_nm`` and ``band_edge_<i>_q_factor`` (collective).

    Args:
        path: The files' path, without suffix (``band_edges``).
        edges: Band edges of one :func:`~cqdlaser.physics.vector_bands.vector_band_edges` call.
        mesh_data: The quarter-cell mesh (adds ``region``).

    Returns:
        The ``.bp`` folder and the ``.vtkhdf`` file.
    """
    if not edges:
        raise ValueError("no band edges to write")
    msh = edges[0].field_re.function_space.mesh
    degree = edges[0].field_re.function_space.ufl_element().embedded_superdegree
    space = fem.functionspace(msh, ("Discontinuous Lagrange", degree, (msh.geometry.dim,)))
    fields: dict[str, fem.Function] = {}
    data: dict[str, float] = {}
    for i, edge in enumerate(edges):
        for part, source in (("re", edge.field_re), ("im", edge.field_im)):
            f = fem.Function(space)
            f.interpolate(source)
            fields[f"band_edge_{i}_{part}"] = f
        data[f"band_edge_{i}_wavelength_nm"] = edge.wavelength * 1e9
        data[f"band_edge_{i}_q_factor"] = edge.q_factor
    return write_fields(path, fields, mesh_data=mesh_data, field_data=data)


def write_mode_fields(
    path: str | Path, modes: Sequence[Mode], mesh_data: MeshData | None = None
) -> tuple[Path, Path]:
    """Write layer-stack modes as ``TE0``, ``TM1``, ... with ``<name>_n_eff`` (collective).

    Args:
        path: The files' path, without suffix (``modes``).
        modes: Modes of :func:`~cqdlaser.physics.modes.stack_modes` on one mesh (TE and TM may
            be mixed; each name is polarisation + order, so the pairs must be distinct).
        mesh_data: The stack mesh they were computed on (adds ``region``).

    Returns:
        The ``.bp`` folder and the ``.vtkhdf`` file.
    """
    if not modes:
        raise ValueError("no modes to write")
    fields = {f"{m.polarisation}{m.order}": m.field for m in modes}
    if len(fields) != len(modes):
        raise ValueError(f"modes with the same polarisation and order: {sorted(fields)}")
    return write_fields(
        path,
        fields,
        mesh_data=mesh_data,
        field_data={f"{m.polarisation}{m.order}_n_eff": m.n_eff for m in modes},
    )


class _VTX:
    """A VTX writer on a temporary folder, renamed to ``path`` by rank 0 on ``close()``."""

    def __init__(self, path: Path, fields: Mapping[str, fem.Function]) -> None:
        functions = list(fields.values())
        self.comm = functions[0].function_space.mesh.comm
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        if self.comm.rank == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.comm.barrier()
        self.writer = VTXWriter(self.comm, self.tmp, functions, engine="BP4")

    def write(self, t: float) -> None:
        self.writer.write(t)

    def close(self, *, publish: bool = True) -> None:
        """Close the writer; with ``publish``, rename the folder to its final name."""
        self.writer.close()
        self.comm.barrier()
        if self.comm.rank == 0 and publish:
            shutil.rmtree(self.path, ignore_errors=True)
            self.tmp.replace(self.path)
        self.comm.barrier()

    def __enter__(self) -> _VTX:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(publish=exc_type is None)


def _stem(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in _SUFFIXES else path


def _suffixed(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)


def _named_copies(fields: Mapping[str, fem.Function]) -> dict[str, fem.Function]:
    """Copies of the functions, named by their keys (the callers' functions keep their names)."""
    named = {}
    for name, u in fields.items():
        copy = u.copy()
        copy.name = name
        named[name] = copy
    return named


def _mesh(fields: Mapping[str, fem.Function], mesh_data: MeshData | None) -> Any:
    if not fields:
        raise ValueError("no fields to write")
    meshes = {id(u.function_space.mesh) for u in fields.values()}
    msh = next(iter(fields.values())).function_space.mesh
    if len(meshes) > 1 or (mesh_data is not None and mesh_data.mesh is not msh):
        raise ValueError(f"fields {sorted(fields)} must live on one mesh (that of mesh_data)")
    return msh


def _described(
    mesh_data: MeshData | None, field_data: Mapping[str, float] | None
) -> dict[str, dict[str, Any]]:
    """``cell_data`` (``region``) and ``field_data`` keyword arguments of the VTKHDF file."""
    described: dict[str, dict[str, Any]] = {"cell_data": {}, "field_data": dict(field_data or {})}
    if mesh_data is not None:
        regions = vtkhdf.region_data(mesh_data.mesh, mesh_data.cell_tags, mesh_data.regions)
        described["cell_data"].update(regions["cell_data"])
        described["field_data"].update(regions["field_data"])
    return described
