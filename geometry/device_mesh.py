"""The 3D thermal mesh of the device under the pump spot: a quarter domain.

x, y in [0, L] (L = ``device.lateral_extent``; the planes x = 0 and y = 0 are symmetry planes) and
z from the substrate bottom (the heat sink) to the top of the stack, z = 0 at the substrate top.

The mesh is extruded: a lateral mesh of the plane z = z_bottom is swept up through every layer
with the z node positions of :func:`~geometry.axisymmetric.vertical_layers`, so that the thin layers
get their ``mesh.film_elements`` elements without the tiny isotropic elements a free 3D mesh would
need. Laterally there are node lines at the spot edges (x = spot_x / 2, y = spot_y / 2), with fine
elements there, graded towards the centre and outwards
(:func:`~geometry.axisymmetric.lateral_segments`).

- Homogenised grating (``resolved=False``): the lateral mesh is a structured grid of
  quadrilaterals and the volume mesh is made of hexahedra; the grating layer is one region.
- Resolved pillars (``resolved=True``): a rectangular patch [0, P_x] x [0, P_y] of the lateral plane
  holds the disks of the pillars of the square lattice centred at ((i + 1/2) p, (j + 1/2) p), meshed
  with triangles; outside it the grid is structured triangles; the volume mesh is made of
  tetrahedra (each extruded prism split in three). In the grating layer the disks become the
  ``pillars``, the rest of the patch the ``grating_fill`` (film material) and the rest of the layer
  stays the homogenised ``grating``. The patch half-widths are ``mesh.resolved_pillars_um`` (both)
  or, by default, the spot half-widths plus :data:`PATCH_MARGIN_PERIODS` periods, rounded up to
  whole periods so that the patch edge passes between pillars.

Extruding the lateral mesh of the disks scales to thousands of pillars (the time is that of one 2D
mesh plus the sweep), where fragmenting thousands of OCC cylinders does not. The price is that the
fine lateral mesh of the patch runs through the whole column, substrate included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mpi4py import MPI

import numpy as np

from geometry._gmsh import gmsh_model, to_mesh_data
from geometry.axisymmetric import (
    SPOT_SIZE_FACTOR,
    edge_element_size,
    extrusion_parts,
    graded_nodes,
    lateral_segments,
    vertical_layers,
)
from geometry.device import Device
from geometry.errors import ConfigError
from geometry.layers import Layer, z_levels
from geometry.meshdata import MeshData
from geometry.stack import film_element_size

PATCH_MARGIN_PERIODS = 3
"""Default margin of resolved pillars around the spot, in lattice periods."""


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


def _fill_size(device: Device) -> float:
    """Element size on the edge of the resolved patch (m): a third of the period, times scale."""
    assert device.grating is not None
    return device.mesh.scale * device.grating.period / 3.0


def _axis_segments(
    spot_half: float, extent: float, device: Device, patch: float | None
) -> list[tuple[float, np.ndarray]]:
    """Segments along one lateral axis (length, node fractions), with a break at the patch edge
    (when resolved) and at the spot edge (when outside the patch)."""
    if patch is None:
        return lateral_segments(spot_half, extent, device)
    h_fill = _fill_size(device)
    h_edge = edge_element_size(device)
    h_spot = SPOT_SIZE_FACTOR * h_edge
    q = device.mesh.grading
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
    big_l = device.lateral_extent
    stack = vertical_layers(device)
    levels = z_levels(tuple(layer for layer, _ in stack))
    z_bot, z_top = stack[0][0].z_bottom, stack[-1][0].z_top
    tol = 1e-3 * film_element_size(device) / device.mesh.scale
    half_x, half_y = (0.5 * s for s in device.pump.spot)
    patch_x = patch_y = None
    if resolved:
        assert device.grating is not None
        nx, ny = patch_pillars(device)
        patch_x, patch_y = nx * device.grating.period, ny * device.grating.period
    recombine = not resolved

    with gmsh_model(comm, "device") as model:
        if model is not None:
            geo = model.geo
            point = geo.addPoint(0.0, 0.0, z_bot)
            lines = []
            for length, fractions in _axis_segments(half_x, big_l, device, patch_x):
                out = geo.extrude(
                    [(0, point)], length, 0.0, 0.0, [1] * len(fractions), list(fractions)
                )
                point, line = out[0][1], out[1][1]
                lines.append(line)
            base: list[tuple[int, str]] = []
            corner: tuple[int, int, int, int, int] | None = None
            for j, (length, fractions) in enumerate(_axis_segments(half_y, big_l, device, patch_y)):
                out = geo.extrude(
                    [(1, c) for c in lines],
                    0.0,
                    length,
                    0.0,
                    [1] * len(fractions),
                    list(fractions),
                    recombine=recombine,
                )
                parts = _lines_of_extrusion(out)
                if j == 0:
                    corner = (lines[0], *parts[0])
                base += [(surface, "outer") for _, surface, _, _ in parts]
                lines = [top for top, _, _, _ in parts]
            if resolved:
                assert corner is not None
                base = base[1:] + _patch(device, corner, z_bot)
            geo.synchronize()
            if resolved:
                _sweep_lateral_mesh(model, base, stack, big_l, levels, tol)
            else:
                volumes: dict[str, list[int]] = {}
                current = [s for s, _ in base]
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
        return to_mesh_data(model, comm, gdim=3, kind="device", z_levels=levels, msh_file=msh_file)


def _patch(
    device: Device, corner: tuple[int, int, int, int, int], z: float
) -> list[tuple[int, str]]:
    """Replace the corner cell of the lateral grid by the patch of pillar disks.

    ``corner`` holds the corner cell's bottom line, top line, surface, and lines at x = 0 and
    x = P_x. Returns the new base surfaces: the fill (the patch with holes) and the disks.
    """
    assert device.grating is not None
    import gmsh

    bottom, top, surface, *laterals = corner
    g = gmsh.model.geo
    g.synchronize()
    left, right = sorted(
        (abs(c) for c in laterals), key=lambda c: gmsh.model.getBoundingBox(1, c)[0]
    )
    g.remove([(2, surface)])
    outer = g.addCurveLoop([abs(bottom), right, abs(top), left], reorient=True)
    p, r = device.grating.period, device.grating.pillar_radius
    m = pillar_segments(device) // 4
    h_pillar = math.pi * r / 2.0 / m
    nx, ny = patch_pillars(device)
    loops, disks = [], []
    for i in range(nx):
        for j in range(ny):
            cx, cy = (i + 0.5) * p, (j + 0.5) * p
            centre = g.addPoint(cx, cy, z, h_pillar)
            rim = [
                g.addPoint(cx + r * math.cos(a), cy + r * math.sin(a), z, h_pillar)
                for a in (0.0, 0.5 * math.pi, math.pi, 1.5 * math.pi)
            ]
            arcs = [g.addCircleArc(rim[k], centre, rim[(k + 1) % 4]) for k in range(4)]
            for arc in arcs:
                g.mesh.setTransfiniteCurve(arc, m + 1)
            loop = g.addCurveLoop(arcs)
            loops.append(loop)
            disks.append(g.addPlaneSurface([loop]))
    fill = g.addPlaneSurface([outer, *loops])
    return [(fill, "grating_fill")] + [(d, "pillars") for d in disks]


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


def _sweep_lateral_mesh(
    model: object,
    base: list[tuple[int, str]],
    stack: list[tuple[Layer, np.ndarray]],
    big_l: float,
    levels: dict[str, float],
    tol: float,
) -> None:
    """Mesh the lateral plane in 2D, then sweep it up into tetrahedra and replace the model by
    the swept mesh (discrete entities, one per region and per boundary).

    Gmsh's own extrusion of thousands of surfaces takes a time quadratic in their number; this
    sweep is linear. Each prism over a triangle with sorted vertices a < b < c is split into
    (a, b, c, c'), (a, b, b', c'), (a, a', b', c'): every side quad is cut along the diagonal from
    its lower-numbered bottom vertex, so the tetrahedra of neighbouring prisms are conforming.
    """
    import gmsh

    gmsh.model.mesh.generate(2)
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    index = np.zeros(int(node_tags.max()) + 1, dtype=np.int64)
    index[node_tags.astype(np.int64)] = np.arange(node_tags.size)
    xy = coords.reshape(-1, 3)[:, :2]
    tris, kinds = [], []
    for surface, kind in base:
        _, conn = gmsh.model.mesh.getElementsByType(2, surface)
        tri = index[conn.astype(np.int64)].reshape(-1, 3)
        tris.append(tri)
        kinds += [kind] * len(tri)
    tri = np.sort(np.concatenate(tris), axis=1)
    kind_of = np.asarray(kinds)
    edges: dict[str, list[np.ndarray]] = {"symmetry_x": [], "symmetry_y": [], "side": []}
    for _, curve in gmsh.model.getEntities(1):
        x0, y0, _, x1, y1, _ = gmsh.model.getBoundingBox(1, curve)
        name = None
        if x1 < tol:
            name = "symmetry_x"
        elif y1 < tol:
            name = "symmetry_y"
        elif x0 > big_l - tol or y0 > big_l - tol:
            name = "side"
        if name is not None:
            _, conn = gmsh.model.mesh.getElementsByType(1, curve)
            edges[name].append(index[conn.astype(np.int64)].reshape(-1, 2))

    # Drop the nodes no triangle uses (the centres of the pillar arcs).
    used, tri = np.unique(tri, return_inverse=True)
    tri = tri.reshape(-1, 3)
    remap = np.full(node_tags.size, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    xy = xy[used]
    side_edges = {n: np.sort(remap[np.concatenate(e)], axis=1) for n, e in edges.items() if e}

    z_nodes = [stack[0][0].z_bottom]
    layer_of = []
    for layer, fractions in stack:
        z_nodes += list(layer.z_bottom + fractions * layer.thickness)
        layer_of += [layer.name] * len(fractions)
    z = np.asarray(z_nodes)
    nn, nz = len(xy), len(z)
    points = np.column_stack([np.tile(xy, (nz, 1)), np.repeat(z, nn)])

    gmsh.model.remove()
    gmsh.model.add("device")
    entities: dict[str, list[np.ndarray]] = {}
    a, b, c = tri.T
    prism = [(a, b, c, c + nn), (a, b, b + nn, c + nn), (a, a + nn, b + nn, c + nn)]
    pattern = np.stack([np.column_stack(t) for t in prism], axis=1).reshape(-1, 4)
    region_kind = np.repeat(kind_of, 3)
    for k, name in enumerate(layer_of):
        cells = pattern + k * nn
        if name == "grating":
            for kind in ("outer", "grating_fill", "pillars"):
                entities.setdefault("grating" if kind == "outer" else kind, []).append(
                    cells[region_kind == kind]
                )
        else:
            entities.setdefault(name, []).append(cells)
    volume_tags = []
    for name, blocks in entities.items():
        cells = _positive(np.concatenate(blocks), points)
        tag = gmsh.model.addDiscreteEntity(3)
        if not volume_tags:
            gmsh.model.mesh.addNodes(3, tag, np.arange(1, nn * nz + 1), points.ravel())
        volume_tags.append(tag)
        gmsh.model.mesh.addElementsByType(tag, 4, [], (cells + 1).ravel())
        gmsh.model.addPhysicalGroup(3, [tag], name=name)

    interface = int(np.argmin(np.abs(z - levels["interface"])))
    faces = {"top": [tri + (nz - 1) * nn], "bottom": [tri], "interface": [tri + interface * nn]}
    for name, e in side_edges.items():
        i, j = e.T
        quads = [np.column_stack([i, j, j + nn]), np.column_stack([i, j + nn, i + nn])]
        faces[name] = [q + k * nn for k in range(nz - 1) for q in quads]
    for name in ("top", "bottom", "side", "symmetry_x", "symmetry_y", "interface"):
        tag = gmsh.model.addDiscreteEntity(2)
        gmsh.model.mesh.addElementsByType(tag, 2, [], (np.concatenate(faces[name]) + 1).ravel())
        gmsh.model.addPhysicalGroup(2, [tag], name=name)


def _positive(cells: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Tetrahedra reordered to a positive orientation (Gmsh's quality is negative otherwise)."""
    p = points[cells]
    d = np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0])
    flip = d < 0
    cells[flip] = cells[flip][:, [0, 2, 1, 3]]
    return cells
