"""Homogenised vs resolved grating: the film's maximum temperature under a reduced spot, with the
grating layer either resolved pillar by pillar or replaced by the cell problem's material.

The paper device (``paper_inorganic_mgf2``) is reduced to a small square spot on a thin, narrow
substrate (the same layers, pump intensity and heat fraction), so that the pillars under and
around the spot can be meshed one by one. Both devices are run over the same time grid; the
result is the maximum relative difference of the film's temperature rise.

Tolerance, from the scales. The pillar period (430 nm) is not small against the film (120 nm) and
the layer (130 nm), so there is no scale separation through the stack: the error of the
homogenised layer sits in boundary layers of depth ~ period / 2 pi at the grating faces, where the
flux converges into the pillars, and in the film top's ripple at the pillar period (the film max
is a micro-scale quantity). Per unit source ``Q`` in the CQD, the steady rise of the film top over
the grating bottom is, for the homogenised layer (isothermal horizontal planes: the least
resistance), ``d_f^2/(2 k_f) + d_f H / k_zz + (1 - f) H^2 / (2 k_zz)``, and for columns cut by
adiabatic vertical planes (the most resistance) ``d_f^2/(2 k_f) + d_f H / k_p`` over a pillar and
``(d_f + H)^2 / (2 k_f)`` over the fill (their area-weighted mean bounds the spot mean, the fill
column the max). The resolved device lies between: the tolerance is that bracket, relative to the
homogenised rise at the end of the run (the layer is then quasi-steady), plus twice the
discretisation error, measured on the homogenised device by halving ``mesh.scale``. The
comparison starts after ``QUASI_STEADY`` film crossing times ``d_f^2 / alpha_f``. The bracket is
wide (~30 %); the study also reports the effect of the pillars themselves (homogenised vs no
pillars), which the homogenisation must capture to well within.

The resolved pillars are polygons of ``pillar_segments`` sides: the homogenised device uses the
pillar diameter of equal area (:func:`polygon_diameter_nm`), so both describe the same layer.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from geometry.config import device_to_dict
from geometry.device import Device
from geometry.device_mesh import build_device, pillar_segments
from physics.heat import HeatProblem, time_grid
from physics.homogenisation import homogenised_material
from physics.materials import Material, region_materials
from physics.source import source_from_device
from studies.common import matplotlib_backend, paper_device, save_figure
from studies.output import provenance, write_csv, write_json

CONFIG = "paper_inorganic_mgf2"
FULL = {
    "pump.spot_um": "[2, 2]",
    "substrate.thickness_um": 15,
    "mesh.lateral_extent_um": 8,
    "mesh.scale": 2,
    "mesh.pillar_elements": 4,
    "mesh.resolved_pillars_um": 2,
    "heat.end_time_us": 1,
    "heat.mesh": "device",
}
"""The reduced device (5 x 5 pillars in the quarter, ~44k unknowns resolved)."""

QUICK = {
    **FULL,
    "pump.spot_um": "[1.2, 1.2]",
    "substrate.thickness_um": 6,
    "mesh.lateral_extent_um": 4,
    "mesh.scale": 3,
    "mesh.resolved_pillars_um": 1,
    "heat.end_time_us": 0.5,
}
"""A tiny version for tests (3 x 3 pillars)."""


def reduced_device(quick: bool, **overrides: Any) -> Device:
    """The reduced paper device (``overrides``: extra ``section.key`` values, dots as ``__``)."""
    values = {
        **(QUICK if quick else FULL),
        **{k.replace("__", "."): v for k, v in overrides.items()},
    }
    return paper_device(CONFIG, [f"{k}={v}" for k, v in values.items()])


QUASI_STEADY = 5.0
"""Compare from this many film crossing times d_f^2 / alpha_f on."""


def polygon_diameter_nm(device: Device) -> float:
    """Diameter (nm) of the circle with the area of the resolved mesh's pillar polygon."""
    assert device.grating is not None
    n = pillar_segments(device)
    ratio = n * math.sin(2 * math.pi / n) / (2 * math.pi)
    return device.grating.pillar_diameter_nm * math.sqrt(ratio)


def film_rise(
    device: Device,
    grating: Material,
    comm: MPI.Comm,
    *,
    resolved: bool,
    times: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Film temperature rises (K) at ``times``: the maximum and the mean over the spot; the
    number of unknowns and the pillar fraction of the resolved patch (NaN if homogenised).

    Args:
        device: The device.
        grating: Material of the ``grating`` region (the whole layer, or outside the patch).
        comm: Communicator.
        resolved: Resolve the pillars under and around the spot.
        times: Time levels (s), from 0.
    """
    mesh_data = build_device(device, comm, resolved=resolved)
    materials = {**region_materials(device), "grating": grating}
    problem = HeatProblem.from_device(device, mesh_data, materials)
    history = problem.run(times=times)
    sink = problem.settings.sink_temperature
    fraction = math.nan
    if resolved:
        volumes = mesh_data.region_measures()
        fraction = volumes["pillars"] / (volumes["pillars"] + volumes["grating_fill"])
    return (
        history.film_max_temperature - sink,
        history.film_mean_temperature - sink,
        int(problem.V.dofmap.index_map.size_global),
        fraction,
    )


def column_rises(device: Device, materials: dict[str, Material], f: float) -> dict[str, float]:
    """Steady rises of the film top over the grating bottom per unit source (K m^3/W), 1D.

    ``homogenised``: the layer of conductivity ``k_zz = f k_p + (1 - f) k_f`` (isothermal
    horizontal planes); ``mean`` and ``max``: the area-weighted mean and the maximum over the
    pillar and fill columns separated by adiabatic vertical planes (each column carries its own
    heat: film over a pillar, film and fill over the fill).
    """
    assert device.grating is not None
    k_f = materials["grating_fill"].thermal_conductivity[2]
    k_p = materials["pillars"].thermal_conductivity[2]
    k_film = materials["film"].thermal_conductivity[2]
    h, d = device.grating.pillar_height, device.film.thickness
    k_zz = f * k_p + (1.0 - f) * k_f
    film = d**2 / (2.0 * k_film)
    homogenised = film + d * h / k_zz + (1.0 - f) * h**2 / (2.0 * k_zz)
    pillar = film + d * h / k_p
    fill = film + d * h / k_f + h**2 / (2.0 * k_f)
    return {
        "homogenised": homogenised,
        "mean": f * pillar + (1.0 - f) * fill,
        "max": fill,
    }


def run(out: Path, *, quick: bool = False, comm: MPI.Comm = MPI.COMM_WORLD) -> dict[str, Any]:
    """Run both devices (and the refined homogenised one), write the tables, JSON and figure."""
    started = time.perf_counter()
    device = reduced_device(quick)
    # The homogenised device has the resolved patch's pillar area (its pillars are polygons).
    matched = reduced_device(quick, grating__pillar_diameter_nm=polygon_diameter_nm(device))
    materials = region_materials(matched)
    grating = homogenised_material(matched, comm, materials=materials)
    source = source_from_device(device, materials)
    s = device.heat
    times = time_grid(
        s.end_time,
        source.waveform.edges(s.end_time),
        first_step=s.first_step_ns * 1e-9,
        growth=s.step_growth,
        max_step=s.max_step_us * 1e-6,
    )
    max_res, mean_res, dofs_res, f_res = film_rise(
        device, grating, comm, resolved=True, times=times
    )
    max_hom, mean_hom, dofs_hom, _ = film_rise(matched, grating, comm, resolved=False, times=times)
    fine = reduced_device(
        quick,
        mesh__scale=0.5 * device.mesh.scale,
        grating__pillar_diameter_nm=polygon_diameter_nm(device),
    )
    max_fine, mean_fine, dofs_fine, _ = film_rise(fine, grating, comm, resolved=False, times=times)
    bare, _, _, _ = film_rise(device, materials["film"], comm, resolved=False, times=times)

    assert matched.grating is not None
    columns = column_rises(matched, materials, matched.grating.fill_fraction)
    q = source.power / (source.spot_area * source.gain_thickness)  # W/m^3 in the CQD
    film = materials["film"]
    crossing = device.film.thickness**2 / film.diffusivity()
    # The bound needs the layer's flux established (its own diffusion time is ~ crossing).
    late = times >= QUASI_STEADY * crossing
    tiny = 1e-300

    def rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.abs(a - b) / np.maximum(np.abs(b), tiny)

    rel_max, rel_mean = rel(max_res, max_hom), rel(mean_res, mean_hom)
    bound_max = q * (columns["max"] - columns["homogenised"]) / np.maximum(max_hom, tiny)
    bound_mean = q * (columns["mean"] - columns["homogenised"]) / np.maximum(mean_hom, tiny)
    disc_max = float(np.max(rel(max_fine, max_hom)[late]))
    disc_mean = float(np.max(rel(mean_fine, mean_hom)[late]))
    tol_max = float(bound_max[-1]) + 2.0 * disc_max
    tol_mean = float(bound_mean[-1]) + 2.0 * disc_mean
    diff_max, diff_mean = float(np.max(rel_max[late])), float(np.max(rel_mean[late]))
    summary = {
        "k_eff_w_mk": list(grating.thermal_conductivity),
        "rho_c_j_m3k": grating.volumetric_heat_capacity,
        "pillar_fraction_cell": (
            grating.volumetric_heat_capacity - materials["grating_fill"].volumetric_heat_capacity
        )
        / (
            materials["pillars"].volumetric_heat_capacity
            - materials["grating_fill"].volumetric_heat_capacity
        ),
        "pillar_fraction_resolved_patch": f_res,
        "dofs_resolved": dofs_res,
        "dofs_homogenised": dofs_hom,
        "dofs_homogenised_refined": dofs_fine,
        "steps": len(times) - 1,
        "end_max_rise_resolved_k": float(max_res[-1]),
        "end_max_rise_homogenised_k": float(max_hom[-1]),
        "end_max_rise_without_pillars_k": float(bare[-1]),
        "end_mean_rise_resolved_k": float(mean_res[-1]),
        "end_mean_rise_homogenised_k": float(mean_hom[-1]),
        "compared_from_s": float(times[late][0]),
        "max_relative_difference": diff_max,
        "max_relative_difference_mean": diff_mean,
        "max_relative_difference_before": float(np.max(rel_max[1:][~late[1:]], initial=0)),
        "max_relative_pillar_effect": float(np.max(rel(bare, max_hom)[late])),
        "discretisation_error": disc_max,
        "discretisation_error_mean": disc_mean,
        "tolerance": tol_max,
        "tolerance_mean": tol_mean,
        "within_tolerance": diff_max <= tol_max and diff_mean <= tol_mean,
    }
    write_csv(
        out / "homogenisation.csv",
        {
            "time_s": times,
            "max_rise_resolved_k": max_res,
            "max_rise_homogenised_k": max_hom,
            "max_rise_homogenised_refined_k": max_fine,
            "max_rise_without_pillars_k": bare,
            "mean_rise_resolved_k": mean_res,
            "mean_rise_homogenised_k": mean_hom,
            "mean_rise_homogenised_refined_k": mean_fine,
            "relative_difference_max": rel_max,
            "relative_difference_mean": rel_mean,
            "bound_max": bound_max,
            "bound_mean": bound_mean,
        },
        comm=comm,
    )
    write_json(
        out / "homogenisation.json",
        {
            "summary": summary,
            **provenance(comm, inputs=device_to_dict(device), started=started, quick=quick),
        },
        comm=comm,
    )
    plot(out, comm)
    return summary


def plot(out: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Draw the figure from homogenisation.csv."""
    if comm.rank != 0:
        return
    matplotlib_backend()
    import matplotlib.pyplot as plt

    data = np.genfromtxt(out / "homogenisation.csv", delimiter=",", names=True)
    t = data["time_s"][1:] * 1e6
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.6))
    ax.plot(t, data["max_rise_resolved_k"][1:], "k-", label="max, resolved pillars")
    ax.plot(t, data["max_rise_homogenised_k"][1:], "r--", label="max, homogenised")
    ax.plot(t, data["mean_rise_resolved_k"][1:], "k-", lw=0.8, label="spot mean, resolved")
    ax.plot(t, data["mean_rise_homogenised_k"][1:], "r:", label="spot mean, homogenised")
    ax.plot(t, data["max_rise_without_pillars_k"][1:], "b-.", lw=0.8, label="max, no pillars")
    ax.set_xscale("log")
    ax.set_xlabel("time (us)")
    ax.set_ylabel("film temperature rise (K)")
    ax.legend(fontsize=7)
    bx.semilogx(t, 100 * data["relative_difference_max"][1:], "k-", label="max: |res - hom|")
    bx.semilogx(t, 100 * data["relative_difference_mean"][1:], "m-", label="mean: |res - hom|")
    bx.semilogx(t, 100 * data["bound_max"][1:], "k:", label="max: column bound")
    bx.semilogx(t, 100 * data["bound_mean"][1:], "m:", label="mean: column bound")
    bx.set_ylim(0, 50)
    bx.set_xlabel("time (us)")
    bx.set_ylabel("relative difference (%)")
    bx.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "homogenisation", comm)
