"""Every study's figure code, once: drawn from the files the study tests of this session wrote.

Study tests compute (``figures=False``); here each study's plot step reads its outputs and draws
the figure as PNG and PDF. Part of the study tier; the conftest runs these after the study tests.
"""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

import pytest

from cqdlaser.studies.registry import STUDIES, plotter

FOLDERS = {"fig4b": "fig4/fig4b", "fig4c": "fig4/fig4c", "fig4d": "fig4/fig4d"}
"""Where the study tests put a study's outputs, when not in ``<name>/``."""

DRAWN = sorted(name for name, entry in STUDIES.items() if entry.plot is not None)


@pytest.mark.study
@pytest.mark.figures
@pytest.mark.parametrize("name", DRAWN)
def test_figure_from_study_outputs(name: str, study_outputs: Path) -> None:
    out = study_outputs / FOLDERS.get(name, name)
    if not list(out.glob("*.json")):
        pytest.skip(f"the {name} study test did not run in this session")
    assert not list(out.glob("*.png")), "the study test drew no figure"
    plotter(name)(out, MPI.COMM_WORLD)
    MPI.COMM_WORLD.barrier()
    for suffix in ("png", "pdf"):
        figure = out / f"{name}.{suffix}"
        assert figure.stat().st_size > 1000, figure
