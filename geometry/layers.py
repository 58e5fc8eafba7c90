"""The planar layer stack of a device: what every mesh kind is built from.

Heights ``z`` (m) are measured from the top of the substrate (z = 0), positive upwards:
substrate [-t_sub, 0], then cladding, grating layer (pillars of height h, filled with the film
material), film (above the pillar tops), cap. Above the top is air (the ``cover`` of optical
meshes).
"""

from __future__ import annotations

from dataclasses import dataclass

from cqdlaser.geometry.device import Device


@dataclass(frozen=True)
class Layer:
    """One horizontal layer: region name, material name(s) and its bottom and top heights (m).

    For the grating layer ``material`` is the pillar material and ``fill_material`` the film
    material around the pillars; elsewhere ``fill_material`` is None.
    """

    name: str
    material: str
    z_bottom: float
    z_top: float
    fill_material: str | None = None

    @property
    def thickness(self) -> float:
        """Thickness (m)."""
        return self.z_top - self.z_bottom


def layer_stack(device: Device) -> tuple[Layer, ...]:
    """The layers from the bottom (substrate) to the top (film or cap)."""
    layers = [Layer("substrate", device.substrate.material, -device.substrate.thickness, 0.0)]
    z = 0.0
    if device.cladding is not None:
        layers.append(Layer("cladding", device.cladding.material, z, z + device.cladding.thickness))
        z += device.cladding.thickness
    if device.grating is not None:
        h = device.grating.pillar_height
        layers.append(Layer("grating", device.grating.material, z, z + h, device.film.material))
        z += h
    layers.append(Layer("film", device.film.material, z, z + device.film.thickness))
    z += device.film.thickness
    if device.cap is not None:
        layers.append(Layer("cap", device.cap.material, z, z + device.cap.thickness))
    return tuple(layers)


def z_levels(layers: tuple[Layer, ...]) -> dict[str, float]:
    """Named heights (m): ``<layer>_bottom`` and ``<layer>_top`` of every layer, and ``interface``
    (the bottom of the grating or film layer, where a thermal boundary resistance sits)."""
    out: dict[str, float] = {}
    for layer in layers:
        out[f"{layer.name}_bottom"] = layer.z_bottom
        out[f"{layer.name}_top"] = layer.z_top
    above = [la for la in layers if la.name in ("grating", "film")]
    out["interface"] = above[0].z_bottom
    return out


def gain_thickness(device: Device) -> float:
    """Thickness of CQD material per unit area (m): the film plus the fill around the pillars.

    This is the volume per area that absorbs the pump and generates heat.
    """
    t = device.film.thickness
    if device.grating is not None:
        t += device.grating.pillar_height * (1.0 - device.grating.fill_fraction)
    return t
