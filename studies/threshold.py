"""A device's threshold from the optics model of its ``[laser] optics``: the one entry point of the
``lasing`` command, the API and the design studies.

``stack``: the fundamental mode of the planar stack, exact (:func:`physics.laser.
device_threshold_model`, no mesh). ``vector``: the full-vector DFB band edge of least threshold
gain (:func:`studies.band_edges.band_edge_table`, the open quarter cell: a mesh and minutes), its
loss k0 n/Q from its Q of radiation and absorption (:func:`physics.laser.q_loss_per_cm`). Either
way the factor on the reference threshold is :func:`physics.laser.optical_threshold_factor`
against the reference laser's gain confinement in the same model
(:func:`physics.laser.reference_gain_confinement`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mpi4py import MPI

from cqdlaser.geometry.device import Device
from cqdlaser.physics.laser import (
    LasingOptics,
    ThresholdModel,
    device_threshold_model,
    optical_threshold_factor,
    q_loss_per_cm,
    reference_gain_confinement,
    threshold_model,
)
from cqdlaser.physics.permittivity import region_permittivity


def device_threshold(
    device: Device, comm: MPI.Comm = MPI.COMM_WORLD
) -> tuple[ThresholdModel, LasingOptics]:
    """The device's threshold law and its lasing mode in the model of ``[laser] optics``
    (collective on ``comm`` for ``vector``)."""
    if device.laser.optics == "stack":
        return device_threshold_model(device)
    optics = band_edge_optics(device, comm)
    return threshold_model(device, optics.factor), optics


def band_edge_optics(device: Device, comm: MPI.Comm = MPI.COMM_WORLD) -> LasingOptics:
    """The full-vector band-edge lasing mode of a device and its threshold factor.

    A stack that guides no mode has no band edges (``band_edge_table`` says so with a
    ValueError), and a window without an edge of finite threshold has no lasing mode: either way
    the device does not lase (kind ``"none"``, factor inf), as for the stack model.
    """
    from cqdlaser.studies.band_edges import band_edge_table

    try:
        table = band_edge_table(device, comm, kind="vector")
    except ValueError:
        return _no_mode()
    mode = table["lasing_mode"]
    if mode is None:
        return _no_mode()
    row = table["band_edges"][mode["index"]]
    q = _total_q(row)
    wavelength = row["wavelength_nm"] * 1e-9
    gamma = row["gain_confinement"]
    loss = q_loss_per_cm(q, wavelength, film_index(device))
    factor = optical_threshold_factor(
        gamma, loss, reference_gain_confinement(device), device.laser.loss_budget_per_cm
    )
    return LasingOptics(
        polarisation=row["family"],
        n_eff_complex=complex(math.nan, math.nan),
        kind="band edge",
        gain_confinement=gamma,
        loss_per_cm=loss,
        factor=factor,
        model="vector",
        wavelength=wavelength,
        symmetry=row["symmetry"],
        q_factor=q,
    )


def _no_mode() -> LasingOptics:
    nan = math.nan
    return LasingOptics("none", complex(nan, nan), "none", nan, nan, math.inf, model="vector")


def _total_q(row: Mapping[str, Any]) -> float:
    """Q of a band-edge row's radiation and absorption together (inf: unbounded); the table
    writes an unbounded Q as None."""
    rate = sum(1.0 / row[k] for k in ("q_factor", "q_absorption") if row[k] is not None)
    return 1.0 / rate if rate > 0.0 else math.inf


def film_index(device: Device) -> float:
    """Refractive index of the gain film at the optics wavelength (real part)."""
    eps = region_permittivity(device, ["film"])["film"]
    value = eps[0] if isinstance(eps, tuple) else eps
    return math.sqrt(complex(value).real)


def lasing_mode_record(optics: LasingOptics) -> dict[str, Any]:
    """The JSON record of a lasing mode: its model and what that model knows of it (a stack
    mode's complex n_eff; a band edge's family, class and Q, None when unbounded)."""
    record: dict[str, Any] = {
        "model": optics.model,
        "polarisation": optics.polarisation,
        "kind": optics.kind,
        "wavelength_nm": _finite_or_none(optics.wavelength * 1e9),
        "gain_confinement": optics.gain_confinement,
        "loss_per_cm": optics.loss_per_cm,
        "factor": optics.factor,
    }
    if optics.model == "stack":
        record["n_eff"] = optics.n_eff_complex.real
        record["n_eff_imag"] = optics.n_eff_complex.imag
    else:
        record["family"] = optics.polarisation
        record["symmetry"] = optics.symmetry
        record["q_factor"] = None if optics.q_factor is None else _finite_or_none(optics.q_factor)
    return record


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
