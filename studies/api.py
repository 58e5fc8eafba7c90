"""The public API: load a device, solve its heat and optical problems, run studies.

Each function composes device -> mesh -> materials -> solver the way the ``cqdlaser`` command of
the same name does (the CLI calls these functions and nothing else), and returns a frozen, typed
result (:mod:`cqdlaser.studies.results`) carrying its inputs and provenance. With ``out`` the
result's files are written there (JSON, CSV, fields), exactly as the command writes them.

Every function is collective over ``comm`` (default ``MPI.COMM_WORLD``): call it on every rank.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry.config import apply_overrides, device_from_dict
from cqdlaser.geometry.config import load_device as _load_toml
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.errors import ConfigError, unknown_name
from cqdlaser.studies.output import provenance, staged
from cqdlaser.studies.results import (
    BandEdgeResult,
    BandsResult,
    HeatResult,
    LasingResult,
    MeshResult,
    ModesResult,
    StackModeResult,
    StudyResult,
)

__all__ = [
    "bands",
    "heat",
    "lasing",
    "list_studies",
    "load_device",
    "mesh",
    "modes",
    "run_study",
]

MESH_KINDS = ("stack", "cross-section", "cell", "quarter-cell", "device", "axisymmetric")
MESH_FILES = ("mesh.xdmf", "mesh.h5", "mesh.vtkhdf", "mesh.msh", "markers.json", "info.json")
MODES_FILES = ("modes.json", "modes.csv", "modes.bp", "modes.vtkhdf")
BANDS_FILES = ("bands.json", "band_edges.bp", "band_edges.vtkhdf")
LASING_FILES = ("lasing.json", "lasing_history.csv")
"""The files of each command: a new run into the same folder replaces all of them, so no file
of the previous run (a modes.csv where the new run found no mode) is left beside the new ones."""


def _comm(comm: MPI.Comm | None) -> MPI.Comm:
    return MPI.COMM_WORLD if comm is None else comm


def load_device(
    source: str | Path | Mapping[str, Any] | Device | None = None, overrides: Iterable[str] = ()
) -> Device:
    """A validated device from a TOML file, a nested mapping (the TOML's tables) or a Device.

    Args:
        source: Path of a TOML file, a mapping with the same sections and keys, an existing
            :class:`~cqdlaser.geometry.device.Device`, or None for the defaults.
        overrides: ``"section.key=value"`` strings, as ``--set`` on the command line
            (``"cap=false"`` removes an optional section).

    Raises:
        ConfigError: naming the key, its value and the allowed range, for a wrong value, an
            unknown key, section or material (before any meshing).
    """
    from cqdlaser.geometry.config import device_to_dict
    from cqdlaser.physics.materials import validate_materials

    overrides = list(overrides)
    if isinstance(source, Device):
        device = device_from_dict(apply_overrides(device_to_dict(source), overrides))
    elif isinstance(source, Mapping):
        device = device_from_dict(apply_overrides(dict(source), overrides))
    else:
        device = _load_toml(source, overrides)
    validate_materials(device)
    return device


def mesh(
    device: Device,
    kind: str = "axisymmetric",
    *,
    resolved: bool = False,
    comm: MPI.Comm | None = None,
    out: str | Path | None = None,
) -> MeshResult:
    """Build one mesh kind of a device; with ``out``, write mesh.xdmf/.msh, markers and info.

    Args:
        device: The device.
        kind: ``stack``, ``cross-section``, ``cell``, ``device`` or ``axisymmetric``.
        resolved: ``device`` kind: resolve the pillars under the spot.
        comm: Communicator (Gmsh runs on its rank 0).
        out: Output folder, or None to write nothing.
    """
    if kind not in MESH_KINDS:
        raise unknown_name("kind", kind, MESH_KINDS)
    comm = _comm(comm)
    with staged(out, comm, stale=MESH_FILES, what="cqdlaser mesh") as stage:
        return _mesh(device, kind, resolved, comm, out, stage)


def _mesh(
    device: Device,
    kind: str,
    resolved: bool,
    comm: MPI.Comm,
    out: str | Path | None,
    stage: Path | None,
) -> MeshResult:
    """Build, summarise and (into the staging folder ``stage``) write one mesh kind."""
    from cqdlaser.geometry.builders import build_mesh
    from cqdlaser.geometry.meshdata import write_mesh

    t0 = time.perf_counter()
    msh_file = None if stage is None else stage / "mesh.msh"
    data = build_mesh(device, kind, comm, resolved=resolved, msh_file=msh_file)
    counts = data.counts()
    result = MeshResult(
        kind=kind,
        cells=counts["cells"],
        vertices=counts["vertices"],
        min_quality=data.quality_min,
        regions=data.region_measures(),
        boundaries=tuple(sorted(data.boundaries)),
        untagged_cells=data.untagged_cells(),
        build_s=time.perf_counter() - t0,
        mpi_size=comm.size,
        out=None if out is None else str(out),
        device=device,
        provenance=provenance(comm, started=t0),
        mesh_data=data,
    )
    if stage is not None:
        write_mesh(data, stage, info=result.to_dict())
    return result


def heat(
    device: Device,
    *,
    steady: bool = False,
    comm: MPI.Comm | None = None,
    out: str | Path | None = None,
    snapshot_times_s: Sequence[float] | None = None,
    progress: bool = False,
    resume: str | Path | None = None,
    force: bool = False,
    checkpoint_every_steps: int | None = None,
    checkpoint_every_minutes: float | None = None,
    callback: Callable[[Any], None] | None = None,
) -> HeatResult:
    """Film temperature under the pump: the transient, or the steady state.

    Solves rho c_p dT/dt - div(k grad T) = Q on the mesh of ``heat.mesh`` with the materials of
    the device (the grating's conductivity as ``heat.grating_conductivity`` asks).

    With ``out`` the run writes into a staging folder inside it and publishes its files there
    (heat.json last, with ``"status": "complete"``) only when it completes: a failed or
    interrupted run leaves nothing under the final names, and logs where its partial output is.
    A transient also writes checkpoints into ``out/checkpoints`` (removed when it completes),
    from which ``resume`` continues it after a kill.

    Args:
        device: The device and run description.
        steady: Solve the steady state of the pump's peak intensity instead.
        comm: Communicator.
        out: Output folder for heat.csv, heat.json and the temperature fields (None: no files;
            default the ``resume`` folder when resuming).
        snapshot_times_s: Times (s) at which to store the temperature field (default: the pulse
            end and the end time).
        progress: Show a progress bar on rank 0.
        resume: Output folder of a killed transient of this device: continue from its newest
            checkpoint, on as many MPI ranks as it ran on, to the same result as an
            uninterrupted run.
        force: Replace the result of another kind of run in ``out`` (a transient's files when
            solving the steady state, or the reverse), or the checkpoints of an unfinished
            run, instead of refusing.
        checkpoint_every_steps: Steps between a transient's checkpoints (default 50 with an
            output folder; 0: none).
        checkpoint_every_minutes: Wall time (min) after which a transient writes a checkpoint
            too (None: none by time), for runs whose steps differ widely in cost.
        callback: Called with the :class:`~cqdlaser.physics.heat.HeatProblem` after every step
            of the transient (after its fields and checkpoint are written).

    Raises:
        ConfigError: Before any meshing, when ``out`` holds another kind of heat result or an
            unfinished run's checkpoints (without ``force``), or ``resume`` holds no
            checkpoint or one written on another number of MPI ranks; after meshing, when the
            checkpoint is of another config, time grid or mesh.
    """
    from cqdlaser.studies.checkpoints import (
        CHECKPOINTS,
        DEFAULT_EVERY_STEPS,
        Schedule,
        find_checkpoint,
    )
    from cqdlaser.studies.output import on_rank0, staged
    from cqdlaser.studies.thermal import run_heat

    comm = _comm(comm)
    every = DEFAULT_EVERY_STEPS if checkpoint_every_steps is None else checkpoint_every_steps
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ConfigError("checkpoint_every_steps", every, "must be an integer >= 0 (0: none)")
    minutes = checkpoint_every_minutes
    if minutes is not None and not (isinstance(minutes, int | float) and 0 < minutes < math.inf):
        raise ConfigError("checkpoint_every_minutes", minutes, "must be a number > 0, or None")
    schedule = Schedule(every, None if minutes is None else 60.0 * float(minutes))
    if resume is not None and steady:
        raise ConfigError("resume", str(resume), "continues a transient; not with steady")
    folder = Path(out) if out is not None else None if resume is None else Path(resume)
    checkpoint = None if resume is None else find_checkpoint(resume, comm)
    stale: tuple[str, ...] = ()
    if folder is not None:
        stale = _claim_heat_folder(folder, steady, resume is not None, force, comm)
    active = folder is not None and not steady and schedule.active
    checkpoints = folder / CHECKPOINTS if active and folder is not None else None
    t0 = time.perf_counter()
    with staged(folder, comm, stale=stale, what="cqdlaser heat") as stage:
        raw = run_heat(
            device,
            stage,
            comm,
            steady=steady,
            snapshot_times=snapshot_times_s,
            progress=progress,
            checkpoints=checkpoints,
            checkpoint_schedule=schedule,
            resume=checkpoint,
            callback=callback,
        )
        result = _heat_result(raw, device, steady, folder, provenance(comm, started=t0))
        if stage is not None:
            result.to_json(stage / "heat.json", comm=comm)
    if folder is not None and not steady:
        done = [folder / CHECKPOINTS]
        if checkpoint is not None and checkpoint.document.get("staging"):
            done.append(Path(checkpoint.document["staging"]))  # the killed run's partial output
        on_rank0(comm, "cannot remove checkpoints", lambda: [_remove_tree(p) for p in done])
    return result


def _heat_result(
    raw: dict[str, Any],
    device: Device,
    steady: bool,
    folder: Path | None,
    meta: dict[str, Any],
) -> HeatResult:
    """The result object of :func:`heat` from the numbers of ``run_heat``."""
    grating_k = raw["grating_conductivity_w_mk"]
    arrays = ("times_s", "film_max_temperature_k", "film_mean_spot_temperature_k")
    values = {
        k: (np.asarray(v) if k in (*arrays, "interface_temperature_k") else v)
        for k, v in raw.items()
        if k != "grating_conductivity_w_mk"
    }
    return HeatResult(
        steady=steady,
        grating_conductivity_w_mk=None if grating_k is None else tuple(grating_k),
        out=None if folder is None else str(folder),
        device=device,
        provenance=meta,
        **values,
    )


HEAT_FILES = {
    "transient": ("heat.json", "heat.csv", "temperature.bp", "temperature.vtkhdf"),
    "steady": ("heat.json", "steady_temperature.bp", "steady_temperature.vtkhdf"),
}
"""The files a heat run of each kind publishes in its output folder."""


def _claim_heat_folder(
    folder: Path, steady: bool, resuming: bool, force: bool, comm: MPI.Comm
) -> tuple[str, ...]:
    """Check that a heat run may write into ``folder``; return the names it replaces there.

    A folder holding the other kind of heat result (its heat.json says), or the checkpoints of
    an unfinished run that this run does not resume, is refused unless ``force``; with
    ``force`` both kinds' files and the checkpoints are replaced.
    """
    from cqdlaser.studies.checkpoints import CHECKPOINTS
    from cqdlaser.studies.output import on_rank0

    kind = "steady" if steady else "transient"
    previous, unfinished = on_rank0(comm, f"cannot read {folder}", lambda: _heat_folder(folder))
    if not force:
        if previous is not None and previous != kind:
            raise ConfigError(
                "out",
                str(folder),
                f"holds the result of a {previous} heat run (heat.json); use --force "
                "(force=True) to replace it, or another output folder",
            )
        if unfinished and not resuming:
            raise ConfigError(
                "out",
                str(folder),
                f"holds the checkpoints of an unfinished heat run ({CHECKPOINTS}/); continue it "
                "with --resume, or use --force (force=True) to start again",
            )
        return HEAT_FILES[kind]
    if not resuming:
        on_rank0(comm, "cannot remove checkpoints", lambda: _remove_tree(folder / CHECKPOINTS))
    return (*HEAT_FILES["transient"], *HEAT_FILES["steady"], CHECKPOINTS)


def _heat_folder(folder: Path) -> tuple[str | None, bool]:
    """The kind of the heat result in ``folder`` (None: none), and whether it has checkpoints.

    Called on rank 0.
    """
    from cqdlaser.studies.checkpoints import has_checkpoint

    document = folder / "heat.json"
    previous = None
    if document.is_file():
        try:
            previous = "steady" if json.loads(document.read_text()).get("steady") else "transient"
        except (OSError, ValueError, AttributeError):
            previous = "unreadable"
    return previous, has_checkpoint(folder)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def modes(
    device: Device,
    *,
    polarisations: Sequence[str] = ("TE", "TM"),
    comm: MPI.Comm | None = None,
    out: str | Path | None = None,
) -> ModesResult:
    """The modes of the device's layer stack at ``optics.wavelength_nm``, guided and leaky.

    d2E/dz2 + k0^2 n(z)^2 E = beta^2 E (TE; the TM form for TM) on the planar stack, solved
    exactly (complex roots of the transfer-matrix dispersion: n_eff + i n_eff_imag, the loss
    from absorption and leakage, guided or leaky) and, for the guided modes, by the FEM on the 1D
    optical stack (group index, Bragg estimate, field profiles), which checks each root.

    Args:
        device: The device.
        polarisations: ``"TE"`` and/or ``"TM"``.
        comm: Communicator.
        out: Output folder for modes.csv, modes.json and the mode profiles (``modes.bp``,
            ``modes.vtkhdf``; None: no files).
    """
    from cqdlaser.studies.optics import mode_table

    for pol in polarisations:
        if pol not in ("TE", "TM"):
            raise ConfigError("polarisation", pol, "must be 'TE' or 'TM'")
    comm = _comm(comm)
    t0 = time.perf_counter()
    with staged(out, comm, stale=MODES_FILES, what="cqdlaser modes") as stage:
        rows = mode_table(device, comm, polarisations=tuple(polarisations), out=stage)
        result = _modes_result(device, rows, comm, t0)
        if stage is not None:
            if result.modes:
                result.to_csv(stage / "modes.csv", comm=comm)
            result.to_json(stage / "modes.json", comm=comm)
    return result


def _modes_result(
    device: Device, rows: list[dict[str, Any]], comm: MPI.Comm, t0: float
) -> ModesResult:
    """The typed result of the stack-mode rows."""
    return ModesResult(
        modes=tuple(StackModeResult(**row) for row in rows),
        wavelength_nm=device.optics.wavelength_nm,
        device=device,
        provenance=provenance(comm, started=t0),
    )


def bands(
    device: Device,
    *,
    kind: str = "cross-section",
    polarisation: str | None = None,
    n_bands: int = 4,
    comm: MPI.Comm | None = None,
    out: str | Path | None = None,
) -> BandsResult:
    """DFB band edges near the second-order Bragg condition, with Q and the lasing mode.

    Every band edge at the Gamma point with its Q, symmetry class and threshold gain, and the
    mode of least threshold gain (:mod:`studies.band_edges`).

    ``kind``: ``"cross-section"``, the periodic 2D section with perfectly matched layers above
    and below, TE or TM (seconds); ``"cell"``, the 3D unit cell with the scalar equation in a
    closed box (no Q, no lasing mode; for comparison); ``"vector"``, the 3D quarter cell with
    Nedelec elements and PMLs, both families and every C4v class (minutes): the lasing mode.

    Args:
        device: A device with a ``[grating]``.
        kind: ``"cross-section"``, ``"cell"`` or ``"vector"``.
        polarisation: ``"TE"`` or ``"TM"`` (default ``optics.polarisation``; ignored by
            ``vector``, which finds both).
        n_bands: Number of band edges to find (2D and cell; ``vector`` returns every edge
            within 4 % of the TE and TM Bragg estimates).
        comm: Communicator.
        out: Output folder for bands.json and the band-edge fields (None: no files).
    """
    from cqdlaser.studies.band_edges import KINDS, band_edge_table

    if device.grating is None:
        raise ConfigError("grating", None, "band edges need a [grating] section")
    if kind not in KINDS:
        raise unknown_name("kind", kind, KINDS)
    if polarisation not in (None, "TE", "TM"):
        raise ConfigError("polarisation", polarisation, "must be 'TE' or 'TM'")
    if not (isinstance(n_bands, int) and 1 <= n_bands <= 64):
        raise ConfigError("n_bands", n_bands, "must be an integer in [1, 64]")
    comm = _comm(comm)
    t0 = time.perf_counter()
    with staged(out, comm, stale=BANDS_FILES, what="cqdlaser bands") as stage:
        raw = band_edge_table(
            device, comm, kind=kind, polarisation=polarisation, n_bands=n_bands, out=stage
        )
        result = _bands_result(device, raw, comm, t0)
        if stage is not None:
            result.to_json(stage / "bands.json", comm=comm)
    return result


def _bands_result(device: Device, raw: dict[str, Any], comm: MPI.Comm, t0: float) -> BandsResult:
    """The typed result of the band-edge table."""
    return BandsResult(
        kind=raw["kind"],
        polarisation=raw["polarisation"],
        bragg_estimate_nm=raw["bragg_estimate_nm"],
        window_nm=None if raw["window_nm"] is None else tuple(raw["window_nm"]),
        band_edges=tuple(BandEdgeResult(**row) for row in raw["band_edges"]),
        lasing_mode=raw["lasing_mode"],
        dofs=raw["dofs"],
        iterations=raw["iterations"],
        device=device,
        provenance=provenance(comm, started=t0),
    )


def lasing(
    device: Device, *, comm: MPI.Comm | None = None, out: str | Path | None = None
) -> LasingResult:
    """The laser under its pump: lasing duration, thermal resistance and the CW window.

    The film lases while the pump exceeds P_th(T) at its hottest point; CW needs
    P >= P_th(T_ss(P)) for the steady state T_ss.

    Args:
        device: The device and run description.
        comm: Communicator.
        out: Output folder for lasing.json and lasing_history.csv (None: no files).
    """
    from cqdlaser.studies.lasing import run_lasing

    comm = _comm(comm)
    t0 = time.perf_counter()
    raw = run_lasing(device, comm)
    pump_range = raw.pop("cw_pump_range_kw_cm2")
    result = LasingResult(
        **{k: v for k, v in raw.items() if k not in ("times_s", "film_max_temperature_k")},
        cw_pump_range_kw_cm2=None if pump_range is None else tuple(pump_range),
        times_s=np.asarray(raw["times_s"]),
        film_max_temperature_k=np.asarray(raw["film_max_temperature_k"]),
        device=device,
        provenance=provenance(comm, started=t0),
    )
    with staged(out, comm, stale=LASING_FILES, what="cqdlaser lasing") as stage:
        if stage is not None:
            result.to_csv(stage / "lasing_history.csv", comm=comm)
            result.to_json(stage / "lasing.json", comm=comm)
    return result


def list_studies() -> dict[str, str]:
    """The studies :func:`run_study` knows: name -> one-line description.

    ``paper`` runs all of the paper's studies and writes the validation report.
    """
    from cqdlaser.studies.registry import PAPER, STUDIES, describe

    return {**{name: describe(name) for name in STUDIES}, "paper": "all of: " + ", ".join(PAPER)}


def run_study(
    name: str,
    device: Device | None = None,
    *,
    quick: bool = False,
    out: str | Path | None = None,
    comm: MPI.Comm | None = None,
    figures: bool = True,
    device_source: str | None = None,
) -> StudyResult:
    """Run a study by name (see :func:`list_studies`) into ``out`` (default ``results/<name>``).

    Args:
        name: A study name, or ``paper`` for the paper's figures, numbers and validation report.
        device: The device to study, for the studies that take one (``bragg``, ``sensitivity``,
            ``lasing_duration``, ``cw_feasibility``, ``fig4d``); None: the paper's laser, with
            the paper's numbers.
        quick: Coarse meshes and short sweeps.
        out: Output folder (the study writes its tables, figures and JSON there).
        comm: Communicator.
        figures: Draw the study's figures (PNG and PDF) from its tables.
        device_source: How the study's output names ``device`` (the CLI: its config path);
            default "given Device".

    Raises:
        ConfigError: An unknown study, or a device for a study that runs on the paper's devices.
    """
    from cqdlaser.studies.registry import STUDIES, run_one, run_studies, takes_device
    from cqdlaser.studies.study_device import StudyDevice

    if name not in STUDIES and name != "paper":
        raise unknown_name("study", name, [*STUDIES, "paper"])
    comm = _comm(comm)
    kwargs: dict[str, Any] = {}
    if device is not None:
        if not takes_device(name):
            raise ConfigError("study", name, "runs on the paper's devices and takes no device")
        kwargs["device"] = StudyDevice(device, device_source or "given Device")
    t0 = time.perf_counter()
    if name == "paper":
        root = Path(out) if out is not None else Path("results")
        summary = run_studies(["paper"], root, quick=quick, comm=comm, figures=figures)
        folder = root
    else:
        folder = Path(out) if out is not None else Path("results") / name
        summary = run_one(name, folder, quick=quick, comm=comm, figures=figures, **kwargs)
    return StudyResult(
        name=name,
        quick=quick,
        out=str(folder),
        summary=summary,
        device=device,
        provenance=provenance(comm, started=t0),
    )
