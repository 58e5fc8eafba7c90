"""Refractive index as a function of wavelength: the dispersion models of the materials.

Each model is a frozen dataclass with ``n_complex(wavelength) -> n + i kappa`` (wavelength in m)
and its validity range ``range_m``. The data file and a config write them as ``dispersion`` tables
(:mod:`geometry.dispersion_spec` checks those); :func:`model_from_spec` builds the model.

- :class:`Constant`: n + i kappa over a stated range (every wavelength where the data say so).
- :class:`Sellmeier`: n^2 = 1 + sum_i B_i l^2 / (l^2 - C_i), l in um, C_i in um^2; lossless.
- :class:`Cauchy`: n = A + B / l^2 + C / l^4 + D l^2, l in um (D: the infrared term of Rubin's
  soda-lime fit); kappa 0, or interpolated linearly in a table of (wavelength, kappa).
- :class:`Table`: rows (wavelength, n, kappa), each interpolated linearly in wavelength, valid from
  the first row to the last.

Outside ``range_m`` a model is not evaluated: :func:`index_at` raises ConfigError naming the
material, the wavelength and the range (docs/physics.md, Dispersion, says why an error and not an
extrapolation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cqdlaser.geometry.errors import ConfigError

EVERYWHERE = (0.0, math.inf)
"""Validity range (m) of a constant the data state valid at every wavelength."""

RANGE_SLACK = 1e-12
"""Relative slack of the range check, for a wavelength converted from nm at a range's end."""


def _um(wavelength: float) -> float:
    return wavelength * 1e6


def _range_nm(range_m: tuple[float, float]) -> str:
    lo, hi = range_m
    if hi == math.inf:
        return "every wavelength"
    return f"[{lo * 1e9:g}, {hi * 1e9:g}] nm"


@dataclass(frozen=True)
class Constant:
    """n + i kappa at every wavelength of ``range_m``."""

    n: float
    kappa: float = 0.0
    range_m: tuple[float, float] = EVERYWHERE

    def n_complex(self, wavelength: float) -> complex:
        """n + i kappa (the same at every wavelength)."""
        return complex(self.n, self.kappa)

    def describe(self) -> str:
        """The model in words (its range is ``range_m``)."""
        return "constant"


@dataclass(frozen=True)
class Sellmeier:
    """n^2 = 1 + sum_i B_i l^2 / (l^2 - C_i), l in um, C_i in um^2 (lossless)."""

    b: tuple[float, ...]
    c_um2: tuple[float, ...]
    range_m: tuple[float, float]

    def n_complex(self, wavelength: float) -> complex:
        """n from the Sellmeier sum; kappa 0."""
        l2 = _um(wavelength) ** 2
        n2 = 1.0 + sum(b * l2 / (l2 - c) for b, c in zip(self.b, self.c_um2, strict=True))
        return complex(math.sqrt(n2) if n2 > 0 else math.nan, 0.0)

    def describe(self) -> str:
        """The model in words (its range is ``range_m``)."""
        return f"Sellmeier, {len(self.b)} term{'s' if len(self.b) > 1 else ''}"


@dataclass(frozen=True)
class Cauchy:
    """n = A + B / l^2 + C / l^4 + D l^2 (l in um); kappa linear in a table, else 0."""

    a: float
    b_um2: float = 0.0
    c_um4: float = 0.0
    d_per_um2: float = 0.0
    range_m: tuple[float, float] = EVERYWHERE
    kappa_wavelength_m: tuple[float, ...] = ()
    kappa: tuple[float, ...] = ()

    def n_complex(self, wavelength: float) -> complex:
        """n from the Cauchy series, kappa from its table (0 without one)."""
        l2 = _um(wavelength) ** 2
        n = self.a + self.b_um2 / l2 + self.c_um4 / l2**2 + self.d_per_um2 * l2
        kappa = (
            float(np.interp(wavelength, self.kappa_wavelength_m, self.kappa)) if self.kappa else 0.0
        )
        return complex(n, kappa)

    def describe(self) -> str:
        """The model in words (its range is ``range_m``)."""
        tabulated = ", kappa tabulated" if self.kappa else ""
        return f"Cauchy{tabulated}"


@dataclass(frozen=True)
class Table:
    """Rows (wavelength (m), n, kappa), interpolated linearly in wavelength between them."""

    wavelength_m: tuple[float, ...]
    n: tuple[float, ...]
    kappa: tuple[float, ...]

    @property
    def range_m(self) -> tuple[float, float]:
        """From the first row to the last."""
        return (self.wavelength_m[0], self.wavelength_m[-1])

    def n_complex(self, wavelength: float) -> complex:
        """n and kappa interpolated linearly in wavelength (exact at the rows)."""
        n = np.interp(wavelength, self.wavelength_m, self.n)
        kappa = np.interp(wavelength, self.wavelength_m, self.kappa)
        return complex(float(n), float(kappa))

    def describe(self) -> str:
        """The model in words (its range is ``range_m``)."""
        return f"table, {len(self.n)} rows"


Dispersion = Constant | Sellmeier | Cauchy | Table
"""Any dispersion model."""


def _nm_range(spec: Mapping[str, Any], default: tuple[float, float]) -> tuple[float, float]:
    if "range_nm" not in spec:
        return default
    lo, hi = spec["range_nm"]
    return (lo / 1e9, hi / 1e9)


def model_from_spec(spec: Mapping[str, Any]) -> Dispersion:
    """The model of a ``dispersion`` table checked by ``geometry.dispersion_spec``."""
    model = spec["model"]
    if model == "constant":
        return Constant(spec["n"], spec.get("kappa", 0.0), _nm_range(spec, EVERYWHERE))
    if model == "sellmeier":
        return Sellmeier(tuple(spec["b"]), tuple(spec["c_um2"]), _nm_range(spec, EVERYWHERE))
    if model == "cauchy":
        return Cauchy(
            a=spec["a"],
            b_um2=spec.get("b_um2", 0.0),
            c_um4=spec.get("c_um4", 0.0),
            d_per_um2=spec.get("d_per_um2", 0.0),
            range_m=_nm_range(spec, EVERYWHERE),
            kappa_wavelength_m=tuple(w / 1e9 for w in spec.get("kappa_wavelength_nm", ())),
            kappa=tuple(spec.get("kappa", ())),
        )
    rows = spec["wavelength_nm"]
    return Table(
        wavelength_m=tuple(w / 1e9 for w in rows),
        n=tuple(spec["n"]),
        kappa=tuple(spec.get("kappa", (0.0,) * len(rows))),
    )


def index_at(model: Dispersion, wavelength: float, *, material: str, key: str) -> complex:
    """A material's n + i kappa at a wavelength (m) inside its model's validity range.

    Args:
        model: The material's dispersion model.
        wavelength: Wavelength (m).
        material: The material's name, for the message.
        key: The config key that set the wavelength (``optics.wavelength_nm``), for the message.

    Raises:
        ConfigError: the wavelength is outside the range (naming the material, the wavelength and
            the range), or the model gives no positive n there.
    """
    lo, hi = model.range_m
    slack = RANGE_SLACK * wavelength
    remedy = f"give materials.{material}.refractive_index or materials.{material}.dispersion"
    if not lo - slack <= wavelength <= hi + slack:
        raise ConfigError(
            key,
            round(wavelength * 1e9, 6),
            f"outside {_range_nm(model.range_m)}, the validity range of the refractive index of "
            f"{material} ({model.describe()}); {remedy}",
        )
    index = model.n_complex(wavelength)
    if not index.real > 0:
        raise ConfigError(
            key,
            round(wavelength * 1e9, 6),
            f"the dispersion of {material} ({model.describe()}) gives no positive n there; "
            f"{remedy}",
        )
    return index
