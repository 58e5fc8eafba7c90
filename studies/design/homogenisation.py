"""Homogenised vs resolved grating: the film's temperature under a reduced spot, with the grating
layer either resolved pillar by pillar or replaced by one homogenised material.

The paper device (``paper_inorganic_mgf2``) is reduced to a small square spot on a thin, narrow
substrate (the same layers, pump intensity and heat fraction), so that the pillars under and
around the spot can be meshed one by one. Three devices run over the same time grid: pillars
resolved; the layer homogenised with the periodic cell problem's tensor (isothermal faces); and
homogenised with k_zz corrected for the constriction in its stack
(:func:`physics.homogenisation.constriction_correction`). Observables: the film's maximum and its
mean over the spot, as rises above the sink.

Like with like. The resolved pillars are polygons of ``pillar_segments`` sides; the homogenised
device takes the diameter of the circle of the same area (:func:`polygon_diameter_nm`, so that
its fill fraction, CQD thickness and source are those of the resolved layer), and the cell
meshes, whose pillars are polygons of ``circle_segments`` sides, take the diameter that gives
their polygon that same area (:func:`cell_diameter_nm`). The source's CQD thickness is computed
from the circle while the resolved mesh holds the polygon: the deposited power differs (~0.6 %),
so every rise is scaled to the nominal power (the problem is linear).

The spot's edges lie on lattice-cell edges (spot = 6 or 2 periods), which are node lines of the
resolved mesh: the spot mean averages whole lattice cells, and the source's spot edge is exact.

Tolerance. Two errors remain once the constriction is in k_zz:

- discretisation: the whole comparison (cells, correction, both devices) is repeated with
  ``mesh.scale`` halved (which also changes the resolved polygon, matched again). Twice the change
  of the signed relative difference between the levels bounds its error at first order (the
  resolved device under-resolves the boundary layers at the pillars: a conforming mesh is too
  stiff, so the resolved device runs cold and approaches from below); twice the change of the
  stack cell's ``R_c`` between the levels, relative to its film mean, bounds the correction's;
- modelling: the film maximum of the resolved device sits over the fill, above the cell average
  by the ripple at the pillar period, which no homogenised layer carries. Its amplitude is
  measured on the resolved run at the end (film max minus the film top over the first pillar,
  less the same on the corrected homogenised run: a peak-to-valley value, an upper bound of the
  max's excess over the cell average) and predicted by the stack cell
  (``ConstrictionCorrection.ripple`` times the flux). It enters the film-max tolerance only: the
  spot mean averages whole lattice cells.

The comparison starts after ``QUASI_STEADY`` film crossing times ``d_f^2 / alpha_f``: before, the
layer's flux (and so its constriction) is not yet established.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry.cell import build_cell
from cqdlaser.geometry.config import device_to_dict
from cqdlaser.geometry.cross_section import circle_segments
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.device_mesh import build_device, pillar_segments
from cqdlaser.physics.heat import HeatProblem, time_grid
from cqdlaser.physics.homogenisation import (
    ConstrictionCorrection,
    constriction_correction,
    corrected_material,
    homogenised_material,
)
from cqdlaser.physics.materials import Material, region_materials
from cqdlaser.physics.source import HeatSource, source_from_device
from cqdlaser.studies.common import matplotlib_backend, paper_device, save_figure
from cqdlaser.studies.output import provenance, write_csv, write_json

CONFIG = "paper_inorganic_mgf2"
FULL = {
    "pump.spot_um": "[2.58, 2.58]",
    "substrate.thickness_um": 15,
    "mesh.lateral_extent_um": 8,
    "mesh.scale": 2,
    "mesh.pillar_elements": 4,
    "mesh.resolved_pillars_um": 2,
    "heat.end_time_us": 1,
    "heat.mesh": "device",
}
"""The reduced device (spot 6 x 6 periods, 5 x 5 pillars resolved in the quarter)."""

QUICK = {
    **FULL,
    "pump.spot_um": "[0.86, 0.86]",
    "substrate.thickness_um": 6,
    "mesh.lateral_extent_um": 4,
    "mesh.scale": 3,
    "mesh.resolved_pillars_um": 1,
    "heat.end_time_us": 0.5,
    "heat.step_growth": 1.3,
}
"""A tiny version for tests (spot 2 x 2 periods, 3 x 3 pillars resolved in the quarter; longer
time steps: every variant steps alike, so their differences hold)."""

QUASI_STEADY = 5.0
"""Compare from this many film crossing times d_f^2 / alpha_f on."""

LEVELS = ("coarse", "fine")
"""The two mesh levels: ``mesh.scale`` and half of it."""


def reduced_device(quick: bool, **overrides: Any) -> Device:
    """The reduced paper device (``overrides``: extra ``section.key`` values, dots as ``__``)."""
    values = {
        **(QUICK if quick else FULL),
        **{k.replace("__", "."): v for k, v in overrides.items()},
    }
    return paper_device(CONFIG, [f"{k}={v}" for k, v in values.items()])


def polygon_diameter_nm(device: Device) -> float:
    """Diameter (nm) of the circle with the area of the resolved mesh's pillar polygon."""
    assert device.grating is not None
    return _equal_area(device.grating.pillar_diameter_nm, pillar_segments(device))


def _equal_area(diameter: float, sides: int) -> float:
    """Diameter of the circle with the area of a regular ``sides``-gon inscribed in a circle of
    ``diameter`` (same unit)."""
    return diameter * math.sqrt(sides * math.sin(2 * math.pi / sides) / (2 * math.pi))


def with_diameter(device: Device, diameter_nm: float) -> Device:
    """``device`` with another pillar diameter (nm)."""
    assert device.grating is not None
    return dataclasses.replace(
        device, grating=dataclasses.replace(device.grating, pillar_diameter_nm=diameter_nm)
    )


def cell_diameter_nm(device: Device, target_nm: float) -> float:
    """Pillar diameter (nm) whose cell-mesh polygon (:func:`circle_segments` sides, which depend
    on the diameter through the mesh settings of ``device``) has the area of a circle of
    diameter ``target_nm``."""
    d = target_nm
    for _ in range(10):
        new = target_nm / _equal_area(1.0, circle_segments(with_diameter(device, d)))
        if abs(new - d) <= 1e-12 * target_nm:
            break
        d = new
    return d


def film_rise(
    device: Device, grating: Material, comm: MPI.Comm, *, resolved: bool, times: np.ndarray
) -> dict[str, Any]:
    """One transient run: the film's rises (K) at ``times``, scaled to the nominal power.

    Args:
        device: The device.
        grating: Material of the ``grating`` region (the whole layer, or outside the patch).
        comm: Communicator.
        resolved: Resolve the pillars under and around the spot.
        times: Time levels (s), from 0.

    Returns:
        ``max`` and ``mean`` (over the spot) rise arrays; ``excess``: at the end, the film max
        minus the rise at the film's top over the centre of the first pillar (p/2, p/2) (K);
        ``dofs``;
        ``power_ratio``: deposited over nominal power; ``fraction``: the pillar fraction of the
        resolved patch (NaN if homogenised).
    """
    mesh_data = build_device(device, comm, resolved=resolved)
    materials = {**region_materials(device), "grating": grating}
    problem = HeatProblem.from_device(device, mesh_data, materials)
    ratio = problem.source_power() / problem.source.deposited_power("device")  # type: ignore[union-attr]
    history = problem.run(times=times)
    sink = problem.settings.sink_temperature
    assert device.grating is not None
    p = device.grating.period
    over_pillar = _film_top_value(problem, mesh_data, (0.5 * p, 0.5 * p))
    fraction = math.nan
    if resolved:
        volumes = mesh_data.region_measures()
        fraction = volumes["pillars"] / (volumes["pillars"] + volumes["grating_fill"])
    rise_max = (history.film_max_temperature - sink) / ratio
    return {
        "max": rise_max,
        "mean": (history.film_mean_temperature - sink) / ratio,
        "excess": float(rise_max[-1] - over_pillar / ratio),
        "dofs": int(problem.V.dofmap.index_map.size_global),
        "power_ratio": ratio,
        "fraction": fraction,
    }


def _film_top_value(problem: HeatProblem, mesh_data: Any, xy: tuple[float, float]) -> float:
    """The rise (K) at the film-top node nearest to ``(x, y)`` (global)."""
    top = mesh_data.z_levels["film_top"]
    coords = problem.V.tabulate_dof_coordinates()
    n = problem.V.dofmap.index_map.size_local
    coords = coords[:n]
    on_top = np.flatnonzero(
        np.abs(coords[:, 2] - top) < 1e-3 * (top - mesh_data.z_levels["film_bottom"])
    )
    best = (math.inf, math.nan)
    if on_top.size:
        distance = np.hypot(coords[on_top, 0] - xy[0], coords[on_top, 1] - xy[1])
        i = int(np.argmin(distance))
        best = (float(distance[i]), float(problem.u.x.array[on_top[i]]))
    return min(mesh_data.mesh.comm.allgather(best))[1]


def level_runs(
    quick: bool, scale: float, times: np.ndarray, comm: MPI.Comm, *, bare: bool = False
) -> dict[str, Any]:
    """The cells, the correction and the device runs at one ``mesh.scale``."""
    device = reduced_device(quick, mesh__scale=scale)
    matched = with_diameter(device, polygon_diameter_nm(device))
    assert matched.grating is not None
    target = matched.grating.pillar_diameter_nm
    cell_device = with_diameter(device, cell_diameter_nm(device, target))
    materials = region_materials(matched)
    thermal_cell = build_cell(cell_device, comm, optical=False)
    grating = homogenised_material(cell_device, mesh_data=thermal_cell, materials=materials)
    stack_cell = build_cell(cell_device, comm, optical=True)
    correction = constriction_correction(stack_cell, materials, grating.thermal_conductivity)
    corrected = corrected_material(grating, correction)
    out: dict[str, Any] = {
        "device": device,
        "grating": grating,
        "correction": correction,
        "resolved": film_rise(device, grating, comm, resolved=True, times=times),
        "cell_problem": film_rise(matched, grating, comm, resolved=False, times=times),
        "corrected": film_rise(matched, corrected, comm, resolved=False, times=times),
    }
    if bare:
        out["bare"] = film_rise(matched, materials["film"], comm, resolved=False, times=times)
    return out


def _signed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b) / np.maximum(np.abs(b), 1e-300)


def _correction_summary(c: ConstrictionCorrection) -> dict[str, float]:
    return {
        "k_zz_cell_w_mk": c.k_zz_cell,
        "k_zz_corrected_w_mk": c.k_zz,
        "constriction_resistance_m2k_w": c.resistance,
        "stack_film_mean_resolved_m2k_w": c.resolved.film_mean,
        "stack_film_mean_homogenised_m2k_w": c.homogenised.film_mean,
        "stack_film_max_resolved_m2k_w": c.resolved.film_max,
        "stack_film_max_corrected_m2k_w": c.corrected.film_max,
        "stack_ripple_m2k_w": c.ripple,
        "cell_pillar_fraction": c.pillar_fraction,
        "secant_iterations": c.iterations,
    }


def run(out: Path, *, quick: bool = False, comm: MPI.Comm = MPI.COMM_WORLD) -> dict[str, Any]:
    """Run the three devices on two mesh levels; write the tables and JSON."""
    started = time.perf_counter()
    device = reduced_device(quick)
    materials = region_materials(device)
    source = source_from_device(device, materials)
    times = _times(device, source)
    runs = {
        "coarse": level_runs(quick, device.mesh.scale, times, comm, bare=True),
        "fine": level_runs(quick, 0.5 * device.mesh.scale, times, comm),
    }
    crossing = device.film.thickness**2 / materials["film"].diffusivity()
    late = times >= QUASI_STEADY * crossing

    def worst(a: np.ndarray) -> float:
        return float(np.max(np.abs(a[late])))

    signed = {
        level: {
            (model, kind): _signed(r["resolved"][kind], r[model][kind])
            for model in ("cell_problem", "corrected")
            for kind in ("max", "mean")
        }
        for level, r in runs.items()
    }
    flux = source.heat_fraction * source.intensity  # W/m^2 through the layer, quasi-steady
    summary: dict[str, Any] = {
        level: _level_summary(r, signed[level], worst, flux) for level, r in runs.items()
    }
    disc, ripple, tolerance = _tolerance(runs, summary, signed, worst)
    c0 = summary["coarse"]
    coarse = runs["coarse"]
    summary.update(
        {
            "steps": len(times) - 1,
            "compared_from_s": float(times[late][0]),
            "max_relative_difference": c0["difference_max"],
            "max_relative_difference_mean": c0["difference_mean"],
            "max_relative_difference_cell_problem": c0["difference_max_cell_problem"],
            "max_relative_difference_mean_cell_problem": c0["difference_mean_cell_problem"],
            "max_relative_pillar_effect": worst(
                _signed(coarse["bare"]["max"], coarse["corrected"]["max"])
            ),
            "discretisation_error": disc["max"],
            "discretisation_error_mean": disc["mean"],
            "discretisation_error_correction": disc["correction"],
            "ripple": ripple,
            "tolerance": tolerance["max"],
            "tolerance_mean": tolerance["mean"],
            "within_tolerance": all(
                summary[level]["difference_max"] <= tolerance["max"]
                and summary[level]["difference_mean"] <= tolerance["mean"]
                for level in LEVELS
            ),
        }
    )
    write_csv(out / "homogenisation.csv", _columns(times, runs, signed), comm=comm)
    meta = provenance(comm, inputs=device_to_dict(device), started=started, quick=quick)
    write_json(out / "homogenisation.json", {"summary": summary, **meta}, comm=comm)
    return summary


def _times(device: Device, source: HeatSource) -> np.ndarray:
    """The time levels of the device's ``[heat]`` settings, refined at the pump's edges."""
    s = device.heat
    return time_grid(
        s.end_time,
        source.waveform.edges(s.end_time),
        first_step=s.first_step_ns * 1e-9,
        growth=s.step_growth,
        max_step=s.max_step_us * 1e-6,
    )


def _level_summary(
    r: dict[str, Any],
    signed: dict[tuple[str, str], np.ndarray],
    worst: Callable[[np.ndarray], float],
    flux: float,
) -> dict[str, Any]:
    """One mesh level: the homogenised material, the rises at the end, the worst differences."""
    c = r["correction"]
    res, cor = r["resolved"], r["corrected"]
    return {
        "mesh_scale": r["device"].mesh.scale,
        "k_cell_w_mk": list(r["grating"].thermal_conductivity),
        "rho_c_j_m3k": r["grating"].volumetric_heat_capacity,
        **_correction_summary(c),
        "pillar_fraction_resolved_patch": res["fraction"],
        "power_ratio_resolved": res["power_ratio"],
        "power_ratio_homogenised": cor["power_ratio"],
        "dofs_resolved": res["dofs"],
        "dofs_homogenised": cor["dofs"],
        "end_max_rise_resolved_k": float(res["max"][-1]),
        "end_max_rise_cell_problem_k": float(r["cell_problem"]["max"][-1]),
        "end_max_rise_corrected_k": float(cor["max"][-1]),
        "end_mean_rise_resolved_k": float(res["mean"][-1]),
        "end_mean_rise_cell_problem_k": float(r["cell_problem"]["mean"][-1]),
        "end_mean_rise_corrected_k": float(cor["mean"][-1]),
        "difference_max_cell_problem": worst(signed[("cell_problem", "max")]),
        "difference_mean_cell_problem": worst(signed[("cell_problem", "mean")]),
        "difference_max": worst(signed[("corrected", "max")]),
        "difference_mean": worst(signed[("corrected", "mean")]),
        # Ripple: the resolved max over the film top above a pillar, less the same
        # homogenised (which removes the spot's own lateral profile).
        "ripple_resolved": (res["excess"] - cor["excess"]) / float(cor["max"][-1]),
        "ripple_stack_cell": flux * c.ripple / float(cor["max"][-1]),
    }


def _tolerance(
    runs: dict[str, dict[str, Any]],
    summary: dict[str, Any],
    signed: dict[str, dict[tuple[str, str], np.ndarray]],
    worst: Callable[[np.ndarray], float],
) -> tuple[dict[str, float], float, dict[str, float]]:
    """The measured tolerance of the comparison: twice the discretisation error (the change
    between the levels), the correction's own mesh error, and the pillar ripple (film max)."""
    disc = {
        kind: worst(signed["coarse"][("corrected", kind)] - signed["fine"][("corrected", kind)])
        for kind in ("max", "mean")
    }
    ripple = max(abs(summary["coarse"]["ripple_resolved"]), abs(summary["fine"]["ripple_resolved"]))
    # The correction's own mesh error: the change of R_c between the levels, per film mean.
    cells = [runs[level]["correction"] for level in LEVELS]
    disc["correction"] = abs(cells[0].resistance - cells[1].resistance) / min(
        c.resolved.film_mean for c in cells
    )
    shared = 2.0 * disc["correction"]
    tolerance = {"max": 2.0 * disc["max"] + shared + ripple, "mean": 2.0 * disc["mean"] + shared}
    return disc, ripple, tolerance


def _columns(
    times: np.ndarray,
    runs: dict[str, dict[str, Any]],
    signed: dict[str, dict[tuple[str, str], np.ndarray]],
) -> dict[str, Any]:
    """The columns of homogenisation.csv: every model's rises and differences per level."""
    columns: dict[str, Any] = {"time_s": times}
    for level, r in runs.items():
        for model in ("resolved", "cell_problem", "corrected", "bare"):
            if model in r:
                for kind in ("max", "mean"):
                    columns[f"{kind}_rise_{model}_{level}_k"] = r[model][kind]
        for (model, kind), values in signed[level].items():
            columns[f"difference_{kind}_{model}_{level}"] = values
    return columns


def plot(out: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Draw the figure from homogenisation.csv."""
    if comm.rank != 0:
        return
    matplotlib_backend()
    import matplotlib.pyplot as plt

    data = np.genfromtxt(out / "homogenisation.csv", delimiter=",", names=True)
    t = data["time_s"][1:] * 1e6
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.6))
    for kind, lw in (("max", 1.4), ("mean", 0.8)):
        ax.plot(
            t,
            data[f"{kind}_rise_resolved_coarse_k"][1:],
            "k-",
            lw=lw,
            label=f"{kind}, resolved pillars",
        )
        ax.plot(
            t,
            data[f"{kind}_rise_cell_problem_coarse_k"][1:],
            "b:",
            lw=lw,
            label=f"{kind}, cell-problem k",
        )
        ax.plot(
            t,
            data[f"{kind}_rise_corrected_coarse_k"][1:],
            "r--",
            lw=lw,
            label=f"{kind}, k_zz corrected",
        )
    ax.plot(t, data["max_rise_bare_coarse_k"][1:], "g-.", lw=0.8, label="max, no pillars")
    ax.set_xscale("log")
    ax.set_xlabel("time (us)")
    ax.set_ylabel("film temperature rise (K)")
    ax.legend(fontsize=6)
    for name, style in (
        ("difference_max_cell_problem_coarse", "b:"),
        ("difference_mean_cell_problem_coarse", "c:"),
        ("difference_max_corrected_coarse", "r-"),
        ("difference_mean_corrected_coarse", "m-"),
        ("difference_max_corrected_fine", "r--"),
        ("difference_mean_corrected_fine", "m--"),
    ):
        bx.semilogx(t, 100 * data[name][1:], style, label=name.replace("difference_", ""))
    bx.axhline(0.0, color="0.6", lw=0.5)
    bx.set_xlabel("time (us)")
    bx.set_ylabel("(resolved - homogenised) / homogenised (%)")
    bx.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, out / "homogenisation", comm)
