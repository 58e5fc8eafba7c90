"""Heat solver benchmark: DOFs, steps, Krylov iterations per step, wall time and peak memory.

Cases (the paper device, ``studies/configs/paper_inorganic_mgf2.toml``, with ``--set`` overrides):

- ``axisymmetric``: the r-z device from 1 ns to ``--end-us`` (default 100 us);
- ``device``: the 3D homogenised quarter device (mesh.scale 1: ~260k DOFs) over the same span;
- ``resolved``: the resolved-pillar device (patch ``--resolved-pillars-um``) for ``--short-us``;
- ``refine-axisymmetric`` / ``refine-device``: time per DOF-step on three meshes of about 1x, 2x
  and 4x the DOFs (mesh.scale 1, 0.5, 0.25 in r-z; 2, 1.25, 0.75 in 3D), over ``--refine-us``;
- ``accuracy``: the error of the default resolution (``--accuracy-kind``, default r-z) against a
  converged run: the film's maximum rise under the CW pump of ``--config`` (its pulse removed,
  ``pump.heat_fraction`` 0.1) at the end of runs to :data:`ACCURACY_TIMES_US` and in the steady
  state, against :data:`REFERENCE` (the paper device's r-z numbers; ``--reference`` recomputes
  them for any config and kind, see :func:`reference`).

Each case runs in a fresh ``mpirun -n N`` process per rank count (``--ranks 1,2``), so that peak
memory is its own (``ru_maxrss``: the largest rank's and the sum over ranks) and so are the
library's timers. A run is one call of the public API, ``cqdlaser.heat(device)``; its result gives
the DOFs, steps and solver statistics (solver, Krylov iterations per step and at most, "pc" the
number of preconditioner builds: LU factorisations for MUMPS). Seconds are the library's named
``dolfinx.common.Timer``s read with ``dolfinx.common.timing`` (the slowest rank's): "mesh" is Gmsh
and the distribution of the mesh (``GMSH_TIMER``), "setup" that plus the heat problem's set-up
(``HEAT_SETUP_TIMER``: forms, matrices, solvers), "solve" the time stepping only
(``HEAT_RUN_TIMER``). "load" is the 1-minute load average of the machine after the run (the
machine may be shared). Timings are printed, never asserted.

    .venv/bin/python benchmarks/bench_heat.py
    .venv/bin/python benchmarks/bench_heat.py --cases device --ranks 2 --set mesh.scale=0.8
    .venv/bin/python benchmarks/bench_heat.py --cases accuracy
    .venv/bin/python benchmarks/bench_heat.py --reference --config studies/configs/OTHER.toml
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAPER_CONFIG = ROOT / "studies" / "configs" / "paper_inorganic_mgf2.toml"
CASES = ("axisymmetric", "device", "resolved", "refine-axisymmetric", "refine-device", "accuracy")
MPIRUN = Path(sys.executable).parent / "mpirun"
REFINE_SCALES = {"axisymmetric": (1.0, 0.5, 0.25), "device": (2.0, 1.25, 0.75)}
"""mesh.scale of the refinement series: about 1x, 2x and 4x the DOFs."""


ACCURACY_TIMES_US = (1.0, 2.5, 10.0, 100.0)
"""End times of the accuracy runs (us); a run ends on its last level, so no interpolation."""
ACCURACY_SETTINGS = ("pump.heat_fraction=0.1",)
"""The heat fraction is fixed so that the reference rises (K) stay valid; errors are relative."""
SPACE_LEVELS = (("mesh.scale=0.5", "mesh.grading=1.15"), ("mesh.scale=0.25", "mesh.grading=1.075"))
"""The two refined meshes of :func:`reference`: all sizes halved, then halved again (the
thermal meshes grow by ``1 + (grading - 1) / 2``: 1.15 by default, then 1.075 and 1.0375)."""
TIME_LEVELS = (
    ("heat.first_step_ns=0.5", "heat.step_growth=1.05"),
    ("heat.first_step_ns=0.25", "heat.step_growth=1.025"),
)
"""The two refined time grids of :func:`reference`: first step and ``step_growth - 1`` halved,
then halved again (the default 1 ns, 1.1)."""
REFERENCE = {
    ("paper_inorganic_mgf2", "axisymmetric"): (30.5498, 40.9762, 66.3420, 97.3023, 111.2163),
    ("si_sio2_cladding", "axisymmetric"): (49.1616, 70.4028, 109.6930, 121.4642, 122.0769),
}
"""Converged film-maximum rises (K) at :data:`ACCURACY_TIMES_US` and in the steady state, CW, heat
fraction 0.1, of the paper device and the Si/SiO2-cladding one, by ``bench_heat.py --reference
[--config ...]`` (:func:`reference`): the default mesh refined twice (:data:`SPACE_LEVELS`: 41k
and 158k DOFs, default time grid) and the default time grid refined
twice (:data:`TIME_LEVELS`: 2x and 4x the steps, default mesh), each Richardson-extrapolated, their
corrections added. On the paper device successive refinements changed the rises by ratios of
3.7-7.1 in space (2.2 at 1 us, where the film's nodal maximum samples a curved profile) and 3.4-4.2
in time; the extrapolations' last steps moved the rises of both devices by at most 0.006 %.
Computed with MUMPS for every solve (the library switches to CG + GAMG above 50k DOFs, much slower
on the 158k-DOF r-z mesh)."""


def _seconds(timer: str) -> float:
    """Total wall seconds of a named dolfinx Timer on this rank (0 where it never ran here)."""
    import dolfinx.common

    try:
        return dolfinx.common.timing(timer)[1].total_seconds()
    except RuntimeError:
        return 0.0


def run_one(case: str, overrides: list[str], end_us: float, resolved: bool) -> dict[str, Any]:
    """One heat run in this (MPI) process: the row of the table (rank 0's view, reduced)."""
    from mpi4py import MPI

    import cqdlaser
    from cqdlaser.geometry.builders import GMSH_TIMER
    from cqdlaser.physics.heat import HEAT_RUN_TIMER, HEAT_SETUP_TIMER

    comm = MPI.COMM_WORLD
    kind = "axisymmetric" if case == "axisymmetric" else "device"
    settings = [f"heat.end_time_us={end_us}", f"heat.mesh={kind}"]
    if resolved:
        settings.append("heat.grating_model=resolved")
    device = cqdlaser.load_device(PAPER_CONFIG, [*settings, *overrides])
    result = cqdlaser.heat(device, comm=comm)
    # Gmsh runs on rank 0 and its timer holds the distribution of the mesh: the slowest rank's.
    mesh_s = comm.allreduce(_seconds(GMSH_TIMER), op=MPI.MAX)
    setup_s = mesh_s + comm.allreduce(_seconds(HEAT_SETUP_TIMER), op=MPI.MAX)
    solve_s = comm.allreduce(_seconds(HEAT_RUN_TIMER), op=MPI.MAX)
    steps = result.steps or 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "case": case,
        "ranks": comm.size,
        "dofs": result.dofs,
        "steps": steps,
        "solver": result.linear_solver,
        "its_per_step": result.krylov_iterations_per_step or 0.0,
        "its_max": result.krylov_iterations_max or 0,
        "pc_builds": result.preconditioner_builds or 0,
        "mesh_s": mesh_s,
        "setup_s": setup_s,
        "solve_s": solve_s,
        "us_per_dof_step": 1e6 * solve_s / (result.dofs * max(steps, 1)),
        "peak_mib_max": comm.allreduce(peak, op=MPI.MAX),
        "peak_mib_sum": comm.allreduce(peak, op=MPI.SUM),
        "end_film_max_k": float(result.film_max_temperature_k[-1]),
        "load": os.getloadavg()[0],
        "overrides": overrides,
    }


def film_rises(
    config: Path, kind: str, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[list[float], dict[str, Any]]:
    """Film-maximum rises (K) of the CW pump at the end of runs to each of
    :data:`ACCURACY_TIMES_US` and in the steady state, on this rank's communicator, and the
    counts of the longest run (DOFs, steps, seconds of all runs, peak MiB)."""
    import dataclasses
    import time

    from mpi4py import MPI

    import cqdlaser

    comm = MPI.COMM_WORLD
    rises = []
    stats: dict[str, Any] = {"seconds": 0.0}
    for end_us in (*ACCURACY_TIMES_US, None):
        settings = [f"heat.mesh={kind}", *ACCURACY_SETTINGS, *overrides]
        if end_us is not None:
            settings.append(f"heat.end_time_us={end_us:g}")
        device = cqdlaser.load_device(config, settings)
        device = dataclasses.replace(device, pump=dataclasses.replace(device.pump, pulse_ns=None))
        start = time.perf_counter()
        result = cqdlaser.heat(device, steady=end_us is None, comm=comm)
        stats["seconds"] += time.perf_counter() - start
        if end_us is None:
            rises.append(result.steady_film_max_temperature_k - result.sink_temperature_k)
        else:
            rises.append(float(result.film_max_temperature_k[-1]) - result.sink_temperature_k)
            stats["steps"] = result.steps
        stats["dofs"] = result.dofs
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    stats["peak_mib"] = comm.allreduce(peak, op=MPI.MAX)
    return rises, stats


def _richardson(coarse: list[float], fine: list[float]) -> list[float]:
    """Second-order Richardson extrapolation of two levels a factor 2 apart."""
    return [f + (f - c) / 3.0 for c, f in zip(coarse, fine, strict=True)]


def reference(config: Path, kind: str) -> list[float]:
    """Converged rises: the default mesh and time grid refined twice each, extrapolated.

    With ``D`` the default run's rises, ``S`` the extrapolation of the two refined meshes
    (:data:`SPACE_LEVELS`, default time grid) and ``T`` that of the two refined time grids
    (:data:`TIME_LEVELS`, default mesh), the reference is ``S + T - D`` (the spatial and temporal
    errors add at these sizes). Prints each level's rises and the extrapolations on rank 0.
    """
    from mpi4py import MPI

    def show(label: str, values: list[float]) -> None:
        if MPI.COMM_WORLD.rank == 0:
            print(f"{label:<48}" + "".join(f"{v:>11.4f}" for v in values), flush=True)

    default, _ = film_rises(config, kind)
    show("default", default)
    series = {}
    for name, levels in (("space", SPACE_LEVELS), ("time", TIME_LEVELS)):
        runs = [film_rises(config, kind, level)[0] for level in levels]
        for level, values in zip(levels, runs, strict=True):
            show(" ".join(level), values)
        series[name] = _richardson(*runs)
        show(f"{name} extrapolated", series[name])
    ref = [s + t - d for s, t, d in zip(series["space"], series["time"], default, strict=True)]
    show("reference", ref)
    return ref


def accuracy(config: Path, kind: str, ref: list[float] | None) -> None:
    """Print the default resolution's counts, time, memory and error against ``ref``."""
    from mpi4py import MPI

    rises, stats = film_rises(config, kind)
    if MPI.COMM_WORLD.rank != 0:
        return
    print(
        f"accuracy {config.stem} {kind}, default resolution: {stats['dofs']} DOFs, "
        f"{stats['steps']} steps to {ACCURACY_TIMES_US[-1]:g} us, {stats['seconds']:.2f} s "
        f"(all {len(rises)} runs), peak {stats['peak_mib']:.0f} MiB",
        flush=True,
    )
    labels = [f"{t:g} us" for t in ACCURACY_TIMES_US] + ["steady"]
    print(f"{'':<14}" + "".join(f"{label:>11}" for label in labels))
    print(f"{'rise K':<14}" + "".join(f"{v:>11.4f}" for v in rises))
    if ref is None:
        print("(no stored reference for this config and kind: run with --reference)")
        return
    print(f"{'reference K':<14}" + "".join(f"{v:>11.4f}" for v in ref))
    errors = [100.0 * (v - r) / r for v, r in zip(rises, ref, strict=True)]
    print(f"{'error %':<14}" + "".join(f"{e:>+11.3f}" for e in errors), flush=True)


def _jobs(args: argparse.Namespace) -> list[tuple[str, list[str], float, bool]]:
    """(case, overrides, end time in us, resolved) of every run asked for."""
    base = list(args.set)
    jobs: list[tuple[str, list[str], float, bool]] = []
    for case in args.cases.split(","):
        if case == "accuracy":
            continue
        if case == "axisymmetric":
            jobs.append((case, base, args.end_us, False))
        elif case == "device":
            jobs.append((case, ["mesh.scale=1", *base], args.end_us, False))
        elif case == "resolved":
            extra = [f"mesh.resolved_pillars_um={args.resolved_pillars_um}", "mesh.scale=2"]
            jobs.append((case, [*extra, *base], args.short_us, True))
        elif case.startswith("refine-"):
            name = case.removeprefix("refine-")
            for scale in REFINE_SCALES[name]:
                jobs.append((name, [f"mesh.scale={scale:g}", *base], args.refine_us, False))
        else:
            raise SystemExit(f"unknown case {case!r}: one of {', '.join(CASES)}")
    return jobs


HEADER = (
    f"{'case':<13}{'ranks':>6}{'dofs':>10}{'steps':>7}{'solver':>9}{'its/step':>9}{'its max':>8}"
    f"{'pc':>4}{'mesh s':>8}{'setup s':>9}{'solve s':>9}{'us/dof-step':>12}{'peak MiB':>10}"
    f"{'sum MiB':>9}{'T_end K':>10}{'load':>6}  overrides"
)


def _row(r: dict[str, Any]) -> str:
    return (
        f"{r['case']:<13}{r['ranks']:>6}{r['dofs']:>10}{r['steps']:>7}{r['solver']:>9}"
        f"{r['its_per_step']:>9.1f}{r['its_max']:>8}{r['pc_builds']:>4}{r['mesh_s']:>8.2f}"
        f"{r['setup_s']:>9.2f}{r['solve_s']:>9.2f}{r['us_per_dof_step']:>12.3f}"
        f"{r['peak_mib_max']:>10.0f}{r['peak_mib_sum']:>9.0f}{r['end_film_max_k']:>10.4f}"
        f"{r['load']:>6.2f}  {' '.join(r['overrides'])}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--ranks", default="1,2", help="comma-separated MPI sizes")
    parser.add_argument("--end-us", type=float, default=100.0, help="span of the long runs (us)")
    parser.add_argument("--short-us", type=float, default=0.1, help="span of the resolved run")
    parser.add_argument("--refine-us", type=float, default=10.0, help="span of refinement runs")
    parser.add_argument(
        "--resolved-pillars-um", type=float, default=3.0, help="half-width of the resolved patch"
    )
    parser.add_argument("--set", action="append", default=[], help="section.key=value override")
    parser.add_argument("--config", type=Path, default=PAPER_CONFIG, help="accuracy: the device")
    parser.add_argument(
        "--accuracy-kind", default="axisymmetric", help="accuracy: heat.mesh (axisymmetric, device)"
    )
    parser.add_argument(
        "--reference", action="store_true", help="accuracy: recompute the converged rises"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument("--json", help="also write all rows to this JSON file")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)  # PETSc options (-heat_ksp_...) pass through

    if args.one:
        case, overrides, end_us, resolved = json.loads(args.one)
        row = run_one(case, overrides, end_us, resolved)
        from mpi4py import MPI

        if MPI.COMM_WORLD.rank == 0:
            print("ROW " + json.dumps(row), flush=True)
        return 0

    if args.reference:
        reference(args.config, args.accuracy_kind)
        return 0
    jobs = _jobs(args)
    rows = []
    if jobs:
        print(HEADER, flush=True)
    for ranks in (int(r) for r in args.ranks.split(",")) if jobs else ():
        for job in jobs:
            cmd = [str(MPIRUN), "-n", str(ranks), sys.executable, __file__]
            cmd += ["--one", json.dumps(job)]
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            try:
                done = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT, env=env
                )
            except subprocess.TimeoutExpired:
                print(f"{job[0]:<13}{ranks:>6}  (over {args.timeout:g} s)", flush=True)
                continue
            found = [ln for ln in done.stdout.splitlines() if ln.startswith("ROW ")]
            if done.returncode != 0 or not found:
                last = (done.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{job[0]:<13}{ranks:>6}  failed: {last[:100]}", flush=True)
                continue
            row = json.loads(found[-1][4:])
            rows.append(row)
            print(_row(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    if "accuracy" in args.cases.split(","):
        accuracy(
            args.config, args.accuracy_kind, REFERENCE.get((args.config.stem, args.accuracy_kind))
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
