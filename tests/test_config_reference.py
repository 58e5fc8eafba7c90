"""The configuration reference: committed and current, complete, and in line with validation."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from cqdlaser.geometry.errors import ConfigError
from cqdlaser.geometry.reference import (
    MATERIALS_SECTION,
    REGENERATE,
    configuration_reference,
    section_meaning,
    sections,
    unit,
)
from cqdlaser.physics.materials import REQUIRED

pytestmark = pytest.mark.serial

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

DIMENSIONLESS = {
    "heat_fraction",
    "heat_fraction_calibrated",
    "reference_gain_confinement",
    "step_growth",
    "pml_strength",
    "slope_efficiency",
    "scale",
    "film_elements",
    "pillar_elements",
    "grading",
    "refractive_index",
    "refractive_index_pump",
    "plqy",
}
"""Numeric keys without a unit: any other numeric key must have a unit suffix."""

COLUMNS = ("unit", "default", "allowed", "meaning")


def _tables(text: str) -> dict[str, dict[str, dict[str, str]]]:
    """Section name -> key -> column -> cell, read back from the markdown."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    rows: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if heading := re.fullmatch(r"## `\[(.+)\]`", line):
            rows = out.setdefault(heading[1], {})
        elif line.startswith("| `"):
            key, *cells = (c.strip() for c in line.strip().strip("|").split("|"))
            rows[key.strip("`")] = dict(zip(COLUMNS, cells, strict=True))
    return out


TABLES = _tables(configuration_reference())
FIELDS = [(name, cls, f) for name, cls in sections().items() for f in dataclasses.fields(cls)]
NUMERIC = [(n, c, f) for n, c, f in FIELDS if "range" in f.metadata]
CHOICES = [(n, c, f) for n, c, f in FIELDS if "choices" in f.metadata]


def _id(item: tuple) -> str:
    return f"{item[0]}.{item[2].name}"


def test_committed_reference_is_current() -> None:
    assert DOC.read_text() == configuration_reference(), f"stale: run `{REGENERATE}`"


def test_reference_says_how_it_is_made_and_overridden() -> None:
    text = configuration_reference()
    assert "Generated" in text.splitlines()[0] and REGENERATE in text[:300]
    for syntax in ("--set section.key=value", "--set materials.NAME.key=value", "--set cap=false"):
        assert syntax in text


def test_every_section_and_key_appears_with_its_default() -> None:
    assert list(TABLES) == list(sections())
    for name, cls in sections().items():
        assert list(TABLES[name]) == [f.name for f in dataclasses.fields(cls)]
    for name, _, f in FIELDS:
        cell = TABLES[name][f.name]["default"]
        if f.default is None:
            assert cell == "*omitted*"
            continue
        printed = tomllib.loads(f"v = {cell.strip('`')}")["v"]
        expected = list(f.default) if isinstance(f.default, tuple) else f.default
        assert printed == expected, f"{name}.{f.name}"
        assert isinstance(printed, bool) == isinstance(f.default, bool)


def test_every_key_and_section_has_a_meaning() -> None:
    for name, _, f in FIELDS:
        doc = f.metadata.get("doc", "")
        assert doc.strip() and doc.endswith(".") and "|" not in doc, f"{name}.{f.name}"
        assert TABLES[name][f.name]["meaning"] == doc
    text = configuration_reference()
    for name, cls in sections().items():
        assert section_meaning(cls).endswith("."), name
        assert f"## `[{name}]`\n\n{section_meaning(cls)}\n" in text


def test_units_come_from_the_key_suffix() -> None:
    for name, _, f in NUMERIC:
        assert unit(f.name) or f.name in DIMENSIONLESS, f"{name}.{f.name}: no unit suffix"
        assert TABLES[name][f.name]["unit"] == unit(f.name)
    assert unit("thickness_nm") == "nm" and unit("dn_dt_per_k") == "1/K"
    assert unit("boundary_resistance_m2k_w") == "m^2 K/W" and unit("t0_k") == "K"
    assert unit("heat_transfer_coefficient_w_m2k") == "W/(m^2 K)"


def test_new_material_requirements_are_stated() -> None:
    section = configuration_reference().split(f"## `[{MATERIALS_SECTION}]`")[1]
    intro = section.split("| key |")[0]
    for key in REQUIRED:
        assert f"`{key}`" in intro


def _build(cls: type, f: dataclasses.Field, value: float) -> ConfigError | None:
    if isinstance(f.default, tuple):
        value = (value,) * len(f.default)
    try:
        cls(**{f.name: value})
    except ConfigError as err:
        return err
    return None


@pytest.mark.parametrize("item", NUMERIC, ids=_id)
def test_printed_range_is_the_enforced_one(item: tuple) -> None:
    """Inside the printed interval no range error; just outside, the error prints that interval."""
    name, cls, f = item
    allowed = TABLES[name][f.name]["allowed"]
    match = re.search(r"([\[(])([^,\s]+), ([^\]\s]+)\]$", allowed)
    assert match, allowed
    interval = match[0]
    lo, hi = float(match[2]), float(match[3])
    integer = allowed.startswith("an integer")
    step = 1 if integer else None

    def near(bound: float, direction: int) -> float:
        return bound + direction * (step or max(abs(bound), 1.0) * 1e-6)

    if integer:
        lo, hi = int(lo), int(hi)
    inside = [hi, near(lo, +1)] + ([] if match[1] == "(" else [lo])
    outside = [near(hi, +1), lo if match[1] == "(" else near(lo, -1)]
    for value in inside:
        err = _build(cls, f, value)
        # A cross-field check (pillar diameter below the period, ...) may still object.
        assert err is None or interval not in err.allowed, (value, err)
    for value in outside:
        err = _build(cls, f, value)
        assert err is not None, value
        assert (err.key, err.allowed) == (f"{cls.section}.{f.name}", f"must be in {interval}")


@pytest.mark.parametrize("item", CHOICES, ids=_id)
def test_printed_choices_are_the_enforced_ones(item: tuple) -> None:
    name, cls, f = item
    printed = re.findall(r'`"([^"]+)"`', TABLES[name][f.name]["allowed"])
    assert printed == list(f.metadata["choices"])
    for word in printed:
        cls(**{f.name: word})
    with pytest.raises(ConfigError, match=f"{cls.section}.{f.name}"):
        cls(**{f.name: "none-of-these"})
