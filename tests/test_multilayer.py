"""Exact multilayer modes (physics.multilayer) against closed forms, the FEM stack solver, and an
independent PML finite-element solve (physics.stack_pml) for leaky modes.

References written here: the three-layer slab eigenvalue equation in tan form multiplied out
(TE, TM, TM with a uniaxial core), and the closed-form integrals of the slab's |E|^2 (TE: the
textbook confinement factor; TM: |E_x|^2 + |E_z|^2 from the cosine-sine film field and the
exponential tails).
"""

from __future__ import annotations

import math

from mpi4py import MPI

import numpy as np
import pytest
from scipy.optimize import brentq

from cqdlaser.physics import multilayer
from cqdlaser.physics.materials import get_material
from cqdlaser.physics.modes import gain_confinement
from cqdlaser.physics.multilayer import (
    LayerMode,
    PlanarLayer,
    Stack,
    device_modes,
    dispersion,
    leaky_te_index,
    mode_field,
    multilayer_modes,
    stack_from_device,
)
from cqdlaser.physics.stack_pml import pml_stack_index
from cqdlaser.studies.common import paper_device
from cqdlaser.studies.optics import stack_mode_table

WAVELENGTH = 643e-9
K0 = 2 * math.pi / WAVELENGTH
EPS_FILM = get_material("cqd_inorganic").permittivity
EPS_MGF2 = get_material("mgf2").permittivity
EPS_SI = get_material("si").permittivity
EPS_SAPPHIRE = get_material("sapphire").permittivity


def film_stack(substrate: complex, cladding_nm: float | None, film_nm: float = 120.0) -> Stack:
    """A CQD film (inorganic, 643 nm) in air, on a substrate, under an MgF2 cladding or not."""
    layers = [PlanarLayer("film", EPS_FILM, film_nm * 1e-9)]
    if cladding_nm is not None:
        layers.insert(0, PlanarLayer("cladding", EPS_MGF2, cladding_nm * 1e-9))
    return Stack(WAVELENGTH, substrate, tuple(layers), 1.0)


# --- closed forms ----------------------------------------------------------------------------


def slab_modes(
    d: float, core: complex | tuple[float, float], eps_s: float, eps_c: float, pol: str
) -> list[float]:
    """N of every guided mode of a three-layer slab, decreasing: the roots of the tan form
    tan(kappa d) = kappa (r_s g_s + r_c g_c) / (kappa^2 - r_s r_c g_s g_c), multiplied out."""
    ex, ez = core if isinstance(core, tuple) else (core, core)
    top = ex if pol == "TE" else ez

    def h(n: float) -> float:
        if pol == "TE":
            kappa, rs, rc = K0 * math.sqrt(ex - n * n), 1.0, 1.0
        else:
            kappa, rs, rc = K0 * math.sqrt(ex / ez * (ez - n * n)), ex / eps_s, ex / eps_c
        gs, gc = K0 * math.sqrt(n * n - eps_s), K0 * math.sqrt(n * n - eps_c)
        return (kappa**2 - rs * rc * gs * gc) * math.sin(kappa * d) - kappa * (
            rs * gs + rc * gc
        ) * math.cos(kappa * d)

    grid = np.linspace(math.sqrt(max(eps_s, eps_c)) + 1e-12, math.sqrt(top) - 1e-12, 4001)
    values = [h(n) for n in grid]
    roots = [
        brentq(h, a, b, xtol=1e-16, rtol=1e-15)
        for a, b, fa, fb in zip(grid[:-1], grid[1:], values[:-1], values[1:], strict=True)
        if fa * fb < 0
    ]
    return sorted(roots, reverse=True)


def slab_confinement(
    d: float, core: float | tuple[float, float], eps_s: float, eps_c: float, pol: str, n: float
) -> dict[str, float]:
    """Closed-form |E|^2 fractions of a slab mode: film on [0, d], H or E = cos + B sin there."""
    ex, ez = core if isinstance(core, tuple) else (core, core)
    gs, gc = K0 * math.sqrt(n * n - eps_s), K0 * math.sqrt(n * n - eps_c)
    if pol == "TE":
        kappa = K0 * math.sqrt(ex - n * n)
        total = d + 1 / gs + 1 / gc
        film = (d + gs / (kappa**2 + gs**2) + gc / (kappa**2 + gc**2)) / total
        return {"substrate": kappa**2 / ((kappa**2 + gs**2) * gs * total), "film": film}
    kappa = K0 * math.sqrt(ex / ez * (ez - n * n))
    b = ex / eps_s * gs / kappa
    s2, c2 = math.sin(2 * kappa * d), math.cos(2 * kappa * d)
    h2 = d * (1 + b * b) / 2 + (1 - b * b) * s2 / (4 * kappa) + b * (1 - c2) / (2 * kappa)
    dh2 = kappa**2 * (
        d * (1 + b * b) / 2 - (1 - b * b) * s2 / (4 * kappa) - b * (1 - c2) / (2 * kappa)
    )
    h_top = math.cos(kappa * d) + b * math.sin(kappa * d)
    film = dh2 / (K0 * ex) ** 2 + n * n * h2 / ez**2
    sub = ((gs / eps_s / K0) ** 2 + n * n / eps_s**2) / (2 * gs)
    cov = h_top**2 * ((gc / eps_c / K0) ** 2 + n * n / eps_c**2) / (2 * gc)
    total = film + sub + cov
    return {"substrate": sub / total, "film": film / total}


SLABS = {
    # name: (film thickness, core eps, substrate eps, cover eps)
    "symmetric": (600e-9, 1.97**2, 1.52**2, 1.52**2),
    "asymmetric": (400e-9, 1.97**2, 1.52**2, 1.0),
    "uniaxial": (400e-9, (1.97**2, 1.90**2), 1.45**2, 1.0),
}


@pytest.mark.parametrize("pol", ["TE", "TM"])
@pytest.mark.parametrize("slab", sorted(SLABS))
def test_slab_closed_form(slab: str, pol: str) -> None:
    """Every mode of a three-layer slab, N to 1e-12 and the confinement to 1e-10."""
    d, core, eps_s, eps_c = SLABS[slab]
    if slab == "uniaxial" and pol == "TE":
        core = core[0]
    exact = slab_modes(d, core, eps_s, eps_c, pol)
    stack = Stack(WAVELENGTH, eps_s, (PlanarLayer("film", core, d),), eps_c)
    modes = multilayer_modes(stack, pol)
    assert len(exact) >= 2
    assert [m.order for m in modes] == list(range(len(exact)))
    for mode, n in zip(modes, exact, strict=True):
        assert mode.kind == "guided" and mode.polarisation == pol
        assert abs(mode.n_eff_complex - n) < 1e-12
        assert mode.residual < 1e-13
        assert sum(mode.confinement.values()) == pytest.approx(1.0, abs=1e-14)
        for region, gamma in slab_confinement(d, core, eps_s, eps_c, pol, n).items():
            assert mode.confinement[region] == pytest.approx(gamma, abs=1e-10)


def test_field_continuity_and_decay() -> None:
    """The exact field: continuous across interfaces, with E_y' (TE) or H_y'/eps (TM)
    continuous too; decaying into the outer regions of a guided mode; peak 1."""
    stack = film_stack(EPS_MGF2, 300.0)
    delta = 1e-11
    for pol in ("TE", "TM"):
        mode = multilayer_modes(stack, pol)[0]
        for z_if, eps_below, eps_above in ((0.0, EPS_MGF2, EPS_MGF2), (300e-9, EPS_MGF2, EPS_FILM)):
            z = z_if + delta * np.array([-2.0, -1.0, 1.0, 2.0])
            u = mode_field(stack, mode, np.concatenate([z, [z_if]]))
            assert abs(u[1] - u[2]) < 1e-3 * abs(u[4])
            p_below, p_above = (1.0, 1.0) if pol == "TE" else (eps_below, eps_above)
            slope_below = (3 * u[4] - 4 * u[1] + u[0]) / (2 * delta) / p_below
            slope_above = (-3 * u[4] + 4 * u[2] - u[3]) / (2 * delta) / p_above
            assert abs(slope_above - slope_below) < 1e-4 * abs(slope_below)
        deep = mode_field(stack, mode, np.array([-3e-6, 3.5e-6]))
        assert np.all(np.abs(deep) < 1e-3)
        z = np.linspace(0, 420e-9, 2000)
        assert np.max(np.abs(mode_field(stack, mode, z))) == pytest.approx(1.0, abs=1e-3)


# --- the FEM stack solver --------------------------------------------------------------------


def test_guided_modes_match_fem_stack_solver() -> None:
    """The paper's stack (uniaxial homogenised grating, cap): the FEM eigenvalues and confinement
    of TE0 and TM0 are the exact ones within the FEM's discretisation error (measured: n_eff
    7e-8, confinement 1e-6)."""
    device = paper_device("paper_inorganic_mgf2", ["mesh.optical_padding_um=2"])
    exact = {(m.polarisation, m.order): m for m in device_modes(device)}
    for row in stack_mode_table(device, MPI.COMM_WORLD):
        if row["order"] > 0:
            continue
        mode = exact[(row["polarisation"], 0)]
        assert mode.kind == "guided" and mode.loss_per_cm == 0.0
        assert mode.n_eff == pytest.approx(row["n_eff"], abs=1e-6)
        for region, gamma in row["confinement"].items():
            assert mode.confinement[region] == pytest.approx(gamma, abs=1e-4)
        fill = device.grating.fill_fraction
        assert gain_confinement(mode.confinement, fill) == pytest.approx(
            row["gain_confinement"], abs=1e-4
        )


def test_metal_substrate_exact_loss_below_first_order() -> None:
    """Al under 500 nm MgF2: a guided, lossy TE0 whose exact loss 2 k0 Im N is 8 % below the FEM
    solver's first-order value (the second-order term of a metal's loss, physics.modes)."""
    device = paper_device("al_mgf2_cladding")
    fem = stack_mode_table(device, MPI.COMM_WORLD, polarisations=("TE",))[0]
    mode = device_modes(device, ("TE",))[0]
    assert mode.kind == "guided" and mode.confinement["substrate"] < 1e-6
    assert mode.n_eff == pytest.approx(fem["n_eff"], abs=1e-6)
    assert mode.loss_per_cm < fem["loss_per_cm"]
    assert fem["loss_per_cm"] / mode.loss_per_cm == pytest.approx(1.083, abs=0.005)


# --- leaky modes -----------------------------------------------------------------------------


@pytest.mark.parametrize("pol", ["TE", "TM"])
@pytest.mark.parametrize(
    ("substrate", "cladding_nm"),
    [(EPS_SI, 300.0), (EPS_SAPPHIRE, 200.0)],
    ids=["si-300nm", "sapphire-200nm"],
)
def test_leaky_mode_against_pml_solve(substrate: complex, cladding_nm: float, pol: str) -> None:
    """The leaky root is an eigenvalue of the PML-truncated FEM problem (seeded with the guided
    N of the cladding-substrate stack): Re N to 1e-7, Im N to 1e-5 relative (measured with 4 nm
    elements: 1e-9 and 2e-7)."""
    stack = film_stack(substrate, cladding_nm)
    mode = multilayer_modes(stack, pol)[0]
    guided = multilayer_modes(film_stack(EPS_MGF2, cladding_nm), pol)[0]
    reference = pml_stack_index(stack, pol, guided.n_eff, h=5e-9)
    assert mode.kind == "leaky" and mode.confinement["substrate"] == 0.0
    assert sum(mode.confinement.values()) == pytest.approx(1.0, abs=1e-14)
    assert mode.n_eff == pytest.approx(reference.real, abs=1e-7)
    assert mode.n_eff_complex.imag == pytest.approx(reference.imag, rel=1e-5)
    assert mode.n_eff_complex.imag > 1e-4


def test_leakage_falls_with_tunnelling_rate() -> None:
    """Im N through a thicker cladding falls as exp(-2 k0 sqrt(n_eff^2 - n_clad^2) t)."""
    n_clad = math.sqrt(EPS_MGF2.real)
    (t0, n0), (t1, n1) = (
        (t, multilayer_modes(film_stack(EPS_SI, t * 1e9), "TE")[0].n_eff_complex)
        for t in (600e-9, 800e-9)
    )
    rate = math.log(n0.imag / n1.imag) / (t1 - t0)
    n_eff = 0.5 * (n0.real + n1.real)
    assert rate == pytest.approx(2 * K0 * math.sqrt(n_eff**2 - n_clad**2), rel=2e-3)


def test_leaky_root_becomes_guided_root_at_cutoff() -> None:
    """As the substrate index falls to the mode's, Im N of the leaky root falls to 0 (as the
    square root of the index difference) and Re N joins the guided root's."""
    guided = multilayer_modes(film_stack(1.578**2, 400.0), "TE")[0]
    assert guided.kind == "guided" and guided.n_eff_complex.imag == 0.0
    assert guided.n_eff > 1.5785
    steps = [0.016, 0.004, 0.001]
    leaky = [multilayer_modes(film_stack((guided.n_eff + dn) ** 2, 400.0), "TE")[0] for dn in steps]
    assert all(m.kind == "leaky" for m in leaky)
    imag = [m.n_eff_complex.imag for m in leaky]
    assert imag[0] > imag[1] > imag[2] > 0
    assert imag[1] / imag[2] == pytest.approx(2.0, rel=0.15)
    assert abs(leaky[-1].n_eff - guided.n_eff) < 1e-4


def test_leaky_te_index_is_the_exact_te_mode() -> None:
    """The CW study's entry point returns the TE mode of the new solver nearest its seed."""
    device = paper_device(
        "si_sio2_cladding", ["cladding.material=mgf2", "cladding.thickness_nm=500"]
    )
    modes = device_modes(device, ("TE",))
    assert modes[0].kind == "leaky"
    assert leaky_te_index(device, modes[0].n_eff + 1e-3) == modes[0].n_eff_complex
    stack = stack_from_device(device)
    assert stack.regions == ("substrate", "cladding", "grating", "film", "cap", "cover")
    assert isinstance(stack.layers[1].permittivity, tuple)


# --- input checks and failures ---------------------------------------------------------------


def test_bad_stack_and_arguments() -> None:
    with pytest.raises(ValueError, match="thickness"):
        PlanarLayer("film", EPS_FILM, -1e-9)
    with pytest.raises(ValueError, match="Re"):
        PlanarLayer("film", 0.0 + 1j, 1e-7)
    with pytest.raises(ValueError, match="distinct"):
        Stack(WAVELENGTH, 2.0, (PlanarLayer("film", 3.0, 1e-7), PlanarLayer("film", 3.0, 1e-7)))
    with pytest.raises(ValueError, match="polarisation"):
        multilayer_modes(film_stack(EPS_MGF2, None), "TX")
    with pytest.raises(ValueError, match="n_max"):
        multilayer_modes(film_stack(EPS_MGF2, None), "TE", n_max=0)


def test_no_mode_below_cutoff_and_n_max() -> None:
    """A film too thin to guide TM0 above MgF2 returns no TM mode; n_max bounds the count."""
    assert multilayer_modes(film_stack(EPS_MGF2, None, film_nm=20.0), "TM") == []
    thick = film_stack(EPS_MGF2, None, film_nm=2000.0)
    assert len(multilayer_modes(thick, "TE", n_max=3)) == 3
    assert abs(dispersion(thick, "TE", multilayer_modes(thick, "TE")[0].n_eff ** 2)) < 1e-12


def test_failure_names_polarisation_seed_and_residual(monkeypatch: pytest.MonkeyPatch) -> None:
    """A root that fails its residual check raises; it is never returned."""
    monkeypatch.setattr(multilayer, "RESIDUAL_TOLERANCE", 0.0)
    with pytest.raises(RuntimeError, match=r"TE mode seeded at n_eff = 1\.5.*residual"):
        multilayer_modes(film_stack(EPS_SI, 300.0), "TE")


def test_layer_mode_properties() -> None:
    mode = LayerMode("TE", 0, 1.6 + 1e-5j, "leaky", {"film": 1.0}, WAVELENGTH, 0.0)
    assert mode.n_eff == 1.6
    assert mode.loss_per_cm == pytest.approx(2 * K0 * 1e-5 / 100)


def test_mode_beyond_substrate_cutoff_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    """100 nm of film over 100 nm MgF2 on sapphire: the reference TE0 ends beyond the substrate's
    cutoff (an improper root, its field growing into the substrate without carrying power
    away). It is left out with a warning; what is returned are proper modes."""
    device = paper_device(
        "si_sio2_cladding",
        [
            "substrate.material=sapphire",
            "film.thickness_nm=100",
            "cladding.material=mgf2",
            "cladding.thickness_nm=100",
        ],
    )
    n_sub = math.sqrt(get_material("sapphire").permittivity.real)
    with caplog.at_level("WARNING", logger="cqdlaser.physics.multilayer"):
        modes = device_modes(device, ("TE",))
    assert "TE mode seeded at n_eff = 1.75" in caplog.text
    assert "beyond the cutoff of the substrate" in caplog.text
    for mode in modes:
        assert (mode.kind == "leaky") == (mode.n_eff < n_sub)
        assert mode.kind == "guided" or mode.n_eff_complex.imag > 0


def test_surface_plasmon_of_lossy_metal() -> None:
    """Al under MgF2 (a 1 um layer of it, and MgF2 above): the one TM mode is the surface plasmon,
    N^2 = eps_m eps_d / (eps_m + eps_d) with the complex eps_m, and its |E|^2 splits between the
    metal and the dielectric as the closed-form tails say; no TE mode."""
    eps_m, eps_d = get_material("al").permittivity, EPS_MGF2
    stack = Stack(WAVELENGTH, eps_m, (PlanarLayer("cladding", eps_d, 1e-6),), eps_d)
    assert multilayer_modes(stack, "TE") == []
    (mode,) = multilayer_modes(stack, "TM")
    n2 = eps_m * eps_d / (eps_m + eps_d)
    assert abs(mode.n_eff_complex - np.sqrt(n2)) < 1e-12
    assert mode.kind == "guided" and mode.loss_per_cm > 0

    def tail(eps: complex) -> float:
        gamma = K0 * np.sqrt(n2 - eps)
        return (abs(gamma / eps / K0) ** 2 + abs(n2) / abs(eps) ** 2) / (2 * gamma.real)

    metal, dielectric = tail(eps_m), tail(eps_d)
    share = metal / (metal + dielectric)
    assert mode.confinement["substrate"] == pytest.approx(share, abs=1e-10)
