"""Prefixed PETSc options, set for one set-up or solve only, and the one convergence-failure error,
shared by every solver."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from petsc4py import PETSc


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


def configure(obj: Any, prefix: str, options: Mapping[str, Any]) -> None:
    """Give a KSP/SNES/EPS the prefix and apply ``options`` under it (command-line values win)."""
    with options_set(prefix, options):
        obj.setOptionsPrefix(prefix)
        obj.setFromOptions()


def options_in_effect(prefix: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with the values the PETSc database holds under ``prefix`` (the command line's,
    which win over them), keyed without the prefix."""
    database = {
        key[len(prefix) :]: value
        for key, value in PETSc.Options().getAll().items()
        if key.startswith(prefix)
    }
    return {**options, **database}


def reason_name(enum: Any, code: int) -> str:
    """The name of a converged reason ``code`` in a PETSc/SLEPc ``ConvergedReason`` enum
    (``PETSc.KSP.ConvergedReason``, ``PETSc.SNES.ConvergedReason``, ``SLEPc.EPS.ConvergedReason``),
    or the code itself when the enum has no name for it."""
    names = {v: k for k, v in vars(enum).items() if isinstance(v, int)}
    return names.get(code, str(code))


class SolverError(RuntimeError):
    """A PETSc/SLEPc solve that did not converge.

    Attributes:
        solver: What failed, e.g. ``"heat linear solver"``.
        prefix: The solver's options prefix.
        reason: The converged reason (<= 0), or the code the caller checked.
        reason_name: Its name in the solver's ``ConvergedReason`` enum.
        options: The options in effect under the prefix (defaults, overrides and command line).
    """

    def __init__(
        self,
        solver: str,
        prefix: str,
        reason: int,
        reason_name: str,
        options: Mapping[str, Any],
        detail: str = "",
    ) -> None:
        self.solver = solver
        self.prefix = prefix
        self.reason = reason
        self.reason_name = reason_name
        self.options = dict(options)
        super().__init__(
            f"{solver} (prefix {prefix!r}) did not converge: reason {reason} ({reason_name})"
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
            options_in_effect(prefix, options),
            detail,
        )
