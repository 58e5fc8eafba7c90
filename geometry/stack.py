"""The 1D layer stack: an interval mesh along z, one region per layer.

Two purposes share the builder. ``optical=True`` truncates the substrate and adds an air
``cover`` region, each ``mesh.optical_padding_um`` thick, for guided modes (the mode solver's
ends are transparent: its answers do not depend on the padding, which need only be positive);
``optical=False`` keeps the whole substrate, whose bottom is the heat sink, with elements graded
from the film's size at the top of the substrate to coarse at its bottom.
"""

from __future__ import annotations

import math

from mpi4py import MPI

from cqdlaser.geometry._gmsh import gmsh_model, to_mesh_data
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.layers import Layer, layer_stack, z_levels
from cqdlaser.geometry.meshdata import MeshData


def thin_layer_elements(device: Device, thickness: float, size: float) -> int:
    """Elements across a layer: at least ``mesh.film_elements``, and no larger than ``size`` (m)."""
    return max(device.mesh.film_elements, math.ceil(thickness / size - 1e-9))


def graded_elements(length: float, first: float, ratio: float) -> int:
    """Number of elements, growing by ``ratio`` from ``first`` (m), that span ``length`` (m)."""
    if ratio <= 1.0 + 1e-12:
        return max(1, math.ceil(length / first))
    return max(1, math.ceil(math.log(1.0 + length * (ratio - 1.0) / first) / math.log(ratio)))


def film_element_size(device: Device) -> float:
    """Target element size in the thin layers (m): the film thickness over ``film_elements``."""
    return device.mesh.scale * device.film.thickness / device.mesh.film_elements


def optical_element_size(device: Device) -> float:
    """Target element size for optical meshes (m): a twentieth of the wavelength in a medium of
    index 2, times ``mesh.scale``."""
    return device.mesh.scale * device.optics.wavelength / 40.0


def build_stack(
    device: Device,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    optical: bool = True,
    msh_file: str | None = None,
) -> MeshData:
    """Mesh the layer stack of ``device`` as an interval along x[0] = z (m).

    Args:
        device: The device description.
        comm: Communicator the mesh is distributed over (Gmsh runs on its rank 0).
        optical: Truncate for guided modes (with ``cover``), or keep the whole substrate for heat.
        msh_file: Also write the Gmsh mesh to this file.

    Returns:
        The mesh with regions (every layer, ``cover`` if optical) and boundaries ``bottom``,
        ``top`` and ``interface``.
    """
    layers = list(layer_stack(device))
    pad = device.mesh.optical_padding_um * 1e-6
    if optical:
        sub = layers[0]
        layers[0] = Layer(sub.name, sub.material, -pad, sub.z_top)
        layers.append(Layer("cover", "air", layers[-1].z_top, layers[-1].z_top + pad))
    h_thin = optical_element_size(device) if optical else film_element_size(device)
    h_thin = min(h_thin, film_element_size(device))

    with gmsh_model(comm, "stack") as model:
        if model is not None:
            geo = model.geo
            zs = [layers[0].z_bottom] + [la.z_top for la in layers]
            points = [geo.addPoint(z, 0.0, 0.0) for z in zs]
            lines = []
            for i, layer in enumerate(layers):
                # Substrate and cover run away from the film, so that grading starts at the film.
                if layer.name == "substrate":
                    lines.append(geo.addLine(points[i + 1], points[i]))
                else:
                    lines.append(geo.addLine(points[i], points[i + 1]))
            geo.synchronize()
            for layer, line in zip(layers, lines, strict=True):
                if layer.name in ("substrate", "cover") and not optical:
                    n = graded_elements(layer.thickness, h_thin, device.mesh.grading)
                    ratio = device.mesh.grading
                elif layer.name in ("substrate", "cover"):
                    n = thin_layer_elements(device, layer.thickness, optical_element_size(device))
                    ratio = 1.0
                else:
                    n = thin_layer_elements(device, layer.thickness, h_thin)
                    ratio = 1.0
                model.mesh.setTransfiniteCurve(line, n + 1, "Progression", ratio)
            for layer, line in zip(layers, lines, strict=True):
                model.addPhysicalGroup(1, [line], name=layer.name)
            model.addPhysicalGroup(0, [points[0]], name="bottom")
            model.addPhysicalGroup(0, [points[-1]], name="top")
            idx = next(i for i, la in enumerate(layers) if la.name in ("grating", "film"))
            model.addPhysicalGroup(0, [points[idx]], name="interface")
            model.mesh.generate(1)
        return to_mesh_data(
            model, comm, gdim=1, kind="stack", z_levels=z_levels(tuple(layers)), msh_file=msh_file
        )
