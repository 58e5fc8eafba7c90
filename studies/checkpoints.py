"""Checkpoints of long transients, so that a killed heat run continues instead of starting again.

A transient with an output folder writes ``OUT/checkpoints/step-<NNNNNN>/`` every N steps, or
after M minutes of wall time (:class:`Schedule`):

- ``state.dat``: PETSc binary vectors, written collectively: ``u^n`` and ``u^{n-1}`` (the two
  levels BDF2 needs), then the temperature snapshots stored so far;
- ``state.json``: written by rank 0, last: the step index, the MPI size, digests of the time grid
  and of the mesh distribution (each rank's degree-of-freedom coordinates), the run's inputs, the
  problem's scalar state (:meth:`~cqdlaser.physics.heat.HeatProblem.checkpoint`: t, dt, the BDF2
  start, energies, boundary heat flows, preconditioner), the history rows so far, and the
  snapshot times written and still due.

A checkpoint is written to ``.step-<NNNNNN>.tmp`` and renamed when whole, so the newest
``step-*`` with a ``state.json`` is always usable, even after ``kill -9``; only the two newest are
kept. A resumed run (:func:`find_checkpoint`) must run on as many MPI ranks as the one that wrote
it, on the same inputs: the vectors are stored in the global numbering of that distribution.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np

from dolfinx import fem

from cqdlaser.geometry.config import device_to_dict
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.errors import ConfigError
from cqdlaser.physics.heat import HeatHistory, HeatProblem
from cqdlaser.studies.output import atomic_write_text, on_rank0, to_json

__all__ = [
    "CHECKPOINTS",
    "DEFAULT_EVERY_STEPS",
    "Checkpoint",
    "Checkpointer",
    "Schedule",
    "Snapshots",
    "find_checkpoint",
    "has_checkpoint",
]

CHECKPOINTS = "checkpoints"
"""The checkpoint folder's name inside a run's output folder."""
DEFAULT_EVERY_STEPS = 50
"""Steps between checkpoints of a transient written to an output folder."""
KEEP = 2
"""Checkpoints kept (the newest)."""
FORMAT = 1


@dataclass(frozen=True)
class Schedule:
    """When a transient writes a checkpoint: at every ``steps``-th step (0: not by steps), and
    once ``seconds`` of wall time have passed since the last one (None: not by time).

    Attributes:
        steps: Steps between checkpoints.
        seconds: Wall time (s) between checkpoints.
    """

    steps: int = DEFAULT_EVERY_STEPS
    seconds: float | None = None

    @property
    def active(self) -> bool:
        """Whether any checkpoint is written."""
        return self.steps > 0 or self.seconds is not None


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint on disk.

    Attributes:
        path: Its folder (``.../checkpoints/step-<NNNNNN>``).
        document: Its ``state.json``.
    """

    path: Path
    document: Mapping[str, Any]

    @property
    def step(self) -> int:
        """The index of the last time level it holds (0 is t = 0)."""
        return int(self.document["step"])

    def vectors(self, V: fem.FunctionSpace, count: int) -> list[np.ndarray]:
        """The first ``count`` vectors of ``state.dat``, the owned values on this rank."""
        return _read_vectors(self.path / "state.dat", V, count)

    def check(self, problem: HeatProblem, times: np.ndarray, device: Device) -> None:
        """Refuse (ConfigError) to resume a different run: other inputs, grid or mesh layout."""
        doc = self.document
        changed = _changed_keys(doc["inputs"], _inputs(device))
        if changed:
            raise ConfigError(
                "resume", str(self.path), f"the config differs from the run's: {', '.join(changed)}"
            )
        if doc["grid"] != _digest(np.asarray(times, dtype=float)) or doc["steps"] != len(times) - 1:
            raise ConfigError("resume", str(self.path), "the time grid differs from the run's")
        if doc["layout"] != layout_digest(problem.V):
            raise ConfigError(
                "resume", str(self.path), "the mesh or its distribution differs from the run's"
            )


def find_checkpoint(folder: str | Path, comm: MPI.Comm = MPI.COMM_WORLD) -> Checkpoint:
    """The newest complete checkpoint of a run's output folder (or of its ``checkpoints/``).

    Raises:
        ConfigError: On every rank, when there is none, or when it was written on another
            number of MPI ranks.
    """
    folder = Path(folder)
    found = on_rank0(comm, f"cannot read checkpoints in {folder}", lambda: _newest(folder))
    if found is None:
        raise ConfigError(
            "resume", str(folder), f"holds no checkpoint ({CHECKPOINTS}/step-*/state.json)"
        )
    path, document = found
    if document.get("format") != FORMAT:
        raise ConfigError(
            "resume", str(path), f"unknown checkpoint format {document.get('format')}"
        )
    if document["mpi_size"] != comm.size:
        raise ConfigError(
            "resume",
            str(folder),
            f"the run was checkpointed on {document['mpi_size']} MPI rank(s); resume it on as "
            f"many (this run has {comm.size})",
        )
    return Checkpoint(path, document)


def _newest(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    root = folder / CHECKPOINTS if (folder / CHECKPOINTS).is_dir() else folder
    for path in sorted(_complete(root), reverse=True):
        try:
            return path, json.loads((path / "state.json").read_text())
        except (OSError, ValueError):
            continue
    return None


def has_checkpoint(folder: str | Path) -> bool:
    """Whether a run's output folder holds a complete checkpoint (not collective)."""
    return bool(_complete(Path(folder) / CHECKPOINTS))


def _complete(root: Path) -> list[Path]:
    """The complete checkpoints in ``root`` (names sort by step)."""
    if not root.is_dir():
        return []
    return [p for p in root.glob("step-*") if (p / "state.json").is_file()]


class Checkpointer:
    """Keeps a transient's history rows and writes checkpoints on a schedule.

    Call :meth:`after_step` after every step (from the run's callback); it appends the row that
    :meth:`~cqdlaser.physics.heat.HeatProblem.run` records for the step and, when the schedule
    says so (short of the last step), writes a checkpoint (collective).

    Args:
        folder: The checkpoint folder (``OUT/checkpoints``), or None to keep rows only.
        schedule: When to write checkpoints.
        problem: The heat problem being stepped.
        times: The run's time grid (s).
        device: The run's inputs.
        start: The energies at the start of the run (in, stored, out, out_top; J).
        rows: The history rows so far (t = 0 first); None: the problem's current row alone.
        snapshots: The temperature snapshots written so far and due.
        staging: The run's staging folder (recorded, so that a resumed run removes the partial
            output of the run it continues).
    """

    def __init__(
        self,
        folder: Path | None,
        schedule: Schedule,
        problem: HeatProblem,
        times: np.ndarray,
        device: Device,
        start: Sequence[float],
        rows: Sequence[Sequence[float]] | None,
        snapshots: Snapshots,
        staging: Path | None = None,
    ) -> None:
        self.folder = folder
        self.schedule = schedule
        self._last = time.monotonic()
        self.problem = problem
        self.times = np.asarray(times, dtype=float)
        self.inputs = _inputs(device)
        self.start = [float(e) for e in start]
        self.snapshots = snapshots
        self.staging = staging
        self.rows = [self.row()] if rows is None else [list(r) for r in rows]
        self._grid = _digest(self.times)
        self._layout = layout_digest(problem.V) if folder is not None else ""

    @property
    def step(self) -> int:
        """The index of the last time level stepped to."""
        return len(self.rows) - 1

    def row(self) -> list[float]:
        """The history row of the problem's current state (as ``HeatProblem.run`` records it)."""
        p, (e_in, e_stored, e_out, e_top) = self.problem, self.start
        return [
            p.film_max_temperature(),
            p.film_mean_temperature(),
            p.interface_temperature(),
            p.energy_in - e_in,
            p.stored_energy() - e_stored,
            p.energy_out - e_out,
            p.energy_out_top - e_top,
        ]

    def after_step(self) -> None:
        """Record the step's row; write a checkpoint when one is due (collective)."""
        self.rows.append(self.row())
        if self.folder is not None and self.step < len(self.times) - 1 and self._due():
            self.write()
            self._last = time.monotonic()

    def _due(self) -> bool:
        """Whether the schedule asks for a checkpoint now (rank 0's clock decides for all)."""
        steps, seconds = self.schedule.steps, self.schedule.seconds
        if steps > 0 and self.step % steps == 0:
            return True
        if seconds is None:
            return False
        comm = self.problem.comm
        late = time.monotonic() - self._last >= seconds if comm.rank == 0 else None
        return bool(comm.bcast(late, root=0))

    def history(self, scheme: str) -> HeatHistory:
        """The run's history from the recorded rows (time levels 0 to the current step)."""
        return HeatHistory.from_records(self.times[: len(self.rows)], self.rows, scheme)

    def write(self) -> Path:
        """Write a checkpoint of the current state (collective); prune old ones."""
        assert self.folder is not None
        comm = self.problem.comm
        name = f"step-{self.step:06d}"
        tmp = self.folder / f".{name}.tmp"
        on_rank0(comm, f"cannot create {tmp}", lambda: _fresh_folder(tmp))
        p = self.problem
        snapshots = self.snapshots
        vectors = [p.u_n.x.petsc_vec, p.u_nn.x.petsc_vec, *snapshots.vectors()]
        _write_vectors(tmp / "state.dat", vectors, comm)
        document = {
            "format": FORMAT,
            "step": self.step,
            "steps": len(self.times) - 1,
            "t": float(self.times[self.step]),
            "mpi_size": comm.size,
            "grid": self._grid,
            "layout": self._layout,
            "inputs": self.inputs,
            "problem": p.checkpoint(),
            "start": self.start,
            "rows": self.rows,
            "snapshot_times_s": snapshots.times,
            "pending_snapshot_times_s": snapshots.pending,
            "staging": None if self.staging is None else str(self.staging),
        }
        final = self.folder / name
        on_rank0(comm, f"cannot write checkpoint {final}", lambda: _publish(tmp, final, document))
        return final


class Snapshots:
    """What a checkpoint needs of the temperature snapshots: those written (times and fields)
    and the times still due."""

    def __init__(self, pending: Sequence[float]) -> None:
        self.pending = sorted(float(t) for t in pending)
        self.times: list[float] = []
        self.fields: list[fem.Function] = []

    @classmethod
    def restored(
        cls, checkpoint: Checkpoint, V: fem.FunctionSpace, values: Sequence[np.ndarray]
    ) -> Snapshots:
        """The snapshots of a checkpoint, given their owned values on this rank."""
        snapshots = cls(checkpoint.document["pending_snapshot_times_s"])
        owned = len(values[0]) if values else 0
        for t, array in zip(checkpoint.document["snapshot_times_s"], values, strict=True):
            field = fem.Function(V, name="temperature")
            field.x.array[:owned] = array
            field.x.scatter_forward()
            snapshots.add(t, field)
        return snapshots

    def add(self, t: float, field: fem.Function) -> None:
        """Keep a copy of a snapshot written at ``t`` (s)."""
        self.times.append(float(t))
        self.fields.append(field.copy())

    def vectors(self) -> list[PETSc.Vec]:
        """The snapshots' vectors, in the order written."""
        return [f.x.petsc_vec for f in self.fields]


def layout_digest(V: fem.FunctionSpace) -> str:
    """A digest of the space's owned degree-of-freedom coordinates on every rank (collective).

    Equal digests mean equal meshes, distributed alike, so vectors stored in the global
    numbering of one run are those of the other.
    """
    imap = V.dofmap.index_map
    coordinates = np.ascontiguousarray(V.tabulate_dof_coordinates()[: imap.size_local])
    local = hashlib.sha256(coordinates.tobytes()).hexdigest()
    return hashlib.sha256("".join(V.mesh.comm.allgather(local)).encode()).hexdigest()[:32]


def _digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()[:32]


def _inputs(device: Device) -> dict[str, Any]:
    """The device as its JSON round trip (what a checkpoint stores and compares)."""
    return json.loads(to_json(device_to_dict(device)))


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The ``section.key`` names whose values differ between two input documents."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changed += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}")
    return changed


def _fresh_folder(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def _publish(tmp: Path, final: Path, document: Mapping[str, Any]) -> None:
    """Complete a checkpoint (its JSON last), rename it, and prune the older ones."""
    atomic_write_text(tmp / "state.json", to_json(document, indent=None) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(_complete(final.parent))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)


def _write_vectors(path: Path, vectors: Sequence[PETSc.Vec], comm: MPI.Comm) -> None:
    """Write vectors, one after the other, to a PETSc binary file (collective)."""
    viewer = PETSc.Viewer().createBinary(str(path), mode=PETSc.Viewer.Mode.WRITE, comm=comm)
    try:
        for vec in vectors:
            vec.view(viewer)
    finally:
        viewer.destroy()


def _read_vectors(path: Path, V: fem.FunctionSpace, count: int) -> list[np.ndarray]:
    """The first ``count`` vectors of a PETSc binary file, as this rank's owned values."""
    imap, bs = V.dofmap.index_map, V.dofmap.index_map_bs
    sizes = (imap.size_local * bs, imap.size_global * bs)
    comm = V.mesh.comm
    viewer = PETSc.Viewer().createBinary(str(path), mode=PETSc.Viewer.Mode.READ, comm=comm)
    values = []
    try:
        for _ in range(count):
            vec = PETSc.Vec().createMPI(sizes, comm=comm)
            try:
                vec.load(viewer)
                values.append(vec.getArray().copy())
            finally:
                vec.destroy()
    finally:
        viewer.destroy()
    return values
