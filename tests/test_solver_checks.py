"""No silent wrong answer: every linear solve is checked by its true residual, every transient by
its energy balance, every eigenpair by its residual. Options that make a solver return a wrong
answer (set here in the PETSc database under the solvers' prefixes, as the command line sets
them) raise ``SolverError`` naming the options in effect; right answers pass their checks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest

from cqdlaser.geometry.config import load_device
from cqdlaser.geometry.stack import build_stack
from cqdlaser.physics import heat as heat_module
from cqdlaser.physics._petsc import SolverError
from cqdlaser.physics.heat import ENERGY_BALANCE_RTOL, HeatProblem
from cqdlaser.physics.homogenisation import effective_conductivity
from cqdlaser.physics.modes import stack_modes
from cqdlaser.physics.permittivity import region_permittivity
from cqdlaser.studies.thermal import heat_materials, heat_mesh

CONFIGS = Path(__file__).parent.parent / "studies" / "configs"
PAPER = CONFIGS / "paper_organic_mgf2.toml"
COARSE_DEVICE = ["heat.mesh=device", "mesh.scale=4", "substrate.thickness_um=100"]


@pytest.fixture
def petsc_options() -> Iterator[dict[str, str]]:
    """Options put into the PETSc database by the test (as the command line would), removed
    afterwards."""
    from petsc4py import PETSc

    placed: dict[str, str] = {}
    yield placed
    opts = PETSc.Options()
    for name, value in placed.items():
        assert opts.hasName(name) or value == "", name
    for name in placed:
        if opts.hasName(name):
            opts.delValue(name)


def _set(placed: dict[str, str], **options: str) -> None:
    from petsc4py import PETSc

    opts = PETSc.Options()
    for name, value in options.items():
        opts[name] = value
        placed[name] = value


def _heat(overrides: list[str], **settings) -> HeatProblem:
    device = load_device(PAPER, overrides)
    comm = MPI.COMM_WORLD
    return HeatProblem.from_device(
        device, heat_mesh(device, comm), heat_materials(device, comm), **settings
    )


def _assert_names_jacobi(error: SolverError, key: str) -> None:
    assert error.options[key] == "jacobi", error.options
    assert "jacobi" in str(error)
    assert not isinstance(error, SystemError)


def test_steady_heat_with_a_preconditioner_as_solver_raises(petsc_options):
    """``-heat_pc_type jacobi`` on the direct solver (``preonly``) used to return 311 K for
    1020 K; now the true residual fails and the error names the option."""
    _set(petsc_options, heat_pc_type="jacobi")
    with _heat(["heat.mesh=axisymmetric"]) as problem, pytest.raises(SolverError) as failure:
        problem.steady()
    error = failure.value
    assert error.reason_name == "TRUE_RESIDUAL" and error.prefix == "heat_"
    _assert_names_jacobi(error, "pc_type")
    assert error.options["ksp_type"] == "preonly"


def test_transient_with_a_preconditioner_as_solver_raises(petsc_options):
    """The transient used to end at the sink temperature: its first step fails its check."""
    _set(petsc_options, heat_pc_type="jacobi", heat_ksp_type="preonly")
    with _heat(["heat.mesh=stack"]) as problem, pytest.raises(SolverError) as failure:
        problem.run(1e-6)
    _assert_names_jacobi(failure.value, "pc_type")


def test_energy_balance_catches_a_wrong_solution(monkeypatch):
    """With the residual check disabled, the energy balance of the step still fails."""
    monkeypatch.setattr(heat_module, "check_linear_solve", lambda *a, **k: 0.0)
    with _heat(["heat.mesh=stack"], petsc_options={"pc_type": "jacobi"}) as problem:
        with pytest.raises(SolverError, match="ENERGY_BALANCE") as failure:
            problem.run(1e-6)
    assert failure.value.options["pc_type"] == "jacobi"


def test_options_that_make_no_solver_raise_a_solver_error(petsc_options):
    """ILU with MUMPS as the factorisation package cannot be set up: a SolverError, not a
    bare PETSc error."""
    _set(petsc_options, heat_pc_type="ilu", heat_ksp_type="gmres")
    with pytest.raises(SolverError, match="SETUP_FAILED") as failure:
        _heat(["heat.mesh=stack"])
    assert failure.value.options["pc_type"] == "ilu"


def test_newton_checks_its_residual(petsc_options):
    """Newton with linear solves that solve nothing does not return its iterate."""
    _set(petsc_options, heat_snes_pc_type="jacobi", heat_snes_snes_max_it="3")
    with _heat(["heat.mesh=stack", "heat.nonlinear=true"]) as problem:
        assert problem.nonlinear
        with pytest.raises(SolverError) as failure:
            problem.steady()
    assert failure.value.prefix == "heat_snes_"
    _assert_names_jacobi(failure.value, "pc_type")


def _stack_modes(config: Path, polarisation: str = "TE") -> list:
    device = load_device(config)
    stack = build_stack(device, MPI.COMM_WORLD, optical=True)
    eps = region_permittivity(device, list(stack.regions))
    return stack_modes(stack, eps, device.optics.wavelength, polarisation)


def test_modes_with_a_broken_spectral_transform_raise(petsc_options):
    """``-modes_stack_st_pc_type jacobi`` used to return no modes; its eigenpairs fail their
    residuals."""
    _set(petsc_options, modes_stack_st_pc_type="jacobi")
    with pytest.raises(SolverError, match="EIGENPAIR_RESIDUAL") as failure:
        _stack_modes(PAPER)
    _assert_names_jacobi(failure.value, "st_pc_type")


def test_modes_with_a_failing_inner_solver_raise_a_solver_error(petsc_options):
    """A KSP failing inside the spectral transform used to surface as a ``SystemError``."""
    _set(
        petsc_options,
        modes_stack_st_ksp_type="cg",
        modes_stack_st_pc_type="none",
        modes_stack_st_ksp_max_it="3",
    )
    with pytest.raises(SolverError) as failure:
        _stack_modes(PAPER)
    assert failure.value.options["st_ksp_type"] == "cg"


def test_modes_with_a_target_away_from_the_guided_range_raise(petsc_options):
    """Right eigenpairs that miss the guided range are no proof that nothing is guided."""
    _set(petsc_options, modes_stack_eps_target="-50")
    with pytest.raises(SolverError, match="MISSED_GUIDED_RANGE"):
        _stack_modes(PAPER)


def test_no_guided_mode_is_a_physical_answer():
    """A film on silicon (n = 3.85, above the film's) guides nothing: an empty list, no error;
    the paper stack guides modes whose residuals are small."""
    assert _stack_modes(CONFIGS / "si_sio2_cladding.toml") == []
    assert len(_stack_modes(PAPER)) >= 1
    assert len(_stack_modes(CONFIGS / "al_mgf2_cladding.toml", "TM")) >= 1  # a lossy pencil


def test_homogenisation_cell_solves_are_checked(petsc_options):
    from cqdlaser.geometry.cell import build_cell
    from cqdlaser.physics.materials import region_materials

    device = load_device(PAPER, ["mesh.scale=3"])
    cell = build_cell(device, MPI.COMM_WORLD, optical=False)
    materials = region_materials(device)
    k = effective_conductivity(cell, materials)
    assert all(np.isfinite(k))
    _set(petsc_options, homog_pc_type="jacobi")
    with pytest.raises(SolverError, match="TRUE_RESIDUAL") as failure:
        effective_conductivity(cell, materials)
    _assert_names_jacobi(failure.value, "pc_type")


def _run_checks(problem: HeatProblem, end_time: float) -> tuple[float, float, float]:
    """Run a transient and the steady state; return the largest true residual of the linear
    solves, the largest step energy defect (relative to its terms) and the run's
    ``|balance_error| / energy in`` (the backward-Euler check; BDF2's holds its quadrature)."""
    residuals, defects = [], []
    check = problem._check_step_balance

    def recording(*args):
        check(*args)
        residuals.append(problem._last_residual)
        defect, scale = problem._step_balance
        defects.append(abs(defect) / scale)

    problem._check_step_balance = recording
    history = problem.run(end_time)
    problem.steady()
    residuals.append(problem._last_residual)
    balance = float(np.max(np.abs(history.balance_error)) / history.energy_in[-1])
    return max(residuals), max(defects), balance


@pytest.mark.parametrize(
    ("overrides", "direct"),
    [
        (["heat.mesh=stack"], True),
        (["heat.mesh=stack"], False),
        (["heat.mesh=axisymmetric"], True),
        (["heat.mesh=axisymmetric"], False),
        (COARSE_DEVICE, False),
    ],
    ids=["stack-mumps", "stack-cg", "axisymmetric-mumps", "axisymmetric-cg", "device-cg"],
)
@pytest.mark.parametrize("scheme", ["backward-euler", "bdf2"])
def test_right_answers_pass_their_checks(overrides, direct, scheme):
    """No false alarm: the paper device's runs pass every check with a wide margin."""
    settings = {"scheme": scheme} | ({} if direct else {"direct_max_dofs": 0})
    with _heat([*overrides, "heat.end_time_us=5"], **settings) as problem:
        residual, defect, balance = _run_checks(problem, 5e-6)
        solver = problem.linear_solver
    print(
        f"{overrides[0]} {scheme} {solver}: max ||b - Ax||/||b|| {residual:.1e}, step energy "
        f"defect {defect:.1e}, max |in - stored - out| / in {balance:.1e}"
    )
    assert residual < (1e-10 if direct else 1e-6)
    assert defect < 1e-2 * ENERGY_BALANCE_RTOL
    if scheme == "backward-euler":
        assert balance < 1e-2 * ENERGY_BALANCE_RTOL


@pytest.mark.serial
def test_cli_with_wrong_options_fails(tmp_path):
    """Through the command line: a non-zero exit and no result claiming success."""
    out = tmp_path / "heat"
    command = [
        sys.executable,
        "-m",
        "cqdlaser",
        "heat",
        str(PAPER),
        "--steady",
        "--set",
        "heat.mesh=stack",
        "--out",
        str(out),
        "-heat_pc_type",
        "jacobi",
        "-heat_ksp_type",
        "preonly",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0, done.stdout + done.stderr
    result = out / "heat.json"
    if result.exists():
        status = json.loads(result.read_text()).get("status")
        assert status not in (None, "ok", "success", "complete"), status
