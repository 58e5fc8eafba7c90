"""The laser studies (lasing_duration, cw_feasibility): quick forms write well-formed outputs, the
CW sweep is the same under MPI as serially, the closed-form window equals a numerical one, and the
leaky-mode transfer matrix agrees with the FEM modes and the cladding's evanescent decay."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
import pytest

from cqdlaser.physics.laser import KW_CM2, ThresholdModel, cw_window
from cqdlaser.physics.multilayer import leaky_te_index
from cqdlaser.studies.design import cw_feasibility, lasing_duration
from cqdlaser.studies.optics import stack_mode_table
from cqdlaser.studies.sweep import SweepError
from cqdlaser.studies.thermal import heat_problem

ETA = 0.10  # heat fraction, fixed here whatever the calibration says


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def cw_quick(study_outputs: Path) -> tuple[dict[str, Any], Path]:
    out = study_outputs / "cw_feasibility"
    summary = cw_feasibility.run(out, quick=True, heat_fraction=ETA)
    MPI.COMM_WORLD.barrier()
    return summary, out


def _check_files(out: Path, stem: str, tables: list[str]) -> dict[str, Any]:
    meta = json.loads((out / f"{stem}.json").read_text())
    assert meta["versions"]["dolfinx"] and meta["mpi_size"] == MPI.COMM_WORLD.size
    assert meta["summary"]["heat_fraction"] == ETA and meta["wall_time_s"] > 0
    for name in tables:
        assert len(_read_csv(out / name)) > 0
    return meta


@pytest.mark.study
def test_lasing_duration_quick(study_outputs: Path) -> None:
    out = study_outputs / "lasing_duration"
    summary = lasing_duration.run(out, quick=True, heat_fraction=ETA)
    MPI.COMM_WORLD.barrier()
    _check_files(
        out,
        "lasing_duration",
        [
            "lasing_duration_vs_intensity.csv",
            "lasing_duration_vs_substrate.csv",
            "lasing_duration_histories.csv",
        ],
    )
    rows = _read_csv(out / "lasing_duration_vs_intensity.csv")
    for r in rows:
        p, p0 = float(r["intensity_kw_cm2"]), float(r["threshold_kw_cm2"])
        duration = float(r["lasing_duration_us"])
        assert math.isnan(duration) == (p < p0)  # below threshold at 295 K: never lases
        # CW iff the steady state is above threshold, checked directly on R
        rise = float(r["thermal_resistance_k_cm2_per_kw"]) * p
        assert (r["lases_cw"] == "True") == (p >= p0 * math.exp(rise / 72.0))
        if r["lases_cw"] == "True":
            assert r["lases_throughout_span"] == "True"
    # the paper: the inorganic film on MgF2 lases up to 1.8 us at 88 kW/cm2, the organic one fails
    assert 1.0 < summary["inorganic_mgf2_88_duration_us"] < 3.0
    organic = summary["by_substrate_88"]["organic/mgf2"]["lasing_duration_us"]
    assert organic < 0.1 * summary["inorganic_mgf2_88_duration_us"]
    # bare substrates, inorganic film: the better the substrate conducts, the lower R; the
    # lasing mode scales the threshold: sapphire's less confined TE0 (x1.26) lases shorter than
    # on MgF2 despite its heat, and diamond, of higher index than the film, has no mode at all
    by = {s: summary["by_substrate_88"][f"inorganic/{s}"] for s in ("glass", "sapphire", "diamond")}
    by["mgf2"] = {
        "lasing_duration_us": summary["inorganic_mgf2_88_duration_us"],
        "threshold_factor": 1.0,
    }
    r = {s: by[s]["thermal_resistance_k_cm2_per_kw"] for s in ("glass", "sapphire", "diamond")}
    assert r["diamond"] < r["sapphire"] < r["glass"]
    assert by["diamond"]["mode_kind"] == "none"
    assert math.isnan(by["diamond"]["lasing_duration_us"])
    assert by["sapphire"]["threshold_factor"] > 1.2 and by["glass"]["threshold_factor"] < 1.05
    d = {s: by[s]["lasing_duration_us"] for s in ("glass", "mgf2", "sapphire")}
    assert d["sapphire"] < d["mgf2"] and d["glass"] < d["mgf2"]


def test_lasing_duration_scaling_is_exact() -> None:
    """The study scales one transient with the pump: a direct run at another pump agrees."""
    case = lasing_duration.Case("inorganic", "mgf2")
    comm = MPI.COMM_WORLD
    resp = lasing_duration.response(case, comm, ETA, quick=True)
    device = lasing_duration.case_device(case, ETA, quick=True)
    device = dataclasses.replace(
        device, pump=dataclasses.replace(device.pump, intensity_kw_cm2=150.0)
    )
    problem = heat_problem(device, comm)
    history = problem.run(device.pump.pulse)
    rise = (history.film_max_temperature - 295.0) / device.pump.intensity
    assert np.allclose(history.times, resp["times_s"], rtol=1e-14)
    assert np.allclose(rise, resp["rise_per_intensity"], rtol=1e-9, atol=0)


@pytest.mark.study
def test_cw_feasibility_quick(cw_quick: tuple[dict[str, Any], Path]) -> None:
    summary, out = cw_quick
    meta = _check_files(out, "cw_feasibility", ["cw_map.csv", "cw_designs.csv", "cw_optimum.csv"])
    assert meta["summary"]["gamma_ref"] == pytest.approx(0.811, abs=0.002)
    rows = _read_csv(out / "cw_designs.csv")
    by = {(r["substrate"], r["cladding"], float(r["cladding_nm"])): r for r in rows}
    # high-index substrates guide no mode without a cladding
    assert by[("si", "none", 0.0)]["guided"] == "False"
    assert by[("diamond", "none", 0.0)]["guided"] == "False"
    for r in rows:
        if r["guided"] != "True":
            assert r["cw_possible"] == "False"
            continue
        a = float(r["criterion"])
        expected = (
            float(r["thermal_resistance_k_cm2_per_kw"])
            * float(r["effective_threshold_kw_cm2"])
            / 72.0
        )
        assert a == pytest.approx(expected, rel=1e-8)
        assert (r["cw_possible"] == "True") == (a <= 1.0 / math.e)
        assert float(r["margin"]) == pytest.approx(1.0 / (math.e * a), rel=1e-8)
    # thicker SiO2 cladding: more thermal resistance, less leakage into the Si
    si = sorted(
        (float(r["cladding_nm"]), r)
        for r in rows
        if r["substrate"] == "si" and r["cladding"] == "sio2"
    )
    resistance = [float(r["thermal_resistance_k_cm2_per_kw"]) for _, r in si]
    loss = [float(r["mode_loss_per_cm"]) for _, r in si]
    assert resistance == sorted(resistance) and loss == sorted(loss, reverse=True)
    # the optimum cladding lies inside the grid for Si and Al under MgF2
    optima = {
        (o["substrate"], o["cladding"], float(o["alpha_ref_per_cm"])): o
        for o in _read_csv(out / "cw_optimum.csv")
    }
    for s in ("si", "al"):
        o = optima[(s, "mgf2", 400.0)]
        assert 100.0 < float(o["optimum_cladding_nm"]) < 1000.0
    assert summary["criterion_limit"] == pytest.approx(1.0 / math.e)


@pytest.mark.study
def test_closed_form_window_equals_numerical(cw_quick: tuple[dict[str, Any], Path]) -> None:
    """The sweep's Lambert-W window at one point against cw_window on T_ss = T_sink + R P."""
    _, out = cw_quick
    rows = [r for r in _read_csv(out / "cw_map.csv") if r["cw_possible"] == "True"]
    assert rows
    r = rows[len(rows) // 2]
    resistance = float(r["thermal_resistance_k_cm2_per_kw"]) / KW_CM2
    model = ThresholdModel(threshold=float(r["effective_threshold_kw_cm2"]) * KW_CM2, t0=72.0)
    cw = cw_window(lambda p: 295.0 + resistance * p, model, pump_max=1e4 * KW_CM2, samples=2000)
    assert cw.possible and cw.pump_range is not None
    low, high = (v / KW_CM2 for v in cw.pump_range)
    assert low == pytest.approx(float(r["cw_low_kw_cm2"]), rel=1e-7)
    assert high == pytest.approx(float(r["cw_high_kw_cm2"]), rel=1e-7)


def test_cw_sweep_mpi_equals_serial() -> None:
    """The CW sweep over the world communicator returns the serial table, bit for bit."""
    designs = [
        cw_feasibility.Design("mgf2"),
        cw_feasibility.Design("al", "mgf2", 300.0),
        cw_feasibility.Design("si", "sio2", 300.0),
    ]
    world = cw_feasibility.cw_map(designs, ETA, MPI.COMM_WORLD, mesh_scale=3.0)
    serial = cw_feasibility.cw_map(designs, ETA, MPI.COMM_SELF, mesh_scale=3.0)
    assert world == serial
    assert [d["substrate"] for d in world] == ["mgf2", "al", "si"]


def test_leaky_index_against_fem_and_decay() -> None:
    comm = MPI.COMM_SELF
    # a guided mode (MgF2 substrate, lossless): the transfer-matrix root is the FEM eigenvalue
    device = cw_feasibility.design_device(cw_feasibility.Design("mgf2"), ETA)
    fem_mode = stack_mode_table(device, comm, polarisations=("TE",))[0]
    n = leaky_te_index(device, fem_mode["n_eff"] + 2e-3)
    assert abs(n.real - fem_mode["n_eff"]) < 1e-6 and abs(n.imag) < 1e-12
    # Al under 300 nm MgF2: the FEM's first-order loss exceeds the exact root's by ~8 %
    device = cw_feasibility.design_device(cw_feasibility.Design("al", "mgf2", 300.0), ETA)
    fem_mode = stack_mode_table(device, comm, polarisations=("TE",))[0]
    k0 = 2 * math.pi / device.optics.wavelength
    n = leaky_te_index(device, fem_mode["n_eff"])
    exact = 2 * k0 * n.imag / 100.0
    assert 1.0 < fem_mode["loss_per_cm"] / exact < 1.15
    # Si under MgF2: the leakage falls as exp(-2 k0 sqrt(N^2 - n_clad^2) t)
    losses = []
    for t in (500.0, 700.0):
        device = cw_feasibility.design_device(cw_feasibility.Design("si", "mgf2", t), ETA)
        mode = cw_feasibility.lasing_mode(device, comm)
        assert mode["mode_kind"] == "leaky"
        losses.append((t * 1e-9, mode["mode_loss_per_cm"], mode["n_eff"]))
    n_clad = 1.3768  # MgF2 ordinary index at 643 nm (materials.toml)
    (t0, a0, n0), (t1, a1, _) = losses
    rate = math.log(a0 / a1) / (t1 - t0)
    assert rate == pytest.approx(2 * k0 * math.sqrt(n0**2 - n_clad**2), rel=0.01)


@pytest.mark.study
def test_cw_map_survives_a_failed_design(shared_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One substrate's designs fail: the others finish, the table names the failed ones with the
    reason, and the study raises (a non-zero exit from the CLI)."""
    evaluate = cw_feasibility.evaluate

    def broken(design, comm, heat_fraction, mesh_scale, base=None):
        if design.substrate == "sapphire":
            raise RuntimeError("solver diverged on sapphire")
        return evaluate(design, comm, heat_fraction, mesh_scale, base)

    monkeypatch.setattr(cw_feasibility, "evaluate", broken)
    out = shared_tmp / "cw"
    with pytest.raises(SweepError, match="solver diverged on sapphire"):
        cw_feasibility.run(out, quick=True, heat_fraction=ETA)
    MPI.COMM_WORLD.barrier()
    rows = _read_csv(out / "cw_designs.csv")
    failed = [r for r in rows if r["status"] != "ok"]
    assert failed and all(r["substrate"] == "sapphire" for r in failed)
    assert all("solver diverged" in r["status"] for r in failed)
    assert {r["substrate"] for r in rows if r["status"] == "ok"} >= {"mgf2", "glass"}
    meta = json.loads((out / "cw_feasibility.json").read_text())
    assert len(meta["summary"]["failed_designs"]) == len(failed)
