"""Thermal runs on a device: the mesh its ``[heat]`` section asks for, a transient or steady solve,
and the results written with provenance (CSV + JSON, temperature fields as VTX for ParaView and
VTKHDF for pyvista)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry.device import Device
from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.physics.heat import HeatHistory, HeatProblem, time_grid
from cqdlaser.physics.laser import KW_CM2, thermal_resistance
from cqdlaser.physics.materials import Material, region_materials
from cqdlaser.physics.source import heat_fraction_origin
from cqdlaser.studies.checkpoints import Checkpoint, Checkpointer, Schedule, Snapshots
from cqdlaser.studies.fields import FieldSeries, write_fields
from cqdlaser.studies.output import write_csv


def heat_mesh(device: Device, comm: MPI.Comm = MPI.COMM_WORLD) -> MeshData:
    """The thermal mesh of ``heat.mesh`` (``device`` resolves the pillars when
    ``heat.grating_model = "resolved"``)."""
    kind = device.heat.mesh
    if kind == "stack":
        from cqdlaser.geometry.stack import build_stack

        return build_stack(device, comm, optical=False)
    if kind == "axisymmetric":
        from cqdlaser.geometry.axisymmetric import build_axisymmetric

        return build_axisymmetric(device, comm)
    from cqdlaser.geometry.device_mesh import build_device

    return build_device(device, comm, resolved=device.heat.grating_model == "resolved")


def heat_materials(device: Device, comm: MPI.Comm = MPI.COMM_WORLD) -> dict[str, Material]:
    """Region materials for a thermal run, the homogenised grating's conductivity as
    ``heat.grating_conductivity`` asks (see :class:`geometry.device.Heat`)."""
    materials = region_materials(device)
    choice = device.heat.grating_conductivity
    if device.grating is None or choice == "rayleigh":
        return materials
    from cqdlaser.geometry.cell import build_cell
    from cqdlaser.physics.homogenisation import (
        constriction_correction,
        corrected_material,
        homogenised_material,
    )

    cell = build_cell(device, comm, optical=False)
    grating = homogenised_material(device, cell, materials=materials)
    if choice == "constriction":
        stack = build_cell(device, comm, optical=True)
        cell_materials = {name: m for name, m in materials.items() if name != "cover"}
        correction = constriction_correction(stack, cell_materials, grating.thermal_conductivity)
        grating = corrected_material(grating, correction)
    return {**materials, "grating": grating}


def heat_problem(device: Device, comm: MPI.Comm = MPI.COMM_WORLD) -> HeatProblem:
    """The heat problem of a device, composed as every command and study composes it.

    The mesh is the one ``heat.mesh`` asks for (:func:`heat_mesh`), the materials those of
    :func:`heat_materials` (the grating's conductivity as ``heat.grating_conductivity`` asks), the
    source and settings those of ``[pump]`` and ``[heat]``. Use it (or :func:`cqdlaser.heat`) rather
    than assembling a :class:`~cqdlaser.physics.heat.HeatProblem` by hand, so a script and the CLI
    solve the same problem.
    """
    return HeatProblem.from_device(device, heat_mesh(device, comm), heat_materials(device, comm))


def history_columns(history: HeatHistory) -> dict[str, np.ndarray]:
    """The columns of heat.csv, with units in their names."""
    return {
        "time_s": history.times,
        "film_max_temperature_k": history.film_max_temperature,
        "film_mean_spot_temperature_k": history.film_mean_temperature,
        "interface_temperature_k": history.interface_temperature,
        "energy_in_j": history.energy_in,
        "energy_stored_j": history.energy_stored,
        "energy_out_sink_j": history.energy_out,
        "energy_out_top_j": history.energy_out_top,
    }


class _FieldWriter:
    """Temperature snapshots (array ``temperature``, K) at the requested times, into
    ``temperature.bp`` and ``temperature.vtkhdf`` (see :mod:`cqdlaser.studies.fields`).

    The snapshots already taken (those of a resumed run's first part) are written first.
    """

    def __init__(self, problem: HeatProblem, path: Path, snapshots: Snapshots) -> None:
        self.field = problem.temperature()
        self.series = FieldSeries(path, {"temperature": self.field}, mesh_data=problem.mesh_data)
        self.snapshots = snapshots
        for t, snapshot in zip(snapshots.times, snapshots.fields, strict=True):
            self.field.x.array[:] = snapshot.x.array
            self.series.write(t)

    def __call__(self, problem: HeatProblem) -> None:
        t = float(problem.t.value)
        pending = self.snapshots.pending
        due = False
        while pending and t >= pending[0] * (1 - 1e-9):
            pending.pop(0)
            due = True
        if due:  # one step, however many requested times this step passed
            self.field.x.array[:] = problem.temperature().x.array
            self.series.write(t)
            self.snapshots.add(t, self.field)

    def close(self) -> None:
        self.series.close()

    def abort(self) -> None:
        self.series.abort()


def run_heat(
    device: Device,
    out: Path | None,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    steady: bool = False,
    snapshot_times: Sequence[float] | None = None,
    progress: bool = True,
    checkpoints: Path | None = None,
    checkpoint_schedule: Schedule | None = None,
    resume: Checkpoint | None = None,
    callback: Callable[[HeatProblem], None] | None = None,
) -> dict[str, Any]:
    """Solve the device's heat problem and write heat.csv (and the fields) into ``out``.

    Args:
        device: Device and run description.
        out: Output folder (None: write nothing).
        comm: Communicator.
        steady: Solve the CW steady state instead of the transient.
        snapshot_times: Times (s) at which to store the temperature field; default: the pulse end
            (if within the run) and the end time.
        progress: Show a progress bar on rank 0.
        checkpoints: Folder of the transient's checkpoints (None: none are written).
        checkpoint_schedule: When to write checkpoints (default every 50 steps).
        resume: A checkpoint of this run to continue from (transient only).
        callback: Called with the problem after every step of the transient (after the fields
            and the checkpoint of the step are written).

    Returns:
        The numbers of :class:`~cqdlaser.studies.results.HeatResult` (``cqdlaser.heat`` wraps
        them and writes heat.json).
    """
    t0 = time.perf_counter()
    mesh_data = heat_mesh(device, comm)
    materials = heat_materials(device, comm)
    with HeatProblem.from_device(device, mesh_data, materials) as problem:
        result = _run_summary(device, problem, materials)
        if steady:
            result.update(_steady(device, problem, out))
        else:
            schedule = Schedule() if checkpoint_schedule is None else checkpoint_schedule
            stepping = _Stepping(checkpoints, schedule, resume, callback)
            result.update(_transient(device, problem, out, snapshot_times, progress, stepping))
    result["wall_time_s"] = time.perf_counter() - t0
    result["mpi_size"] = comm.size
    return result


@dataclass(frozen=True)
class _Stepping:
    """How a transient steps besides its grid: checkpoints, a resumed start, a callback."""

    checkpoints: Path | None = None
    schedule: Schedule = field(default_factory=Schedule)
    resume: Checkpoint | None = None
    callback: Callable[[HeatProblem], None] | None = None


def _run_summary(
    device: Device, problem: HeatProblem, materials: dict[str, Material]
) -> dict[str, Any]:
    """What a heat run reports whether steady or transient: mesh, DOFs, linear solver, source,
    sink."""
    grating = None if device.grating is None else materials["grating"].thermal_conductivity
    return {
        "mesh": device.heat.mesh,
        "dofs": int(problem.V.dofmap.index_map.size_global),
        "linear_solver": problem.linear_solver,
        "heat_fraction": problem.source.heat_fraction,
        "heat_fraction_origin": heat_fraction_origin(device),
        "absorbed_power_w": problem.source.power,
        "sink_temperature_k": device.heat.sink_temperature_k,
        "grating_conductivity_w_mk": None if grating is None else list(grating),
    }


def _steady(device: Device, problem: HeatProblem, out: Path | None) -> dict[str, Any]:
    """The steady state at the pump's peak intensity (and its field, with ``out``)."""
    problem.steady()
    film_max = problem.film_max_temperature()
    rise = film_max - device.heat.sink_temperature_k
    if out is not None:
        write_fields(
            out / "steady_temperature",
            {"temperature": problem.temperature()},
            mesh_data=problem.mesh_data,
        )
    return {
        "steady_film_max_temperature_k": film_max,
        "steady_film_mean_spot_temperature_k": problem.film_mean_temperature(),
        "steady_interface_temperature_k": problem.interface_temperature(),
        "thermal_resistance_k_cm2_per_kw": thermal_resistance(rise, device.pump.intensity) * KW_CM2,
    }


def heat_fraction_metadata(device: Device, value: float) -> dict[str, Any]:
    """The heat fraction a run used and its origin, as the metadata of its CSV tables."""
    return {"heat_fraction": value, "heat_fraction_origin": heat_fraction_origin(device)}


def _transient(
    device: Device,
    problem: HeatProblem,
    out: Path | None,
    snapshot_times: Sequence[float] | None,
    progress: bool,
    stepping: _Stepping,
) -> dict[str, Any]:
    """The transient to ``heat.end_time_us`` on steps refined at the pump's edges, with
    temperature snapshots and heat.csv written into ``out``, checkpoints on
    ``stepping.schedule``, and the solver statistics of the steps. A resumed transient
    continues from its checkpoint on the same grid; its history is the checkpoint's rows and
    those of the steps since."""
    end = device.heat.end_time
    s = problem.settings
    times = time_grid(
        end,
        problem.source.waveform.edges(end),
        first_step=s.first_step,
        growth=s.step_growth,
        max_step=s.max_step,
    )
    if snapshot_times is None:
        snapshot_times = [t for t in (device.pump.pulse, end) if t is not None and t <= end]
    tracker = _tracker(device, problem, times, snapshot_times, stepping, out)
    first = tracker.step
    writer = _FieldWriter(problem, out / "temperature.bp", tracker.snapshots) if out else None
    bar = None
    if progress and problem.comm.rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=len(times) - 1, initial=first, desc="heat", leave=False)

    def callback(p: HeatProblem) -> None:
        if writer is not None:
            writer(p)
        tracker.after_step()
        if bar is not None:
            bar.update()
        if stepping.callback is not None:
            stepping.callback(p)

    try:
        history = problem.run(times=times[first:], callback=callback)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    if writer is not None:
        writer.close()
    if first > 0:
        history = tracker.history(s.scheme)
    if out is not None:
        write_csv(
            out / "heat.csv",
            history_columns(history),
            comm=problem.comm,
            metadata=heat_fraction_metadata(device, problem.source.heat_fraction),
        )
    # One linear solve a step; Newton steps record no statistics (then None).
    iterations = problem.krylov_iterations
    return {
        "steps": len(times) - 1,
        "resumed_from_step": first if stepping.resume is not None else None,
        "krylov_iterations_per_step": sum(iterations) / len(iterations) if iterations else None,
        "krylov_iterations_max": max(iterations) if iterations else None,
        "preconditioner_builds": problem.preconditioner_builds if iterations else None,
        "times_s": history.times,
        "film_max_temperature_k": history.film_max_temperature,
        "film_mean_spot_temperature_k": history.film_mean_temperature,
        "interface_temperature_k": history.interface_temperature,
        "energy_balance_error_j": float(np.max(np.abs(history.balance_error))),
    }


def _tracker(
    device: Device,
    problem: HeatProblem,
    times: np.ndarray,
    snapshot_times: Sequence[float],
    stepping: _Stepping,
    staging: Path | None,
) -> Checkpointer:
    """The history and checkpoint keeper of a transient: fresh at t = 0, or restored from a
    checkpoint (refused, with a ConfigError, if it is not of this run)."""
    checkpoint = stepping.resume
    if checkpoint is None:
        start = (problem.energy_in, problem.stored_energy(), problem.energy_out)
        start += (problem.energy_out_top,)
        rows, snapshots = None, Snapshots(snapshot_times)
    else:
        checkpoint.check(problem, times, device)
        doc = checkpoint.document
        u_n, u_nn, *fields = checkpoint.vectors(problem.V, 2 + len(doc["snapshot_times_s"]))
        problem.restore(doc["problem"], u_n, u_nn)
        start, rows = doc["start"], doc["rows"]
        snapshots = Snapshots.restored(checkpoint, problem.V, fields)
    return Checkpointer(
        stepping.checkpoints,
        stepping.schedule,
        problem,
        times,
        device,
        start,
        rows,
        snapshots,
        staging,
    )
