"""Resumable transients: a run killed after a checkpoint and resumed ends where an
uninterrupted run ends (history and fields to 1e-10), serially and under mpirun, through the API
and through a ``kill -9`` of the command line; a checkpoint of another run is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mpi4py import MPI

import h5py
import numpy as np
import pytest
from conftest import on_rank0
from test_heat import FILM_ON_MGF2, film_source, flat_box

import cqdlaser
from cqdlaser.geometry.errors import ConfigError
from cqdlaser.physics.heat import HeatProblem, HeatSettings, time_grid
from cqdlaser.physics.source import Waveform
from cqdlaser.studies.checkpoints import CHECKPOINTS

CONFIG = Path(__file__).parent.parent / "studies" / "configs" / "paper_inorganic_mgf2.toml"
# A 0.5 us transient on the 1D stack with a pulse edge at 0.2 us: 53 steps, MUMPS.
SHORT = [
    "heat.mesh=stack",
    "heat.end_time_us=0.5",
    "pump.pulse_ns=200",
    "heat.step_growth=1.15",
    "mesh.optical_padding_um=1",
]
HISTORY = (
    "times_s",
    "film_max_temperature_k",
    "film_mean_spot_temperature_k",
    "interface_temperature_k",
)


class Killed(Exception):
    """Stands for the end of a killed process."""


def kill_after(steps: int):
    """A step callback that raises after ``steps`` steps (on every rank)."""
    count = [0]

    def callback(problem: HeatProblem) -> None:
        count[0] += 1
        if count[0] == steps:
            raise Killed

    return callback


def _fields(path: Path) -> np.ndarray | None:
    """Every snapshot of ``temperature.vtkhdf`` (rank 0; None elsewhere)."""
    if MPI.COMM_WORLD.rank != 0:
        return None
    with h5py.File(path / "temperature.vtkhdf") as f:
        return np.asarray(f["VTKHDF/PointData/temperature"])


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |a| (NaN entries, such as a missing interface, must match)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape and np.array_equal(np.isnan(a), np.isnan(b))
    return float(np.nanmax(np.abs(a - b)) / np.nanmax(np.abs(a)))


def test_resume_ends_where_an_uninterrupted_run_ends(shared_tmp: Path) -> None:
    """Killed at step 33 (checkpoints every 10: the newest is step 30, after the pulse edge and
    its snapshot), resumed: the whole history, heat.csv and both snapshots agree to 1e-10."""
    device = cqdlaser.load_device(CONFIG, SHORT)
    reference = cqdlaser.heat(device, out=shared_tmp / "reference")
    run = shared_tmp / "run"
    with pytest.raises(Killed):
        cqdlaser.heat(device, out=run, checkpoint_every_steps=10, callback=kill_after(33))
    MPI.COMM_WORLD.barrier()
    assert sorted(p.name for p in (run / CHECKPOINTS).iterdir()) == ["step-000020", "step-000030"]
    assert not (run / "heat.json").exists()
    resumed = cqdlaser.heat(device, resume=run, checkpoint_every_steps=10)
    assert resumed.resumed_from_step == 30
    assert resumed.steps == reference.steps == 53
    edge = int(np.argmin(np.abs(reference.times_s - 200e-9)))
    assert reference.times_s[edge] == pytest.approx(200e-9, rel=1e-12) and edge < 30
    figures = {key: _relative(getattr(reference, key), getattr(resumed, key)) for key in HISTORY}
    fields = _fields(shared_tmp / "reference")
    resumed_fields = _fields(run)

    def compare() -> None:
        print(f"resume vs uninterrupted, max relative difference: {figures}")
        assert max(figures.values()) <= 1e-10
        assert fields.shape == resumed_fields.shape
        assert _relative(fields, resumed_fields) <= 1e-10
        print(f"fields: {_relative(fields, resumed_fields):.1e}")
        saved = json.loads((run / "heat.json").read_text())
        assert saved["status"] == "complete" and saved["resumed_from_step"] == 30
        # the checkpoints and the killed run's partial output are gone once it completes
        assert sorted(p.name for p in run.iterdir()) == sorted(
            ["heat.csv", "heat.json", "temperature.bp", "temperature.vtkhdf"]
        )
        assert (run / "heat.csv").read_text() == (shared_tmp / "reference" / "heat.csv").read_text()

    on_rank0(compare)
    assert resumed.energy_balance_error_j == pytest.approx(
        reference.energy_balance_error_j, rel=1e-6, abs=1e-18
    )


def test_resume_refuses_another_run(shared_tmp: Path) -> None:
    """Another config, or another number of MPI ranks, is refused with one ConfigError line."""
    device = cqdlaser.load_device(CONFIG, SHORT)
    run = shared_tmp / "run"
    with pytest.raises(Killed):
        cqdlaser.heat(device, out=run, checkpoint_every_steps=5, callback=kill_after(7))
    other = cqdlaser.load_device(CONFIG, [*SHORT, "film.thickness_nm=100"])
    with pytest.raises(ConfigError, match=r"film\.thickness_nm"):
        cqdlaser.heat(other, resume=run)
    # a fresh run into the folder would lose the checkpoints: refused without force
    with pytest.raises(ConfigError, match="--resume"):
        cqdlaser.heat(device, out=run)
    MPI.COMM_WORLD.barrier()
    if MPI.COMM_WORLD.rank == 0:
        state = run / CHECKPOINTS / "step-000005" / "state.json"
        document = json.loads(state.read_text())
        document["mpi_size"] = MPI.COMM_WORLD.size + 1
        state.write_text(json.dumps(document))
    MPI.COMM_WORLD.barrier()
    with pytest.raises(ConfigError, match="MPI rank") as error:
        cqdlaser.heat(device, resume=run)
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="holds no checkpoint"):
        cqdlaser.heat(device, resume=shared_tmp / "nothing")


def test_checkpoints_by_wall_time(shared_tmp: Path) -> None:
    """With checkpoints by wall time only (a tiny interval: one after every step), a run killed
    after 7 steps keeps the two newest (steps 6 and 7) and resumes from step 7 to the same end."""
    device = cqdlaser.load_device(CONFIG, SHORT)
    reference = cqdlaser.heat(device)
    run = shared_tmp / "run"
    with pytest.raises(Killed):
        cqdlaser.heat(
            device,
            out=run,
            checkpoint_every_steps=0,
            checkpoint_every_minutes=1e-12,
            callback=kill_after(7),
        )
    MPI.COMM_WORLD.barrier()
    assert sorted(p.name for p in (run / CHECKPOINTS).iterdir()) == ["step-000006", "step-000007"]
    resumed = cqdlaser.heat(device, resume=run, checkpoint_every_steps=0)
    assert resumed.resumed_from_step == 7
    for key in HISTORY:
        assert _relative(getattr(reference, key), getattr(resumed, key)) <= 1e-10, key
    with pytest.raises(ConfigError, match="checkpoint_every_minutes"):
        cqdlaser.heat(device, checkpoint_every_minutes=0)


def test_restore_keeps_the_iterative_preconditioner(comm: MPI.Comm) -> None:
    """CG + GAMG with a kept preconditioner (rebuilt only when a0/dt moves 4x): a problem
    restored from a checkpoint mid-way rebuilds the preconditioner of the uninterrupted run, and
    the two agree to 1e-10 (a fresh preconditioner would differ at the solver tolerance)."""
    md = flat_box(comm, first=100e-9, lateral_nodes=11)
    src = film_source(Waveform("pulse", 1e-6), spot=(40e-6, 40e-6))
    settings = HeatSettings(first_step=1e-9, step_growth=1.2, max_step=0.2e-6, direct_max_dofs=0)
    times = time_grid(2e-6, (1e-6,), first_step=1e-9, growth=1.2, max_step=0.2e-6)
    k = 31
    with HeatProblem(md, FILM_ON_MGF2, src, settings) as problem:
        reference = problem.run(times=times)
        u_reference = problem.u.x.array.copy()
        builds = problem.preconditioner_builds
    owned = slice(0, problem.V.dofmap.index_map.size_local)
    with HeatProblem(md, FILM_ON_MGF2, src, settings) as first:
        first.run(times=times[: k + 1])
        state = json.loads(json.dumps(first.checkpoint()))
        u_n, u_nn = first.u_n.x.array[owned].copy(), first.u_nn.x.array[owned].copy()
    with HeatProblem(md, FILM_ON_MGF2, src, settings) as second:
        second.restore(state, u_n, u_nn)
        rest = second.run(times=times[k:])
        u_resumed = second.u.x.array.copy()
        assert second.preconditioner_builds == builds
        assert second.krylov_iterations == problem.krylov_iterations
    assert second.linear_solver == "cg+gamg"
    rise = reference.film_max_temperature[k:] - 295.0
    difference = np.max(np.abs(rest.film_max_temperature - reference.film_max_temperature[k:]))
    scale = comm.allreduce(np.max(np.abs(u_reference)), op=MPI.MAX)
    field = comm.allreduce(np.max(np.abs(u_resumed - u_reference)), op=MPI.MAX) / scale
    print(
        f"CG + GAMG restored at step {k}: film max {difference / np.max(rise):.1e}, u {field:.1e}"
    )
    assert difference <= 1e-10 * np.max(rise)
    assert field <= 1e-10


@pytest.mark.serial
def test_kill_9_then_resume(tmp_path: Path) -> None:
    """A real ``kill -9`` of ``cqdlaser heat`` after its first checkpoint, then ``--resume``: the
    same film temperatures as an uninterrupted run, to 1e-10."""
    # 1.01x steps to 2 us: about 300 steps of a few ms; killed at the first checkpoint (step 20)
    overrides = ["heat.mesh=stack", "heat.end_time_us=2", "heat.step_growth=1.01"]
    overrides += ["mesh.optical_padding_um=1"]
    sets = [arg for key in overrides for arg in ("--set", key)]
    command = [sys.executable, "-m", "cqdlaser", "heat", str(CONFIG), *sets]
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*command, "--out", str(out), "--checkpoint-every", "20", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / CHECKPOINTS / "step-000020" / "state.json").exists():
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    left = sorted(p.name for p in out.iterdir())
    print(f"left by kill -9: {left}, checkpoints {sorted(os.listdir(out / CHECKPOINTS))}")
    assert not {"heat.json", "heat.csv", "temperature.bp", "temperature.vtkhdf"} & set(left)
    resumed = subprocess.run(
        [*command, "--resume", str(out), "--json"], capture_output=True, text=True, env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    document = json.loads(resumed.stdout)
    assert document["resumed_from_step"] >= 20
    reference = cqdlaser.heat(cqdlaser.load_device(CONFIG, overrides))
    difference = _relative(reference.film_max_temperature_k, document["film_max_temperature_k"])
    print(f"kill -9 at step >= 20 of {reference.steps}, resumed: max relative {difference:.1e}")
    assert difference <= 1e-10
    assert json.loads((out / "heat.json").read_text())["status"] == "complete"
