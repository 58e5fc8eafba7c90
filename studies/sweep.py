"""Parameter sweeps in parallel over MPI sub-communicators.

Launched with ``mpirun -n N``, the world communicator is split into groups of
``ranks_per_point`` ranks; point i runs on group ``i mod n_groups`` (round robin), each on its own
sub-communicator, so meshes and solvers of different points never interact. Rank 0 of every group
returns its points' results; they are gathered in point order and broadcast, so every rank gets
the full list. With one rank per point every point is computed exactly as in a serial run (same
mesh, same solver, same partition), so the table is identical whatever N.

A point that raises does not stop the sweep or hang the other groups: its group records a
:class:`PointFailure` (the point and the reason) and goes on with its next point. After every group
is done, :func:`sweep` raises :class:`SweepError` on every rank, naming the failed points, or, with
``keep_going=True``, returns the failures in place of their results so that a study can write its
table (the failed points with their reasons) before it raises. A failure inside a group of several
ranks is seen by that group's rank 0; it must happen on every rank of the group (as a failed solve
does), since a rank left waiting in one of the group's collectives cannot be freed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mpi4py import MPI

P = TypeVar("P")


@dataclass(frozen=True)
class PointFailure:
    """A sweep point whose computation raised: its index, the point, and why."""

    index: int
    point: Any
    reason: str


class SweepError(RuntimeError):
    """Some points of a sweep failed (the others finished); lists each with its reason."""

    def __init__(self, desc: str, failures: Sequence[PointFailure]) -> None:
        self.failures = list(failures)
        listed = "; ".join(f"#{f.index} {f.point!r}: {f.reason}" for f in self.failures[:5])
        more = f" (and {len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
        super().__init__(f"{desc}: {len(self.failures)} point(s) failed: {listed}{more}")


def failures(results: Sequence[Any]) -> list[PointFailure]:
    """The failed points among the results of ``sweep(..., keep_going=True)``."""
    return [r for r in results if isinstance(r, PointFailure)]


def sweep[P](
    points: Sequence[P],
    compute: Callable[[P, MPI.Comm], Any],
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    ranks_per_point: int = 1,
    desc: str = "sweep",
    keep_going: bool = False,
) -> list[Any]:
    """Evaluate ``compute(point, subcomm)`` for every point, spread over groups of ranks.

    Args:
        points: The sweep points (picklable results are returned for each).
        compute: Called collectively on a group's communicator; its return value on the group's
            rank 0 is the point's result.
        comm: The communicator to split.
        ranks_per_point: Ranks per group (the world size is rounded down to a multiple of it;
            left-over ranks idle).
        desc: Progress bar label (rank 0).
        keep_going: Return a :class:`PointFailure` in place of each failed point's result
            instead of raising.

    Returns:
        The results, in the order of ``points``, on every rank of ``comm``.

    Raises:
        SweepError: on every rank, after all other points are done, when a point failed (unless
            ``keep_going``).
    """
    if ranks_per_point < 1:
        raise ValueError(f"ranks_per_point = {ranks_per_point} must be >= 1")
    size = comm.size
    groups = max(1, size // ranks_per_point)
    color = comm.rank // ranks_per_point if comm.rank < groups * ranks_per_point else MPI.UNDEFINED
    sub = comm.Split(color, comm.rank)
    mine: dict[int, Any] = {}
    bar = None
    if comm.rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=len(points), desc=desc, leave=False)
    try:
        if sub != MPI.COMM_NULL:
            for i in range(color, len(points), groups):
                result = _attempt(compute, points, i, sub)
                if sub.rank == 0:
                    mine[i] = result
                if bar is not None:
                    bar.update(groups)
    finally:
        if bar is not None:
            bar.close()
        if sub != MPI.COMM_NULL:
            sub.Free()
    gathered = comm.allgather(mine)
    merged: dict[int, Any] = {}
    for part in gathered:
        merged.update(part)
    results = [merged[i] for i in range(len(points))]
    failed = failures(results)
    if failed and not keep_going:
        raise SweepError(desc, failed)
    return results


def _attempt(
    compute: Callable[[Any, MPI.Comm], Any], points: Sequence[Any], i: int, sub: MPI.Comm
) -> Any:
    """One point's result, or its :class:`PointFailure` (Ctrl-C and exits still propagate)."""
    try:
        return compute(points[i], sub)
    except Exception as err:
        return PointFailure(i, points[i], f"{type(err).__name__}: {err}")
