"""Time for heat to cross the film: the paper's ~70 ns, defined several ways and computed.

The paper (Supplementary Note 1, not available) says the heat "diffuses through the film and
reaches the substrate after t ~ 70 ns" for the 120 nm inorganic film. Under a pump switched on at
t = 0 with uniform heating Q in the film (adiabatic top), the temperature difference across the
film, top - interface, grows to the steady parabola's Q d^2 / (2 k_f); how fast it gets there is
the film's diffusion time. Definitions compared:

- ``d2_over_alpha``: the scaling estimate d^2 / alpha_f (alpha_f = k_f / (rho c_p)_f);
- ``tau_1``: the time constant of the film's slowest mode with the interface held at the
  substrate temperature (a substrate of much larger effusivity), 4 d^2 / (pi^2 alpha_f);
- ``t63``, ``t90``: when the film difference reaches 63 % and 90 % of Q d^2 / (2 k_f), from the
  FEM transient (r-z mesh, at the axis) and from the exact 1D two-layer solution (film on a
  semi-infinite substrate, Laplace transform inverted numerically, Talbot's method);
  with the interface held, t90 = tau_1 ln(320 / pi^3) = 0.946 d^2 / alpha_f.

The film's heat capacity is an estimate (materials.toml) that was itself chosen to reproduce the
paper's 70 ns as d^2 / alpha_f; the other definitions show how much the answer depends on the
definition.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
from scipy.optimize import brentq

from cqdlaser.physics.heat import HeatProblem, time_grid
from cqdlaser.studies.common import matplotlib_backend, save_figure
from cqdlaser.studies.output import provenance, write_csv, write_json
from cqdlaser.studies.paper.calibration import (
    LASER,
    calibrated_heat_fraction,
    default_calibration_path,
    read_rows,
    thermal_device,
)
from cqdlaser.studies.sweep import sweep
from cqdlaser.studies.thermal import heat_materials, heat_mesh

PAPER_NS = 70.0
END_S = 0.5e-6
FULL = ("mesh.film_elements=24", "heat.first_step_ns=0.02", "heat.step_growth=1.05")
QUICK = ("mesh.film_elements=8", "heat.first_step_ns=0.1", "heat.step_growth=1.1")
LEVELS = (0.632, 0.9)


def film_difference_1d(
    t: float, *, thickness: float, film: tuple[float, float], substrate: tuple[float, float]
) -> tuple[float, float]:
    """Exact 1D top and interface rises, normalised by the steady film difference Q d^2/(2 k_f).

    Film of thickness d on a semi-infinite substrate, uniform source Q switched on at t = 0,
    adiabatic top (physics.md 4b), by numerical inversion of the Laplace transforms.

    Args:
        t: Time (s).
        thickness: d (m).
        film: (k_f (W/m/K), rho c_p (J/m^3/K)) of the film.
        substrate: (k_s, rho c_p) of the substrate (through-plane k).

    Returns:
        (top rise, interface rise) / (Q d^2 / (2 k_f)).
    """
    import mpmath

    (k_f, c_f), (k_s, c_s) = film, substrate
    d = thickness

    def transform(s: Any, which: str) -> Any:
        g_f, g_s = mpmath.sqrt(s * c_f / k_f), mpmath.sqrt(s * c_s / k_s)
        den = k_f * g_f * mpmath.sinh(g_f * d) + k_s * g_s * mpmath.cosh(g_f * d)
        weight = 1 if which == "top" else mpmath.cosh(g_f * d)
        # Q / (C_f s^2) (1 - ...), in units of Q d^2 / (2 k_f)
        return 2 * k_f / (c_f * d**2 * s**2) * (1 - k_s * g_s * weight / den)

    top = mpmath.invertlaplace(lambda s: transform(s, "top"), t, method="talbot")
    interface = mpmath.invertlaplace(lambda s: transform(s, "interface"), t, method="talbot")
    return float(top), float(interface)


def crossing(times: np.ndarray, values: np.ndarray, level: float) -> float:
    """First time (s) at which ``values`` reaches ``level`` (linear between samples)."""
    i = int(np.argmax(values >= level))
    if values[i] < level:
        return math.nan
    if i == 0:
        return float(times[0])
    t0, t1, v0, v1 = times[i - 1], times[i], values[i - 1], values[i]
    return float(t0 + (t1 - t0) * (level - v0) / (v1 - v0))


def compute(quick: bool, heat_fraction: float, comm: MPI.Comm) -> dict[str, Any]:
    """The FEM transient of the 120 nm film on MgF2, the 1D reference and the definitions."""
    device = thermal_device(LASER, QUICK if quick else FULL, heat_fraction=heat_fraction)
    materials = heat_materials(device, comm)
    mesh_data = heat_mesh(device, comm)
    problem = HeatProblem.from_device(device, mesh_data, materials)
    s = problem.settings
    times = time_grid(END_S, first_step=s.first_step, growth=s.step_growth, max_step=s.max_step)
    history = problem.run(times=times)
    d = device.film.thickness
    film, sub = materials["film"], materials["substrate"]
    k_f, c_f = film.thermal_conductivity[2], film.volumetric_heat_capacity
    k_s, c_s = sub.thermal_conductivity[2], sub.volumetric_heat_capacity
    q = problem.source.heat_fraction * device.pump.intensity / d
    scale = q * d**2 / (2.0 * k_f)
    sink = device.heat.sink_temperature_k
    top = (history.film_max_temperature - sink) / scale
    interface = (history.interface_temperature - sink) / scale
    props = {"thickness": d, "film": (k_f, c_f), "substrate": (k_s, c_s)}
    ref = np.array([film_difference_1d(t, **props) if t > 0 else (0.0, 0.0) for t in times])
    alpha = k_f / c_f
    tau_1 = 4.0 * d**2 / (math.pi**2 * alpha)

    def diff_1d(t: float, level: float) -> float:
        a, b = film_difference_1d(t, **props)
        return a - b - level

    definitions = {
        "d2_over_alpha_ns": d**2 / alpha * 1e9,
        "tau_1_held_interface_ns": tau_1 * 1e9,
        "t90_held_interface_ns": tau_1 * math.log(320.0 / math.pi**3) * 1e9,
    }
    for level in LEVELS:
        name = f"t{round(100 * level)}"
        definitions[f"{name}_fem_ns"] = crossing(times, top - interface, level) * 1e9
        bracket = (0.05 * d**2 / alpha, 20.0 * d**2 / alpha)
        definitions[f"{name}_1d_ns"] = brentq(diff_1d, *bracket, args=(level,), xtol=1e-13) * 1e9
    return {
        "definitions": definitions,
        "inputs": {
            "thickness_m": d,
            "film_k_w_mk": k_f,
            "film_rho_cp_j_m3k": c_f,
            "substrate_kz_w_mk": k_s,
            "substrate_rho_cp_j_m3k": c_s,
            "film_diffusivity_m2_s": alpha,
            "steady_film_difference_k": scale,
            "heat_fraction": problem.source.heat_fraction,
            "dofs": int(problem.V.dofmap.index_map.size_global),
            "steps": len(times) - 1,
        },
        "columns": {
            "time_s": times,
            "top_rise_norm_fem": top,
            "interface_rise_norm_fem": interface,
            "difference_norm_fem": top - interface,
            "top_rise_norm_1d": ref[:, 0],
            "interface_rise_norm_1d": ref[:, 1],
            "difference_norm_1d": ref[:, 0] - ref[:, 1],
        },
    }


def run(
    out: Path,
    *,
    quick: bool = False,
    comm: MPI.Comm = MPI.COMM_WORLD,
    calibration: Path | None = None,
) -> dict[str, Any]:
    """Compute the definitions; write diffusion_time.csv/json (the plot step draws the figure)."""
    t0 = time.perf_counter()
    path = default_calibration_path(out) if calibration is None else calibration
    eta = calibrated_heat_fraction(quick, comm, path)
    (result,) = sweep([quick], lambda q, sub: compute(q, eta, sub), comm, desc="diffusion_time")
    summary = {**result["definitions"], "paper_ns": PAPER_NS}
    write_csv(out / "diffusion_time.csv", result["columns"], comm=comm)
    write_json(
        out / "diffusion_time.json",
        {
            "summary": summary,
            "inputs": result["inputs"],
            "quick": quick,
            **provenance(comm, inputs={"config": LASER}, started=t0, calibration=str(path)),
        },
        comm=comm,
    )
    return summary


def plot(out: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Normalised top, interface and film-difference rises: FEM and exact 1D, with the times."""
    if comm.rank != 0:
        return
    matplotlib_backend()
    import matplotlib.pyplot as plt

    rows = read_rows(out / "diffusion_time.csv")
    summary = json.loads((out / "diffusion_time.json").read_text())["summary"]
    t = np.array([r["time_s"] for r in rows]) * 1e9
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    for key, colour, label in (
        ("top_rise_norm", "tab:red", "top"),
        ("interface_rise_norm", "tab:blue", "interface"),
        ("difference_norm", "k", "top - interface"),
    ):
        ax.plot(t, [r[f"{key}_fem"] for r in rows], "-", color=colour, label=f"{label} (FEM)")
        ax.plot(t, [r[f"{key}_1d"] for r in rows], ":", color=colour, lw=2, label=f"{label} (1D)")
    for key, style, label in (
        ("d2_over_alpha_ns", "--", "$d^2/\\alpha$"),
        ("t90_fem_ns", "-.", "t$_{90}$"),
    ):
        value = summary[key]
        ax.axvline(value, color="grey", ls=style, lw=1, label=f"{label} = {value:.0f} ns")
    ax.axvline(PAPER_NS, color="tab:green", lw=1, label="paper: ~70 ns")
    ax.set_xlim(0, 300)
    ax.set_ylim(0, 1.6)
    ax.set_xlabel("time (ns)")
    ax.set_ylabel("rise / ($Q d^2 / 2 k_f$)")
    ax.set_title("Heat crossing the 120 nm film on MgF$_2$")
    ax.legend(fontsize=7)
    save_figure(fig, out / "diffusion_time", comm)
