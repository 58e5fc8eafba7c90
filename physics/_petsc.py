"""Prefixed PETSc options, set for one set-up or solve only, shared by every solver."""

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
