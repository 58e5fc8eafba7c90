"""The device and run description: frozen dataclasses, one per TOML section, validated.

Field names are the TOML keys of the user-facing contract (``docs/configuration.md``), so they carry
their unit (``thickness_nm``); properties without a unit suffix give the same quantity in SI units.
Materials are names here: ``physics.materials`` resolves them (and rejects unknown ones) before any
meshing.

Every field documents itself in its metadata: ``doc`` (its meaning, one sentence), and for a number
its allowed range (for a list of numbers, the range of each entry and a rule on the list) or for a
word its choices; its annotation gives its type. ``__post_init__`` checks both (a number is an int
or a float but not a bool, a switch a bool, a list has its length and its entries' types) and
raises :class:`~geometry.errors.ConfigError` naming ``section.key``, the value and what is allowed.
The configuration reference, ``docs/configuration.md``, is generated from this metadata and the
classes' docstrings (:mod:`geometry.reference`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

from cqdlaser.geometry.dispersion_spec import FORM, check_dispersion
from cqdlaser.geometry.errors import ConfigError

Item = tuple[str, float, float, bool]
"""One entry of a list-valued number: its name and interval ``(name, lo, hi, open_lo)``."""

Rule = tuple[Callable[[tuple[float, ...]], bool], str]
"""A condition on a list-valued number and its text: ``(test, "n >= 1 where kappa = 0")``."""


def _num(
    lo: float,
    hi: float,
    *,
    doc: str,
    integer: bool = False,
    open_lo: bool = False,
    form: str = "",
    items: tuple[Item, ...] = (),
    rule: Rule | None = None,
) -> dict[str, Any]:
    """Metadata of a number in ``[lo, hi]`` (``(lo, hi]`` with ``open_lo``), or of a list of them.

    The field's annotation says which lists it takes (``tuple[float, float]``: two numbers);
    ``form`` (markdown) names them, e.g. ``"a number or `[k_xx, k_yy, k_zz]`"``. Each entry of a
    list is in the same interval, unless ``items`` gives every entry its own; ``rule`` is a
    condition on the whole list.
    """
    return {
        "range": (lo, hi),
        "integer": integer,
        "open_lo": open_lo,
        "doc": doc,
        "form": form,
        "items": items,
        "rule": rule,
    }


def _lossless_index(value: tuple[float, ...]) -> bool:
    n, kappa = value
    return kappa > 0 or n >= 1


def _index(doc: str) -> dict[str, Any]:
    """Metadata of a refractive index: ``n``, or ``[n, kappa]`` where absorbing.

    Physical bounds: n > 0 and kappa >= 0; a lossless medium (kappa = 0) has n >= 1 (only an
    absorbing one, a metal, has n below 1).
    """
    return _num(
        1,
        100,
        doc=doc,
        form="`[n, kappa]`",
        items=(("n", 0, 100, True), ("kappa", 0, 100, False)),
        rule=(_lossless_index, "n >= 1 where kappa = 0"),
    )


def _choice(*choices: str, doc: str) -> dict[str, Any]:
    """Metadata of a word among ``choices``."""
    return {"choices": choices, "doc": doc}


def _material(doc: str) -> dict[str, Any]:
    """Metadata of a material name (resolved, or rejected, by ``physics.materials``)."""
    return {"material": True, "doc": doc}


def _flag(doc: str) -> dict[str, Any]:
    """Metadata of a true/false switch."""
    return {"doc": doc}


def _fmt(x: float) -> str:
    return f"{x:g}"


def format_range(lo: float, hi: float, *, open_lo: bool = False) -> str:
    """The interval ``[lo, hi]``, or ``(lo, hi]`` with an open lower bound, as errors print it."""
    return f"{'(' if open_lo else '['}{_fmt(lo)}, {_fmt(hi)}]"


def number_form(meta: Mapping[str, Any]) -> str:
    """What a numeric key accepts (markdown), ending with the interval of a plain number.

    The configuration reference prints it; a value of the wrong type or shape gets it in its error.
    """
    interval = format_range(*meta["range"], open_lo=meta["open_lo"])
    if meta["items"]:
        entries = [
            f"{name} in {format_range(lo, hi, open_lo=o)}" for name, lo, hi, o in meta["items"]
        ]
        if meta["rule"] is not None:
            entries.append(meta["rule"][1])
        listed = f"{', '.join(entries[:-1])} and {entries[-1]}"
        return f"{meta['form']} with {listed}, or a number in {interval}"
    if meta["form"]:
        return f"{meta['form']}, each in {interval}"
    return f"{'an integer' if meta['integer'] else 'a number'} in {interval}"


def _expected(meta: Mapping[str, Any], forms: tuple[Any, ...]) -> str:
    """What a key accepts, in words, for the error of a value of the wrong type or shape."""
    if "choices" in meta:
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    if meta.get("material"):
        return "a material name (a string)"
    if "range" in meta:
        return number_form(meta).replace("`", "")
    if bool in forms:
        return "true or false"
    return " or ".join(getattr(t, "__name__", str(t)) for t in forms)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _forms(hint: Any) -> tuple[Any, ...]:
    """The members of a union annotation (the annotation itself where it is no union)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _is_a(value: object, kind: Any) -> bool:
    """Whether a scalar is of a kind: a number is an int or float but not a bool."""
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    return isinstance(value, kind)


def _plain(value: Any) -> Any:
    """A number as a Python int or float, a list as a tuple (numpy scalars and arrays too)."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def _fits(value: Any, forms: tuple[Any, ...]) -> bool:
    """Whether a value has one of the forms: a scalar of its kind, or a list of its length whose
    entries are of their kinds."""
    if isinstance(value, tuple):
        lists = [typing.get_args(form) for form in forms if typing.get_origin(form) is tuple]
        return any(len(kinds) == len(value) and all(map(_is_a, value, kinds)) for kinds in lists)
    return any(_is_a(value, kind) for kind in forms if typing.get_origin(kind) is None)


def _in_range(value: float, lo: float, hi: float, open_lo: bool) -> bool:
    # Comparisons (NaN fails them), not math.isfinite, which fails on a too large integer.
    return lo <= value <= hi and not (open_lo and value == lo)


def _check_numbers(key: str, value: Any, meta: Mapping[str, Any]) -> None:
    """Interval of each number (of each list entry), and the list's rule."""
    lo, hi = meta["range"]
    open_lo = meta["open_lo"]
    if not isinstance(value, tuple):
        if not _in_range(value, lo, hi, open_lo):
            raise ConfigError(key, value, f"must be in {format_range(lo, hi, open_lo=open_lo)}")
        return
    if not meta["items"]:
        for v in value:  # the entry in the message: which one is out of range
            if not _in_range(v, lo, hi, open_lo):
                raise ConfigError(key, v, f"must be in {format_range(lo, hi, open_lo=open_lo)}")
    else:
        for v, (name, lo_i, hi_i, open_i) in zip(value, meta["items"], strict=True):
            if not _in_range(v, lo_i, hi_i, open_i):
                interval = format_range(lo_i, hi_i, open_lo=open_i)
                raise ConfigError(key, value, f"{name} must be in {interval}")
    rule = meta["rule"]
    if rule is not None and not rule[0](value):
        raise ConfigError(key, value, f"must have {rule[1]}")


def check_value(key: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> Any:
    """A value checked against its field's annotation and metadata, with numbers made plain.

    The type comes from the annotation (a number is an int or float but not a bool, a list has
    its length and element type), the interval, choices and rules from the metadata.

    Raises:
        ConfigError: naming ``key``, the value and what is allowed.
    """
    forms = _forms(hint)
    if value is None:
        if type(None) in forms:
            return None
        raise ConfigError(key, value, f"must be {_expected(meta, forms)}")
    value = _plain(value)
    if not _fits(value, forms):
        raise ConfigError(key, value, f"must be {_expected(meta, forms)}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(key, value, f"must be {_expected(meta, forms)}")
    if "range" in meta:
        _check_numbers(key, value, meta)
    return value


class _Validated:
    """Type, range and choice checks driven by the field annotations and metadata (a mixin for
    the section dataclasses); ``check`` adds a section's cross-field checks."""

    section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            key = f"{self.section}.{f.name}"
            value = check_value(key, getattr(self, f.name), hints[f.name], f.metadata)
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Cross-field checks of one section (overridden where needed)."""


@dataclass(frozen=True)
class Film(_Validated):
    """The CQD gain layer above the pillar tops (it also fills the grating around the pillars)."""

    section: ClassVar[str] = "film"
    material: str = field(
        default="cqd_inorganic",
        metadata=_material(
            "The CQD solid of the gain layer: `cqd_inorganic`, `cqd_organic` or another."
        ),
    )
    thickness_nm: float = field(
        default=120.0,
        metadata=_num(
            5,
            5000,
            doc="Thickness above the pillar tops (the whole film without a grating); at least "
            "`mesh.film_elements` nm.",
        ),
    )

    @property
    def thickness(self) -> float:
        """Thickness above the pillar tops (m)."""
        return self.thickness_nm * 1e-9


@dataclass(frozen=True)
class Grating(_Validated):
    """Second-order DFB: a square lattice of cylindrical pillars on the substrate (or cladding)."""

    section: ClassVar[str] = "grating"
    lattice: str = field(
        default="square",
        metadata=_choice(
            "square", doc="Lattice of the pillars: square, period the same in x and y."
        ),
    )
    period_nm: float = field(
        default=430.0,
        metadata=_num(100, 5000, doc="Lattice period; the Bragg line is near `n_eff` times it."),
    )
    pillar_diameter_nm: float = field(
        default=160.0,
        metadata=_num(10, 5000, doc="Diameter of the cylindrical pillars; less than `period_nm`."),
    )
    pillar_height_nm: float = field(
        default=130.0,
        metadata=_num(
            5,
            5000,
            doc="Height of the pillars (the grating layer), at least `mesh.film_elements` nm; the "
            "film fills the space around them.",
        ),
    )
    material: str = field(default="sio2", metadata=_material("Material of the pillars."))

    def check(self) -> None:
        if self.pillar_diameter_nm >= self.period_nm:
            raise ConfigError(
                "grating.pillar_diameter_nm",
                self.pillar_diameter_nm,
                f"must be smaller than grating.period_nm = {_fmt(self.period_nm)}",
            )

    @property
    def period(self) -> float:
        """Lattice period (m)."""
        return self.period_nm * 1e-9

    @property
    def pillar_radius(self) -> float:
        """Pillar radius (m)."""
        return 0.5 * self.pillar_diameter_nm * 1e-9

    @property
    def pillar_height(self) -> float:
        """Pillar height (m)."""
        return self.pillar_height_nm * 1e-9

    @property
    def fill_fraction(self) -> float:
        """Area fraction of the lattice cell taken by one pillar."""
        return math.pi * self.pillar_radius**2 / self.period**2


@dataclass(frozen=True)
class Cap(_Validated):
    """Optional spin-on-glass cover on top of the film."""

    section: ClassVar[str] = "cap"
    material: str = field(default="sog", metadata=_material("Material of the cover."))
    thickness_nm: float = field(
        default=1000.0, metadata=_num(1, 1e5, doc="Thickness of the cover.")
    )

    @property
    def thickness(self) -> float:
        """Thickness (m)."""
        return self.thickness_nm * 1e-9


@dataclass(frozen=True)
class Cladding(_Validated):
    """Optional low-index layer between the substrate and the grating/film."""

    section: ClassVar[str] = "cladding"
    material: str = field(default="mgf2", metadata=_material("Material of the cladding."))
    thickness_nm: float = field(
        default=300.0, metadata=_num(1, 1e5, doc="Thickness of the cladding.")
    )

    @property
    def thickness(self) -> float:
        """Thickness (m)."""
        return self.thickness_nm * 1e-9


@dataclass(frozen=True)
class Substrate(_Validated):
    """The substrate; its bottom is the heat sink. ``c_axis`` orients a uniaxial crystal."""

    section: ClassVar[str] = "substrate"
    material: str = field(default="mgf2", metadata=_material("Material of the substrate."))
    thickness_um: float = field(
        default=500.0,
        metadata=_num(1, 1e4, doc="Thickness; the bottom is held at `heat.sink_temperature_k`."),
    )
    c_axis: str = field(
        default="z",
        metadata=_choice(
            "x",
            "y",
            "z",
            doc="Device axis along the c axis of a uniaxial crystal (MgF2, sapphire), which "
            "conducts with its `parallel_c` value along it (z: normal to the layers).",
        ),
    )

    @property
    def thickness(self) -> float:
        """Thickness (m)."""
        return self.thickness_um * 1e-6


@dataclass(frozen=True)
class Pump(_Validated):
    """The pump: spot, waveform and how much of it becomes heat.

    ``pulse_ns = None`` is CW; with ``period_us`` the pulse repeats (a pulse train).
    ``heat_fraction`` is the fraction of the *incident* intensity that becomes heat in the film;
    when omitted, ``heat_fraction_model`` says where it comes from: the film material's calibrated
    value (the default), or computed from the film's absorption and PLQY.
    """

    section: ClassVar[str] = "pump"
    spot_um: tuple[float, float] = field(
        default=(30.0, 50.0),
        metadata=_num(
            0.1,
            1e4,
            form="two numbers `[x, y]`",
            doc="Full spot size along x and y: the sides of the rectangle, the axes of the "
            "ellipse, or the Gaussian's 1/e^2 diameters.",
        ),
    )
    shape: str = field(
        default="rectangle",
        metadata=_choice(
            "rectangle",
            "ellipse",
            "gaussian",
            doc="Spot profile: a top-hat rectangle or ellipse, or a Gaussian (peak twice the "
            "average intensity).",
        ),
    )
    intensity_kw_cm2: float = field(
        default=88.0,
        metadata=_num(
            0, 1e5, open_lo=True, doc="Average peak intensity over the spot during the pulse."
        ),
    )
    wavelength_nm: float = field(
        default=442.0,
        metadata=_num(
            200,
            3000,
            doc="Pump wavelength: the materials' indices at the pump (the film's absorption "
            "coefficient) are taken at it, and with `optics.wavelength_nm` it gives the quantum "
            "defect of the computed heat fraction.",
        ),
    )
    pulse_ns: float | None = field(
        default=None,
        metadata=_num(
            0.01,
            1e10,
            open_lo=True,
            doc="Length of the square pump pulse (of each pulse of a train); omitted: a CW pump "
            "(the transient runs to `heat.end_time_us`; `cqdlaser heat --steady` solves its "
            "steady state).",
        ),
    )
    period_us: float | None = field(
        default=None,
        metadata=_num(
            1e-3,
            1e9,
            open_lo=True,
            doc="Repetition period of a pulse train, longer than the pulse (omitted: one pulse).",
        ),
    )
    heat_fraction: float | None = field(
        default=None,
        metadata=_num(
            0,
            1,
            open_lo=True,
            doc="Fraction of the incident intensity that becomes heat in the film (omitted: "
            "from `pump.heat_fraction_model`).",
        ),
    )
    heat_fraction_model: str = field(
        default="calibrated",
        metadata=_choice(
            "calibrated",
            "absorption",
            doc="Where the heat fraction comes from when `pump.heat_fraction` is omitted: the "
            "film material's `heat_fraction_calibrated` (fitted by the calibration study on the "
            "paper's lasing duration), or A (1 - PLQY lambda_pump / lambda_emission) from the "
            "film's single-pass absorption A of the pump and its `plqy`.",
        ),
    )
    absorption: str = field(
        default="uniform",
        metadata=_choice(
            "uniform",
            "beer-lambert",
            doc="Depth profile of the heat in the CQD material: uniform, or decaying from the top "
            "with the film's absorption coefficient at the pump wavelength.",
        ),
    )

    def check(self) -> None:
        if self.period_us is not None:
            if self.pulse_ns is None:
                raise ConfigError(
                    "pump.period_us",
                    self.period_us,
                    "needs pump.pulse_ns (a CW pump has no period)",
                )
            if self.period_us * 1e3 <= self.pulse_ns:
                raise ConfigError(
                    "pump.period_us",
                    self.period_us,
                    f"must exceed the pulse length pump.pulse_ns = {_fmt(self.pulse_ns)} ns",
                )

    @property
    def intensity(self) -> float:
        """Average peak intensity during the pulse (W/m^2)."""
        return self.intensity_kw_cm2 * 1e7

    @property
    def spot(self) -> tuple[float, float]:
        """Full spot size along x and y (m): the sides of the rectangle, the ellipse's axes, or the
        Gaussian's 1/e^2 diameters."""
        return (self.spot_um[0] * 1e-6, self.spot_um[1] * 1e-6)

    @property
    def spot_area(self) -> float:
        """Spot area (m^2) over which the intensity is the average peak intensity."""
        a, b = self.spot
        return a * b if self.shape == "rectangle" else math.pi * a * b / 4

    @property
    def pulse(self) -> float | None:
        """Pulse length (s), None for CW."""
        return None if self.pulse_ns is None else self.pulse_ns * 1e-9

    @property
    def wavelength(self) -> float:
        """Pump wavelength (m)."""
        return self.wavelength_nm * 1e-9


@dataclass(frozen=True)
class Optics(_Validated):
    """Emission wavelength and the polarisation of the lasing mode."""

    section: ClassVar[str] = "optics"
    wavelength_nm: float = field(
        default=643.0,
        metadata=_num(
            200,
            3000,
            doc="Emission wavelength: the materials' refractive indices are taken at it, the modes "
            "are solved at it and the band-edge search starts from it.",
        ),
    )
    polarisation: str = field(
        default="TE",
        metadata=_choice(
            "TE",
            "TM",
            doc="Polarisation of the lasing mode (TE: electric field in the plane of the layers).",
        ),
    )

    @property
    def wavelength(self) -> float:
        """Emission wavelength (m)."""
        return self.wavelength_nm * 1e-9


@dataclass(frozen=True)
class Heat(_Validated):
    """Thermal run settings: span, mesh kind, boundary conditions and time stepping.

    ``grating_conductivity`` picks the homogenised grating layer's conductivity: ``rayleigh``
    (closed-form estimate, instant), ``cell`` (the periodic cell problem) or ``constriction`` (the
    cell problem with the through-plane constriction resistance of this stack folded into k_zz;
    the closest to resolved pillars, two 3D cell solves).
    """

    section: ClassVar[str] = "heat"
    end_time_us: float = field(
        default=10.0,
        metadata=_num(
            1e-4,
            1e7,
            open_lo=True,
            doc="End of the simulated span from the pump's start (lasing runs stop at the end of "
            "the pulse instead).",
        ),
    )
    mesh: str = field(
        default="axisymmetric",
        metadata=_choice(
            "axisymmetric",
            "device",
            "stack",
            doc="Mesh of heat runs: r-z with a disk spot of the same area, the 3D quarter device "
            "under the real spot, or the 1D layer stack (laterally uniform).",
        ),
    )
    grating_model: str = field(
        default="homogenised",
        metadata=_choice(
            "homogenised",
            "resolved",
            doc="The grating on `device` meshes: one homogenised anisotropic layer, or pillars "
            "resolved in a patch under the spot (`mesh.resolved_pillars_um`).",
        ),
    )
    grating_conductivity: str = field(
        default="rayleigh",
        metadata=_choice(
            "rayleigh",
            "cell",
            "constriction",
            doc="Conductivity of the homogenised grating layer: closed-form estimate, periodic "
            "cell problem, or cell problem with the stack's constriction resistance in k_zz.",
        ),
    )
    sink_temperature_k: float = field(
        default=295.0,
        metadata=_num(
            1,
            2000,
            doc="Temperature of the heat sink (the substrate bottom and far sides), also the "
            "initial and the ambient temperature.",
        ),
    )
    top: str = field(
        default="adiabatic",
        metadata=_choice(
            "adiabatic",
            "convective",
            doc="Top surface: no heat flux, or h (T - T_sink) out with h "
            "`heat_transfer_coefficient_w_m2k`.",
        ),
    )
    heat_transfer_coefficient_w_m2k: float = field(
        default=0.0,
        metadata=_num(0, 1e8, doc="Heat-transfer coefficient h of a convective top."),
    )
    boundary_resistance_m2k_w: float = field(
        default=0.0,
        metadata=_num(
            0,
            1e-3,
            doc="Thermal boundary resistance at the interface under the grating or film (0: "
            "perfect contact).",
        ),
    )
    scheme: str = field(
        default="bdf2",
        metadata=_choice(
            "bdf2",
            "backward-euler",
            doc="Implicit time integration: variable-step BDF2 (backward Euler on the first step "
            "after each pump edge) or backward Euler.",
        ),
    )
    first_step_ns: float = field(
        default=1.0,
        metadata=_num(
            1e-4, 1e6, open_lo=True, doc="First time step, and the step after each pump edge."
        ),
    )
    max_step_us: float = field(
        default=1000.0,
        metadata=_num(1e-6, 1e7, open_lo=True, doc="Largest time step."),
    )
    step_growth: float = field(
        default=1.1,
        metadata=_num(1.0, 2.0, doc="Ratio of successive time steps between pump edges."),
    )
    nonlinear: bool = field(
        default=False,
        metadata=_flag(
            "Temperature-dependent conductivities, k(295 K) (T / 295 K)^n with each material's "
            "`conductivity_exponent` n, solved by Newton's method."
        ),
    )

    @property
    def end_time(self) -> float:
        """End of the simulated span (s)."""
        return self.end_time_us * 1e-6


@dataclass(frozen=True)
class Laser(_Validated):
    """Threshold model: ``P_th(T) = P_th0' exp((T - T_ref)/T0)`` or the Auger-lifetime model.

    ``threshold_kw_cm2`` (P_th0) is the threshold of a reference laser whose lasing mode has the
    gain confinement ``reference_gain_confinement`` and no absorption or leakage loss (defaults:
    the paper's laser). The device's own threshold scales with its lasing mode (gain confinement
    Gamma, modal loss alpha): ``P_th0' = P_th0 (Gamma_ref/Gamma)(1 + alpha/loss_budget)``.
    ``optics`` says which model finds that mode: the planar stack's fundamental mode (fast), or
    the full-vector DFB band edge of least threshold gain (minutes); Gamma_ref defaults to the
    paper laser's in the same model, so that the paper's device reproduces its own threshold.
    ``slope_efficiency`` (laser power out per pump power above threshold) makes the heat source
    follow the lasing state: light that leaves as laser emission is not heat (0: off).
    """

    section: ClassVar[str] = "laser"
    threshold_kw_cm2: float = field(
        default=52.0,
        metadata=_num(
            0,
            1e5,
            open_lo=True,
            doc="Threshold pump intensity P_th0 at `reference_temperature_k` of the reference "
            "laser (`reference_gain_confinement`, no modal loss).",
        ),
    )
    optics: str = field(
        default="stack",
        metadata=_choice(
            "stack",
            "vector",
            doc="Optics model of the lasing mode: the fundamental `optics.polarisation` mode of "
            "the planar stack (exact multilayer root, milliseconds), or the full-vector DFB band "
            "edge of least threshold gain (`cqdlaser bands --kind vector`, minutes; its loss "
            "k0 n/Q).",
        ),
    )
    reference_gain_confinement: float | None = field(
        default=None,
        metadata=_num(
            0,
            1,
            open_lo=True,
            doc="Gain confinement of the lasing mode of the laser whose threshold "
            "`threshold_kw_cm2` is (omitted: the paper laser's, paper_inorganic_mgf2.toml, in "
            "the model of `optics`: its stack TE0 mode or its band-edge lasing mode).",
        ),
    )
    loss_budget_per_cm: float = field(
        default=400.0,
        metadata=_num(
            1,
            1e6,
            doc="Modal loss (internal and mirror) the reference threshold pays for: a mode's "
            "absorption or leakage loss alpha raises the threshold by 1 + alpha/loss_budget "
            "(400/cm: the paper's 1200/cm net gain at ~4x threshold).",
        ),
    )
    t0_k: float = field(
        default=72.0,
        metadata=_num(1, 1e5, doc="Characteristic temperature T0 of the `exponential` model."),
    )
    model: str = field(
        default="exponential",
        metadata=_choice(
            "exponential",
            "auger",
            doc="Threshold law: exp((T - T_ref)/T0), or the Auger-lifetime form "
            "(T/T_ref)^(3/2) exp[(E_a/k)(1/T_ref - 1/T)] of the paper's Eq. (1).",
        ),
    )
    reference_temperature_k: float = field(
        default=295.0,
        metadata=_num(1, 2000, doc="Temperature T_ref at which the threshold is P_th0."),
    )
    activation_energy_mev: float = field(
        default=78.0,
        metadata=_num(0, 5000, doc="Effective activation energy E_a of the `auger` model."),
    )
    slope_efficiency: float = field(
        default=0.0,
        metadata=_num(
            0,
            1,
            doc="Laser power out per pump power above threshold, taken off the heat while the "
            "film lases (0: lasing does not change the heat).",
        ),
    )


@dataclass(frozen=True)
class MeshResolution(_Validated):
    """Resolution, one part of the description, so that coarse and refined runs need no code.

    ``scale`` multiplies every target element size; ``film_elements`` is the minimum number of
    elements across the film (and across each thin layer); ``pillar_elements`` the number across a
    pillar diameter; ``grading`` the growth ratio of element sizes away from the film.
    ``lateral_extent_um`` is the half-width of the thermal domain (default: the substrate
    thickness);
    ``optical_padding_um`` how far optical meshes extend above and below the guiding layers;
    ``pml_thickness_um`` and ``pml_strength`` the perfectly matched layers beyond that padding on
    the open band-edge meshes.
    """

    section: ClassVar[str] = "mesh"
    scale: float = field(
        default=1.0,
        metadata=_num(0.05, 20, doc="Factor on every target element size (below 1: finer)."),
    )
    film_elements: int = field(
        default=3,
        metadata=_num(
            1,
            100,
            integer=True,
            doc="Minimum number of elements across the film and across each thin layer.",
        ),
    )
    pillar_elements: int = field(
        default=8,
        metadata=_num(
            3,
            200,
            integer=True,
            doc="Number of elements across a pillar diameter (each at least 1 nm).",
        ),
    )
    grading: float = field(
        default=1.3,
        metadata=_num(
            1.01,
            4,
            doc="Growth ratio of element sizes away from the film (the r-z heat mesh grows by "
            "1 + (grading - 1) / 2, and its and the 3D heat mesh's film and grating elements are "
            "a quarter of the optical meshes').",
        ),
    )
    lateral_extent_um: float | None = field(
        default=None,
        metadata=_num(
            1,
            1e5,
            doc="Half-width of the thermal domain, more than the spot's half-width (omitted: the "
            "substrate thickness).",
        ),
    )
    optical_padding_um: float = field(
        default=2.0,
        metadata=_num(
            0.1, 100, doc="How far optical meshes extend above and below the guiding layers."
        ),
    )
    pml_thickness_um: float = field(
        default=1.0,
        metadata=_num(
            0.05,
            20,
            doc="Thickness of the perfectly matched layers that continue the optical padding "
            "below and above the open band-edge meshes (cross-section and quarter cell).",
        ),
    )
    pml_strength: float = field(
        default=4.0,
        metadata=_num(
            0.1,
            100,
            doc="Largest imaginary part sigma_max of the PMLs' coordinate stretch "
            "s = 1 + i sigma_max (depth / thickness)^2.",
        ),
    )
    resolved_pillars_um: float | None = field(
        default=None,
        metadata=_num(
            0.1,
            1e4,
            doc="Half-width of the patch of resolved pillars (omitted: the spot's half-widths "
            "plus three periods).",
        ),
    )


@dataclass(frozen=True)
class MaterialOverride(_Validated):
    """Overrides of a known material's properties (a key left out keeps the data file's value,
    listed by ``cqdlaser materials``), or a new material, which needs ``thermal_conductivity_w_mk``,
    ``density_kg_m3``, ``specific_heat_j_kgk`` and ``refractive_index`` (the same at every
    wavelength) or ``dispersion``.

    One ``[materials.<name>]`` table per material; any layer's ``material`` key may name a new one.
    """

    section: ClassVar[str] = "materials"
    thermal_conductivity_w_mk: float | tuple[float, float, float] | None = field(
        default=None,
        metadata=_num(
            1e-4,
            1e5,
            open_lo=True,
            form="a number or `[k_xx, k_yy, k_zz]`",
            doc="Thermal conductivity at 295 K, isotropic or the diagonal in device axes.",
        ),
    )
    density_kg_m3: float | None = field(default=None, metadata=_num(0.01, 1e5, doc="Density."))
    specific_heat_j_kgk: float | None = field(
        default=None, metadata=_num(1, 1e5, doc="Specific heat capacity.")
    )
    refractive_index: float | tuple[float, float] | None = field(
        default=None,
        metadata=_index(
            "Refractive index n (n + i kappa where absorbing) at the emission wavelength "
            "`optics.wavelength_nm`, in place of the material's dispersion there."
        ),
    )
    refractive_index_pump: float | tuple[float, float] | None = field(
        default=None,
        metadata=_index(
            "Refractive index at the pump wavelength `pump.wavelength_nm`, in place of the "
            "material's dispersion there; kappa gives the absorption coefficient "
            "4 pi kappa / lambda_pump (omitted for a new material: `refractive_index`)."
        ),
    )
    dispersion: dict | None = field(
        default=None,
        metadata={
            "table": FORM,
            "doc": "Refractive index as a function of wavelength with its validity range "
            '(`range_nm`; a table: its rows), e.g. `{model = "sellmeier", b = [0.696], '
            "c_um2 = [0.0047], range_nm = [210, 3710]}`; a wavelength outside the range stops "
            "the run (docs/physics.md, Dispersion).",
        },
    )
    dn_dt_per_k: float | None = field(
        default=None,
        metadata=_num(
            -1e-2, 1e-2, doc="Thermo-optic coefficient dn/dT (omitted for a new material: 0)."
        ),
    )
    plqy: float | None = field(
        default=None,
        metadata=_num(
            0,
            1,
            doc="Photoluminescence quantum yield of a gain material, for the heat fraction "
            'computed from absorption (`pump.heat_fraction_model = "absorption"`).',
        ),
    )
    heat_fraction_calibrated: float | None = field(
        default=None,
        metadata=_num(
            0,
            1,
            open_lo=True,
            doc="Fraction of the incident pump that becomes heat in a film of this gain "
            "material, calibrated on a measurement (`pump.heat_fraction_model = "
            '"calibrated"`, the default).',
        ),
    )

    def __post_init__(self) -> None:
        if self.dispersion is not None:
            spec = check_dispersion(f"{self.section}.dispersion", self.dispersion)
            object.__setattr__(self, "dispersion", spec)
        super().__post_init__()


@dataclass(frozen=True)
class Device:
    """A whole device and run, every TOML section; ``grating``, ``cap``, ``cladding`` optional."""

    film: Film = field(default_factory=Film)
    substrate: Substrate = field(default_factory=Substrate)
    grating: Grating | None = None
    cap: Cap | None = None
    cladding: Cladding | None = None
    pump: Pump = field(default_factory=Pump)
    optics: Optics = field(default_factory=Optics)
    heat: Heat = field(default_factory=Heat)
    laser: Laser = field(default_factory=Laser)
    mesh: MeshResolution = field(default_factory=MeshResolution)
    materials: dict[str, MaterialOverride] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_sections()
        self._check_resolution()

    def _check_sections(self) -> None:
        """Each section is its dataclass (None where optional): the Python API may pass any."""
        hints = _hints(Device)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "materials":
                ok = isinstance(value, dict) and all(
                    isinstance(k, str) and isinstance(v, MaterialOverride) for k, v in value.items()
                )
            else:
                ok = any(isinstance(value, kind) for kind in _forms(hints[f.name]))
            if not ok:
                raise ConfigError(f.name, value, f"must be a [{f.name}] table")

    def _check_resolution(self) -> None:
        """Thin layers must hold at least mesh.film_elements elements of >= 1 nm."""
        n = self.mesh.film_elements
        thin = [("film.thickness_nm", self.film.thickness_nm)]
        if self.grating is not None:
            thin.append(("grating.pillar_height_nm", self.grating.pillar_height_nm))
        for key, t in thin:
            if t / n < 1.0:
                raise ConfigError(
                    key,
                    t,
                    f"must be at least {n} nm to hold mesh.film_elements = {n} elements of >= 1 nm",
                )
        if self.grating is not None:
            d = self.grating.pillar_diameter_nm / self.mesh.pillar_elements
            if d < 1.0:
                raise ConfigError(
                    "mesh.pillar_elements",
                    self.mesh.pillar_elements,
                    "gives elements below 1 nm across a "
                    f"{_fmt(self.grating.pillar_diameter_nm)} nm pillar",
                )
        ext = self.mesh.lateral_extent_um
        if ext is not None and ext <= 0.5 * max(self.pump.spot_um):
            raise ConfigError(
                "mesh.lateral_extent_um",
                ext,
                f"must exceed the spot half-width {_fmt(0.5 * max(self.pump.spot_um))} um",
            )

    @property
    def lateral_extent(self) -> float:
        """Half-width of the thermal domain (m): ``mesh.lateral_extent_um`` or the substrate
        thickness."""
        ext = self.mesh.lateral_extent_um
        return (ext if ext is not None else self.substrate.thickness_um) * 1e-6

    @property
    def spot_radius(self) -> float:
        """Radius of the circular spot with the same area as the real spot (m), for r-z meshes."""
        return math.sqrt(self.pump.spot_area / math.pi)
