"""Benchmark of the optical mode solvers: wall time, DOFs, eigensolver iterations, peak memory.

Cases: one 1D stack solve (``cqdlaser.modes``); the 2D cross-section band edges; the 3D unit-cell
band edges at two resolutions (``mesh.scale``), with the change of each band-edge wavelength
between them (the discretisation error of the coarser one, roughly). Band edges come from
``cqdlaser.bands`` (which also makes the Bragg estimate), cells and mesh seconds from
``cqdlaser.mesh``.

Everything goes through the public API; seconds are the library's named ``dolfinx.common.Timer``s
(``STACK_MODES_TIMER``, ``BRAGG_TIMER``, ``BANDS_ASSEMBLE_TIMER`` (the operators),
``BANDS_SOLVE_TIMER`` (the eigensolve), ``BANDS_TIMER`` (all of the band-edge solve: ``total_s``),
``GMSH_TIMER`` (the mesh)), read with ``dolfinx.common.timing`` before and after each call (the
cases share a process), the slowest rank's. Peak memory is the process's so far.

Run: ``mpirun -n 2 python benchmarks/bench_modes.py [CONFIG] [--scales 1.5 1.0] [--quick]``.
"""

from __future__ import annotations

import argparse
import resource
from collections.abc import Callable
from functools import partial
from pathlib import Path

from mpi4py import MPI

import numpy as np

import dolfinx.common

import cqdlaser
from cqdlaser.geometry.builders import GMSH_TIMER
from cqdlaser.physics.bands import (
    BANDS_ASSEMBLE_TIMER,
    BANDS_SOLVE_TIMER,
    BANDS_TIMER,
    BRAGG_TIMER,
)
from cqdlaser.physics.modes import STACK_MODES_TIMER

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "studies" / "configs" / "paper_inorganic_mgf2.toml"
TIMERS = (
    GMSH_TIMER,
    STACK_MODES_TIMER,
    BRAGG_TIMER,
    BANDS_ASSEMBLE_TIMER,
    BANDS_SOLVE_TIMER,
    BANDS_TIMER,
)


def _seconds(timer: str) -> float:
    """Total wall seconds of a named dolfinx Timer on this rank (0 where it never ran here)."""
    try:
        return dolfinx.common.timing(timer)[1].total_seconds()
    except RuntimeError:
        return 0.0


def timed[T](comm: MPI.Comm, call: Callable[[], T]) -> tuple[T, dict[str, float]]:
    """The result of ``call()`` and the seconds it added to each of :data:`TIMERS` (the
    slowest rank's)."""
    before = np.array([_seconds(name) for name in TIMERS])
    result = call()
    spent = np.array([_seconds(name) for name in TIMERS]) - before
    comm.Allreduce(MPI.IN_PLACE, spent, op=MPI.MAX)
    return result, dict(zip(TIMERS, spent.tolist(), strict=True))


def peak_memory_mb(comm: MPI.Comm) -> tuple[float, float]:
    """(largest, summed) peak resident memory of the ranks (MB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return comm.allreduce(rss, op=MPI.MAX), comm.allreduce(rss, op=MPI.SUM)


def report(comm: MPI.Comm, name: str, **values: object) -> None:
    """Print one line of results on rank 0."""
    top, total = peak_memory_mb(comm)
    if comm.rank == 0:
        text = ", ".join(f"{k} {v}" for k, v in values.items())
        print(f"{name}: {text}, peak memory {top:.0f} MB/rank ({total:.0f} MB total)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG))
    parser.add_argument("--set", action="append", default=[], help="section.key=value override")
    parser.add_argument("--scales", type=float, nargs=2, default=[1.5, 1.0])
    parser.add_argument("--quick", action="store_true", help="coarse 3D cells (scales 4 and 3)")
    args, _ = parser.parse_known_args(argv)
    comm = MPI.COMM_WORLD
    device = cqdlaser.load_device(args.config, args.set)
    assert device.grating is not None
    pol = device.optics.polarisation
    if comm.rank == 0:
        print(f"MPI ranks {comm.size}, config {args.config}, polarisation {pol}", flush=True)

    stack = cqdlaser.mesh(device, "stack", comm=comm)
    dofs = stack.cells + stack.vertices  # P2 on an interval: a DOF per vertex and per cell
    del stack
    stack_solve = partial(cqdlaser.modes, device, polarisations=(pol,), comm=comm)
    stack_solve()  # warm-up (form compilation)
    modes, spent = timed(comm, stack_solve)
    report(
        comm,
        "stack solve",
        dofs=dofs,
        seconds=f"{spent[STACK_MODES_TIMER]:.3f}",
        n_eff=f"{modes.select(pol).n_eff:.5f}",
    )

    scales = [4.0, 3.0] if args.quick else args.scales
    cases = [("cross-section", 1.0)] + [("cell", s) for s in scales]
    previous = None
    for index, (kind, scale) in enumerate(cases):
        dev = cqdlaser.load_device(args.config, [*args.set, f"mesh.scale={scale}"])
        built, meshed = timed(comm, partial(cqdlaser.mesh, dev, kind, comm=comm))
        cells = built.cells
        del built  # bands() builds its own
        solve = partial(cqdlaser.bands, dev, kind=kind, polarisation=pol, n_bands=4, comm=comm)
        result, spent = timed(comm, solve)
        if index == 0:
            report(
                comm,
                "Bragg estimate",
                seconds=f"{spent[BRAGG_TIMER]:.3f}",
                wavelength_nm=f"{result.bragg_estimate_nm:.3f}",
            )
        report(
            comm,
            f"{kind} band edges (mesh.scale {scale})",
            cells=cells,
            dofs=result.dofs,
            iterations=result.iterations,
            mesh_s=f"{meshed[GMSH_TIMER]:.2f}",
            assemble_s=f"{spent[BANDS_ASSEMBLE_TIMER]:.2f}",
            solve_s=f"{spent[BANDS_SOLVE_TIMER]:.2f}",
            total_s=f"{spent[BANDS_TIMER]:.2f}",
        )
        edges = result.band_edges
        if comm.rank == 0:
            for e in edges:
                print(
                    f"    {e.wavelength_nm:10.4f} nm  {e.symmetry:4s}  degeneracy "
                    f"{e.degeneracy}  gain {e.gain_confinement:.3f}"
                    f"  radiation {e.radiation_fraction:.1e}",
                    flush=True,
                )
        if kind == "cell" and previous is not None and comm.rank == 0:
            changes = [
                f"{e.symmetry} {abs(e.wavelength_nm - p.wavelength_nm):.4f}"
                for e, p in zip(edges, previous, strict=False)
            ]
            print(f"    change from mesh.scale {scales[0]} (nm): {', '.join(changes)}", flush=True)
        if kind == "cell":
            previous = edges


if __name__ == "__main__":
    main()
