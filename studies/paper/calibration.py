"""Calibration of the heat fraction: one number fitted on one stated reading of the paper.

The paper gives neither the fraction of the pump that becomes heat nor the films' heat capacity,
and two of its statements about the laser of Fig. 3 can each fix the heat fraction eta (the
fraction of the *incident* intensity that becomes heat in the CQD film):

- reading B (the baseline): at 88 kW/cm2 lasing stops near 1.8 us, when the film's hottest point
  has raised the threshold 88/52 = 1.69x; with T0 = 72 K (1.7x at 60 C) that is 332.9 K;
- reading A: in Fig. 4b the inorganic film at 51 kW/cm2 reaches about 60 C (333.15 K) after 2 us.

Each is fitted by root finding (a secant step, then Brent's method) on the FEM transient (film
maximum temperature at the stated time). With a heat source proportional to the pump both cannot
hold: their fractions differ by about 1.7x, and each reading's fraction predicts the other
statement wrongly (tabulated here).
The thermal model is the paper's: a CQD film directly on a bulk substrate, uniformly heated
inside the spot (``FILM_MODEL`` removes the DFB grating and the spin-on-glass cap); the fit on the
full device (grating and cap) is shown as the alternative. The organic film gets the same eta
(the paper compares films of equal optical density at the pump, and we assume the same PLQY).
Physical estimates for comparison: eta = A (1 - PLQY 442/643) with the materials' absorption,
quantum defect only (PLQY = 1) and Auger dominated (the film's PLQY, 0.1).

``calibration.json`` holds the baseline reading and its fitted value; the paper's thermal studies
read it (``calibrated_heat_fractions``) or recompute it. The baseline value is also stored in the
data file as the films' ``heat_fraction_calibrated``: the default heat fraction of every command
and design study (``pump.heat_fraction_model = "calibrated"``); ``calibration.json`` states the
stored value beside this run's fit, and the validation report flags a difference.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
from scipy.optimize import brentq

from cqdlaser.geometry.device import Device
from cqdlaser.physics.heat import HeatProblem, time_grid
from cqdlaser.physics.laser import KW_CM2, lasing_duration, threshold_model
from cqdlaser.physics.materials import region_materials
from cqdlaser.physics.source import absorbed_fraction, heat_fraction, heat_fraction_origin
from cqdlaser.studies.common import matplotlib_backend, paper_device, save_figure
from cqdlaser.studies.output import provenance, write_csv, write_json
from cqdlaser.studies.sweep import sweep
from cqdlaser.studies.thermal import heat_materials, heat_mesh

LASER = "paper_inorganic_mgf2"
ORGANIC = "paper_organic_mgf2"
GEOMETRIES: dict[str, tuple[str, ...]] = {
    "film": ("grating=false", "cap=false"),
    "device": (),
}
"""Thermal model -> config overrides: ``film`` is the paper's (film on a bulk substrate);
``device`` keeps the DFB grating (homogenised) and the spin-on-glass cap of the config."""
FILM_MODEL = GEOMETRIES["film"]
QUICK: tuple[str, ...] = ("mesh.scale=3", "heat.step_growth=1.3")
"""Coarser lateral mesh and time steps of ``--quick`` runs (about 0.1 K on the film temperature)."""
LONG_PULSE = "pump.pulse_ns=1e9"
"""A pump that stays on over every run (CW over the time shown)."""
CELSIUS = 273.15
SIXTY_C = 60.0 + CELSIUS
BASELINE = "B"
FIT_TOLERANCE_K = 1e-6
"""Accepted misfit of the film temperature at the reading's time (K)."""


@dataclass(frozen=True)
class Reading:
    """One reading of the paper that fixes the heat fraction.

    Attributes:
        name: ``"A"`` or ``"B"``.
        statement: The paper's statement, as read.
        intensity_kw_cm2: Pump intensity of the statement (kW/cm2).
        time_s: When the film reaches the target (s).
        target_k: The film's maximum temperature then (K); None: where the threshold of the
            laser config reaches the pump (the end of lasing).
    """

    name: str
    statement: str
    intensity_kw_cm2: float
    time_s: float
    target_k: float | None

    def target(self, device: Device) -> float:
        """The target film temperature (K) for a device (its ``[laser]`` threshold law)."""
        if self.target_k is not None:
            return self.target_k
        return threshold_model(device).temperature_at(self.intensity_kw_cm2 * KW_CM2)


READINGS: dict[str, Reading] = {
    "A": Reading(
        "A",
        "Fig. 4b: the inorganic film (120 nm, 51 kW/cm2, MgF2) reaches ~60 C after 2 us",
        51.0,
        2.0e-6,
        SIXTY_C,
    ),
    "B": Reading(
        "B",
        "Fig. 3d: at 88 kW/cm2 lasing stops near 1.8 us, where the threshold has risen 88/52x "
        "(T0 = 72 K from 1.7x at 60 C)",
        88.0,
        1.8e-6,
        None,
    ),
}


def thermal_device(
    config: str,
    overrides: Iterable[str] = (),
    *,
    quick: bool = False,
    geometry: str = "film",
    heat_fraction: float | None = None,
) -> Device:
    """A config under the thermal studies' settings.

    Args:
        config: Example config name (``paper_inorganic_mgf2`` ...).
        overrides: Further ``section.key=value`` overrides (applied last).
        quick: Coarse mesh and steps (:data:`QUICK`).
        geometry: ``"film"`` (the paper's model) or ``"device"`` (grating and cap kept).
        heat_fraction: ``pump.heat_fraction`` to set (None: leave the config's).
    """
    sets = [*GEOMETRIES[geometry], "heat.mesh=axisymmetric", LONG_PULSE]
    if quick:
        sets += QUICK
    if heat_fraction is not None:
        sets.append(f"pump.heat_fraction={heat_fraction!r}")
    return paper_device(config, [*sets, *overrides])


@dataclass(frozen=True)
class FilmResponse:
    """The film's hottest temperature under a pump switched on at t = 0.

    Attributes:
        times: Time levels (s).
        temperature: Film maximum temperature (K) at those levels.
        steady: Steady (CW) film maximum temperature (K); NaN if not solved.
    """

    times: np.ndarray
    temperature: np.ndarray
    steady: float = math.nan

    def at(self, t: float) -> float:
        """Film maximum temperature (K) at time ``t`` (s), linear between levels."""
        return float(np.interp(t, self.times, self.temperature))


def film_response(
    device: Device,
    comm: MPI.Comm,
    end: float,
    *,
    marks: Sequence[float] = (),
    steady: bool = True,
    mesh_data: Any = None,
) -> FilmResponse:
    """Transient of the film maximum temperature to ``end`` (s), then the steady state.

    Args:
        device: The device (its pump on from t = 0).
        comm: Communicator of the solve.
        end: End time (s).
        marks: Times (s) that must be time levels (steps restart small there).
        steady: Also solve the steady state.
        mesh_data: A mesh of the device's geometry to reuse (default: build one).
    """
    mesh_data = heat_mesh(device, comm) if mesh_data is None else mesh_data
    problem = HeatProblem.from_device(device, mesh_data, heat_materials(device, comm))
    s = problem.settings
    edges = {*problem.source.waveform.edges(end), *(m for m in marks if 0.0 < m < end)}
    times = time_grid(
        end,
        tuple(sorted(edges)),
        first_step=s.first_step,
        growth=s.step_growth,
        max_step=s.max_step,
    )
    history = problem.run(times=times)
    t_ss = math.nan
    if steady:
        problem.steady()
        t_ss = problem.film_max_temperature()
    return FilmResponse(history.times, history.film_max_temperature, t_ss)


def fit_heat_fraction(
    reading: Reading, geometry: str, quick: bool, comm: MPI.Comm
) -> dict[str, Any]:
    """Fit eta to one reading by Brent's method on the transient, and evaluate what it implies.

    Returns:
        The fitted fraction, the fit's residual and evaluations, and the implications: the
        lasing duration at 88 kW/cm2 (Fig. 3d), the film temperature at 2 us at 51 kW/cm2
        (Fig. 4b), and the steady temperature at 50 kW/cm2 (the sensitivity baseline).
    """
    overrides = [f"pump.intensity_kw_cm2={reading.intensity_kw_cm2}"]
    probe = thermal_device(LASER, overrides, quick=quick, geometry=geometry, heat_fraction=0.1)
    target = reading.target(probe)
    mesh_data = heat_mesh(probe, comm)
    evaluations: list[tuple[float, float]] = []

    def residual(eta: float) -> float:
        device = dataclasses.replace(probe, pump=dataclasses.replace(probe.pump, heat_fraction=eta))
        response = film_response(device, comm, reading.time_s, steady=False, mesh_data=mesh_data)
        value = float(response.temperature[-1])
        evaluations.append((eta, value))
        return value - target

    # Secant from eta = 0 (no heat: the film stays at the sink) through a probe; a linear device
    # is solved by it exactly, a nonlinear one (k(T)) goes on to Brent's method.
    wanted = target - probe.heat.sink_temperature_k
    eta = 0.1 * wanted / (residual(0.1) + wanted)
    final = residual(eta)
    if abs(final) > FIT_TOLERANCE_K:
        eta = float(brentq(residual, 0.5 * eta, min(2.0 * eta, 1.0), xtol=1e-12, rtol=1e-10))
        final = residual(eta)

    laser = thermal_device(
        LASER,
        ["pump.intensity_kw_cm2=88", "pump.pulse_ns=2500"],
        quick=quick,
        geometry=geometry,
        heat_fraction=eta,
    )
    at88 = film_response(laser, comm, 2.5e-6, marks=(1.8e-6,), steady=False)
    duration = lasing_duration(
        at88.times, at88.temperature, 88.0 * KW_CM2, threshold_model(laser), pulse=2.5e-6
    )
    fig4b = thermal_device(
        LASER, ["pump.intensity_kw_cm2=51"], quick=quick, geometry=geometry, heat_fraction=eta
    )
    at51 = film_response(fig4b, comm, 2.5e-6, marks=(2.0e-6,), steady=False)
    base = thermal_device(
        LASER, ["pump.intensity_kw_cm2=50"], quick=quick, geometry=geometry, heat_fraction=eta
    )
    steady50 = film_response(base, comm, 1e-9, steady=True).steady
    return {
        "reading": reading.name,
        "geometry": geometry,
        "heat_fraction": eta,
        "target_temperature_k": target,
        "target_time_s": reading.time_s,
        "fit_intensity_kw_cm2": reading.intensity_kw_cm2,
        "fit_residual_k": final,
        "evaluations": len(evaluations),
        "absorbed_flux_w_m2_at_51": eta * 51.0 * KW_CM2,
        "lasing_duration_88_s": duration,
        "temperature_88_at_1p8us_k": at88.at(1.8e-6),
        "temperature_51_at_2us_k": at51.at(2.0e-6),
        "steady_temperature_50_k": steady50,
        "curves": {
            "88": (at88.times, at88.temperature),
            "51": (at51.times, at51.temperature),
        },
    }


def physical_estimates() -> list[dict[str, Any]]:
    """eta = A (1 - PLQY lambda_p/lambda_e) from the materials, for both films and geometries."""
    rows = []
    for film, config in (("inorganic", LASER), ("organic", ORGANIC)):
        for geometry in GEOMETRIES:
            device = thermal_device(
                config, ["pump.heat_fraction_model=absorption"], geometry=geometry
            )
            materials = region_materials(device)
            absorbed = absorbed_fraction(device, materials)
            qd_only = {"film": dataclasses.replace(materials["film"], plqy=1.0)}
            rows.append(
                {
                    "film": film,
                    "geometry": geometry,
                    "absorbed_fraction": absorbed,
                    "plqy": materials["film"].plqy,
                    "heat_fraction_quantum_defect": heat_fraction(device, qd_only),
                    "heat_fraction_auger_dominated": heat_fraction(device, materials),
                }
            )
    return rows


def _compatible(meta: dict[str, Any], quick: bool) -> bool:
    return bool(meta.get("quick") == quick and meta.get("heat_fractions"))


def calibrated_heat_fractions(
    quick: bool = False, comm: MPI.Comm = MPI.COMM_WORLD, path: Path | None = None
) -> dict[str, float]:
    """The fitted heat fraction of each reading (film model): {"A": eta_A, "B": eta_B}.

    Read from ``path`` (a calibration.json written with the same ``quick``) if it exists, else
    fitted (each reading on one rank group, as in a serial run).
    """
    if path is not None and Path(path).exists():
        meta = comm.bcast(json.loads(Path(path).read_text()) if comm.rank == 0 else None)
        if _compatible(meta, quick):
            return {k: float(v) for k, v in meta["heat_fractions"].items()}
    fits = sweep(
        list(READINGS.values()),
        lambda r, sub: fit_heat_fraction(r, "film", quick, sub)["heat_fraction"],
        comm,
        desc="calibration",
    )
    return dict(zip(READINGS, fits, strict=True))


def calibrated_heat_fraction(
    quick: bool = False,
    comm: MPI.Comm = MPI.COMM_WORLD,
    path: Path | None = None,
    reading: str = BASELINE,
) -> float:
    """The heat fraction of one reading (default: the baseline, B); see
    :func:`calibrated_heat_fractions`."""
    return calibrated_heat_fractions(quick, comm, path)[reading]


def default_calibration_path(out: Path) -> Path:
    """Where a study writing into ``out`` finds the calibration of the same ``cqdlaser run``."""
    return Path(out).parent / "calibration" / "calibration.json"


def study_heat_fraction(
    given: float | None = None, device: Device | None = None
) -> tuple[float, str]:
    """The heat fraction a design study uses, and where it comes from.

    ``given`` when a caller fixes it, else the device's own (default: the paper's laser):
    ``pump.heat_fraction`` or its ``pump.heat_fraction_model`` (by default the film material's
    calibrated value, which this study re-fits: :func:`stored_heat_fraction_check`). So a study
    and ``cqdlaser heat``/``lasing`` on the same config use the same number.
    """
    if given is not None:
        return given, "given"
    device = device if device is not None else paper_device(LASER)
    return heat_fraction(device, region_materials(device)), heat_fraction_origin(device)


def stored_heat_fraction_check(fitted: float) -> dict[str, Any]:
    """The film material's stored ``heat_fraction_calibrated`` against this run's fit of the
    baseline reading: the data file and the calibration must tell one story."""
    stored = region_materials(paper_device(LASER))["film"].heat_fraction_calibrated
    assert stored is not None
    return {
        "stored_heat_fraction": stored,
        "fitted_heat_fraction": fitted,
        "stored_relative_difference": stored / fitted - 1.0,
    }


def run(out: Path, *, quick: bool = False, comm: MPI.Comm = MPI.COMM_WORLD) -> dict[str, Any]:
    """Fit both readings on both geometries; write calibration.csv/json and the fit curves."""
    t0 = time.perf_counter()
    points = [(r, g) for g in GEOMETRIES for r in READINGS]
    fits = sweep(
        points,
        lambda p, sub: fit_heat_fraction(READINGS[p[0]], p[1], quick, sub),
        comm,
        desc="calibration",
    )
    table = [{k: v for k, v in f.items() if k != "curves"} for f in fits]
    by = {(f["reading"], f["geometry"]): f for f in fits}
    a, b = by["A", "film"], by["B", "film"]
    estimates = physical_estimates()
    est = {(e["film"], e["geometry"]): e for e in estimates}
    summary = {
        "baseline_reading": BASELINE,
        "heat_fraction": by[BASELINE, "film"]["heat_fraction"],
        "heat_fraction_reading_a": a["heat_fraction"],
        "heat_fraction_reading_b": b["heat_fraction"],
        "ratio_a_over_b": a["heat_fraction"] / b["heat_fraction"],
        "ratio_a_over_b_device": by["A", "device"]["heat_fraction"]
        / by["B", "device"]["heat_fraction"],
        "under_a_lasing_duration_88_s": a["lasing_duration_88_s"],
        "under_b_fig4b_temperature_2us_c": b["temperature_51_at_2us_k"] - CELSIUS,
        "under_a_fig4b_temperature_2us_c": a["temperature_51_at_2us_k"] - CELSIUS,
        "under_b_lasing_duration_88_s": b["lasing_duration_88_s"],
        **stored_heat_fraction_check(by[BASELINE, "film"]["heat_fraction"]),
        "estimate_quantum_defect": est["inorganic", "film"]["heat_fraction_quantum_defect"],
        "estimate_auger_dominated": est["inorganic", "film"]["heat_fraction_auger_dominated"],
        "organic_heat_fraction": "same as inorganic (equal OD at 442 nm, same PLQY)",
        "paper": {
            "lasing_duration_88_s": 1.8e-6,
            "fig4b_temperature_2us_c": 60.0,
            "threshold_ratio_at_60c": 1.7,
        },
    }
    curves = []
    for f in fits:
        if f["geometry"] != "film":
            continue
        for pump, (times, temps) in f["curves"].items():
            curves += [
                {
                    "reading": f["reading"],
                    "intensity_kw_cm2": float(pump),
                    "time_s": float(t),
                    "film_max_temperature_k": float(temp),
                }
                for t, temp in zip(times, temps, strict=True)
            ]
    write_csv(out / "calibration.csv", rows=table, comm=comm)
    write_csv(out / "calibration_estimates.csv", rows=estimates, comm=comm)
    write_csv(out / "calibration_curves.csv", rows=curves, comm=comm)
    write_json(
        out / "calibration.json",
        {
            "summary": summary,
            "reading": BASELINE,
            "heat_fraction": summary["heat_fraction"],
            "heat_fractions": {r: by[r, "film"]["heat_fraction"] for r in READINGS},
            "readings": {k: dataclasses.asdict(v) for k, v in READINGS.items()},
            "fits": table,
            "estimates": estimates,
            "quick": quick,
            "geometry_overrides": GEOMETRIES,
            **provenance(comm, inputs={"laser": LASER, "organic": ORGANIC}, started=t0),
        },
        comm=comm,
    )
    return summary


def plot(out: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """The fit: film temperature at 88 and 51 kW/cm2 under each reading, with the two targets."""
    if comm.rank != 0:
        return
    matplotlib_backend()
    import matplotlib.pyplot as plt

    meta = json.loads((out / "calibration.json").read_text())
    rows = read_rows(out / "calibration_curves.csv")
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    colours = {"A": "tab:orange", "B": "tab:blue"}
    for reading, colour in colours.items():
        eta = meta["heat_fractions"][reading]
        for pump, style in ((88.0, "-"), (51.0, "--")):
            sel = [r for r in rows if r["reading"] == reading and r["intensity_kw_cm2"] == pump]
            ax.plot(
                [r["time_s"] * 1e6 for r in sel],
                [r["film_max_temperature_k"] - CELSIUS for r in sel],
                style,
                color=colour,
                label=f"reading {reading} ($\\eta$ = {eta:.3f}), {pump:.0f} kW/cm$^2$",
            )
    target_b = next(f for f in meta["fits"] if f["reading"] == "B")["target_temperature_k"]
    ax.plot([1.8], [target_b - CELSIUS], "ks", label="B: lasing ends at 1.8 us (88 kW/cm$^2$)")
    ax.plot([2.0], [SIXTY_C - CELSIUS], "k^", label="A: 60 C at 2 us (51 kW/cm$^2$)")
    ax.set_xlabel("time (us)")
    ax.set_ylabel("film max temperature (C)")
    ax.set_title("Heat-fraction calibration (film on MgF$_2$)")
    ax.legend(fontsize=7)
    save_figure(fig, out / "calibration", comm)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV with numbers converted (where they parse)."""
    import csv

    def value(text: str) -> Any:
        try:
            return float(text)
        except ValueError:
            return text

    with Path(path).open() as f:
        return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(f)]
