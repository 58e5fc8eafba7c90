"""Fig. 1c: TE0 confinement factor vs film thickness, inorganic (n = 1.97) and organic (n = 1.74)
CQD films on glass, and the thickness ratio at equal confinement.

The paper states that the inorganic film reaches the same confinement with "at least 50%" less
thickness. The model answers with the thickness ratio t_inorganic / t_organic at equal Gamma, as a
function of Gamma, at the organic film's optimum (300 nm), and in the cut-off limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry.stack import build_stack
from cqdlaser.physics.materials import region_materials
from cqdlaser.physics.modes import stack_modes
from cqdlaser.physics.permittivity import region_permittivity
from cqdlaser.studies.common import matplotlib_backend, paper_device, progress, save_figure
from cqdlaser.studies.output import provenance, write_csv, write_json
from cqdlaser.studies.paper.report import row as validation_row

FILMS = {"inorganic": "ase_inorganic_glass", "organic": "ase_organic_glass"}
WAVELENGTH_NM = 630.0  # where the paper measured the films' indices


def confinement(config: str, thickness_nm: float, comm: MPI.Comm) -> tuple[float, float]:
    """(Gamma_film, n_eff) of the TE0 mode, or (0, nan) below cut-off."""
    device = paper_device(
        config,
        [
            f"film.thickness_nm={thickness_nm}",
            f"optics.wavelength_nm={WAVELENGTH_NM}",
        ],
    )
    data = build_stack(device, comm, optical=True)
    eps = region_permittivity(device, list(data.regions), materials=region_materials(device))
    modes = stack_modes(data, eps, device.optics.wavelength, "TE", n_modes=2)
    if not modes:
        return 0.0, float("nan")
    return modes[0].confinement["film"], modes[0].n_eff


def equal_confinement_ratio(
    t: np.ndarray, g_in: np.ndarray, g_org: np.ndarray, gamma: float
) -> float:
    """t_inorganic / t_organic at which both films have confinement ``gamma`` (interpolated)."""
    return float(np.interp(gamma, g_in, t) / np.interp(gamma, g_org, t))


def cutoff_thickness(config: str, comm: MPI.Comm, lo: float = 10.0, hi: float = 400.0) -> float:
    """TE0 cut-off thickness (nm) on glass: bisection on the existence of a guided mode."""
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if confinement(config, mid, comm)[0] > 0 else (mid, hi)
    return 0.5 * (lo + hi)


def run(out: Path, *, quick: bool = False, comm: MPI.Comm = MPI.COMM_WORLD) -> dict[str, Any]:
    """Compute the sweep, write fig1c.csv/json (the plot step draws the figure)."""
    step = 20.0 if quick else 5.0
    thickness = np.arange(40.0, 400.0 + step / 2, step)
    rows = []
    for t in progress(thickness, desc="fig1c"):
        row: dict[str, Any] = {"thickness_nm": float(t)}
        for film, config in FILMS.items():
            gamma, n_eff = confinement(config, float(t), comm)
            row[f"gamma_{film}"], row[f"n_eff_{film}"] = gamma, n_eff
        rows.append(row)
    g_in = np.array([r["gamma_inorganic"] for r in rows])
    g_org = np.array([r["gamma_organic"] for r in rows])
    gamma_300, _ = confinement(FILMS["organic"], 300.0, comm)
    gamma_120, _ = confinement(FILMS["inorganic"], 120.0, comm)
    levels = np.linspace(0.05, 0.8, 16)
    ratios = [
        {"gamma": float(g), "thickness_ratio": equal_confinement_ratio(thickness, g_in, g_org, g)}
        for g in levels
        if g < min(g_in.max(), g_org.max())
    ]
    summary = {
        "wavelength_nm": WAVELENGTH_NM,
        "gamma_inorganic_120nm": gamma_120,
        "gamma_organic_300nm": gamma_300,
        "ratio_at_organic_optimum": equal_confinement_ratio(thickness, g_in, g_org, gamma_300),
        "thickness_reduction_at_organic_optimum": 1.0
        - equal_confinement_ratio(thickness, g_in, g_org, gamma_300),
        "ratio_near_cutoff": ratios[0]["thickness_ratio"] if ratios else None,
        "paper_statement": "at least 50% less thickness for the same confinement",
    }
    cut_in = cutoff_thickness(FILMS["inorganic"], comm)
    cut_org = cutoff_thickness(FILMS["organic"], comm)
    summary["cutoff_inorganic_nm"], summary["cutoff_organic_nm"] = cut_in, cut_org
    reduction = summary["thickness_reduction_at_organic_optimum"]
    validation = [
        validation_row(
            "thickness saved by the inorganic film at equal confinement (organic optimum, 300 nm)",
            0.5,
            reduction,
            "fraction",
            "paper: 'at least 50 %'; the TE0 physics gives 32 % at Gamma = 0.80, and the saving "
            "approaches 1 - 59/111 = 47 % only near cut-off (fig1c_ratio.csv)",
        ),
        validation_row(
            "minimum film thickness for ASE on glass, inorganic",
            72.0,
            cut_in,
            "nm",
            "model: the thinnest film guiding TE0 at 630 nm (bisection on the FEM, whose "
            "transparent ends make it the exact cut-off: 59.55 nm in closed form), a lower bound: "
            "ASE also needs modal gain above the losses, so the measured minimum lies above it",
        ),
        validation_row(
            "minimum film thickness for ASE on glass, organic",
            120.0,
            cut_org,
            "nm",
            "model: TE0 cut-off at 630 nm, a lower bound",
        ),
    ]
    write_csv(out / "fig1c.csv", rows=rows, comm=comm)
    write_csv(out / "fig1c_ratio.csv", rows=ratios, comm=comm)
    write_json(
        out / "fig1c.json",
        {
            "summary": summary,
            "ratios": ratios,
            "validation": validation,
            **provenance(comm, inputs=FILMS, quick=quick),
        },
        comm=comm,
    )
    return summary


def plot(out: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Draw the figure from fig1c.csv."""
    if comm.rank != 0:
        return
    matplotlib_backend()
    import matplotlib.pyplot as plt

    data = np.genfromtxt(out / "fig1c.csv", delimiter=",", names=True)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(data["thickness_nm"], data["gamma_inorganic"], "b-", label="inorganic, n = 1.97")
    ax.plot(data["thickness_nm"], data["gamma_organic"], "r-", label="organic, n = 1.74")
    ax.axvline(120, color="b", ls=":", lw=0.8)
    ax.axvline(300, color="r", ls=":", lw=0.8)
    ax.set_xlabel("film thickness (nm)")
    ax.set_ylabel("TE0 confinement factor")
    ax.set_title(f"CQD film on glass, {WAVELENGTH_NM:.0f} nm")
    ax.legend()
    save_figure(fig, out / "fig1c", comm)
