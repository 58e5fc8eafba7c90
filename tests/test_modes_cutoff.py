"""Guided modes of the layer stack near cut-off: transparent ends, against the closed forms.

Near cut-off the field's tail in the substrate decays over tens of micrometres (30 um for a
1.74 film on glass 0.5 nm above its TE0 cut-off): the solver's ends are exact transparent
conditions, so neither n_eff nor the confinement depends on where the mesh stops. References
(from tests/test_modes_stack.py): the three-layer slab dispersion relation solved with brentq, the
closed-form TE confinement, the TM |E|^2 fraction of the analytic slab field; here also the
closed-form cut-off thicknesses and finite differences of the closed-form N^2.
"""

from __future__ import annotations

import math

from mpi4py import MPI

import pytest
from test_modes_stack import gamma_te, gamma_tm, observed_order, slab_n_eff

from cqdlaser.geometry.config import load_device
from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.geometry.stack import build_stack
from cqdlaser.physics.modes import (
    Mode,
    _Coefficients,
    _Ends,
    _Pencil,
    _resolve_permittivity,
    _solver_options,
    _transparent_root,
    stack_modes,
)

WAVELENGTH = 643e-9
K0 = 2 * math.pi / WAVELENGTH
N_GLASS = 1.52
FILMS = (1.74, 1.97)  # organic and inorganic CQD films on glass, in air
ABOVE_CUTOFF_NM = (0.5, 1, 2, 5, 9, 20, 100)


def cutoff_thickness(n_f: float, pol: str, n_s: float = N_GLASS, n_c: float = 1.0) -> float:
    """Thickness (m) at which the TE0/TM0 mode of a film on a substrate under a cover is cut off:
    N = n_s, so tan(kappa d) = r gamma_c / kappa with r = 1 (TE) or eps_f/eps_c (TM)."""
    kappa = K0 * math.sqrt(n_f**2 - n_s**2)
    gamma_c = K0 * math.sqrt(n_s**2 - n_c**2)
    ratio = 1.0 if pol == "TE" else n_f**2 / n_c**2
    return math.atan(ratio * gamma_c / kappa) / kappa


def stack(thickness: float, *overrides: str) -> MeshData:
    """Substrate, film and air cover at 643 nm, the default mesh unless overridden."""
    device = load_device(
        None,
        [
            f"optics.wavelength_nm={WAVELENGTH * 1e9}",
            "substrate.material=glass",
            f"film.thickness_nm={thickness * 1e9!r}",
            *overrides,
        ],
    )
    return build_stack(device, MPI.COMM_WORLD, optical=True)


def permittivity(n_f: float) -> dict[str, float]:
    return {"substrate": N_GLASS**2, "film": n_f**2, "cover": 1.0}


def closed_form(d: float, n_f: float, pol: str) -> tuple[float, float]:
    """(n_eff, Gamma_film) of the fundamental mode of the slab."""
    n = slab_n_eff(d, n_f**2, N_GLASS**2, 1.0, pol, 0, K0)
    if pol == "TE":
        return n, gamma_te(d, n_f, N_GLASS, 1.0, n, K0)
    return n, gamma_tm(d, n_f**2, N_GLASS**2, 1.0, n, K0)


def fundamental(msh: MeshData, n_f: float, pol: str) -> Mode:
    modes = stack_modes(msh, permittivity(n_f), WAVELENGTH, pol)
    assert len(modes) == 1, [m.n_eff for m in modes]
    return modes[0]


@pytest.mark.parametrize("pol", ["TE", "TM"])
@pytest.mark.parametrize("n_f", FILMS)
def test_near_cutoff_closed_form(n_f: float, pol: str) -> None:
    """n_eff within 1e-6 and the film's confinement within 1e-4 of the closed forms from 0.5 nm
    above cut-off upwards, on the default mesh (2 um of padding, which a 0.5 nm film's tail
    overhangs fifteen times)."""
    d_c = cutoff_thickness(n_f, pol)
    for above in ABOVE_CUTOFF_NM:
        d = d_c + above * 1e-9
        n, gamma = closed_form(d, n_f, pol)
        mode = fundamental(stack(d), n_f, pol)
        assert abs(mode.n_eff - n) <= 1e-6, (above, mode.n_eff - n)
        assert abs(mode.confinement["film"] - gamma) <= 1e-4, (above, mode.confinement, gamma)
        assert sum(mode.confinement.values()) == pytest.approx(1.0, abs=1e-12)
        n2 = mode.n_eff**2
        assert mode.decay == pytest.approx(
            (K0 * math.sqrt(n2 - N_GLASS**2), K0 * math.sqrt(n2 - 1.0)), rel=1e-8
        )
    # Below cut-off nothing is guided.
    assert stack_modes(stack(d_c - 0.5e-9), permittivity(n_f), WAVELENGTH, pol) == []


@pytest.mark.parametrize("pol", ["TE", "TM"])
def test_padding_does_not_matter(pol: str) -> None:
    """0.2 um and 5 um of substrate and air below and above give the same mode, 0.5 nm and 9 nm
    above cut-off (tails of 13-38 um and 1-2 um). The elements of the padding are 12.5 nm in both
    (mesh.scale), so that the two meshes agree where they overlap: what differences remain are
    those of the tail's discretisation inside the thicker mesh (the exact tail replaces it in the
    thinner): 1e-11 in n_eff, 2e-9 in the confinement."""
    n_f = 1.74
    scale = 12.5e-9 / (WAVELENGTH / 40.0)
    for above in (0.5, 9.0):
        d = cutoff_thickness(n_f, pol) + above * 1e-9
        thin, thick = (
            fundamental(
                stack(d, f"mesh.scale={scale!r}", f"mesh.optical_padding_um={pad}"), n_f, pol
            )
            for pad in (0.2, 5)
        )
        assert abs(thin.n_eff - thick.n_eff) <= 1e-10
        for region in ("substrate", "film", "cover"):
            assert abs(thin.confinement[region] - thick.confinement[region]) <= 1e-8
        assert thin.group_index == pytest.approx(thick.group_index, rel=1e-9)
        assert thin.decay == pytest.approx(thick.decay, rel=1e-6)


@pytest.mark.parametrize("pol", ["TE", "TM"])
def test_convergence_order_near_cutoff(pol: str) -> None:
    """P2 elements: the n_eff error falls as h^4 under uniform refinement (2 nm above cut-off,
    refinement by mesh.scale alone)."""
    n_f = 1.97
    d = cutoff_thickness(n_f, pol) + 2e-9
    n, _ = closed_form(d, n_f, pol)
    scales = (1.0, 0.5, 0.25)
    errors = [
        abs(fundamental(stack(d, "mesh.film_elements=1", f"mesh.scale={s}"), n_f, pol).n_eff - n)
        for s in scales
    ]
    assert errors[-1] < 1e-8, errors
    assert observed_order(scales, errors) > 3.7, errors


@pytest.mark.parametrize("pol", ["TE", "TM"])
def test_weights_and_group_index_hold_the_tails(pol: str) -> None:
    """1 nm above cut-off, where 99 % of the intensity lies beyond the mesh: the first-order
    weight of the substrate is dN^2/d(eps_substrate), and the group index N - lambda dN/dlambda,
    both from central differences of the closed-form N."""
    n_f = 1.74
    d = cutoff_thickness(n_f, pol) + 1e-9
    mode = fundamental(stack(d), n_f, pol)
    assert mode.confinement["substrate"] > 0.98

    h = 1e-7
    up, down = (slab_n_eff(d, n_f**2, N_GLASS**2 + s, 1.0, pol, 0, K0) ** 2 for s in (h, -h))
    assert sum(mode.weights["substrate"]) == pytest.approx((up - down) / (2 * h), rel=1e-5)
    dl = 1e-12
    up, down = (
        slab_n_eff(d, n_f**2, N_GLASS**2, 1.0, pol, 0, 2 * math.pi / (WAVELENGTH + s))
        for s in (dl, -dl)
    )
    n = slab_n_eff(d, n_f**2, N_GLASS**2, 1.0, pol, 0, K0)
    assert mode.group_index == pytest.approx(n - WAVELENGTH * (up - down) / (2 * dl), rel=1e-6)


@pytest.mark.parametrize("pol", ["TE", "TM"])
def test_transparent_ends_bracket_the_mode(pol: str) -> None:
    """The ends' terms only lower the eigenvalues: Neumann ends (gamma = 0) and the ends of the
    cut-off bound the mode's N^2 from above, in that order; Brent's method on lambda_0(x) = x
    finds the root that the Rayleigh quotient iteration of stack_modes finds."""
    n_f = 1.74
    d = cutoff_thickness(n_f, pol) + 9e-9
    exact = slab_n_eff(d, n_f**2, N_GLASS**2, 1.0, pol, 0, K0) ** 2
    msh = stack(d, "mesh.optical_padding_um=0.2")
    eps_r = _resolve_permittivity(msh, permittivity(n_f))
    ends = _Ends.of(msh, eps_r, pol == "TE", K0)
    coefficients = _Coefficients.of(msh, eps_r, K0, 2)
    pencil = _Pencil.build(coefficients, ends, eps_r, _solver_options(None))
    try:
        neumann = pencil.eigenvalue(None, 0)
        at_cutoff = pencil.eigenvalue(ends.cutoff, 0)
        root = _transparent_root(pencil, 0, at_cutoff)
    finally:
        pencil.destroy()
    mode = fundamental(msh, n_f, pol)
    assert neumann > at_cutoff > exact > ends.cutoff
    assert abs(root - mode.n_eff**2) <= 1e-11
    assert abs(root - exact) < 1e-7
