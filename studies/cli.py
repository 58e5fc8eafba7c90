"""The ``cqdlaser`` command line (also ``python -m cqdlaser``).

Every command takes ``--out DIR``, ``--json`` (one JSON document on stdout and nothing else) and
``--debug``; config-taking commands take ``--set section.key=value`` (repeatable). Results and
tables go to stdout, progress and logs to stderr.

PETSc options go to PETSc when they start with a solver's options prefix
(:data:`PETSC_PREFIXES`: ``-heat_ksp_monitor``, ``-modes_stack_eps_tol 1e-9``), before or after a
``--`` separator; after ``--`` any PETSc option passes (``-- -log_view``). Any other unknown option
is an error that names the nearest valid one (exit code 2).

Failures are collective: an exception on any rank ends every rank, with one line on stderr
(``cqdlaser: error: ...``; the traceback too with ``--debug``) and a non-zero exit code: 2 for a
wrong configuration or command line, 130 for Ctrl-C, 1 otherwise. Under MPI, a rank that fails
waits briefly for the others to fail with it; a wrong configuration seen by every rank then ends
the run normally, anything else calls ``MPI_Abort`` so that no rank waits forever in a
collective call for the one that failed.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry.device import Device
from cqdlaser.geometry.errors import ConfigError, unknown_name
from cqdlaser.physics.bands import OPTIONS_PREFIX as BANDS_PREFIX
from cqdlaser.physics.heat import HeatProblem
from cqdlaser.physics.homogenisation import PREFIX as HOMOGENISATION_PREFIX
from cqdlaser.physics.modes import OPTIONS_PREFIX as MODES_PREFIX
from cqdlaser.studies import api
from cqdlaser.studies.output import (
    TABLE_LOGGER,
    provenance,
    setup_logging,
    to_json,
    write_json,
)

logger = logging.getLogger("cqdlaser")
table = logging.getLogger(TABLE_LOGGER)
"""Results and tables: stdout, rank 0, silent under ``--json`` (progress and logs: ``logger``)."""

Command = Callable[[argparse.Namespace], dict[str, Any]]


def _load(args: argparse.Namespace) -> Device:
    return api.load_device(args.config, args.set or [])


def cmd_doctor(args: argparse.Namespace) -> dict[str, Any]:
    """Versions of the stack and tiny solves that prove it works."""
    from cqdlaser.studies.doctor import run_doctor

    result = run_doctor(MPI.COMM_WORLD)
    for name, value in result["versions"].items():
        table.info("%-14s %s", name, value)
    table.info("%-14s %d", "mpi size", result["mpi_size"])
    for name, check in result["checks"].items():
        table.info(
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
    """The materials table with sources (indices at a config's wavelengths, or 643 and 442 nm)."""
    from cqdlaser.physics.materials import materials_table

    rows = materials_table(_load(args) if args.config is not None else None)
    table.info(
        "%-14s %-14s %8s %7s %-16s %-16s %9s  %s",
        "material",
        "k (W/m/K)",
        "rho",
        "c_p",
        f"n ({rows[0]['wavelength_nm']:g} nm)",
        f"n ({rows[0]['pump_wavelength_nm']:g} nm)",
        "dn/dT",
        "dispersion (valid range, nm)",
    )
    for r in rows:
        k = r["k_w_mk"]
        ks = f"{k:g}" if not isinstance(k, list) else f"{k[0]:g}/{k[1]:g} (a/c)"
        lo, hi = r["range_nm"]
        table.info(
            "%-14s %-14s %8g %7g %-16s %-16s %9.2g  %s, %s",
            r["name"],
            ks,
            r["density_kg_m3"],
            r["specific_heat_j_kgk"],
            _nk(r["n"]),
            _nk(r["n_pump"]),
            r["dn_dt_per_k"],
            r["dispersion"],
            "any wavelength" if hi is None else f"{lo:g}-{hi:g}",
        )
    table.info("\nsources:")
    for r in rows:
        for prop, src in r["sources"].items():
            table.info("  %s.%s: %s", r["name"], prop, src)
    if args.out is not None:
        write_json(Path(args.out) / "materials.json", {"materials": rows, **provenance()})
    return {"materials": rows}


def _nk(v: list[float] | None) -> str:
    if v is None:
        return "out of range"
    return f"{v[0]:.4g}" if v[1] == 0 else f"{v[0]:.4g}+{v[1]:.3g}i"


def cmd_mesh(args: argparse.Namespace) -> dict[str, Any]:
    """Build, summarise and write one mesh kind."""
    device = _load(args)
    out = Path(args.out or f"results/mesh-{args.kind}")
    r = api.mesh(device, args.kind, resolved=args.resolved, out=out)
    unit = {1: "m", 2: "m^2", 3: "m^3"}[r.mesh_data.mesh.topology.dim]
    table.info(
        "%s mesh: %d cells, %d vertices, min quality %.3f, %.2f s on %d rank(s)",
        r.kind,
        r.cells,
        r.vertices,
        r.min_quality,
        r.build_s,
        r.mpi_size,
    )
    for name, value in r.regions.items():
        table.info("  %-14s %.6e %s", name, value, unit)
    table.info("boundaries: %s", ", ".join(r.boundaries))
    logger.info("written to %s (mesh.xdmf, mesh.msh, markers.json, info.json)", out)
    return r.to_dict()


def cmd_modes(args: argparse.Namespace) -> dict[str, Any]:
    """TE and TM modes of the layer stack, guided and leaky (exact), with the FEM check."""
    device = _load(args)
    r = api.modes(device, polarisations=args.polarisation, out=args.out)
    table.info(
        "%-4s %5s %-6s %9s %10s %9s %8s %10s %s",
        "pol",
        "order",
        "kind",
        "n_eff",
        "Im n_eff",
        "loss/cm",
        "n_g",
        "Gamma_gain",
        "lambda_Bragg (nm)",
    )
    for m in r.modes:
        bragg = "-" if m.bragg_wavelength_nm is None else f"{m.bragg_wavelength_nm:.2f}"
        group = "-" if m.group_index is None else f"{m.group_index:.4f}"
        table.info(
            "%-4s %5d %-6s %9.6f %10.3e %9.4g %8s %10.4f %s",
            m.polarisation,
            m.order,
            m.kind,
            m.n_eff,
            m.n_eff_imag,
            m.loss_per_cm,
            group,
            m.gain_confinement,
            bragg,
        )
    if not r.modes:
        table.info("no guided or leaky mode at %.1f nm", r.wavelength_nm)
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
    table.info(
        "%s mesh, %d dofs, heat fraction %.4g (%s), absorbed %.3g W",
        r.mesh,
        r.dofs,
        r.heat_fraction,
        r.heat_fraction_origin,
        r.absorbed_power_w,
    )
    if r.steady:
        table.info(
            "steady film max %.2f K (rise %.2f K; %.4f K per kW/cm2)",
            r.steady_film_max_temperature_k,
            r.film_max_rise_k,
            r.thermal_resistance_k_cm2_per_kw,
        )
    else:
        for target in (70e-9, 1e-6, 2e-6, device.heat.end_time):
            if target <= r.times_s[-1]:
                i = int(np.argmin(np.abs(r.times_s - target)))
                table.info(
                    "t = %8.3g s: film max %.2f K", r.times_s[i], r.film_max_temperature_k[i]
                )
        table.info("%d steps in %.1f s", r.steps, r.wall_time_s)
    logger.info("written to %s", out)
    return r.to_dict()


def cmd_lasing(args: argparse.Namespace) -> dict[str, Any]:
    """The laser under its pump: lasing duration, thermal resistance, CW feasibility."""
    device = _load(args)
    out = Path(args.out or "results/lasing")
    r = api.lasing(device, out=out)
    d = r.lasing_duration_s
    table.info(
        "pump %.1f kW/cm2, threshold %.1f kW/cm2 at the sink temperature, heat fraction %.4g (%s)",
        r.pump_intensity_kw_cm2,
        r.threshold_at_sink_kw_cm2,
        r.heat_fraction,
        r.heat_fraction_origin,
    )
    table.info(
        "lasing mode (%s): %s: threshold %.4g x the reference %.1f kW/cm2",
        r.lasing_mode["model"],
        _lasing_mode_text(r.lasing_mode),
        r.threshold_factor,
        r.reference_threshold_kw_cm2,
    )
    table.info("lasing duration: %s", "never reaches threshold" if d is None else f"{d:.4g} s")
    table.info(
        "thermal resistance %.4f K per kW/cm2 (steady film max %.1f K)",
        r.thermal_resistance_k_cm2_per_kw,
        r.steady_film_max_temperature_k,
    )
    if r.cw_possible:
        lo, hi = r.cw_pump_range_kw_cm2
        table.info(
            "CW possible between %.1f and %.1f kW/cm2 (margin %.2f, %s)",
            lo,
            hi,
            r.cw_margin,
            r.cw_method,
        )
    else:
        table.info("CW impossible (margin %.3f, %s)", r.cw_margin, r.cw_method)
    return r.to_dict()


def _lasing_mode_text(mode: Mapping[str, Any]) -> str:
    """Which mode lases, in words: a stack mode with its n_eff, a band edge with its wavelength,
    family, class and Q; then its gain confinement and loss."""
    if mode["kind"] == "none":
        return "none (no guided mode, no laser)"
    if mode["model"] == "stack":
        n_eff = f"n_eff {mode['n_eff']:.5f}{mode['n_eff_imag']:+.2e}i"
        which = f"{mode['polarisation']}0 ({mode['kind']}), {n_eff}"
    else:
        q = _maybe(mode["q_factor"], "%.4g", "unbounded")
        which = (
            f"{mode['wavelength_nm']:.3f} nm {mode['family']} {mode['symmetry']} band edge, Q {q}"
        )
    gamma, loss = mode["gain_confinement"], mode["loss_per_cm"]
    return f"{which}, gain confinement {gamma:.4f}, loss {loss:.4g} /cm"


def cmd_bands(args: argparse.Namespace) -> dict[str, Any]:
    """DFB band-edge modes at the Gamma point, nearest the Bragg estimate."""
    device = _load(args)
    out = Path(args.out or "results/bands")
    r = api.bands(
        device, kind=args.kind, polarisation=args.polarisation, n_bands=args.bands, out=out
    )
    table.info(
        "%s, %s: Bragg estimate %.2f nm (measured line of the paper device: 643 nm)",
        r.kind,
        r.polarisation,
        r.bragg_estimate_nm,
    )
    for e in r.band_edges:
        table.info(
            "  %9.3f nm  %-7s %-5s x%d %-5s Q %-9s gain confinement %.3f  threshold gain %s  "
            "%+.4f nm/K",
            e.wavelength_nm,
            e.family,
            e.symmetry,
            e.degeneracy,
            "dark" if e.dark else "",
            _maybe(e.q_factor, "%.4g", "closed" if r.kind == "cell" else "unbounded"),
            e.gain_confinement,
            _maybe(e.threshold_gain_per_cm, "%.4g/cm", "-"),
            e.thermal_shift_nm_per_k,
        )
    m = r.lasing_mode
    if m is None:
        table.info("lasing mode: none (the closed scalar cell has no Q)")
    else:
        table.info(
            "lasing mode: %.3f nm, %s %s, threshold gain %.4g/cm (x%.3g the reference laser's)",
            m["wavelength_nm"],
            m["family"],
            m["symmetry"],
            m["threshold_gain_per_cm"],
            m["threshold_factor"],
        )
    return r.to_dict()


def _maybe(value: float | None, form: str, missing: str) -> str:
    """``form % value``, or ``missing`` for None."""
    return missing if value is None else form % value


def cmd_list(args: argparse.Namespace) -> dict[str, Any]:
    """The studies that ``cqdlaser run`` knows."""
    known = api.list_studies()
    for name, doc in known.items():
        table.info("%-16s %s", name, doc)
    return {"studies": known}


def cmd_run(args: argparse.Namespace) -> dict[str, Any]:
    """Run studies by name, the design studies on a device of your own (CONFIG, --set).

    ``cqdlaser run STUDY... [CONFIG] [--set KEY=VALUE]...``; ``paper``: the paper's figures and
    numbers, and its validation report."""
    from cqdlaser.studies.registry import takes_device
    from cqdlaser.studies.study_device import paper_laser_path

    names, configs = _studies_and_config(args.study)
    if not names:
        raise ConfigError("study", None, f"name a study to run on {configs[0]} (cqdlaser list)")
    known = api.list_studies()
    for name in names:
        if name not in known:
            raise unknown_name("study", name, list(known))
    if len(configs) > 1:
        raise ConfigError("config", configs, "one CONFIG per run (it applies to every study)")
    device, source = None, None
    if configs or args.set:
        paper_only = [n for n in names if not takes_device(n)]
        if paper_only:
            takes = ", ".join(n for n in known if takes_device(n))
            raise ConfigError(
                "study",
                paper_only[0],
                f"runs on the paper's devices and takes no CONFIG or --set (studies that take "
                f"a device: {takes})",
            )
        config = configs[0] if configs else None
        device = api.load_device(config or paper_laser_path(), args.set or [])
        source = config or "paper default"
        if args.set:
            source += " with " + ", ".join(args.set)
    out = Path(args.out or "results")
    t0 = time.perf_counter()
    results = {}
    for name in names:
        folder = out if name == "paper" else out / name
        study = api.run_study(
            name,
            device,
            quick=args.quick,
            out=folder,
            figures=not args.no_figures,
            device_source=source,
        )
        results[name] = study.to_dict()
    logger.info("studies written under %s (%.1f s)", out, time.perf_counter() - t0)
    return results


def _studies_and_config(tokens: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``run``'s words into study names and config paths: a word ending in ``.toml`` or
    naming an existing file is a config."""
    configs = [t for t in tokens if t.endswith(".toml") or Path(t).is_file()]
    return [t for t in tokens if t not in configs], configs


HEAT_PREFIX: str = inspect.signature(HeatProblem).parameters["petsc_options_prefix"].default
"""The heat solvers' options prefix (``HeatProblem``'s default; Newton's is ``heat_snes_``)."""

PETSC_PREFIXES: dict[str, str] = {
    HEAT_PREFIX: f"the heat solver, -{HEAT_PREFIX}snes_... its Newton solver",
    MODES_PREFIX: "the guided modes of the layer stack (SLEPc)",
    BANDS_PREFIX: "the DFB band edges (SLEPc)",
    HOMOGENISATION_PREFIX: "the homogenisation cell problems",
}
"""The solvers' PETSc options prefixes, each with what it configures: an option that starts with
one of them (``-heat_ksp_monitor``) goes to PETSc."""

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
"""Exit codes: a failure, a wrong configuration or command line, Ctrl-C."""

AGREE_S = 1.0
"""How long (s) a failing rank waits for the other ranks to fail with it (a collective error)
before it aborts the run alone."""

ABORT_DELAY_S = 0.25
"""Pause (s) between a rank's error report and its ``MPI_Abort``."""

_NUMBER = re.compile(r"-(\d|\.\d|inf\b|nan\b)", re.IGNORECASE)


def _petsc_epilog() -> str:
    prefixes = "; ".join(f"-{p}... {what}" for p, what in PETSC_PREFIXES.items())
    return (
        f"PETSc options, by prefix: {prefixes}. They go to PETSc after the command's own "
        "arguments (cqdlaser heat CONFIG --steady -heat_ksp_monitor) or after a '--', behind "
        "which any PETSc option passes (-- -log_view). Any other unknown option is an error."
    )


class _Parser(argparse.ArgumentParser):
    """argparse without abbreviations, that knows its option strings and its commands, and
    prints usage and errors on rank 0 only (the other ranks would repeat them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.options: list[str] = []
        self.commands: dict[str, _Parser] = {}
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.options.extend(action.option_strings)
        return action

    def _print_message(self, message: str, file: Any = None) -> None:
        if MPI.COMM_WORLD.rank == 0:
            super()._print_message(message, file)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    epilog = _petsc_epilog()
    parser = _Parser(
        prog="cqdlaser",
        formatter_class=fmt,
        description="Heat and optical modes of colloidal-quantum-dot DFB lasers (FEM, MPI).",
        epilog=epilog,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command, *, config: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=(func.__doc__ or "").strip().splitlines()[0],
            formatter_class=fmt,
            epilog=epilog,
        )
        parser.commands[name] = p
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
        p.add_argument("--debug", action="store_true", help="on an error, print the traceback too")
        p.set_defaults(func=func)
        return p

    add("doctor", cmd_doctor)
    p = add("materials", cmd_materials)
    p.add_argument(
        "config",
        nargs="?",
        default=None,
        help="device/run TOML file: indices at its wavelengths, with its [materials]",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    p = add("mesh", cmd_mesh, config=True)
    p.add_argument(
        "--kind",
        default="axisymmetric",
        choices=["stack", "cross-section", "cell", "quarter-cell", "device", "axisymmetric"],
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
    p.add_argument(
        "--kind",
        default="cross-section",
        choices=["cross-section", "cell", "vector"],
        help="cross-section: 2D, open, TE or TM (seconds); cell: 3D scalar, closed box, no Q; "
        "vector: 3D full-vector quarter cell, open, both families and every symmetry class "
        "(minutes)",
    )
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
    p.add_argument(
        "study",
        nargs="+",
        metavar="STUDY",
        help="study names (see cqdlaser list), and for the design studies a device CONFIG: "
        "a TOML file (a word ending in .toml or an existing file; default: the paper's laser)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a key of the device (CONFIG, or the paper's laser), e.g. "
        "optics.wavelength_nm=650 (repeatable; design studies only)",
    )
    p.add_argument("--quick", action="store_true", help="coarse meshes and short sweeps")
    p.add_argument(
        "--no-figures", action="store_true", help="write the tables only (no PNG/PDF figures)"
    )
    return parser


def _is_option(token: str) -> bool:
    return token.startswith("-") and token != "-" and not _NUMBER.match(token)


def _is_petsc(token: str) -> bool:
    return (
        token.startswith("-")
        and not token.startswith("--")
        and token[1:].startswith(tuple(PETSC_PREFIXES))
    )


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.Namespace, list[tuple[str, str | None]]]:
    """The command's arguments and the PETSc options (name without the dash, value or None).

    PETSc options are split off before argparse sees the command line (argparse would read
    ``-heat_ksp_monitor`` as ``-h eat_ksp_monitor``): an option under a solver's prefix, or any
    option after ``--``, with the next word as its value unless that is an option itself. An
    unknown option is an error naming the nearest valid one; stray words are an error too
    (``SystemExit(2)``, with the message on rank 0).
    """
    ours: list[str] = []
    petsc: list[tuple[str, str | None]] = []
    stray: list[str] = []
    tokens = list(argv)
    after_separator = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token == "--" and not after_separator:
            after_separator = True
        elif after_separator or _is_petsc(token):
            if not _is_option(token) or token.startswith("--"):
                stray.append(token)
                continue
            value = None
            if i < len(tokens) and tokens[i] != "--" and not _is_option(tokens[i]):
                value = tokens[i]
                i += 1
            petsc.append((token[1:], value))
        else:
            ours.append(token)

    names = getattr(parser, "commands", {})
    command = next((names[t] for t in ours if t in names), None)
    target = command if command is not None else parser
    known = set(getattr(parser, "options", [])) | set(getattr(target, "options", []))
    for token in ours:
        if _is_option(token) and token.split("=", 1)[0] not in known:
            target.error(_unknown_option(token, sorted(known)))
    args, extra = parser.parse_known_args(ours)
    if extra or stray:
        target.error(f"unrecognised arguments: {' '.join(extra + stray)}")
    return args, petsc


def _unknown_option(token: str, known: Sequence[str]) -> str:
    """The error for an unknown option: the nearest valid one, and how PETSc options look."""
    name = token.split("=", 1)[0]
    message = f"unrecognised option {name!r}"
    bare = name.lstrip("-")
    if bare.startswith(tuple(PETSC_PREFIXES)):
        return f"{message}: PETSc options take one dash (-{bare})"
    near = difflib.get_close_matches(name, [k for k in known if k.startswith("--")], n=1)
    if near:
        message += f"; did you mean {near[0]!r}?"
    if not name.startswith("--"):
        prefixes = ", ".join(f"-{p}" for p in PETSC_PREFIXES)
        message += f" (PETSc options start with {prefixes}, or follow '--')"
    return message


def _set_petsc_options(options: Sequence[tuple[str, str | None]]) -> None:
    if options:
        from petsc4py import PETSc

        database = PETSc.Options()
        for name, value in options:
            database.setValue(name, value)


@contextmanager
def _result_stream(json_only: bool, *, to_exit: bool) -> Iterator[TextIO]:
    """The stream results go to: ``sys.stdout``, or, for ``--json`` in a process whose stdout is
    file descriptor 1, a copy of that descriptor while fd 1 itself points at stderr.

    PETSc, SLEPc and Gmsh print to fd 1 from C (monitors, ``-ksp_view``, and at PETSc's
    finalisation, after ``main`` has returned, the "unused option" warnings), so the JSON
    document on stdout stays the only thing there. With ``to_exit`` (the program itself) fd 1
    stays on stderr until the process ends; otherwise (``main`` called from Python) it is restored.
    """
    try:
        redirect = json_only and sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):  # a captured or replaced sys.stdout
        redirect = False
    if not redirect:
        yield sys.stdout
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    stream = os.fdopen(saved, "w", closefd=to_exit)
    try:
        yield stream
    finally:
        stream.flush()
        if not to_exit:
            os.dup2(saved, 1)
            os.close(saved)
        stream.close()


def _describe(err: BaseException, debug: bool) -> str:
    """One line for an error: a configuration error as it is, anything else with its type."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    text = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
    if isinstance(err, ConfigError):
        return text
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if debug else f"{text} (--debug shows the traceback)"


def _exit_code(err: BaseException) -> int:
    if isinstance(err, ConfigError):
        return EXIT_USAGE
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_ERROR


def _all_failed(agree: MPI.Comm, code: int) -> tuple[int, int] | None:
    """Wait up to :data:`AGREE_S` for every rank to fail; their (lowest, highest) exit code, or
    None when some rank is still working (or stuck in a collective call for this one)."""
    codes = np.array([code, -code], dtype=np.int64)
    extremes = np.empty_like(codes)
    request = agree.Iallreduce(codes, extremes, op=MPI.MAX)
    deadline = time.monotonic() + AGREE_S
    try:
        while not request.Test():
            if time.monotonic() > deadline:
                return None
            time.sleep(0.005)
    except KeyboardInterrupt:  # Ctrl-C again: stop waiting
        return None
    return int(-extremes[1]), int(extremes[0])


def _fail(
    err: BaseException, comm: MPI.Comm, agree: MPI.Comm | None, *, debug: bool, program: bool
) -> int:
    """End this rank after ``err``: one line on stderr (after the traceback with ``debug``), and
    the exit code, or ``MPI_Abort`` of the run.

    Under MPI the failing rank first waits for the others (:func:`_all_failed`): when every rank
    failed, rank 0 alone reports, and every rank returns the code if the error is a wrong
    configuration or ``main`` was called from Python (not ``program``); else the run is aborted
    (a program's ranks stopped at different points might wait for each other at exit). When
    some rank did not fail, this rank reports with its number and aborts the run.
    """
    code = _exit_code(err)
    codes = None if agree is None else _all_failed(agree, code)
    line = f"cqdlaser: error: {_describe(err, debug)}"
    if agree is not None and codes is None:
        line += f" (rank {comm.rank} of {comm.size})"
    if agree is None or codes is None or comm.rank == 0:
        if debug and not isinstance(err, KeyboardInterrupt):
            traceback.print_exception(err, file=sys.stderr)
        print(line, file=sys.stderr, flush=True)
    if agree is None:
        return code
    if codes is not None and (not program or codes == (EXIT_USAGE, EXIT_USAGE)):
        return code  # every rank failed (in a program: read the same wrong configuration)
    if codes is not None and comm.rank != 0:
        time.sleep(10.0)  # rank 0 reports and aborts the run, this rank with it
    # mpirun (MPICH's hydra) may drop what an aborting rank wrote last unless it had a moment
    # to forward it
    time.sleep(ABORT_DELAY_S)
    comm.Abort(code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0, or 1 when a check failed).

    On an error, every rank ends: exit code 2 for a wrong configuration or command line, 130 for
    Ctrl-C, 1 otherwise (see the module's docstring).

    Args:
        argv: The arguments; None reads ``sys.argv`` as the program does (and then, under
            ``--json``, what PETSc prints until the process exits goes to stderr).
    """
    comm = MPI.COMM_WORLD
    agree = comm.Dup() if comm.size > 1 else None
    args, petsc = parse_args(build_parser(), sys.argv[1:] if argv is None else argv)
    try:
        with _result_stream(args.json, to_exit=argv is None) as stdout:
            setup_logging(comm, quiet=args.json, stdout=stdout)
            _set_petsc_options(petsc)
            result = args.func(args)
            if args.json and comm.rank == 0:
                stdout.write(to_json(result) + "\n")
                stdout.flush()
    except (Exception, KeyboardInterrupt) as err:
        return _fail(err, comm, agree, debug=args.debug, program=argv is None)
    if agree is not None:
        agree.Free()
    return 0 if result.get("ok", True) else EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
