"""One shift-and-invert generalised eigensolve with prefixed options, shared by the mode solvers."""

from __future__ import annotations

from typing import Any

from petsc4py import PETSc
from slepc4py import SLEPc

from cqdlaser.physics._petsc import SolverError, configure


def with_direct_solver(
    defaults: dict[str, Any], petsc_options: dict[str, Any] | Any | None
) -> dict[str, Any]:
    """``defaults`` with the shift-and-invert factorisation on MUMPS (else SuperLU_dist) where
    PETSc has it, then the user's overrides."""
    options = dict(defaults)
    petsc = PETSc.Sys()
    for package in ("mumps", "superlu_dist"):
        if petsc.hasExternalPackage(package):
            options["st_pc_factor_mat_solver_type"] = package
            break
    options.update(petsc_options or {})
    return options


def solve_eigenproblem(
    A: PETSc.Mat,
    B: PETSc.Mat,
    *,
    prefix: str,
    target: float,
    nev: int,
    options: dict[str, Any],
    hermitian: bool = True,
) -> tuple[SLEPc.EPS, dict[str, Any]]:
    """Solve A x = lambda B x for the eigenvalues nearest ``target``.

    The options (``eps_target``, ``eps_nev`` and ``options``) are set under ``prefix`` for this
    solve only; command-line options under the same prefix win. The caller destroys the
    returned solver.

    Raises:
        SolverError: SLEPc did not converge or found no eigenpair, with its reason and the
            options in effect.
    """
    solver = SLEPc.EPS().create(A.getComm())
    solver.setOperators(A, B)
    kind = SLEPc.EPS.ProblemType
    solver.setProblemType(kind.GHEP if hermitian else kind.GNHEP)
    solver.setWhichEigenpairs(SLEPc.EPS.Which.TARGET_MAGNITUDE)
    run = {"eps_target": target, "eps_nev": nev, **options}
    configure(solver, prefix, run)
    solver.solve()
    nconv = solver.getConverged()
    if solver.getConvergedReason() <= 0 or nconv < 1:
        error = SolverError.of(
            "SLEPc EPS",
            solver,
            SLEPc.EPS.ConvergedReason,
            prefix,
            run,
            detail=f", {nconv} converged eigenpairs",
        )
        solver.destroy()
        raise error
    return solver, run
