"""The one place that orders the DOLFINx stack's imports and absorbs version drift.

``dolfinx_solver`` (the PyPI wheel) must be imported before ``dolfinx``/``petsc4py``/``slepc4py``;
an environment that ships DOLFINx otherwise (the official images) has no such module.
"""

from __future__ import annotations

try:
    import dolfinx_solver  # noqa: F401
except ImportError:  # DOLFINx from a container image or a cluster module
    pass
