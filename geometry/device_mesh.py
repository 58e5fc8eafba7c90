"""The 3D thermal mesh of the device under the pump spot: a quarter domain.

x, y in [0, L] (L = ``device.lateral_extent``; the planes x = 0 and y = 0 are symmetry planes) and
z from the substrate bottom (the heat sink) to the top of the stack, z = 0 at the substrate top.

The mesh is extruded: a lateral mesh of the plane is swept up through every layer with the z node
positions of :func:`~geometry.axisymmetric.vertical_layers`, so that the thin layers get their
``mesh.film_elements`` elements without the tiny isotropic elements a free 3D mesh would need.
Laterally there are node lines at the spot edges (x = spot_x / 2, y = spot_y / 2), with fine
elements there, graded towards the centre and outwards
(:func:`~geometry.axisymmetric.lateral_segments`).

- Homogenised grating (``resolved=False``): the lateral mesh is a structured grid of
  quadrilaterals and the volume mesh is made of hexahedra; the grating layer is one region.
- Resolved pillars (``resolved=True``): a rectangular patch [0, P_x] x [0, P_y] of the lateral plane
  holds the pillars of the square lattice centred at ((i + 1/2) p, (j + 1/2) p); the volume mesh
  is made of tetrahedra. In the grating layer the pillars become the ``pillars``, the rest of the
  patch the ``grating_fill`` (film material) and the rest of the layer stays the homogenised
  ``grating``. The patch half-widths are ``mesh.resolved_pillars_um`` (both) or, by default, the
  spot half-widths plus :data:`PATCH_MARGIN_PERIODS` periods, rounded up to whole periods so that
  the patch edge passes between pillars.

The resolved mesh is fine only where the pillars are. Every lattice cell of the patch is a copy of
one block, meshed once, in three parts:

- the grating and film: the fine lateral mesh of the cell (its pillar's rim in
  :func:`pillar_segments` segments, sizes growing by :data:`FILL_SIZE_SLOPE` times the distance
  from the rim up to ``p / n`` on the cell edges, ``n`` = :func:`edge_segments`) swept through the
  z nodes of the two layers (prisms split in three tetrahedra);
- under it (in the substrate or cladding) and over it (in the cap), transition blocks at least
  :data:`TRANSITION_PERIODS` periods thick, free tetrahedra (Gmsh) between the fine cell mesh and
  the coarse one: two triangles per cell (a fan to ``n`` segments on the cell edges that face the
  outside of the patch);
- below and above the transition blocks, the coarse cell mesh is swept with the rest of the plane.

Outside the patch the lateral mesh is a structured grid of triangles, ``n`` segments per period
along the patch edges, swept through every layer. The vertical faces of the blocks are structured
like those of the sweep (quadrilaterals cut from the lower bottom corner to the higher top corner,
with fans where the coarse and fine edges meet), so neighbouring blocks and the sweep conform.
Nothing here grows with the number of pillars but numpy arrays: the cost per pillar is that of
one block plus two coarse triangles through the rest of the column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry._gmsh import gmsh_model, to_mesh_data
from cqdlaser.geometry.axisymmetric import (
    DEVICE_SIZING,
    edge_element_size,
    extrusion_parts,
    graded_nodes,
    lateral_segments,
    spot_element_size,
    vertical_layers,
)
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.errors import ConfigError
from cqdlaser.geometry.layers import Layer, z_levels
from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.geometry.stack import film_element_size

PATCH_MARGIN_PERIODS = 3
"""Default margin of resolved pillars around the spot, in lattice periods."""
FILL_SIZE_SLOPE = 0.7
"""Growth of the lateral element size with the distance from a pillar's rim (m per m)."""
TRANSITION_PERIODS = 0.5
"""Least thickness of the transition blocks under and over the grating and film, in periods."""
_REGIONS = ("substrate", "cladding", "grating", "grating_fill", "pillars", "film", "cap")
_BOUNDARIES = ("top", "bottom", "side", "symmetry_x", "symmetry_y", "interface")


def patch_pillars(device: Device) -> tuple[int, int]:
    """Numbers of pillar columns along x and y in the resolved patch of the quarter domain."""
    if device.grating is None:
        raise ConfigError("grating", None, "a resolved device mesh needs a [grating]")
    p = device.grating.period
    if device.mesh.resolved_pillars_um is not None:
        half = (device.mesh.resolved_pillars_um * 1e-6,) * 2
    else:
        half = tuple(0.5 * s + PATCH_MARGIN_PERIODS * p for s in device.pump.spot)
    n = tuple(max(1, math.ceil(h / p - 1e-9)) for h in half)
    if max(n) * p >= device.lateral_extent:
        raise ConfigError(
            "mesh.resolved_pillars_um",
            device.mesh.resolved_pillars_um,
            f"the resolved patch ({max(n) * p * 1e6:g} um) must lie within the lateral extent "
            f"{device.lateral_extent * 1e6:g} um",
        )
    return n[0], n[1]


def pillar_segments(device: Device) -> int:
    """Straight segments on a pillar's circumference: 4 quarter arcs of
    ``ceil(pi * pillar_elements / (4 * scale))`` (at least 2) segments each."""
    m = max(2, math.ceil(math.pi * device.mesh.pillar_elements / (4.0 * device.mesh.scale)))
    return 4 * m


def edge_segments(device: Device) -> int:
    """Segments per lattice period on the cell edges of the resolved patch: ``ceil(3 / scale)``."""
    return max(1, math.ceil(3.0 / device.mesh.scale - 1e-9))


def _fill_size(device: Device) -> float:
    """Element size on the cell edges of the resolved patch (m): the period over
    :func:`edge_segments`."""
    assert device.grating is not None
    return device.grating.period / edge_segments(device)


def _axis_segments(
    spot_half: float, extent: float, device: Device, patch: float | None
) -> list[tuple[float, np.ndarray]]:
    """Segments along one lateral axis (length, node fractions), with a break at the patch edge
    (when resolved) and at the spot edge (when outside the patch)."""
    if patch is None:
        return lateral_segments(spot_half, extent, device, DEVICE_SIZING)
    h_fill = _fill_size(device)
    h_edge = edge_element_size(device)
    h_spot = spot_element_size(spot_half, device)
    q = DEVICE_SIZING.grading(device)
    segments = [(patch, graded_nodes(patch, h_start=h_fill, h_end=h_fill))]
    if spot_half > patch + h_fill:
        mid = spot_half - patch
        segments.append(
            (mid, graded_nodes(mid, h_start=h_fill, h_end=h_edge, ratio=q, h_max=h_spot))
        )
        segments.append(
            (extent - spot_half, graded_nodes(extent - spot_half, h_start=h_edge, ratio=q))
        )
    else:
        segments.append((extent - patch, graded_nodes(extent - patch, h_start=h_fill, ratio=q)))
    return segments


def _lines_of_extrusion(out: Sequence[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """(top, surface, lateral at start, lateral at end) of each line of a Gmsh line extrusion."""
    return [
        (out[i - 1][1], tag, out[i + 1][1], out[i + 2][1])
        for i, (d, tag) in enumerate(out)
        if d == 2
    ]


def build_device(
    device: Device,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    resolved: bool = False,
    msh_file: str | None = None,
) -> MeshData:
    """Mesh the quarter device under the pump spot.

    Args:
        device: The device description.
        comm: Communicator the mesh is distributed over (Gmsh runs on its rank 0).
        resolved: Resolve the pillars in a patch around the spot (tetrahedra), instead of one
            homogenised grating layer (hexahedra).
        msh_file: Also write the Gmsh mesh to this file.

    Returns:
        The mesh (x, y, z in m) with regions ``substrate``, ``cladding``, ``grating``, ``pillars``
        and ``grating_fill`` (resolved), ``film``, ``cap`` (those present); boundaries ``top``,
        ``bottom`` (heat sink), ``side`` (x = L and y = L), ``symmetry_x`` (x = 0),
        ``symmetry_y`` (y = 0) and ``interface`` (interior plane at ``z_levels["interface"]``).
    """
    if resolved and device.grating is None:
        raise ConfigError("grating", None, "a resolved device mesh needs a [grating]")
    stack = vertical_layers(device, DEVICE_SIZING)
    levels = z_levels(tuple(layer for layer, _ in stack))
    with gmsh_model(comm, "device") as model:
        if model is not None and resolved:
            _resolved_mesh(device, stack, levels)
        elif model is not None:
            _homogenised_mesh(model, device, stack, levels)
        return to_mesh_data(model, comm, gdim=3, kind="device", z_levels=levels, msh_file=msh_file)


def _homogenised_mesh(
    model: Any, device: Device, stack: list[tuple[Layer, np.ndarray]], levels: dict[str, float]
) -> None:
    """Build the homogenised mesh (hexahedra: a structured lateral grid of quadrilaterals swept
    through every layer), tag its regions and boundaries and mesh it, on ``gmsh.model``."""
    big_l = device.lateral_extent
    z_bot, z_top = stack[0][0].z_bottom, stack[-1][0].z_top
    tol = 1e-3 * film_element_size(device) / device.mesh.scale
    geo = model.geo
    point = geo.addPoint(0.0, 0.0, z_bot)
    lines = []
    for length, fractions in lateral_segments(
        0.5 * device.pump.spot[0], big_l, device, DEVICE_SIZING
    ):
        out = geo.extrude([(0, point)], length, 0.0, 0.0, [1] * len(fractions), list(fractions))
        point, line = out[0][1], out[1][1]
        lines.append(line)
    current: list[int] = []
    for length, fractions in lateral_segments(
        0.5 * device.pump.spot[1], big_l, device, DEVICE_SIZING
    ):
        out = geo.extrude(
            [(1, c) for c in lines],
            0.0,
            length,
            0.0,
            [1] * len(fractions),
            list(fractions),
            recombine=True,
        )
        parts = _lines_of_extrusion(out)
        current += [surface for _, surface, _, _ in parts]
        lines = [top for top, _, _, _ in parts]
    volumes: dict[str, list[int]] = {}
    for layer, fractions in stack:
        out = geo.extrude(
            [(2, s) for s in current],
            0.0,
            0.0,
            layer.thickness,
            [1] * len(fractions),
            list(fractions),
            recombine=True,
        )
        pairs = extrusion_parts(out, 3)
        current = [top for top, _ in pairs]
        volumes[layer.name] = [vol for _, vol in pairs]
    geo.synchronize()
    for name, tags in volumes.items():
        model.addPhysicalGroup(3, tags, name=name)
    faces = _classify_faces(model, big_l, z_bot, z_top, levels, tol)
    for name, tags in faces.items():
        model.addPhysicalGroup(2, tags, name=name)
    model.mesh.generate(3)


def _classify_faces(
    model: object, big_l: float, z_bot: float, z_top: float, levels: dict[str, float], tol: float
) -> dict[str, list[int]]:
    """The named boundary surfaces, found by their bounding boxes."""
    import gmsh

    groups: dict[str, list[int]] = {
        n: [] for n in ("top", "bottom", "side", "symmetry_x", "symmetry_y", "interface")
    }
    z_int = levels["interface"]
    for _, tag in gmsh.model.getEntities(2):
        x0, y0, z0, x1, y1, z1 = gmsh.model.getBoundingBox(2, tag)
        if x1 < tol:
            groups["symmetry_x"].append(tag)
        elif y1 < tol:
            groups["symmetry_y"].append(tag)
        elif x0 > big_l - tol or y0 > big_l - tol:
            groups["side"].append(tag)
        elif z0 > z_top - tol:
            groups["top"].append(tag)
        elif z1 < z_bot + tol:
            groups["bottom"].append(tag)
        elif abs(z0 - z_int) < tol and abs(z1 - z_int) < tol:
            groups["interface"].append(tag)
    return groups


class _Points:
    """Points keyed by their coordinates rounded to ``tol`` (m): equal points get one index."""

    def __init__(self, tol: float) -> None:
        self.tol = tol
        self.index: dict[tuple[int, ...], int] = {}
        self.coords: list[tuple[float, ...]] = []

    def add(self, *x: float) -> int:
        key = tuple(round(c / self.tol) for c in x)
        if key not in self.index:
            self.index[key] = len(self.coords)
            self.coords.append(x)
        return self.index[key]

    def array(self) -> np.ndarray:
        return np.asarray(self.coords, dtype=np.float64)


def _lexicographic(xy: np.ndarray, tol: float) -> np.ndarray:
    """Order of points sorted by x, then y (both rounded to ``tol``)."""
    keys = np.rint(xy / tol).astype(np.int64)
    return np.lexsort((keys[:, 1], keys[:, 0]))


def _split_prisms(tri: np.ndarray, nn: int) -> np.ndarray:
    """Tetrahedra of the prisms over triangles ``tri`` (vertices in increasing order) between a
    node layer and the one ``nn`` indices above.

    The prism (a, b, c) is split into (a, b, c, c'), (a, b, b', c'), (a, a', b', c'): every side
    quadrilateral is cut from its lower-numbered bottom vertex, so neighbouring prisms conform.
    """
    a, b, c = np.sort(tri, axis=1).T
    split = [(a, b, c, c + nn), (a, b, b + nn, c + nn), (a, a + nn, b + nn, c + nn)]
    return np.stack([np.column_stack(t) for t in split], axis=1).reshape(-1, 4)


def _cell_mesh(device: Device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fine lateral mesh of one lattice cell [0, p]^2 around its pillar (Gmsh, 2D).

    Returns:
        Node coordinates (m, in x-then-y order), triangles and whether each is in the pillar.
    """
    import gmsh

    assert device.grating is not None
    p, r = device.grating.period, device.grating.pillar_radius
    m = pillar_segments(device) // 4
    h_rim = math.pi * r / 2.0 / m
    h_edge = _fill_size(device)
    gmsh.model.add("cell")
    g = gmsh.model.geo
    corners = [g.addPoint(x, y, 0.0) for x, y in ((0, 0), (p, 0), (p, p), (0, p))]
    edges = [g.addLine(corners[k], corners[(k + 1) % 4]) for k in range(4)]
    centre = g.addPoint(0.5 * p, 0.5 * p, 0.0)
    rim = [
        g.addPoint(0.5 * p + r * math.cos(a), 0.5 * p + r * math.sin(a), 0.0)
        for a in (0.0, 0.5 * math.pi, math.pi, 1.5 * math.pi)
    ]
    arcs = [g.addCircleArc(rim[k], centre, rim[(k + 1) % 4]) for k in range(4)]
    for curve, n in [(e, edge_segments(device)) for e in edges] + [(a, m) for a in arcs]:
        g.mesh.setTransfiniteCurve(curve, n + 1)
    disk = g.addCurveLoop(arcs)
    surfaces = {"fill": g.addPlaneSurface([g.addCurveLoop(edges), disk]), "pillar": 0}
    surfaces["pillar"] = g.addPlaneSurface([disk])
    g.synchronize()
    field = gmsh.model.mesh.field
    distance = field.add("Distance")
    field.setNumbers(distance, "CurvesList", arcs)
    field.setNumber(distance, "Sampling", 4 * m)
    size = field.add("Threshold")
    field.setNumber(size, "InField", distance)
    field.setNumber(size, "SizeMin", h_rim)
    field.setNumber(size, "SizeMax", max(h_edge, h_rim))
    field.setNumber(size, "DistMin", 0.0)
    field.setNumber(size, "DistMax", max(h_edge - h_rim, 0.0) / FILL_SIZE_SLOPE)
    field.setAsBackgroundMesh(size)
    # The size comes from the field alone (restored afterwards: these options are global).
    options = ("Mesh.MeshSizeExtendFromBoundary", "Mesh.MeshSizeFromPoints")
    saved = {o: gmsh.option.getNumber(o) for o in options}
    for o in options:
        gmsh.option.setNumber(o, 0)
    try:
        gmsh.model.mesh.generate(2)
    finally:
        for o, v in saved.items():
            gmsh.option.setNumber(o, v)
    tags, coords, _ = gmsh.model.mesh.getNodes()
    index = np.zeros(int(tags.max()) + 1, dtype=np.int64)
    index[tags.astype(np.int64)] = np.arange(tags.size)
    tris, pillar = [], []
    for kind, surface in surfaces.items():
        _, conn = gmsh.model.mesh.getElementsByType(2, surface)
        tris.append(index[conn.astype(np.int64)].reshape(-1, 3))
        pillar.append(np.full(len(tris[-1]), kind == "pillar"))
    gmsh.model.remove()
    used, tri = np.unique(np.concatenate(tris), return_inverse=True)
    xy = coords.reshape(-1, 3)[used, :2]
    order = _lexicographic(xy, 1e-3 * h_rim)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return xy[order], rank[tri.reshape(-1, 3)], np.concatenate(pillar)


def _side_rows(
    faces: list[tuple[int, int, int]],
    points: _Points,
    rows: list[tuple[float, np.ndarray]],
    at: Callable[[float, float], tuple[float, float, float]],
) -> None:
    """Triangulate one vertical face of a cell block, row of nodes by row.

    ``rows`` are (z, positions along the face) from the bottom; ``at(s, z)`` gives the point.
    Rows with the same positions are joined by quadrilaterals cut from the lower bottom corner to
    the higher top corner (as :func:`_split_prisms` cuts them); a row of the two corners only is
    joined to a finer row by a fan.
    """
    for (z0, s0), (z1, s1) in pairwise(rows):
        low = [points.add(*at(s, z0)) for s in s0]
        high = [points.add(*at(s, z1)) for s in s1]
        if len(low) == len(high):
            for k in range(len(low) - 1):
                faces += [(low[k], low[k + 1], high[k + 1]), (low[k], high[k + 1], high[k])]
            continue
        few, many = (low, high) if len(low) < len(high) else (high, low)
        c = (len(many) - 1) // 2
        faces.append((few[0], few[1], many[c]))
        faces += [(few[0], many[k], many[k + 1]) for k in range(c)]
        faces += [(few[1], many[k], many[k + 1]) for k in range(c, len(many) - 1)]


def _coarse_face(p: float, fine: np.ndarray, right: bool, top: bool) -> list[np.ndarray]:
    """The coarse lateral mesh of one cell: two triangles, or a fan from the centre to the
    ``fine`` positions on the right (x = p) and top (y = p) edges when those face the outside."""
    if not (right or top):
        return [np.array([(0, 0), (p, 0), (p, p)]), np.array([(0, 0), (p, p), (0, p)])]
    ring = [(0.0, 0.0)]
    ring += [(p, s) for s in (fine if right else (0.0, p))[:-1]]
    ring += [(p - s, p) for s in (fine if top else (0.0, p))[:-1]]
    ring.append((0.0, p))
    centre = (0.5 * p, 0.5 * p)
    return [np.array([centre, a, b]) for a, b in zip(ring, ring[1:] + ring[:1], strict=True)]


def _transition(
    points: _Points, triangles: list[tuple[int, int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Fill a closed triangulated surface with tetrahedra (Gmsh, boundary kept).

    Returns the points (the surface's first, then Gmsh's new ones) and the tetrahedra.
    """
    import gmsh

    xyz = points.array()
    gmsh.model.add("transition")
    surface = gmsh.model.addDiscreteEntity(2)
    gmsh.model.mesh.addNodes(2, surface, np.arange(1, len(xyz) + 1), xyz.ravel())
    gmsh.model.mesh.addElementsByType(surface, 2, [], (np.asarray(triangles) + 1).ravel())
    gmsh.model.geo.addVolume([gmsh.model.geo.addSurfaceLoop([surface])])
    gmsh.model.geo.synchronize()
    gmsh.model.mesh.generate(3)
    tags, coords, _ = gmsh.model.mesh.getNodes()
    _, conn = gmsh.model.mesh.getElementsByType(4)
    gmsh.model.remove()
    index = np.zeros(int(tags.max()) + 1, dtype=np.int64)
    index[tags.astype(np.int64)] = np.arange(tags.size)
    coords = coords.reshape(-1, 3)
    order = np.argsort(tags)
    if not np.allclose(coords[order][: len(xyz)], xyz, rtol=0.0, atol=points.tol):
        raise RuntimeError("Gmsh changed the surface of a transition block")
    tets = index[conn.astype(np.int64)].reshape(-1, 4)
    faces = np.sort(tets[:, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]].reshape(-1, 3), axis=1)
    _, count = np.unique(faces, axis=0, return_counts=True)
    if np.count_nonzero(count == 1) != len(triangles):
        raise RuntimeError("Gmsh did not keep the surface of a transition block")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return coords[order], rank[tets]


def _block(
    device: Device,
    cell: tuple[np.ndarray, np.ndarray, np.ndarray],
    z: np.ndarray,
    levels: tuple[int, int, int, int],
    layer_of: list[str],
    right: bool,
    top: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tetrahedra of one lattice cell between the node planes ``levels`` = (kA, kg, kf, kB):
    a transition block [kA, kg], the fine cell mesh swept through [kg, kf] (grating and film) and
    a transition block [kf, kB] (none if kf = kB).

    ``right``/``top``: the cell edge x = p / y = p faces the outside of the patch (keeps the fine
    segments down and up the column). Returns points (m), tetrahedra and region indices.
    """
    assert device.grating is not None
    p = device.grating.period
    xy, tri, in_pillar = cell
    k_a, k_g, k_f, k_b = levels
    tol = 1e-3 * float(np.min(np.diff(z)))
    fine = np.arange(edge_segments(device) + 1) * p / edge_segments(device)
    corners = np.array([0.0, p])
    sides: list[tuple[Callable[[float, float], tuple[float, float, float]], bool]] = [
        (lambda s, h: (s, 0.0, h), False),
        (lambda s, h: (p, s, h), right),
        (lambda s, h: (s, p, h), top),
        (lambda s, h: (0.0, s, h), False),
    ]
    coarse = _coarse_face(p, fine, right, top)
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def transition(k_coarse: int, k_fine: int) -> None:
        points = _Points(tol)
        faces: list[tuple[int, int, int]] = []
        for t in coarse:
            faces.append(tuple(points.add(x, y, z[k_coarse]) for x, y in t))  # type: ignore[arg-type]
        faces += [tuple(points.add(x, y, z[k_fine]) for x, y in xy[t]) for t in tri]  # type: ignore[misc]
        step = 1 if k_fine > k_coarse else -1
        for at, outside in sides:
            rows = [(float(z[k_coarse]), fine if outside else corners)]
            rows += [(float(z[k]), fine) for k in range(k_coarse + step, k_fine + step, step)]
            _side_rows(faces, points, rows[::step], at)
        pts, tets = _transition(points, faces)
        name = layer_of[min(k_coarse, k_fine)]
        blocks.append((pts, tets, np.full(len(tets), _REGIONS.index(name))))

    transition(k_a, k_g)
    nn = len(xy)
    pts = np.column_stack([np.tile(xy, (k_f - k_g + 1, 1)), np.repeat(z[k_g : k_f + 1], nn)])
    tets, regions = [], []
    kind = np.repeat(np.where(in_pillar, _REGIONS.index("pillars"), -1), 3)
    for k in range(k_g, k_f):
        tets.append(_split_prisms(tri, nn) + (k - k_g) * nn)
        if layer_of[k] == "grating":
            regions.append(np.where(kind >= 0, kind, _REGIONS.index("grating_fill")))
        else:
            regions.append(np.full(len(kind), _REGIONS.index(layer_of[k])))
    blocks.append((pts, np.concatenate(tets), np.concatenate(regions)))
    if k_b > k_f:
        transition(k_b, k_f)
    offsets = np.cumsum([0] + [len(b[0]) for b in blocks])
    return (
        np.concatenate([b[0] for b in blocks]),
        np.concatenate([b[1] + o for b, o in zip(blocks, offsets, strict=False)]),
        np.concatenate([b[2] for b in blocks]),
    )


def _axis_nodes(spot_half: float, extent: float, device: Device, patch: float) -> np.ndarray:
    """Node coordinates (m) along one lateral axis, from 0 to ``extent``."""
    nodes, start = [np.zeros(1)], 0.0
    for length, fractions in _axis_segments(spot_half, extent, device, patch):
        nodes.append(start + fractions * length)
        start += length
    return np.concatenate(nodes)


def _resolved_mesh(
    device: Device, stack: list[tuple[Layer, np.ndarray]], levels: dict[str, float]
) -> None:
    """Build the resolved mesh (see the module docstring) as discrete Gmsh entities, one per
    region and per boundary, in the current Gmsh model."""
    import gmsh

    assert device.grating is not None
    p = device.grating.period
    nx, ny = patch_pillars(device)
    h_rim = math.pi * device.grating.pillar_radius / 2.0 / (pillar_segments(device) // 4)
    tol = 1e-3 * h_rim
    z, layer_of = _z_nodes(stack)
    planes = _block_planes(z, layer_of, TRANSITION_PERIODS * p, tol)
    model_name = gmsh.model.getCurrent()
    xy, tri, n_outer = _coarse_lateral_mesh(device, nx, ny, tol)
    chunks: list[tuple[np.ndarray, int | np.ndarray]] = []
    for k, name in enumerate(layer_of):
        inside = planes[0] <= k < planes[3]
        tets = _split_prisms(tri if not inside else tri[:n_outer], len(xy)) + k * len(xy)
        chunks.append((tets, _REGIONS.index("grating" if name == "grating" else name)))
    points = [np.column_stack([np.tile(xy, (len(z), 1)), np.repeat(z, len(xy))])]
    offset = len(z) * len(xy)

    cell = _cell_mesh(device)
    gmsh.model.setCurrent(model_name)
    cells = [(i, j) for i in range(nx) for j in range(ny)]
    templates = {}
    for right, top in {(i == nx - 1, j == ny - 1) for i, j in cells}:
        templates[right, top] = _block(device, cell, z, planes, layer_of, right, top)
    for i, j in cells:
        pts, tets, regions = templates[i == nx - 1, j == ny - 1]
        points.append(pts + np.array([i * p, j * p, 0.0]))
        chunks.append((tets + offset, regions))
        offset += len(pts)

    xyz, tetrahedra, region = _merge_points(np.concatenate(points), chunks, tol)
    big_l = device.lateral_extent
    faces = _boundary_faces(tetrahedra, xyz, big_l, float(z[0]), float(z[-1]), levels, tol)
    gmsh.model.setCurrent(model_name)
    _add_discrete_entities(xyz, tetrahedra, region, faces)


def _z_nodes(stack: list[tuple[Layer, np.ndarray]]) -> tuple[np.ndarray, list[str]]:
    """The z node planes (m) of the sweep, bottom to top, and the layer of each interval."""
    z_nodes = [stack[0][0].z_bottom]
    layer_of: list[str] = []
    for layer, fractions in stack:
        z_nodes += list(layer.z_bottom + fractions * layer.thickness)
        layer_of += [layer.name] * len(fractions)
    return np.asarray(z_nodes), layer_of


def _block_planes(
    z: np.ndarray, layer_of: list[str], depth: float, tol: float
) -> tuple[int, int, int, int]:
    """The node planes (kA, kg, kf, kB) of the cell blocks: the grating's bottom kg and the
    film's top kf, and the transition blocks' ends kA below and kB above, at least ``depth``
    (m) away from them (kA within the layer under the grating)."""
    nz = len(z)
    k_g = layer_of.index("grating")
    k_f = len(layer_of) - layer_of[::-1].index("film")
    below = [k for k in range(k_g) if layer_of[k] == layer_of[k_g - 1]]
    k_a = max([k for k in below if z[k] <= z[k_g] - depth + tol] or [below[0]])
    above = [k + 1 for k in range(k_f, nz - 1)]
    k_b = min([k for k in above if z[k] >= z[k_f] + depth - tol] or [nz - 1])
    return k_a, k_g, k_f, k_b


def _coarse_lateral_mesh(
    device: Device, nx: int, ny: int, tol: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """The coarse lateral mesh: the structured grid outside the patch (two triangles a
    quadrilateral) and the coarse cells inside it (:func:`_coarse_face`).

    Returns:
        Node coordinates (m), triangles (those outside the patch first) and their number.
    """
    assert device.grating is not None
    p = device.grating.period
    big_l = device.lateral_extent
    n_edge = edge_segments(device)
    xs = _axis_nodes(0.5 * device.pump.spot[0], big_l, device, nx * p)
    ys = _axis_nodes(0.5 * device.pump.spot[1], big_l, device, ny * p)
    grid = np.stack(np.meshgrid(np.arange(len(xs) - 1), np.arange(len(ys) - 1), indexing="ij"), -1)
    grid = grid.reshape(-1, 2)
    grid = grid[(grid[:, 0] >= nx * n_edge) | (grid[:, 1] >= ny * n_edge)]
    v = grid[:, 0] * len(ys) + grid[:, 1]
    quads = np.column_stack([v, v + len(ys), v + len(ys) + 1, v + 1])
    grid_xy = np.column_stack([np.repeat(xs, len(ys)), np.tile(ys, len(xs))])
    lateral = [grid_xy[np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])]]
    fine = np.arange(n_edge + 1) * p / n_edge
    for i, j in [(i, j) for i in range(nx) for j in range(ny)]:
        face = _coarse_face(p, fine, i == nx - 1, j == ny - 1)
        lateral.append(np.stack(face) + np.array([i * p, j * p]))
    corners_xy = np.concatenate(lateral).reshape(-1, 2)
    keys = np.rint(corners_xy / tol).astype(np.int64)
    keys, first, tri = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    if abs(xs[nx * n_edge] - nx * p) > tol or abs(ys[ny * n_edge] - ny * p) > tol:
        raise RuntimeError("the lateral grid misses the edge of the resolved patch")
    return corners_xy[first], tri.reshape(-1, 3), 2 * len(quads)


def _merge_points(
    xyz: np.ndarray, chunks: list[tuple[np.ndarray, int | np.ndarray]], tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge the points that coincide within ``tol`` (m), drop unused ones, and orient the
    tetrahedra positively.

    Returns:
        The points, the tetrahedra and the region index of each.
    """
    keys = np.rint(xyz / tol).astype(np.int64)
    _, first, merged = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    merged = merged.ravel()
    cells_all = merged[np.concatenate([c for c, _ in chunks])]
    region = np.concatenate([np.broadcast_to(r, len(c)) for c, r in chunks])
    used, cells_all = np.unique(cells_all, return_inverse=True)
    cells_all = cells_all.reshape(-1, 4)
    xyz = xyz[first[used]]
    return xyz, _positive(cells_all, xyz), region


def _add_discrete_entities(
    xyz: np.ndarray, tetrahedra: np.ndarray, region: np.ndarray, faces: dict[str, np.ndarray]
) -> None:
    """One discrete Gmsh volume per region and surface per boundary, named physical groups."""
    import gmsh

    node_tags = np.arange(1, len(xyz) + 1)
    first_volume = True
    for code, name in enumerate(_REGIONS):
        selected = tetrahedra[region == code]
        if not len(selected):
            continue
        tag = gmsh.model.addDiscreteEntity(3)
        if first_volume:
            gmsh.model.mesh.addNodes(3, tag, node_tags, xyz.ravel())
            first_volume = False
        gmsh.model.mesh.addElementsByType(tag, 4, [], (selected + 1).ravel())
        gmsh.model.addPhysicalGroup(3, [tag], name=name)
    for name in _BOUNDARIES:
        tag = gmsh.model.addDiscreteEntity(2)
        gmsh.model.mesh.addElementsByType(tag, 2, [], (faces[name] + 1).ravel())
        gmsh.model.addPhysicalGroup(2, [tag], name=name)


def _boundary_faces(
    cells: np.ndarray,
    xyz: np.ndarray,
    big_l: float,
    z_bot: float,
    z_top: float,
    levels: dict[str, float],
    tol: float,
) -> dict[str, np.ndarray]:
    """The named boundary faces: tetrahedron faces with all three vertices on the plane (on the
    ``interface`` plane, those of the tetrahedra below it)."""
    planes = {
        "top": (2, z_top),
        "bottom": (2, z_bot),
        "symmetry_x": (0, 0.0),
        "symmetry_y": (1, 0.0),
        "side": (0, big_l),
        "side_y": (1, big_l),
        "interface": (2, levels["interface"]),
    }
    found: dict[str, list[np.ndarray]] = {name: [] for name in planes}
    chunk = 1 << 20
    for start in range(0, len(cells), chunk):
        block = cells[start : start + chunk]
        for opposite in range(4):
            face = block[:, [k for k in range(4) if k != opposite]]
            for name, (axis, value) in planes.items():
                on = np.all(np.abs(xyz[face, axis] - value) < tol, axis=1)
                if name == "interface":
                    on &= xyz[block[:, opposite], 2] < value
                found[name].append(face[on])
    faces = {name: np.concatenate(f) for name, f in found.items()}
    faces["side"] = np.concatenate([faces["side"], faces.pop("side_y")])
    return faces


def _positive(cells: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Tetrahedra reordered to a positive orientation (Gmsh's quality is negative otherwise)."""
    p = points[cells]
    d = np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0])
    flip = d < 0
    cells[flip] = cells[flip][:, [0, 2, 1, 3]]
    return cells
