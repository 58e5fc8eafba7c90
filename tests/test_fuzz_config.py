"""Seeded fuzz test of the configuration: every bad input is one ``ConfigError`` line.

Mutants of the six example configs (a key removed, a value of another type, a list, a table, an
empty list, a string, a huge, negative, NaN or infinite number, a misspelt key or section, a new or
overridden material, ...) go through ``cqdlaser.load_device``: each loads or raises
:class:`~cqdlaser.ConfigError`, never anything else. Mutants that are invalid by construction
(judged from the key's default and name, not from the validation code) must raise. Bad ``--set``
values on the command line exit with code 2 and exactly one ``cqdlaser: error:`` line.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w

import cqdlaser
from cqdlaser.geometry.config import OPTIONAL_SECTIONS, SECTIONS, dump_device
from cqdlaser.geometry.device import MaterialOverride
from cqdlaser.physics.materials import known_materials
from cqdlaser.studies import cli

pytestmark = pytest.mark.serial

CONFIGS = sorted((Path(__file__).parent.parent / "studies" / "configs").glob("*.toml"))
SEED = 20261202
N_MUTANTS = 1200
N_CLI = 60

FIELDS: dict[str, dict[str, Any]] = {
    section: {f.name: f.default for f in dataclasses.fields(cls)}
    for section, cls in [*SECTIONS.items(), ("materials.NAME", MaterialOverride)]
}
"""Section -> key -> default (``materials.NAME``: the keys of a ``[materials.<name>]`` table)."""

LIST_KEYS = {
    "spot_um": {2},
    "thermal_conductivity_w_mk": {3},
    "refractive_index": {2},
    "refractive_index_pump": {2},
}
"""Keys that take a list, and its allowed lengths (the other keys take none)."""

SIGNED_KEYS = {"dn_dt_per_k"}
"""Numeric keys that may be negative."""

INDEX_KEYS = {"refractive_index", "refractive_index_pump"}


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, str):
        return "str"
    return "number"


@dataclass
class Mutant:
    """A mutated config and, for those invalid by construction, why it must be rejected."""

    data: dict[str, Any]
    steps: list[str]
    invalid: list[tuple[tuple[str, ...], Any, str]]
    """(path, value placed there, reason): invalid while that value is still at that path."""

    def must_raise(self) -> bool:
        for path, value, _ in self.invalid:
            node: Any = self.data
            for part in path:
                if not isinstance(node, dict) or part not in node:
                    break
                node = node[part]
            else:
                if node is value:
                    return True
        return False


def _sections(data: dict[str, Any]) -> list[tuple[str, ...]]:
    """Paths of the tables that hold keys: the sections and the ``[materials.<name>]`` tables."""
    paths = [(s,) for s, t in data.items() if s in SECTIONS and isinstance(t, dict)]
    materials = data.get("materials")
    if isinstance(materials, dict):
        paths += [("materials", n) for n, t in materials.items() if isinstance(t, dict)]
    return paths


def _fields_of(path: tuple[str, ...]) -> dict[str, Any]:
    return FIELDS["materials.NAME" if path[0] == "materials" else path[0]]


def _table(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = data
    for part in path:
        node = node[part]
    return node


def _misspell(rng: random.Random, name: str) -> str:
    i = rng.randrange(len(name))
    op = rng.choice(["drop", "double", "swap", "letter"])
    if op == "drop" and len(name) > 1:
        return name[:i] + name[i + 1 :]
    if op == "swap" and i + 1 < len(name):
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    if op == "double":
        return name[:i] + name[i] + name[i:]
    return name[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz_") + name[i + 1 :]


def _bad_values(rng: random.Random, key: str, default: Any) -> list[tuple[Any, str]]:
    """Values that no key of this name and default accepts, each with the reason."""
    kind = _kind(default)
    bad: list[tuple[Any, str]] = [
        ({"x": 1}, "a table"),
        ({"value": {"deeper": [1]}}, "a nested table"),
        ([], "an empty list"),
        ([1.0] * 5, "a list of five"),
        ([[1.0, 2.0]], "a list of lists"),
    ]
    if kind == "bool":
        bad += [("false", "a string for a bool"), (0, "a number for a bool"), (1.0, "a number")]
    elif kind == "str":
        bad += [(3, "a number for a word"), (True, "a bool for a word"), (["sio2"], "a list")]
        bad += [(rng.choice(["", "unobtainium", "SiO2", "mgf 2"]), "no such word")]
    else:
        bad += [
            (math.nan, "NaN"),
            (math.inf, "inf"),
            (-math.inf, "-inf"),
            (1e300, "huge"),
            (10**30, "huge integer"),
            (10**400, "an integer no float holds"),
            ("12", "a string for a number"),
            (True, "a bool for a number"),
        ]
        if key not in SIGNED_KEYS:
            bad += [(-rng.uniform(1e-3, 1e3), "negative"), (-1, "negative integer")]
        lengths = LIST_KEYS.get(key, set())
        if not lengths:
            bad += [([1.0], "a list for a number"), ([1.0, 2.0], "a list for a number")]
        else:
            bad += [([1.0] * n, f"a list of {n}") for n in (1, 4) if n not in lengths]
            if key == "spot_um":
                bad += [(30.0, "one number for two")]
        if key in INDEX_KEYS:
            bad += [
                (0, "n = 0"),
                (0.5, "lossless n < 1"),
                ([0.9, 0.0], "lossless n < 1"),
                ([1.5, -0.1], "kappa < 0"),
                ([0.0, 1.0], "n = 0"),
            ]
        if key in {"thermal_conductivity_w_mk", "density_kg_m3", "specific_heat_j_kgk"}:
            bad += [(0, "zero")]
    if default is not None:
        bad += [(None, "None for a key that has a value")]
    return bad


def _odd_values(rng: random.Random) -> list[Any]:
    """Values of any type that may or may not be right for a key."""
    return [
        rng.uniform(-10, 1e4),
        rng.randint(0, 5000),
        rng.choice([0, 1, 2, 3, 100]),
        rng.uniform(1, 3),
        [rng.uniform(0, 100) for _ in range(rng.choice([2, 3]))],
        rng.choice(["TE", "TM", "si", "square", "stack", "ellipse", "gaussian", "z", "cell"]),
        rng.choice(list(known_materials())),
        rng.choice([True, False]),
        rng.choice([1e-300, 5e-324, 1e10, 0.0, -0.0]),
    ]


def _new_material(rng: random.Random) -> dict[str, Any]:
    props = {
        "thermal_conductivity_w_mk": rng.choice([1.2, [1.0, 1.0, 2.0], 50]),
        "density_kg_m3": rng.choice([1200, 2500.5]),
        "specific_heat_j_kgk": rng.choice([700, 1000.0]),
        "refractive_index": rng.choice([1.6, [1.7, 0.01], [2.0, 0.0]]),
    }
    for key in rng.sample(sorted(props), rng.choice([0, 0, 1])):
        del props[key]
    return props


Mutation = Callable[[random.Random, Mutant], None]


def _remove_key(rng: random.Random, m: Mutant) -> None:
    path = rng.choice(_sections(m.data))
    table = _table(m.data, path)
    if table:
        key = rng.choice(sorted(table))
        del table[key]
        m.steps.append(f"del {'.'.join(path)}.{key}")


def _replace_bad(rng: random.Random, m: Mutant) -> None:
    path = rng.choice(_sections(m.data))
    fields = _fields_of(path)
    key = rng.choice(sorted(fields))
    value, reason = rng.choice(_bad_values(rng, key, fields[key]))
    _table(m.data, path)[key] = value
    m.steps.append(f"{'.'.join(path)}.{key} = {value!r}")
    m.invalid.append(((*path, key), value, reason))


def _replace_odd(rng: random.Random, m: Mutant) -> None:
    path = rng.choice(_sections(m.data))
    key = rng.choice(sorted(_fields_of(path)))
    value = rng.choice(_odd_values(rng))
    _table(m.data, path)[key] = value
    m.steps.append(f"{'.'.join(path)}.{key} = {value!r}")


def _misspell_key(rng: random.Random, m: Mutant) -> None:
    path = rng.choice(_sections(m.data))
    table = _table(m.data, path)
    if not table:
        return
    key = rng.choice(sorted(table))
    wrong = _misspell(rng, key)
    if wrong in _fields_of(path):
        return
    table[wrong] = table.pop(key)
    m.steps.append(f"{'.'.join(path)}.{key} -> {wrong}")
    m.invalid.append(((*path, wrong), table[wrong], "misspelt key"))


def _misspell_section(rng: random.Random, m: Mutant) -> None:
    section = rng.choice(sorted(m.data))
    wrong = _misspell(rng, section)
    if wrong in FIELDS or wrong == "materials" or wrong in m.data:
        return
    m.data[wrong] = m.data.pop(section)
    m.steps.append(f"[{section}] -> [{wrong}]")
    m.invalid.append(((wrong,), m.data[wrong], "misspelt section"))


def _replace_section(rng: random.Random, m: Mutant) -> None:
    section = rng.choice([*SECTIONS, "materials"])
    value = rng.choice([3, "film", [1, 2], [], True, None, False, {"x": {"y": 1}}])
    m.data[section] = value
    m.steps.append(f"[{section}] = {value!r}")
    if not (value is False and section in OPTIONAL_SECTIONS):
        m.invalid.append(((section,), value, "a section that is not a table"))


def _nested_table(rng: random.Random, m: Mutant) -> None:
    path = rng.choice(_sections(m.data))
    key = rng.choice(sorted(_fields_of(path)))
    value = {key: _table(m.data, path).get(key, 1)}
    _table(m.data, path)[key] = value
    m.steps.append(f"{'.'.join(path)}.{key} = {value!r}")
    m.invalid.append(((*path, key), value, "a table where a value goes"))


def _material(rng: random.Random, m: Mutant) -> None:
    materials = m.data.setdefault("materials", {})
    if not isinstance(materials, dict):
        return
    if rng.random() < 0.5:
        name = rng.choice(list(known_materials()))
        materials.setdefault(name, {})
        m.steps.append(f"[materials.{name}]")
    else:
        name = rng.choice(["paint", "resin", "hbn"])
        materials[name] = _new_material(rng)
        m.steps.append(f"[materials.{name}] = {materials[name]!r}")
        section = rng.choice(["film", "substrate", "cap", "cladding", "grating"])
        if isinstance(m.data.get(section), dict):
            m.data[section]["material"] = name
            m.steps.append(f"{section}.material = {name!r}")


def _material_name(rng: random.Random, m: Mutant) -> None:
    section = rng.choice(["film", "substrate", "cap", "cladding", "grating"])
    table = m.data.get(section)
    if not isinstance(table, dict):
        return
    name = rng.choice(["unobtainium", "mgf3", "SIO2", "cqd", " si"])
    table["material"] = name
    m.steps.append(f"{section}.material = {name!r}")
    m.invalid.append(((section, "material"), name, "unknown material"))


MUTATIONS: list[tuple[Mutation, float]] = [
    (_remove_key, 1.0),
    (_replace_bad, 4.0),
    (_replace_odd, 2.0),
    (_misspell_key, 1.0),
    (_misspell_section, 0.5),
    (_replace_section, 0.5),
    (_nested_table, 0.5),
    (_material, 1.5),
    (_material_name, 0.5),
]


def mutants(seed: int = SEED, n: int = N_MUTANTS) -> list[Mutant]:
    """``n`` mutants of the example configs, from one seed (1 to 3 mutations each)."""
    rng = random.Random(seed)
    bases = [tomllib.loads(p.read_text()) for p in CONFIGS]
    ops, weights = zip(*MUTATIONS, strict=True)
    out = []
    for i in range(n):
        m = Mutant(copy.deepcopy(bases[i % len(bases)]), [CONFIGS[i % len(bases)].stem], [])
        for op in rng.choices(ops, weights, k=rng.choice([1, 1, 2, 3])):
            if _sections(m.data):
                op(rng, m)
        out.append(m)
    return out


@dataclass
class Outcome:
    """What loading one mutant did."""

    loaded: bool
    error: BaseException | None


def load(m: Mutant) -> Outcome:
    """Load a mutant; a ``ConfigError`` is an outcome, any other exception escapes."""
    try:
        device = cqdlaser.load_device(copy.deepcopy(m.data))
    except cqdlaser.ConfigError as err:
        return Outcome(False, err)
    again = cqdlaser.load_device(tomllib.loads(dump_device(device)))
    assert again == device, m.steps
    return Outcome(True, None)


def test_mutated_configs_load_or_raise_one_config_error() -> None:
    cases = mutants()
    wrong_type: list[str] = []
    accepted: list[str] = []
    raised = must_raise = 0
    for m in cases:
        try:
            outcome = load(m)
        except Exception as err:  # the point of the test: any other type
            wrong_type.append(f"{m.steps}: {type(err).__name__}: {err}")
            continue
        if outcome.error is not None:
            raised += 1
            message = str(outcome.error)
            assert "\n" not in message and message.startswith(f"{outcome.error.key} = "), message
        if m.must_raise():
            must_raise += 1
            if outcome.loaded:
                accepted.append(f"{m.steps} ({[r for _, _, r in m.invalid]})")
    assert len(cases) >= 1000 and must_raise >= 500 and raised >= must_raise
    assert len(cases) - raised >= 100, "too few mutants load: the fuzz only tests rejection"
    assert not wrong_type, f"{len(wrong_type)} not ConfigError:\n" + "\n".join(wrong_type[:20])
    assert not accepted, f"{len(accepted)} invalid accepted:\n" + "\n".join(accepted[:20])


def bad_overrides(seed: int = SEED, n: int = N_CLI) -> list[str]:
    """``n`` ``--set KEY=VALUE`` texts, each invalid by construction, the issue's cases first."""
    rng = random.Random(seed)
    out = [
        "film.material=3",
        "film.thickness_nm=[]",
        "grating.material={}",
        "mesh.lateral_extent_um=[1]",
        "substrate.thickness_um=[1,2]",
        'heat.nonlinear="false"',
        "materials.mgf2.refractive_index=0",
        "materials.mgf2.refractive_index=0.9",
        "materials.sio2.refractive_index=[1.4,-0.1]",
        "materials.si.thermal_conductivity_w_mk=0",
        "materials.si.density_kg_m3=0",
        "pump.spot_um=30",
        "film.thickness_nm=nan",
        "film={thickness_nm=[60]}",
        "cap.thickness_nm.x=3",
    ]
    keys = [
        (section.replace("NAME", rng.choice(["mgf2", "si", "newglass"])), key, default)
        for section, fields in FIELDS.items()
        for key, default in fields.items()
    ]
    while len(out) < n:
        section, key, default = rng.choice(keys)
        value, _ = rng.choice(_bad_values(rng, key, default))
        if value is None or (isinstance(value, int) and abs(value) > 2**63):
            continue  # not TOML
        out.append(f"{section}.{key}={_inline_toml(value)}")
    return out


def _inline_toml(value: Any) -> str:
    """A value as the inline TOML a user types after ``--set key=``."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_inline_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(map(_inline_toml, value)) + "]"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").strip()


def test_bad_set_values_exit_2_with_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = bad_overrides()
    assert len(overrides) >= 50
    failures = []
    for i, override in enumerate(overrides):
        argv = ["mesh", str(CONFIGS[i % len(CONFIGS)]), "--kind", "stack"]
        argv += ["--set", override, "--out", str(tmp_path / f"m{i}")]
        try:
            code = cli.main(argv)
        except (Exception, SystemExit) as err:  # a traceback or an argparse exit
            code = f"{type(err).__name__}: {err}"
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        ok = (
            code == 2
            and out == ""
            and len(lines) == 1
            and lines[0].startswith("cqdlaser: error: ")
            and "Traceback" not in err
        )
        if not ok:
            failures.append(f"--set {override}: exit {code}, stderr {err.strip()!r}")
        assert not (tmp_path / f"m{i}").exists()
    assert not failures, f"{len(failures)} of {len(overrides)}:\n" + "\n".join(failures)
