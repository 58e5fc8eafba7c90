"""A quarter of the square lattice's unit cell, x, y in [0, Λ/2], open above and below: the mesh
of the full-vector band edges at the Gamma point.

The unit cell (one pillar at the centre of [-Λ/2, Λ/2]^2) is symmetric under the mirrors
x -> -x and y -> -y, and at the Gamma point a Bloch mode is periodic, so a mode of definite
parity under a mirror through the pillar has the same parity under the parallel mirror through
the cell's edge. Every Gamma-point mode is therefore a mode of this quarter cell with, on the
planes x = 0 and x = Λ/2 alike (and on y = 0 and y = Λ/2 alike), either a perfect electric or a
perfect magnetic wall (:mod:`physics.vector_bands`): a quarter of the unknowns, no periodic
constraint, and the symmetry class of each mode by construction.

The layers are those of :func:`geometry.cross_section.optical_layers` with the perfectly matched
layers (``pml=True``): the substrate and the air ``cover`` reach ``mesh.optical_padding_um`` plus
``mesh.pml_thickness_um`` beyond the guiding layers. Sizes follow :mod:`geometry.cell`, times
:data:`SIZE_FACTOR`; the pillar is a quarter cylinder whose arc is a quarter of the cell's
polygon.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from mpi4py import MPI

from cqdlaser.geometry._gmsh import gmsh_model, to_mesh_data
from cqdlaser.geometry.cell import set_cell_sizes
from cqdlaser.geometry.cross_section import (
    REGION_ORDER,
    UNIT,
    circle_segments,
    grating_extent,
    layer_elements,
    optical_layers,
    pillar_elements,
    pml_levels,
    require_grating,
    scale_to_si,
    set_layer_curve,
)
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.layers import Layer, z_levels
from cqdlaser.geometry.meshdata import MeshData

SIZE_FACTOR = 2.0
"""The quarter cell's element sizes are this times those of the other optical meshes (at the
same ``mesh.scale``): its degree-2 Nedelec elements meet 0.1 nm in wavelength and 5 % in Q there
on the paper device (benchmarks/bench_bands_vector.py), at an eighth of the unknowns."""

SIDES = ("x_centre", "x_edge", "y_centre", "y_edge")
"""The vertical walls of the quarter cell: x = 0 and x = Λ/2, y = 0 and y = Λ/2."""


def build_quarter_cell(
    device: Device, comm: MPI.Comm = MPI.COMM_WORLD, *, msh_file: str | None = None
) -> MeshData:
    """Mesh the quarter cell x, y in [0, Λ/2] (m) of the open optical stack.

    Args:
        device: The device description; it must have a [grating].
        comm: Communicator the mesh is distributed over (Gmsh runs on its rank 0).
        msh_file: Also write the Gmsh mesh to this file.

    Returns:
        The mesh, kind ``"quarter-cell"``, with the regions of the optical ``cell`` mesh;
        boundaries ``top``, ``bottom`` and the walls :data:`SIDES`; ``z_levels`` of the layers
        and ``pml_bottom``, ``pml_top`` (:func:`geometry.cross_section.pml_levels`).

    Raises:
        ConfigError: The device has no grating.
    """
    require_grating(device, "quarter-cell")
    device = dataclasses.replace(
        device, mesh=dataclasses.replace(device.mesh, scale=SIZE_FACTOR * device.mesh.scale)
    )
    layers = optical_layers(device, pml=True)
    with gmsh_model(comm, "quarter-cell") as model:
        if model is not None:
            _mesh_quarter_cell(model, device, layers)
        return to_mesh_data(
            model,
            comm,
            gdim=3,
            kind="quarter-cell",
            z_levels=z_levels(layers) | pml_levels(device),
            msh_file=msh_file,
        )


def _mesh_quarter_cell(model: Any, device: Device, layers: tuple[Layer, ...]) -> None:
    """Build, tag and mesh the quarter cell on ``gmsh.model`` (rank 0), in micrometres, then
    scale to m."""
    half = 0.5 * require_grating(device, "quarter-cell").period / UNIT
    tol = 1e-4 * half  # OpenCASCADE bounding boxes carry a margin of about 1e-7 model units
    pieces, pillar_tags = _regions(model, device, layers)
    sides = _sides(model, layers, half, tol)
    for name, faces in sides.items():
        model.addPhysicalGroup(2, faces, name=name)
    _set_wall_curves(model, device, layers, half, tol)
    _set_pillar_curves(model, device, layers, pillar_tags, tol)
    set_cell_sizes(model, device, layers, pieces)
    model.mesh.generate(3)
    scale_to_si(model)


def _regions(
    model: Any, device: Device, layers: tuple[Layer, ...]
) -> tuple[dict[str, list[int]], list[int]]:
    """One box per layer, fragmented by the quarter pillar, tagged by region name.

    Returns:
        The volume tags of each region, and those of the pillar.
    """
    grating = require_grating(device, "quarter-cell")
    half = 0.5 * grating.period / UNIT
    radius = grating.pillar_radius / UNIT
    occ = model.occ
    boxes = {
        la.name: occ.addBox(0.0, 0.0, la.z_bottom / UNIT, half, half, la.thickness / UNIT)
        for la in layers
    }
    zg0, zg1 = grating_extent(layers)
    cylinder = occ.addCylinder(0.0, 0.0, zg0, 0.0, 0.0, zg1 - zg0, radius)
    clip = occ.addBox(0.0, 0.0, zg0, radius, radius, zg1 - zg0)
    quarter, _ = occ.intersect([(3, cylinder)], [(3, clip)])
    _, children = occ.fragment([(3, t) for t in boxes.values()], quarter)
    occ.synchronize()

    pieces = {name: [t for _, t in kids] for name, kids in zip(boxes, children, strict=False)}
    pillar_tags = [t for _, t in children[-1]]
    pieces["grating_fill"] = [t for t in pieces.pop("grating") if t not in pillar_tags]
    pieces["pillars"] = pillar_tags
    for name in REGION_ORDER:
        if name in pieces:
            model.addPhysicalGroup(3, pieces[name], name=name)
    return pieces, pillar_tags


def _sides(model: Any, layers: tuple[Layer, ...], half: float, tol: float) -> dict[str, list[int]]:
    """The outer faces by side (``bottom``, ``top`` and :data:`SIDES`), by bounding box."""
    z_bot = layers[0].z_bottom / UNIT
    outer = model.getBoundary(model.getEntities(3), combined=True, oriented=False)
    sides: dict[str, list[int]] = {k: [] for k in ("bottom", "top", *SIDES)}
    for _, tag in outer:
        x0, y0, z0, x1, y1, z1 = model.getBoundingBox(2, abs(tag))
        if abs(z1 - z0) < tol:
            sides["bottom" if abs(z0 - z_bot) < tol else "top"].append(abs(tag))
        elif abs(x1 - x0) < tol:
            sides["x_centre" if abs(x0) < tol else "x_edge"].append(abs(tag))
        elif abs(y1 - y0) < tol:
            sides["y_centre" if abs(y0) < tol else "y_edge"].append(abs(tag))
    missing = [name for name, faces in sides.items() if not faces]
    if missing:
        raise RuntimeError(f"quarter cell: no outer faces found for {missing}")
    return sides


def _set_wall_curves(
    model: Any, device: Device, layers: tuple[Layer, ...], half: float, tol: float
) -> None:
    """The vertical edges where two walls meet: exactly the layer's number of elements across
    its thickness."""
    for _, tag in model.getEntities(1):
        x0, y0, z0, x1, y1, z1 = model.getBoundingBox(1, tag)
        on_x = min(abs(x0), abs(x0 - half)) < tol
        on_y = min(abs(y0), abs(y0 - half)) < tol
        if on_x and on_y and abs(x1 - x0) < tol and abs(y1 - y0) < tol:
            zc = 0.5 * (z0 + z1) * UNIT
            layer = next(la for la in layers if la.z_bottom < zc < la.z_top)
            set_layer_curve(model, tag, device, layer, axis=2)


def _set_pillar_curves(
    model: Any, device: Device, layers: tuple[Layer, ...], pillar_tags: list[int], tol: float
) -> None:
    """The pillar's arcs get a quarter of :func:`circle_segments`, its radii half of
    :func:`pillar_elements`, its vertical edges the grating layer's element count."""
    n_grating = layer_elements(device, next(la for la in layers if la.name == "grating"))
    n_arc = math.ceil(circle_segments(device) / 4)
    n_radius = math.ceil(pillar_elements(device) / 2)
    faces = model.getBoundary([(3, t) for t in pillar_tags], oriented=False)
    curves = model.getBoundary(faces, combined=False, oriented=False)
    for tag in sorted({abs(t) for _, t in curves}):
        x0, y0, z0, x1, y1, z1 = model.getBoundingBox(1, tag)
        if abs(z1 - z0) > tol:
            n = n_grating
        elif abs(x1 - x0) < tol or abs(y1 - y0) < tol:
            n = n_radius
        else:
            n = n_arc
        model.mesh.setTransfiniteCurve(tag, n + 1)
