"""The 2D DFB cross-section (x-z) through a row of pillars, one lattice period wide, with periodic
x faces; and the sizing rules it shares with the 3D unit cell (:mod:`geometry.cell`).

The section spans x in [-Λ/2, Λ/2] (Λ the period), the pillar (a rectangle of the pillar's diameter
and height) centred at x = 0, and z (x[1]) from ``mesh.optical_padding_um`` below the substrate top
to the same distance above the top layer (an air ``cover``), as the optical layer stack.

Sizes (all scale with ``mesh.scale``, so that it refines the whole mesh uniformly): the guiding
layers (grating, film) take h_c = the finer of :func:`geometry.stack.optical_element_size` and the
film's element size, at least ``mesh.film_elements`` elements across each; every other layer
(substrate, cladding, cap, cover) is graded away from them, the element size growing linearly
with the distance d from the guiding layers, h(d) = h_c + s d with
s = ``mesh.scale`` (``mesh.grading`` - 1), i.e. geometrically by the factor 1 + s from one element
to the next (:func:`element_size`): the guided fields decay exponentially there. The pillar has
at least ``mesh.pillar_elements`` elements across its diameter. The vertical edges on the periodic
faces carry exactly :func:`layer_elements` elements per layer, in geometric progression away from
the guiding layers (:func:`layer_progression`).

Gmsh's OpenCASCADE kernel works with an absolute tolerance of about 1e-7 model units, so the model
is built in micrometres and the mesh nodes are scaled to metres before DOLFINx takes the mesh
(the periodic transforms recorded in a written ``.msh`` file stay in micrometres).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mpi4py import MPI

from cqdlaser.geometry._gmsh import gmsh_model, to_mesh_data
from cqdlaser.geometry.device import Device, Grating
from cqdlaser.geometry.errors import ConfigError
from cqdlaser.geometry.layers import Layer, layer_stack, z_levels
from cqdlaser.geometry.meshdata import MeshData, PeriodicPair
from cqdlaser.geometry.stack import film_element_size, optical_element_size, thin_layer_elements

UNIT = 1e-6
"""Length of one Gmsh model unit (m): the OpenCASCADE models are built in micrometres."""

BULK_LAYERS = ("substrate", "cover")
CORE_LAYERS = ("grating", "film")
REGION_ORDER = ("substrate", "cladding", "pillars", "grating_fill", "film", "cap", "cover")


def require_grating(device: Device, kind: str) -> Grating:
    """The device's grating, or a ConfigError for mesh kinds that need one."""
    if device.grating is None:
        raise ConfigError("grating", None, f"the {kind} mesh needs a [grating] section")
    return device.grating


def optical_layers(device: Device, *, pml: bool = False) -> tuple[Layer, ...]:
    """The layer stack truncated for optics: the substrate cut ``mesh.optical_padding_um`` below
    z = 0 and an air ``cover`` of the same thickness on top (as the optical 1D stack); with
    ``pml``, both continued by ``mesh.pml_thickness_um`` for the perfectly matched layers
    (:func:`pml_levels`)."""
    layers = list(layer_stack(device))
    pad = device.mesh.optical_padding_um * 1e-6
    extra = device.mesh.pml_thickness_um * 1e-6 if pml else 0.0
    sub = layers[0]
    layers[0] = Layer(sub.name, sub.material, -pad - extra, sub.z_top)
    layers.append(Layer("cover", "air", layers[-1].z_top, layers[-1].z_top + pad + extra))
    return tuple(layers)


def pml_levels(device: Device) -> dict[str, float]:
    """Where the perfectly matched layers of the open optical meshes begin (m): ``pml_bottom``
    (the substrate below it is PML) and ``pml_top`` (the cover above it is PML)."""
    layers = optical_layers(device)
    return {"pml_bottom": layers[0].z_bottom, "pml_top": layers[-1].z_top}


def core_extent(device: Device) -> tuple[float, float]:
    """Bottom and top (m) of the guiding layers: the grating layer (if any) and the film."""
    core = [la for la in layer_stack(device) if la.name in CORE_LAYERS]
    return core[0].z_bottom, core[-1].z_top


def core_element_size(device: Device) -> float:
    """Element size in the guiding layers (m): the finer of the optical and the film's sizes."""
    return min(optical_element_size(device), film_element_size(device))


def growth_rate(device: Device) -> float:
    """Largest growth of the element size per unit distance from the guiding layers
    (dimensionless): ``mesh.scale * (mesh.grading - 1)``."""
    return device.mesh.scale * (device.mesh.grading - 1.0)


def max_element_size(device: Device) -> float:
    """Largest element size of the graded layers (m): six times
    :func:`geometry.stack.optical_element_size`, about 4.5 quadratic elements per wavelength in
    MgF2, so that the standing waves of the truncated radiation continuum stay resolved."""
    return 6.0 * optical_element_size(device)


@dataclass(frozen=True)
class Grading:
    """Element sizes across a layer, in geometric progression away from the guiding layers.

    Attributes:
        elements: Number of elements across the layer.
        ratio: Ratio of successive element sizes (>= 1; 1 in the guiding layers).
        first: Size of the element nearest the guiding layers (m).
    """

    elements: int
    ratio: float
    first: float

    @property
    def next_size(self) -> float:
        """Size of the element that would continue the progression (m)."""
        return self.first * self.ratio**self.elements


def _progression(length: float, start: float, ratio: float, minimum: int) -> Grading:
    """The fewest elements (at least ``minimum``), starting at size ``start`` and growing by at
    most ``ratio``, that span ``length``; the ratio refitted so that they span it exactly (or
    uniform elements of at most ``start`` where even ratio 1 overshoots)."""
    if ratio <= 1.0 + 1e-12:
        n = max(minimum, math.ceil(length / start - 1e-9))
    else:
        n = math.ceil(math.log1p(length * (ratio - 1.0) / start) / math.log(ratio) - 1e-9)
        n = max(minimum, n)
    if n * start >= length * (1.0 - 1e-12):
        return Grading(n, 1.0, length / n)
    lo, hi = 1.0, max(ratio, 1.0 + 1e-9)
    while start * (hi**n - 1.0) / (hi - 1.0) < length:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if start * (mid**n - 1.0) / (mid - 1.0) < length:
            lo = mid
        else:
            hi = mid
    return Grading(n, 0.5 * (lo + hi), start)


def layer_grading(device: Device, layer: Layer) -> Grading:
    """Element sizes across ``layer``. Guiding layers (grating, film): uniform, at most
    :func:`core_element_size` and at least ``mesh.film_elements``. The other layers, taken in
    order away from the guiding layers, continue one geometric progression that starts at
    :func:`core_element_size`, grows by at most 1 + :func:`growth_rate` per element and, within
    each layer, no faster than it must to end at most at :func:`max_element_size`. Thin layers
    (all but substrate and cover) get at least ``mesh.film_elements``."""
    if layer.name in CORE_LAYERS:
        n = thin_layer_elements(device, layer.thickness, core_element_size(device))
        return Grading(n, 1.0, layer.thickness / n)
    z0, _ = core_extent(device)
    below = layer.z_top <= z0 + 1e-15
    side = [
        la
        for la in optical_layers(device, pml=layer not in optical_layers(device))
        if la.name not in CORE_LAYERS and (la.z_top <= z0 + 1e-15) == below
    ]
    side.sort(key=lambda la: -la.z_top if below else la.z_bottom)
    start = core_element_size(device)
    h_max, r_max = max_element_size(device), 1.0 + growth_rate(device)
    for la in side:
        length = la.thickness
        if start >= h_max:
            ratio = 1.0
        elif length > h_max:
            ratio = min(r_max, (length - start) / (length - h_max))
        else:
            ratio = r_max
        minimum = 1 if la.name in BULK_LAYERS else device.mesh.film_elements
        grading = _progression(length, min(start, h_max), ratio, minimum)
        if la.name == layer.name:
            return grading
        start = grading.next_size
    raise ValueError(f"layer {layer.name!r} is not in the optical stack of the device")


def layer_elements(device: Device, layer: Layer) -> int:
    """Elements across ``layer``'s thickness (:func:`layer_grading`)."""
    return layer_grading(device, layer).elements


def layer_progression(device: Device, layer: Layer) -> float:
    """Ratio of successive element sizes across ``layer``, away from the guiding layers
    (:func:`layer_grading`)."""
    return layer_grading(device, layer).ratio


def layer_size_expression(device: Device, layer: Layer, axis: str) -> str:
    """Gmsh ``MathEval`` expression (model units) of the element size in ``layer`` at height
    ``axis``: linear in the distance from the layer's face nearest the guiding layers, as the
    sizes of a geometric progression are."""
    g = layer_grading(device, layer)
    z0, _ = core_extent(device)
    if layer.z_top <= z0 + 1e-15:
        distance = f"({layer.z_top / UNIT!r} - {axis})"
    else:
        distance = f"({axis} - {layer.z_bottom / UNIT!r})"
    return f"{g.first / UNIT!r} + {g.ratio - 1.0!r} * {distance}"


def set_layer_curve(model: object, tag: int, device: Device, layer: Layer, axis: int) -> None:
    """Make a curve across ``layer`` (along coordinate ``axis``) transfinite with the layer's
    element count, growing away from the guiding layers."""
    g = layer_grading(device, layer)
    ratio = g.ratio
    if ratio != 1.0:
        t0, t1 = model.getParametrizationBounds(1, tag)  # type: ignore[attr-defined]
        start = model.getValue(1, tag, [t0[0]])[axis] * UNIT  # type: ignore[attr-defined]
        end = model.getValue(1, tag, [t1[0]])[axis] * UNIT  # type: ignore[attr-defined]
        core = 0.5 * sum(core_extent(device))
        if abs(start - core) > abs(end - core):
            ratio = 1.0 / ratio
    model.mesh.setTransfiniteCurve(  # type: ignore[attr-defined]
        tag, g.elements + 1, "Progression", ratio
    )


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
    model: object,
    boxes: Sequence[tuple[Sequence[float], Sequence[float], float]],
    size: float,
    *,
    graded: Sequence[tuple[str, int, Sequence[int]]] = (),
) -> None:
    """Make the element size the smallest of the boxes' sizes (model units) where they apply, of
    the ``graded`` expressions on their entities, and ``size`` elsewhere; sizes from points and
    curvature are switched off (reproducible meshes).

    Args:
        model: ``gmsh.model`` (rank 0).
        boxes: ``(lower corner, upper corner, size)`` of each box, corners as (x, y, z).
        size: Size outside every box and graded entity (and the largest size).
        graded: ``(MathEval expression of x, y, z, dimension, entity tags)``: sizes restricted to
            those surfaces (dimension 2) or volumes (3).
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
    for expression, dim, entities in graded:
        inner = field.add("MathEval")
        field.setString(inner, "F", expression)
        tag = field.add("Restrict")
        field.setNumber(tag, "InField", inner)
        field.setNumbers(tag, "SurfacesList" if dim == 2 else "VolumesList", list(entities))
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
    device: Device,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    pml: bool = False,
    msh_file: str | None = None,
) -> MeshData:
    """Mesh one period of the DFB's x-z section (x[0] = x, x[1] = z, m), periodic in x.

    Args:
        device: The device description; it must have a [grating].
        comm: Communicator the mesh is distributed over (Gmsh runs on its rank 0).
        pml: Continue the substrate and cover by ``mesh.pml_thickness_um`` for perfectly
            matched layers; ``z_levels`` then also has ``pml_bottom`` and ``pml_top``
            (:func:`pml_levels`).
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
    layers = optical_layers(device, pml=pml)
    levels = z_levels(layers) | (pml_levels(device) if pml else {})
    with gmsh_model(comm, "cross-section") as model:
        if model is not None:
            _mesh_cross_section(model, device, layers)
        return to_mesh_data(
            model,
            comm,
            gdim=2,
            kind="cross-section",
            periodic=(PeriodicPair("periodic_x_min", "periodic_x_max", (grating.period, 0.0)),),
            z_levels=levels,
            msh_file=msh_file,
        )


def _mesh_cross_section(model: Any, device: Device, layers: tuple[Layer, ...]) -> None:
    """Build, tag and mesh the cross-section on ``gmsh.model`` (rank 0), in micrometres, then
    scale to m."""
    pieces, pillar_tags = _cross_section_regions(model, device, layers)
    period = require_grating(device, "cross-section").period / UNIT
    sides = _cross_section_sides(model, layers, tol=1e-6 * period)
    _set_cross_section_curves(model, device, layers, sides, pillar_tags)
    for name, side in (
        ("bottom", "bottom"),
        ("top", "top"),
        ("periodic_x_min", "x_min"),
        ("periodic_x_max", "x_max"),
    ):
        model.addPhysicalGroup(1, sides[side], name=name)
    _set_cross_section_sizes(model, device, layers, pieces)
    model.mesh.generate(2)
    scale_to_si(model)


def _cross_section_regions(
    model: Any, device: Device, layers: tuple[Layer, ...]
) -> tuple[dict[str, list[int]], list[int]]:
    """One rectangle per layer, fragmented by the pillar's rectangle, tagged by region name.

    Returns:
        The surface tags of each region, and those of the pillar.
    """
    grating = require_grating(device, "cross-section")
    period = grating.period / UNIT
    radius = grating.pillar_radius / UNIT
    occ = model.occ
    rects = {
        la.name: occ.addRectangle(
            -0.5 * period, la.z_bottom / UNIT, 0.0, period, la.thickness / UNIT
        )
        for la in layers
    }
    zg0, zg1 = grating_extent(layers)
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
    return pieces, pillar_tags


def grating_extent(layers: tuple[Layer, ...]) -> tuple[float, float]:
    """Bottom and top of the grating layer (model units)."""
    grating_layer = next(la for la in layers if la.name == "grating")
    return grating_layer.z_bottom / UNIT, grating_layer.z_top / UNIT


def _cross_section_sides(model: Any, layers: tuple[Layer, ...], tol: float) -> dict[str, list[int]]:
    """The outer curves of the section by side (``bottom``, ``top``, ``x_min``, ``x_max``),
    found by their bounding boxes; the vertical sides ordered by height."""
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
    return sides


def _set_cross_section_curves(
    model: Any,
    device: Device,
    layers: tuple[Layer, ...],
    sides: dict[str, list[int]],
    pillar_tags: list[int],
) -> None:
    """The x faces periodic (node-matched) with each layer's element count across it; the
    pillar's vertical edges with the grating layer's count, its horizontal ones with
    :func:`pillar_elements`."""
    period = require_grating(device, "cross-section").period / UNIT
    tol = 1e-6 * period
    model.mesh.setPeriodic(1, sides["x_max"], sides["x_min"], translation(period))
    for tag in sides["x_min"] + sides["x_max"]:
        zc = model.occ.getCenterOfMass(1, tag)[1] * UNIT
        layer = next(la for la in layers if la.z_bottom < zc < la.z_top)
        set_layer_curve(model, tag, device, layer, axis=1)
    n_grating = layer_elements(device, next(la for la in layers if la.name == "grating"))
    n_pillar = pillar_elements(device)
    for _, tag in model.getBoundary([(2, t) for t in pillar_tags], oriented=False):
        x0, _, _, x1, _, _ = model.getBoundingBox(1, abs(tag))
        vertical = abs(x1 - x0) < tol
        n = n_grating if vertical else n_pillar
        model.mesh.setTransfiniteCurve(abs(tag), n + 1)


def _set_cross_section_sizes(
    model: Any, device: Device, layers: tuple[Layer, ...], pieces: dict[str, list[int]]
) -> None:
    """Uniform sizes in the guiding layers and around the pillar, graded sizes elsewhere."""
    grating = require_grating(device, "cross-section")
    far = 2.0 * grating.period / UNIT
    radius = grating.pillar_radius / UNIT
    boxes = [
        (
            (-far, la.z_bottom / UNIT, -1.0),
            (far, la.z_top / UNIT, 1.0),
            la.thickness / UNIT / layer_elements(device, la),
        )
        for la in layers
        if la.name in CORE_LAYERS
    ]
    zg0, zg1 = grating_extent(layers)
    h_pillar = 2.0 * radius / pillar_elements(device)
    boxes.append(((-radius - h_pillar, zg0, -1.0), (radius + h_pillar, zg1, 1.0), h_pillar))
    graded = [
        (layer_size_expression(device, la, "y"), 2, pieces[la.name])
        for la in layers
        if la.name not in CORE_LAYERS
    ]
    set_size_field(model, boxes, max_element_size(device) / UNIT, graded=graded)
