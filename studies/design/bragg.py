"""Bragg: DFB band-edge wavelengths vs grating period and film thickness above the pillars (TE and
TM, 2D cross-section), the paper's 643 nm marked, and the inverse question: which film thickness,
or which period, puts the non-radiating band edge at a target wavelength, in which polarisation.

The non-radiating (odd) band edge is the one that lases in a second-order DFB with a low threshold
(it does not couple to vertical radiation at the Gamma point); the radiating (even) one is reported
too. The paper device's nominal film (120 nm above the pillars) puts both TE edges near 720-740 nm:
the measured 643 nm needs a much thinner film above the pillars, or TM.

The full-vector answer (:mod:`studies.design.lasing_line`): the device's band edges on the open
quarter cell with their Q, symmetry class and threshold gain, the lasing mode, the 2D and scalar
3D edges beside them, and the film thickness that puts the full-vector lasing mode at the target.

On a user's device (``cqdlaser run bragg CONFIG``) the sweeps move with it: periods and film
thicknesses scaled from the paper's by the device's period / 430 nm and film / 120 nm, the same
layers, materials and polarisations, and the inverse design aims at its ``optics.wavelength_nm``.
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
from cqdlaser.geometry.device import Device, Film, MaterialOverride
from cqdlaser.geometry.errors import ConfigError
from cqdlaser.physics.bands import band_edges, bragg_guess
from cqdlaser.physics.permittivity import region_permittivity
from cqdlaser.studies.common import matplotlib_backend, save_figure
from cqdlaser.studies.design import lasing_line
from cqdlaser.studies.output import logger, provenance, write_csv, write_json
from cqdlaser.studies.paper.report import row
from cqdlaser.studies.study_device import StudyDevice, study_device
from cqdlaser.studies.sweep import PointFailure, sweep

CONFIG = "paper_inorganic_mgf2"
TARGET_NM = 643.0


def bragg_estimate(device: Device, comm: MPI.Comm) -> float | None:
    """The Bragg estimate n_eff Lambda (m) of the device's layer stack, None where it guides no
    mode."""
    try:
        return bragg_guess(device, build_mesh(device, "stack", comm))
    except ValueError:  # no guided mode (the device has a grating and this is its stack)
        return None


def edges_of(device: Device, comm: MPI.Comm) -> dict[str, float | None]:
    """Odd (non-radiating) and even band-edge wavelengths (nm) on the 2D cross-section, and the
    Bragg estimate; all None where the layer stack guides no mode (no DFB laser)."""
    guess = bragg_estimate(device, comm)
    if guess is None:
        return {"odd_nm": None, "even_nm": None, "bragg_nm": None}
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


def _point(point: tuple[str, float, str], spec: StudyDevice, comm: MPI.Comm) -> dict[str, Any]:
    key, value, pol = point
    device = spec.variant([f"{key}={value}", f"optics.polarisation={pol}"])
    return {"parameter": key, "value": value, "polarisation": pol, **edges_of(device, comm)}


def solve_for(
    key: str,
    lo: float,
    hi: float,
    pol: str,
    spec: StudyDevice,
    comm: MPI.Comm,
    target_nm: float,
    xtol: float = 0.05,
) -> float | None:
    """The value of ``key`` in [lo, hi] putting the odd band edge of the device in polarisation
    ``pol`` at ``target_nm`` (None if the target is not bracketed).

    Where the stack guides no mode at ``lo`` (too thin a film), the bracket starts at the
    guiding cutoff instead, found by bisection to ``xtol``.
    """

    def f(value: float) -> float | None:
        device = spec.variant([f"{key}={value}", f"optics.polarisation={pol}"])
        edges = edges_of(device, comm)
        if edges["bragg_nm"] is None:
            return None
        if edges["odd_nm"] is None:
            raise RuntimeError(f"no odd band edge at {key} = {value}")
        return edges["odd_nm"] - target_nm

    def guided(value: float) -> float:
        residual = f(value)
        if residual is None:
            raise RuntimeError(f"the stack guides no {pol} mode at {key} = {value}")
        return residual

    f_lo, f_hi = f(lo), f(hi)
    if f_hi is None:
        return None
    if f_lo is None:
        unguided, edge, f_edge = lo, hi, f_hi
        while edge - unguided > xtol:
            mid = 0.5 * (unguided + edge)
            f_mid = f(mid)
            if f_mid is None:
                unguided = mid
            else:
                edge, f_edge = mid, f_mid
        lo, f_lo = edge, f_edge
    if f_lo * f_hi > 0:
        return None
    return float(brentq(guided, lo, hi, xtol=xtol, rtol=1e-6))


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


PAPER_PERIOD_NM = 430.0
PAPER_FILM_NM = 120.0
PERIODS_NM = (390.0, 470.0)
"""The period sweep of the paper device (9 points, 3 quick); a user device's is scaled by its
period / 430 nm."""
FILMS_NM = (10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 150.0)
QUICK_FILMS_NM = (10.0, 60.0, 120.0)
"""The film sweep (above the pillars) of the paper device; a user device's is scaled by its
film thickness / 120 nm."""
BRACKETS_NM = {"film.thickness_nm": (5.0, 150.0), "grating.period_nm": (340.0, 470.0)}
"""The inverse design's brackets for the paper device (scaled likewise for a user device)."""
QUICK_MESH_SCALE = 2.0
"""``--quick``: mesh.scale at least this (a user device's coarser scale is kept)."""


def run(
    out: Path,
    *,
    quick: bool = False,
    comm: MPI.Comm = MPI.COMM_WORLD,
    device: StudyDevice | Device | None = None,
) -> dict[str, Any]:
    """Band-edge maps, the inverse design for the lasing wavelength, and the sensitivity table.

    Args:
        out: Output folder.
        quick: Coarser meshes, short sweeps and looser inverse-design tolerances.
        comm: Communicator; the sweep points run in parallel over its ranks.
        device: The device (default: the paper's laser): its period and film thickness are
            swept around their values (scaled from the paper's sweeps), and the inverse design
            aims at its ``optics.wavelength_nm``.
    """
    base: tuple[str, ...] = ("mesh.scale=2",) if quick else ()
    spec = study_device(device, "bragg", comm, config=CONFIG, overrides=base)
    if spec.device.grating is None:
        raise ConfigError("grating", None, "the bragg study needs a device with a [grating]")
    if quick and not spec.is_paper and spec.device.mesh.scale < QUICK_MESH_SCALE:
        spec = dataclasses.replace(spec, device=spec.variant([f"mesh.scale={QUICK_MESH_SCALE}"]))
    target = spec.device.optics.wavelength_nm
    if bragg_estimate(spec.device, comm) is None:
        raise ConfigError(
            "config",
            spec.source,
            f"the device's layer stack guides no {spec.device.optics.polarisation} mode at "
            f"{target:g} nm: the bragg study needs a film of higher index than the layers "
            "around it",
        )
    rows = band_edge_maps(spec, quick, comm)
    inverse = inverse_design(spec, quick, comm)
    params = sensitivity_parameters(spec)
    sensitivity = [
        {
            "parameter": r.parameter or "baseline",
            "value": r.value,
            "bragg_nm": r.bragg_wavelength * 1e9,
            "edges_nm": [w * 1e9 for w in r.wavelengths],
            "symmetries": list(r.symmetries),
        }
        for r in band_edge_sensitivity(spec.device, params[:2] if quick else params, comm=comm)
    ]
    line = lasing_line.run(spec, out, quick, comm)
    thickness = spec.device.film.thickness_nm
    baseline = min(
        (r for r in rows if r["parameter"] == "film.thickness_nm" and r["polarisation"] == "TE"),
        key=lambda r: abs(r["value"] - thickness),
    )
    summary = {
        "device": spec.label(),
        "target_nm": target,
        "device_te_odd_nm": baseline["odd_nm"],
        "device_te_even_nm": baseline["even_nm"],
        "device_bragg_te_nm": baseline["bragg_nm"],
        "relative_difference_te_odd": None
        if baseline["odd_nm"] is None
        else baseline["odd_nm"] / target - 1.0,
        "inverse": inverse,
        "lasing_mode": _vector_lasing_mode(line),
        "film_for_target_nm_vector": line["film_for_target_nm"],
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
        "lasing_line": line,
        "validation": _validation(baseline, inverse, line) if spec.is_paper else [],
        **provenance(comm, inputs=spec.to_dict(), quick=quick),
    }
    write_json(out / "bragg.json", document, comm=comm)
    return summary


def _scaled(values: Sequence[float], device_value: float, paper_value: float) -> list[float]:
    """A paper sweep moved to a device: each value times device_value / paper_value (exactly the
    paper's values for the paper device)."""
    return [float(device_value * v / paper_value) for v in values]


def _thinnest_film_nm(device: Device) -> float:
    """The thinnest film a device may have (nm): the allowed minimum of ``film.thickness_nm``,
    and 1 nm per ``mesh.film_elements``."""
    allowed = next(f for f in dataclasses.fields(Film) if f.name == "thickness_nm")
    return float(max(allowed.metadata["range"][0], device.mesh.film_elements))


def _sweep_grids(device: Device, quick: bool) -> dict[str, list[float]]:
    """The period and film-thickness sweeps around the device's values (nm)."""
    assert device.grating is not None
    periods = np.linspace(*PERIODS_NM, 3 if quick else 9)
    thinnest = _thinnest_film_nm(device)
    films = _scaled(QUICK_FILMS_NM if quick else FILMS_NM, device.film.thickness_nm, PAPER_FILM_NM)
    return {
        "grating.period_nm": _scaled(periods, device.grating.period_nm, PAPER_PERIOD_NM),
        "film.thickness_nm": [max(t, thinnest) for t in films],
    }


def band_edge_maps(spec: StudyDevice, quick: bool, comm: MPI.Comm) -> list[dict[str, Any]]:
    """Band edges vs grating period and vs film thickness around the device's, TE and TM (one
    row per point)."""
    grids = _sweep_grids(spec.device, quick)
    points = [
        (key, v, pol) for key, values in grids.items() for pol in ("TE", "TM") for v in values
    ]
    return sweep(points, lambda p, c: _point(p, spec, c), comm, desc="bragg")


def inverse_design(spec: StudyDevice, quick: bool, comm: MPI.Comm) -> list[dict[str, Any]]:
    """The film thickness, or the period, that puts the non-radiating edge at the device's
    ``optics.wavelength_nm`` (TE, TM), in brackets scaled to the device."""
    device = spec.device
    assert device.grating is not None
    target = device.optics.wavelength_nm
    own = {
        "film.thickness_nm": device.film.thickness_nm,
        "grating.period_nm": device.grating.period_nm,
    }
    paper = {"film.thickness_nm": PAPER_FILM_NM, "grating.period_nm": PAPER_PERIOD_NM}
    thinnest = _thinnest_film_nm(device)
    problems = []
    for pol in ("TE", "TM"):
        for key, bracket in BRACKETS_NM.items():
            lo, hi = _scaled(bracket, own[key], paper[key])
            problems.append((pol, key, max(lo, thinnest) if key.startswith("film") else lo, hi))
    values = sweep(
        problems,
        lambda p, c: solve_for(p[1], p[2], p[3], p[0], spec, c, target, 0.5 if quick else 0.05),
        comm,
        desc="bragg inverse",
        keep_going=True,
    )
    rows = []
    for (pol, key, lo, hi), value in zip(problems, values, strict=True):
        found = {"polarisation": pol, "parameter": key, "target_nm": target}
        found[f"value_for_{target:g}nm"] = None if isinstance(value, PointFailure) else value
        found["bracket"] = [lo, hi]
        if isinstance(value, PointFailure):
            found["note"] = value.reason
            if comm.rank == 0:
                logger.warning("bragg inverse design, %s %s: %s", pol, key, value.reason)
        rows.append(found)
    return rows


def sensitivity_parameters(spec: StudyDevice) -> tuple[tuple[str, Any], ...]:
    """The one-at-a-time changes of the sensitivity table: :data:`SENSITIVITY_PARAMETERS` for the
    paper device; around a user device, the film thickness -10 % and +10 % (the quick table's
    two), the film's and cap's index - 0.05, no cap, pillars 100/130 as high and 200/160 as wide,
    the other polarisation."""
    if spec.is_paper:
        return SENSITIVITY_PARAMETERS
    from cqdlaser.physics.materials import region_materials

    device = spec.device
    assert device.grating is not None
    materials = region_materials(device)
    t = device.film.thickness_nm
    out: list[tuple[str, Any]] = [
        ("film.thickness_nm", round(0.9 * t, 6)),
        ("film.thickness_nm", round(1.1 * t, 6)),
    ]
    out.append(
        (
            f"materials.{device.film.material}.refractive_index",
            round(materials["film"].refractive_index.real - 0.05, 6),
        )
    )
    if device.cap is not None:
        n_cap = materials["cap"].refractive_index.real
        out += [(f"materials.{device.cap.material}.refractive_index", round(n_cap - 0.05, 6))]
        out.append(("cap", False))
    out += [
        ("grating.pillar_height_nm", device.grating.pillar_height_nm * 100.0 / 130.0),
        ("grating.pillar_diameter_nm", device.grating.pillar_diameter_nm * 200.0 / 160.0),
        ("optics.polarisation", "TM" if device.optics.polarisation == "TE" else "TE"),
    ]
    return tuple(out)


def _vector_lasing_mode(line: dict[str, Any]) -> dict[str, Any] | None:
    """The full-vector lasing mode of the device (None where the vector solver did not run)."""
    table = line["solvers"]["vector"]
    return None if table is None else table["lasing_mode"]


def _lasing_line_rows(line: dict[str, Any]) -> list[dict[str, Any]]:
    """Validation rows: the nominal device's full-vector lasing mode, with the 2D and scalar
    results beside it, and the film thickness the 643 nm line implies."""
    mode = _vector_lasing_mode(line)
    if mode is None:
        return []
    solvers = line["solvers"]
    vector = ", ".join(
        f"{e['wavelength_nm']:.1f} {e['symmetry']}"
        + (" (Q unbounded)" if e["q_factor"] is None else f" (Q {e['q_factor']:.3g})")
        for e in solvers["vector"]["band_edges"]
    )
    beside = []
    for name, label in (
        ("cross_section_te", "2D TE"),
        ("cross_section_tm", "2D TM"),
        ("cell", "scalar 3D cell"),
    ):
        if solvers[name] is not None:
            edges = " ".join(f"{e['wavelength_nm']:.1f}" for e in solvers[name]["band_edges"])
            beside.append(f"{label} {edges}")
    film = line["film_for_target_nm"]
    return [
        row(
            "full-vector lasing mode of the nominal device (430 nm lattice, 120 nm film)",
            TARGET_NM,
            mode["wavelength_nm"],
            "nm",
            f"{mode['family']} {mode['symmetry']}, "
            + ("dark (symmetry-protected)" if mode["dark"] else "radiating")
            + f", threshold gain {mode['threshold_gain_per_cm']:.0f}/cm; full-vector edges: "
            + vector
            + "; beside them: "
            + "; ".join(beside)
            + " nm (lasing_line.csv)",
        ),
        row(
            "film thickness above the pillars for a 643 nm full-vector lasing mode",
            "not stated",
            None if film is None else film["film_thickness_nm"],
            "nm",
            ("no scan" if film is None else film["how"])
            + " in the full-vector scan of the lasing mode against the film thickness "
            + _scan_text(line["film_scan"])
            + " (lasing_line_film.csv); an extrapolated value is a trend, and one below zero "
            "means no film thickness alone puts the lasing mode at 643 nm",
        ),
    ]


def _scan_text(scan: list[dict[str, Any]]) -> str:
    """``(40 nm: 700.1 nm TM-like B1; ...)``."""
    return (
        "("
        + "; ".join(
            f"{r['film_thickness_nm']:g} nm: {r['wavelength_nm']:.1f} nm {r['family']} "
            f"{r['symmetry']}"
            for r in scan
        )
        + ")"
    )


def _validation(
    baseline: dict[str, Any], inverse: list[dict[str, Any]], line: dict[str, Any]
) -> list[dict[str, Any]]:
    """The validation rows: the paper's 643 nm line against the nominal device's TE odd edge
    (2D), and against its full-vector lasing mode."""
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
        *_lasing_line_rows(line),
    ]


def plot(out: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Band edges vs period and vs film thickness, from bragg.json."""
    if comm.rank != 0:
        return
    import json

    matplotlib_backend()
    import matplotlib.pyplot as plt

    document = json.loads((out / "bragg.json").read_text())
    rows = document["rows"]
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
        ax.axhline(document["summary"]["target_nm"], color="k", lw=0.8, ls=":")
        ax.set_xlabel(label)
    axes[0].set_ylabel("band-edge wavelength (nm)")
    axes[0].legend(fontsize=7)
    save_figure(fig, out / "bragg", comm)


__all__ = ["SensitivityRow", "band_edge_sensitivity", "run", "vary"]
