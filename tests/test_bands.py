"""DFB band edges at the Gamma point against the folded slab mode, their splitting by the
pillars, their independence of the MPI layout, and their convergence under refinement.

Closed form used: without pillars (pillar material = film material) the cell is a planar stack, and
u = E(z) cos(G x) (and sin, and the same along y in 3D), G = 2 pi / Lambda, solves the Gamma-point
problem exactly when E is a guided mode of the stack with beta = G, i.e. at the wavelength that
solves lambda = n_eff(lambda) Lambda (TE: -E'' - k0^2 eps E = -G^2 E; TM: (E'/eps)' + k0^2 E =
G^2 E/eps). The stack (same truncation, Dirichlet at the same planes) is solved on a much finer 1D
mesh, so the difference is the 2D/3D discretisation error: it is asserted below a bound that
follows the measured h^4 convergence (see test_band_edge_converges).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest

from cqdlaser.geometry.cell import build_cell
from cqdlaser.geometry.config import load_device
from cqdlaser.geometry.cross_section import build_cross_section
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.stack import build_stack
from cqdlaser.physics.bands import (
    BandEdge,
    band_edge_thermal_shift,
    band_edges,
    bragg_guess,
    write_band_edges,
)
from cqdlaser.physics.permittivity import region_permittivity
from cqdlaser.studies.design.bragg import band_edge_sensitivity

PAPER = Path(__file__).resolve().parent.parent / "studies/configs/paper_inorganic_mgf2.toml"
# Refinement by mesh.scale alone: the minimum element counts do not bind.
COARSE = ["mesh.film_elements=1", "mesh.pillar_elements=3", "mesh.optical_padding_um=1.0"]
EMPTY = ["grating.material=cqd_inorganic"]


def device(*overrides: str) -> Device:
    """The paper device (coarse padding), with ``section.key=value`` overrides."""
    return load_device(PAPER, [*COARSE, *overrides])


def solve(dev: Device, kind: str, comm: MPI.Comm, **kwargs: object) -> list[BandEdge]:
    """Band edges of ``dev`` on a fresh mesh of ``kind`` over ``comm``, near the Bragg estimate."""
    build = build_cross_section if kind == "cross-section" else build_cell
    data = build(dev, comm)
    pol = str(kwargs.pop("polarisation", dev.optics.polarisation))
    return band_edges(
        data,
        region_permittivity(dev, list(data.regions)),
        period=dev.grating.period,
        wavelength_guess=bragg_guess(dev, build_stack(dev, comm, optical=True), polarisation=pol),
        polarisation=pol,
        **kwargs,  # type: ignore[arg-type]
    )


def folded_slab_wavelength(dev: Device, polarisation: str) -> float:
    """lambda = n_eff(lambda) Lambda on a 1D stack 16 times finer than ``dev``'s mesh."""
    fine = dataclasses.replace(dev, mesh=dataclasses.replace(dev.mesh, scale=dev.mesh.scale / 16))
    stack = build_stack(fine, MPI.COMM_SELF, optical=True)
    return bragg_guess(fine, stack, polarisation=polarisation, rtol=1e-11)


@pytest.mark.parametrize(
    ("kind", "polarisation", "scale", "rtol"),
    [
        ("cross-section", "TE", 1.0, 5e-6),
        ("cross-section", "TM", 1.0, 5e-6),
        ("cell", "TE", 3.0, 6e-4),
    ],
)
def test_empty_lattice_is_folded_slab_mode(kind, polarisation, scale, rtol):
    """No pillars: the band edges nearest the Bragg estimate are the folded slab mode, 2-fold
    degenerate in 2D (cos, sin) and 4-fold in 3D (cos and sin along x and y). ``rtol`` is the
    discretisation error of that mesh (P2; measured 2.7e-6 in 2D at scale 1, 4.2e-4 in 3D at
    scale 3)."""
    dev = device(*EMPTY, f"mesh.scale={scale}")
    expected = folded_slab_wavelength(dev, polarisation)
    n = 2 if kind == "cross-section" else 4
    edges = solve(
        dev, kind, MPI.COMM_WORLD, polarisation=polarisation, n_bands=n, degeneracy_rtol=2 * rtol
    )
    got = np.array([e.wavelength for e in edges])
    assert len(got) == n
    assert np.allclose(got, expected, rtol=rtol, atol=0), (got - expected) * 1e9
    assert all(e.degeneracy == n for e in edges)
    # The harmonics of a degenerate cluster are any orthogonal mix; together they span them all.
    total = {k: sum(e.harmonics[k] for e in edges) for k in edges[0].harmonics}
    assert all(w == pytest.approx(1.0, abs=0.05) for w in total.values()), total
    for e in edges:
        assert sum(e.confinement.values()) == pytest.approx(1.0, rel=1e-12)
        assert e.radiation_fraction < 1e-4
        assert e.k0 == pytest.approx(2 * math.pi / e.wavelength, rel=1e-14)


def test_pillars_split_2d():
    """With pillars the cos/sin pair splits far beyond the discretisation error: the odd
    (non-radiating) and even edges, each non-degenerate."""
    dev = device()
    for pol in ("TE", "TM"):
        edges = solve(dev, "cross-section", MPI.COMM_WORLD, polarisation=pol, n_bands=2)
        assert sorted(e.symmetry for e in edges) == ["even", "odd"]
        assert all(e.degeneracy == 1 for e in edges)
        split = abs(edges[1].wavelength - edges[0].wavelength)
        assert split > 1e-2 * edges[0].wavelength  # measured: TE 20.2 nm, TM 19.4 nm
        odd = next(e for e in edges if e.symmetry == "odd")
        even = next(e for e in edges if e.symmetry == "even")
        # The odd edge does not couple to vertical waves: only its guided tail reaches the outer
        # padding; the even one radiates into the (truncated) continuum.
        assert odd.radiation_fraction < 1e-4
        assert even.radiation_fraction > 100 * odd.radiation_fraction, (even, odd)


def test_pillars_split_3d():
    """With pillars the 4-fold cluster splits into A, B (non-degenerate) and the E pair, which
    the square lattice keeps degenerate (to the mesh's symmetry error)."""
    dev = device("mesh.scale=3")
    edges = solve(dev, "cell", MPI.COMM_WORLD, n_bands=4)
    labels = sorted(e.symmetry for e in edges)
    assert labels == ["A", "B", "E", "E"]
    e1, e2 = (e.wavelength for e in edges if e.symmetry == "E")
    a = next(e.wavelength for e in edges if e.symmetry == "A")
    b = next(e.wavelength for e in edges if e.symmetry == "B")
    assert abs(e1 - e2) < 1e-4 * e1
    assert min(abs(a - b), abs(a - e1), abs(b - e1)) > 1e-3 * e1


def test_same_eigenvalues_on_any_number_of_ranks():
    """The periodic constraint is partition-independent: a COMM_SELF solve of the same mesh
    gives the COMM_WORLD eigenvalues (2D and 3D)."""
    for kind, scale in (("cross-section", 2.0), ("cell", 4.0)):
        dev = device(f"mesh.scale={scale}")
        world = [e.wavelength for e in solve(dev, kind, MPI.COMM_WORLD, n_bands=3)]
        self_ = [e.wavelength for e in solve(dev, kind, MPI.COMM_SELF, n_bands=3)]
        assert np.allclose(world, self_, rtol=1e-9, atol=0), kind
        gathered = MPI.COMM_WORLD.allgather(world)
        assert all(np.allclose(g, world, rtol=1e-12, atol=0) for g in gathered)


def test_band_edge_converges():
    """The odd TE edge of the paper device under uniform refinement (mesh.scale 2, 1, 0.5):
    observed order of the wavelength error > 3.5 (P2 eigenvalues: h^4; measured 3.8)."""
    values = []
    for scale in (2.0, 1.0, 0.5):
        dev = device(f"mesh.scale={scale}", "mesh.optical_padding_um=2.0")
        edges = solve(dev, "cross-section", MPI.COMM_WORLD, n_bands=2)
        values.append(next(e.wavelength for e in edges if e.symmetry == "odd"))
    d1, d2 = abs(values[1] - values[0]), abs(values[2] - values[1])
    order = math.log2(d1 / d2)
    assert order > 3.5, (values, order)
    assert d2 < 5e-12  # the default resolution (scale 1) is within 5 pm of scale 0.5


def test_sensitivity_and_output(shared_tmp):
    """A thinner film lowers n_eff: every band edge moves to the blue; the baseline row is the
    plain solve, the varied row that of the device loaded with the changed value; the fields are
    written for ParaView."""
    dev = device("mesh.scale=2")
    rows = band_edge_sensitivity(dev, [("film.thickness_nm", 60)], n_bands=2)
    assert [r.parameter for r in rows] == ["", "film.thickness_nm"]
    base = [e.wavelength for e in solve(dev, "cross-section", MPI.COMM_WORLD, n_bands=2)]
    assert np.allclose(rows[0].wavelengths, base, rtol=1e-12, atol=0)
    thin = device("mesh.scale=2", "film.thickness_nm=60")
    varied = [e.wavelength for e in solve(thin, "cross-section", MPI.COMM_WORLD, n_bands=2)]
    assert np.allclose(rows[1].wavelengths, varied, rtol=1e-12, atol=0)
    assert all(t < b for t, b in zip(rows[1].wavelengths, rows[0].wavelengths, strict=True))
    assert rows[1].bragg_wavelength < rows[0].bragg_wavelength
    edges = solve(dev, "cross-section", MPI.COMM_WORLD, n_bands=2)
    path = write_band_edges(shared_tmp / "bands.bp", edges)
    MPI.COMM_WORLD.barrier()
    assert path.is_dir()


def test_rejects_bad_input():
    dev = device("mesh.scale=4")
    data = build_cell(dev, MPI.COMM_WORLD)
    eps = region_permittivity(dev, list(data.regions))
    with pytest.raises(ValueError, match="TM"):
        band_edges(data, eps, period=4.3e-7, wavelength_guess=7e-7, polarisation="TM")
    with pytest.raises(KeyError, match="missing"):
        band_edges(data, {"film": 4.0}, period=4.3e-7, wavelength_guess=7e-7)
    thermal = build_stack(dev, MPI.COMM_WORLD, optical=False)
    with pytest.raises(ValueError, match="optical stack"):
        bragg_guess(dev, thermal)


@pytest.mark.parametrize("polarisation", ["TE", "TM"])
def test_thermal_shift_matches_finite_difference(polarisation: str) -> None:
    """First-order d(lambda)/dT of the 2D band edges equals a central difference of two solves."""
    comm = MPI.COMM_WORLD
    dev = device("mesh.scale=2", f"optics.polarisation={polarisation}")
    data = build_cross_section(dev, comm)
    eps = region_permittivity(dev, list(data.regions))
    dn_dt = {"film": 5e-5, "grating_fill": 5e-5, "pillars": 1e-5, "cap": -1e-4}
    guess = bragg_guess(dev, build_stack(dev, comm, optical=True), polarisation=polarisation)

    def edges(delta_t: float) -> list[BandEdge]:
        shifted = {
            r: (complex(e) ** 0.5 + dn_dt.get(r, 0.0) * delta_t) ** 2 for r, e in eps.items()
        }
        return band_edges(
            data,
            shifted,
            period=dev.grating.period,
            wavelength_guess=guess,
            polarisation=polarisation,
            n_bands=2,
        )

    base, hot, cold = edges(0.0), edges(5.0), edges(-5.0)
    assert len(base) == len(hot) == len(cold) >= 1
    for e0, e_hot, e_cold in zip(base, hot, cold, strict=True):
        fd = (e_hot.wavelength - e_cold.wavelength) / 10.0
        first = band_edge_thermal_shift(e0, data, eps, dn_dt)
        # the CQD (dn/dT > 0) and the SOG cap (dn/dT < 0) pull opposite ways
        assert abs(fd) > 1e-13
        assert first == pytest.approx(fd, rel=2e-3)
