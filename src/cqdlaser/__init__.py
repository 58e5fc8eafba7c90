"""cqdlaser: heat and optical modes of colloidal-quantum-dot DFB lasers (FEM, MPI).

The public API, the code path of the ``cqdlaser`` command line::

    import cqdlaser

    device = cqdlaser.load_device("my_device.toml", ["substrate.material=sapphire"])
    modes = cqdlaser.modes(device)           # guided TE/TM modes of the layer stack
    edges = cqdlaser.bands(device)           # DFB band edges at the Gamma point
    temp = cqdlaser.heat(device)             # film temperature vs time under the pump
    laser = cqdlaser.lasing(device)          # lasing duration, thermal resistance, CW window
    print(laser.lasing_duration_s, laser.cw_possible)

Functions:
    load_device: A validated :class:`Device` from a TOML file, a mapping or a Device, with
        ``"section.key=value"`` overrides.
    mesh: Build one mesh kind of a device (:class:`MeshResult`).
    heat: Transient or steady film temperature (:class:`HeatResult`).
    heat_problem: The composed :class:`~cqdlaser.physics.heat.HeatProblem` of a device, for
        scripts that step the solver themselves.
    modes: Guided modes of the layer stack (:class:`ModesResult`).
    bands: DFB band edges at the Gamma point (:class:`BandsResult`).
    lasing: Lasing duration, thermal resistance, CW feasibility (:class:`LasingResult`).
    list_studies: The studies that :func:`run_study` knows, with their descriptions.
    run_study: Run a study (a paper figure, a design study) by name (:class:`StudyResult`).

Classes:
    Device: The device and run description (frozen dataclasses, one per TOML section).
    ConfigError: A wrong configuration value: its key, value and allowed range.
    MeshResult, HeatResult, ModesResult, StackModeResult, BandsResult, BandEdgeResult,
    LasingResult, StudyResult: Frozen results with ``to_dict``, ``to_json``, ``to_csv`` and,
        where natural, ``plot``; their fields mirror the JSON keys of the matching command.

Every function is collective over its ``comm`` (default ``MPI.COMM_WORLD``).
"""

from cqdlaser._version import __version__
from cqdlaser.geometry import _compat  # noqa: F401  (orders the DOLFINx imports)
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.errors import ConfigError
from cqdlaser.studies.api import (
    bands,
    heat,
    lasing,
    list_studies,
    load_device,
    mesh,
    modes,
    run_study,
)
from cqdlaser.studies.results import (
    BandEdgeResult,
    BandsResult,
    HeatResult,
    LasingResult,
    MeshResult,
    ModesResult,
    StackModeResult,
    StudyResult,
)
from cqdlaser.studies.thermal import heat_problem

__all__ = [
    "BandEdgeResult",
    "BandsResult",
    "ConfigError",
    "Device",
    "HeatResult",
    "LasingResult",
    "MeshResult",
    "ModesResult",
    "StackModeResult",
    "StudyResult",
    "__version__",
    "bands",
    "heat",
    "heat_problem",
    "lasing",
    "list_studies",
    "load_device",
    "mesh",
    "modes",
    "run_study",
]
