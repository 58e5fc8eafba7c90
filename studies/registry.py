"""The studies ``cqdlaser run`` knows, by name: each is ``f(out, *, quick, comm) -> dict``, the
``run`` of a module or a named function of it (``"module:function"``)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

from mpi4py import MPI

Study = Callable[..., dict[str, Any]]

STUDIES: dict[str, str] = {
    "meshes": "cqdlaser.studies.meshes",
    "fig1c": "cqdlaser.studies.fig1c",
    "bragg": "cqdlaser.studies.bragg",
    "calibration": "cqdlaser.studies.calibration",
    "fig4b": "cqdlaser.studies.fig4:fig4b",
    "fig4c": "cqdlaser.studies.fig4:fig4c",
    "fig4d": "cqdlaser.studies.fig4:fig4d",
    "sensitivity": "cqdlaser.studies.sensitivity",
    "diffusion_time": "cqdlaser.studies.diffusion_time",
    "lasing_duration": "cqdlaser.studies.lasing_duration",
    "cw_feasibility": "cqdlaser.studies.cw_feasibility",
    "homogenisation": "cqdlaser.studies.homogenisation",
}
"""Study name -> module holding its ``run``."""

PAPER: tuple[str, ...] = (
    "calibration",
    "fig1c",
    "bragg",
    "fig4b",
    "fig4c",
    "fig4d",
    "sensitivity",
    "diffusion_time",
    "lasing_duration",
    "cw_feasibility",
)
"""What ``cqdlaser run paper`` runs, in order (the calibration first: the others read it)."""


def study(name: str) -> Study:
    """The function that runs a study."""
    module, _, function = STUDIES[name].partition(":")
    return getattr(import_module(module), function or "run")


def describe(name: str) -> str:
    """The first paragraph of a study's docstring (its function's, else its module's)."""
    module, _, function = STUDIES[name].partition(":")
    owner = getattr(import_module(module), function) if function else import_module(module)
    doc = owner.__doc__ or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def run_studies(
    names: list[str], out: Path, *, quick: bool, comm: MPI.Comm = MPI.COMM_WORLD
) -> dict[str, Any]:
    """Run studies by name (``paper`` expands to :data:`PAPER`), each into ``out/<name>``."""
    expanded = [n for name in names for n in (PAPER if name == "paper" else (name,))]
    results: dict[str, Any] = {}
    for name in expanded:
        results[name] = study(name)(out / name, quick=quick, comm=comm)
        comm.barrier()  # rank 0 writes: its files are complete before anyone goes on
    if "paper" in names:
        from cqdlaser.studies.report import write_report

        report = write_report(out, out / "validation.md", quick=quick, comm=comm)
        results["report"] = str(report)
        comm.barrier()
    return results
