"""TOML <-> :class:`~geometry.device.Device`, with ``--set section.key=value`` overrides.

Unknown sections and keys are errors naming the nearest valid one; values are checked by the
dataclasses themselves, against their annotations and metadata. Lists in TOML become tuples (the
dataclasses are frozen and hashable).
"""

from __future__ import annotations

import dataclasses
import os
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


def _plain(value: Any) -> Any:
    """A copy of a nested mapping as dicts and lists, whatever mapping and sequence types it has."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, section: str, table: Any) -> Any:
    """One section's dataclass from its table: unknown keys here, values by the dataclass."""
    if not isinstance(table, Mapping):
        optional = " (or false to remove it)" if section in OPTIONAL_SECTIONS else ""
        raise ConfigError(section, table, f"must be a table of keys{optional}")
    names = {f.name for f in dataclasses.fields(cls)}
    for key in table:
        if key not in names:
            raise unknown_key(f"{section}.{key}", table[key], names)
    try:
        return cls(**table)
    except ConfigError as err:
        if section.startswith("materials."):
            raise ConfigError(
                f"{section}.{err.key.split('.', 1)[1]}", err.value, err.allowed
            ) from None
        raise


def device_from_dict(data: Mapping[str, Any]) -> Device:
    """Build and validate a :class:`Device` from the nested mapping of a TOML file.

    An optional section (grating, cap, cladding) set to ``false`` is removed.

    Raises:
        ConfigError: for an unknown section or key (naming the nearest valid one), or a value of
            the wrong type or out of its range.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("config", data, "must be a table of sections")
    valid = [*SECTIONS, "materials"]
    kwargs: dict[str, Any] = {}
    for section, table in data.items():
        if section not in valid:
            raise ConfigError(
                str(section),
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


def _lists(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return [_lists(v) for v in obj]
    return obj


def _keys(part: Any) -> dict[str, Any]:
    """A section's keys; a ``None`` is left out where it is the default (the same meaning) and
    kept where the default has a value (``pump.pulse_ns = None``: CW)."""
    return {
        f.name: _lists(getattr(part, f.name))
        for f in dataclasses.fields(part)
        if getattr(part, f.name) is not None or f.default is not None
    }


def device_to_dict(device: Device) -> dict[str, Any]:
    """The nested mapping that :func:`device_from_dict` reads back to the same device.

    It is JSON-ready; a ``None`` it holds (a CW pump's ``pulse_ns``) has no TOML form.
    """
    out: dict[str, Any] = {
        section: _keys(getattr(device, section))
        for section in SECTIONS
        if getattr(device, section) is not None
    }
    if device.materials:
        out["materials"] = {name: _keys(m) for name, m in device.materials.items()}
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
    out = _plain(data)
    if not isinstance(out, dict):
        raise ConfigError("config", data, "must be a table of sections")
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
    if not isinstance(path, str | os.PathLike):
        raise ConfigError("config", path, "must be the path of a TOML file")
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config", str(path), "no such file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("config", str(path), f"is not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError("config", str(path), f"cannot be read: {err}") from None


def load_device(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Device:
    """Load a device from a TOML file (or the defaults when ``path`` is None) plus overrides."""
    data = read_config(path) if path is not None else {}
    return device_from_dict(apply_overrides(data, overrides))


def dump_device(device: Device) -> str:
    """The TOML text of a device (round-trips through :func:`load_device`).

    TOML has no ``None``: a CW pump (``pump.pulse_ns = None``) is written without ``pulse_ns``,
    which reads back as the default pulse.
    """
    data = {
        section: {k: v for k, v in table.items() if v is not None}
        for section, table in device_to_dict(device).items()
    }
    if "materials" in data:
        data["materials"] = {
            name: {k: v for k, v in props.items() if v is not None}
            for name, props in data["materials"].items()
        }
    return tomli_w.dumps(data)
