"""The ``dispersion`` entry of a material, as a config or the data file writes it, checked.

A material's refractive index as a function of wavelength is one table (TOML) with a ``model``:

- ``constant``: ``n``, ``kappa`` (default 0), ``range_nm`` (omitted: valid at every wavelength);
- ``sellmeier``: n^2 = 1 + sum_i B_i l^2 / (l^2 - C_i), lists ``b`` and ``c_um2`` (C_i in um^2,
  l in um), ``range_nm``; lossless;
- ``cauchy``: n = A + B / l^2 + C / l^4 + D l^2 (l in um; ``a``, ``b_um2``, ``c_um4``,
  ``d_per_um2``, each default 0 but ``a``), ``range_nm``; kappa 0, or tabulated over the whole
  range by ``kappa_wavelength_nm`` and ``kappa`` (linear between the nodes);
- ``table``: rows ``wavelength_nm`` (increasing), ``n`` and ``kappa`` (default 0), linear between
  the rows and valid from the first row to the last.

This module only checks and normalises the table (numbers plain, lists tuples), so that the device
description can hold it and every error names its key; ``physics.dispersion`` evaluates it.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Mapping
from typing import Any

from cqdlaser.geometry.errors import ConfigError, unknown_key

MODELS: dict[str, dict[str, tuple[str, bool]]] = {
    "constant": {"n": ("number", True), "kappa": ("number", False), "range_nm": ("range", False)},
    "sellmeier": {"b": ("list", True), "c_um2": ("list", True), "range_nm": ("range", True)},
    "cauchy": {
        "a": ("number", True),
        "b_um2": ("number", False),
        "c_um4": ("number", False),
        "d_per_um2": ("number", False),
        "range_nm": ("range", True),
        "kappa_wavelength_nm": ("list", False),
        "kappa": ("list", False),
    },
    "table": {"wavelength_nm": ("list", True), "n": ("list", True), "kappa": ("list", False)},
}
"""Model -> key -> (kind, required): a number, a list of numbers, or ``[lo, hi]`` in nm."""

FORM = (
    'a table with `model` = `"constant"` (`n`, `kappa`, `range_nm`), `"sellmeier"` (`b`, '
    '`c_um2`, `range_nm`), `"cauchy"` (`a`, `b_um2`, `c_um4`, `d_per_um2`, `range_nm`, '
    '`kappa_wavelength_nm`, `kappa`) or `"table"` (`wavelength_nm`, `n`, `kappa`): wavelengths '
    "increasing, lists of one length, n > 0, kappa >= 0"
)
"""What a ``dispersion`` key accepts (markdown), for the configuration reference."""

MAX_ROWS = 10000
"""Most entries a list of a dispersion table may have."""


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(key, value, "must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(key, value, "must be a finite number")
    return value


def _numbers(key: str, value: Any) -> tuple[float, ...]:
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if not isinstance(value, list | tuple) or not value or len(value) > MAX_ROWS:
        raise ConfigError(key, value, f"must be a list of 1 to {MAX_ROWS} numbers")
    return tuple(_number(key, v) for v in value)


def _range(key: str, value: Any) -> tuple[float, float]:
    lo_hi = _numbers(key, value)
    if len(lo_hi) != 2 or not 0 < lo_hi[0] < lo_hi[1]:
        raise ConfigError(key, value, "must be [lo, hi] with 0 < lo < hi")
    return lo_hi  # type: ignore[return-value]


def _increasing(key: str, values: tuple[float, ...]) -> None:
    if not values[0] > 0 or any(b <= a for a, b in itertools.pairwise(values)):
        raise ConfigError(key, values, "must be positive and increase")


def _at_least(key: str, values: tuple[float, ...], lo: float, strict: bool) -> None:
    bad = [v for v in values if v < lo or (strict and v == lo)]
    if bad:
        raise ConfigError(key, bad[0], f"must be {'>' if strict else '>='} {lo:g}")


def _same_length(key: str, values: tuple[float, ...], other: str, n: int) -> None:
    if len(values) != n:
        raise ConfigError(key, values, f"must have as many entries as {other} ({n})")


def check_dispersion(key: str, value: Any) -> dict[str, Any]:
    """A ``dispersion`` table checked and normalised (floats, tuples), or ConfigError.

    Args:
        key: The key that holds it, for the messages (``materials.mygel.dispersion``).
        value: The table as TOML gives it.

    Raises:
        ConfigError: one line naming ``key`` (or ``key.<entry>``), the value and what is allowed.
    """
    if not isinstance(value, Mapping):
        raise ConfigError(key, value, f"must be {FORM.replace('`', '')}")
    model = value.get("model")
    if model not in MODELS:
        raise ConfigError(f"{key}.model", model, f"must be one of {', '.join(MODELS)}")
    spec: dict[str, Any] = {"model": model}
    fields = MODELS[model]
    for name, entry in value.items():
        if name != "model" and name not in fields:
            raise unknown_key(f"{key}.{name}", entry, ["model", *fields])
    for name, (kind, required) in fields.items():
        if name not in value:
            if required:
                raise ConfigError(f"{key}.{name}", None, f"a {model} dispersion needs it")
            continue
        check = {"number": _number, "list": _numbers, "range": _range}[kind]
        spec[name] = check(f"{key}.{name}", value[name])
    {"constant": _constant, "sellmeier": _sellmeier, "cauchy": _cauchy, "table": _table}[model](
        key, spec
    )
    return spec


def _constant(key: str, spec: dict[str, Any]) -> None:
    _at_least(f"{key}.n", (spec["n"],), 0.0, strict=True)
    _at_least(f"{key}.kappa", (spec.get("kappa", 0.0),), 0.0, strict=False)


def _sellmeier(key: str, spec: dict[str, Any]) -> None:
    _same_length(f"{key}.c_um2", spec["c_um2"], "b", len(spec["b"]))
    lo, hi = spec["range_nm"]
    for c in spec["c_um2"]:
        if c > 0 and lo <= math.sqrt(c) * 1e3 <= hi:
            raise ConfigError(
                f"{key}.c_um2",
                spec["c_um2"],
                f"has a pole at sqrt(C) = {math.sqrt(c) * 1e3:g} nm inside range_nm "
                f"[{lo:g}, {hi:g}]",
            )


def _cauchy(key: str, spec: dict[str, Any]) -> None:
    if ("kappa" in spec) != ("kappa_wavelength_nm" in spec):
        raise ConfigError(f"{key}.kappa", spec.get("kappa"), "needs kappa_wavelength_nm, and back")
    if "kappa" not in spec:
        return
    nodes = spec["kappa_wavelength_nm"]
    _increasing(f"{key}.kappa_wavelength_nm", nodes)
    _same_length(f"{key}.kappa", spec["kappa"], "kappa_wavelength_nm", len(nodes))
    _at_least(f"{key}.kappa", spec["kappa"], 0.0, strict=False)
    lo, hi = spec["range_nm"]
    if nodes[0] > lo or nodes[-1] < hi:
        raise ConfigError(
            f"{key}.kappa_wavelength_nm", nodes, f"must span range_nm [{lo:g}, {hi:g}]"
        )


def _table(key: str, spec: dict[str, Any]) -> None:
    rows = spec["wavelength_nm"]
    if len(rows) < 2:
        raise ConfigError(f"{key}.wavelength_nm", rows, "must have at least 2 rows")
    _increasing(f"{key}.wavelength_nm", rows)
    _same_length(f"{key}.n", spec["n"], "wavelength_nm", len(rows))
    _at_least(f"{key}.n", spec["n"], 0.0, strict=True)
    if "kappa" in spec:
        _same_length(f"{key}.kappa", spec["kappa"], "wavelength_nm", len(rows))
        _at_least(f"{key}.kappa", spec["kappa"], 0.0, strict=False)
