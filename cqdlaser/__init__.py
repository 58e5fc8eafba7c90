"""cqdlaser: heat and optical modes of colloidal-quantum-dot DFB lasers (FEM, MPI)."""

from cqdlaser._version import __version__
from cqdlaser.geometry import _compat  # noqa: F401  (orders the DOLFINx imports)

__all__ = ["__version__"]
