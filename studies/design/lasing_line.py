"""The lasing line of a DFB device, full-vector: its band edges near the second-order Bragg
condition with their Q, class and threshold gain, the lasing mode, the same edges from the 2D
cross-section (open) and the scalar 3D cell (closed) beside them, and the film thickness above
the pillars that puts the full-vector lasing mode at a target wavelength (the paper's 643 nm).

Part of the Bragg study (``cqdlaser run bragg [CONFIG]``): ``bragg.json`` key ``lasing_line``,
``lasing_line.csv`` (the band-edge table of each solver) and ``lasing_line_film.csv`` (the lasing
mode against the film thickness).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry.device import Device
from cqdlaser.studies.band_edges import band_edge_table
from cqdlaser.studies.output import logger, write_csv
from cqdlaser.studies.study_device import StudyDevice

FILMS_NM = (30.0, 45.0, 60.0, 90.0, 120.0)
QUICK_FILMS_NM = (60.0, 120.0)
"""Film thicknesses above the pillars (nm) of the paper device's full-vector scan; a user
device's are scaled by its film thickness / 120 nm. The scan meshes the film with one element
across (``mesh.film_elements=1``): the quarter cell's elements are as fine laterally as across
the film, and three across a 20 nm film make 2e5 unknowns; one quadratic Nedelec element across
the film resolves a field that varies on the scale of lambda/n (about 350 nm)."""
PAPER_FILM_NM = 120.0

ROW_KEYS = (
    "wavelength_nm",
    "family",
    "symmetry",
    "degeneracy",
    "dark",
    "q_factor",
    "q_flux",
    "gain_confinement",
    "threshold_gain_per_cm",
)


QUICK_FILM_ELEMENTS = ["mesh.film_elements=1"]
"""``--quick``: one element across the film and the grating layer for every solver."""


def solver_tables(device: Device, comm: MPI.Comm) -> dict[str, Any]:
    """The device's band edges by the three solvers: ``vector`` (with the lasing mode),
    ``cross_section_te``/``_tm`` (2D, open) and ``cell`` (scalar 3D, closed); a solver that
    cannot run on the device (no guided mode of that polarisation) gives None."""
    out: dict[str, Any] = {}
    for name, kind, pol, n in (
        ("vector", "vector", None, 0),
        ("cross_section_te", "cross-section", "TE", 2),
        ("cross_section_tm", "cross-section", "TM", 2),
        ("cell", "cell", "TE", 4),
    ):
        try:
            doc = band_edge_table(device, comm, kind=kind, polarisation=pol, n_bands=max(n, 1))
        except ValueError as error:  # the stack guides no such mode
            if comm.rank == 0:
                logger.warning("lasing line, %s: %s", name, error)
            out[name] = None
            continue
        out[name] = {
            "band_edges": [{k: e[k] for k in ROW_KEYS} for e in doc["band_edges"]],
            "lasing_mode": doc["lasing_mode"],
            "dofs": doc["dofs"],
        }
    return out


def film_scan(
    spec: StudyDevice, quick: bool, comm: MPI.Comm, nominal: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The full-vector lasing mode against the film thickness above the pillars (``nominal``: the
    vector table of the device's own film on the scan's mesh, reused for that point)."""
    own = spec.device.film.thickness_nm
    scale = own / PAPER_FILM_NM
    rows = []
    for film in QUICK_FILMS_NM if quick else FILMS_NM:
        value = round(film * scale, 3)
        device = spec.variant([f"film.thickness_nm={value}", "mesh.film_elements=1"])
        try:
            if nominal is not None and abs(value - own) < 1e-9:
                doc = nominal
            else:
                doc = band_edge_table(device, comm, kind="vector")
        except ValueError as error:
            if comm.rank == 0:
                logger.warning("lasing line, film %g nm: %s", value, error)
            continue
        mode = doc["lasing_mode"]
        if mode is None:
            continue
        rows.append({"film_thickness_nm": value, **{k: mode[k] for k in mode if k != "index"}})
    return rows


def film_for(rows: Sequence[dict[str, Any]], target_nm: float) -> dict[str, Any] | None:
    """The film thickness (nm) at which the scanned lasing wavelength reaches ``target_nm``:
    linear interpolation between the bracketing points of the scan (``how``: "interpolated"),
    else linear extrapolation from the two scan points nearest the target ("extrapolated", a
    trend, not a design: it may be negative, i.e. no film thickness reaches the target); None
    with fewer than two points."""
    if len(rows) < 2:
        return None
    films = np.array([r["film_thickness_nm"] for r in rows])
    waves = np.array([r["wavelength_nm"] for r in rows])
    for i in range(len(rows) - 1):
        a, b = waves[i] - target_nm, waves[i + 1] - target_nm
        if a * b <= 0.0 and a != b:
            value = films[i] + (films[i + 1] - films[i]) * a / (a - b)
            return {"film_thickness_nm": float(value), "how": "interpolated"}
    i, j = np.argsort(np.abs(waves - target_nm))[:2]
    slope = (films[j] - films[i]) / (waves[j] - waves[i])
    value = films[i] + slope * (target_nm - waves[i])
    return {"film_thickness_nm": float(value), "how": "extrapolated"}


def run(spec: StudyDevice, out: Path, quick: bool, comm: MPI.Comm) -> dict[str, Any]:
    """The three solvers' tables on the device, the film scan, and the film thickness for the
    device's ``optics.wavelength_nm``; writes ``lasing_line.csv`` and ``lasing_line_film.csv``.
    """
    target = spec.device.optics.wavelength_nm
    device = spec.variant(QUICK_FILM_ELEMENTS) if quick else spec.device
    tables = solver_tables(device, comm)
    if quick and not spec.is_paper:
        scan = []  # the quick study of a user's device: its own line, no scan
    else:
        nominal = tables["vector"] if quick else None
        scan = film_scan(spec, quick, comm, nominal)
    flat = [
        {"solver": name, **edge}
        for name, table in tables.items()
        if table is not None
        for edge in table["band_edges"]
    ]
    write_csv(out / "lasing_line.csv", rows=flat, comm=comm)
    write_csv(out / "lasing_line_film.csv", rows=scan, comm=comm)
    return {
        "target_nm": target,
        "solvers": tables,
        "film_scan": scan,
        "film_for_target_nm": film_for(scan, target),
    }
