"""The pump as a heat source: waveform, spot profile and depth profile.

The volumetric heat source is separable,

.. math::

    Q(x, y, z, t) = f(t)\\, \\eta I\\, S(x, y)\\, q(z)\\, \\phi_r,

with ``f(t)`` in [0, 1] the waveform (square pulse, pulse train or CW), ``I`` the average peak
intensity (W/m^2), ``eta`` the heat fraction (the fraction of the *incident* intensity that becomes
heat), ``S`` the spot profile with :math:`\\int S\\, dA` = spot area, ``q(z)`` the depth profile
(1/m) with :math:`\\int \\phi q\\, dz = 1` through the CQD layers, and ``phi_r`` the CQD volume
fraction of the region (film and grating fill 1, homogenised grating ``1 - f``, else 0). So

- 3D quarter meshes (``device``): :math:`\\int Q\\, dV = \\eta I A / 4`;
- r-z meshes (``axisymmetric``, the equal-area disk of radius :math:`\\sqrt{A/\\pi}`):
  :math:`\\int Q\\, 2\\pi r\\, dr\\, dz = \\eta I A`;
- 1D stacks (``stack``, laterally uniform): :math:`\\int Q\\, dz = \\eta I` (per unit area).

Spot shapes (full sizes ``a x b`` along x and y): ``rectangle`` (top hat, area ``ab``), ``ellipse``
(top hat, area ``pi ab/4``), ``gaussian`` (1/e^2 diameters ``a`` and ``b``, peak twice the average
intensity, so that its integral is ``pi ab/4`` as well).

Depth profiles: ``uniform`` (``q = 1/d_g``, ``d_g`` the CQD thickness per unit area) or
``beer-lambert``, with the optical depth counted through the CQD material only,
``tau(z) = alpha * (CQD thickness above z)``, and
``q(z) = alpha exp(-tau(z)) / (1 - exp(-alpha d_g))``.

Heat fraction (when ``pump.heat_fraction`` is not given), by ``pump.heat_fraction_model``:

- ``calibrated`` (the default): the film material's ``heat_fraction_calibrated``, the value the
  calibration study fits on the paper's lasing duration (reading B: lasing at 88 kW/cm2 stops near
  1.8 us); held for any film thickness, as the paper compares its films at equal optical density;
- ``absorption``: ``eta = A (1 - PLQY lambda_pump / lambda_emission)`` with
  ``A = 1 - exp(-alpha d_g)``, every absorbed photon not re-emitted becoming heat.

A film material without the key its model needs stops the run (:func:`check_heat_fraction_data`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import ufl

from cqdlaser.geometry.device import Device, Pump
from cqdlaser.geometry.errors import ConfigError
from cqdlaser.geometry.layers import gain_thickness, layer_stack
from cqdlaser.geometry.meshdata import MeshData

CQD_FRACTIONS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {"film": (1.0, 0.0), "grating_fill": (1.0, 0.0), "grating": (1.0, -1.0)}
)
"""The regions that hold CQD (gain) material, with their CQD volume fraction ``a + b f`` as
``(a, b)`` for the pillars' area fraction ``f``: the film and the fill around resolved pillars
are all CQD, the homogenised grating layer is CQD outside its pillars; other regions none."""

WAVEFORMS = ("pulse", "train", "cw")
SHAPES = ("rectangle", "ellipse", "gaussian")
ABSORPTION = ("uniform", "beer-lambert")


class AbsorbingMaterial(Protocol):
    """What the heat fraction needs of the film material."""

    @property
    def absorption_coefficient(self) -> float:
        """Intensity absorption coefficient at the pump wavelength (1/m)."""
        ...

    @property
    def plqy(self) -> float | None:
        """Photoluminescence quantum yield (None: not known)."""
        ...

    @property
    def heat_fraction_calibrated(self) -> float | None:
        """Calibrated fraction of the incident pump that becomes heat (None: not calibrated)."""
        ...


@dataclass(frozen=True)
class Waveform:
    """The pump's time dependence ``f(t)`` in [0, 1], switched on at t = 0.

    Attributes:
        kind: ``"pulse"`` (one square pulse), ``"train"`` (square pulses repeating every
            ``period``) or ``"cw"``.
        pulse: Pulse length (s); ignored for CW.
        period: Repetition period (s) of a train.
    """

    kind: str = "cw"
    pulse: float | None = None
    period: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in WAVEFORMS:
            raise ValueError(f"Waveform.kind = {self.kind!r}: must be one of {WAVEFORMS}")
        if self.kind in ("pulse", "train") and not (self.pulse is not None and self.pulse > 0):
            raise ValueError(f"Waveform.pulse = {self.pulse!r}: a {self.kind} needs a length > 0")
        if self.kind == "train" and not (self.period is not None and self.period > self.pulse):
            raise ValueError(
                f"Waveform.period = {self.period!r}: must exceed the pulse length {self.pulse!r}"
            )

    @classmethod
    def from_pump(cls, pump: Pump) -> Waveform:
        """The waveform of a ``[pump]`` section (no ``pulse_ns``: CW; ``period_us``: a train)."""
        if pump.pulse is None:
            return cls("cw")
        if pump.period_us is None:
            return cls("pulse", pump.pulse)
        return cls("train", pump.pulse, pump.period_us * 1e-6)

    def intensity_factor(self, t: float) -> float:
        """``f(t)``: 1 while the pump is on, else 0 (0 before t = 0)."""
        if t < 0.0:
            return 0.0
        if self.kind == "cw":
            return 1.0
        assert self.pulse is not None
        if self.kind == "pulse":
            return 1.0 if t < self.pulse else 0.0
        assert self.period is not None
        return 1.0 if math.fmod(t, self.period) < self.pulse else 0.0

    def mean_factor(self, t0: float, t1: float) -> float:
        """The exact mean of ``f`` over [t0, t1] (s): the energy a time step receives."""
        if t1 <= t0:
            return self.intensity_factor(t0)
        return (self._on_time(t1) - self._on_time(t0)) / (t1 - t0)

    def _on_time(self, t: float) -> float:
        """Total time the pump has been on in [0, t] (s)."""
        if t <= 0.0:
            return 0.0
        if self.kind == "cw":
            return t
        assert self.pulse is not None
        if self.kind == "pulse":
            return min(t, self.pulse)
        assert self.period is not None
        n = math.floor(t / self.period)
        return n * self.pulse + min(t - n * self.period, self.pulse)

    def edges(self, end_time: float) -> tuple[float, ...]:
        """The switching times in (0, end_time) (s), where time steps restart small."""
        if self.kind == "cw":
            return ()
        assert self.pulse is not None
        if self.kind == "pulse":
            return (self.pulse,) if self.pulse < end_time else ()
        assert self.period is not None
        out: list[float] = []
        k = 0
        while k * self.period < end_time:
            for t in (k * self.period, k * self.period + self.pulse):
                if 0.0 < t < end_time:
                    out.append(t)
            k += 1
        return tuple(out)


@dataclass(frozen=True)
class HeatSource:
    """The pump's heat source (see the module docstring for the formulas).

    Attributes:
        intensity: Average peak intensity during the pulse, I (W/m^2).
        heat_fraction: Fraction of the incident intensity that becomes heat, eta.
        spot: Full spot size along x and y (m).
        shape: ``"rectangle"``, ``"ellipse"`` or ``"gaussian"``.
        cqd_layers: The layers holding CQD material, bottom to top, as
            (z_bottom (m), z_top (m), lateral CQD fraction).
        region_fractions: CQD volume fraction of each region name (others: 0).
        absorption: ``"uniform"`` or ``"beer-lambert"``.
        absorption_coefficient: alpha (1/m), for Beer-Lambert.
        waveform: The time dependence.
    """

    intensity: float
    heat_fraction: float
    spot: tuple[float, float]
    cqd_layers: tuple[tuple[float, float, float], ...]
    shape: str = "rectangle"
    region_fractions: Mapping[str, float] = field(
        default_factory=lambda: {"film": 1.0, "grating_fill": 1.0}
    )
    absorption: str = "uniform"
    absorption_coefficient: float = 0.0
    waveform: Waveform = field(default_factory=Waveform)

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"HeatSource.shape = {self.shape!r}: must be one of {SHAPES}")
        if self.absorption not in ABSORPTION:
            raise ValueError(
                f"HeatSource.absorption = {self.absorption!r}: must be one of {ABSORPTION}"
            )
        if self.absorption == "beer-lambert" and not self.absorption_coefficient > 0:
            raise ValueError(
                f"HeatSource.absorption_coefficient = {self.absorption_coefficient!r}: "
                "Beer-Lambert needs alpha > 0"
            )
        if not self.cqd_layers or self.gain_thickness <= 0:
            raise ValueError("HeatSource.cqd_layers: no CQD material to absorb the pump")
        if min(self.spot) <= 0:
            raise ValueError(f"HeatSource.spot = {self.spot!r}: sizes must be > 0")

    @property
    def gain_thickness(self) -> float:
        """CQD volume per unit area, d_g (m)."""
        return sum((zt - zb) * phi for zb, zt, phi in self.cqd_layers)

    @property
    def spot_area(self) -> float:
        """Area of the spot (m^2): ``ab`` (rectangle) or ``pi ab/4`` (ellipse, Gaussian)."""
        a, b = self.spot
        return a * b if self.shape == "rectangle" else math.pi * a * b / 4.0

    @property
    def spot_radius(self) -> float:
        """Radius of the equal-area disk (m), used on r-z meshes."""
        return math.sqrt(self.spot_area / math.pi)

    @property
    def power(self) -> float:
        """Heat deposited while the pump is on, eta I A (W)."""
        return self.heat_fraction * self.intensity * self.spot_area

    def deposited_power(self, kind: str) -> float:
        """``int Q dV`` over a mesh of this kind while the pump is on.

        Returns:
            W for ``axisymmetric``; W for the quarter domain of ``device``; W/m^2 for ``stack``.
        """
        if kind == "stack":
            return self.heat_fraction * self.intensity
        if kind == "axisymmetric":
            return self.power
        if kind == "device":
            return 0.25 * self.power
        raise ValueError(f"mesh kind {kind!r} has no heat source (stack, axisymmetric, device)")

    def spot_profile(self, mesh_data: MeshData) -> Any:
        """S as a UFL expression on the mesh (dimensionless; its integral is the spot area)."""
        x = ufl.SpatialCoordinate(mesh_data.mesh)
        a, b = self.spot
        if mesh_data.kind == "stack":
            return ufl.as_ufl(1.0)
        if mesh_data.kind == "axisymmetric":
            rho2 = (x[0] / self.spot_radius) ** 2
        elif mesh_data.kind == "device":
            rho2 = (2.0 * x[0] / a) ** 2 + (2.0 * x[1] / b) ** 2
        else:
            raise ValueError(f"mesh kind {mesh_data.kind!r} has no heat source")
        if self.shape == "gaussian":
            return 2.0 * ufl.exp(-2.0 * rho2)
        if self.shape == "rectangle" and mesh_data.kind == "device":
            inside = ufl.And(ufl.le(abs(x[0]), 0.5 * a), ufl.le(abs(x[1]), 0.5 * b))
            return ufl.conditional(inside, 1.0, 0.0)
        return ufl.conditional(ufl.le(rho2, 1.0), 1.0, 0.0)

    def spot_indicator(self, mesh_data: MeshData) -> Any:
        """1 inside the spot (the 1/e^2 contour for a Gaussian), 0 outside: a UFL expression."""
        if self.shape != "gaussian":
            return self.spot_profile(mesh_data)
        source = HeatSource(
            self.intensity, self.heat_fraction, self.spot, self.cqd_layers, "ellipse"
        )
        return source.spot_profile(mesh_data)

    def depth_profile(self, z: Any) -> Any:
        """q(z) (1/m) as a UFL expression of the height ``z`` (m), per unit CQD volume."""
        d_g = self.gain_thickness
        if self.absorption == "uniform":
            return ufl.as_ufl(1.0 / d_g)
        alpha = self.absorption_coefficient
        above = sum(
            phi * ufl.min_value(ufl.max_value(zt - z, 0.0), zt - zb)
            for zb, zt, phi in self.cqd_layers
        )
        return alpha * ufl.exp(-alpha * above) / -math.expm1(-alpha * d_g)

    def density(self, mesh_data: MeshData) -> dict[str, Any]:
        """Q while the pump is on (W/m^3), as a UFL expression per region of the mesh.

        Regions without CQD material are left out.

        Raises:
            ValueError: if no region of the mesh holds CQD material.
        """
        x = ufl.SpatialCoordinate(mesh_data.mesh)
        z = x[mesh_data.mesh.geometry.dim - 1]
        profile = self.spot_profile(mesh_data) * self.depth_profile(z)
        scale = self.heat_fraction * self.intensity
        out = {
            name: scale * phi * profile
            for name, phi in self.region_fractions.items()
            if phi > 0 and name in mesh_data.regions
        }
        if not out:
            raise ValueError(
                f"no region of the mesh holds CQD material: regions {sorted(mesh_data.regions)}, "
                f"CQD fractions {dict(self.region_fractions)}"
            )
        return out


def cqd_fraction(region: str, fill_fraction: float) -> float:
    """CQD volume fraction of a region (:data:`CQD_FRACTIONS`; 0 for the others).

    Args:
        region: The region name.
        fill_fraction: The pillars' area fraction in the grating layer.
    """
    a, b = CQD_FRACTIONS.get(region, (0.0, 0.0))
    return a + b * fill_fraction


def cqd_fractions(device: Device) -> dict[str, float]:
    """CQD volume fraction of each region name of a device's meshes (absent names: 0)."""
    if device.grating is None:
        return {name: cqd_fraction(name, 0.0) for name in CQD_FRACTIONS if name != "grating"}
    return {name: cqd_fraction(name, device.grating.fill_fraction) for name in CQD_FRACTIONS}


def absorbed_fraction(device: Device, materials: Mapping[str, AbsorbingMaterial]) -> float:
    """Single-pass pump absorption in the CQD material, A = 1 - exp(-alpha d_g)."""
    alpha = materials["film"].absorption_coefficient
    return -math.expm1(-alpha * gain_thickness(device))


HEAT_FRACTION_DATA: Mapping[str, str] = MappingProxyType(
    {"calibrated": "heat_fraction_calibrated", "absorption": "plqy"}
)
"""``pump.heat_fraction_model`` -> the film material's key it needs."""

HEAT_FRACTION_ORIGINS: Mapping[str, str] = MappingProxyType(
    {
        "calibrated": "calibrated",
        "absorption": "computed from absorption and PLQY",
    }
)
"""``pump.heat_fraction_model`` -> the origin results state beside the value."""


def check_heat_fraction_data(device: Device, film: AbsorbingMaterial) -> None:
    """Raise ConfigError when the film material lacks the key the heat-fraction model needs.

    Nothing is needed when ``pump.heat_fraction`` is given.
    """
    if device.pump.heat_fraction is not None:
        return
    model = device.pump.heat_fraction_model
    key = HEAT_FRACTION_DATA[model]
    if getattr(film, key) is None:
        raise ConfigError(
            f"materials.{device.film.material}.{key}",
            None,
            f"missing: pump.heat_fraction_model = {model!r} needs it (give it in "
            f"[materials.{device.film.material}], or set pump.heat_fraction)",
        )


def heat_fraction(device: Device, materials: Mapping[str, AbsorbingMaterial]) -> float:
    """Fraction of the incident pump intensity that becomes heat in the film.

    ``pump.heat_fraction`` when given; else by ``pump.heat_fraction_model``: the film material's
    calibrated value, or ``A (1 - PLQY lambda_pump / lambda_emission)`` with ``A`` from
    :func:`absorbed_fraction` (module docstring).

    Args:
        device: The device description.
        materials: Region name -> material (``materials["film"]`` is used).

    Raises:
        ConfigError: the film material lacks the model's key (:func:`check_heat_fraction_data`).
    """
    if device.pump.heat_fraction is not None:
        return device.pump.heat_fraction
    film = materials["film"]
    check_heat_fraction_data(device, film)
    if device.pump.heat_fraction_model == "calibrated":
        return float(film.heat_fraction_calibrated)  # type: ignore[arg-type]
    ratio = device.pump.wavelength / device.optics.wavelength
    return absorbed_fraction(device, materials) * (1.0 - float(film.plqy) * ratio)  # type: ignore[arg-type]


def heat_fraction_origin(device: Device) -> str:
    """Where :func:`heat_fraction` takes its value from: ``"given"`` (``pump.heat_fraction``),
    ``"calibrated (...)"`` or ``"computed from absorption and PLQY"``
    (:data:`HEAT_FRACTION_ORIGINS`); results state it beside the value."""
    if device.pump.heat_fraction is not None:
        return "given"
    return HEAT_FRACTION_ORIGINS[device.pump.heat_fraction_model]


def source_from_device(device: Device, materials: Mapping[str, AbsorbingMaterial]) -> HeatSource:
    """The heat source of a device's pump (``[pump]``) in its CQD layers.

    Args:
        device: The device description.
        materials: Region name -> material, as from ``physics.materials.region_materials``.
    """
    fractions = cqd_fractions(device)
    layers = tuple(
        (la.z_bottom, la.z_top, fractions[la.name])
        for la in layer_stack(device)
        if la.name in ("grating", "film")
    )
    pump = device.pump
    return HeatSource(
        intensity=pump.intensity,
        heat_fraction=heat_fraction(device, materials),
        spot=pump.spot,
        cqd_layers=layers,
        shape=pump.shape,
        region_fractions=fractions,
        absorption=pump.absorption,
        absorption_coefficient=float(materials["film"].absorption_coefficient),
        waveform=Waveform.from_pump(pump),
    )
