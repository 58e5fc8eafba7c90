"""Equations and solvers on the device meshes: materials, heat, modes, laser."""

from geometry import _compat  # noqa: F401  (orders the DOLFINx imports)
