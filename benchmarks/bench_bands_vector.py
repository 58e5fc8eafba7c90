"""Benchmark of the full-vector band edges (``cqdlaser.bands(device, kind="vector")``): every
band edge of the paper's unit cell near the second-order Bragg condition, its wavelength, Q and
class, at two resolutions and with the perfectly matched layers moved and strengthened, with
DOFs, eigensolver iterations, seconds and peak memory.

Each case prints its band-edge table and its cost; the summary prints, per band edge, the change
of wavelength (nm) and of Q (%) against the first case: the discretisation and PML errors. The
issue's bar: <= 0.1 nm and <= 5 % (the dark edges' Q is unbounded, only their wavelength
counts).

Seconds: ``VECTOR_BANDS_TIMER`` (the solve, all classes), ``VECTOR_BANDS_SOLVE_TIMER`` (the
eigensolves, within it), ``GMSH_TIMER`` (the mesh), the slowest rank's; the case's wall time
includes the Bragg estimates. Peak memory is the process's so far (largest rank, and summed).

Run: ``mpirun -n 2 python benchmarks/bench_bands_vector.py [CONFIG] [--scales 1 0.75]
[--pml]``.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from mpi4py import MPI

import numpy as np

import dolfinx.common

import cqdlaser
from cqdlaser.geometry.builders import GMSH_TIMER
from cqdlaser.physics.vector_bands import VECTOR_BANDS_SOLVE_TIMER, VECTOR_BANDS_TIMER

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "studies" / "configs" / "paper_inorganic_mgf2.toml"
TIMERS = (GMSH_TIMER, VECTOR_BANDS_TIMER, VECTOR_BANDS_SOLVE_TIMER)


def _seconds(timer: str) -> float:
    try:
        return dolfinx.common.timing(timer)[1].total_seconds()
    except RuntimeError:
        return 0.0


def run_case(comm: MPI.Comm, config: Path, name: str, overrides: list[str]) -> dict:
    """One vector band-edge solve; its table, DOFs, iterations, seconds and memory."""
    device = cqdlaser.load_device(config, overrides)
    before = np.array([_seconds(t) for t in TIMERS])
    comm.Barrier()
    start = time.perf_counter()
    result = cqdlaser.bands(device, kind="vector", comm=comm)
    wall = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
    spent = np.array([_seconds(t) for t in TIMERS]) - before
    comm.Allreduce(MPI.IN_PLACE, spent, op=MPI.MAX)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    case = {
        "name": name,
        "overrides": overrides,
        "edges": result.band_edges,
        "lasing": result.lasing_mode,
        "dofs": result.dofs,
        "iterations": result.iterations,
        "mesh_s": spent[0],
        "solve_s": spent[1],
        "eigensolve_s": spent[2],
        "wall_s": wall,
        "peak_mb": comm.allreduce(rss, op=MPI.MAX),
        "peak_total_mb": comm.allreduce(rss, op=MPI.SUM),
    }
    if comm.rank == 0:
        print(
            f"\n== {name} ({' '.join(overrides) or 'defaults'}): {case['dofs']} N1curl DOFs, "
            f"{case['iterations']} Krylov-Schur iterations (all classes), mesh "
            f"{case['mesh_s']:.1f} s, solve {case['solve_s']:.1f} s (eigensolves "
            f"{case['eigensolve_s']:.1f} s), wall {wall:.1f} s on {comm.size} rank(s), peak "
            f"{case['peak_mb']:.0f} MB per rank ({case['peak_total_mb']:.0f} MB in all)"
        )
        for e in result.band_edges:
            q = "unbounded" if e.q_factor is None else f"{e.q_factor:.5g}"
            qf = "-" if e.q_flux is None else f"{e.q_flux:.5g}"
            g = "-" if e.threshold_gain_per_cm is None else f"{e.threshold_gain_per_cm:.1f}"
            print(
                f"  {e.wavelength_nm:9.3f} nm  {e.family:8s} {e.symmetry:3s} x{e.degeneracy} "
                f"{'dark' if e.dark else '    '}  Q {q:>10s}  Q(flux) {qf:>8s}  "
                f"Gamma {e.gain_confinement:.4f}  g_th {g}/cm"
            )
        m = result.lasing_mode
        if m is not None:
            print(
                f"  lasing mode: {m['wavelength_nm']:.3f} nm {m['family']} {m['symmetry']}, "
                f"threshold gain {m['threshold_gain_per_cm']:.1f}/cm"
            )
    return case


def compare(reference: dict, other: dict) -> tuple[float, float]:
    """Largest wavelength change (nm) and Q change (%, radiating edges) of ``other`` against
    ``reference``, pairing edges by family, symmetry and order."""
    dl, dq = 0.0, 0.0

    def keyed(case: dict) -> dict:
        out: dict = {}
        for e in case["edges"]:
            key = (e.family, e.symmetry)
            out.setdefault(key, []).append(e)
        return out

    ref, oth = keyed(reference), keyed(other)
    for key, edges in ref.items():
        for a, b in zip(edges, oth.get(key, []), strict=False):
            dl = max(dl, abs(a.wavelength_nm - b.wavelength_nm))
            if a.q_factor is not None and b.q_factor is not None and not a.dark:
                dq = max(dq, 100.0 * abs(b.q_factor - a.q_factor) / a.q_factor)
    return dl, dq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=[1.0, 0.75],
        help="mesh.scale of the resolution cases (first: the reference of the comparisons)",
    )
    parser.add_argument(
        "--pml",
        action="store_true",
        help="also the first scale with the PMLs 1 um further out, and twice as strong",
    )
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    cases = [
        run_case(comm, args.config, f"scale {s:g}", [f"mesh.scale={s:g}"]) for s in args.scales
    ]
    if args.pml:
        s = args.scales[0]
        pad = cqdlaser.load_device(args.config).mesh.optical_padding_um
        cases.append(
            run_case(
                comm,
                args.config,
                "PML moved",
                [f"mesh.scale={s:g}", f"mesh.optical_padding_um={pad + 1:g}"],
            )
        )
        cases.append(
            run_case(comm, args.config, "PML x2", [f"mesh.scale={s:g}", "mesh.pml_strength=8"])
        )
    if comm.rank == 0:
        print("\n== against the first case")
        for case in cases[1:]:
            dl, dq = compare(cases[0], case)
            flag = "within" if dl <= 0.1 and dq <= 5.0 else "OUTSIDE"
            print(
                f"  {case['name']:12s}: max |d lambda| {dl:.4f} nm, max |dQ| {dq:.2f} % "
                f"({flag} 0.1 nm / 5 %)"
            )


if __name__ == "__main__":
    main()
