"""TOML <-> :class:`~geometry.device.Device`, with ``--set section.key=value`` overrides.

Unknown sections and keys are errors naming the nearest valid one; values are checked by the
dataclasses themselves. Lists in TOML become tuples (the dataclasses are frozen and hashable).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tomli_w

from cqdlaser.geometry.device import (
    Cap,
    Cladding,
    Device,
    Film,
    Grating,
    Heat,
    Laser,
    MaterialOverride,
    MeshResolution,
    Optics,
    Pump,
    Substrate,
)
from cqdlaser.geometry.errors import ConfigError, nearest, unknown_key

SECTIONS: dict[str, type] = {
    "film": Film,
    "grating": Grating,
    "cap": Cap,
    "cladding": Cladding,
    "substrate": Substrate,
    "pump": Pump,
    "optics": Optics,
    "heat": Heat,
    "laser": Laser,
    "mesh": MeshResolution,
}
OPTIONAL_SECTIONS = ("grating", "cap", "cladding")


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _build(cls: type, section: str, table: Any) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError(section, table, "must be a table of keys")
    names = {f.name for f in dataclasses.fields(cls)}
    for key in table:
        if key not in names:
            raise unknown_key(f"{section}.{key}", table[key], names)
    try:
        return cls(**{k: _tuples(v) for k, v in table.items()})
    except ConfigError as err:
        if section.startswith("materials."):
            raise ConfigError(
                f"{section}.{err.key.split('.', 1)[1]}", err.value, err.allowed
            ) from None
        raise
    except TypeError as err:  # a wrong type that the range check did not catch
        raise ConfigError(section, dict(table), str(err)) from None


def device_from_dict(data: Mapping[str, Any]) -> Device:
    """Build and validate a :class:`Device` from the nested mapping of a TOML file.

    An optional section (grating, cap, cladding) set to ``false`` is removed.
    """
    valid = [*SECTIONS, "materials"]
    kwargs: dict[str, Any] = {}
    for section, table in data.items():
        if section not in valid:
            raise ConfigError(
                section,
                "[section]",
                f"unknown section{nearest(section, valid)}; valid: {', '.join(valid)}",
            )
        if section == "materials":
            if not isinstance(table, Mapping):
                raise ConfigError(
                    "materials", table, "must be a table of [materials.<name>] tables"
                )
            kwargs["materials"] = {
                name: _build(MaterialOverride, f"materials.{name}", props)
                for name, props in table.items()
            }
        elif section in OPTIONAL_SECTIONS and table is False:
            kwargs[section] = None
        else:
            kwargs[section] = _build(SECTIONS[section], section, table)
    return Device(**kwargs)


def device_to_dict(device: Device) -> dict[str, Any]:
    """The nested mapping (TOML-ready: no ``None``) that :func:`device_from_dict` reads back."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, tuple):
            return [clean(v) for v in obj]
        return obj

    out: dict[str, Any] = {}
    for section in SECTIONS:
        part = getattr(device, section)
        if part is None:
            continue
        out[section] = {
            f.name: clean(getattr(part, f.name))
            for f in dataclasses.fields(part)
            if getattr(part, f.name) is not None
        }
    if device.materials:
        out["materials"] = {
            name: {
                f.name: clean(getattr(m, f.name))
                for f in dataclasses.fields(m)
                if getattr(m, f.name) is not None
            }
            for name, m in device.materials.items()
        }
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"film.thickness_nm=60"`` into its key path and a TOML-parsed value.

    A value that is not valid TOML (``si``, ``TE``) is taken as a string; ``cap=false`` removes
    an optional section.
    """
    if "=" not in text:
        raise ConfigError("--set", text, "must be of the form section.key=value")
    key, raw = (s.strip() for s in text.split("=", 1))
    path = key.split(".")
    if not all(path):
        raise ConfigError("--set", text, "the key must be section.key (or materials.<name>.key)")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return path, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a nested mapping (a copy is returned)."""
    out = tomllib.loads(tomli_w.dumps(data)) if data else {}
    for text in overrides:
        path, value = parse_override(text)
        table = out
        for part in path[:-1]:
            if table.get(part) is False:
                table[part] = {}
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(".".join(path), value, f"{part} is not a section")
        table[path[-1]] = value
    return out


def read_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into a nested mapping, with a clear error where it is not TOML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config", str(path), "no such file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("config", str(path), f"is not valid TOML: {err}") from None


def load_device(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Device:
    """Load a device from a TOML file (or the defaults when ``path`` is None) plus overrides."""
    data = read_config(path) if path is not None else {}
    return device_from_dict(apply_overrides(data, overrides))


def dump_device(device: Device) -> str:
    """The TOML text of a device (round-trips through :func:`load_device`)."""
    return tomli_w.dumps(device_to_dict(device))
