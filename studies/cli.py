"""The ``cqdlaser`` command line (also ``python -m cqdlaser``).

Every command takes ``--out DIR`` and ``--json`` (one JSON document on stdout and nothing else);
config-taking commands take ``--set section.key=value`` (repeatable). Arguments the parser does
not know and that start with ``-`` go to the PETSc options database, so ``-heat_ksp_monitor``
works. A wrong configuration prints one line naming the key, the value and the allowed range,
and exits with code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry.device import Device
from cqdlaser.geometry.errors import ConfigError, unknown_name
from cqdlaser.studies import api
from cqdlaser.studies.output import provenance, setup_logging, to_json, write_json

logger = logging.getLogger("cqdlaser")

Command = Callable[[argparse.Namespace], dict[str, Any]]


def _load(args: argparse.Namespace) -> Device:
    return api.load_device(args.config, args.set or [])


def cmd_doctor(args: argparse.Namespace) -> dict[str, Any]:
    """Versions of the stack and tiny solves that prove it works."""
    from cqdlaser.studies.doctor import run_doctor

    result = run_doctor(MPI.COMM_WORLD)
    for name, value in result["versions"].items():
        logger.info("%-14s %s", name, value)
    logger.info("%-14s %d", "mpi size", result["mpi_size"])
    for name, check in result["checks"].items():
        logger.info(
            "%-4s %-18s %s (%.2f s)",
            "ok" if check["ok"] else "FAIL",
            name,
            check["message"],
            check["seconds"],
        )
    if not result["ok"]:
        logger.error("doctor: some checks failed (see above)")
    return result


def cmd_materials(args: argparse.Namespace) -> dict[str, Any]:
    """The materials table with sources."""
    from cqdlaser.physics.materials import materials_table

    rows = materials_table()
    logger.info(
        "%-14s %-14s %8s %7s %-16s %-16s %9s",
        "material",
        "k (W/m/K)",
        "rho",
        "c_p",
        "n (643 nm)",
        "n (442 nm)",
        "dn/dT",
    )
    for r in rows:
        k = r["k_w_mk"]
        ks = f"{k:g}" if not isinstance(k, list) else f"{k[0]:g}/{k[1]:g} (a/c)"
        logger.info(
            "%-14s %-14s %8g %7g %-16s %-16s %9.2g",
            r["name"],
            ks,
            r["density_kg_m3"],
            r["specific_heat_j_kgk"],
            _nk(r["n_643"]),
            _nk(r["n_442"]),
            r["dn_dt_per_k"],
        )
    logger.info("\nsources:")
    for r in rows:
        for prop, src in r["sources"].items():
            logger.info("  %s.%s: %s", r["name"], prop, src)
    if args.out is not None:
        write_json(Path(args.out) / "materials.json", {"materials": rows, **provenance()})
    return {"materials": rows}


def _nk(v: list[float]) -> str:
    return f"{v[0]:.4g}" if v[1] == 0 else f"{v[0]:.4g}+{v[1]:.3g}i"


def cmd_mesh(args: argparse.Namespace) -> dict[str, Any]:
    """Build, summarise and write one mesh kind."""
    device = _load(args)
    out = Path(args.out or f"results/mesh-{args.kind}")
    r = api.mesh(device, args.kind, resolved=args.resolved, out=out)
    unit = {1: "m", 2: "m^2", 3: "m^3"}[r.mesh_data.mesh.topology.dim]
    logger.info(
        "%s mesh: %d cells, %d vertices, min quality %.3f, %.2f s on %d rank(s)",
        r.kind,
        r.cells,
        r.vertices,
        r.min_quality,
        r.build_s,
        r.mpi_size,
    )
    for name, value in r.regions.items():
        logger.info("  %-14s %.6e %s", name, value, unit)
    logger.info("boundaries: %s", ", ".join(r.boundaries))
    logger.info("written to %s (mesh.xdmf, mesh.msh, markers.json, info.json)", out)
    return r.to_dict()


def cmd_modes(args: argparse.Namespace) -> dict[str, Any]:
    """Guided TE and TM modes of the layer stack."""
    device = _load(args)
    r = api.modes(device, polarisations=args.polarisation, out=args.out)
    logger.info(
        "%-4s %5s %9s %8s %9s %10s %s",
        "pol",
        "order",
        "n_eff",
        "n_g",
        "loss/cm",
        "Gamma_film",
        "lambda_Bragg (nm)",
    )
    for m in r.modes:
        bragg = "-" if m.bragg_wavelength_nm is None else f"{m.bragg_wavelength_nm:.2f}"
        logger.info(
            "%-4s %5d %9.6f %8.4f %9.3g %10.4f %s",
            m.polarisation,
            m.order,
            m.n_eff,
            m.group_index,
            m.loss_per_cm,
            m.gain_confinement,
            bragg,
        )
    if not r.modes:
        logger.info("no guided mode at %.1f nm", r.wavelength_nm)
    return r.to_dict()


def cmd_heat(args: argparse.Namespace) -> dict[str, Any]:
    """Film temperature vs time under the pump (or the CW steady state)."""
    device = _load(args)
    out = Path(args.out or args.resume or "results/heat")
    snapshots = None if args.snapshot_us is None else [t * 1e-6 for t in args.snapshot_us]
    r = api.heat(
        device,
        steady=args.steady,
        out=out,
        snapshot_times_s=snapshots,
        progress=not args.json,
        resume=args.resume,
        force=args.force,
        checkpoint_every_steps=args.checkpoint_every,
        checkpoint_every_minutes=args.checkpoint_minutes,
    )
    logger.info(
        "%s mesh, %d dofs, heat fraction %.3f, absorbed %.3g W",
        r.mesh,
        r.dofs,
        r.heat_fraction,
        r.absorbed_power_w,
    )
    if r.steady:
        logger.info(
            "steady film max %.2f K (rise %.2f K; %.4f K per kW/cm2)",
            r.steady_film_max_temperature_k,
            r.film_max_rise_k,
            r.thermal_resistance_k_cm2_per_kw,
        )
    else:
        for target in (70e-9, 1e-6, 2e-6, device.heat.end_time):
            if target <= r.times_s[-1]:
                i = int(np.argmin(np.abs(r.times_s - target)))
                logger.info(
                    "t = %8.3g s: film max %.2f K", r.times_s[i], r.film_max_temperature_k[i]
                )
        logger.info("%d steps in %.1f s", r.steps, r.wall_time_s)
    logger.info("written to %s", out)
    return r.to_dict()


def cmd_lasing(args: argparse.Namespace) -> dict[str, Any]:
    """The laser under its pump: lasing duration, thermal resistance, CW feasibility."""
    device = _load(args)
    out = Path(args.out or "results/lasing")
    r = api.lasing(device, out=out)
    d = r.lasing_duration_s
    logger.info(
        "pump %.1f kW/cm2, threshold %.1f kW/cm2 at the sink temperature",
        r.pump_intensity_kw_cm2,
        r.threshold_at_sink_kw_cm2,
    )
    logger.info("lasing duration: %s", "never reaches threshold" if d is None else f"{d:.4g} s")
    logger.info(
        "thermal resistance %.4f K per kW/cm2 (steady film max %.1f K)",
        r.thermal_resistance_k_cm2_per_kw,
        r.steady_film_max_temperature_k,
    )
    if r.cw_possible:
        lo, hi = r.cw_pump_range_kw_cm2
        logger.info(
            "CW possible between %.1f and %.1f kW/cm2 (margin %.2f, %s)",
            lo,
            hi,
            r.cw_margin,
            r.cw_method,
        )
    else:
        logger.info("CW impossible (margin %.3f, %s)", r.cw_margin, r.cw_method)
    return r.to_dict()


def cmd_bands(args: argparse.Namespace) -> dict[str, Any]:
    """DFB band-edge modes at the Gamma point, nearest the Bragg estimate."""
    device = _load(args)
    out = Path(args.out or "results/bands")
    r = api.bands(
        device, kind=args.kind, polarisation=args.polarisation, n_bands=args.bands, out=out
    )
    logger.info(
        "%s, %s: Bragg estimate %.2f nm (measured line of the paper device: 643 nm)",
        r.kind,
        r.polarisation,
        r.bragg_estimate_nm,
    )
    for e in r.band_edges:
        logger.info(
            "  %9.3f nm  %-4s x%d  gain confinement %.3f  radiation %.2g  %+.4f nm/K",
            e.wavelength_nm,
            e.symmetry,
            e.degeneracy,
            e.gain_confinement,
            e.radiation_fraction,
            e.thermal_shift_nm_per_k,
        )
    return r.to_dict()


def cmd_list(args: argparse.Namespace) -> dict[str, Any]:
    """The studies that ``cqdlaser run`` knows."""
    known = api.list_studies()
    for name, doc in known.items():
        logger.info("%-16s %s", name, doc)
    return {"studies": known}


def cmd_run(args: argparse.Namespace) -> dict[str, Any]:
    """Run studies by name (``paper``: the paper's figures and numbers)."""
    known = api.list_studies()
    for name in args.study:
        if name not in known:
            raise unknown_name("study", name, list(known))
    out = Path(args.out or "results")
    t0 = time.perf_counter()
    results = {}
    for name in args.study:
        folder = out if name == "paper" else out / name
        study = api.run_study(name, quick=args.quick, out=folder, figures=not args.no_figures)
        results[name] = study.to_dict()
    logger.info("studies written under %s (%.1f s)", out, time.perf_counter() - t0)
    return results


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="cqdlaser",
        formatter_class=fmt,
        description="Heat and optical modes of colloidal-quantum-dot DFB lasers (FEM, MPI).",
        epilog="Unknown options starting with '-' are passed to PETSc (e.g. -heat_ksp_monitor).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command, *, config: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=(func.__doc__ or "").strip().splitlines()[0], formatter_class=fmt
        )
        if config:
            p.add_argument("config", help="device/run TOML file")
            p.add_argument(
                "--set",
                action="append",
                metavar="KEY=VALUE",
                help="override a config key, e.g. film.thickness_nm=60 (repeatable)",
            )
        p.add_argument("--out", default=None, help="output directory")
        p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        p.set_defaults(func=func)
        return p

    add("doctor", cmd_doctor)
    add("materials", cmd_materials)
    p = add("mesh", cmd_mesh, config=True)
    p.add_argument(
        "--kind",
        default="axisymmetric",
        choices=["stack", "cross-section", "cell", "device", "axisymmetric"],
    )
    p.add_argument(
        "--resolved", action="store_true", help="device kind: resolve the pillars under the spot"
    )
    p = add("heat", cmd_heat, config=True)
    p.add_argument("--steady", action="store_true", help="solve the CW steady state")
    p.add_argument(
        "--snapshot-us",
        type=float,
        nargs="+",
        default=None,
        help="times (us) at which to write the temperature field",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="continue the killed transient whose output folder is DIR from its last "
        "checkpoint (same config, same number of MPI ranks; --out defaults to DIR)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        default=50,
        help="steps between checkpoints of a transient, in OUT/checkpoints (0: none)",
    )
    p.add_argument(
        "--checkpoint-minutes",
        type=float,
        metavar="M",
        default=None,
        help="also write a checkpoint once M minutes of wall time have passed since the last",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the result of another kind of heat run (or an unfinished run's "
        "checkpoints) in the output folder instead of refusing",
    )
    add("lasing", cmd_lasing, config=True)
    p = add("bands", cmd_bands, config=True)
    p.add_argument("--kind", default="cross-section", choices=["cross-section", "cell"])
    p.add_argument(
        "--polarisation",
        default=None,
        choices=["TE", "TM"],
        help="default: optics.polarisation (TM needs the 2D cross-section)",
    )
    p.add_argument("--bands", type=int, default=4, help="number of band edges")
    p = add("modes", cmd_modes, config=True)
    p.add_argument("--polarisation", nargs="+", default=["TE", "TM"], choices=["TE", "TM"])
    add("list", cmd_list)
    p = add("run", cmd_run)
    p.add_argument("study", nargs="+", help="study names (see cqdlaser list)")
    p.add_argument("--quick", action="store_true", help="coarse meshes and short sweeps")
    p.add_argument(
        "--no-figures", action="store_true", help="write the tables only (no PNG/PDF figures)"
    )
    return parser


def _petsc_options(extra: Sequence[str]) -> None:
    """Pass unknown ``-option [value]`` pairs to PETSc; anything else is an error."""
    bad = [
        a
        for i, a in enumerate(extra)
        if not a.startswith("-") and (i == 0 or not extra[i - 1].startswith("-"))
    ]
    if bad:
        raise SystemExit(f"cqdlaser: error: unrecognised arguments: {' '.join(bad)}")
    if extra:
        from petsc4py import PETSc

        PETSc.Options().insertString(" ".join(extra))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for a wrong configuration)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    comm = MPI.COMM_WORLD
    setup_logging(comm, quiet=args.json)
    _petsc_options(extra)
    try:
        result = args.func(args)
    except ConfigError as err:
        if comm.rank == 0:
            print(f"cqdlaser: error: {err}", file=sys.stderr)
        return 2
    if args.json and comm.rank == 0:
        sys.stdout.write(to_json(result) + "\n")
        sys.stdout.flush()
    return 0 if result.get("ok", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
