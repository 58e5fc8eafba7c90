"""Benchmark of the open 2D band edges (cross-section with PMLs): wavelengths, quality factors
from the eigenvalue and from the radiated flux, symmetry, under refinement and for other PMLs.

Cases, per polarisation: the paper device's open cross-section at ``mesh.scale`` 2, 1 and 0.5
(convergence: the change of each edge from the finest), then at ``--pml-scale`` with the PMLs
moved out (``mesh.optical_padding_um`` 2 -> 3) and with stronger, thicker PMLs
(``mesh.pml_strength`` 4 -> 8, ``mesh.pml_thickness_um`` 1 -> 1.5): the change from the default
PMLs at that scale (PML independence). Each line gives the cells, the DOFs (before and after the
periodic constraint, and the size of the complex pencil's real form), the eigensolver's
iterations, the seconds of the library's named timers (``GMSH_TIMER``, ``BANDS_ASSEMBLE_TIMER``,
``BANDS_SOLVE_TIMER``, ``BANDS_TIMER``: the slowest rank's) and the peak memory so far.

Run: ``mpirun -n 2 python benchmarks/bench_bands_2d.py [CONFIG] [--scales 2 1 0.5]
[--pml-scale 1] [--polarisations TE TM]``.
"""

from __future__ import annotations

import argparse
import resource
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

import dolfinx.common

import cqdlaser
from cqdlaser.geometry.builders import GMSH_TIMER
from cqdlaser.geometry.cross_section import build_cross_section
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.stack import build_stack
from cqdlaser.physics.bands import (
    BANDS_ASSEMBLE_TIMER,
    BANDS_SOLVE_TIMER,
    BANDS_TIMER,
    BandEdge,
    band_edges,
    bragg_guess,
)
from cqdlaser.physics.permittivity import region_permittivity
from cqdlaser.physics.pml import PML

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "studies" / "configs" / "paper_inorganic_mgf2.toml"
TIMERS = (GMSH_TIMER, BANDS_ASSEMBLE_TIMER, BANDS_SOLVE_TIMER, BANDS_TIMER)
PML_VARIANTS: tuple[tuple[str, ...], ...] = (
    ("mesh.optical_padding_um=3",),
    ("mesh.pml_strength=8", "mesh.pml_thickness_um=1.5"),
)
"""The PML settings compared with the default (1 um thick, sigma_max 4, after 2 um padding)."""


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


def open_band_edges(
    device: Device, polarisation: str, comm: MPI.Comm
) -> tuple[list[BandEdge], dict[str, Any], dict[str, float]]:
    """The two band edges nearest the Bragg estimate on the open cross-section, the solve's
    statistics (``cells`` added) and its seconds."""
    guess = bragg_guess(device, build_stack(device, comm, optical=True), polarisation=polarisation)
    data, meshed = timed(comm, lambda: build_cross_section(device, comm, pml=True))
    eps = region_permittivity(device, list(data.regions))
    info: dict[str, Any] = {"cells": data.counts()["cells"]}
    edges, spent = timed(
        comm,
        lambda: band_edges(
            data,
            eps,
            period=device.grating.period,
            wavelength_guess=guess,
            polarisation=polarisation,
            n_bands=2,
            pml=PML.of(device, data),
            info=info,
        ),
    )
    spent[GMSH_TIMER] = meshed[GMSH_TIMER]
    return edges, info, spent


def report(
    comm: MPI.Comm,
    name: str,
    edges: Sequence[BandEdge],
    info: dict[str, Any],
    spent: dict[str, float],
    reference: Sequence[BandEdge] | None,
) -> None:
    """Print one case on rank 0: its sizes, iterations, seconds and memory, then one line per
    band edge (with the change from ``reference``, edge by edge, when given)."""
    top, total = peak_memory_mb(comm)
    if comm.rank != 0:
        return
    print(
        f"{name}: cells {info['cells']}, dofs {info['dofs']} (reduced {info['reduced_dofs']}, "
        f"real form {info['real_form_size']}), iterations {info['iterations']}, mesh "
        f"{spent[GMSH_TIMER]:.2f} s, assemble {spent[BANDS_ASSEMBLE_TIMER]:.2f} s, solve "
        f"{spent[BANDS_SOLVE_TIMER]:.2f} s, total {spent[BANDS_TIMER]:.2f} s, peak memory "
        f"{top:.0f} MB/rank ({total:.0f} MB total)",
        flush=True,
    )
    for i, e in enumerate(edges):
        line = (
            f"    {e.wavelength * 1e9:10.4f} nm  {e.symmetry:4s}  Q {e.q_factor:11.5g}  "
            f"Q_flux {e.q_flux:11.5g}  film {e.confinement['film']:.3f}"
        )
        if reference is not None and i < len(reference):
            ref = reference[i]
            line += f"  | d_lambda {(e.wavelength - ref.wavelength) * 1e9:+.4f} nm"
            if e.q_factor < 1e6:
                line += f", dQ/Q {e.q_factor / ref.q_factor - 1.0:+.2%}"
        print(line, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG))
    parser.add_argument("--set", action="append", default=[], help="section.key=value override")
    parser.add_argument("--scales", type=float, nargs="+", default=[2.0, 1.0, 0.5])
    parser.add_argument("--pml-scale", type=float, default=1.0, help="mesh.scale of the PML cases")
    parser.add_argument("--polarisations", nargs="+", default=["TE", "TM"])
    args, _ = parser.parse_known_args(argv)
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        print(f"MPI ranks {comm.size}, config {args.config}", flush=True)

    def load(*overrides: str) -> Device:
        return cqdlaser.load_device(args.config, [*args.set, *overrides])

    for pol in args.polarisations:
        # warm-up (form compilation) at the coarsest scale
        open_band_edges(load(f"mesh.scale={max(args.scales)}"), pol, comm)
        runs = [open_band_edges(load(f"mesh.scale={s}"), pol, comm) for s in args.scales]
        finest = runs[-1][0]
        for scale, (edges, info, spent) in zip(args.scales, runs, strict=True):
            report(comm, f"{pol} mesh.scale {scale}", edges, info, spent, finest)
        base = (
            runs[args.scales.index(args.pml_scale)]
            if args.pml_scale in args.scales
            else open_band_edges(load(f"mesh.scale={args.pml_scale}"), pol, comm)
        )
        report(comm, f"{pol} mesh.scale {args.pml_scale}, default PMLs", *base, None)
        for variant in PML_VARIANTS:
            edges, info, spent = open_band_edges(
                load(f"mesh.scale={args.pml_scale}", *variant), pol, comm
            )
            name = f"{pol} mesh.scale {args.pml_scale}, {', '.join(variant)}"
            report(comm, name, edges, info, spent, base[0])


if __name__ == "__main__":
    main()
