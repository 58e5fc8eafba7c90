"""The 2D DFB cross-section (x-z) through a row of pillars, one lattice period wide, with periodic
x faces; and the sizing rules it shares with the 3D unit cell (:mod:`geometry.cell`).

The section spans x in [-Λ/2, Λ/2] (Λ the period), the pillar (a rectangle of the pillar's diameter
and height) centred at x = 0, and z (x[1]) from ``mesh.optical_padding_um`` below the substrate top
to the same distance above the top layer (an air ``cover``), as the optical layer stack.

Sizes (all scale with ``mesh.scale``): the layers ``substrate`` and ``cover`` take
h = :func:`geometry.stack.optical_element_size`; every thin layer (cladding, grating, film,
cap) at least ``mesh.film_elements`` elements across its thickness
(:func:`geometry.stack.thin_layer_elements`); the pillar at least ``mesh.pillar_elements``
across its diameter. The vertical edges on the periodic faces carry exactly that many elements
per layer.

Gmsh's OpenCASCADE kernel works with an absolute tolerance of about 1e-7 model units, so the model
is built in micrometres and the mesh nodes are scaled to metres before DOLFINx takes the mesh
(the periodic transforms recorded in a written ``.msh`` file stay in micrometres).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mpi4py import MPI

from geometry._gmsh import gmsh_model, to_mesh_data
from geometry.device import Device, Grating
from geometry.errors import ConfigError
from geometry.layers import Layer, layer_stack, z_levels
from geometry.meshdata import MeshData, PeriodicPair
from geometry.stack import film_element_size, optical_element_size, thin_layer_elements

UNIT = 1e-6
"""Length of one Gmsh model unit (m): the OpenCASCADE models are built in micrometres."""

BULK_LAYERS = ("substrate", "cover")
REGION_ORDER = ("substrate", "cladding", "pillars", "grating_fill", "film", "cap", "cover")


def require_grating(device: Device, kind: str) -> Grating:
    """The device's grating, or a ConfigError for mesh kinds that need one."""
    if device.grating is None:
        raise ConfigError("grating", None, f"the {kind} mesh needs a [grating] section")
    return device.grating


def optical_layers(device: Device) -> tuple[Layer, ...]:
    """The layer stack truncated for optics: the substrate cut ``mesh.optical_padding_um`` below
    z = 0 and an air ``cover`` of the same thickness on top (as the optical 1D stack)."""
    layers = list(layer_stack(device))
    pad = device.mesh.optical_padding_um * 1e-6
    sub = layers[0]
    layers[0] = Layer(sub.name, sub.material, -pad, sub.z_top)
    layers.append(Layer("cover", "air", layers[-1].z_top, layers[-1].z_top + pad))
    return tuple(layers)


def layer_elements(device: Device, layer: Layer) -> int:
    """Elements across ``layer``'s thickness: sized by :func:`optical_element_size` in the bulk
    (substrate, cover), by the finer of that and the film's element size in the thin layers, and in
    both at least ``mesh.film_elements`` (the rule of :func:`geometry.stack.build_stack`)."""
    h = optical_element_size(device)
    if layer.name not in BULK_LAYERS:
        h = min(h, film_element_size(device))
    return thin_layer_elements(device, layer.thickness, h)


def pillar_elements(device: Device) -> int:
    """Elements across the pillar diameter: at least ``mesh.pillar_elements``, and no larger than
    the bulk optical size or the grating layer's element height."""
    grating = require_grating(device, "pillar-resolving")
    d = 2.0 * grating.pillar_radius
    layer = Layer("grating", grating.material, 0.0, grating.pillar_height)
    target = min(
        optical_element_size(device),
        grating.pillar_height / layer_elements(device, layer),
        device.mesh.scale * d / device.mesh.pillar_elements,
    )
    return max(device.mesh.pillar_elements, math.ceil(d / target - 1e-9))


def circle_segments(device: Device) -> int:
    """Segments of the polygon that meshes the pillar's circular edges: its chord is the pillar's
    element size (diameter / :func:`pillar_elements`)."""
    return max(8, math.ceil(math.pi * pillar_elements(device) - 1e-9))


def translation(dx: float, dy: float = 0.0, dz: float = 0.0) -> list[float]:
    """The 4x4 affine matrix (16 entries by row) of a translation, for ``setPeriodic``."""
    return [1.0, 0.0, 0.0, dx, 0.0, 1.0, 0.0, dy, 0.0, 0.0, 1.0, dz, 0.0, 0.0, 0.0, 1.0]


def set_size_field(
    model: object, boxes: Sequence[tuple[Sequence[float], Sequence[float], float]], size: float
) -> None:
    """Make the element size the smallest of the boxes' sizes (model units) where they apply and
    ``size`` elsewhere; sizes from points and curvature are switched off (reproducible meshes).

    Args:
        model: ``gmsh.model`` (rank 0).
        boxes: ``(lower corner, upper corner, size)`` of each box, corners as (x, y, z).
        size: Size outside every box.
    """
    import gmsh

    field = model.mesh.field  # type: ignore[attr-defined]
    tags = []
    for lo, hi, h in boxes:
        tag = field.add("Box")
        for key, value in zip(("XMin", "YMin", "ZMin"), lo, strict=True):
            field.setNumber(tag, key, value)
        for key, value in zip(("XMax", "YMax", "ZMax"), hi, strict=True):
            field.setNumber(tag, key, value)
        field.setNumber(tag, "VIn", h)
        field.setNumber(tag, "VOut", size)
        tags.append(tag)
    smallest = field.add("Min")
    field.setNumbers(smallest, "FieldsList", tags)
    field.setAsBackgroundMesh(smallest)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.option.setNumber("Mesh.MeshSizeMin", 0.0)
    gmsh.option.setNumber("Mesh.MeshSizeMax", size)


def scale_to_si(model: object) -> None:
    """Scale the mesh nodes from model units (micrometres) to metres."""
    s = UNIT
    model.mesh.affineTransform([s, 0, 0, 0, 0, s, 0, 0, 0, 0, s, 0])  # type: ignore[attr-defined]


def build_cross_section(
    device: Device, comm: MPI.Comm = MPI.COMM_WORLD, *, msh_file: str | None = None
) -> MeshData:
    """Mesh one period of the DFB's x-z section (x[0] = x, x[1] = z, m), periodic in x.

    Args:
        device: The device description; it must have a [grating].
        comm: Communicator the mesh is distributed over (Gmsh runs on its rank 0).
        msh_file: Also write the Gmsh mesh to this file.

    Returns:
        The mesh, kind ``"cross-section"``, with regions ``substrate``, ``cladding`` (if any),
        ``pillars``, ``grating_fill``, ``film``, ``cap`` (if any), ``cover``; boundaries ``top``,
        ``bottom``, ``periodic_x_min`` and ``periodic_x_max`` (node-matched, the max face being the
        min face translated by one period along x).

    Raises:
        ConfigError: The device has no grating.
    """
    grating = require_grating(device, "cross-section")
    layers = optical_layers(device)
    period = grating.period / UNIT
    radius = grating.pillar_radius / UNIT
    n_layer = {la.name: layer_elements(device, la) for la in layers}
    n_pillar = pillar_elements(device)
    tol = 1e-6 * period

    with gmsh_model(comm, "cross-section") as model:
        if model is not None:
            occ = model.occ
            rects = {
                la.name: occ.addRectangle(
                    -0.5 * period, la.z_bottom / UNIT, 0.0, period, la.thickness / UNIT
                )
                for la in layers
            }
            grating_layer = next(la for la in layers if la.name == "grating")
            zg0, zg1 = grating_layer.z_bottom / UNIT, grating_layer.z_top / UNIT
            pillar = occ.addRectangle(-radius, zg0, 0.0, 2.0 * radius, zg1 - zg0)
            objects = [(2, t) for t in rects.values()]
            _, children = occ.fragment(objects, [(2, pillar)])
            occ.synchronize()

            pieces = {n: [t for _, t in kids] for n, kids in zip(rects, children, strict=False)}
            pillar_tags = [t for _, t in children[-1]]
            pieces["grating_fill"] = [t for t in pieces.pop("grating") if t not in pillar_tags]
            pieces["pillars"] = pillar_tags
            for name in REGION_ORDER:
                if name in pieces:
                    model.addPhysicalGroup(2, pieces[name], name=name)

            z_top = layers[-1].z_top / UNIT
            z_bot = layers[0].z_bottom / UNIT
            outer = model.getBoundary(model.getEntities(2), combined=True, oriented=False)
            sides: dict[str, list[int]] = {"bottom": [], "top": [], "x_min": [], "x_max": []}
            for _, tag in outer:
                x0, y0, _, x1, y1, _ = model.getBoundingBox(1, abs(tag))
                if abs(y1 - y0) < tol and abs(y0 - z_bot) < tol:
                    sides["bottom"].append(abs(tag))
                elif abs(y1 - y0) < tol and abs(y0 - z_top) < tol:
                    sides["top"].append(abs(tag))
                elif abs(x1 - x0) < tol:
                    sides["x_min" if x0 < 0 else "x_max"].append(abs(tag))
            for side in ("x_min", "x_max"):
                sides[side].sort(key=lambda t: model.occ.getCenterOfMass(1, t)[1])
            model.mesh.setPeriodic(
                1, sides["x_max"], sides["x_min"], translation(period)
            )
            for tag in sides["x_min"] + sides["x_max"]:
                zc = model.occ.getCenterOfMass(1, tag)[1] * UNIT
                layer = next(la for la in layers if la.z_bottom < zc < la.z_top)
                model.mesh.setTransfiniteCurve(tag, n_layer[layer.name] + 1)
            for _, tag in model.getBoundary([(2, t) for t in pillar_tags], oriented=False):
                x0, _, _, x1, _, _ = model.getBoundingBox(1, abs(tag))
                vertical = abs(x1 - x0) < tol
                n = n_layer["grating"] if vertical else n_pillar
                model.mesh.setTransfiniteCurve(abs(tag), n + 1)

            model.addPhysicalGroup(1, sides["bottom"], name="bottom")
            model.addPhysicalGroup(1, sides["top"], name="top")
            model.addPhysicalGroup(1, sides["x_min"], name="periodic_x_min")
            model.addPhysicalGroup(1, sides["x_max"], name="periodic_x_max")

            far = 2.0 * period
            boxes = [
                ((-far, la.z_bottom / UNIT, -1.0), (far, la.z_top / UNIT, 1.0),
                 la.thickness / UNIT / n_layer[la.name])
                for la in layers
            ]
            h_pillar = 2.0 * radius / n_pillar
            boxes.append(((-radius - h_pillar, zg0, -1.0), (radius + h_pillar, zg1, 1.0), h_pillar))
            set_size_field(model, boxes, optical_element_size(device) / UNIT)
            model.mesh.generate(2)
            scale_to_si(model)
        return to_mesh_data(
            model,
            comm,
            gdim=2,
            kind="cross-section",
            periodic=(PeriodicPair("periodic_x_min", "periodic_x_max", (grating.period, 0.0)),),
            z_levels=z_levels(layers),
            msh_file=msh_file,
        )
