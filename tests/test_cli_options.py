"""The command line means what it says: PETSc options by their solver's prefix, unknown options
named with the nearest valid one, stdout holding the result (one JSON document under ``--json``,
whatever PETSc prints) and the human-readable tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cqdlaser.physics.bands import OPTIONS_PREFIX as BANDS_PREFIX
from cqdlaser.physics.homogenisation import PREFIX as HOMOGENISATION_PREFIX
from cqdlaser.physics.modes import OPTIONS_PREFIX as MODES_PREFIX
from cqdlaser.studies.cli import PETSC_PREFIXES, build_parser, parse_args

PAPER = Path(__file__).parent.parent / "studies" / "configs" / "paper_inorganic_mgf2.toml"
TINY_HEAT = ["heat", str(PAPER), "--set", "heat.mesh=stack", "--set", "heat.end_time_us=0.5"]
MONITOR = "KSP Residual norm"


def _cqdlaser(*args: str, mpi: int = 0) -> subprocess.CompletedProcess:
    launcher = [str(Path(sys.executable).parent / "mpirun"), "-n", str(mpi)] if mpi else []
    return subprocess.run(
        [*launcher, sys.executable, "-m", "cqdlaser", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


# -- parsing (in-process, any number of ranks) ---------------------------------------------------


def _parse(*argv: str):
    return parse_args(build_parser(), [*TINY_HEAT, *argv])


def test_prefixes_are_the_solvers() -> None:
    assert set(PETSC_PREFIXES) == {"heat_", MODES_PREFIX, BANDS_PREFIX, HOMOGENISATION_PREFIX}


@pytest.mark.parametrize("separator", [[], ["--"]])
def test_petsc_options_split_off_with_their_values(separator: list[str]) -> None:
    args, petsc = _parse(
        "--steady", *separator, "-heat_ksp_monitor", "-heat_ksp_rtol", "1e-12", "-heat_x", "-1"
    )
    assert args.steady and args.command == "heat"
    assert petsc == [("heat_ksp_monitor", None), ("heat_ksp_rtol", "1e-12"), ("heat_x", "-1")]


def test_any_petsc_option_after_the_separator() -> None:
    args, petsc = _parse("--json", "--", "-log_view", "-modes_stack_eps_tol", "1e-9")
    assert args.json and petsc == [("log_view", None), ("modes_stack_eps_tol", "1e-9")]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--steddy"], "'--steady'"),
        (["--jsn"], "'--json'"),
        (["--heat_ksp_monitor"], "-heat_ksp_monitor"),  # PETSc takes one dash
        (["-hello"], "-heat_"),  # not '-h ello': the PETSc prefixes are named
        (["stray"], "unrecognised arguments: stray"),
        (["--", "-log_view", "1", "stray"], "unrecognised arguments: stray"),
    ],
)
def test_unknown_arguments_are_errors_that_help(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    from mpi4py import MPI

    with pytest.raises(SystemExit) as exit_:
        _parse(*argv)
    assert exit_.value.code == 2
    if MPI.COMM_WORLD.rank == 0:  # the other ranks stay quiet
        assert named in capsys.readouterr().err


def test_help_lists_the_prefixes() -> None:
    text = build_parser().commands["heat"].format_help()
    for prefix in PETSC_PREFIXES:
        assert f"-{prefix}" in text


# -- the program (a process of its own) ----------------------------------------------------------


@pytest.mark.serial
@pytest.mark.parametrize("separator", [[], ["--"]])
def test_readme_heat_with_a_ksp_monitor(tmp_path: Path, separator: list[str]) -> None:
    proc = _cqdlaser(
        *TINY_HEAT, "--steady", "--out", str(tmp_path), *separator, "-heat_ksp_monitor"
    )
    assert proc.returncode == 0, proc.stderr
    assert MONITOR in proc.stdout and "steady film max" in proc.stdout


@pytest.mark.serial
def test_steddy_names_steady() -> None:
    proc = _cqdlaser(*TINY_HEAT, "--steddy")
    assert proc.returncode == 2
    assert any("'--steady'" in line for line in proc.stderr.splitlines()), proc.stderr


@pytest.mark.serial
@pytest.mark.parametrize("mpi", [0, 2])
def test_json_stdout_is_one_document_whatever_petsc_prints(tmp_path: Path, mpi: int) -> None:
    proc = _cqdlaser(
        *TINY_HEAT, "--json", "--out", str(tmp_path), "-heat_ksp_monitor", "-heat_foo", "1", mpi=mpi
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["times_s"][-1] == pytest.approx(0.5e-6)
    # PETSc's monitor and its warning about the unused option went to stderr
    assert MONITOR in proc.stderr and "heat_foo" in proc.stderr


@pytest.mark.serial
def test_tables_on_stdout() -> None:
    materials = _cqdlaser("materials")
    assert materials.returncode == 0, materials.stderr
    assert materials.stdout.startswith("material ") and "sapphire" in materials.stdout
    assert "sources:" in materials.stdout and "sapphire" not in materials.stderr
    studies = _cqdlaser("list")
    assert studies.returncode == 0, studies.stderr
    assert "fig4b" in studies.stdout and "fig4b" not in studies.stderr
    listed = json.loads(_cqdlaser("list", "--json").stdout)
    assert "fig4b" in listed["studies"]
