"""Typed results of the public API: frozen dataclasses whose fields mirror the CLI's JSON keys.

Every result carries its inputs (the :class:`~cqdlaser.geometry.device.Device`) and its
provenance (versions, MPI size, git revision, wall time), and offers ``to_dict()`` (the JSON
document of the matching ``cqdlaser`` command), ``to_json(path)``, ``to_csv(path)`` and, where a
picture is natural, ``plot(ax=None)``. Numbers are SI or carry their unit in the name
(``times_s``, ``film_max_temperature_k``, ``wavelength_nm``, ``loss_per_cm``). Files are written
atomically on rank 0 only, so a result can be saved from every rank of an MPI job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry.config import device_to_dict
from cqdlaser.geometry.device import Device
from cqdlaser.studies.output import write_csv, write_json

__all__ = [
    "BandEdgeResult",
    "BandsResult",
    "HeatResult",
    "LasingResult",
    "MeshResult",
    "ModesResult",
    "StackModeResult",
    "StudyResult",
]


def _plain(value: Any) -> Any:
    """A JSON-ready copy: nested results become dicts, tuples lists, numpy scalars floats."""
    if isinstance(value, _Row):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


class _Row:
    """A nested record (one mode, one band edge): ``to_dict()`` of its fields."""

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


class _Result:
    """What every result offers: dict/JSON/CSV views and its inputs and provenance.

    ``to_dict()`` holds every field except the device (given as ``inputs``, the TOML tables) and
    the provenance (merged in at the top level, as in every result file); fields listed in
    ``_omit_if_none`` are left out while None (transient-only keys of a steady run, ...).
    """

    _omit_if_none: ClassVar[frozenset[str]] = frozenset()
    _hidden: ClassVar[frozenset[str]] = frozenset({"device", "provenance"})

    def to_dict(self) -> dict[str, Any]:
        """The result as the JSON document of its ``cqdlaser`` command (inputs and provenance)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in self._hidden or (value is None and f.name in self._omit_if_none):
                continue
            out[f.name] = _plain(value)
        out.setdefault("status", "complete")  # a result object exists only for a run that ended
        device = getattr(self, "device", None)
        if device is not None:
            out["inputs"] = device_to_dict(device)
        return {**out, **_plain(getattr(self, "provenance", {}) or {})}

    def to_json(self, path: str | Path, comm: MPI.Comm = MPI.COMM_WORLD) -> Path:
        """Write :meth:`to_dict` as JSON (atomically, rank 0)."""
        return write_json(path, self.to_dict(), comm=comm)

    def table(self) -> dict[str, Sequence[Any]]:
        """The result's table, column name -> values (what :meth:`to_csv` writes)."""
        raise NotImplementedError

    def csv_metadata(self) -> dict[str, Any]:
        """What :meth:`to_csv` writes above the table (``# key: value`` lines)."""
        keys = ("heat_fraction", "heat_fraction_origin")
        return {k: getattr(self, k) for k in keys if hasattr(self, k)}

    def to_csv(self, path: str | Path, comm: MPI.Comm = MPI.COMM_WORLD) -> Path:
        """Write :meth:`table` as CSV (atomically, rank 0), :meth:`csv_metadata` above it."""
        return write_csv(path, self.table(), comm=comm, metadata=self.csv_metadata())


def _axes(ax: Any) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5, 3.5))
    return ax


@dataclass(frozen=True)
class MeshResult(_Result):
    """A built mesh: counts, quality, region measures (m^3, m^2 or m) and where it was written."""

    kind: str
    cells: int
    vertices: int
    min_quality: float
    regions: Mapping[str, float]
    boundaries: tuple[str, ...]
    untagged_cells: int
    build_s: float
    mpi_size: int
    out: str | None
    device: Device = field(repr=False)
    provenance: Mapping[str, Any] = field(default_factory=dict, repr=False)
    mesh_data: Any = field(default=None, repr=False, compare=False)
    _hidden: ClassVar[frozenset[str]] = frozenset({"device", "provenance", "mesh_data"})

    def table(self) -> dict[str, Sequence[Any]]:
        """One row per region: its name and measure."""
        return {"region": list(self.regions), "measure": list(self.regions.values())}


@dataclass(frozen=True)
class HeatResult(_Result):
    """Film temperature under the pump: the transient history, or the steady state.

    Transient runs fill ``times_s`` and the temperature histories (K); steady runs fill the
    ``steady_*`` values and ``thermal_resistance_k_cm2_per_kw`` (steady film-maximum rise per unit
    pump intensity).

    Solver statistics: ``linear_solver`` names the linear solver (``"mumps"``, ``"cg+gamg"``);
    transient runs also give ``krylov_iterations_per_step`` (mean) and ``krylov_iterations_max``
    over the steps and ``preconditioner_builds`` (factorisations for MUMPS); all three None when
    the steps are Newton solves (``heat.nonlinear``), which record none.

    ``status`` is ``"complete"`` (a run that fails or is interrupted returns no result and
    publishes no heat.json); ``resumed_from_step`` is the index of the time level a resumed run
    continued from (its history is the whole run's), and absent otherwise.
    """

    steady: bool
    mesh: str
    dofs: int
    heat_fraction: float
    heat_fraction_origin: str
    absorbed_power_w: float
    sink_temperature_k: float
    grating_conductivity_w_mk: tuple[float, float, float] | None
    times_s: np.ndarray | None = None
    film_max_temperature_k: np.ndarray | None = None
    film_mean_spot_temperature_k: np.ndarray | None = None
    interface_temperature_k: np.ndarray | None = None
    steps: int | None = None
    energy_balance_error_j: float | None = None
    steady_film_max_temperature_k: float | None = None
    steady_film_mean_spot_temperature_k: float | None = None
    steady_interface_temperature_k: float | None = None
    thermal_resistance_k_cm2_per_kw: float | None = None
    linear_solver: str | None = None
    krylov_iterations_per_step: float | None = None
    krylov_iterations_max: int | None = None
    preconditioner_builds: int | None = None
    resumed_from_step: int | None = None
    status: str = "complete"
    wall_time_s: float = 0.0
    mpi_size: int = 1
    out: str | None = None
    device: Device | None = field(default=None, repr=False)
    provenance: Mapping[str, Any] = field(default_factory=dict, repr=False)
    _omit_if_none: ClassVar[frozenset[str]] = frozenset(
        {
            "times_s",
            "film_max_temperature_k",
            "film_mean_spot_temperature_k",
            "interface_temperature_k",
            "steps",
            "energy_balance_error_j",
            "steady_film_max_temperature_k",
            "steady_film_mean_spot_temperature_k",
            "steady_interface_temperature_k",
            "thermal_resistance_k_cm2_per_kw",
            "linear_solver",
            "krylov_iterations_per_step",
            "krylov_iterations_max",
            "preconditioner_builds",
            "resumed_from_step",
        }
    )

    @property
    def film_max_rise_k(self) -> np.ndarray | float:
        """Film-maximum temperature rise above the sink (K): history, or the steady value."""
        if self.steady:
            return float(self.steady_film_max_temperature_k) - self.sink_temperature_k
        return np.asarray(self.film_max_temperature_k) - self.sink_temperature_k

    def temperature_at(self, time_s: float) -> float:
        """Film-maximum temperature (K) at ``time_s``, linear between stored steps."""
        if self.steady:
            raise ValueError("a steady result has no history; use steady_film_max_temperature_k")
        return float(np.interp(time_s, self.times_s, self.film_max_temperature_k))

    def table(self) -> dict[str, Sequence[Any]]:
        """The history (transient) or the one steady row."""
        if self.steady:
            return {
                "steady_film_max_temperature_k": [self.steady_film_max_temperature_k],
                "steady_film_mean_spot_temperature_k": [self.steady_film_mean_spot_temperature_k],
                "steady_interface_temperature_k": [self.steady_interface_temperature_k],
                "thermal_resistance_k_cm2_per_kw": [self.thermal_resistance_k_cm2_per_kw],
            }
        return {
            "time_s": self.times_s,
            "film_max_temperature_k": self.film_max_temperature_k,
            "film_mean_spot_temperature_k": self.film_mean_spot_temperature_k,
            "interface_temperature_k": self.interface_temperature_k,
        }

    def plot(self, ax: Any = None) -> Any:
        """Film-maximum (and spot-mean) temperature vs time, on a log time axis."""
        ax = _axes(ax)
        if self.steady:
            ax.axhline(self.steady_film_max_temperature_k, label="steady film max")
        else:
            t_us = np.asarray(self.times_s) * 1e6
            ax.semilogx(t_us[1:], np.asarray(self.film_max_temperature_k)[1:], label="film max")
            ax.semilogx(
                t_us[1:], np.asarray(self.film_mean_spot_temperature_k)[1:], "--", label="spot mean"
            )
            ax.set_xlabel("time (us)")
        ax.set_ylabel("temperature (K)")
        ax.legend()
        return ax


@dataclass(frozen=True)
class StackModeResult(_Row):
    """One mode of the layer stack, exact: a complex root of the multilayer dispersion.

    ``kind`` is ``"guided"`` (evanescent on both sides; lossy where a region absorbs) or
    ``"leaky"`` (radiates into a substrate of higher index than the mode); the effective index is
    ``n_eff`` + i ``n_eff_imag`` and ``loss_per_cm`` = 2 k0 Im N its exact power loss.
    ``confinement`` maps each region to its fraction of |E|^2 (a leaky mode's radiating region
    0); ``gain_confinement`` is the fraction in the gain material (the film and the CQD between
    the pillars). A guided mode is also the FEM stack solver's: ``fem_n_eff``,
    ``first_order_loss_per_cm`` (from Im eps), ``group_index`` and, for a grating device, the
    second-order Bragg estimate ``bragg_wavelength_nm`` = n_eff Lambda and its thermo-optic drift
    ``bragg_shift_nm_per_k``; None there for a leaky mode, and for a strongly lossy guided mode
    whose real-permittivity FEM mode differs by more than 1e-3 in n_eff.
    """

    polarisation: str
    order: int
    n_eff: float
    n_eff_imag: float
    kind: str
    loss_per_cm: float
    confinement: Mapping[str, float]
    gain_confinement: float
    fem_n_eff: float | None
    first_order_loss_per_cm: float | None
    group_index: float | None
    bragg_wavelength_nm: float | None
    bragg_shift_nm_per_k: float | None


@dataclass(frozen=True)
class ModesResult(_Result):
    """The TE/TM modes (guided and leaky) of the device's layer stack at ``wavelength_nm``."""

    modes: tuple[StackModeResult, ...]
    wavelength_nm: float
    device: Device | None = field(default=None, repr=False)
    provenance: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def select(self, polarisation: str, order: int = 0) -> StackModeResult:
        """The mode of a polarisation and order (KeyError if the stack does not guide it)."""
        for m in self.modes:
            if m.polarisation == polarisation and m.order == order:
                return m
        raise KeyError(f"no {polarisation}{order} mode at {self.wavelength_nm:g} nm")

    @property
    def n_eff(self) -> np.ndarray:
        """Effective indices of the modes, in order."""
        return np.array([m.n_eff for m in self.modes])

    @property
    def loss_per_cm(self) -> np.ndarray:
        """Modal losses (1/cm), in order."""
        return np.array([m.loss_per_cm for m in self.modes])

    @property
    def gain_confinement(self) -> np.ndarray:
        """Gain confinement factors, in order."""
        return np.array([m.gain_confinement for m in self.modes])

    def table(self) -> dict[str, Sequence[Any]]:
        """One row per mode; the confinement map as ``confinement_<region>`` columns."""
        regions = sorted({r for m in self.modes for r in m.confinement})
        cols: dict[str, list[Any]] = {}
        for m in self.modes:
            row = {k: v for k, v in m.to_dict().items() if k != "confinement"}
            row.update({f"confinement_{r}": m.confinement.get(r, 0.0) for r in regions})
            for k, v in row.items():
                cols.setdefault(k, []).append(v)
        return cols

    def plot(self, ax: Any = None) -> Any:
        """Confinement of each mode, stacked by region."""
        ax = _axes(ax)
        labels = [f"{m.polarisation}{m.order}" for m in self.modes]
        bottom = np.zeros(len(self.modes))
        for region in sorted({r for m in self.modes for r in m.confinement}):
            values = np.array([m.confinement.get(region, 0.0) for m in self.modes])
            ax.bar(labels, values, bottom=bottom, label=region)
            bottom += values
        ax.set_ylabel("confinement")
        ax.legend(fontsize="small")
        return ax


@dataclass(frozen=True)
class BandEdgeResult(_Row):
    """One DFB band edge at the Gamma point."""

    wavelength_nm: float
    polarisation: str
    family: str
    symmetry: str
    degeneracy: int
    dark: bool
    confinement: Mapping[str, float]
    gain_confinement: float
    radiation_fraction: float
    q_factor: float | None
    q_flux: float | None
    q_absorption: float | None
    threshold_gain_per_cm: float | None
    threshold_factor: float | None
    thermal_shift_nm_per_k: float


@dataclass(frozen=True)
class BandsResult(_Result):
    """DFB band edges at the Gamma point nearest the Bragg estimate."""

    kind: str
    polarisation: str
    bragg_estimate_nm: float
    window_nm: tuple[float, float] | None
    band_edges: tuple[BandEdgeResult, ...]
    lasing_mode: Mapping[str, Any] | None
    dofs: int | None
    iterations: int | None
    device: Device | None = field(default=None, repr=False)
    provenance: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def wavelength_nm(self) -> np.ndarray:
        """Band-edge wavelengths (nm), in the order found."""
        return np.array([e.wavelength_nm for e in self.band_edges])

    def table(self) -> dict[str, Sequence[Any]]:
        """One row per band edge (without the confinement map)."""
        cols: dict[str, list[Any]] = {}
        for e in self.band_edges:
            for k, v in e.to_dict().items():
                if k != "confinement":
                    cols.setdefault(k, []).append(v)
        return cols

    def plot(self, ax: Any = None) -> Any:
        """The band-edge wavelengths against the Bragg estimate."""
        ax = _axes(ax)
        for e in self.band_edges:
            ax.axvline(e.wavelength_nm, color="C0")
            ax.annotate(e.symmetry, (e.wavelength_nm, 0.9), xycoords=("data", "axes fraction"))
        ax.axvline(self.bragg_estimate_nm, color="k", ls="--", label="Bragg estimate")
        ax.set_xlabel("wavelength (nm)")
        ax.set_yticks([])
        ax.legend()
        return ax


@dataclass(frozen=True)
class LasingResult(_Result):
    """The laser under its pump: lasing duration, thermal resistance and the CW window.

    ``lasing_duration_s`` is None when the pump never reaches threshold, the pulse length when it
    lases throughout; ``cw_pump_range_kw_cm2`` is [low, high] or None. The threshold is
    ``reference_threshold_kw_cm2`` x ``threshold_factor`` (from ``lasing_mode``: its ``model``,
    ``[laser] optics``; polarisation, kind, wavelength, gain confinement, loss in 1/cm and factor;
    a stack mode's kind guided / leaky / none and complex n_eff; a band edge's family, symmetry
    class and Q, None when unbounded).
    """

    lasing_duration_s: float | None
    pulse_s: float | None
    pump_intensity_kw_cm2: float
    threshold_at_sink_kw_cm2: float
    reference_threshold_kw_cm2: float
    threshold_factor: float
    lasing_mode: Mapping[str, Any]
    film_max_temperature_at_end_k: float
    thermal_resistance_k_cm2_per_kw: float
    steady_film_max_temperature_k: float
    cw_possible: bool
    cw_pump_range_kw_cm2: tuple[float, float] | None
    cw_criterion: float | None
    cw_margin: float
    cw_method: str
    threshold_model: str
    slope_efficiency: float
    heat_fraction: float
    heat_fraction_origin: str
    wall_time_s: float
    times_s: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    film_max_temperature_k: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    device: Device | None = field(default=None, repr=False)
    provenance: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def table(self) -> dict[str, Sequence[Any]]:
        """The film-maximum temperature history of the transient."""
        return {"time_s": self.times_s, "film_max_temperature_k": self.film_max_temperature_k}

    def plot(self, ax: Any = None) -> Any:
        """Film-maximum temperature vs time, with the end of lasing marked."""
        ax = _axes(ax)
        ax.plot(np.asarray(self.times_s) * 1e6, self.film_max_temperature_k, label="film max")
        if self.lasing_duration_s is not None:
            ax.axvline(self.lasing_duration_s * 1e6, color="k", ls="--", label="lasing ends")
        ax.set_xlabel("time (us)")
        ax.set_ylabel("temperature (K)")
        ax.legend()
        return ax


@dataclass(frozen=True)
class StudyResult(_Result):
    """A study run by name: its summary numbers and the folder holding its tables and figures."""

    name: str
    quick: bool
    out: str
    summary: Mapping[str, Any]
    device: Device | None = field(default=None, repr=False)
    provenance: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def table(self) -> dict[str, Sequence[Any]]:
        """The summary's scalar entries as ``quantity, value`` rows."""
        items = [(k, v) for k, v in self.summary.items() if isinstance(v, int | float | str | bool)]
        return {"quantity": [k for k, _ in items], "value": [v for _, v in items]}
