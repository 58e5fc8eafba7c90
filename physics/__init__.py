"""Equations and solvers on the device meshes: materials, heat, modes, laser."""

from cqdlaser.geometry import _compat  # noqa: F401  (orders the DOLFINx imports)
