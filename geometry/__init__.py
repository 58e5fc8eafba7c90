"""The device: its description (frozen dataclasses loaded from TOML) and its Gmsh meshes."""

from cqdlaser.geometry import _compat  # noqa: F401  (orders the DOLFINx imports)
