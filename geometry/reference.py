"""The configuration reference, ``docs/configuration.md``, generated from the section dataclasses.

One source: each key's default comes from its dataclass field, its range or choices and its meaning
(``doc``) from the field's metadata, which validation also reads, its unit from its name's suffix
(:data:`UNITS`), and each section's meaning from the first paragraph of its class docstring. So the
reference cannot drift from what the code accepts. Regenerate it with

.. code-block:: sh

    python -m cqdlaser.geometry.reference > docs/configuration.md
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from typing import Any

from cqdlaser.geometry.config import OPTIONAL_SECTIONS, SECTIONS
from cqdlaser.geometry.device import MaterialOverride, format_range, number_form

REGENERATE = "python -m cqdlaser.geometry.reference > docs/configuration.md"
"""The command that writes the reference."""

UNITS: dict[str, str] = {
    "_nm": "nm",
    "_um": "um",
    "_ns": "ns",
    "_us": "us",
    "_k": "K",
    "_mev": "meV",
    "_kw_cm2": "kW/cm^2",
    "_w_mk": "W/(m K)",
    "_w_m2k": "W/(m^2 K)",
    "_m2k_w": "m^2 K/W",
    "_kg_m3": "kg/m^3",
    "_j_kgk": "J/(kg K)",
    "_per_k": "1/K",
    "_per_cm": "1/cm",
}
"""Unit of a key by the suffix of its name (the longest suffix that matches wins)."""

MATERIALS_SECTION = "materials.NAME"
"""How the reference names the ``[materials.<name>]`` tables."""

_INTRO = """\
<!-- Generated from geometry/device.py: do not edit. Regenerate with
     {regenerate} -->

# Configuration reference

A device and a run are described by one TOML file (`studies/configs/` holds the paper's devices).
Each section below is one table of that file. Keys carry their unit in their name
(`thickness_nm`, `intensity_kw_cm2`); the code works in SI units inside.

- Every key may be left out and then takes the default shown. A default shown as *omitted* means
  that the key has no value unless given; its meaning says what happens then.
- A section left out takes all its defaults, except the optional sections, which the device
  has only where the file has their table: {optional}.
- Any key can be overridden on the command line with `--set section.key=value` (material
  properties: `--set materials.NAME.key=value`). The value is read as TOML
  (`--set pump.spot_um=[20,40]`, `--set heat.nonlinear=true`); a bare word such as `si` is a string.
  `--set cap=false` removes an optional section, and setting a key of an absent optional section
  (`--set grating.period_nm=400`) adds the section with the defaults for its other keys.
- Every value is checked before any meshing. A value of the wrong type (a number is an integer
  or a decimal, never `true` or `"12"`; a switch is `true` or `false`; a list has its length) or
  out of range, an unknown section or key (with the nearest valid name) or an unknown material
  stops the run with one line naming the key, the value and what is allowed (exit code 2). Ranges
  include both ends, `[a, b]`, except where the lower end is open, `(a, b]`.
- A material name is one of the data file's materials (`cqdlaser materials` lists them with their
  properties and sources) or one defined by a [`[materials.NAME]`](#materialsname) table.
"""


def unit(key: str) -> str:
    """The unit of a key from the suffix of its name; ``""`` for a dimensionless key."""
    matches = [suffix for suffix in UNITS if key.endswith(suffix)]
    return UNITS[max(matches, key=len)] if matches else ""


def toml_value(value: Any) -> str:
    """A default value as TOML writes it (``None``, which TOML cannot write, is *omitted*)."""
    if value is None:
        return "*omitted*"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, tuple):
        return "`[" + ", ".join(toml_value(v).strip("`") for v in value) + "]`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value:g}`"


def allowed(f: dataclasses.Field) -> str:
    """What a key accepts, as validation enforces it (the same interval text as its errors)."""
    meta = f.metadata
    if "choices" in meta:
        return ", ".join(f'`"{c}"`' for c in meta["choices"])
    if meta.get("material"):
        return "a material name"
    if "table" in meta:
        return meta["table"]
    if "range" in meta:
        lo, hi = meta["range"]
        interval = format_range(lo, hi, open_lo=meta["open_lo"])
        if meta["form"]:
            return number_form(meta)
        return f"an integer in {interval}" if meta["integer"] else interval
    return "`true`, `false`"


def _markdown(text: str) -> str:
    return " ".join(text.split()).replace("``", "`")


def section_meaning(cls: type) -> str:
    """The first paragraph of a section class's docstring, as markdown."""
    return _markdown(inspect.getdoc(cls).split("\n\n")[0])


def section_table(cls: type) -> str:
    """The markdown table of a section: key, unit, default, allowed values, meaning."""
    rows = [
        "| key | unit | default | allowed | meaning |",
        "|---|---|---|---|---|",
    ]
    for f in dataclasses.fields(cls):
        cells = (f"`{f.name}`", unit(f.name), toml_value(f.default), allowed(f), f.metadata["doc"])
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def sections() -> dict[str, type]:
    """Every section of the file, in the reference's order, by its name in the reference."""
    return {**SECTIONS, MATERIALS_SECTION: MaterialOverride}


def _section(name: str, cls: type) -> str:
    text = [f"## `[{name}]`", "", section_meaning(cls)]
    if name in OPTIONAL_SECTIONS:
        text += [
            "",
            f"*Optional:* without a `[{name}]` table the device has none; "
            f"`--set {name}=false` removes it.",
        ]
    if name == MATERIALS_SECTION:
        text += ["", "*Optional:* one table per material, all keys optional."]
    return "\n".join([*text, "", section_table(cls)])


def configuration_reference() -> str:
    """The whole reference, as markdown (the text of ``docs/configuration.md``)."""
    optional = ", ".join(f"`[{s}]`" for s in OPTIONAL_SECTIONS)
    parts = [_INTRO.format(regenerate=REGENERATE, optional=optional).rstrip("\n")]
    parts += [_section(name, cls) for name, cls in sections().items()]
    return "\n\n".join(parts) + "\n"


def main() -> None:
    """Print the reference to stdout."""
    sys.stdout.write(configuration_reference())


if __name__ == "__main__":
    main()
