"""The 3D unit cell of the square DFB lattice: one cylindrical pillar at the centre of
x, y in [-Λ/2, Λ/2] (Λ the period), periodic in x and in y.

``optical=True`` meshes the whole optical stack (substrate truncated ``mesh.optical_padding_um``
below z = 0, air ``cover`` of that thickness above the top layer) for the band-edge modes at the
Gamma point; ``optical=False`` only the grating layer (pillars and the film around them), the cell
problem whose solution homogenises the grating layer's thermal conductivity.

The pillar's circular edges are regular polygons of :func:`geometry.cross_section.circle_segments`
sides; a regular N-gon inscribed in a circle of radius r has area (N/2) r^2 sin(2π/N), which
falls short of π r^2 by about (2π/N)^2/6 relative. Sizes follow :mod:`geometry.cross_section`.
"""

from __future__ import annotations

from typing import Any

from mpi4py import MPI

from cqdlaser.geometry._gmsh import gmsh_model, to_mesh_data
from cqdlaser.geometry.cross_section import (
    CORE_LAYERS,
    REGION_ORDER,
    UNIT,
    circle_segments,
    grating_extent,
    layer_elements,
    layer_size_expression,
    max_element_size,
    optical_layers,
    pillar_elements,
    require_grating,
    scale_to_si,
    set_layer_curve,
    set_size_field,
    translation,
)
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.layers import Layer, layer_stack, z_levels
from cqdlaser.geometry.meshdata import MeshData, PeriodicPair


def build_cell(
    device: Device,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    optical: bool = True,
    msh_file: str | None = None,
) -> MeshData:
    """Mesh the unit cell of the square lattice (x, y, z in m), periodic in x and y.

    Args:
        device: The device description; it must have a [grating].
        comm: Communicator the mesh is distributed over (Gmsh runs on its rank 0).
        optical: The whole truncated optical stack (True), or the grating layer only (False).
        msh_file: Also write the Gmsh mesh to this file.

    Returns:
        The mesh, kind ``"cell"``, with regions ``pillars`` and ``grating_fill`` and, if optical,
        ``substrate``, ``cladding`` (if any), ``film``, ``cap`` (if any) and ``cover``; boundaries
        ``top``, ``bottom``, ``periodic_x_min``/``periodic_x_max`` and
        ``periodic_y_min``/``periodic_y_max`` (node-matched: each max face is its min face
        translated by one period).

    Raises:
        ConfigError: The device has no grating.
    """
    grating = require_grating(device, "cell")
    if optical:
        layers = optical_layers(device)
    else:
        layers = tuple(la for la in layer_stack(device) if la.name == "grating")
    period = grating.period
    with gmsh_model(comm, "cell") as model:
        if model is not None:
            _mesh_cell(model, device, layers)
        return to_mesh_data(
            model,
            comm,
            gdim=3,
            kind="cell",
            periodic=(
                PeriodicPair("periodic_x_min", "periodic_x_max", (period, 0.0, 0.0)),
                PeriodicPair("periodic_y_min", "periodic_y_max", (0.0, period, 0.0)),
            ),
            z_levels=z_levels(layers),
            msh_file=msh_file,
        )


def _mesh_cell(model: Any, device: Device, layers: tuple[Layer, ...]) -> None:
    """Build, tag and mesh the cell on ``gmsh.model`` (rank 0), in micrometres, then scale to m."""
    period = require_grating(device, "cell").period / UNIT
    tol = 1e-6 * period
    pieces, pillar_tags = _cell_regions(model, device, layers)
    sides = _cell_sides(model, layers, tol)
    mesh = model.mesh
    mesh.setPeriodic(2, sides["x_max"], sides["x_min"], translation(period, 0.0, 0.0))
    mesh.setPeriodic(2, sides["y_max"], sides["y_min"], translation(0.0, period, 0.0))
    for name, side in (
        ("bottom", "bottom"),
        ("top", "top"),
        ("periodic_x_min", "x_min"),
        ("periodic_x_max", "x_max"),
        ("periodic_y_min", "y_min"),
        ("periodic_y_max", "y_max"),
    ):
        model.addPhysicalGroup(2, sides[side], name=name)
    _set_corner_curves(model, device, layers, tol)
    _set_pillar_curves(model, device, layers, pillar_tags, tol)
    set_cell_sizes(model, device, layers, pieces)
    mesh.generate(3)
    scale_to_si(model)


def _cell_regions(
    model: Any, device: Device, layers: tuple[Layer, ...]
) -> tuple[dict[str, list[int]], list[int]]:
    """One box per layer, fragmented by the pillar's cylinder, tagged by region name.

    Returns:
        The volume tags of each region, and those of the pillar.
    """
    grating = require_grating(device, "cell")
    period = grating.period / UNIT
    half = 0.5 * period
    radius = grating.pillar_radius / UNIT
    occ = model.occ
    boxes = {
        la.name: occ.addBox(-half, -half, la.z_bottom / UNIT, period, period, la.thickness / UNIT)
        for la in layers
    }
    zg0, zg1 = grating_extent(layers)
    cylinder = occ.addCylinder(0.0, 0.0, zg0, 0.0, 0.0, zg1 - zg0, radius)
    _, children = occ.fragment([(3, t) for t in boxes.values()], [(3, cylinder)])
    occ.synchronize()

    pieces = {name: [t for _, t in kids] for name, kids in zip(boxes, children, strict=False)}
    pillar_tags = [t for _, t in children[-1]]
    pieces["grating_fill"] = [t for t in pieces.pop("grating") if t not in pillar_tags]
    pieces["pillars"] = pillar_tags
    for name in REGION_ORDER:
        if name in pieces:
            model.addPhysicalGroup(3, pieces[name], name=name)
    return pieces, pillar_tags


def _cell_sides(model: Any, layers: tuple[Layer, ...], tol: float) -> dict[str, list[int]]:
    """The outer faces of the cell by side (``bottom``, ``top``, ``x_min`` ... ``y_max``),
    found by their bounding boxes; the vertical sides ordered by height."""
    z_bot = layers[0].z_bottom / UNIT
    outer = model.getBoundary(model.getEntities(3), combined=True, oriented=False)
    sides: dict[str, list[int]] = {
        k: [] for k in ("bottom", "top", "x_min", "x_max", "y_min", "y_max")
    }
    for _, tag in outer:
        x0, y0, z0, x1, _, z1 = model.getBoundingBox(2, abs(tag))
        if abs(z1 - z0) < tol:
            sides["bottom" if abs(z0 - z_bot) < tol else "top"].append(abs(tag))
        elif abs(x1 - x0) < tol:
            sides["x_min" if x0 < 0 else "x_max"].append(abs(tag))
        else:
            sides["y_min" if y0 < 0 else "y_max"].append(abs(tag))
    for side in ("x_min", "x_max", "y_min", "y_max"):
        sides[side].sort(key=lambda t: model.occ.getCenterOfMass(2, t)[2])
    return sides


def _set_corner_curves(model: Any, device: Device, layers: tuple[Layer, ...], tol: float) -> None:
    """The vertical edges at the corners: exactly the layer's number of elements across its
    thickness."""
    half = 0.5 * require_grating(device, "cell").period / UNIT
    for _, tag in model.getEntities(1):
        x0, y0, z0, x1, y1, z1 = model.getBoundingBox(1, tag)
        corner = abs(abs(x0) - half) < tol and abs(abs(y0) - half) < tol
        if corner and abs(x1 - x0) < tol and abs(y1 - y0) < tol:
            zc = 0.5 * (z0 + z1) * UNIT
            layer = next(la for la in layers if la.z_bottom < zc < la.z_top)
            set_layer_curve(model, tag, device, layer, axis=2)


def _set_pillar_curves(
    model: Any, device: Device, layers: tuple[Layer, ...], pillar_tags: list[int], tol: float
) -> None:
    """The pillar's circles become regular polygons of :func:`circle_segments` sides; its seam
    line gets the grating layer's element count."""
    n_grating = layer_elements(device, next(la for la in layers if la.name == "grating"))
    pillar_faces = model.getBoundary([(3, t) for t in pillar_tags], oriented=False)
    pillar_curves = model.getBoundary(pillar_faces, combined=False, oriented=False)
    for tag in sorted({abs(t) for _, t in pillar_curves}):
        _, _, z0, _, _, z1 = model.getBoundingBox(1, tag)
        flat = abs(z1 - z0) < tol
        n = circle_segments(device) if flat else n_grating
        model.mesh.setTransfiniteCurve(tag, n + 1)


def set_cell_sizes(
    model: Any, device: Device, layers: tuple[Layer, ...], pieces: dict[str, list[int]]
) -> None:
    """Uniform sizes in the guiding layers and around the pillar (centred at x = y = 0), graded
    sizes elsewhere; ``pieces``: each layer's volume tags. Also the quarter cell's."""
    grating = require_grating(device, "cell")
    period = grating.period / UNIT
    radius = grating.pillar_radius / UNIT
    far = 2.0 * period
    size_boxes = [
        (
            (-far, -far, la.z_bottom / UNIT),
            (far, far, la.z_top / UNIT),
            la.thickness / UNIT / layer_elements(device, la),
        )
        for la in layers
        if la.name in CORE_LAYERS
    ]
    zg0, zg1 = grating_extent(layers)
    h_pillar = 2.0 * radius / pillar_elements(device)
    reach = radius + h_pillar
    size_boxes.append(((-reach, -reach, zg0), (reach, reach, zg1), h_pillar))
    graded = [
        (layer_size_expression(device, la, "z"), 3, pieces[la.name])
        for la in layers
        if la.name not in CORE_LAYERS
    ]
    set_size_field(model, size_boxes, max_element_size(device) / UNIT, graded=graded)
