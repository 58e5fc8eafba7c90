"""Optical runs on a device: the guided modes of its layer stack and its DFB band edges."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mpi4py import MPI

from cqdlaser.geometry.device import Device
from cqdlaser.geometry.stack import build_stack
from cqdlaser.physics.materials import region_materials
from cqdlaser.physics.modes import gain_confinement, stack_modes, thermo_optic_shift
from cqdlaser.physics.multilayer import device_modes
from cqdlaser.physics.permittivity import region_dn_dt, region_permittivity


def stack_mode_table(
    device: Device,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    polarisations: Sequence[str] = ("TE", "TM"),
    out: Path | None = None,
) -> list[dict[str, Any]]:
    """Guided modes of the device's layer stack at ``optics.wavelength_nm``, one row per mode.

    Each row: polarisation, order, n_eff, group index, loss (1/cm), confinement per region, the
    confinement in the gain material (film plus the CQD fraction of the grating layer), and for a
    grating device the second-order Bragg estimate lambda = n_eff Lambda with its d(lambda)/dT.
    With ``out``, the mode profiles are written there (``modes.bp`` and ``modes.vtkhdf``).
    """
    data = build_stack(device, comm, optical=True)
    mats = region_materials(device)
    eps = region_permittivity(device, list(data.regions), materials=mats)
    dn_dt = region_dn_dt(device, list(data.regions), materials=mats)
    fill = 0.0 if device.grating is None else device.grating.fill_fraction
    rows = []
    found = []
    for pol in polarisations:
        for mode in stack_modes(data, eps, device.optics.wavelength, pol):
            found.append(mode)
            gamma = mode.confinement
            gain = gain_confinement(gamma, fill)
            row: dict[str, Any] = {
                "polarisation": pol,
                "order": mode.order,
                "n_eff": mode.n_eff,
                "group_index": mode.group_index,
                "loss_per_cm": mode.loss_per_cm,
                "confinement": gamma,
                "gain_confinement": gain,
                "bragg_wavelength_nm": None,
                "bragg_shift_nm_per_k": None,
            }
            if device.grating is not None:
                dndt = thermo_optic_shift(mode, eps, dn_dt)
                row["bragg_wavelength_nm"] = mode.n_eff * device.grating.period_nm
                row["bragg_shift_nm_per_k"] = (
                    device.grating.period_nm * dndt * (mode.n_eff / mode.group_index)
                )
            rows.append(row)
    if out is not None and found:
        from cqdlaser.studies.fields import write_mode_fields

        write_mode_fields(out / "modes", found, data)
    return rows


def mode_table(
    device: Device,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    polarisations: Sequence[str] = ("TE", "TM"),
    out: Path | None = None,
) -> list[dict[str, Any]]:
    """Every TE/TM mode of the device's planar stack, exact, one row per mode.

    The modes are the complex roots of the multilayer dispersion (:mod:`physics.multilayer`):
    ``kind`` guided or leaky, ``n_eff`` + i ``n_eff_imag``, ``loss_per_cm`` = 2 k0 Im N (absorption
    and leakage, exact), confinement per region and in the gain material. A guided mode is also
    solved by the FEM stack solver (:func:`stack_mode_table`), which gives its group index, Bragg
    estimate and field profiles (``out``) and checks the root: ``fem_n_eff`` and
    ``first_order_loss_per_cm`` (from Im eps) beside the exact values. They are None for a leaky
    mode, and for a strongly lossy guided mode (a metal's plasmon-like TM modes) whose real-eps FEM
    mode lies more than :data:`FEM_MATCH` away.
    """
    exact = device_modes(device, tuple(polarisations))
    guided = tuple(
        p for p in polarisations if any(m.kind == "guided" for m in exact if m.polarisation == p)
    )
    fem = stack_mode_table(device, comm, polarisations=guided, out=out) if guided else []
    fill = 0.0 if device.grating is None else device.grating.fill_fraction
    rows = []
    for mode in exact:
        match = [
            r
            for r in fem
            if r["polarisation"] == mode.polarisation
            and mode.kind == "guided"
            and abs(r["n_eff"] - mode.n_eff) < FEM_MATCH
        ]
        twin = min(match, key=lambda r: abs(r["n_eff"] - mode.n_eff)) if match else None
        rows.append(
            {
                "polarisation": mode.polarisation,
                "order": mode.order,
                "n_eff": mode.n_eff,
                "n_eff_imag": mode.n_eff_complex.imag,
                "kind": mode.kind,
                "loss_per_cm": mode.loss_per_cm,
                "confinement": mode.confinement,
                "gain_confinement": gain_confinement(mode.confinement, fill),
                "fem_n_eff": None if twin is None else twin["n_eff"],
                "first_order_loss_per_cm": None if twin is None else twin["loss_per_cm"],
                "group_index": None if twin is None else twin["group_index"],
                "bragg_wavelength_nm": None if twin is None else twin["bragg_wavelength_nm"],
                "bragg_shift_nm_per_k": None if twin is None else twin["bragg_shift_nm_per_k"],
            }
        )
    return rows


FEM_MATCH = 1e-3
"""Largest |n_eff| difference at which a FEM guided mode is taken as the exact mode's twin."""
