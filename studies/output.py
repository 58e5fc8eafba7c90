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
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from mpi4py import MPI

import numpy as np

from cqdlaser._version import __version__

logger = logging.getLogger("cqdlaser")


TABLE_LOGGER = "cqdlaser.table"
"""The logger of results and tables meant for a reader (the CLI's human-readable output): they go
to stdout, while progress and logs go to stderr."""


def setup_logging(
    comm: MPI.Comm = MPI.COMM_WORLD, *, quiet: bool = False, stdout: TextIO | None = None
) -> None:
    """Log to stderr, from rank 0 only (other ranks log warnings and errors with their rank);
    results and tables (logger :data:`TABLE_LOGGER`) go to ``stdout`` (default ``sys.stdout``)
    from rank 0, and nowhere when ``quiet`` (``--json``: the JSON document is the result)."""
    level = logging.WARNING if quiet or comm.rank != 0 else logging.INFO
    fmt = "%(message)s" if comm.rank == 0 else f"[rank {comm.rank}] %(levelname)s %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    tables = logging.getLogger(TABLE_LOGGER)
    tables.propagate = False
    tables.handlers[:] = [logging.StreamHandler(sys.stdout if stdout is None else stdout)]
    tables.setLevel(logging.INFO if comm.rank == 0 and not quiet else logging.CRITICAL + 1)


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
    """Write ``text`` to ``path`` through a temporary file and a rename (call on one rank only).

    The file's mode follows the user's umask, as a plain ``open`` would make it (not the 0600 of
    ``tempfile.mkstemp``), so colleagues can read shared results.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a table atomically from rank 0, given as columns (name -> values) or as rows.

    ``metadata`` goes first, one ``# key: value`` line each: a reader skips the lines that start
    with ``#`` (``pandas.read_csv(path, comment="#")``, or ``csv.DictReader`` over the others).
    """
    if comm.rank == 0:
        buf = io.StringIO()
        for key, value in (metadata or {}).items():
            buf.write(f"# {key}: {_cell(value)}\n")
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


STAGING_PREFIX = ".staging-"
"""Name prefix of a run's staging folder inside its output folder."""


def on_rank0[T](comm: MPI.Comm, what: str, action: Callable[[], T]) -> T:
    """Run ``action`` on rank 0 and share its value; if it fails, raise on every rank.

    File-system work done by rank 0 alone must not leave the other ranks waiting at the next
    collective call when it fails: the error is broadcast and raised everywhere.

    Raises:
        OSError: On every rank, naming ``what`` and rank 0's error.
    """
    value: T | None = None
    error = None
    if comm.rank == 0:
        try:
            value = action()
        except Exception as exc:
            error = f"{what}: {exc}"
    error = comm.bcast(error, root=0)
    if error is not None:
        raise OSError(error)
    return comm.bcast(value, root=0)  # type: ignore[return-value]


@dataclass(frozen=True)
class Staging:
    """A run's private folder ``OUT/.staging-<id>``, published into ``OUT`` on success.

    A run writes every file (tables, JSON, field folders) into the staging folder; only when it
    completes are they renamed to their final names, so ``OUT`` holds a whole result or the
    previous one, never half of a new one. A failed or killed run leaves its staging folder (the
    partial output) and nothing under the final names.

    Attributes:
        out: The output folder.
        path: The staging folder inside it.
        comm: The run's communicator (rank 0 does the file-system work).
    """

    out: Path
    path: Path
    comm: MPI.Comm

    @classmethod
    def create(cls, out: str | Path, comm: MPI.Comm = MPI.COMM_WORLD) -> Staging:
        """Make a fresh staging folder in ``out`` (collective; rank 0 names and creates it)."""
        out = Path(out)

        def make() -> Path:
            path = out / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
            path.mkdir(parents=True)
            return path

        return cls(out, on_rank0(comm, f"cannot create a staging folder in {out}", make), comm)

    def publish(self, stale: Iterable[str] = ()) -> None:
        """Rename the staged files and folders to their final names in ``out`` (collective).

        The ``stale`` names (the files of the run being replaced) and the names being replaced
        are removed first, JSON documents first; then every staged name is moved in, JSON
        documents last, so a reader never sees a JSON document beside files of another run.
        """
        self.comm.barrier()
        what = f"cannot publish {self.path} into {self.out}"
        on_rank0(self.comm, what, lambda: self._move(stale))

    def _move(self, stale: Iterable[str]) -> None:
        staged = sorted(p for p in self.path.iterdir() if not p.name.startswith("."))
        doomed = set(stale) | {p.name for p in staged}
        for name in sorted(doomed, key=lambda n: not n.endswith(".json")):
            _remove(self.out / name)
        for p in sorted(staged, key=lambda p: p.suffix == ".json"):
            p.replace(self.out / p.name)
        shutil.rmtree(self.path)


def _remove(path: Path) -> None:
    """Remove a file or a folder (a field's ``.bp``), if there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def staged(
    out: str | Path | None,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    stale: Iterable[str] = (),
    what: str = "the run",
) -> Iterator[Path | None]:
    """A staging folder in ``out`` for the block's files, published when the block completes.

    Yields None (and writes nothing) when ``out`` is None. When the block raises (an error,
    Ctrl-C), nothing is published: rank 0 logs where the partial output is, and the error
    propagates.

    Args:
        out: The output folder, or None.
        comm: The run's communicator.
        stale: Names in ``out`` of the result being replaced (see :meth:`Staging.publish`).
        what: The run, for the log line.
    """
    if out is None:
        yield None
        return
    staging = Staging.create(out, comm)
    try:
        yield staging.path
    except BaseException:
        if comm.rank == 0:
            logger.warning(
                "%s did not complete: nothing was published in %s; its partial output is in %s",
                what,
                staging.out,
                staging.path,
            )
        raise
    staging.publish(stale)


@contextmanager
def staged_folder(
    out: str | Path, comm: MPI.Comm = MPI.COMM_WORLD, *, what: str = "the run"
) -> Iterator[Path]:
    """A private sibling of the folder ``out``, which replaces ``out`` when the block completes.

    For runs that own their whole folder (a study): the staging folder
    ``<parent>/.staging-<name>-<id>`` sits beside ``out``, so a study that reads its siblings
    (the calibration of the same run) finds them; on success the previous ``out`` is removed and
    the staging folder renamed to it, so ``out`` holds the whole new result or the previous one.
    When the block raises, nothing is published and rank 0 logs where the partial output is.
    """
    out = Path(out)

    def make() -> Path:
        path = out.parent / f"{STAGING_PREFIX}{out.name}-{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        return path

    stage = on_rank0(comm, f"cannot create a staging folder beside {out}", make)
    try:
        yield stage
    except BaseException:
        if comm.rank == 0:
            logger.warning(
                "%s did not complete: nothing was published in %s; its partial output is in %s",
                what,
                out,
                stage,
            )
        raise
    comm.barrier()

    def publish() -> None:
        _remove(out)
        stage.replace(out)

    on_rank0(comm, f"cannot publish {stage} as {out}", publish)
