"""Relative permittivity and thermo-optic coefficient of every optical region of a device.

The homogenised ``grating`` region is uniaxial: :func:`physics.modes.grating_permittivity` gives
(eps_parallel, eps_perp) for pillars of area fraction f in the film material; its dn/dT pair is the
same mixture of the constituents' (volume-weighted). Everything else is isotropic,
eps = (n + i kappa)^2 at the emission wavelength.
"""

from __future__ import annotations

from cqdlaser.geometry.device import Device
from cqdlaser.physics.materials import Material, region_materials
from cqdlaser.physics.modes import Permittivity, grating_permittivity


def region_permittivity(
    device: Device,
    regions: list[str] | None = None,
    *,
    materials: dict[str, Material] | None = None,
) -> dict[str, Permittivity]:
    """Permittivity per region name (only ``regions`` when given: a mesh's own region names)."""
    mats = materials or region_materials(device)
    out: dict[str, Permittivity] = {}
    for name, m in mats.items():
        if name == "grating":
            assert device.grating is not None
            out[name] = grating_permittivity(
                device.grating.fill_fraction,
                mats["pillars"].permittivity,
                mats["film"].permittivity,
            )
        else:
            out[name] = m.permittivity
    if regions is not None:
        out = {r: out[r] for r in regions}
    return out


def region_dn_dt(
    device: Device,
    regions: list[str] | None = None,
    *,
    materials: dict[str, Material] | None = None,
) -> dict[str, float]:
    """Thermo-optic coefficient dn/dT (1/K) per region name."""
    mats = materials or region_materials(device)
    out = {name: m.dn_dt for name, m in mats.items()}
    if regions is not None:
        out = {r: out[r] for r in regions}
    return out
