"""Lasing duration under a square pump pulse: vs pump intensity for both CQD films on MgF2, and vs
substrate at 88 kW/cm2.

The film lases while the pump P exceeds the threshold at its hottest point,
P >= P_th(T_max(t)) with P_th(T) = P_th0 exp((T - 295 K)/T0), T0 = 72 K (``[laser]`` of the
configs: P_th0 = 52 kW/cm2 for the inorganic film, 83 for the organic one). With constant
conductivities the heat problem is linear, so the film's maximum temperature rise is
T_max(t) - T_sink = P h(t): one transient per (film, substrate) gives h(t) (K per W/m2), and the
duration at every pump intensity follows from it exactly. The steady state gives the thermal
resistance R = h(infinity); a pump inside the CW window of R (``physics.laser.cw_exponential``)
never stops lasing.

The pulse is longer than the paper's (``SPAN_US``, 20 us, against 1.0-2.5 us): a square pulse from
t = 0 gives the same history over its first 2.5 us whatever its length, so the duration within the
paper's 2.5 us pulse is min(duration, 2.5 us), reported too.

Heat: ``pump.heat_fraction`` (the fraction of the incident pump that becomes heat in the film) is
the calibrated value (:func:`~cqdlaser.studies.paper.calibration.study_heat_fraction`: the
calibration of the same run, else fitted); the same fraction for both films (the paper compares
them at equal optical density). Si and Al carry the low-index claddings of their example configs
(1000 nm SiO2 and 500 nm MgF2); diamond and SiC are taken bare (thermally; their index exceeds the
film's, see the ``cw_feasibility`` study for the optics).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry.device import Device
from cqdlaser.physics.laser import (
    KW_CM2,
    ThresholdModel,
    cw_exponential,
    lasing_duration,
    thermal_resistance,
)
from cqdlaser.studies.api import load_device
from cqdlaser.studies.common import matplotlib_backend, paper_device, save_figure
from cqdlaser.studies.output import logger, provenance, write_csv, write_json
from cqdlaser.studies.paper.calibration import study_heat_fraction
from cqdlaser.studies.study_device import StudyDevice, study_device
from cqdlaser.studies.sweep import sweep
from cqdlaser.studies.thermal import heat_problem
from cqdlaser.studies.threshold import device_threshold

"""Fraction of the incident pump that becomes heat in the film when no calibration is available
(about what the paper's "~60 C after 2 us" gives under reading B; physics.md 1.4, 5)."""

FILMS = {"inorganic": "paper_inorganic_mgf2", "organic": "paper_organic_mgf2"}
"""Film name -> example config (film, DFB, cap, MgF2 substrate, threshold)."""

SUBSTRATES: dict[str, tuple[str, ...]] = {
    "glass": (),
    "mgf2": (),
    "sapphire": (),
    "si": ("cladding.material=sio2", "cladding.thickness_nm=1000"),
    "al": ("cladding.material=mgf2", "cladding.thickness_nm=500"),
    "diamond": (),
    "sic": (),
}
"""Substrate -> the overrides that go with it (a cladding for the absorbing ones)."""

REFERENCE_INTENSITY_KW_CM2 = 88.0
PAPER_PULSE_US = 2.5
SPAN_US = 20.0
PAPER_DURATION_US = 1.8  # inorganic film on MgF2 at 88 kW/cm2 (physics.md 1.3)


@dataclass(frozen=True)
class Case:
    """One transient: a film on a substrate."""

    film: str
    substrate: str


def case_device(
    case: Case, heat_fraction: float, *, quick: bool, base: Device | None = None
) -> Device:
    """The device of a case, pumped at 88 kW/cm2 over ``SPAN_US`` (linear: intensity scales),
    at the config's own resolution (that of ``cqdlaser lasing``) unless ``quick``.

    ``base``: a user's device instead of the film's paper config (its substrate kept for the
    substrate :data:`OWN`; ``quick`` keeps a coarser mesh.scale of its own)."""
    span_ns = SPAN_US * 1e3
    overrides = [
        *substrate_overrides(case.substrate),
        f"pump.heat_fraction={heat_fraction}",
        f"pump.intensity_kw_cm2={REFERENCE_INTENSITY_KW_CM2}",
        f"pump.pulse_ns={span_ns}",
        f"heat.end_time_us={SPAN_US}",
        "heat.mesh=axisymmetric",
        *(["heat.step_growth=1.15", "mesh.scale=2"] if quick else []),
    ]
    if base is None:
        return paper_device(FILMS[case.film], overrides)
    coarse = [f"mesh.scale={max(2.0, base.mesh.scale)}"] if quick else []
    return load_device(base, [*overrides, *coarse])


OWN = "device"
"""The substrate of a user's device as it is (its substrate and cladding)."""


def substrate_overrides(substrate: str) -> list[str]:
    """The overrides that put a case on ``substrate`` (none for :data:`OWN`)."""
    if substrate == OWN:
        return []
    return [f"substrate.material={substrate}", *SUBSTRATES[substrate]]


def response(
    case: Case, comm: MPI.Comm, heat_fraction: float, quick: bool, base: Device | None = None
) -> dict[str, Any]:
    """The film's maximum temperature rise per unit pump h(t) and the thermal resistance R.

    Returns:
        ``times_s``, ``rise_per_intensity`` (K m^2/W, per time), ``thermal_resistance`` (K m^2/W),
        ``threshold`` (P_th0, W/m^2), ``t0`` (K), ``sink`` (K), ``dofs``.
    """
    device = case_device(case, heat_fraction, quick=quick, base=base)
    if device.heat.nonlinear:
        raise ValueError(
            "lasing_duration scales one transient with the pump: needs a linear device"
        )
    intensity = device.pump.intensity
    sink = device.heat.sink_temperature_k
    with heat_problem(device, comm) as problem:
        history = problem.run(device.pump.pulse)
        problem.steady()
        steady_rise = problem.film_max_temperature() - sink
        dofs = int(problem.V.dofmap.index_map.size_global)
    model, optics = device_threshold(device, comm)
    return {
        "times_s": history.times,
        "rise_per_intensity": (history.film_max_temperature - sink) / intensity,
        "thermal_resistance": thermal_resistance(steady_rise, intensity),
        "threshold": model.threshold,
        "threshold_factor": optics.factor,
        "mode_kind": optics.kind,
        "t0": model.t0,
        "sink": sink,
        "dofs": dofs,
    }


def duration_row(case: Case, resp: dict[str, Any], intensity_kw_cm2: float) -> dict[str, Any]:
    """Lasing of one case at one pump intensity (kW/cm2), from its linear response."""
    model = ThresholdModel(threshold=resp["threshold"], t0=resp["t0"])
    p = intensity_kw_cm2 * KW_CM2
    temperature = resp["sink"] + p * np.asarray(resp["rise_per_intensity"])
    span = SPAN_US * 1e-6
    duration = lasing_duration(resp["times_s"], temperature, p, model, pulse=span)
    cw = cw_exponential(resp["thermal_resistance"], model, resp["sink"])
    lo, hi = cw.pump_range if cw.pump_range is not None else (math.inf, -math.inf)
    nan = math.nan
    return {
        "film": case.film,
        "substrate": case.substrate,
        "intensity_kw_cm2": intensity_kw_cm2,
        "threshold_kw_cm2": resp["threshold"] / KW_CM2,
        "threshold_factor": resp["threshold_factor"],
        "mode_kind": resp["mode_kind"],
        "lasing_duration_us": nan if duration is None else duration * 1e6,
        "lases_throughout_span": duration is not None and duration >= span,
        "lasing_in_paper_pulse_us": nan
        if duration is None
        else min(duration * 1e6, PAPER_PULSE_US),
        "lases_cw": bool(lo <= p <= hi),
        "steady_film_max_temperature_k": resp["sink"] + p * resp["thermal_resistance"],
        "thermal_resistance_k_cm2_per_kw": resp["thermal_resistance"] * KW_CM2,
    }


def notes() -> dict[str, Any]:
    """How to read the lasing-duration tables (written into lasing_duration.json)."""
    return {
        "threshold_model": "P_th(T) = P_th0' exp((T - 295 K)/T0), T0 = 72 K, at the film "
        "maximum; P_th0' = P_th0 (Gamma_ref/Gamma)(1 + alpha/alpha_ref) from the case's lasing "
        "mode in the model of [laser] optics (stack: its TE0 mode; vector: its band edge of least "
        "threshold gain) (threshold_factor; mode_kind none: no laser), the lasing command's model",
        "linearity": "constant conductivities: T_max(t) - T_sink = P h(t); one transient per case",
        "pulse": f"square pulse of {SPAN_US} us from t = 0; lasing_in_paper_pulse_us = "
        f"min(duration, {PAPER_PULSE_US} us)",
        "lasing_duration_us": "NaN below threshold at t = 0; the span if it lases throughout",
        "lases_cw": "the steady state at this pump is above threshold: it never stops",
        "substrates": {s: list(o) for s, o in SUBSTRATES.items()},
        "films": FILMS,
    }


def run(
    out: Path,
    *,
    quick: bool = False,
    comm: MPI.Comm = MPI.COMM_WORLD,
    heat_fraction: float | None = None,
    device: StudyDevice | Device | None = None,
) -> dict[str, Any]:
    """Compute and write lasing_duration_*.csv and lasing_duration.json.

    Args:
        out: Output folder.
        quick: Coarser meshes and time steps.
        comm: Communicator; the cases run in parallel over its ranks.
        heat_fraction: Override the heat fraction (default: the calibration,
            :func:`~cqdlaser.studies.paper.calibration.study_heat_fraction`).
        device: A device to study instead of the paper's two films (:func:`run_device`).
    """
    t0 = time.perf_counter()
    spec = study_device(device, "lasing_duration", comm, config=FILMS["inorganic"])
    if not spec.is_paper:
        return run_device(out, spec, quick=quick, comm=comm, heat_fraction=heat_fraction)
    heat_fraction, origin = study_heat_fraction(heat_fraction)
    intensities = sorted({*np.arange(55.0, 200.0 + 1e-9, 5.0).tolist(), REFERENCE_INTENSITY_KW_CM2})
    cases = [Case(film, "mgf2") for film in FILMS]
    cases += [Case(film, s) for film in FILMS for s in SUBSTRATES if s != "mgf2"]
    responses = sweep(
        cases,
        lambda c, sub: response(c, sub, heat_fraction, quick),
        comm,
        desc="lasing_duration",
    )
    by_case = dict(zip(cases, responses, strict=True))
    vs_intensity = [
        duration_row(Case(film, "mgf2"), by_case[Case(film, "mgf2")], p)
        for film in FILMS
        for p in intensities
    ]
    vs_substrate = [
        duration_row(c, by_case[c], REFERENCE_INTENSITY_KW_CM2)
        for film in FILMS
        for c in cases
        if c.film == film
    ]
    summary = {
        "device": spec.label(),
        "heat_fraction": heat_fraction,
        "heat_fraction_origin": origin,
        **_summary(vs_intensity, vs_substrate),
    }
    _write(out, comm, summary, intensities, by_case, vs_intensity, vs_substrate, t0, quick, spec)
    if comm.rank == 0:
        logger.info(
            "lasing_duration: inorganic on MgF2 at 88 kW/cm2 lases %.3g us (paper 1.8 us)",
            summary["inorganic_mgf2_88_duration_us"],
        )
    return summary


def run_device(
    out: Path,
    spec: StudyDevice,
    *,
    quick: bool,
    comm: MPI.Comm,
    heat_fraction: float | None = None,
) -> dict[str, Any]:
    """Lasing duration of a user's device: vs pump intensity (1.06-3.8x its ``[laser]``
    threshold, the paper's 55-200 kW/cm2 over 52), and at its ``pump.intensity_kw_cm2`` on every
    substrate of :data:`SUBSTRATES` (its film, grating, cap and cladding kept; Si and Al under
    their example claddings), with its own heat fraction unless one is given.

    Writes the same files as :func:`run`; the rows of the device as it is have substrate
    :data:`OWN`.
    """
    t0 = time.perf_counter()
    d = spec.device
    eta, origin = study_heat_fraction(heat_fraction, d)
    film = d.film.material
    reference = d.pump.intensity_kw_cm2
    scale = d.laser.threshold_kw_cm2 / PAPER_THRESHOLD_KW_CM2
    grid = np.arange(55.0, 200.0 + 1e-9, 5.0) * scale
    intensities = sorted({*grid.tolist(), reference})
    cases = [Case(film, OWN), *(Case(film, s) for s in SUBSTRATES)]
    responses = sweep(
        cases, lambda c, sub: response(c, sub, eta, quick, d), comm, desc="lasing_duration"
    )
    by_case = dict(zip(cases, responses, strict=True))
    vs_intensity = [duration_row(cases[0], by_case[cases[0]], p) for p in intensities]
    vs_substrate = [duration_row(c, by_case[c], reference) for c in cases]
    own = next(r for r in vs_intensity if r["intensity_kw_cm2"] == reference)
    summary = {
        "device": spec.label(),
        "heat_fraction": eta,
        "heat_fraction_origin": origin,
        "span_us": SPAN_US,
        "paper_pulse_us": PAPER_PULSE_US,
        "reference_intensity_kw_cm2": reference,
        "device_duration_us": own["lasing_duration_us"],
        "device_lases_cw": own["lases_cw"],
        "device_thermal_resistance_k_cm2_per_kw": own["thermal_resistance_k_cm2_per_kw"],
        "by_substrate": {r["substrate"]: _substrate_summary(r) for r in vs_substrate},
    }
    _write(out, comm, summary, intensities, by_case, vs_intensity, vs_substrate, t0, quick, spec)
    if comm.rank == 0:
        logger.info(
            "lasing_duration: %s at %g kW/cm2 lases %.3g us",
            spec.source,
            reference,
            summary["device_duration_us"],
        )
    return summary


PAPER_THRESHOLD_KW_CM2 = 52.0
"""The inorganic film's threshold, to which the paper's intensity grid is relative."""


def _summary(
    vs_intensity: list[dict[str, Any]], vs_substrate: list[dict[str, Any]]
) -> dict[str, Any]:
    """The paper's case (inorganic on MgF2 at 88 kW/cm2) and every substrate at 88 kW/cm2."""
    paper_row = next(
        r
        for r in vs_intensity
        if r["film"] == "inorganic" and r["intensity_kw_cm2"] == REFERENCE_INTENSITY_KW_CM2
    )
    return {
        "span_us": SPAN_US,
        "paper_pulse_us": PAPER_PULSE_US,
        "inorganic_mgf2_88_duration_us": paper_row["lasing_duration_us"],
        "paper_inorganic_mgf2_88_duration_us": PAPER_DURATION_US,
        "by_substrate_88": {
            f"{r['film']}/{r['substrate']}": _substrate_summary(r) for r in vs_substrate
        },
    }


SUBSTRATE_KEYS = (
    "lasing_duration_us",
    "lases_cw",
    "thermal_resistance_k_cm2_per_kw",
    "threshold_factor",
    "mode_kind",
)
"""What the summary keeps of each substrate's row at the reference intensity."""


def _substrate_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in SUBSTRATE_KEYS}


def _write(
    out: Path,
    comm: MPI.Comm,
    summary: dict[str, Any],
    intensities: list[float],
    by_case: dict[Case, dict[str, Any]],
    vs_intensity: list[dict[str, Any]],
    vs_substrate: list[dict[str, Any]],
    t0: float,
    quick: bool,
    spec: StudyDevice,
) -> None:
    """The study's three tables and its JSON (summary, notes, provenance naming the device)."""
    write_csv(out / "lasing_duration_vs_intensity.csv", rows=vs_intensity, comm=comm)
    write_csv(out / "lasing_duration_vs_substrate.csv", rows=vs_substrate, comm=comm)
    write_csv(out / "lasing_duration_histories.csv", rows=_histories(by_case), comm=comm)
    meta = provenance(
        comm,
        inputs={"intensities_kw_cm2": intensities, "cases": [c.__dict__ for c in by_case]},
        started=t0,
        quick=quick,
        device=spec.to_dict(),
        dofs={f"{c.film}/{c.substrate}": r["dofs"] for c, r in by_case.items()},
    )
    write_json(
        out / "lasing_duration.json", {"summary": summary, "notes": notes(), **meta}, comm=comm
    )


def _histories(by_case: dict[Case, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the film-maximum rise per unit pump vs time, per case (K per kW/cm2)."""
    return [
        {"film": c.film, "substrate": c.substrate, "time_s": t, "rise_k_per_kw_cm2": h * KW_CM2}
        for c, r in by_case.items()
        for t, h in zip(r["times_s"], r["rise_per_intensity"], strict=True)
    ]


def plot(out: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Draw lasing_duration.png/pdf from the CSV files."""
    if comm.rank != 0:
        return
    matplotlib_backend()
    import matplotlib.pyplot as plt

    def read(name: str) -> np.ndarray:
        return np.genfromtxt(out / name, delimiter=",", names=True, dtype=None, encoding="utf-8")

    vs_p = read("lasing_duration_vs_intensity.csv")
    vs_s = read("lasing_duration_vs_substrate.csv")
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.8))
    films = list(dict.fromkeys(np.atleast_1d(vs_p["film"]).tolist()))
    colours = dict(zip(films, "brgmc", strict=False))
    for film, colour in colours.items():
        rows = vs_p[vs_p["film"] == film]
        on = "MgF2" if rows["substrate"][0] == "mgf2" else f"its substrate ({rows['substrate'][0]})"
        ax0.semilogy(
            rows["intensity_kw_cm2"],
            rows["lasing_duration_us"],
            colour + "o-",
            ms=3,
            label=f"{film} film on {on}",
        )
    if "inorganic" in colours:  # the paper's laser
        ax0.plot(
            [REFERENCE_INTENSITY_KW_CM2],
            [PAPER_DURATION_US],
            "k*",
            ms=10,
            label="paper: 1.8 us at 88 kW/cm2",
        )
    ax0.axhline(PAPER_PULSE_US, color="gray", ls=":", lw=0.8)
    ax0.set_xlabel("pump intensity (kW/cm$^2$)")
    ax0.set_ylabel("lasing duration (us)")
    ax0.legend(fontsize=8)
    substrates = list(dict.fromkeys(vs_s["substrate"].tolist()))
    x = np.arange(len(substrates))
    for i, (film, colour) in enumerate(colours.items()):
        rows = vs_s[vs_s["film"] == film]
        values = [float(rows[rows["substrate"] == s]["lasing_duration_us"][0]) for s in substrates]
        ax1.bar(x + (i - 0.5) * 0.4, np.nan_to_num(values), 0.4, color=colour, label=film)
        for j, s in enumerate(substrates):
            if bool(rows[rows["substrate"] == s]["lases_cw"][0]):
                ax1.text(j + (i - 0.5) * 0.4, values[j], "CW", ha="center", va="bottom", fontsize=7)
    ax1.set_yscale("log")
    ax1.set_xticks(x, substrates, fontsize=8)
    ax1.axhline(SPAN_US, color="gray", ls=":", lw=0.8)
    ax1.set_ylabel(f"lasing duration at {REFERENCE_INTENSITY_KW_CM2:g} kW/cm$^2$ (us)")
    ax1.set_title(f"capped at the {SPAN_US:g} us pulse", fontsize=9)
    ax1.legend(fontsize=8)
    save_figure(fig, out / "lasing_duration", comm)
