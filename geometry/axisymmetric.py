"""The r-z thermal mesh: the layer stack under a circular spot of the same area as the real one.

x[0] = r in [0, R] (R = ``device.lateral_extent``) and x[1] = z, with z = 0 at the top of the
substrate and the whole substrate below. The grating layer is one homogenised region.

The mesh is a structured tensor product of quadrilaterals, made by extruding a point along r and
the resulting lines along z, layer by layer, with node positions computed here:

- along z, the grating and film layers hold uniform elements of at most
  ``h_thin = scale * t_film / (r_thin * film_elements)``, and at least ``film_elements`` of them;
  the cap and the cladding grow away from the film (at least ``film_elements`` too), and the
  substrate grows from the size of the element above it at z = 0 down to the heat sink, by
  ``q = 1 + (mesh.grading - 1) / r_growth``;
- along r, there is a node row at the spot radius (the top-hat edge), elements of
  ``h_edge = scale * t_film`` at it, growing by ``q`` towards the axis (up to ``4 h_edge`` and
  to ``a / 16``, a the spot radius) and outwards to R (without bound).

``r_thin`` and ``r_growth`` (:class:`ThermalSizing`) make a thermal mesh finer than the optical
meshes of the same ``mesh`` section, by as much as its kind needs for the default resolution to
give the film's maximum temperature within the tolerance of that kind (docs/benchmarks.md):
:data:`AXISYMMETRIC_SIZING` (0.1 % of the rise; the r-z mesh is cheap) and
:data:`DEVICE_SIZING` (0.3 %; each vertical node is a plane of the 3D mesh). The film's maximum
is a nodal maximum of a temperature curved across the film (heat leaves through both faces),
whose sampling error ``|T''| h_thin^2 / 8`` is what needs the thin elements: on the paper's device
at 1 us, 1 % of the rise with 40 nm elements, 0.06 % with 10 nm.

A size ``h(s) = min(h_max, c h_a + s ln q, c h_b + (l - s) ln q)``, c = ln q / (q - 1), at
distance ``s`` along a segment of length ``l`` gives elements that grow geometrically by ``q``
away from either end (sizes h_a and h_b there); nodes are placed at unit steps of ``int ds / h``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry._gmsh import gmsh_model, to_mesh_data
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.layers import Layer, layer_stack, z_levels
from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.geometry.stack import film_element_size

_SAMPLES = 20001
SPOT_SIZE_FACTOR = 4.0
"""Largest lateral element inside the spot, in units of the edge element size."""
SPOT_ELEMENTS = 16
"""Fewest lateral elements across a spot half-width: under a spot a few um wide the film's
temperature is a dome whose maximum (on the axis) needs them (20 um substrate, 4 x 6 um spot:
+0.2 % in the steady state with four edge elements as the largest, +0.02 % with this)."""


@dataclass(frozen=True)
class ThermalSizing:
    """How much finer a thermal mesh is than the sizes of the ``mesh`` section.

    Attributes:
        thin: Divisor of the thin-layer element size
            :func:`~geometry.stack.film_element_size`.
        growth: Divisor of ``mesh.grading - 1``, the growth of element sizes away from the film.
    """

    thin: float = 1.0
    growth: float = 1.0

    def grading(self, device: Device) -> float:
        """Growth ratio of neighbouring elements away from the film."""
        return 1.0 + (device.mesh.grading - 1.0) / self.growth

    def thin_element_size(self, device: Device) -> float:
        """Largest element across the grating and film layers (m)."""
        return film_element_size(device) / self.thin


AXISYMMETRIC_SIZING = ThermalSizing(thin=4.0, growth=2.0)
"""The r-z mesh: 10 nm across the paper's film, growth 1.15 at the default resolution (paper
device, CW: -0.06 % at 1-100 us and in the steady state; 3.8k to 10.8k nodes)."""
DEVICE_SIZING = ThermalSizing(thin=4.0)
"""The 3D device mesh: 10 nm across the paper's film, growth 1.3 (the same on the r-z mesh:
-0.19 % at most; halving the growth too would take the paper's quarter device from 0.41 M to
0.97 M nodes)."""


def graded_nodes(
    length: float,
    *,
    h_start: float = math.inf,
    h_end: float = math.inf,
    ratio: float = 1.0,
    h_max: float = math.inf,
    n_min: int = 1,
) -> np.ndarray:
    """Node positions along a segment, as fractions of its length (Gmsh extrusion ``heights``).

    Args:
        length: Segment length (m).
        h_start: Element size at the start (m); ``inf`` leaves the start free.
        h_end: Element size at the end (m); ``inf`` leaves the end free.
        ratio: Growth ratio of neighbouring elements away from either end (1: uniform).
        h_max: Largest element size (m).
        n_min: Fewest elements.

    Returns:
        The increasing fractions ``s_k / length`` of the nodes k = 1..n (the last is 1).
    """
    h0 = min(h_start, h_end, h_max)
    if not math.isfinite(h0):
        raise ValueError("graded_nodes needs a finite h_start, h_end or h_max")
    if ratio <= 1.0 + 1e-12 or (h_start == h_end and h_max <= h_start):
        n = max(n_min, math.ceil(length / h0 - 1e-9))
        return np.arange(1, n + 1) / n
    # Sample more densely where h is small: a geometric grid from both ends.
    u = np.linspace(0.0, 1.0, _SAMPLES)
    s = np.unique(np.concatenate([u * length, length * (1.0 - (1.0 - u) ** 4), length * u**4]))
    # A size growing linearly with slope ln(q), from c h_start with c = ln(q) / (q - 1), gives
    # elements whose sizes grow by exactly q, the first one of size h_start.
    slope = math.log(ratio)
    c = slope / (ratio - 1.0)
    h = np.full_like(s, h_max)
    if math.isfinite(h_start):
        h = np.minimum(h, c * h_start + slope * s)
    if math.isfinite(h_end):
        h = np.minimum(h, c * h_end + slope * (length - s))
    inv = 1.0 / h
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (inv[1:] + inv[:-1]) * np.diff(s))])
    n = max(n_min, math.ceil(cum[-1] - 1e-6))
    nodes = np.interp(np.arange(1, n + 1) * cum[-1] / n, cum, s) / length
    nodes[-1] = 1.0
    return nodes


def edge_element_size(device: Device) -> float:
    """Lateral element size at the spot edge (m): ``scale`` times the film thickness.

    Heat crosses the film in about the time it takes to spread laterally by the film thickness, so
    this resolves the edge of the top-hat source from the earliest times of interest.
    """
    return device.mesh.scale * device.film.thickness


def spot_element_size(spot_half: float, device: Device) -> float:
    """Largest lateral element inside the spot (m): :data:`SPOT_SIZE_FACTOR` edge elements, and
    at most the spot half-width over :data:`SPOT_ELEMENTS`."""
    return min(SPOT_SIZE_FACTOR * edge_element_size(device), spot_half / SPOT_ELEMENTS)


def lateral_segments(
    spot_half: float, extent: float, device: Device, sizing: ThermalSizing
) -> list[tuple[float, np.ndarray]]:
    """The segments [0, a] and [a, extent] along one lateral axis, with their node fractions.

    Args:
        spot_half: Spot half-width or radius a (m): a node sits there.
        extent: Domain half-width or radius (m).
        device: The device (for ``mesh.scale`` and ``mesh.grading``).
        sizing: The refinement of this kind of mesh.

    Returns:
        ``(length, nodes)`` of each segment, from 0 outwards.
    """
    h_edge = edge_element_size(device)
    q = sizing.grading(device)
    inner = graded_nodes(
        spot_half, h_end=h_edge, ratio=q, h_max=spot_element_size(spot_half, device)
    )
    outer = graded_nodes(extent - spot_half, h_start=h_edge, ratio=q)
    return [(spot_half, inner), (extent - spot_half, outer)]


def vertical_layers(device: Device, sizing: ThermalSizing) -> list[tuple[Layer, np.ndarray]]:
    """Every layer of the stack (bottom to top) with the node fractions of its z elements.

    Thin layers (grating, film) are uniform with at least ``mesh.film_elements`` elements of at
    most :meth:`ThermalSizing.thin_element_size`; cladding and cap grow away from the film (at
    least ``film_elements`` too); the substrate grows from the element above it to its bottom.
    """
    layers = layer_stack(device)
    h_film = sizing.thin_element_size(device)
    q = sizing.grading(device)
    n_min = device.mesh.film_elements
    nodes: dict[str, np.ndarray] = {}
    for layer in layers:
        t = layer.thickness
        if layer.name in ("grating", "film"):
            nodes[layer.name] = graded_nodes(t, h_start=h_film, h_end=h_film, n_min=n_min)
        elif layer.name == "cap":
            nodes[layer.name] = graded_nodes(t, h_start=h_film, ratio=q, n_min=n_min)
        elif layer.name == "cladding":
            nodes[layer.name] = graded_nodes(t, h_end=h_film, ratio=q, n_min=n_min)
    h_top = h_film
    if "cladding" in nodes:
        h_top = float(nodes["cladding"][0]) * device.cladding.thickness  # type: ignore[union-attr]
    sub = layers[0]
    nodes["substrate"] = graded_nodes(sub.thickness, h_end=h_top, ratio=q, n_min=n_min)
    return [(layer, nodes[layer.name]) for layer in layers]


def extrusion_parts(out: Sequence[tuple[int, int]], dim: int) -> list[tuple[int, int]]:
    """(top, body) tags of each input of a Gmsh extrusion of entities of dimension ``dim - 1``."""
    pairs = []
    for i, (d, tag) in enumerate(out):
        if d == dim:
            pairs.append((out[i - 1][1], tag))
    return pairs


def build_axisymmetric(
    device: Device, comm: MPI.Comm = MPI.COMM_WORLD, *, msh_file: str | None = None
) -> MeshData:
    """Mesh the r-z section of ``device`` under a circular spot of the same area.

    Args:
        device: The device description.
        comm: Communicator the mesh is distributed over (Gmsh runs on its rank 0).
        msh_file: Also write the Gmsh mesh to this file.

    Returns:
        Quadrilateral mesh with x[0] = r (m) and x[1] = z (m); regions ``substrate``,
        ``cladding``, ``grating`` (homogenised), ``film``, ``cap`` (those present); boundaries
        ``axis`` (r = 0), ``top``, ``bottom`` (heat sink), ``side`` (r = R) and ``interface``
        (interior line at ``z_levels["interface"]``).
    """
    rs = device.spot_radius
    big_r = device.lateral_extent
    stack = vertical_layers(device, AXISYMMETRIC_SIZING)
    levels = z_levels(tuple(layer for layer, _ in stack))
    z_bot, z_top = stack[0][0].z_bottom, stack[-1][0].z_top
    tol = 1e-3 * film_element_size(device) / device.mesh.scale

    with gmsh_model(comm, "axisymmetric") as model:
        if model is not None:
            geo = model.geo
            point = geo.addPoint(0.0, z_bot, 0.0)
            lines = []
            for length, fractions in lateral_segments(rs, big_r, device, AXISYMMETRIC_SIZING):
                out = geo.extrude(
                    [(0, point)], length, 0.0, 0.0, [1] * len(fractions), list(fractions)
                )
                point, line = out[0][1], out[1][1]
                lines.append(line)
            surfaces: dict[str, list[int]] = {}
            for layer, fractions in stack:
                out = geo.extrude(
                    [(1, c) for c in lines],
                    0.0,
                    layer.thickness,
                    0.0,
                    [1] * len(fractions),
                    list(fractions),
                    recombine=True,
                )
                pairs = extrusion_parts(out, 2)
                lines = [top for top, _ in pairs]
                surfaces[layer.name] = [body for _, body in pairs]
            geo.synchronize()
            for name, tags in surfaces.items():
                model.addPhysicalGroup(2, tags, name=name)
            groups: dict[str, list[int]] = {
                n: [] for n in ("axis", "top", "bottom", "side", "interface")
            }
            for _, tag in model.getEntities(1):
                x0, y0, _, x1, y1, _ = model.getBoundingBox(1, tag)
                if x1 < tol:
                    groups["axis"].append(tag)
                elif x0 > big_r - tol:
                    groups["side"].append(tag)
                elif y0 > z_top - tol:
                    groups["top"].append(tag)
                elif y1 < z_bot + tol:
                    groups["bottom"].append(tag)
                elif abs(y0 - levels["interface"]) < tol and abs(y1 - levels["interface"]) < tol:
                    groups["interface"].append(tag)
            for name, tags in groups.items():
                model.addPhysicalGroup(1, tags, name=name)
            model.mesh.generate(2)
        return to_mesh_data(
            model, comm, gdim=2, kind="axisymmetric", z_levels=levels, msh_file=msh_file
        )
