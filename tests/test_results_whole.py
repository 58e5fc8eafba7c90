"""Results are whole or absent: a run publishes its files only when it completes, never mixes
them with another run's, records its status, and writes files that follow the user's umask."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from mpi4py import MPI

import pytest
from conftest import on_rank0

import cqdlaser
from cqdlaser.geometry.errors import ConfigError
from cqdlaser.physics.heat import HeatProblem
from cqdlaser.studies.cli import main
from cqdlaser.studies.common import matplotlib_backend, save_figure
from cqdlaser.studies.output import STAGING_PREFIX, atomic_write_text

CONFIG = Path(__file__).parent.parent / "studies" / "configs" / "paper_inorganic_mgf2.toml"
SHORT = ["heat.mesh=stack", "heat.end_time_us=0.2", "mesh.optical_padding_um=1"]
TRANSIENT = {"heat.json", "heat.csv", "temperature.bp", "temperature.vtkhdf"}
STEADY = {"heat.json", "steady_temperature.bp", "steady_temperature.vtkhdf"}


class Interrupted(Exception):
    """Stands for a solver failure or Ctrl-C in the middle of a transient."""


def _interrupt_after_5_steps():
    count = [0]

    def callback(problem: HeatProblem) -> None:
        count[0] += 1
        if count[0] == 5:
            raise Interrupted

    return callback


def _names(folder: Path) -> set[str]:
    MPI.COMM_WORLD.barrier()
    return {p.name for p in folder.iterdir()}


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_interrupted_run_leaves_nothing_under_the_final_names(
    shared_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception after 5 steps: no heat.json, heat.csv or field under its final name; the
    partial output stays in the staging folder that the log line names; the previous complete
    result in the folder is untouched."""
    device = cqdlaser.load_device(CONFIG, SHORT)
    out = shared_tmp / "heat"
    with pytest.raises(Interrupted):
        cqdlaser.heat(device, out=out, callback=_interrupt_after_5_steps())
    names = _names(out)
    assert not names & (TRANSIENT | STEADY)
    (staging,) = [n for n in names if n.startswith(STAGING_PREFIX)]

    def logged_and_partial() -> None:
        assert str(out / staging) in caplog.text
        # the field series stopped half-way keeps its temporary name
        assert {p.name for p in (out / staging).iterdir()} == {".temperature.bp.tmp"}

    on_rank0(logged_and_partial)
    # a complete run publishes; an interrupted rerun leaves the complete result as it was
    first = cqdlaser.heat(device, out=out, force=True)
    assert TRANSIENT <= _names(out) and first.status == "complete"
    before = (out / "heat.json").read_text()
    with pytest.raises(Interrupted):
        cqdlaser.heat(
            device, out=out, checkpoint_every_steps=0, callback=_interrupt_after_5_steps()
        )
    assert (out / "heat.json").read_text() == before
    assert json.loads(before)["status"] == "complete"


def test_steady_into_a_transient_folder(shared_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    """A steady run into a transient's folder is refused (one line, exit 2) without --force;
    with --force the transient's files are gone, not left stale beside the steady result."""
    device = cqdlaser.load_device(CONFIG, SHORT)
    out = shared_tmp / "heat"
    cqdlaser.heat(device, out=out)
    assert _names(out) == TRANSIENT
    with pytest.raises(ConfigError, match="transient heat run"):
        cqdlaser.heat(device, steady=True, out=out)
    sets = [arg for key in SHORT for arg in ("--set", key)]
    argv = ["heat", str(CONFIG), *sets, "--steady", "--out", str(out)]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err

    def one_line() -> None:
        assert len(err.strip().splitlines()) == 1 and "--force" in err

    on_rank0(one_line)
    assert _names(out) == TRANSIENT
    assert main([*argv, "--force", "--json"]) == 0
    assert _names(out) == STEADY
    document = json.loads((out / "heat.json").read_text())
    assert document["steady"] and document["status"] == "complete"
    # and back: a transient over the steady result needs --force too
    with pytest.raises(ConfigError, match="steady heat run"):
        cqdlaser.heat(device, out=out)
    cqdlaser.heat(device, out=out, force=True)
    assert _names(out) == TRANSIENT


def test_files_follow_the_umask(shared_tmp: Path, umask_022: None) -> None:
    """Tables, JSON, fields and figures are rw-r--r-- under umask 022 (not 0600)."""
    device = cqdlaser.load_device(CONFIG, SHORT)
    out = shared_tmp / "heat"
    cqdlaser.heat(device, out=out)
    MPI.COMM_WORLD.barrier()
    for name in ("heat.json", "heat.csv", "temperature.vtkhdf"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    for path in (out / "temperature.bp").iterdir():
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path.name

    matplotlib_backend()
    import matplotlib.pyplot as plt

    figures = save_figure(plt.figure(), shared_tmp / "figure")

    def table() -> None:
        written = atomic_write_text(shared_tmp / "table.csv", "a,b\n")
        for path in (written, *figures):
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name

    on_rank0(table)


GLASS = Path(__file__).parent.parent / "studies" / "configs" / "ase_inorganic_glass.toml"


@pytest.mark.parametrize(
    ("command", "files"),
    [
        ("mesh", ("mesh.xdmf", "mesh.vtkhdf", "mesh.msh", "markers.json", "info.json")),
        ("modes", ("modes.json", "modes.csv", "modes.bp", "modes.vtkhdf")),
    ],
)
def test_other_commands_publish_whole_or_nothing(
    shared_tmp: Path, monkeypatch: pytest.MonkeyPatch, command: str, files: tuple[str, ...]
) -> None:
    """mesh and modes write through a staging folder too: all their files, or none of them."""
    device = cqdlaser.load_device(GLASS, ["mesh.optical_padding_um=1"])
    run = {
        "mesh": lambda out: cqdlaser.mesh(device, "stack", out=out),
        "modes": lambda out: cqdlaser.modes(device, out=out),
    }[command]
    good, bad = shared_tmp / "good", shared_tmp / "bad"
    run(good)
    MPI.COMM_WORLD.barrier()
    names = {p.name for p in good.iterdir()}
    assert set(files) <= names and not any(n.startswith(STAGING_PREFIX) for n in names)

    import cqdlaser.studies.results as results

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(results.MeshResult, "to_dict", broken)
    monkeypatch.setattr(results.ModesResult, "to_json", broken)
    with pytest.raises(OSError, match="disk full"):
        run(bad)
    MPI.COMM_WORLD.barrier()
    left = {p.name for p in bad.iterdir()}
    assert not left & set(files), left
    assert any(n.startswith(STAGING_PREFIX) for n in left)
