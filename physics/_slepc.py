"""One shift-and-invert generalised eigensolve with prefixed options, its eigenpairs checked by
their residuals, shared by the mode solvers."""

from __future__ import annotations

from typing import Any

from petsc4py import PETSc
from slepc4py import SLEPc

from cqdlaser.physics._petsc import (
    PETSC_FAILURES,
    SolverError,
    configure,
    options_in_effect,
    reason_name,
)

EIGENPAIR_RESIDUAL_FACTOR = 1e3
"""An eigenpair passes when its residual (:func:`eigenpair_residual`) is at most this times the
solver's ``eps_tol``, and at least :data:`EIGENPAIR_RESIDUAL_FLOOR`: SLEPc's test is on the
shift-and-invert operator, so the residual of the original pencil can be larger."""

EIGENPAIR_RESIDUAL_FLOOR = 1e-5
"""The least relative eigenpair residual accepted. Right answers: 1e-13 to 3e-11 (stack modes,
band edges), 2e-7 for TM over aluminium (a pencil scaled by ``1/eps`` of the metal); the pairs of
a spectral transform that inverts nothing (``-modes_stack_st_pc_type jacobi``): about 1."""


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
    try:
        configure(solver, prefix, run, "SLEPc EPS")
        solver.solve()
    except PETSC_FAILURES as error:
        inner = int(solver.getST().getKSP().getConvergedReason())
        name = reason_name(PETSc.KSP.ConvergedReason, inner)
        detail = f", its spectral transform's KSP: reason {inner} ({name})"
        failure = SolverError.of(
            "SLEPc EPS", solver, SLEPc.EPS.ConvergedReason, prefix, run, detail
        )
        solver.destroy()
        raise failure from error
    except SolverError:
        solver.destroy()
        raise
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
    try:
        check_eigenpairs(solver, A, B, prefix=prefix, options=run)
    except SolverError:
        solver.destroy()
        raise
    return solver, run


def eigenpair_residual(
    A: PETSc.Mat, B: PETSc.Mat, value: complex, xr: PETSc.Vec, xi: PETSc.Vec
) -> float:
    """``||A x - lambda B x|| / (|lambda| ||B x||)`` of the eigenpair ``(value, xr + i xi)``
    (``xi`` zero for a real one); the denominator is ``||A x||`` when that is larger (an
    eigenvalue near 0). Collective."""
    lam_r, lam_i = value.real, value.imag
    work = [A.createVecLeft() for _ in range(4)]
    ar, ai, br, bi = work
    try:
        A.mult(xr, ar)
        A.mult(xi, ai)
        B.mult(xr, br)
        B.mult(xi, bi)
        norm_a = (ar.norm() ** 2 + ai.norm() ** 2) ** 0.5
        norm_b = (br.norm() ** 2 + bi.norm() ** 2) ** 0.5
        # (A - lambda B)(xr + i xi), real and imaginary parts
        ar.axpy(-lam_r, br)
        ar.axpy(lam_i, bi)
        ai.axpy(-lam_r, bi)
        ai.axpy(-lam_i, br)
        residual = (ar.norm() ** 2 + ai.norm() ** 2) ** 0.5
    finally:
        for vec in work:
            vec.destroy()
    scale = max(abs(value) * norm_b, norm_a)
    return residual / scale if scale > 0.0 else residual


def eigenpair_tolerance(solver: SLEPc.EPS) -> float:
    """The residual an eigenpair of ``solver`` must meet: :data:`EIGENPAIR_RESIDUAL_FACTOR`
    times its ``eps_tol``, at least :data:`EIGENPAIR_RESIDUAL_FLOOR`."""
    return max(EIGENPAIR_RESIDUAL_FACTOR * solver.getTolerances()[0], EIGENPAIR_RESIDUAL_FLOOR)


def check_eigenpairs(
    solver: SLEPc.EPS,
    A: PETSc.Mat,
    B: PETSc.Mat,
    *,
    prefix: str,
    options: dict[str, Any],
) -> list[float]:
    """Check every converged eigenpair of ``solver`` by :func:`eigenpair_residual`; return the
    residuals. Collective.

    SLEPc reports pairs of the operator it iterated with: with a spectral transform that does
    not invert ``A - sigma B`` (``-modes_stack_st_pc_type jacobi``) they are no eigenpairs of the
    pencil, and the converged reason does not tell.

    Raises:
        SolverError: A residual above :func:`eigenpair_tolerance`, with the options in effect.
    """
    tolerance = eigenpair_tolerance(solver)
    xr, xi = A.createVecs()
    residuals = []
    try:
        for i in range(solver.getConverged()):
            value = solver.getEigenpair(i, xr, xi)
            residual = eigenpair_residual(A, B, complex(value), xr, xi)
            residuals.append(residual)
            if not residual <= tolerance:
                raise SolverError.failed_check(
                    "SLEPc EPS",
                    prefix,
                    "EIGENPAIR_RESIDUAL",
                    options_in_effect(prefix, options, solver),
                    f", eigenpair {i} (lambda = {complex(value):.6g}): ||A x - lambda B x|| / "
                    f"(|lambda| ||B x||) = {residual:.3g} > {tolerance:.3g}",
                )
    finally:
        xr.destroy()
        xi.destroy()
    return residuals
