"""Sensitivity of the steady film temperature to the threshold, film thickness and substrate k.

The paper: changing each of (1) the ASE threshold, (2) the film thickness and (3) the substrate
conductivity by ~2x from the baseline (50 kW/cm2, 120 nm, MgF2) changes the steady-state
temperature by (1) 80 %, (2) 14 % and (3) 50 %. It does not say whether the percentages are of
the temperature rise dT or of the temperature in C, nor whether k is doubled or halved; this
study computes every reading, for doubling and for halving each parameter:

- threshold: the pump is at threshold, so pump and threshold scale together;
- thickness: at equal optical density at the pump (the paper's assumption), i.e. the same heat
  fraction of the incident pump spread over the new thickness;
- substrate k: the whole conductivity tensor of the MgF2 substrate scaled.

Steady states (CW) on the r-z mesh with the calibrated heat fraction of reading B (baseline) and
of reading A; the temperature at 2 us is given as well (the paper says steady state). The
percentages of dT do not depend on the heat fraction (the model is linear); those in C do.

On a user's device (``cqdlaser run sensitivity CONFIG``) the same six changes are taken around
the device: its ``[laser]`` threshold (pumped at threshold), its film thickness and its
substrate's conductivity, on the device as it is (grating, cap and cladding kept, the r-z mesh)
with its own heat fraction, and nothing is compared with the paper's percentages.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry.device import Device
from cqdlaser.physics.materials import region_materials
from cqdlaser.physics.source import heat_fraction, heat_fraction_origin
from cqdlaser.studies.common import matplotlib_backend, save_figure
from cqdlaser.studies.output import provenance, write_csv, write_json
from cqdlaser.studies.paper.calibration import (
    BASELINE,
    CELSIUS,
    LASER,
    LONG_PULSE,
    QUICK,
    calibrated_heat_fractions,
    default_calibration_path,
    film_response,
    read_rows,
    thermal_device,
)
from cqdlaser.studies.study_device import StudyDevice, study_device
from cqdlaser.studies.sweep import sweep

BASE_INTENSITY_KW_CM2 = 50.0
BASE_THICKNESS_NM = 120.0
PARAMETERS = ("threshold", "thickness", "substrate_k")
FACTORS = (2.0, 0.5)
PAPER_PERCENT = {"threshold": 80.0, "thickness": 14.0, "substrate_k": 50.0}
QUANTITIES = ("rise", "celsius", "rise_2us", "celsius_2us")
"""How a change is measured: of the steady dT, of the steady T in C, and the same at 2 us."""


@dataclass(frozen=True)
class Baseline:
    """What the variants change, at its baseline value.

    Attributes:
        intensity_kw_cm2: Pump intensity = threshold (kW/cm2): the device is pumped at threshold.
        thickness_nm: Film thickness (nm).
        substrate: Substrate material.
        substrate_k_w_mk: Its conductivity tensor (W/m/K), the diagonal.
    """

    intensity_kw_cm2: float
    thickness_nm: float
    substrate: str
    substrate_k_w_mk: tuple[float, ...]

    @classmethod
    def of(cls, device: Device, intensity_kw_cm2: float, thickness_nm: float) -> Baseline:
        """The baseline of a device at a given threshold and film thickness."""
        k = region_materials(device)["substrate"].thermal_conductivity
        return cls(intensity_kw_cm2, thickness_nm, device.substrate.material, tuple(k))


PAPER_BASELINE_DEVICE = (BASE_INTENSITY_KW_CM2, BASE_THICKNESS_NM)
"""The paper's baseline: 50 kW/cm2 (at threshold) and 120 nm, on the laser's MgF2."""


@dataclass(frozen=True)
class Variant:
    """One sensitivity point.

    Attributes:
        reading: Calibration reading of the heat fraction.
        parameter: ``"baseline"`` or one of :data:`PARAMETERS`.
        factor: Factor on the parameter (1 for the baseline).
    """

    reading: str
    parameter: str
    factor: float = 1.0

    def overrides(self, base: Baseline) -> list[str]:
        """Config overrides of this variant of ``base``."""
        threshold = base.intensity_kw_cm2 * (self.factor if self.parameter == "threshold" else 1)
        thickness = base.thickness_nm * (self.factor if self.parameter == "thickness" else 1)
        out = [
            f"pump.intensity_kw_cm2={threshold}",
            f"laser.threshold_kw_cm2={threshold}",
            f"film.thickness_nm={thickness}",
        ]
        if self.parameter == "substrate_k":
            scaled = ", ".join(repr(self.factor * v) for v in base.substrate_k_w_mk)
            out.append(f"materials.{base.substrate}.thermal_conductivity_w_mk=[{scaled}]")
        return out


def evaluate(
    variant: Variant,
    fractions: dict[str, float],
    quick: bool,
    comm: MPI.Comm,
    base: Baseline,
    spec: StudyDevice | None = None,
) -> dict[str, Any]:
    """Steady and 2-us film maximum temperature of one variant (of the paper's laser under the
    thermal studies' model, or of the device of ``spec`` as it is, with its heat fraction)."""
    if spec is None or spec.is_paper:
        device = thermal_device(
            LASER, variant.overrides(base), quick=quick, heat_fraction=fractions[variant.reading]
        )
    else:
        device = spec.variant([*device_settings(quick), *variant.overrides(base)])
    response = film_response(device, comm, 2e-6)
    sink = device.heat.sink_temperature_k
    return {
        **asdict(variant),
        "heat_fraction": fractions[variant.reading],
        "steady_temperature_k": response.steady,
        "temperature_2us_k": float(response.temperature[-1]),
        "sink_temperature_k": sink,
    }


def _value(row: dict[str, Any], quantity: str) -> float:
    temperature = row["temperature_2us_k" if quantity.endswith("2us") else "steady_temperature_k"]
    if quantity.startswith("rise"):
        return temperature - row["sink_temperature_k"]
    return temperature - CELSIUS


def changes(rows: list[dict[str, Any]], reading: str) -> list[dict[str, Any]]:
    """Percent change of each quantity for each (parameter, factor) against the baseline."""
    mine = [r for r in rows if r["reading"] == reading]
    base = next(r for r in mine if r["parameter"] == "baseline")
    out = []
    for r in mine:
        if r["parameter"] == "baseline":
            continue
        row = {"reading": reading, "parameter": r["parameter"], "factor": r["factor"]}
        for q in QUANTITIES:
            row[f"change_{q}_percent"] = 100.0 * (_value(r, q) / _value(base, q) - 1.0)
        out.append(row)
    return out


def match_paper(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each reading, quantity and direction, the three |changes| against the paper's
    80/14/50 % and their RMS distance, best match first."""
    out = []
    for reading in sorted({r["reading"] for r in table}):
        for q in QUANTITIES:
            for factor, direction in ((2.0, "doubling"), (0.5, "halving")):
                values = {
                    r["parameter"]: abs(r[f"change_{q}_percent"])
                    for r in table
                    if r["reading"] == reading and r["factor"] == factor
                }
                rms = math.sqrt(np.mean([(values[p] - PAPER_PERCENT[p]) ** 2 for p in PARAMETERS]))
                out.append(
                    {
                        "reading": reading,
                        "quantity": q,
                        "direction": direction,
                        **{f"{p}_percent": values[p] for p in PARAMETERS},
                        "rms_from_paper_percent": rms,
                    }
                )
    return sorted(out, key=lambda r: r["rms_from_paper_percent"])


DEVICE_READING = "device"
"""The one "reading" of a user's device: its own heat fraction."""


def device_settings(quick: bool) -> list[str]:
    """The settings a user's device runs under: the r-z mesh, a pump that stays on, and the
    coarse mesh and steps of ``quick`` (the device's grating, cap and cladding are kept)."""
    return ["heat.mesh=axisymmetric", LONG_PULSE, *(QUICK if quick else ())]


def run(
    out: Path,
    *,
    quick: bool = False,
    comm: MPI.Comm = MPI.COMM_WORLD,
    calibration: Path | None = None,
    device: StudyDevice | Device | None = None,
) -> dict[str, Any]:
    """Compute all variants under both readings; write sensitivity*.csv/json.

    Args:
        out: Output folder.
        quick: Coarse meshes and time steps.
        comm: Communicator; the variants run in parallel over its ranks.
        calibration: The calibration.json to read the heat fractions from (paper device).
        device: A device to study instead of the paper's laser: the changes are then around its
            ``[laser]`` threshold (pumped at threshold), its film thickness and its substrate's
            conductivity, on the device as it is (grating, cap, cladding) with its own heat
            fraction; no comparison with the paper's percentages.
    """
    t0 = time.perf_counter()
    spec = study_device(device, "sensitivity", comm, config=LASER)
    path = default_calibration_path(out) if calibration is None else calibration
    if spec.is_paper:
        fractions = calibrated_heat_fractions(quick, comm, path)
        base = Baseline.of(thermal_device(LASER), *PAPER_BASELINE_DEVICE)
        readings: tuple[str, ...] = (BASELINE, "A" if BASELINE == "B" else "B")
    else:
        d = spec.device
        fractions = {DEVICE_READING: heat_fraction(d, region_materials(d))}
        base = Baseline.of(d, d.laser.threshold_kw_cm2, d.film.thickness_nm)
        readings = (DEVICE_READING,)
    points = [
        Variant(reading, p, f)
        for reading in readings
        for p, f in [("baseline", 1.0), *((p, f) for p in PARAMETERS for f in FACTORS)]
    ]
    rows = sweep(
        points,
        lambda v, sub: evaluate(v, fractions, quick, sub, base, spec),
        comm,
        desc="sensitivity",
    )
    table = [c for reading in fractions for c in changes(rows, reading)]
    if not spec.is_paper:
        return _write_device(out, spec, base, fractions, rows, table, points, quick, t0, comm)
    ranking = match_paper(table)
    best = ranking[0]
    mixed = _best_mixed(table)
    summary = {
        "device": spec.label(),
        "baseline": {
            "intensity_kw_cm2": BASE_INTENSITY_KW_CM2,
            "thickness_nm": BASE_THICKNESS_NM,
            "substrate": "mgf2",
        },
        "paper_percent": PAPER_PERCENT,
        "heat_fractions": fractions,
        "steady_temperature_c": {
            r["reading"]: r["steady_temperature_k"] - CELSIUS
            for r in rows
            if r["parameter"] == "baseline"
        },
        "best_match": best,
        "best_match_k_halved_others_doubled": mixed,
        "baseline_reading_table": [r for r in table if r["reading"] == BASELINE],
    }
    write_csv(out / "sensitivity_points.csv", rows=rows, comm=comm)
    write_csv(out / "sensitivity.csv", rows=table, comm=comm)
    write_csv(out / "sensitivity_match.csv", rows=ranking, comm=comm)
    write_json(
        out / "sensitivity.json",
        {
            "summary": summary,
            "quick": quick,
            **provenance(
                comm, inputs=[asdict(p) for p in points], started=t0, calibration=str(path)
            ),
        },
        comm=comm,
    )
    return summary


def _write_device(
    out: Path,
    spec: StudyDevice,
    base: Baseline,
    fractions: dict[str, float],
    rows: list[dict[str, Any]],
    table: list[dict[str, Any]],
    points: list[Variant],
    quick: bool,
    t0: float,
    comm: MPI.Comm,
) -> dict[str, Any]:
    """Write the sensitivity files of a user's device (no match against the paper's
    percentages) and return its summary."""
    d = spec.device
    baseline = next(r for r in rows if r["parameter"] == "baseline")
    summary = {
        "device": spec.label(),
        "baseline": {**asdict(base), "substrate_k_w_mk": list(base.substrate_k_w_mk)},
        "heat_fractions": fractions,
        "heat_fraction_origin": heat_fraction_origin(d),
        "steady_temperature_c": {DEVICE_READING: baseline["steady_temperature_k"] - CELSIUS},
        "baseline_reading_table": table,
    }
    write_csv(out / "sensitivity_points.csv", rows=rows, comm=comm)
    write_csv(out / "sensitivity.csv", rows=table, comm=comm)
    write_json(
        out / "sensitivity.json",
        {
            "summary": summary,
            "quick": quick,
            **provenance(
                comm,
                inputs=[asdict(p) for p in points],
                started=t0,
                device=spec.to_dict(),
                settings=device_settings(quick),
            ),
        },
        comm=comm,
    )
    return summary


def _best_mixed(table: list[dict[str, Any]]) -> dict[str, Any]:
    """Threshold and thickness doubled, substrate k halved (the reading physics.md 1.4 proposes):
    the quantity and calibration reading that fit the paper best."""
    best: dict[str, Any] = {}
    for reading in sorted({r["reading"] for r in table}):
        for q in QUANTITIES:
            pick = {
                p: next(
                    abs(r[f"change_{q}_percent"])
                    for r in table
                    if r["reading"] == reading
                    and r["parameter"] == p
                    and r["factor"] == (0.5 if p == "substrate_k" else 2.0)
                )
                for p in PARAMETERS
            }
            rms = math.sqrt(np.mean([(pick[p] - PAPER_PERCENT[p]) ** 2 for p in PARAMETERS]))
            if not best or rms < best["rms_from_paper_percent"]:
                best = {
                    "reading": reading,
                    "quantity": q,
                    **{f"{p}_percent": v for p, v in pick.items()},
                    "rms_from_paper_percent": rms,
                }
    return best


def plot(out: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Bars of |change| per parameter (steady dT and T in C, doubling and halving) per reading,
    with the paper's percentages."""
    if comm.rank != 0:
        return
    matplotlib_backend()
    import matplotlib.pyplot as plt

    table = read_rows(out / "sensitivity.csv")
    meta = json.loads((out / "sensitivity.json").read_text())
    readings = list(meta["summary"]["heat_fractions"])
    fig, axes = plt.subplots(1, len(readings), figsize=(9, 3.6), sharey=True)
    bars = [
        ("rise", 2.0, "dT, x2"),
        ("rise", 0.5, "dT, x0.5"),
        ("celsius", 2.0, "T in C, x2"),
        ("celsius", 0.5, "T in C, x0.5"),
    ]
    x = np.arange(len(PARAMETERS))
    width = 0.8 / len(bars)
    for ax, reading in zip(np.atleast_1d(axes), readings, strict=True):
        for i, (q, factor, label) in enumerate(bars):
            values = [
                abs(
                    next(
                        r[f"change_{q}_percent"]
                        for r in table
                        if r["reading"] == reading and r["parameter"] == p and r["factor"] == factor
                    )
                )
                for p in PARAMETERS
            ]
            ax.bar(x + (i - 1.5) * width, values, width, label=label)
        if reading != DEVICE_READING:
            ax.plot(x, [PAPER_PERCENT[p] for p in PARAMETERS], "k_", ms=30, mew=2, label="paper")
        ax.set_xticks(x, ["threshold", "thickness", "substrate k"])
        ax.set_title(
            meta["summary"]["device"]["description"]
            if reading == DEVICE_READING
            else f"reading {reading}",
            fontsize=8 if reading == DEVICE_READING else None,
        )
    np.atleast_1d(axes)[0].set_ylabel("|change| of steady temperature (%)")
    np.atleast_1d(axes)[-1].legend(fontsize=7, loc="upper center")
    save_figure(fig, out / "sensitivity", comm)
