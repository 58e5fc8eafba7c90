"""DFB band edges of the open cross-section (PMLs above and below): complex eigenvalues, quality
factors from the eigenvalue and from the radiated flux, against closed forms and coupled-wave
theory, independent of the PMLs, the mesh and the MPI layout.

Closed forms used:

- No grating contrast (pillars of the film's material): the section is a planar stack, and
  u = E(z) cos(G x), E(z) sin(G x) (G = 2 pi / Lambda) solve the open Gamma-point problem exactly
  when E is a guided mode with beta = G, i.e. at lambda = n_eff(lambda) Lambda, the exact
  (transfer-matrix, semi-infinite substrate and cover) n_eff of :mod:`physics.multilayer`. A
  guided mode is bound (n_eff > n_sub, n_cover): real eigenvalue, Q infinite.
- Weak contrast d_eps (coupled-wave theory of a second-order DFB): the two band edges split by
  the direct second-order coupling, proportional to the grating's Fourier coefficients, so to
  d_eps; the even edge radiates through the first-order coefficient, its radiated power being the
  square of an amplitude proportional to d_eps: 1/Q ~ d_eps^2. The odd edge stays dark (its
  overlap with the normally outgoing, x-even wave vanishes).

Runs serially and under ``mpirun -n 2`` (nothing here is serial-only); measured numbers are in
the docstrings (scale 2 unless said).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest

from cqdlaser.geometry.config import load_device
from cqdlaser.geometry.cross_section import build_cross_section
from cqdlaser.geometry.device import Device
from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.geometry.stack import build_stack
from cqdlaser.physics.bands import BandEdge, band_edge_thermal_shift, band_edges, bragg_guess
from cqdlaser.physics.modes import Permittivity
from cqdlaser.physics.multilayer import multilayer_modes, stack_from_device
from cqdlaser.physics.permittivity import region_permittivity
from cqdlaser.physics.pml import PML

PAPER = Path(__file__).resolve().parent.parent / "studies/configs/paper_inorganic_mgf2.toml"
EMPTY = ("grating.material=cqd_inorganic",)
POLARISATIONS = ("TE", "TM")

type EpsChange = Callable[[dict[str, Permittivity]], dict[str, Permittivity]]


@dataclasses.dataclass(frozen=True)
class Solved:
    """One open solve: the device, its mesh, the permittivities and the band edges."""

    device: Device
    mesh_data: MeshData
    eps: dict[str, Permittivity]
    edges: list[BandEdge]

    def by_symmetry(self, symmetry: str) -> BandEdge:
        return next(e for e in self.edges if e.symmetry == symmetry)


def solve(
    overrides: tuple[str, ...],
    polarisation: str,
    comm: MPI.Comm = MPI.COMM_WORLD,
    change: EpsChange | None = None,
    mesh_data: MeshData | None = None,
    **kwargs: object,
) -> Solved:
    """The two band edges nearest the Bragg estimate of the paper device with ``overrides``, on
    its open cross-section (built here unless given), with the permittivities ``change`` makes."""
    dev = load_device(PAPER, ["mesh.scale=2", *overrides])
    data = mesh_data or build_cross_section(dev, comm, pml=True)
    eps = region_permittivity(dev, list(data.regions))
    if change is not None:
        eps = change(eps)
    guess = bragg_guess(dev, build_stack(dev, comm, optical=True), polarisation=polarisation)
    edges = band_edges(
        data,
        eps,
        period=dev.grating.period,
        wavelength_guess=guess,
        polarisation=polarisation,
        n_bands=2,
        pml=PML.of(dev, data),
        **kwargs,  # type: ignore[arg-type]
    )
    return Solved(dev, data, eps, edges)


@cache
def paper(polarisation: str, overrides: tuple[str, ...] = ()) -> Solved:
    """The paper device's open band edges on COMM_WORLD (cached: several tests compare to it)."""
    return solve(overrides, polarisation)


def exact_folded_wavelength(dev: Device, polarisation: str) -> float:
    """lambda = n_eff(lambda) Lambda with the exact multilayer n_eff of the planar stack."""
    stack = stack_from_device(dev)
    wavelength = dev.optics.wavelength
    for _ in range(100):
        stack = dataclasses.replace(stack, wavelength=wavelength)
        mode = multilayer_modes(stack, polarisation, n_max=1)[0]
        previous, wavelength = wavelength, mode.n_eff * dev.grating.period
        if abs(wavelength - previous) <= 1e-14 * wavelength:
            return wavelength
    raise AssertionError("lambda = n_eff(lambda) Lambda did not converge")


@pytest.mark.serial  # on one rank; the MPI layout is test_same_on_any_number_of_ranks
@pytest.mark.parametrize("polarisation", POLARISATIONS)
def test_no_contrast_is_folded_slab_mode(polarisation: str) -> None:
    """Without contrast the band edges are the folded guided mode, twice (cos, sin), at the exact
    multilayer wavelength to the mesh's accuracy (measured -2.9e-5 TE, -3.5e-5 TM at scale 2),
    and bound (measured Q 3e10 to 5e11: the discretisation's floor)."""
    solved = solve(EMPTY, polarisation, degeneracy_rtol=1e-4)
    expected = exact_folded_wavelength(solved.device, polarisation)
    got = np.array([e.wavelength for e in solved.edges])
    assert len(got) == 2
    assert np.allclose(got, expected, rtol=1e-4, atol=0), (got - expected) * 1e9
    for e in solved.edges:
        assert e.degeneracy == 2
        assert e.q_factor > 1e6
        assert e.q_flux > 1e6
        assert e.radiation_fraction < 1e-4
        assert sum(e.confinement.values()) == pytest.approx(1.0, rel=1e-12)
        assert e.field_imag is not None
        assert e.k0 == pytest.approx(2 * math.pi / e.wavelength, rel=1e-14)
    total = {k: sum(e.harmonics[k] for e in solved.edges) for k in solved.edges[0].harmonics}
    assert all(w == pytest.approx(1.0, abs=0.05) for w in total.values()), total


def pillars_at(delta: float) -> EpsChange:
    """Permittivities with the pillars' that of the film less ``delta``."""

    def change(eps: dict[str, Permittivity]) -> dict[str, Permittivity]:
        return eps | {"pillars": complex(eps["film"]).real - delta}

    return change


@pytest.mark.serial  # on one rank; the MPI layout is test_same_on_any_number_of_ranks
@pytest.mark.parametrize("polarisation", POLARISATIONS)
def test_weak_contrast_follows_coupled_wave_theory(polarisation: str) -> None:
    """Pillars of eps_film - 0.05 and - 0.1 (one mesh): the splitting grows as the contrast
    (measured exponent 1.006 TE, 1.018 TM), the even edge's 1/Q as its square (2.007 TE,
    2.015 TM; Q 1.1e5 and 2.7e4 TE, 8.0e5 and 2.0e5 TM), the odd edge stays dark."""
    data = build_cross_section(load_device(PAPER, ["mesh.scale=2"]), MPI.COMM_WORLD, pml=True)
    splits, inverse_q = [], []
    deltas = (0.05, 0.1)
    for delta in deltas:
        solved = solve((), polarisation, change=pillars_at(delta), mesh_data=data)
        assert sorted(e.symmetry for e in solved.edges) == ["even", "odd"]
        splits.append(abs(solved.edges[1].wavelength - solved.edges[0].wavelength))
        even, odd = solved.by_symmetry("even"), solved.by_symmetry("odd")
        inverse_q.append(1.0 / even.q_factor)
        assert odd.q_factor > 1e3 * even.q_factor
        assert even.q_flux == pytest.approx(even.q_factor, rel=0.03)
    ratio = math.log(deltas[1] / deltas[0])
    split_order = math.log(splits[1] / splits[0]) / ratio
    q_order = math.log(inverse_q[1] / inverse_q[0]) / ratio
    assert split_order == pytest.approx(1.0, abs=0.1), (splits, split_order)
    assert q_order == pytest.approx(2.0, abs=0.2), (inverse_q, q_order)


@pytest.mark.serial  # on one rank; the MPI layout is test_same_on_any_number_of_ranks
@pytest.mark.parametrize("polarisation", POLARISATIONS)
def test_q_from_flux_matches_eigenvalue(polarisation: str) -> None:
    """The paper device: the even edge radiates (measured Q 77.9 TE, 409.7 TM), and the Q of its
    radiated flux is the eigenvalue's within 3 % (measured 0.1 %, 0.3 %); the odd edge is dark."""
    solved = paper(polarisation)
    even, odd = solved.by_symmetry("even"), solved.by_symmetry("odd")
    assert 10.0 < even.q_factor < 1e4
    assert even.q_flux == pytest.approx(even.q_factor, rel=0.03)
    assert odd.q_factor > 1e6
    assert even.k0 == pytest.approx(2 * math.pi / even.wavelength, rel=1e-14)
    for e in solved.edges:
        assert sum(e.confinement.values()) == pytest.approx(1.0, rel=1e-12)
        assert 0.2 < e.confinement["film"] < 0.8


def assert_close(a: Solved, b: Solved, *, nm: float, q_rtol: float) -> None:
    """Same symmetries, wavelengths within ``nm``, the even edge's Q within ``q_rtol``, the odd
    edge dark in both."""
    assert [e.symmetry for e in a.edges] == [e.symmetry for e in b.edges]
    for x, y in zip(a.edges, b.edges, strict=True):
        assert abs(x.wavelength - y.wavelength) < nm * 1e-9, (x.wavelength, y.wavelength)
    assert a.by_symmetry("even").q_factor == pytest.approx(
        b.by_symmetry("even").q_factor, rel=q_rtol
    )
    assert min(a.by_symmetry("odd").q_factor, b.by_symmetry("odd").q_factor) > 1e6


@pytest.mark.serial  # on one rank; the MPI layout is test_same_on_any_number_of_ranks
@pytest.mark.parametrize("polarisation", POLARISATIONS)
def test_independent_of_the_pmls(polarisation: str) -> None:
    """Moving the PMLs out (padding 2 -> 3 um), doubling their strength (4 -> 8) or thickening
    them (1 -> 1.5 um) moves the edges by < 0.1 nm and the radiating Q by < 5 % (measured at most
    0.061 nm and 1.1 %)."""
    base = paper(polarisation)
    for overrides in (
        ("mesh.optical_padding_um=3",),
        ("mesh.pml_strength=8",),
        ("mesh.pml_thickness_um=1.5",),
    ):
        assert_close(solve(overrides, polarisation), base, nm=0.1, q_rtol=0.05)


@pytest.mark.serial  # on one rank; the MPI layout is test_same_on_any_number_of_ranks
@pytest.mark.parametrize("polarisation", POLARISATIONS)
def test_converges_under_refinement(polarisation: str) -> None:
    """mesh.scale 2 -> 1 moves the edges by < 0.1 nm and the radiating Q by < 5 % (measured
    0.023 nm and 0.6 % TE, 0.034 nm and 0.1 % TM)."""
    assert_close(solve(("mesh.scale=1",), polarisation), paper(polarisation), nm=0.1, q_rtol=0.05)


def test_same_on_any_number_of_ranks() -> None:
    """A COMM_SELF solve of the same device gives the COMM_WORLD wavelengths and radiating Q (the
    dark edge's Q is the discretisation's floor, > 1e6 on both)."""
    for pol in POLARISATIONS:
        world = paper(pol)
        alone = solve((), pol, MPI.COMM_SELF)
        assert_close(alone, world, nm=1e-8, q_rtol=1e-6)
        got = [e.wavelength for e in world.edges] + [world.by_symmetry("even").q_factor]
        gathered = MPI.COMM_WORLD.allgather(got)
        assert all(np.allclose(g, got, rtol=1e-12, atol=0) for g in gathered)


@pytest.mark.serial  # on one rank; the MPI layout is test_same_on_any_number_of_ranks
@pytest.mark.parametrize("polarisation", POLARISATIONS)
def test_thermal_shift_matches_finite_difference(polarisation: str) -> None:
    """First-order d(lambda)/dT of the open edges (complex-symmetric perturbation, the substrate's
    dn/dT reaching into the PML) equals a central difference of two solves (measured within
    6e-6), the low-Q even TE edge included."""
    dn_dt = {"film": 5e-5, "grating_fill": 5e-5, "pillars": 1e-5, "cap": -1e-4, "substrate": 2e-5}
    base = paper(polarisation)

    def heated(delta_t: float) -> EpsChange:
        def change(eps: dict[str, Permittivity]) -> dict[str, Permittivity]:
            return {
                r: (complex(e) ** 0.5 + dn_dt.get(r, 0.0) * delta_t) ** 2 for r, e in eps.items()
            }

        return change

    hot = solve((), polarisation, change=heated(5.0), mesh_data=base.mesh_data)
    cold = solve((), polarisation, change=heated(-5.0), mesh_data=base.mesh_data)
    for e0, e_hot, e_cold in zip(base.edges, hot.edges, cold.edges, strict=True):
        fd = (e_hot.wavelength - e_cold.wavelength) / 10.0
        first = band_edge_thermal_shift(e0, base.mesh_data, base.eps, dn_dt)
        assert abs(fd) > 1e-13
        assert first == pytest.approx(fd, rel=1e-4)


def test_closed_mesh_has_no_q() -> None:
    """The closed cross-section keeps the closed problem: no quality factors, no imaginary part."""
    dev = load_device(PAPER, ["mesh.scale=2"])
    data = build_cross_section(dev, MPI.COMM_WORLD)
    eps: Mapping[str, Permittivity] = region_permittivity(dev, list(data.regions))
    guess = bragg_guess(dev, build_stack(dev, MPI.COMM_WORLD, optical=True))
    edges = band_edges(data, eps, period=dev.grating.period, wavelength_guess=guess, n_bands=2)
    assert edges
    for e in edges:
        assert math.isnan(e.q_factor) and math.isnan(e.q_flux)
        assert e.field_imag is None and e.pml is None and not e.is_open
