"""Benchmark of the optical mode solvers: wall time, DOFs, eigensolver iterations, peak memory.

Cases: one 1D stack solve (:func:`physics.modes.stack_modes`); the 2D cross-section band edges;
the 3D unit-cell band edges at two resolutions (``mesh.scale``), with the change of each band-edge
wavelength between them (the discretisation error of the coarser one, roughly).

Run: ``mpirun -n 2 python benchmarks/bench_modes.py [CONFIG] [--scales 1.5 1.0] [--quick]``.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from mpi4py import MPI

import cqdlaser.geometry  # noqa: F401  (orders the DOLFINx imports)
from cqdlaser.geometry.cell import build_cell
from cqdlaser.geometry.config import load_device
from cqdlaser.geometry.cross_section import build_cross_section
from cqdlaser.geometry.stack import build_stack
from cqdlaser.physics.bands import band_edges, bragg_guess
from cqdlaser.physics.modes import gain_confinement, stack_modes
from cqdlaser.physics.permittivity import region_permittivity

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "studies" / "configs" / "paper_inorganic_mgf2.toml"


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
    device = load_device(args.config, args.set)
    assert device.grating is not None
    pol = device.optics.polarisation
    if comm.rank == 0:
        print(f"MPI ranks {comm.size}, config {args.config}, polarisation {pol}", flush=True)

    stack = build_stack(device, comm, optical=True)
    eps = region_permittivity(device, list(stack.regions))
    stack_modes(stack, eps, device.optics.wavelength, pol)  # warm-up (form compilation)
    t0 = time.perf_counter()
    modes = stack_modes(stack, eps, device.optics.wavelength, pol)
    seconds = time.perf_counter() - t0
    dofs = 2 * stack.mesh.topology.index_map(1).size_global + 1
    report(comm, "stack solve", dofs=dofs, seconds=f"{seconds:.3f}", n_eff=f"{modes[0].n_eff:.5f}")

    t0 = time.perf_counter()
    guess = bragg_guess(device, stack, polarisation=pol)
    report(
        comm,
        "Bragg estimate",
        seconds=f"{time.perf_counter() - t0:.3f}",
        wavelength_nm=f"{guess * 1e9:.3f}",
    )

    scales = [4.0, 3.0] if args.quick else args.scales
    cases = [("cross-section", 1.0, build_cross_section)]
    cases += [("cell", s, build_cell) for s in scales]
    previous = None
    for kind, scale, build in cases:
        dev = load_device(args.config, [*args.set, f"mesh.scale={scale}"])
        t0 = time.perf_counter()
        data = build(dev, comm)
        mesh_s = time.perf_counter() - t0
        info: dict[str, object] = {}
        t0 = time.perf_counter()
        edges = band_edges(
            data,
            region_permittivity(dev, list(data.regions)),
            period=dev.grating.period,
            wavelength_guess=guess,
            polarisation=pol,
            n_bands=4,
            info=info,
        )
        seconds = time.perf_counter() - t0
        cells = data.mesh.topology.index_map(data.mesh.topology.dim).size_global
        report(
            comm,
            f"{kind} band edges (mesh.scale {scale})",
            cells=cells,
            dofs=info["dofs"],
            reduced_dofs=info["reduced_dofs"],
            iterations=info["iterations"],
            mesh_s=f"{mesh_s:.2f}",
            assemble_s=f"{info['assemble_s']:.2f}",
            solve_s=f"{info['solve_s']:.2f}",
            total_s=f"{seconds:.2f}",
        )
        if comm.rank == 0:
            for e in edges:
                gain = gain_confinement(e.confinement, device.grating.fill_fraction)
                print(
                    f"    {e.wavelength * 1e9:10.4f} nm  {e.symmetry:4s}  degeneracy "
                    f"{e.degeneracy}  gain {gain:.3f}"
                    f"  radiation {e.radiation_fraction:.1e}",
                    flush=True,
                )
        if kind == "cell" and previous is not None and comm.rank == 0:
            changes = [
                f"{e.symmetry} {abs(e.wavelength - p.wavelength) * 1e9:.4f}"
                for e, p in zip(edges, previous, strict=False)
            ]
            print(f"    change from mesh.scale {scales[0]} (nm): {', '.join(changes)}", flush=True)
        if kind == "cell":
            previous = edges


if __name__ == "__main__":
    main()
