"""Parameter sweeps in parallel over MPI sub-communicators.

Launched with ``mpirun -n N``, the world communicator is split into groups of
``ranks_per_point`` ranks; point i runs on group ``i mod n_groups`` (round robin), each on its own
sub-communicator, so meshes and solvers of different points never interact. Rank 0 of every group
returns its points' results; they are gathered in point order and broadcast, so every rank gets
the full list. With one rank per point every point is computed exactly as in a serial run (same
mesh, same solver, same partition), so the table is identical whatever N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from mpi4py import MPI

P = TypeVar("P")


def sweep[P](
    points: Sequence[P],
    compute: Callable[[P, MPI.Comm], Any],
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    ranks_per_point: int = 1,
    desc: str = "sweep",
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

    Returns:
        The results, in the order of ``points``, on every rank of ``comm``.
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
                result = compute(points[i], sub)
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
    return [merged[i] for i in range(len(points))]
