"""The device a design study runs on: the user's (a config file, or a Device given to the API) or,
by default, the paper's laser, with the name and short description every study output carries.

A design study (``bragg``, ``sensitivity``, ``lasing_duration``, ``cw_feasibility``, ``fig4d``)
asks its question around one device; given none, it studies the paper's and gives the paper's
numbers unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpi4py import MPI

from cqdlaser.geometry.config import device_to_dict
from cqdlaser.geometry.device import Device
from cqdlaser.studies.common import config_path, paper_device
from cqdlaser.studies.output import logger

PAPER_DEFAULT = "paper default"
"""The source of a study's device when the user gives none."""

PAPER_LASER = "paper_inorganic_mgf2"
"""The paper's laser (Fig. 3): the default device of every design study."""


def paper_laser_path() -> Path:
    """The config file of the paper's laser (what ``--set`` without a CONFIG changes)."""
    return config_path(PAPER_LASER)


@dataclass(frozen=True)
class StudyDevice:
    """A study's device and where it comes from.

    Attributes:
        device: The validated device.
        source: Its config path, ``"paper default"`` (with any ``--set`` overrides named), or how
            an API caller named it.
    """

    device: Device
    source: str = PAPER_DEFAULT

    @property
    def is_paper(self) -> bool:
        """Whether this is the paper's device as the study's constants describe it (no user
        device: the study reproduces the paper's numbers)."""
        return self.source == PAPER_DEFAULT

    def description(self) -> str:
        """One line: film material and thickness, grating period, cap, cladding, substrate and
        the lasing wavelength."""
        d = self.device
        parts = [f"film {d.film.material} {d.film.thickness_nm:g} nm"]
        parts.append("no grating" if d.grating is None else f"period {d.grating.period_nm:g} nm")
        if d.cap is not None:
            parts.append(f"cap {d.cap.material} {d.cap.thickness_nm:g} nm")
        parts.append(
            "no cladding"
            if d.cladding is None
            else f"cladding {d.cladding.material} {d.cladding.thickness_nm:g} nm"
        )
        parts.append(f"substrate {d.substrate.material}")
        parts.append(f"{d.optics.wavelength_nm:g} nm {d.optics.polarisation}")
        return ", ".join(parts)

    def variant(self, overrides: Iterable[str]) -> Device:
        """The device with ``section.key=value`` overrides applied (validated as loaded)."""
        from cqdlaser.studies.api import load_device

        return load_device(self.device, overrides)

    def to_dict(self) -> dict[str, Any]:
        """Source, description and the device's TOML tables (for the study's JSON)."""
        return {
            "source": self.source,
            "description": self.description(),
            "config": device_to_dict(self.device),
        }

    def label(self) -> dict[str, str]:
        """Source and description (for a study's summary)."""
        return {"source": self.source, "description": self.description()}


def study_device(
    device: StudyDevice | Device | None,
    study: str,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    config: str = PAPER_LASER,
    overrides: Iterable[str] = (),
) -> StudyDevice:
    """The device a study runs on (``config`` with ``overrides`` when none is given), logged on
    rank 0 as ``<study> on <source>: <description>``.

    Args:
        device: The user's device (a bare Device is named "given Device"), or None.
        study: The study's name (for the log line).
        comm: Communicator (rank 0 logs).
        config: The paper config of the default device.
        overrides: Overrides of the default device (the study's own settings).
    """
    if device is None:
        spec = StudyDevice(paper_device(config, list(overrides)))
    elif isinstance(device, Device):
        spec = StudyDevice(device, "given Device")
    else:
        spec = device
    if comm.rank == 0:
        logger.info("%s on %s: %s", study, spec.source, spec.description())
    return spec
