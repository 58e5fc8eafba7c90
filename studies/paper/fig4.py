"""Fig. 4b-d: film temperature versus time, predicted with the calibrated heat fraction.

- ``fig4b``: the inorganic film (120 nm, pumped at its 51 kW/cm2 threshold) and the organic film
  (300 nm, at 83 kW/cm2), both on MgF2; the organic film gets the inorganic film's heat fraction
  (equal optical density at the pump, same PLQY), with eta x 0.75 and x 1.25 as the alternative;
- ``fig4c``: the inorganic film on MgF2 pumped at its threshold, for several thresholds;
- ``fig4d``: the inorganic film at 50 kW/cm2 on glass, sapphire, MgF2, Si (bare: its ~2 nm native
  oxide is neglected), Si under 1 um of SiO2, Al under 500 nm of MgF2, and diamond.

The thermal model is the paper's: the film directly on the substrate (a cladding where named),
uniform heating inside the spot, the pump on from t = 0; no fitting here. Every case runs under
the baseline reading B of the calibration and under reading A (dashed in the figures; quick runs
of Fig. 4c and 4d skip reading A). Each case also gives the steady (CW) temperature, the thermal
resistance R = dT_ss / I and the CW criterion of the exponential threshold law pumped at
threshold, a = R P_th / T0 (CW possible iff a <= 1/e), with the largest threshold that could lase
CW on that substrate, T0 / (e R).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry.device import Device
from cqdlaser.physics.laser import KW_CM2, cw_exponential, thermal_resistance, threshold_model
from cqdlaser.physics.materials import region_materials
from cqdlaser.physics.source import heat_fraction
from cqdlaser.studies.common import matplotlib_backend, save_figure
from cqdlaser.studies.output import provenance, write_csv, write_json
from cqdlaser.studies.paper.calibration import (
    BASELINE,
    CELSIUS,
    LASER,
    ORGANIC,
    calibrated_heat_fractions,
    default_calibration_path,
    film_response,
    read_rows,
    thermal_device,
)
from cqdlaser.studies.paper.sensitivity import device_settings
from cqdlaser.studies.study_device import PAPER_DEFAULT, StudyDevice, study_device
from cqdlaser.studies.sweep import sweep

END_S = 5e-6
QUICK_END_S = 2.5e-6
MARKS_S = (1e-6, 2e-6)
THRESHOLDS_KW_CM2 = (25.0, 50.0, 75.0, 100.0)
QUICK_THRESHOLDS_KW_CM2 = (25.0, 50.0, 100.0)
SUBSTRATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "glass": (LASER, ("substrate.material=glass",)),
    "sapphire": (LASER, ("substrate.material=sapphire",)),
    "MgF2": (LASER, ()),
    "Si": (LASER, ("substrate.material=si",)),
    "Si + 1 um SiO2": ("si_sio2_cladding", ()),
    "Al + 500 nm MgF2": ("al_mgf2_cladding", ()),
    "diamond": (LASER, ("substrate.material=diamond",)),
}
"""Fig. 4d substrates: label -> (config, overrides)."""


@dataclass(frozen=True)
class Case:
    """One curve.

    Attributes:
        label: Curve label (unique within a study together with the reading).
        config: Example config name.
        overrides: Config overrides.
        reading: Calibration reading whose heat fraction is used (``"A"`` or ``"B"``).
        heat_fraction_scale: Factor on that heat fraction (alternatives).
    """

    label: str
    config: str
    overrides: tuple[str, ...]
    reading: str = BASELINE
    heat_fraction_scale: float = 1.0


def evaluate(
    case: Case,
    fractions: dict[str, float],
    quick: bool,
    comm: MPI.Comm,
    spec: StudyDevice | None = None,
) -> dict[str, Any]:
    """The transient and steady film temperature of one case, and its CW criterion (a case of
    config :data:`DEVICE`: the overrides on the device of ``spec``, with its heat fraction)."""
    eta = fractions[case.reading] * case.heat_fraction_scale
    if case.config == DEVICE and spec is not None:
        device = spec.variant([*device_settings(quick), *case.overrides])
    else:
        device = thermal_device(case.config, case.overrides, quick=quick, heat_fraction=eta)
    end = QUICK_END_S if quick else END_S
    response = film_response(device, comm, end, marks=MARKS_S)
    sink = device.heat.sink_temperature_k
    intensity = device.pump.intensity
    resistance = thermal_resistance(response.steady - sink, intensity)
    model = threshold_model(device)
    cw = cw_exponential(resistance, model, sink)
    row = {
        "label": case.label,
        "reading": case.reading,
        "film": device.film.material,
        "thickness_nm": device.film.thickness_nm,
        "substrate": device.substrate.material,
        "cladding": None if device.cladding is None else device.cladding.material,
        "intensity_kw_cm2": device.pump.intensity_kw_cm2,
        "threshold_kw_cm2": device.laser.threshold_kw_cm2,
        "heat_fraction": eta,
        "temperature_1us_c": response.at(1e-6) - CELSIUS,
        "temperature_2us_c": response.at(2e-6) - CELSIUS,
        "rise_2us_k": response.at(2e-6) - sink,
        "temperature_end_c": float(response.temperature[-1]) - CELSIUS,
        "steady_temperature_c": response.steady - CELSIUS,
        "steady_rise_k": response.steady - sink,
        "thermal_resistance_k_cm2_per_kw": resistance * KW_CM2,
        "cw_criterion": cw.criterion,
        "cw_possible_at_threshold": cw.possible,
        "max_cw_threshold_kw_cm2": model.t0 / (math.e * resistance) / KW_CM2,
    }
    return {"row": row, "times": response.times, "temperature": response.temperature}


def run_cases(
    name: str,
    cases: list[Case],
    out: Path,
    *,
    quick: bool,
    comm: MPI.Comm,
    calibration: Path | None,
    summarize: Callable[[list[dict[str, Any]]], dict[str, Any]],
    spec: StudyDevice | None = None,
) -> dict[str, Any]:
    """Evaluate the cases in parallel and write ``<name>.csv`` (curves), ``<name>_summary.csv``
    (one row per case) and ``<name>.json`` (with ``summarize(rows)`` as its summary).

    With a user's device (``spec``), its own heat fraction replaces the calibration's readings.

    Returns:
        The summary.
    """
    t0 = time.perf_counter()
    path = default_calibration_path(out) if calibration is None else calibration
    if spec is None or spec.is_paper:
        fractions = calibrated_heat_fractions(quick, comm, path)
    else:
        fractions = {DEVICE_READING: heat_fraction(spec.device, region_materials(spec.device))}
    results = sweep(cases, lambda c, sub: evaluate(c, fractions, quick, sub, spec), comm, desc=name)
    curves = [
        {
            "label": r["row"]["label"],
            "reading": r["row"]["reading"],
            "time_s": float(t),
            "film_max_temperature_k": float(temp),
        }
        for r in results
        for t, temp in zip(r["times"], r["temperature"], strict=True)
    ]
    rows = [r["row"] for r in results]
    summary = {"heat_fractions": fractions, "baseline_reading": BASELINE, **summarize(rows)}
    if spec is not None:
        summary["device"] = spec.label()
    write_csv(out / f"{name}.csv", rows=curves, comm=comm)
    write_csv(out / f"{name}_summary.csv", rows=rows, comm=comm)
    write_json(
        out / f"{name}.json",
        {
            "summary": summary,
            "cases": rows,
            "quick": quick,
            **provenance(
                comm,
                inputs=[asdict(c) for c in cases],
                started=t0,
                calibration=str(path),
                **({} if spec is None else {"device": spec.to_dict()}),
            ),
        },
        comm=comm,
    )
    return summary


def _both(cases: list[Case], quick: bool = False) -> list[Case]:
    """Each case under the baseline reading, then under the other (not in quick runs)."""
    if quick:
        return cases
    other = "A" if BASELINE == "B" else "B"
    return [*cases, *(Case(c.label, c.config, c.overrides, other) for c in cases)]


def _row(rows: list[dict[str, Any]], label: str, reading: str = BASELINE) -> dict[str, Any]:
    return next(r for r in rows if r["label"] == label and r["reading"] == reading)


def fig4b(
    out: Path,
    *,
    quick: bool = False,
    comm: MPI.Comm = MPI.COMM_WORLD,
    calibration: Path | None = None,
) -> dict[str, Any]:
    """Fig. 4b: inorganic (120 nm, 51 kW/cm2) vs organic (300 nm, 83 kW/cm2) films on MgF2."""
    inorganic = Case(
        "inorganic, 120 nm, 51 kW/cm2",
        LASER,
        ("pump.intensity_kw_cm2=51", "laser.threshold_kw_cm2=51"),
    )
    organic = Case("organic, 300 nm, 83 kW/cm2", ORGANIC, ())
    cases = _both([inorganic, organic]) + [
        Case(f"organic, eta x {s:g}", ORGANIC, (), BASELINE, s) for s in (0.75, 1.25)
    ]

    def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        for reading in ("A", "B"):
            a, b = _row(rows, inorganic.label, reading), _row(rows, organic.label, reading)
            summary[f"reading_{reading.lower()}"] = {
                "inorganic_2us_c": a["temperature_2us_c"],
                "organic_2us_c": b["temperature_2us_c"],
                "rise_ratio_organic_over_inorganic_2us": b["rise_2us_k"] / a["rise_2us_k"],
                "inorganic_steady_c": a["steady_temperature_c"],
                "organic_steady_c": b["steady_temperature_c"],
            }
        summary["organic_2us_c_eta_range"] = [
            _row(rows, f"organic, eta x {s:g}")["temperature_2us_c"] for s in (0.75, 1.25)
        ]
        summary["paper"] = {"inorganic_2us_c": 60.0, "statement": "a marked difference"}
        return summary

    summary = run_cases(
        "fig4b", cases, out, quick=quick, comm=comm, calibration=calibration, summarize=summarize
    )
    return summary


def fig4c(
    out: Path,
    *,
    quick: bool = False,
    comm: MPI.Comm = MPI.COMM_WORLD,
    calibration: Path | None = None,
) -> dict[str, Any]:
    """Fig. 4c: the inorganic film on MgF2 pumped at its threshold, for several thresholds."""
    thresholds = QUICK_THRESHOLDS_KW_CM2 if quick else THRESHOLDS_KW_CM2
    cases = _both(
        [
            Case(
                f"{p:g} kW/cm2",
                LASER,
                (f"pump.intensity_kw_cm2={p}", f"laser.threshold_kw_cm2={p}"),
            )
            for p in thresholds
        ],
        quick,
    )
    summary = run_cases(
        "fig4c",
        cases,
        out,
        quick=quick,
        comm=comm,
        calibration=calibration,
        summarize=_summarize_curves,
    )
    return summary


def fig4d(
    out: Path,
    *,
    quick: bool = False,
    comm: MPI.Comm = MPI.COMM_WORLD,
    calibration: Path | None = None,
    device: StudyDevice | Device | None = None,
) -> dict[str, Any]:
    """Fig. 4d: the inorganic film at 50 kW/cm2 on several substrates.

    Args:
        out: Output folder.
        quick: Coarse meshes and steps, the baseline reading only.
        comm: Communicator; the cases run in parallel over its ranks.
        calibration: The calibration.json to read the heat fractions from (paper device).
        device: A device to compare instead: its film, grating, cap and pump, pumped at its
            ``[laser]`` threshold with its own heat fraction, as it is and on each substrate of
            :data:`SUBSTRATES` (bare, or under the same claddings).
    """
    spec = study_device(device, "fig4d", comm, config=LASER)
    if spec.is_paper:
        pump = ("pump.intensity_kw_cm2=50", "laser.threshold_kw_cm2=50")
        cases = _both(
            [Case(label, config, (*over, *pump)) for label, (config, over) in SUBSTRATES.items()],
            quick,
        )
    else:
        cases = device_cases(spec.device)
    return run_cases(
        "fig4d",
        cases,
        out,
        quick=quick,
        comm=comm,
        calibration=calibration,
        summarize=_summarize_curves,
        spec=spec,
    )


DEVICE = "device"
"""The config of the cases on a user's device (and their reading: its own heat fraction)."""
DEVICE_READING = DEVICE
DEVICE_SUBSTRATES: dict[str, tuple[str, ...]] = {
    "glass": ("substrate.material=glass", "cladding=false"),
    "sapphire": ("substrate.material=sapphire", "cladding=false"),
    "MgF2": ("substrate.material=mgf2", "cladding=false"),
    "Si": ("substrate.material=si", "cladding=false"),
    "Si + 1 um SiO2": (
        "substrate.material=si",
        "cladding.material=sio2",
        "cladding.thickness_nm=1000",
    ),
    "Al + 500 nm MgF2": (
        "substrate.material=al",
        "cladding.material=mgf2",
        "cladding.thickness_nm=500",
    ),
    "diamond": ("substrate.material=diamond", "cladding=false"),
}
"""The substrates of :data:`SUBSTRATES` as overrides of a user's device (the same claddings)."""


def device_cases(device: Device) -> list[Case]:
    """A user's device as it is, then on each substrate, pumped at its ``[laser]`` threshold."""
    p = device.laser.threshold_kw_cm2
    pump = (f"pump.intensity_kw_cm2={p}",)
    own = Case("the device", DEVICE, pump, DEVICE_READING)
    return [
        own,
        *(Case(k, DEVICE, (*v, *pump), DEVICE_READING) for k, v in DEVICE_SUBSTRATES.items()),
    ]


def run(out: Path, *, quick: bool = False, comm: MPI.Comm = MPI.COMM_WORLD) -> dict[str, Any]:
    """Fig. 4b, 4c and 4d, each into its own folder beside ``out``'s calibration."""
    calibration = default_calibration_path(out)
    return {
        name: study(out / name, quick=quick, comm=comm, calibration=calibration)
        for name, study in (("fig4b", fig4b), ("fig4c", fig4c), ("fig4d", fig4d))
    }


def _summarize_curves(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per label (baseline reading): T at 2 us, steady T, CW at threshold, largest CW threshold;
    and the largest CW threshold under the other reading."""
    base = [r for r in rows if r["reading"] in (BASELINE, DEVICE_READING)]
    other = [r for r in rows if r["reading"] not in (BASELINE, DEVICE_READING)]
    return {
        "temperature_2us_c": {r["label"]: r["temperature_2us_c"] for r in base},
        "steady_temperature_c": {r["label"]: r["steady_temperature_c"] for r in base},
        "cw_possible_at_threshold": {r["label"]: r["cw_possible_at_threshold"] for r in base},
        "max_cw_threshold_kw_cm2": {r["label"]: r["max_cw_threshold_kw_cm2"] for r in base},
        "max_cw_threshold_kw_cm2_other_reading": {
            r["label"]: r["max_cw_threshold_kw_cm2"] for r in other
        },
    }


def _curves(out: Path, name: str) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    curves: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for r in read_rows(out / f"{name}.csv"):
        t, temp = curves.setdefault((r["label"], r["reading"]), ([], []))
        t.append(r["time_s"])
        temp.append(r["film_max_temperature_k"])
    return {k: (np.asarray(t), np.asarray(v)) for k, (t, v) in curves.items()}


def plot_curves(out: Path, name: str, title: str, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Film temperature vs time, one colour per label; the baseline solid, reading A dashed."""
    if comm.rank != 0:
        return
    matplotlib_backend()
    import matplotlib.pyplot as plt

    curves = _curves(out, name)
    labels = list(dict.fromkeys(label for label, _ in curves))
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    for i, label in enumerate(labels):
        colour = f"C{i}"
        for reading, style in (("B", "-"), ("A", "--"), (DEVICE_READING, "-")):
            if (label, reading) in curves:
                t, temp = curves[label, reading]
                ax.plot(
                    t * 1e6,
                    temp - CELSIUS,
                    style,
                    color=colour,
                    label=label if reading in (BASELINE, DEVICE_READING) else None,
                )
    if any(reading != DEVICE_READING for _, reading in curves):
        ax.plot([], [], "k-", label="reading B (baseline)")
        ax.plot([], [], "k--", label="reading A")
    ax.set_xlabel("time (us)")
    ax.set_ylabel("film max temperature (C)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    save_figure(fig, out / name, comm)


def plot_fig4c(out: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Fig. 4c from fig4c.csv."""
    plot_curves(out, "fig4c", "Fig. 4c: film on MgF$_2$, pumped at threshold", comm)


def plot_fig4d(out: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Fig. 4d from fig4d.csv (a user's device: titled with its description)."""
    title = "Fig. 4d: film at 50 kW/cm$^2$ on substrates"
    if comm.rank == 0:
        device = json.loads((out / "fig4d.json").read_text())["summary"].get("device")
        if device is not None and device["source"] != PAPER_DEFAULT:
            title = f"{device['description']}\nat threshold, on substrates"
    plot_curves(out, "fig4d", title, comm)


def plot_fig4b(out: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Fig. 4b from fig4b.csv: both films, both readings, and the organic film's eta range."""
    if comm.rank != 0:
        return
    matplotlib_backend()
    import matplotlib.pyplot as plt

    curves = _curves(out, "fig4b")
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    colours = {"inorganic": "tab:blue", "organic": "tab:red"}
    for (label, reading), (t, temp) in curves.items():
        if "eta x" in label:
            continue
        colour = colours[label.split(",")[0]]
        style = "-" if reading == BASELINE else "--"
        ax.plot(t * 1e6, temp - CELSIUS, style, color=colour, label=f"{label} ({reading})")
    low = [v for (label, _), v in curves.items() if label.endswith("x 0.75")]
    high = [v for (label, _), v in curves.items() if label.endswith("x 1.25")]
    if low and high:
        ax.fill_between(
            low[0][0] * 1e6,
            low[0][1] - CELSIUS,
            high[0][1] - CELSIUS,
            color="tab:red",
            alpha=0.15,
            lw=0,
            label="organic, eta x 0.75-1.25",
        )
    ax.plot([2.0], [60.0], "k^", label="paper: ~60 C at 2 us")
    ax.set_xlabel("time (us)")
    ax.set_ylabel("film max temperature (C)")
    ax.set_title("Fig. 4b: films on MgF$_2$ at their ASE thresholds")
    ax.legend(fontsize=7)
    save_figure(fig, out / "fig4b", comm)
