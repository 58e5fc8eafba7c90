"""The DFB band-edge table of a device: every band edge near the second-order Bragg condition,
its Q, symmetry class and threshold gain, and the mode that lases.

Three solvers, one table (:func:`band_edge_table`):

- ``cross-section``: the periodic 2D x-z section, open (PMLs), TE or TM (:mod:`physics.bands`);
- ``cell``: the 3D unit cell with the scalar equation in a closed box (no Q: its radiating edges
  are indicative), kept for comparison;
- ``vector``: the 3D quarter cell, full-vector, open (:mod:`physics.vector_bands`): both
  families, every C4v class, Q. The answer to "which mode lases".

Each band edge's threshold gain is :func:`physics.laser.band_edge_threshold_gain` from its Q
(radiation and absorption), its gain confinement and ``[laser] loss_budget_per_cm``; the lasing
mode is the edge of least threshold gain, and ``threshold_factor`` scales the reference laser's
threshold by :func:`physics.laser.optical_threshold_factor`, as for the stack's modes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mpi4py import MPI

from cqdlaser.geometry.device import Device
from cqdlaser.geometry.stack import build_stack
from cqdlaser.physics.laser import (
    band_edge_threshold_gain,
    optical_threshold_factor,
    q_loss_per_cm,
    reference_gain_confinement,
)
from cqdlaser.physics.modes import gain_confinement
from cqdlaser.physics.multilayer import device_modes
from cqdlaser.physics.permittivity import region_dn_dt, region_permittivity

KINDS = ("cross-section", "cell", "vector")

Q_UNBOUNDED = 1e9
"""A computed Q above this is the discretisation's floor of a bound (dark) edge, not a number:
reported as unbounded (None in the JSON) and counted as no radiation loss. The radiating edges of
these lattices have Q of 1e1-1e5; the dark ones come out at 1e10-1e16 or exactly real, and the
value moves with the eigensolver's random start vector."""

WINDOW = (0.96, 1.04)
"""The vector solver keeps band edges from 0.96 x the shorter to 1.04 x the longer of the TE and
TM Bragg estimates (the paper device's edges lie within -1.6 % and +0.9 % of theirs)."""


def band_edge_table(
    device: Device,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    kind: str = "cross-section",
    polarisation: str | None = None,
    n_bands: int = 4,
    out: Path | None = None,
) -> dict[str, Any]:
    """DFB band edges at the Gamma point near the Bragg condition, as a JSON-ready document.

    Args:
        device: A device with a [grating].
        comm: Communicator.
        kind: One of :data:`KINDS`.
        polarisation: 2D and scalar cell: default ``optics.polarisation``; the vector solver
            finds both families and ignores it.
        n_bands: 2D and scalar cell: the number of band edges nearest the Bragg estimate; the
            vector solver returns every edge in its window (:data:`WINDOW`).
        out: Write the fields (``band_edges.bp`` and ``band_edges.vtkhdf``) there.

    Returns:
        ``kind``, ``polarisation``, ``bragg_estimate_nm``, ``window_nm``, ``band_edges`` (rows,
        by wavelength), ``lasing_mode`` (the row of least threshold gain, with its index; None
        without Q or without an edge), ``dofs``, ``iterations``.
    """
    if kind == "vector":
        return _vector_table(device, comm, out)
    pol = polarisation or device.optics.polarisation
    return _scalar_table(device, comm, kind, pol, n_bands, out)


def _scalar_table(
    device: Device,
    comm: MPI.Comm,
    kind: str,
    polarisation: str,
    n_bands: int,
    out: Path | None,
) -> dict[str, Any]:
    """The 2D (open) or 3D scalar (closed) table."""
    from cqdlaser.geometry.builders import build_mesh
    from cqdlaser.geometry.cross_section import build_cross_section
    from cqdlaser.physics.bands import band_edge_thermal_shift, band_edges, bragg_guess
    from cqdlaser.physics.pml import PML
    from cqdlaser.studies.fields import write_band_edge_fields

    leak = device.laser.loss_budget_per_cm if kind == "cross-section" else 0.0
    require_guided(device, polarisation, leak)
    guess = bragg_guess(device, build_stack(device, comm, optical=True), polarisation=polarisation)
    if kind == "cross-section":
        data = build_cross_section(device, comm, pml=True)
    else:
        data = build_mesh(device, kind, comm)
    eps = region_permittivity(device, list(data.regions))
    dn_dt = region_dn_dt(device, list(data.regions))
    info: dict[str, Any] = {}
    edges = band_edges(
        data,
        eps,
        period=device.grating.period,
        wavelength_guess=guess,
        polarisation=polarisation,
        n_bands=n_bands,
        pml=PML.of(device, data) if kind == "cross-section" else None,
        info=info,
    )
    if out is not None and edges:
        write_band_edge_fields(out / "band_edges", edges, data)
    open_outside = _outer_index(eps) < guess / device.grating.period
    rows = []
    for e in edges:
        q = getattr(e, "q_factor", math.nan)
        rows.append(
            _row(
                device,
                eps,
                wavelength=e.wavelength,
                polarisation=e.polarisation,
                family=e.polarisation,
                symmetry=e.symmetry,
                degeneracy=e.degeneracy,
                dark=e.symmetry in ("odd", "B") and open_outside and e.degeneracy == 1,
                confinement=e.confinement,
                radiation_fraction=e.radiation_fraction,
                q_factor=None if math.isnan(q) else q,
                q_flux=_finite_or_none(getattr(e, "q_flux", math.nan)),
                thermal_shift=band_edge_thermal_shift(e, data, eps, dn_dt),
            )
        )
    return _document(kind, polarisation, guess, None, rows, info)


def _vector_table(device: Device, comm: MPI.Comm, out: Path | None) -> dict[str, Any]:
    """The full-vector table (both families, every class)."""
    from cqdlaser.geometry.quarter_cell import build_quarter_cell
    from cqdlaser.physics.bands import bragg_guess
    from cqdlaser.physics.pml import PML
    from cqdlaser.physics.vector_bands import vector_band_edges
    from cqdlaser.studies.fields import write_vector_band_edge_fields

    require_guided(device, device.optics.polarisation, device.laser.loss_budget_per_cm)
    stack = build_stack(device, comm, optical=True)
    guesses = {}
    for pol in ("TE", "TM"):
        try:
            guesses[pol] = bragg_guess(device, stack, polarisation=pol)
        except ValueError:  # no mode in the closed stack: a (weakly) leaky one, or none at all
            guess = leaky_bragg_guess(device, pol)
            if guess is not None:
                guesses[pol] = guess
    if not guesses:
        raise ValueError("the layer stack has no TE or TM mode to fold: no DFB band edges")
    window = (WINDOW[0] * min(guesses.values()), WINDOW[1] * max(guesses.values()))
    data = build_quarter_cell(device, comm)
    eps = region_permittivity(device, list(data.regions))
    dn_dt = region_dn_dt(device, list(data.regions))
    info: dict[str, Any] = {}
    edges = vector_band_edges(
        data, eps, PML.of(device, data), period=device.grating.period, window=window, info=info
    )
    if out is not None and edges:
        write_vector_band_edge_fields(out / "band_edges", edges, data)
    rows = [
        _row(
            device,
            eps,
            wavelength=e.wavelength,
            polarisation=e.family[:2],
            family=e.family,
            symmetry=e.symmetry,
            degeneracy=e.degeneracy,
            dark=e.dark,
            confinement=e.confinement,
            radiation_fraction=e.radiation_fraction,
            q_factor=e.q_factor,
            q_flux=_finite_or_none(e.q_flux),
            thermal_shift=energy_thermal_shift(e.wavelength, e.confinement, eps, dn_dt),
        )
        for e in edges
    ]
    guess = guesses.get(device.optics.polarisation, next(iter(guesses.values())))
    iterations = sum(info.get("iterations", {}).values())
    return _document("vector", "TE+TM", guess, window, rows, info | {"iterations": iterations})


def _document(
    kind: str,
    polarisation: str,
    guess: float,
    window: tuple[float, float] | None,
    rows: list[dict[str, Any]],
    info: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "kind": kind,
        "polarisation": polarisation,
        "bragg_estimate_nm": guess * 1e9,
        "window_nm": None if window is None else [w * 1e9 for w in window],
        "band_edges": rows,
        "lasing_mode": lasing_mode(rows),
        "dofs": info.get("dofs"),
        "iterations": info.get("iterations"),
    }


def _row(
    device: Device,
    eps: Mapping[str, Any],
    *,
    wavelength: float,
    polarisation: str,
    family: str,
    symmetry: str,
    degeneracy: int,
    dark: bool,
    confinement: Mapping[str, float],
    radiation_fraction: float,
    q_factor: float | None,
    q_flux: float | None,
    thermal_shift: float,
) -> dict[str, Any]:
    """One JSON row: the band edge, its losses and its threshold gain."""
    assert device.grating is not None
    gamma = gain_confinement(confinement, device.grating.fill_fraction)
    laser = device.laser
    q_abs = absorption_q(confinement, eps)
    row: dict[str, Any] = {
        "wavelength_nm": wavelength * 1e9,
        "polarisation": polarisation,
        "family": family,
        "symmetry": symmetry,
        "degeneracy": degeneracy,
        "dark": bool(dark),
        "confinement": dict(confinement),
        "gain_confinement": gamma,
        "radiation_fraction": radiation_fraction,
        "q_factor": _finite_or_none(q_factor),
        "q_flux": q_flux,
        "q_absorption": _finite_or_none(q_abs),
        "threshold_gain_per_cm": None,
        "threshold_factor": None,
        "thermal_shift_nm_per_k": thermal_shift * 1e9,
    }
    if q_factor is None:  # a closed box: no radiation loss known, no threshold
        return row
    rate = sum(1.0 / q for q in (q_factor, q_abs) if q <= Q_UNBOUNDED)
    q_total = 1.0 / rate if rate > 0.0 else math.inf
    n_gain = math.sqrt(complex(eps["film"]).real)
    row["threshold_gain_per_cm"] = band_edge_threshold_gain(
        gamma, q_total, wavelength, n_gain, laser.loss_budget_per_cm
    )
    row["threshold_factor"] = optical_threshold_factor(
        gamma,
        q_loss_per_cm(q_total, wavelength, n_gain),
        reference_gain_confinement(device, "vector"),
        laser.loss_budget_per_cm,
    )
    return row


def lasing_mode(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The band edge of least threshold gain (with its ``index`` in ``rows``), or None when no
    row has a threshold."""
    ranked = [
        (row["threshold_gain_per_cm"], i)
        for i, row in enumerate(rows)
        if row["threshold_gain_per_cm"] is not None and math.isfinite(row["threshold_gain_per_cm"])
    ]
    if not ranked:
        return None
    _, index = min(ranked)
    keys = (
        "wavelength_nm",
        "family",
        "symmetry",
        "dark",
        "q_factor",
        "gain_confinement",
        "threshold_gain_per_cm",
        "threshold_factor",
    )
    return {"index": index, **{k: rows[index][k] for k in keys}}


def absorption_q(confinement: Mapping[str, float], eps: Mapping[str, Any]) -> float:
    r"""Q of the regions' absorption, first order: :math:`1/Q_{abs} = \sum_r
    (\mathrm{Im}\,\varepsilon_r/\mathrm{Re}\,\varepsilon_r)\,\Gamma_r`, :math:`\Gamma_r` the
    region's electric-energy share (in-plane permittivity of a uniaxial region); inf when
    lossless."""
    rate = 0.0
    for region, share in confinement.items():
        value = eps[region]
        e = complex(value[0] if isinstance(value, tuple) else value)
        if e.imag != 0.0:
            rate += e.imag / e.real * share
    return 1.0 / rate if rate > 0.0 else math.inf


def energy_thermal_shift(
    wavelength: float,
    confinement: Mapping[str, float],
    eps: Mapping[str, Any],
    dn_dt: Mapping[str, float],
) -> float:
    r"""d(lambda)/dT (m/K) of a mode from its electric-energy shares, first order:
    :math:`\delta\lambda/\lambda = \sum_r \Gamma_r\,(dn_r/dT)/n_r`."""
    total = 0.0
    for region, share in confinement.items():
        value = eps[region]
        n = math.sqrt(abs(complex(value[0] if isinstance(value, tuple) else value).real))
        total += share * dn_dt.get(region, 0.0) / n
    return wavelength * total


def leaky_bragg_guess(device: Device, polarisation: str, iterations: int = 30) -> float | None:
    """lambda = Re N(lambda) Lambda (m) from the exact multilayer root of the fundamental mode,
    guided or leaky (the closed FEM stack of :func:`physics.bands.bragg_guess` has no leaky
    mode), the permittivities held at ``optics.wavelength`` as there; None without a mode."""
    from cqdlaser.physics.multilayer import multilayer_modes, stack_from_device

    assert device.grating is not None
    stack = stack_from_device(device)
    wavelength = stack.wavelength
    for _ in range(iterations):
        modes = multilayer_modes(
            dataclasses.replace(stack, wavelength=wavelength), polarisation, n_max=1
        )
        if not modes:
            return None
        previous, wavelength = wavelength, modes[0].n_eff_complex.real * device.grating.period
        if abs(wavelength - previous) <= 1e-9 * wavelength:
            break
    return wavelength


def require_guided(device: Device, polarisation: str, max_leak_per_cm: float = 0.0) -> None:
    """Stop with one line when the stack's fundamental mode is not guided: band edges are the
    grating's folding of a guided mode. The open solvers (``max_leak_per_cm``: the device's
    ``[laser] loss_budget_per_cm``) take a mode that leaks less than that into the substrate:
    the PMLs carry its leakage, which lowers the edges' Q; the closed scalar cell takes none."""
    exact = device_modes(device, (polarisation,), n_max=1)
    if not exact:
        raise ValueError(
            f"the layer stack has no {polarisation} mode at {device.optics.wavelength_nm:g} nm: "
            "no DFB band edges (a substrate of higher index than the film needs a low-index "
            "cladding)"
        )
    mode = exact[0]
    if mode.kind == "leaky" and not mode.loss_per_cm < max_leak_per_cm:
        raise ValueError(
            f"the stack's {polarisation}0 mode leaks into the substrate (n_eff "
            f"{mode.n_eff_complex.real:.5f}{mode.n_eff_complex.imag:+.3g}i, "
            f"{mode.loss_per_cm:.4g}/cm; cqdlaser modes lists it): band edges need a guided "
            "mode (a thicker low-index cladding)"
        )


def _outer_index(eps: Mapping[str, Any]) -> float:
    """The larger refractive index of the substrate and the cover."""
    out = 0.0
    for region in ("substrate", "cover"):
        value = eps[region]
        e = complex(value[0] if isinstance(value, tuple) else value)
        out = max(out, math.sqrt(max(e.real, 0.0)))
    return out


def _finite_or_none(value: float | None) -> float | None:
    """JSON has no inf or NaN: None for either, and for a Q beyond :data:`Q_UNBOUNDED`."""
    if value is None or not math.isfinite(value) or value > Q_UNBOUNDED:
        return None
    return float(value)
