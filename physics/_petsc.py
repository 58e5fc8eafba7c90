"""Prefixed PETSc options, set for one set-up or solve only; the options in effect read back from
the solvers; the true-residual check of linear solves; and the one solver error, shared by every
solver."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from petsc4py import PETSc

KRYLOV_RESIDUAL_FACTOR = 100.0
"""A Krylov solve passes its check when ``||b - A x|| <= 100 rtol ||b||`` (or ``100 atol``): the
KSP's own test is on its (preconditioned, recurrence) residual, which may differ from the true
one by this much on a well-posed problem."""

DIRECT_RESIDUAL_FLOOR = 1e-6
"""The least relative residual ``||b - A x|| / ||b||`` a solve must reach: the whole tolerance of
a solve without Krylov iterations (``preonly``, an LU factorisation), a floor under a Krylov
solve's. MUMPS reaches 1e-13 to 1e-10 on the heat and cell problems; a ``preonly`` solve
with a mere preconditioner (``-heat_pc_type jacobi``) leaves 1e-1 to 1."""

PETSC_FAILURES = (PETSc.Error, SystemError)
"""What a failing PETSc/SLEPc call raises: ``PETSc.Error``, or ``SystemError`` when the error
surfaces after the call returned (a KSP failing inside SLEPc's spectral transform)."""


@contextmanager
def options_set(prefix: str, options: Mapping[str, Any]) -> Iterator[None]:
    """Put ``options`` under ``prefix`` in the PETSc database for the duration.

    Values already there (from the command line, ``-heat_ksp_rtol 1e-8``) win and are left in
    place; the ones placed here are removed afterwards, so objects created during a set-up
    (multigrid levels) see them, and nothing leaks into later solves.
    """
    opts = PETSc.Options()
    placed = []
    for key, value in options.items():
        name = f"{prefix}{key}"
        if opts.hasName(name):
            continue
        opts[name] = value
        placed.append(name)
    try:
        yield
    finally:
        for name in placed:
            opts.delValue(name)


def configure(obj: Any, prefix: str, options: Mapping[str, Any], solver: str = "") -> None:
    """Give a KSP/SNES/EPS the prefix and apply ``options`` under it (command-line values win).

    Raises:
        SolverError: The options do not make a solver (``-heat_pc_type ilu`` with MUMPS as the
            factorisation package, an unknown type), with the options in effect.
    """
    with options_set(prefix, options):
        obj.setOptionsPrefix(prefix)
        try:
            obj.setFromOptions()
        except PETSC_FAILURES as error:
            raise SolverError(
                solver or f"PETSc {type(obj).__name__}",
                prefix,
                0,
                "SETUP_FAILED",
                options_in_effect(prefix, options, obj),
                failed="could not be set up",
            ) from error


def _ksp_settings(ksp: PETSc.KSP, key: str = "") -> dict[str, Any]:
    """The type, preconditioner and tolerances a KSP holds (keys as options, after ``key``)."""
    pc = ksp.getPC()
    rtol, _, _, max_it = ksp.getTolerances()
    out = {
        f"{key}ksp_type": str(ksp.getType()),
        f"{key}pc_type": str(pc.getType()),
        f"{key}ksp_rtol": rtol,
        f"{key}ksp_max_it": max_it,
    }
    if pc.getType() in ("lu", "cholesky", "ilu", "icc"):
        out[f"{key}pc_factor_mat_solver_type"] = str(pc.getFactorSolverType())
    return out


def solver_settings(obj: Any) -> dict[str, Any]:
    """The settings a KSP, SNES or SLEPc EPS holds now, keyed as options without the prefix
    (``ksp_type``, ``pc_type``; ``st_pc_type`` for an EPS): what the solver actually used."""
    try:
        if isinstance(obj, PETSc.KSP):
            return _ksp_settings(obj)
        if isinstance(obj, PETSc.SNES):
            return {"snes_type": str(obj.getType()), **_ksp_settings(obj.getKSP())}
        if hasattr(obj, "getST"):
            st = obj.getST()
            return {
                "eps_type": str(obj.getType()),
                "eps_tol": obj.getTolerances()[0],
                "st_type": str(st.getType()),
                **_ksp_settings(st.getKSP(), "st_"),
            }
    except PETSC_FAILURES:
        pass
    return {}


def options_in_effect(
    prefix: str, options: Mapping[str, Any], obj: Any | None = None
) -> dict[str, Any]:
    """The options a solver ran with, keyed without the prefix: ``options`` (defaults and
    overrides), then the PETSc database's values under ``prefix`` (the command line's, which win
    over them), then the settings read back from the solver ``obj`` itself."""
    database = {
        key[len(prefix) :]: value
        for key, value in PETSc.Options().getAll().items()
        if key.startswith(prefix)
    }
    return {**options, **database, **(solver_settings(obj) if obj is not None else {})}


def reason_name(enum: Any, code: int) -> str:
    """The name of a converged reason ``code`` in a PETSc/SLEPc ``ConvergedReason`` enum
    (``PETSc.KSP.ConvergedReason``, ``PETSc.SNES.ConvergedReason``, ``SLEPc.EPS.ConvergedReason``),
    or the code itself when the enum has no name for it."""
    names = {v: k for k, v in vars(enum).items() if isinstance(v, int)}
    return names.get(code, str(code))


class SolverError(RuntimeError):
    """A PETSc/SLEPc solve that did not converge, or whose answer failed its check.

    Attributes:
        solver: What failed, e.g. ``"heat linear solver"``.
        prefix: The solver's options prefix.
        reason: The converged reason (<= 0), or the code the caller checked (0 for a failed check).
        reason_name: Its name in the solver's ``ConvergedReason`` enum, or the check that failed
            (``"TRUE_RESIDUAL"``, ``"EIGENPAIR_RESIDUAL"``, ``"ENERGY_BALANCE"``,
            ``"SETUP_FAILED"``).
        options: The options in effect under the prefix (defaults, overrides, command line and
            the solver's own settings).
    """

    def __init__(
        self,
        solver: str,
        prefix: str,
        reason: int,
        reason_name: str,
        options: Mapping[str, Any],
        detail: str = "",
        *,
        failed: str = "did not converge",
    ) -> None:
        self.solver = solver
        self.prefix = prefix
        self.reason = reason
        self.reason_name = reason_name
        self.options = dict(options)
        super().__init__(
            f"{solver} (prefix {prefix!r}) {failed}: reason {reason} ({reason_name})"
            f"{detail}; options {self.options}"
        )

    @classmethod
    def of(
        cls,
        solver: str,
        obj: Any,
        enum: Any,
        prefix: str,
        options: Mapping[str, Any],
        detail: str = "",
    ) -> SolverError:
        """The error for the KSP/SNES/EPS ``obj``, from its converged reason (names in ``enum``)."""
        reason = int(obj.getConvergedReason())
        return cls(
            solver,
            prefix,
            reason,
            reason_name(enum, reason),
            options_in_effect(prefix, options, obj),
            detail,
        )

    @classmethod
    def failed_check(
        cls, solver: str, prefix: str, check: str, options: Mapping[str, Any], detail: str
    ) -> SolverError:
        """The error of a solve that returned but whose answer failed the check ``check``."""
        return cls(solver, prefix, 0, check, options, detail, failed="gave a wrong answer")


def residual_tolerance(ksp: PETSc.KSP) -> tuple[float, float]:
    """(relative, absolute) bounds on ``||b - A x||`` a solve of ``ksp`` must meet.

    ``preonly`` (a direct solve): :data:`DIRECT_RESIDUAL_FLOOR` relative, no absolute; a Krylov
    method: :data:`KRYLOV_RESIDUAL_FACTOR` times its ``rtol`` and ``atol``, at least the floor.
    """
    if ksp.getType() == PETSc.KSP.Type.PREONLY:
        return DIRECT_RESIDUAL_FLOOR, 0.0
    rtol, atol, _, _ = ksp.getTolerances()
    return max(KRYLOV_RESIDUAL_FACTOR * rtol, DIRECT_RESIDUAL_FLOOR), KRYLOV_RESIDUAL_FACTOR * atol


def relative_residual(A: PETSc.Mat, x: PETSc.Vec, b: PETSc.Vec, work: PETSc.Vec) -> float:
    """``||b - A x|| / ||b||`` (``||b - A x||`` when ``b = 0``), collective; ``work`` is
    overwritten with the residual."""
    A.mult(x, work)
    work.aypx(-1.0, b)
    r, norm_b = work.norm(), b.norm()
    return r / norm_b if norm_b > 0.0 else r


def preconditioned_residual(ksp: PETSc.KSP, r: PETSc.Vec, b: PETSc.Vec) -> float | None:
    """The true residual ``r`` relative to ``b`` in the norm the Krylov method tested:
    ``||B r|| / ||B b||`` (preconditioned) or ``sqrt(r.Br / b.Bb)`` (natural), ``B`` the
    preconditioner; None for other norms and for ``preonly``. Collective.

    A Krylov method stops on its own norm; on a badly scaled operator (the heat equation's
    steady state on 40 nm cells under a 500 um substrate) the plain ``||r|| / ||b||`` of a
    right answer can exceed ``rtol`` a hundredfold while this one does not.
    """
    kinds = PETSc.KSP.NormType
    kind = ksp.getNormType()
    if ksp.getType() == PETSc.KSP.Type.PREONLY or kind not in (kinds.PRECONDITIONED, kinds.NATURAL):
        return None
    pc = ksp.getPC()
    br, bb = r.duplicate(), b.duplicate()
    try:
        pc.apply(r, br)
        pc.apply(b, bb)
        if kind == kinds.NATURAL:
            num, den = abs(r.dot(br)) ** 0.5, abs(b.dot(bb)) ** 0.5
        else:
            num, den = br.norm(), bb.norm()
    finally:
        br.destroy()
        bb.destroy()
    return num / den if den > 0.0 else num


def check_linear_solve(
    ksp: PETSc.KSP,
    b: PETSc.Vec,
    x: PETSc.Vec,
    *,
    solver: str,
    prefix: str,
    options: Mapping[str, Any],
    work: PETSc.Vec | None = None,
) -> float:
    """Check a solve of ``ksp`` by its true residual, ``||b - A x|| / ||b||`` with ``A`` the
    KSP's operator, against :func:`residual_tolerance`; return it. Collective.

    A Krylov solve whose plain residual fails passes when the true residual in the norm it
    tested (:func:`preconditioned_residual`) meets the same tolerance.

    The converged reason alone does not tell a right answer: a ``preonly`` KSP with a
    preconditioner that is no solver (``jacobi``) "converges" after one application.

    Raises:
        SolverError: The residual exceeds the tolerance (or is NaN), with the options in effect.
    """
    A = ksp.getOperators()[0]
    rtol, atol = residual_tolerance(ksp)
    scratch = work if work is not None else b.duplicate()
    try:
        relative = relative_residual(A, x, b, scratch)
        norm_b = b.norm()
        if relative <= rtol or (norm_b > 0.0 and relative * norm_b <= atol):
            return relative
        preconditioned = preconditioned_residual(ksp, scratch, b)
        if preconditioned is not None and preconditioned <= rtol:
            return relative
    finally:
        if work is None:
            scratch.destroy()
    raise SolverError.failed_check(
        solver,
        prefix,
        "TRUE_RESIDUAL",
        options_in_effect(prefix, options, ksp),
        f", ||b - A x|| / ||b|| = {relative:.3g} > {rtol:.3g}",
    )
