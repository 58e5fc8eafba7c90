"""Bragg: DFB band-edge wavelengths vs grating period and film thickness above the pillars (TE and
TM, 2D cross-section), the paper's 643 nm marked, and the inverse question: which film thickness,
or which period, puts the non-radiating band edge at a target wavelength, in which polarisation.

The non-radiating (odd) band edge is the one that lases in a second-order DFB with a low threshold
(it does not couple to vertical radiation at the Gamma point); the radiating (even) one is reported
too. The paper device's nominal film (120 nm above the pillars) puts both TE edges near 720-740 nm:
the measured 643 nm needs a much thinner film above the pillars, or TM.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
from scipy.optimize import brentq

from cqdlaser.geometry.builders import build_mesh
from cqdlaser.geometry.config import OPTIONAL_SECTIONS
from cqdlaser.geometry.device import Device, MaterialOverride
from cqdlaser.geometry.errors import ConfigError
from cqdlaser.physics.bands import band_edges, bragg_guess
from cqdlaser.physics.permittivity import region_permittivity
from cqdlaser.studies.common import matplotlib_backend, paper_device, save_figure
from cqdlaser.studies.output import provenance, write_csv, write_json
from cqdlaser.studies.paper.report import row
from cqdlaser.studies.sweep import sweep

CONFIG = "paper_inorganic_mgf2"
TARGET_NM = 643.0


def edges_of(device: Device, comm: MPI.Comm) -> dict[str, float | None]:
    """Odd (non-radiating) and even band-edge wavelengths (nm) on the 2D cross-section."""
    guess = bragg_guess(device, build_mesh(device, "stack", comm))
    data = build_mesh(device, "cross-section", comm)
    eps = region_permittivity(device, list(data.regions))
    found = band_edges(
        data,
        eps,
        period=device.grating.period,
        wavelength_guess=guess,
        polarisation=device.optics.polarisation,
        n_bands=2,
    )
    out: dict[str, float | None] = {"odd_nm": None, "even_nm": None, "bragg_nm": guess * 1e9}
    for e in found:
        out[f"{e.symmetry}_nm"] = e.wavelength * 1e9
    return out


def vary(device: Device, key: str, value: Any) -> Device:
    """A copy of ``device`` with one parameter changed (``dataclasses.replace``, validated as a
    loaded device is).

    Args:
        device: The device.
        key: The parameter as in the TOML file: ``section.key`` (``film.thickness_nm``),
            ``materials.<name>.key`` (a material override, added if the device has none), or an
            optional section (``cap``, ``cladding``, ``grating``) with the value False to remove it.
        value: Its new value (in the key's unit).

    Raises:
        ConfigError: An unknown section or key, a missing section, or a value out of range.
    """
    section, _, rest = key.partition(".")
    if not rest:
        if section not in OPTIONAL_SECTIONS or value is not False:
            raise ConfigError(key, value, f"only an optional section {OPTIONAL_SECTIONS} = false")
        return dataclasses.replace(device, **{section: None})
    if section == "materials":
        name, _, field = rest.partition(".")
        override = device.materials.get(name, MaterialOverride())
        materials = {**device.materials, name: _replaced(override, field, value, key)}
        return dataclasses.replace(device, materials=materials)
    part = getattr(device, section, None)
    if not dataclasses.is_dataclass(part):
        raise ConfigError(key, value, f"the device has no [{section}] section")
    return dataclasses.replace(device, **{section: _replaced(part, rest, value, key)})


def _replaced(part: Any, field: str, value: Any, key: str) -> Any:
    """``part`` (a section dataclass) with ``field`` set to ``value``."""
    if field not in {f.name for f in dataclasses.fields(part)}:
        raise ConfigError(key, value, "unknown key")
    return dataclasses.replace(part, **{field: value})


@dataclass(frozen=True)
class SensitivityRow:
    """One point of :func:`band_edge_sensitivity`.

    Attributes:
        parameter: The config key changed (``""`` for the baseline).
        value: Its value.
        bragg_wavelength: The Bragg estimate n_eff Lambda (m).
        wavelengths: The band-edge wavelengths (m), ascending.
        symmetries: Their symmetry labels.
    """

    parameter: str
    value: Any
    bragg_wavelength: float
    wavelengths: tuple[float, ...]
    symmetries: tuple[str, ...]


def band_edge_sensitivity(
    device: Device,
    parameters: Sequence[tuple[str, Any]],
    *,
    kind: str = "cross-section",
    comm: MPI.Comm = MPI.COMM_WORLD,
    n_bands: int = 2,
    degree: int = 2,
    petsc_options: Mapping[str, Any] | None = None,
) -> list[SensitivityRow]:
    """Band-edge wavelengths of the device and of variants with one parameter changed each.

    Every row builds its meshes (the optical stack and ``kind``: ``"cross-section"``, cheap, or
    ``"cell"``), the Bragg estimate and the band edges nearest it, in the device's
    ``optics.polarisation`` unless the parameter is ``optics.polarisation`` itself.

    Args:
        device: The baseline device (it must have a [grating]).
        parameters: ``(config key, value)`` pairs (see :func:`vary`), e.g.
            ``("film.thickness_nm", 60)``, ``("materials.sog.refractive_index", 1.45)``,
            ``("cap", False)``, ``("optics.polarisation", "TM")``.
        kind: The mesh kind.
        comm: Communicator of the meshes.
        n_bands: Band edges per row.
        degree: Lagrange degree.
        petsc_options: Options of :func:`~physics.bands.band_edges`.

    Returns:
        The baseline row first, then one row per parameter.
    """
    if kind not in ("cross-section", "cell"):
        raise ValueError(f"kind = {kind!r} must be 'cross-section' or 'cell'")
    rows = []
    for key, value in [("", None), *parameters]:
        variant = vary(device, key, value) if key else device
        assert variant.grating is not None
        pol = variant.optics.polarisation
        guess = bragg_guess(variant, build_mesh(variant, "stack", comm), polarisation=pol)
        mesh_data = build_mesh(variant, kind, comm)
        edges = band_edges(
            mesh_data,
            region_permittivity(variant, list(mesh_data.regions)),
            period=variant.grating.period,
            wavelength_guess=guess,
            polarisation=pol,
            degree=degree,
            n_bands=n_bands,
            petsc_options=petsc_options,
        )
        wavelengths = tuple(e.wavelength for e in edges)
        rows.append(
            SensitivityRow(key, value, guess, wavelengths, tuple(e.symmetry for e in edges))
        )
    return rows


def _point(point: tuple[str, float, str, tuple[str, ...]], comm: MPI.Comm) -> dict[str, Any]:
    key, value, pol, base = point
    device = paper_device(CONFIG, [*base, f"{key}={value}", f"optics.polarisation={pol}"])
    return {"parameter": key, "value": value, "polarisation": pol, **edges_of(device, comm)}


def solve_for(
    key: str,
    lo: float,
    hi: float,
    pol: str,
    base: tuple[str, ...],
    comm: MPI.Comm,
    target_nm: float = TARGET_NM,
    xtol: float = 0.05,
) -> float | None:
    """The value of ``key`` in [lo, hi] putting the odd band edge at ``target_nm`` (None if the
    target is not bracketed)."""

    def f(value: float) -> float:
        device = paper_device(CONFIG, [*base, f"{key}={value}", f"optics.polarisation={pol}"])
        odd = edges_of(device, comm)["odd_nm"]
        if odd is None:
            raise RuntimeError(f"no odd band edge at {key} = {value}")
        return odd - target_nm

    f_lo, f_hi = f(lo), f(hi)
    if f_lo * f_hi > 0:
        return None
    return float(brentq(f, lo, hi, xtol=xtol, rtol=1e-6))


SENSITIVITY_PARAMETERS: tuple[tuple[str, Any], ...] = (
    ("film.thickness_nm", 60),
    ("film.thickness_nm", 20),
    ("materials.cqd_inorganic.refractive_index", 1.92),
    ("materials.sog.refractive_index", 1.45),
    ("cap", False),
    ("grating.pillar_height_nm", 100),
    ("grating.pillar_diameter_nm", 200),
    ("optics.polarisation", "TM"),
)
"""The one-at-a-time changes of the sensitivity table (the quick form takes the first two)."""


def run(out: Path, *, quick: bool = False, comm: MPI.Comm = MPI.COMM_WORLD) -> dict[str, Any]:
    """Band-edge maps, the inverse design for 643 nm, and the sensitivity table."""
    base: tuple[str, ...] = ("mesh.scale=2",) if quick else ()
    rows = band_edge_maps(base, quick, comm)
    inverse = inverse_design(base, quick, comm)
    params = SENSITIVITY_PARAMETERS[:2] if quick else SENSITIVITY_PARAMETERS
    sensitivity = [
        {
            "parameter": r.parameter or "baseline",
            "value": r.value,
            "bragg_nm": r.bragg_wavelength * 1e9,
            "edges_nm": [w * 1e9 for w in r.wavelengths],
            "symmetries": list(r.symmetries),
        }
        for r in band_edge_sensitivity(paper_device(CONFIG, list(base)), params, comm=comm)
    ]
    baseline = next(
        r
        for r in rows
        if r["parameter"] == "film.thickness_nm"
        and r["value"] == 120.0
        and r["polarisation"] == "TE"
    )
    summary = {
        "target_nm": TARGET_NM,
        "paper_device_te_odd_nm": baseline["odd_nm"],
        "paper_device_te_even_nm": baseline["even_nm"],
        "paper_device_bragg_te_nm": baseline["bragg_nm"],
        "relative_difference_te_odd": None
        if baseline["odd_nm"] is None
        else baseline["odd_nm"] / TARGET_NM - 1.0,
        "inverse": inverse,
    }
    write_csv(out / "bragg.csv", rows=rows, comm=comm)
    write_csv(
        out / "bragg_sensitivity.csv",
        rows=[
            {
                **r,
                "edges_nm": " ".join(f"{w:.2f}" for w in r["edges_nm"]),
                "symmetries": " ".join(r["symmetries"]),
            }
            for r in sensitivity
        ],
        comm=comm,
    )
    document = {
        "summary": summary,
        "sensitivity": sensitivity,
        "rows": rows,
        "validation": _validation(baseline, inverse),
        **provenance(comm, inputs=CONFIG, quick=quick),
    }
    write_json(out / "bragg.json", document, comm=comm)
    return summary


def band_edge_maps(base: tuple[str, ...], quick: bool, comm: MPI.Comm) -> list[dict[str, Any]]:
    """Band edges vs grating period and vs film thickness, TE and TM (one row per point)."""
    periods = np.linspace(390, 470, 3 if quick else 9)
    films = [10.0, 60.0, 120.0] if quick else [10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 150.0]
    points = [("grating.period_nm", float(p), pol, base) for pol in ("TE", "TM") for p in periods]
    points += [("film.thickness_nm", float(t), pol, base) for pol in ("TE", "TM") for t in films]
    return sweep(points, _point, comm, desc="bragg")


def inverse_design(base: tuple[str, ...], quick: bool, comm: MPI.Comm) -> list[dict[str, Any]]:
    """The film thickness, or the period, that puts the non-radiating edge at 643 nm (TE, TM)."""
    problems = [
        (pol, key, lo, hi)
        for pol in ("TE", "TM")
        for key, lo, hi in (("film.thickness_nm", 5.0, 150.0), ("grating.period_nm", 340.0, 470.0))
    ]
    values = sweep(
        problems,
        lambda p, c: solve_for(p[1], p[2], p[3], p[0], base, c, xtol=0.5 if quick else 0.05),
        comm,
        desc="bragg inverse",
    )
    return [
        {"polarisation": pol, "parameter": key, "value_for_643nm": value}
        for (pol, key, _, _), value in zip(problems, values, strict=True)
    ]


def _validation(baseline: dict[str, Any], inverse: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The validation row: the paper's 643 nm line against the nominal device's TE odd edge."""
    tm_film = next(
        i["value_for_643nm"]
        for i in inverse
        if i["polarisation"] == "TM" and i["parameter"] == "film.thickness_nm"
    )
    reached = (
        "643 nm" if tm_film is None else f"643 nm with {tm_film:.0f} nm of film above the pillars"
    )
    return [
        row(
            "lasing wavelength of the 430 nm second-order DFB (nominal 120 nm film, TE, "
            "non-radiating edge)",
            TARGET_NM,
            baseline["odd_nm"],
            "nm",
            "the film thickness above the pillars and the SOG index are not stated; the nominal "
            "stack puts every TE edge 80-100 nm red of 643 nm; the TM non-radiating edge reaches "
            + reached
            + " (bragg.csv, bragg_sensitivity.csv)",
        ),
    ]


def plot(out: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Band edges vs period and vs film thickness, from bragg.json."""
    if comm.rank != 0:
        return
    import json

    matplotlib_backend()
    import matplotlib.pyplot as plt

    rows = json.loads((out / "bragg.json").read_text())["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, key, label in zip(
        axes,
        ("grating.period_nm", "film.thickness_nm"),
        ("grating period (nm)", "film thickness above the pillars (nm)"),
        strict=True,
    ):
        for pol, colour in (("TE", "b"), ("TM", "r")):
            sel = [r for r in rows if r["parameter"] == key and r["polarisation"] == pol]
            x = [r["value"] for r in sel]
            for sym, style in (("odd", "-o"), ("even", "--s")):
                y = [np.nan if r[f"{sym}_nm"] is None else r[f"{sym}_nm"] for r in sel]
                ax.plot(x, y, colour + style, ms=3, label=f"{pol} {sym}")
        ax.axhline(TARGET_NM, color="k", lw=0.8, ls=":")
        ax.set_xlabel(label)
    axes[0].set_ylabel("band-edge wavelength (nm)")
    axes[0].legend(fontsize=7)
    save_figure(fig, out / "bragg", comm)


__all__ = ["SensitivityRow", "band_edge_sensitivity", "run", "vary"]
