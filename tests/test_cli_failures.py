"""The command line fails collectively: an error on any rank ends every rank, quickly, with one line
on stderr (``cqdlaser: error: ...``), no traceback and a non-zero exit code; Ctrl-C ends a run with
one line and exit code 130.

Each test starts its own ``mpirun -n 2`` (the venv's, beside ``sys.executable``), so they are
``serial``. Before this, an error on rank 0 alone (an output folder below a regular file) left
rank 1 waiting forever at its next collective call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PAPER = Path(__file__).parent.parent / "studies" / "configs" / "paper_inorganic_mgf2.toml"
MPIRUN = Path(sys.executable).parent / "mpirun"
TINY_HEAT = ["--set", "heat.mesh=stack", "--set", "heat.end_time_us=0.5"]
TIMEOUT_S = 120  # a hang shows as a timeout, not as a stuck suite

pytestmark = [
    pytest.mark.serial,
    pytest.mark.skipif(not MPIRUN.exists(), reason="no mpirun beside the Python executable"),
]


def _mpirun(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """``mpirun -n 2 python ARGS``: the finished process and its wall time (s)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(MPIRUN), "-n", "2", sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    return proc, time.perf_counter() - t0


def _cqdlaser(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    return _mpirun("-m", "cqdlaser", *args)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("cqdlaser: error:")]


def _assert_one_clean_error(proc: subprocess.CompletedProcess, code: int | None = None) -> str:
    """It failed with one error line and no traceback; returns that line."""
    assert proc.returncode != 0, proc.stderr
    if code is not None:
        assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture
def regular_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder\n")
    return path


def test_mesh_out_below_a_regular_file(regular_file: Path) -> None:
    out = regular_file / "mesh"
    proc, seconds = _cqdlaser("mesh", str(PAPER), "--kind", "stack", "--out", str(out))
    line = _assert_one_clean_error(proc)
    assert "a-file" in line
    print(f"mesh --out below a file: exit {proc.returncode} after {seconds:.1f} s")


def test_heat_out_below_a_regular_file(regular_file: Path) -> None:
    out = regular_file / "heat"
    proc, seconds = _cqdlaser("heat", str(PAPER), *TINY_HEAT, "--out", str(out))
    line = _assert_one_clean_error(proc)
    assert "a-file" in line
    print(f"heat --out below a file: exit {proc.returncode} after {seconds:.1f} s")


@pytest.mark.parametrize(("command", "result"), [(["materials"], "materials.json")])
def test_result_path_is_a_folder(tmp_path: Path, command: list[str], result: str) -> None:
    (tmp_path / result).mkdir()
    proc, seconds = _cqdlaser(*command, "--out", str(tmp_path))
    line = _assert_one_clean_error(proc)
    assert result in line
    print(f"{command[0]} with {result} a folder: exit {proc.returncode} after {seconds:.1f} s")


def test_a_staged_run_replaces_what_is_in_the_way(tmp_path: Path) -> None:
    """mesh publishes through a staging folder: a folder named like one of its files (a previous
    run's leftovers) is replaced, not a failure on rank 0."""
    (tmp_path / "info.json").mkdir()
    proc, _ = _cqdlaser("mesh", str(PAPER), "--kind", "stack", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "info.json").is_file() and (tmp_path / "mesh.xdmf").is_file()


def test_debug_shows_one_traceback(regular_file: Path) -> None:
    proc, _ = _cqdlaser(
        "mesh", str(PAPER), "--kind", "stack", "--out", str(regular_file / "m"), "--debug"
    )
    assert proc.returncode != 0 and len(_error_lines(proc.stderr)) == 1, proc.stderr
    assert proc.stderr.count("Traceback") == 1, proc.stderr


# The failures below are placed on chosen ranks by replacing `cqdlaser list`'s function in the
# CLI's module before `main()` runs; the ranks that do not fail wait at a collective call.
_ON_RANKS = """
import sys
from mpi4py import MPI
import cqdlaser.studies.cli as cli
from cqdlaser.geometry.errors import ConfigError

def failing(args):
    "Fails on some ranks."
    if MPI.COMM_WORLD.rank in {ranks}:
        raise {error}
    MPI.COMM_WORLD.barrier()
    return {{}}

cli.cmd_list = failing
sys.argv = ["cqdlaser", "list"]  # main() as the program runs it
raise SystemExit(cli.main())
"""


def _fail_on(ranks: set[int], error: str) -> tuple[subprocess.CompletedProcess, float]:
    return _mpirun("-c", textwrap.dedent(_ON_RANKS.format(ranks=ranks, error=error)))


@pytest.mark.parametrize("rank", [0, 1])
def test_error_on_one_rank_ends_every_rank(rank: int) -> None:
    proc, seconds = _fail_on({rank}, "RuntimeError('disk on fire')")
    line = _assert_one_clean_error(proc, code=1)
    assert "RuntimeError: disk on fire" in line and f"(rank {rank} of 2)" in line
    print(f"RuntimeError on rank {rank} only: exit {proc.returncode} after {seconds:.1f} s")


def test_error_on_every_rank_is_reported_once() -> None:
    proc, seconds = _fail_on({0, 1}, "RuntimeError('solver diverged')")
    line = _assert_one_clean_error(proc, code=1)
    assert "solver diverged" in line and "rank" not in line
    print(f"RuntimeError on every rank: exit {proc.returncode} after {seconds:.1f} s")


def test_config_error_on_every_rank_exits_2_without_abort() -> None:
    proc, _ = _fail_on({0, 1}, "ConfigError('film.thickness_nm', -5, 'must be in [5, 5000]')")
    line = _assert_one_clean_error(proc, code=2)
    assert line == "cqdlaser: error: film.thickness_nm = -5: must be in [5, 5000]"
    assert "MPI_Abort" not in proc.stderr


def test_config_error_on_one_rank_does_not_hang() -> None:
    proc, _ = _fail_on({1}, "ConfigError('film.thickness_nm', -5, 'must be in [5, 5000]')")
    line = _assert_one_clean_error(proc, code=2)
    assert "film.thickness_nm" in line


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_ends_a_run_with_one_line_and_130(tmp_path: Path) -> None:
    """SIGINT while the heat run steps (its KSP monitor prints): exit 130, one line."""
    endless = ["--set", "heat.mesh=stack", "--set", "heat.end_time_us=100"]
    endless += ["--set", "heat.step_growth=1"]  # 1 ns steps: 1e5 of them, minutes of stepping
    command = [sys.executable, "-m", "cqdlaser", "heat", str(PAPER), *endless]
    proc = subprocess.Popen(
        [*command, "--out", str(tmp_path), "-heat_ksp_monitor"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # As at a terminal: a shell that runs the suite in the background ignores SIGINT, and
        # its children would inherit that (Python then installs no KeyboardInterrupt handler).
        preexec_fn=_default_sigint,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # PETSc's monitor: the run is stepping
            if "KSP Residual norm" in line:
                break
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=TIMEOUT_S)
        seconds = time.perf_counter() - t0
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    assert _error_lines(stderr) == ["cqdlaser: error: interrupted"], stderr
    print(f"Ctrl-C while stepping: exit 130 after {seconds:.2f} s")
