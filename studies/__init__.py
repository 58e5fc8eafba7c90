"""Experiments that combine geometry and physics, result writing, figures and the CLI."""

from cqdlaser.geometry import _compat  # noqa: F401  (orders the DOLFINx imports)
