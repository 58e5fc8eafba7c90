"""Result writing: atomic files on rank 0, provenance, and logging on rank 0.

Every result file is written to a temporary name in the same directory and renamed, so a crash
never leaves a truncated file. Only rank 0 writes tables and JSON.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from cqdlaser._version import __version__

logger = logging.getLogger("cqdlaser")


def setup_logging(comm: MPI.Comm = MPI.COMM_WORLD, *, quiet: bool = False) -> None:
    """Log to stderr, from rank 0 only (other ranks log warnings and errors with their rank)."""
    level = logging.WARNING if quiet or comm.rank != 0 else logging.INFO
    fmt = "%(message)s" if comm.rank == 0 else f"[rank {comm.rank}] %(levelname)s %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, complex):
        return [obj.real, obj.imag]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple | set):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(data: Any, *, indent: int | None = 2) -> str:
    """JSON text of results (numpy arrays, complex numbers and paths included)."""
    return json.dumps(data, indent=indent, default=_jsonable, allow_nan=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename (call on one rank only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: Any, comm: MPI.Comm = MPI.COMM_WORLD) -> Path:
    """Write JSON atomically from rank 0."""
    if comm.rank == 0:
        atomic_write_text(path, to_json(data) + "\n")
    return Path(path)


def write_csv(
    path: str | Path,
    columns: Mapping[str, Sequence[Any]] | None = None,
    *,
    rows: Iterable[Mapping[str, Any]] | None = None,
    comm: MPI.Comm = MPI.COMM_WORLD,
) -> Path:
    """Write a table atomically from rank 0, given as columns (name -> values) or as rows."""
    if comm.rank == 0:
        buf = io.StringIO()
        if columns is not None:
            names = list(columns)
            writer = csv.writer(buf)
            writer.writerow(names)
            for values in zip(*(columns[n] for n in names), strict=True):
                writer.writerow([_cell(v) for v in values])
        else:
            rows = list(rows or [])
            names = list(rows[0]) if rows else []
            dict_writer = csv.DictWriter(buf, fieldnames=names)
            dict_writer.writeheader()
            for row in rows:
                dict_writer.writerow({k: _cell(v) for k, v in row.items()})
        atomic_write_text(path, buf.getvalue())
    return Path(path)


def _cell(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return f"{float(v):.10g}"
    return v


def git_revision() -> str | None:
    """The git commit of the cqdlaser sources, or None outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def versions() -> dict[str, str]:
    """Versions of cqdlaser and its stack (collective-free; cheap)."""
    from petsc4py import PETSc

    import gmsh

    import dolfinx

    petsc = ".".join(str(v) for v in PETSc.Sys.getVersion())
    out = {
        "cqdlaser": __version__,
        "python": platform.python_version(),
        "dolfinx": dolfinx.__version__,
        "petsc": petsc,
        "petsc_scalar": np.dtype(PETSc.ScalarType).name,
        "gmsh": gmsh.__version__,
        "mpi": MPI.Get_library_version().splitlines()[0].strip(),
        "numpy": np.__version__,
    }
    try:
        from slepc4py import SLEPc

        out["slepc"] = ".".join(str(v) for v in SLEPc.Sys.getVersion())
    except ImportError:
        out["slepc"] = "missing"
    return out


def provenance(
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    inputs: Any = None,
    started: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The metadata every result file records: inputs, versions, MPI size, wall time, git SHA."""
    meta: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_revision(),
        "versions": versions(),
        "mpi_size": comm.size,
        "command": " ".join(sys.argv),
    }
    if started is not None:
        meta["wall_time_s"] = time.perf_counter() - started
    if inputs is not None:
        meta["inputs"] = inputs
    meta.update(extra)
    return meta
