"""The studies ``cqdlaser run`` knows, by name, each a compute step and a plot step.

The compute step, ``f(out, *, quick, comm) -> dict`` (plus ``device=``, a
:class:`~cqdlaser.studies.study_device.StudyDevice`, for the design studies: :func:`takes_device`),
writes the study's tables and JSON into ``out``; the plot step, ``g(out, comm)``, reads
only those files and draws the figures (PNG and PDF). Entries name them as ``"module:function"``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from mpi4py import MPI

from cqdlaser.studies.output import staged_folder

Study = Callable[..., dict[str, Any]]
Plot = Callable[[Path, MPI.Comm], None]


@dataclass(frozen=True)
class Entry:
    """Where a study's compute and plot steps live (``"module:function"``; plot may be None)."""

    compute: str
    plot: str | None


def _entry(module: str, compute: str = "run", plot: str | None = "plot") -> Entry:
    base = f"cqdlaser.studies.{module}"
    return Entry(f"{base}:{compute}", None if plot is None else f"{base}:{plot}")


STUDIES: dict[str, Entry] = {
    "meshes": _entry("design.meshes", plot=None),
    "fig1c": _entry("paper.fig1c"),
    "bragg": _entry("design.bragg"),
    "calibration": _entry("paper.calibration"),
    "fig4b": _entry("paper.fig4", "fig4b", "plot_fig4b"),
    "fig4c": _entry("paper.fig4", "fig4c", "plot_fig4c"),
    "fig4d": _entry("paper.fig4", "fig4d", "plot_fig4d"),
    "sensitivity": _entry("paper.sensitivity"),
    "diffusion_time": _entry("paper.diffusion_time"),
    "lasing_duration": _entry("design.lasing_duration"),
    "cw_feasibility": _entry("design.cw_feasibility"),
    "homogenisation": _entry("design.homogenisation"),
}
"""Study name -> its compute and plot steps."""

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


def _resolve(target: str) -> Any:
    module, _, function = target.partition(":")
    return getattr(import_module(module), function)


def study(name: str) -> Study:
    """The compute step of a study."""
    return _resolve(STUDIES[name].compute)


def plotter(name: str) -> Plot | None:
    """The plot step of a study (None for a study without figures)."""
    target = STUDIES[name].plot
    return None if target is None else _resolve(target)


def takes_device(name: str) -> bool:
    """Whether a study runs on a device given to it (its compute step has a ``device``
    parameter): the design studies; the others run on the paper's devices."""
    return name in STUDIES and "device" in inspect.signature(study(name)).parameters


def describe(name: str) -> str:
    """The first paragraph of a study's docstring (its compute function's, else its module's)."""
    owner = study(name)
    doc = owner.__doc__ or ""
    if owner.__name__ == "run":
        doc = import_module(owner.__module__).__doc__ or doc
    return " ".join(doc.strip().split("\n\n")[0].split())


def run_one(
    name: str,
    out: Path,
    *,
    quick: bool,
    comm: MPI.Comm = MPI.COMM_WORLD,
    figures: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """Compute one study into ``out`` and, with ``figures``, draw its figures from the files.

    The study writes into a staging folder beside ``out`` that replaces ``out`` only when the
    study (and its figures) completed: ``out`` holds a whole result or the previous one.
    """
    with staged_folder(out, comm, what=f"study {name}") as stage:
        summary = study(name)(stage, quick=quick, comm=comm, **kwargs)
        comm.barrier()  # rank 0 writes: its files are complete before anyone reads them
        draw = plotter(name) if figures else None
        if draw is not None:
            draw(stage, comm)
            comm.barrier()
    return summary


def run_studies(
    names: list[str],
    out: Path,
    *,
    quick: bool,
    comm: MPI.Comm = MPI.COMM_WORLD,
    figures: bool = True,
) -> dict[str, Any]:
    """Run studies by name (``paper`` expands to :data:`PAPER`), each into ``out/<name>``."""
    expanded = [n for name in names for n in (PAPER if name == "paper" else (name,))]
    results: dict[str, Any] = {}
    for name in expanded:
        results[name] = run_one(name, out / name, quick=quick, comm=comm, figures=figures)
    if "paper" in names:
        from cqdlaser.studies.paper.report import write_report

        report = write_report(out, out / "validation.md", quick=quick, comm=comm)
        results["report"] = str(report)
        comm.barrier()
    return results
