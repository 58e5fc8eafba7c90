"""The thermal studies (calibration, Fig. 4b-d, sensitivity, diffusion time) in their quick form:
they run, write well-formed outputs, reproduce what they are fitted to, obey the model's exact
properties (linearity, closed forms), and give the same tables under MPI as serially."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest

from cqdlaser.studies.paper import calibration as cal
from cqdlaser.studies.paper import diffusion_time, fig4, sensitivity
from cqdlaser.studies.sweep import sweep


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _outputs(out: Path, name: str) -> dict:
    """Check the study's CSV and JSON (with provenance); return the JSON."""
    MPI.COMM_WORLD.barrier()  # rank 0 writes: wait until it has
    assert len(_rows(out / f"{name}.csv")) >= 3
    meta = json.loads((out / f"{name}.json").read_text())
    assert meta["versions"]["dolfinx"] and meta["mpi_size"] == MPI.COMM_WORLD.size
    assert meta["quick"] is True and meta["wall_time_s"] > 0
    return meta


@pytest.fixture(scope="module")
def results(study_outputs: Path) -> Path:
    """The session's study folder, holding the quick calibration."""
    cal.run(study_outputs / "calibration", quick=True, comm=MPI.COMM_WORLD)
    MPI.COMM_WORLD.barrier()
    return study_outputs


@pytest.mark.study
def test_calibration(results: Path) -> None:
    out = results / "calibration"
    meta = _outputs(out, "calibration")
    fits = {(f["reading"], f["geometry"]): f for f in meta["fits"]}
    for fit in fits.values():  # each reading is reproduced by its fitted fraction
        assert abs(fit["fit_residual_k"]) <= cal.FIT_TOLERANCE_K
    b, a = fits["B", "film"], fits["A", "film"]
    # B: lasing at 88 kW/cm2 ends at 1.8 us, where P_th(T) = 88 with T0 = 72 K, P_th0 = 52
    assert b["target_temperature_k"] == pytest.approx(295.0 + 72.0 * math.log(88 / 52), abs=1e-9)
    assert b["lasing_duration_88_s"] == pytest.approx(1.8e-6, rel=1e-6)
    assert a["temperature_51_at_2us_k"] == pytest.approx(333.15, abs=1e-6)
    # The two readings cannot both hold: ~1.7x apart, each contradicting the other statement
    summary = meta["summary"]
    assert 1.55 < summary["ratio_a_over_b"] < 1.85
    assert summary["under_a_lasing_duration_88_s"] < 0.5e-6
    assert summary["under_b_fig4b_temperature_2us_c"] < 50.0
    # physical estimates: A (1 - PLQY 442/643), A = 1 - exp(-4 pi kappa d / 442 nm)
    est = next(e for e in meta["estimates"] if e["film"] == "inorganic" and e["geometry"] == "film")
    absorbed = -math.expm1(-4 * math.pi * 0.18 / 442e-9 * 120e-9)
    assert est["absorbed_fraction"] == pytest.approx(absorbed, rel=1e-12)
    assert est["heat_fraction_quantum_defect"] == pytest.approx(absorbed * (1 - 442 / 643))
    assert est["heat_fraction_auger_dominated"] == pytest.approx(absorbed * (1 - 0.1 * 442 / 643))
    # the API reads the file back exactly
    assert cal.calibrated_heat_fractions(True, MPI.COMM_WORLD, out / "calibration.json") == {
        "A": a["heat_fraction"],
        "B": b["heat_fraction"],
    }


@pytest.mark.study
def test_fig4(results: Path) -> None:
    summary = fig4.run(results / "fig4", quick=True)
    for name in ("fig4b", "fig4c", "fig4d"):
        _outputs(results / "fig4" / name, name)
    b = summary["fig4b"]
    for reading in ("reading_a", "reading_b"):
        assert b[reading]["organic_2us_c"] > b[reading]["inorganic_2us_c"] + 20.0
    # the model is linear in the heat fraction: the organic/inorganic ratio is reading-free
    assert b["reading_a"]["rise_ratio_organic_over_inorganic_2us"] == pytest.approx(
        b["reading_b"]["rise_ratio_organic_over_inorganic_2us"], rel=1e-9
    )
    # ... and in the pump: the rise doubles with the threshold (pump at threshold)
    rows = _rows(results / "fig4" / "fig4c" / "fig4c_summary.csv")
    rise = {r["label"]: float(r["rise_2us_k"]) for r in rows if r["reading"] == "B"}
    assert rise["100 kW/cm2"] == pytest.approx(2 * rise["50 kW/cm2"], rel=1e-8)
    assert rise["50 kW/cm2"] == pytest.approx(2 * rise["25 kW/cm2"], rel=1e-8)
    steady = summary["fig4d"]["steady_temperature_c"]
    order = ["glass", "MgF2", "sapphire", "Si", "diamond"]
    assert [steady[s] for s in order] == sorted((steady[s] for s in order), reverse=True)
    assert steady["Al + 500 nm MgF2"] < steady["MgF2"]
    assert steady["Si + 1 um SiO2"] > steady["Si"]


@pytest.mark.study
def test_sensitivity(results: Path) -> None:
    summary = sensitivity.run(results / "sensitivity", quick=True)
    _outputs(results / "sensitivity", "sensitivity")
    table = {(r["parameter"], r["factor"]): r for r in summary["baseline_reading_table"]}
    # pump at threshold: doubling it doubles the rise exactly (linear model)
    assert table["threshold", 2.0]["change_rise_percent"] == pytest.approx(100.0, abs=1e-7)
    assert table["threshold", 0.5]["change_rise_percent"] == pytest.approx(-50.0, abs=1e-7)
    assert (
        table["thickness", 2.0]["change_rise_percent"]
        > 0
        > table["thickness", 0.5]["change_rise_percent"]
    )
    assert table["substrate_k", 2.0]["change_rise_percent"] < 0
    assert -50.0 < table["substrate_k", 2.0]["change_rise_percent"]
    # in C the changes are those of the rise scaled by rise / T_C
    t_c = summary["steady_temperature_c"]["B"]
    factor = (t_c + cal.CELSIUS - 295.0) / t_c
    for row in table.values():
        assert row["change_celsius_percent"] == pytest.approx(
            factor * row["change_rise_percent"], rel=1e-9
        )


@pytest.mark.study
def test_diffusion_time(results: Path) -> None:
    summary = diffusion_time.run(results / "diffusion_time", quick=True)
    _outputs(results / "diffusion_time", "diffusion_time")
    # d^2/alpha from the film's data: (120 nm)^2 * 2800 * 420 / 0.24
    assert summary["d2_over_alpha_ns"] == pytest.approx(120e-9**2 * 2800 * 420 / 0.24 * 1e9)
    assert summary["t90_held_interface_ns"] == pytest.approx(
        0.946 * summary["d2_over_alpha_ns"], rel=1e-3
    )
    # the FEM film difference crosses 63 % and 90 % when the exact 1D solution does
    assert summary["t63_fem_ns"] == pytest.approx(summary["t63_1d_ns"], rel=0.02)
    assert summary["t90_fem_ns"] == pytest.approx(summary["t90_1d_ns"], rel=0.02)
    # a finite-effusivity substrate lets the interface warm: slower than the held interface
    assert summary["t90_1d_ns"] > summary["t90_held_interface_ns"]


def test_film_difference_1d_limits() -> None:
    props = {"thickness": 120e-9, "film": (0.24, 1.176e6), "substrate": (21.0, 3.14e6)}
    tau = 120e-9**2 * 1.176e6 / 0.24
    # early: adiabatic film, top rise Q t / C_f, i.e. 2 t / tau in units of Q d^2 / (2 k_f)
    top, _ = diffusion_time.film_difference_1d(1e-4 * tau, **props)
    assert top == pytest.approx(2e-4, rel=1e-3)
    # late: the steady parabola's difference, less the share of the heat the film still stores
    # as the substrate warms (2 q sqrt(t / pi) / e_s): 1 - C_f d / (e_s sqrt(pi t))
    t = 500 * tau
    top, interface = diffusion_time.film_difference_1d(t, **props)
    stored = 1.176e6 * 120e-9 / (math.sqrt(21.0 * 3.14e6) * math.sqrt(math.pi * t))
    assert top - interface == pytest.approx(1.0 - stored, rel=2e-5)


@pytest.mark.study
def test_sweep_is_identical_to_serial(results: Path) -> None:
    fractions = cal.calibrated_heat_fractions(
        True, MPI.COMM_WORLD, results / "calibration" / "calibration.json"
    )
    cases = [
        fig4.Case(f"{p}", cal.LASER, (f"pump.intensity_kw_cm2={p}",), reading)
        for p, reading in ((30, "A"), (60, "B"))
    ]
    parallel = sweep(cases, lambda c, sub: fig4.evaluate(c, fractions, True, sub), MPI.COMM_WORLD)
    serial = [fig4.evaluate(c, fractions, True, MPI.COMM_SELF) for c in cases]
    for p, s in zip(parallel, serial, strict=True):
        assert p["row"] == s["row"]
        assert np.array_equal(p["temperature"], s["temperature"])
