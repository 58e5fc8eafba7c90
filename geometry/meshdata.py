"""A distributed mesh with its named regions and boundaries, and its persistence on disk.

Names are the API (``"film"``, ``"substrate"``, ``"top"``, ``"periodic_x_max"``); integer tags
stay inside geometry/. Region names in use:

- ``substrate``, ``cladding``, ``grating`` (homogenised grating layer), ``pillars`` and
  ``grating_fill`` (resolved grating: the film material fills around the pillars), ``film`` (the
  CQD layer above the pillar tops), ``cap``, ``cover`` (air above, optical meshes only).

Boundary names in use:

- ``top``, ``bottom`` (the heat sink), ``side`` (far sides), ``symmetry_x`` (plane x = 0),
  ``symmetry_y`` (plane y = 0), ``axis`` (r = 0), ``interface`` (the plane under the grating and
  film: top of the substrate or cladding), ``periodic_x_min``/``periodic_x_max`` and
  ``periodic_y_min``/``periodic_y_max`` (node-matched pairs).

On disk a mesh directory holds ``mesh.xdmf`` (+ .h5, with ``cell_tags`` and ``facet_tags``),
``mesh.vtkhdf`` (for VTK/pyvista: the cell tags as the cell array ``region``, and the field data
``region_<name>`` = tag), ``mesh.msh`` (Gmsh), ``markers.json`` (name -> [dim, tag]) and
``info.json`` (provenance).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

import dolfinx
import ufl
from dolfinx import fem
from dolfinx.io import XDMFFile

from cqdlaser.geometry import vtkhdf
from cqdlaser.geometry.errors import unknown_name

KINDS = ("stack", "cross-section", "cell", "quarter-cell", "device", "axisymmetric")


@dataclass(frozen=True)
class PeriodicPair:
    """Facets ``image`` are facets ``source`` translated by ``translation`` (m), node by node."""

    source: str
    image: str
    translation: tuple[float, ...]


@dataclass(frozen=True)
class MeshData:
    """A mesh (distributed over ``mesh.comm``), its cell and facet tags, and their names.

    ``z_levels`` maps the horizontal interfaces of the layer stack (``"film_top"``, ...) to their
    height (m); ``quality_min`` is Gmsh's minimum scaled-Jacobian element quality (1 for 1D).
    """

    mesh: dolfinx.mesh.Mesh
    cell_tags: dolfinx.mesh.MeshTags
    facet_tags: dolfinx.mesh.MeshTags
    regions: dict[str, int]
    boundaries: dict[str, int]
    kind: str
    periodic: tuple[PeriodicPair, ...] = ()
    z_levels: dict[str, float] = field(default_factory=dict)
    quality_min: float = 1.0

    @property
    def comm(self) -> MPI.Comm:
        """The mesh's communicator."""
        return self.mesh.comm

    @property
    def axisymmetric(self) -> bool:
        """True for r-z meshes (x[0] is the radius, x[1] the height)."""
        return self.kind == "axisymmetric"

    def region(self, name: str) -> int:
        """The cell tag of a region, or a KeyError listing the names there are."""
        if name not in self.regions:
            raise KeyError(str(unknown_name("region", name, self.regions)))
        return self.regions[name]

    def boundary(self, name: str) -> int:
        """The facet tag of a boundary, or a KeyError listing the names there are."""
        if name not in self.boundaries:
            raise KeyError(str(unknown_name("boundary", name, self.boundaries)))
        return self.boundaries[name]

    def dx(self, name: str | None = None) -> ufl.Measure | Any:
        """The cell measure, restricted to a region when ``name`` is given."""
        dx = ufl.Measure("dx", domain=self.mesh, subdomain_data=self.cell_tags)
        return dx if name is None else dx(self.region(name))

    def ds(self, name: str | None = None) -> ufl.Measure | Any:
        """The exterior facet measure, restricted to a boundary when ``name`` is given."""
        ds = ufl.Measure("ds", domain=self.mesh, subdomain_data=self.facet_tags)
        return ds if name is None else ds(self.boundary(name))

    def region_measures(self) -> dict[str, float]:
        """Length, area or volume of every region (m, m^2 or m^3 by dimension), global."""
        one = fem.Constant(self.mesh, dolfinx.default_scalar_type(1.0))
        out = {}
        for name in self.regions:
            local = fem.assemble_scalar(fem.form(one * self.dx(name)))
            out[name] = float(self.comm.allreduce(local, op=MPI.SUM))
        return out

    def counts(self) -> dict[str, int]:
        """Global numbers of cells and vertices."""
        tdim = self.mesh.topology.dim
        cells = self.mesh.topology.index_map(tdim).size_global
        vertices = self.mesh.topology.index_map(0).size_global
        return {"cells": int(cells), "vertices": int(vertices)}

    def untagged_cells(self) -> int:
        """Number of cells (global) that belong to no region: zero for a well-formed mesh."""
        tdim = self.mesh.topology.dim
        n_local = self.mesh.topology.index_map(tdim).size_local
        tagged = np.unique(self.cell_tags.indices[self.cell_tags.indices < n_local])
        return int(self.comm.allreduce(n_local - tagged.size, op=MPI.SUM))

    def markers(self) -> dict[str, list[int]]:
        """Name -> [dim, tag] for every region and boundary (the ``markers.json`` content)."""
        tdim = self.mesh.topology.dim
        out = {name: [tdim, tag] for name, tag in self.regions.items()}
        out.update({name: [tdim - 1, tag] for name, tag in self.boundaries.items()})
        return out


def write_mesh(data: MeshData, directory: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``mesh.xdmf`` with its tags, ``mesh.vtkhdf``, ``markers.json`` and ``info.json``
    into ``directory``.

    Collective. XDMF and VTKHDF go to a temporary name first and are renamed, so a crash leaves
    no truncated mesh; the JSON files are written by rank 0 only. ``mesh.vtkhdf`` opens with
    ``pyvista.read``: its cell array ``region`` holds the cell tags (names in ``markers.json``).
    """
    directory = Path(directory)
    comm = data.comm
    if comm.rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    tmp = directory / ".mesh.tmp.xdmf"
    with XDMFFile(comm, tmp, "w") as xdmf:
        data.mesh.name = "mesh"
        xdmf.write_mesh(data.mesh)
        data.cell_tags.name = "cell_tags"
        data.facet_tags.name = "facet_tags"
        data.mesh.topology.create_connectivity(data.mesh.topology.dim - 1, data.mesh.topology.dim)
        xdmf.write_meshtags(data.cell_tags, data.mesh.geometry)
        xdmf.write_meshtags(data.facet_tags, data.mesh.geometry)
    vtkhdf.write_vtkhdf(
        directory / "mesh.vtkhdf",
        data.mesh,
        **vtkhdf.region_data(data.mesh, data.cell_tags, data.regions),
    )
    comm.barrier()
    if comm.rank == 0:
        h5_tmp, h5 = tmp.with_suffix(".h5"), directory / "mesh.h5"
        text = tmp.read_text().replace(h5_tmp.name, h5.name)
        h5_tmp.replace(h5)
        _atomic_text(directory / "mesh.xdmf", text)
        tmp.unlink()
        meta = {
            "kind": data.kind,
            "markers": data.markers(),
            "periodic": [
                {"source": p.source, "image": p.image, "translation": list(p.translation)}
                for p in data.periodic
            ],
            "z_levels": data.z_levels,
            "quality_min": data.quality_min,
        }
        _atomic_text(directory / "markers.json", json.dumps(meta, indent=2))
        if info is not None:
            _atomic_text(directory / "info.json", json.dumps(info, indent=2, default=str))
    comm.barrier()
    return directory


def read_mesh(directory: str | Path, comm: MPI.Comm = MPI.COMM_WORLD) -> MeshData:
    """Read a mesh directory written by :func:`write_mesh`, distributed over ``comm``."""
    directory = Path(directory)
    meta = json.loads((directory / "markers.json").read_text())
    with XDMFFile(comm, directory / "mesh.xdmf", "r") as xdmf:
        msh = xdmf.read_mesh(name="mesh")
        tdim = msh.topology.dim
        msh.topology.create_connectivity(tdim - 1, tdim)
        cell_tags = xdmf.read_meshtags(msh, name="cell_tags")
        facet_tags = xdmf.read_meshtags(msh, name="facet_tags")
    regions = {n: t for n, (d, t) in meta["markers"].items() if d == tdim}
    boundaries = {n: t for n, (d, t) in meta["markers"].items() if d == tdim - 1}
    periodic = tuple(
        PeriodicPair(p["source"], p["image"], tuple(p["translation"])) for p in meta["periodic"]
    )
    return MeshData(
        msh,
        cell_tags,
        facet_tags,
        regions,
        boundaries,
        meta["kind"],
        periodic,
        meta["z_levels"],
        meta["quality_min"],
    )


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
