"""Material properties with their sources, and the material of every region of a device.

The data live in ``materials.toml`` beside this module (each value with its source); a config's
``[materials.<name>]`` tables override a known material's properties or define a new one.

Conductivity is a diagonal tensor in device axes (z normal to the layers). A uniaxial crystal
(MgF2, sapphire, SiC) has ``k_parallel`` along its c axis and ``k_perpendicular`` across it: the
substrate's c axis is ``substrate.c_axis``; other layers of such a material take c along z.

The homogenised grating layer (``grating``) mixes pillars (area fraction f) and the film material
around them. Heat capacity is the volume average. Through the layer the pillars are parallel
conductors, so k_zz = f k_p + (1 - f) k_f exactly; in the plane the Rayleigh/Maxwell-Garnett
estimate for a square array of cylinders, k_xx = k_f (1 + f b) / (1 - f b) with
b = (k_p - k_f)/(k_p + k_f), is used until the periodic cell problem replaces it.

Refractive indices come from each material's dispersion model (``physics.dispersion``, the data
file's ``dispersion`` tables), evaluated at the device's emission wavelength
(``optics.wavelength_nm``: ``refractive_index``) and pump wavelength (``pump.wavelength_nm``:
``refractive_index_pump`` and the absorption coefficient). A config's ``refractive_index`` or
``refractive_index_pump`` is a constant that replaces the model at that wavelength; a new material
with ``refractive_index`` only has that index at every wavelength. A wavelength outside a model's
validity range is a ConfigError. dn/dT stays a constant, the value at the emission wavelength.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from cqdlaser.geometry.device import Device, MaterialOverride, Optics, Pump
from cqdlaser.geometry.dispersion_spec import check_dispersion
from cqdlaser.geometry.errors import ConfigError, unknown_name
from cqdlaser.physics.dispersion import Constant, Dispersion, index_at, model_from_spec

T_REF = 295.0
"""Temperature (K) at which the tabulated properties hold."""

CONTRACT_MATERIALS = (
    "air",
    "glass",
    "sio2",
    "sog",
    "mgf2",
    "sapphire",
    "si",
    "al",
    "diamond",
    "cqd_inorganic",
    "cqd_organic",
)
"""Material names the user-facing contract promises (DESIGN.md); the data file has more."""

EMISSION_WAVELENGTH = Optics().wavelength
"""Emission wavelength (m) at which a material is evaluated when no device says (643 nm)."""

PUMP_WAVELENGTH = Pump().wavelength
"""Pump wavelength (m) at which a material is evaluated when no device says (442 nm)."""


@dataclass(frozen=True)
class Material:
    """A material's properties at 295 K, in SI units and device axes.

    Attributes:
        name: Material name.
        thermal_conductivity: (k_xx, k_yy, k_zz) in W/m/K.
        density: kg/m^3.
        specific_heat: J/kg/K.
        refractive_index: n + i kappa at the emission wavelength ``wavelength``.
        refractive_index_pump: n + i kappa at the pump wavelength ``pump_wavelength``.
        dn_dt: Thermo-optic coefficient, 1/K.
        conductivity_exponent: k(T) = k(295 K) (T / 295 K)^exponent (0: constant).
        plqy: Photoluminescence quantum yield (gain films), else None.
        heat_fraction_calibrated: Fraction of the incident pump that becomes heat in a film of
            this material, as calibrated on the paper's lasing duration (gain films), else None.
        sources: Property -> source text.
        wavelength: Emission wavelength (m) of ``refractive_index``.
        pump_wavelength: Pump wavelength (m) of ``refractive_index_pump``.
    """

    name: str
    thermal_conductivity: tuple[float, float, float]
    density: float
    specific_heat: float
    refractive_index: complex
    refractive_index_pump: complex = 1.0 + 0.0j
    dn_dt: float = 0.0
    conductivity_exponent: float = 0.0
    plqy: float | None = None
    heat_fraction_calibrated: float | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    wavelength: float = EMISSION_WAVELENGTH
    pump_wavelength: float = PUMP_WAVELENGTH

    @property
    def volumetric_heat_capacity(self) -> float:
        """rho c_p (J/m^3/K)."""
        return self.density * self.specific_heat

    @property
    def isotropic(self) -> bool:
        """True if the conductivity tensor is a multiple of the identity."""
        kx, ky, kz = self.thermal_conductivity
        return kx == ky == kz

    @property
    def permittivity(self) -> complex:
        """Relative permittivity (n + i kappa)^2 at the emission wavelength."""
        return self.refractive_index**2

    @property
    def absorption_coefficient(self) -> float:
        """Intensity absorption coefficient at the pump wavelength (1/m): 4 pi kappa / lambda."""
        return 4.0 * math.pi * self.refractive_index_pump.imag / self.pump_wavelength

    def diffusivity(self, axis: int = 2) -> float:
        """Thermal diffusivity k/(rho c_p) along an axis (m^2/s)."""
        return self.thermal_conductivity[axis] / self.volumetric_heat_capacity

    def conductivity_at(self, temperature: float) -> tuple[float, float, float]:
        """The conductivity tensor's diagonal at a temperature (K)."""
        f = (temperature / T_REF) ** self.conductivity_exponent
        kx, ky, kz = self.thermal_conductivity
        return (kx * f, ky * f, kz * f)


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def _complex(value: Any) -> complex:
    if isinstance(value, list | tuple):
        return complex(value[0], value[1])
    return complex(value)


@cache
def _data() -> dict[str, dict[str, Any]]:
    text = resources.files("cqdlaser.physics").joinpath("materials.toml").read_text()
    return tomllib.loads(text)


def known_materials() -> tuple[str, ...]:
    """Names of the materials in the data file."""
    return tuple(_data())


def _conductivity(entry: Any, c_axis: str) -> tuple[float, float, float]:
    if isinstance(entry, dict):
        par, perp = float(entry["parallel_c"]), float(entry["perpendicular_c"])
        return tuple(par if ax == c_axis else perp for ax in "xyz")  # type: ignore[return-value]
    if isinstance(entry, list | tuple):
        return (float(entry[0]), float(entry[1]), float(entry[2]))
    k = float(entry)
    return (k, k, k)


REQUIRED = ("thermal_conductivity_w_mk", "density_kg_m3", "specific_heat_j_kgk")
"""Keys a new material must give, besides ``refractive_index`` or ``dispersion``."""

OPTICAL = ("refractive_index", "dispersion")
"""A new material gives one of these (or both)."""


def dispersion(name: str, overrides: dict[str, MaterialOverride] | None = None) -> Dispersion:
    """A material's dispersion model: the config's ``dispersion``, else the data file's, else
    (a new material) its ``refractive_index`` at every wavelength.

    Raises:
        ConfigError: unknown name, or a new material with neither ``refractive_index`` nor
            ``dispersion``.
    """
    entry, _ = _entry(name, overrides or {}, f"materials.{name}")
    return _model(name, entry)


def _model(name: str, entry: dict[str, Any]) -> Dispersion:
    if "dispersion" in entry:
        return model_from_spec(
            check_dispersion(f"materials.{name}.dispersion", entry["dispersion"])
        )
    n = _complex(entry["refractive_index"])
    return Constant(n.real, n.imag)


def _index(
    name: str, entry: dict[str, Any], model: Dispersion, given: str, at: float, key: str
) -> complex:
    """The config's constant ``given`` (``refractive_index``...) if it has one, else the model at
    wavelength ``at`` (m), inside its range."""
    if given in entry:
        return _complex(entry[given])
    return index_at(model, at, material=name, key=key)


def _entry(
    name: str, overrides: dict[str, MaterialOverride], key: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The data file's entry for a material with the config's overrides, and its sources."""
    data = _data()
    entry: dict[str, Any] = dict(data.get(name, {}))
    over = overrides.get(name)
    if not entry and over is None:
        raise unknown_name(key, name, [*data, *overrides])
    sources = dict(entry.pop("sources", {}))
    if over is not None:
        for f in dataclasses.fields(over):
            value = getattr(over, f.name)
            if value is not None:
                entry[f.name] = value
                sources[f.name] = "user override ([materials] in the config)"
    missing = [r for r in REQUIRED if r not in entry]
    if not any(k in entry for k in OPTICAL):
        missing.append(" or ".join(OPTICAL))
    if missing:
        raise ConfigError(
            f"materials.{name}",
            None,
            f"a new material needs {', '.join(missing)} (it is not in the data file)",
        )
    return entry, sources


def get_material(
    name: str,
    overrides: dict[str, MaterialOverride] | None = None,
    *,
    c_axis: str = "z",
    key: str = "material",
    wavelength: float = EMISSION_WAVELENGTH,
    pump_wavelength: float = PUMP_WAVELENGTH,
) -> Material:
    """A material by name, with the config's overrides applied, its indices at two wavelengths.

    Args:
        name: Material name (data file, or defined in ``overrides``).
        overrides: The config's ``[materials.<name>]`` tables.
        c_axis: Orientation of a uniaxial crystal's c axis: "x", "y" or "z".
        key: Config key that named the material, for the error message.
        wavelength: Emission wavelength (m): ``refractive_index`` (``optics.wavelength``).
        pump_wavelength: Pump wavelength (m): ``refractive_index_pump`` (``pump.wavelength``).

    Raises:
        ConfigError: unknown name (with the nearest valid one), a new material that lacks a
            required property, or a wavelength outside the material's dispersion range (naming
            the material, the wavelength and the range).
    """
    entry, sources = _entry(name, overrides or {}, key)
    model = _model(name, entry)

    def index(given: str, at: float, wavelength_key: str) -> complex:
        return _index(name, entry, model, given, at, wavelength_key)

    return Material(
        name=name,
        thermal_conductivity=_conductivity(entry["thermal_conductivity_w_mk"], c_axis),
        density=float(entry["density_kg_m3"]),
        specific_heat=float(entry["specific_heat_j_kgk"]),
        refractive_index=index("refractive_index", wavelength, "optics.wavelength_nm"),
        refractive_index_pump=index("refractive_index_pump", pump_wavelength, "pump.wavelength_nm"),
        dn_dt=float(entry.get("dn_dt_per_k", 0.0)),
        conductivity_exponent=float(entry.get("conductivity_exponent", 0.0)),
        plqy=None if entry.get("plqy") is None else float(entry["plqy"]),
        heat_fraction_calibrated=_optional(entry.get("heat_fraction_calibrated")),
        sources=sources,
        wavelength=wavelength,
        pump_wavelength=pump_wavelength,
    )


def homogenised_grating(pillar: Material, fill: Material, fill_fraction: float) -> Material:
    """The grating layer as one anisotropic material (see the module docstring for the rules)."""
    f = fill_fraction
    kp, kf = pillar.thermal_conductivity[2], fill.thermal_conductivity[2]
    b = (kp - kf) / (kp + kf)
    k_plane = kf * (1.0 + f * b) / (1.0 - f * b)
    k_z = f * kp + (1.0 - f) * kf
    rho = f * pillar.density + (1.0 - f) * fill.density
    rho_c = f * pillar.volumetric_heat_capacity + (1.0 - f) * fill.volumetric_heat_capacity
    eps = f * pillar.permittivity + (1.0 - f) * fill.permittivity
    return Material(
        name=f"grating({pillar.name}|{fill.name})",
        thermal_conductivity=(k_plane, k_plane, k_z),
        density=rho,
        specific_heat=rho_c / rho,
        refractive_index=complex(eps) ** 0.5,
        refractive_index_pump=(
            f * pillar.refractive_index_pump**2 + (1 - f) * fill.refractive_index_pump**2
        )
        ** 0.5,
        dn_dt=f * pillar.dn_dt + (1.0 - f) * fill.dn_dt,
        conductivity_exponent=0.0,
        plqy=fill.plqy,
        sources={
            "all": "homogenised: volume averages; k_zz parallel, k_xx Rayleigh (2D Maxwell-Garnett)"
        },
        wavelength=fill.wavelength,
        pump_wavelength=fill.pump_wavelength,
    )


def region_materials(device: Device) -> dict[str, Material]:
    """The material of every region a mesh of ``device`` can have, keyed by region name.

    Refractive indices are at ``optics.wavelength`` and ``pump.wavelength``.

    Raises:
        ConfigError: for an unknown material, or a wavelength outside a material's dispersion
            range, before any meshing.
    """

    def material(name: str, key: str, c_axis: str = "z") -> Material:
        return get_material(
            name,
            device.materials,
            c_axis=c_axis,
            key=key,
            wavelength=device.optics.wavelength,
            pump_wavelength=device.pump.wavelength,
        )

    out = {
        "film": material(device.film.material, "film.material"),
        "substrate": material(
            device.substrate.material, "substrate.material", device.substrate.c_axis
        ),
        "cover": material("air", "material"),
    }
    out["grating_fill"] = out["film"]
    if device.grating is not None:
        out["pillars"] = material(device.grating.material, "grating.material")
        out["grating"] = homogenised_grating(
            out["pillars"], out["film"], device.grating.fill_fraction
        )
    if device.cladding is not None:
        out["cladding"] = material(device.cladding.material, "cladding.material")
    if device.cap is not None:
        out["cap"] = material(device.cap.material, "cap.material")
    return out


def validate_materials(device: Device) -> None:
    """Resolve every material name of a device (and the user-defined ones), and check the film
    material has the data its heat-fraction model needs, raising ConfigError.

    The device's materials are evaluated at its wavelengths (each inside its dispersion range); a
    user-defined material that no layer uses needs only to be complete."""
    from cqdlaser.physics.source import check_heat_fraction_data

    check_heat_fraction_data(device, region_materials(device)["film"])
    for name in device.materials:
        dispersion(name, device.materials)


def _listed_index(
    name: str, entry: dict[str, Any], model: Dispersion, given: str, at: float
) -> list[float] | None:
    """[n, kappa] for the materials table; None outside the model's range."""
    try:
        index = _index(name, entry, model, given, at, given)
    except ConfigError:
        return None
    return [index.real, index.imag]


def materials_table(device: Device | None = None) -> list[dict[str, Any]]:
    """One row per known material (and the device's own): properties (with units in the keys),
    the refractive index at the device's emission and pump wavelengths (643 and 442 nm without a
    device), the dispersion model with its validity range, and the sources."""
    wavelength = EMISSION_WAVELENGTH if device is None else device.optics.wavelength
    pump = PUMP_WAVELENGTH if device is None else device.pump.wavelength
    over = {} if device is None else device.materials
    rows = []
    for name in dict.fromkeys([*known_materials(), *over]):
        entry, _ = _entry(name, over, name)
        model = _model(name, entry)
        lo, hi = model.range_m
        m = get_material(  # indices below, each None outside the range
            name,
            over,
            wavelength=min(max(wavelength, lo), hi),
            pump_wavelength=min(max(pump, lo), hi),
        )
        n, n_pump = (
            _listed_index(name, entry, model, given, at)
            for given, at in (("refractive_index", wavelength), ("refractive_index_pump", pump))
        )
        kx, _, kz = m.thermal_conductivity
        rows.append(
            {
                "name": name,
                "k_w_mk": kx if m.isotropic else [kx, kz],
                "density_kg_m3": m.density,
                "specific_heat_j_kgk": m.specific_heat,
                "wavelength_nm": round(wavelength * 1e9, 6),
                "pump_wavelength_nm": round(pump * 1e9, 6),
                "n": n,
                "n_pump": n_pump,
                "dispersion": model.describe(),
                "range_nm": [lo * 1e9, hi * 1e9 if math.isfinite(hi) else None],
                "dn_dt_per_k": m.dn_dt,
                "k_exponent": m.conductivity_exponent,
                "sources": m.sources,
            }
        )
    return rows
