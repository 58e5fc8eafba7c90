"""Every mesh kind of the paper device: cell and vertex counts, quality and build time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mpi4py import MPI

from cqdlaser.geometry.builders import build_mesh
from cqdlaser.geometry.meshdata import KINDS
from cqdlaser.studies.common import config_path, paper_device
from cqdlaser.studies.output import provenance, write_csv, write_json

CONFIG = "paper_inorganic_mgf2"


def run(out: Path, *, quick: bool = False, comm: MPI.Comm = MPI.COMM_WORLD) -> dict[str, Any]:
    """Build each mesh kind (coarse with ``quick``) and tabulate it in meshes.csv/json."""
    device = paper_device(CONFIG, ["mesh.scale=3"] if quick else [])
    rows = []
    for kind in KINDS:
        t0 = time.perf_counter()
        data = build_mesh(device, kind, comm)
        rows.append(
            {
                "kind": kind,
                **data.counts(),
                "min_quality": data.quality_min,
                "untagged_cells": data.untagged_cells(),
                "seconds": time.perf_counter() - t0,
            }
        )
    write_csv(out / "meshes.csv", rows=rows, comm=comm)
    write_json(
        out / "meshes.json",
        {"meshes": rows, **provenance(comm, inputs=str(config_path(CONFIG)), quick=quick)},
        comm=comm,
    )
    return {"meshes": rows}
