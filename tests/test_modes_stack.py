"""Guided modes of the layer stack against closed forms and the exact multilayer dispersion.

References written here: the three-layer slab dispersion relations (TE, TM, and TM with a uniaxial
core) solved with brentq, the TE confinement factor in closed form, the TM |E|^2 fraction of the
analytic slab field, and a transfer matrix for any stack (complex permittivities, complex root by
the secant method) for losses.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from mpi4py import MPI

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq

from cqdlaser.geometry.config import load_device
from cqdlaser.geometry.device import Device, Grating
from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.geometry.stack import build_stack
from cqdlaser.physics._petsc import SolverError
from cqdlaser.physics.modes import (
    Mode,
    bragg_wavelength_shift,
    gain_confinement,
    grating_permittivity,
    perturbation_shift,
    stack_modes,
    thermo_optic_shift,
    wiener_bounds,
)
from cqdlaser.physics.source import cqd_fractions

WAVELENGTH = 630e-9
K0 = 2 * math.pi / WAVELENGTH
N_GLASS, N_INORGANIC, N_ORGANIC, N_MGF2 = 1.52, 1.97, 1.74, 1.38
EPS_AL = (1.51 + 7.64j) ** 2  # Rakic 1995 at 643 nm (reference/physics.md §3.2)


def stack(*overrides: str) -> MeshData:
    """A stack mesh at 630 nm; refinement by mesh.scale alone (film_elements = 1)."""
    device = load_device(
        None,
        [
            "optics.wavelength_nm=630",
            "mesh.film_elements=1",
            "substrate.material=glass",
            *overrides,
        ],
    )
    return build_stack(device, MPI.COMM_WORLD, optical=True)


# --- closed forms ----------------------------------------------------------------------------


def slab_n_eff(
    d: float,
    core: float | tuple[float, float],
    eps_s: float,
    eps_c: float,
    pol: str,
    m: int,
    k0: float = K0,
) -> float | None:
    """n_eff of the TE_m/TM_m mode of a 3-layer slab (core eps or (eps_par, eps_perp)), or None."""
    ex, ez = core if isinstance(core, tuple) else (core, core)
    top = ex if pol == "TE" else ez

    def f(n: float) -> float:
        kappa = k0 * math.sqrt(ex - n * n) if pol == "TE" else k0 * math.sqrt(ex * (1 - n * n / ez))
        gs, gc = k0 * math.sqrt(n * n - eps_s), k0 * math.sqrt(n * n - eps_c)
        rs, rc = (1.0, 1.0) if pol == "TE" else (ex / eps_s, ex / eps_c)
        return kappa * d - m * math.pi - math.atan(rs * gs / kappa) - math.atan(rc * gc / kappa)

    lo, hi = math.sqrt(max(eps_s, eps_c)) + 1e-13, math.sqrt(top) - 1e-13
    return brentq(f, lo, hi, xtol=1e-16, rtol=1e-15) if f(lo) > 0 else None


def gamma_te(d: float, n_f: float, n_s: float, n_c: float, n: float, k0: float = K0) -> float:
    """Closed-form TE confinement factor of the film (reference/physics.md §4c)."""
    kappa = k0 * math.sqrt(n_f**2 - n**2)
    gs, gc = k0 * math.sqrt(n**2 - n_s**2), k0 * math.sqrt(n**2 - n_c**2)
    return (d + gs / (kappa**2 + gs**2) + gc / (kappa**2 + gc**2)) / (d + 1 / gs + 1 / gc)


def gamma_tm(d: float, eps_f: float, eps_s: float, eps_c: float, n: float, k0: float = K0) -> float:
    """Film fraction of |E_x|^2 + |E_z|^2 of the analytic TM slab field (film on [0, d])."""
    kappa = k0 * math.sqrt(eps_f - n**2)
    gs, gc = k0 * math.sqrt(n**2 - eps_s), k0 * math.sqrt(n**2 - eps_c)
    b = eps_f / eps_s * gs / kappa
    beta2 = (k0 * n) ** 2

    def h(z: float) -> float:
        return math.cos(kappa * z) + b * math.sin(kappa * z)

    def dh(z: float) -> float:
        return kappa * (b * math.cos(kappa * z) - math.sin(kappa * z))

    film = quad(
        lambda z: (dh(z) ** 2 + beta2 * h(z) ** 2) / eps_f**2, 0, d, epsabs=0, epsrel=1e-13
    )[0]
    # Exponential tails: H = H0 e^{-g|z|}, so |H'|^2 = g^2 |H|^2 and int |H|^2 = H0^2 / (2 g).
    sub = (gs**2 + beta2) / eps_s**2 / (2 * gs)
    cov = (gc**2 + beta2) / eps_c**2 * h(d) ** 2 / (2 * gc)
    return film / (film + sub + cov)


# --- transfer matrix (any stack, complex eps) ------------------------------------------------


def dispersion(
    n2: complex,
    layers: Sequence[tuple[complex | tuple[complex, complex], float]],
    eps_s: complex,
    eps_c: complex,
    pol: str,
) -> complex:
    """Zero at a guided mode: (E, E'/p) carried from the decaying substrate field through the
    layers (eps or (eps_par, eps_perp), thickness) must decay into the cover.
    TE: E = E_y, p = 1, gamma^2 = k0^2 (n2 - eps_par);
    TM: E = H_y, p = eps_par, gamma^2 = k0^2 eps_par (n2/eps_perp - 1).
    """

    def gamma_p(eps: complex | tuple[complex, complex]) -> tuple[complex, complex]:
        ex, ez = eps if isinstance(eps, tuple) else (eps, eps)
        if pol == "TE":
            return K0 * np.sqrt(complex(n2 - ex)), 1.0
        return K0 * np.sqrt(complex(ex * (n2 / ez - 1))), ex

    g, p = gamma_p(eps_s)
    state = np.array([1.0, g / p], dtype=complex)
    for eps, t in layers:
        g, p = gamma_p(eps)
        c, s = np.cosh(g * t), np.sinh(g * t)
        state = np.array([[c, p * s / g], [g * s / p, c]]) @ state
    g, p = gamma_p(eps_c)
    return complex(state[1] + g / p * state[0])


def complex_root(fun, n2: complex, step: float = 1e-6) -> complex:
    """A complex root of fun(n2) by the secant method from n2."""
    x0, x1 = complex(n2), complex(n2) * (1 + step)
    f0, f1 = fun(x0), fun(x1)
    for _ in range(100):
        x2 = x1 - f1 * (x1 - x0) / (f1 - f0)
        if abs(x2 - x1) < 1e-15 * abs(x2):
            return x2
        x0, f0, x1, f1 = x1, f1, x2, fun(x2)
    raise RuntimeError("secant iteration did not converge")


def observed_order(h: Sequence[float], err: Sequence[float]) -> float:
    """Least-squares slope of log(err) against log(h)."""
    return float(np.polyfit(np.log(h), np.log(err), 1)[0])


# --- tests -----------------------------------------------------------------------------------

SLABS = {
    # name: (film thickness, eps film, eps substrate, eps cover). TM1 of the symmetric slab
    # (n_eff 1.534) decays over 2.5 um, beyond the default 2 um of padding: the ends are exact.
    "asymmetric": (200e-9, N_INORGANIC**2, N_GLASS**2, 1.0),
    "symmetric": (300e-9, N_INORGANIC**2, N_GLASS**2, N_GLASS**2),
}


@pytest.mark.parametrize("pol", ["TE", "TM"])
@pytest.mark.parametrize("slab", sorted(SLABS))
def test_slab_closed_form_convergence(slab: str, pol: str) -> None:
    d, eps_f, eps_s, eps_c = SLABS[slab]
    exact = [slab_n_eff(d, eps_f, eps_s, eps_c, pol, m) for m in range(4)]
    exact = [n for n in exact if n is not None]
    scales = (2.0, 1.0, 0.5)
    errors, gamma_errors = [], []
    for scale in scales:
        msh = stack(f"film.thickness_nm={d * 1e9}", f"mesh.scale={scale}")
        modes = stack_modes(
            msh, {"substrate": eps_s, "film": eps_f, "cover": eps_c}, WAVELENGTH, pol, n_modes=6
        )
        assert [m.order for m in modes] == list(range(len(exact)))
        assert all(m.polarisation == pol for m in modes)
        errors.append(max(abs(m.n_eff - n) for m, n in zip(modes, exact, strict=True)))
        for m in modes:
            assert sum(m.confinement.values()) == pytest.approx(1.0, abs=1e-12)
            assert m.loss_per_cm == 0.0
        ref = [
            gamma_te(d, math.sqrt(eps_f), math.sqrt(eps_s), math.sqrt(eps_c), n)
            if pol == "TE"
            else gamma_tm(d, eps_f, eps_s, eps_c, n)
            for n in exact
        ]
        gamma_errors.append(
            max(abs(m.confinement["film"] - g) for m, g in zip(modes, ref, strict=True))
        )
    assert errors[-1] < 1e-6
    assert gamma_errors[-1] < 1e-6
    # P2: eigenvalue error ~ h^4.
    assert observed_order(scales, errors) > 3.7, errors
    assert observed_order(scales, gamma_errors) > 3.5, gamma_errors


@pytest.mark.parametrize("pol", ["TE", "TM"])
def test_uniaxial_core(pol: str) -> None:
    """A uniaxial core (eps_par, eps_perp): TE sees eps_par; TM the closed form with both."""
    d, core, eps_s, eps_c = 250e-9, (4.0, 3.0), N_GLASS**2, 1.0
    msh = stack(f"film.thickness_nm={d * 1e9}", "mesh.scale=0.5")
    modes = stack_modes(msh, {"substrate": eps_s, "film": core, "cover": eps_c}, WAVELENGTH, pol)
    exact = [slab_n_eff(d, core, eps_s, eps_c, pol, m) for m in range(3)]
    exact = [n for n in exact if n is not None]
    assert len(modes) == len(exact)
    for m, n in zip(modes, exact, strict=True):
        assert abs(m.n_eff - n) < 1e-7


def test_grating_permittivity() -> None:
    """Numbers of reference/physics.md §1.1 and the ordering of the bounds."""
    f = math.pi * 80.0**2 / 430.0**2
    eps_cqd, eps_sio2 = N_INORGANIC**2, 1.457**2
    par, perp = grating_permittivity(f, eps_sio2, eps_cqd)
    assert perp.real == pytest.approx(3.690, abs=5e-4)
    assert math.sqrt(par.real) == pytest.approx(1.908, abs=5e-4)
    harmonic, average = wiener_bounds(f, eps_sio2, eps_cqd)
    assert harmonic.real < par.real < average.real == perp.real
    assert grating_permittivity(f, eps_sio2, eps_cqd, in_plane="harmonic")[0] == harmonic
    assert grating_permittivity(0.0, eps_sio2, eps_cqd) == pytest.approx((eps_cqd, eps_cqd))
    with pytest.raises(ValueError, match="in_plane"):
        grating_permittivity(f, eps_sio2, eps_cqd, in_plane="bruggeman")


def test_grating_layer_in_device_stack() -> None:
    """The homogenised (uniaxial) grating region of a device stack, against the transfer matrix."""
    msh = stack(
        "grating.period_nm=430",
        "film.thickness_nm=60",
        "mesh.scale=0.5",
        "cladding.material=mgf2",
        "cladding.thickness_nm=200",
    )
    assert set(msh.regions) == {"substrate", "cladding", "grating", "film", "cover"}
    f = math.pi * 80.0**2 / 430.0**2
    grating = grating_permittivity(f, 1.457**2, N_INORGANIC**2)
    eps = {
        "substrate": N_GLASS**2,
        "cladding": N_MGF2**2,
        "grating": grating,
        "film": N_INORGANIC**2,
        "cover": 1.0,
    }
    layers = [(N_MGF2**2, 200e-9), (grating, 130e-9), (N_INORGANIC**2, 60e-9)]
    for pol in ("TE", "TM"):
        modes = stack_modes(msh, eps, WAVELENGTH, pol)
        assert modes
        for mode in modes:
            root = complex_root(
                lambda n2, p=pol: dispersion(n2, layers, N_GLASS**2, 1.0, p), mode.n_eff**2
            )
            assert abs(root.imag) < 1e-12
            assert abs(math.sqrt(root.real) - mode.n_eff) < 1e-7
        # The isotropic volume average gives a measurably different index.
        average = dict(eps, grating=grating[1])
        assert abs(stack_modes(msh, average, WAVELENGTH, pol)[0].n_eff - modes[0].n_eff) > 1e-4


def test_weakly_absorbing_film_loss() -> None:
    """First-order loss of a weakly absorbing film = Im of the exact complex root (to O(kappa^2)).

    The second-order term of an imaginary perturbation i delta is real, so the loss is exact to
    O(delta^3): the relative agreement is set by the mesh, not by the expansion.
    """
    d, n_f = 150e-9, N_INORGANIC + 1e-3j
    msh = stack(f"film.thickness_nm={d * 1e9}", "mesh.scale=0.5")
    for pol in ("TE", "TM"):
        (mode,) = stack_modes(
            msh, {"substrate": N_GLASS**2, "film": n_f**2, "cover": 1.0}, WAVELENGTH, pol
        )
        root = complex_root(
            lambda n2, p=pol: dispersion(n2, [(n_f**2, d)], N_GLASS**2, 1.0, p), mode.n_eff**2
        )
        exact_loss = 2 * (K0 * np.sqrt(root)).imag / 100.0
        assert mode.loss_per_cm == pytest.approx(exact_loss, rel=2e-5)
        # A bulk check: the film's share of the intensity loss 2 k0 kappa (per cm).
        assert 0 < mode.loss_per_cm < 2 * K0 * 1e-3 / 100.0


def test_aluminium_cladding_loss() -> None:
    """Loss of a 120 nm film on 300-600 nm of MgF2 over an Al substrate, TE0.

    The FEM's first-order loss must equal the derivative of the exact complex root with respect
    to Im(eps_Al) (transfer matrix, tight), and differ from the exact root itself by the
    first-order error in Im(eps_Al) / |eps_Al|, which does not vanish however thick the cladding:
    for a thick cladding the loss is proportional to Im r, with r = (g_c - g_m)/(g_c + g_m) the
    reflection coefficient of the cladding's evanescent field at the metal, so the ratio of the
    two tends to Im r(linearised in Im eps_Al) / Im r(exact) (about 1.08 for Al at 643 nm).
    """
    d = 120e-9
    losses = []
    for cladding_nm in (300, 450, 600):
        t = cladding_nm * 1e-9
        msh = stack(
            f"film.thickness_nm={d * 1e9}",
            "mesh.scale=0.25",
            "substrate.material=al",
            "cladding.material=mgf2",
            f"cladding.thickness_nm={cladding_nm}",
        )
        eps = {"substrate": EPS_AL, "cladding": N_MGF2**2, "film": N_INORGANIC**2, "cover": 1.0}
        # TE0 is the film's mode; the metal-clad cladding guides a lossier TE1 (n_eff 1.0-1.3).
        mode = stack_modes(msh, eps, WAVELENGTH, "TE")[0]
        assert mode.confinement["film"] > 0.6
        layers = [(N_MGF2**2, t), (N_INORGANIC**2, d)]

        def root(eps_m: complex, layers=layers, mode=mode) -> complex:
            return complex_root(lambda n2: dispersion(n2, layers, eps_m, 1.0, "TE"), mode.n_eff**2)

        real_root = root(EPS_AL.real)
        assert abs(math.sqrt(real_root.real) - mode.n_eff) < 1e-7
        h = 1e-4
        linear = (root(EPS_AL.real + 1j * h * EPS_AL.imag) - real_root).imag / h
        linear_loss = K0 * linear / mode.n_eff / 100.0
        assert mode.loss_per_cm == pytest.approx(linear_loss, rel=1e-4)

        exact_loss = 2 * (K0 * np.sqrt(root(EPS_AL))).imag / 100.0
        n = mode.n_eff
        g_c = math.sqrt(n**2 - N_MGF2**2)
        g_m, g_m0 = np.sqrt(n**2 - EPS_AL), math.sqrt(n**2 - EPS_AL.real)
        im_r_exact = -2 * g_c * g_m.imag / abs(g_c + g_m) ** 2
        im_r_linear = g_c * EPS_AL.imag / g_m0 / (g_c + g_m0) ** 2
        ratio = mode.loss_per_cm / exact_loss
        assert ratio == pytest.approx(im_r_linear / im_r_exact, rel=5e-3)
        losses.append((t, mode.loss_per_cm, exact_loss, K0 * g_c))
        if MPI.COMM_WORLD.rank == 0:
            print(
                f"Al, {cladding_nm} nm MgF2: n_eff {n:.6f}, loss {mode.loss_per_cm:.5g}/cm "
                f"(first order), {exact_loss:.5g}/cm (exact root), ratio {ratio:.4f}"
            )
    # Exponential decay with the cladding thickness, at the rate 2 k0 g_c of the field's tail.
    for (t0, a0, _, g0), (t1, a1, _, g1) in itertools.pairwise(losses):
        rate = math.log(a0 / a1) / (t1 - t0)
        assert rate == pytest.approx(g0 + g1, rel=0.02)


def test_fig1c_equal_confinement_thickness() -> None:
    """Fig. 1c in miniature: the n = 1.97 film thickness with the confinement of a n = 1.74 film
    (300 nm, the organic optimum, and 150 nm; on glass, TE0, 630 nm), FEM against the closed form.

    The ratio of thicknesses falls towards the ratio of the TE0 cut-offs (59/111 nm) as the
    confinement falls: the paper's ">= 50 % less thickness" holds only near cut-off.
    """

    def gamma_cf(d: float, n_f: float) -> float:
        return gamma_te(d, n_f, N_GLASS, 1.0, slab_n_eff(d, n_f**2, N_GLASS**2, 1.0, "TE", 0))

    def gamma_fem(d: float, n_f: float) -> float:
        msh = stack(f"film.thickness_nm={d * 1e9}", "mesh.scale=0.5")
        eps = {"substrate": N_GLASS**2, "film": n_f**2, "cover": 1.0}
        return stack_modes(msh, eps, WAVELENGTH, "TE")[0].confinement["film"]

    def cutoff(n_f: float) -> float:
        root = math.sqrt(n_f**2 - N_GLASS**2)
        return math.atan(math.sqrt(N_GLASS**2 - 1.0) / root) / (K0 * root)

    ratios = []
    for d_org in (150e-9, 300e-9):
        target = gamma_cf(d_org, N_ORGANIC)
        assert gamma_fem(d_org, N_ORGANIC) == pytest.approx(target, abs=1e-7)
        d_cf = brentq(lambda d: gamma_cf(d, N_INORGANIC) - target, 60e-9, d_org, xtol=1e-16)
        # One Newton step on the FEM confinement from the closed-form thickness.
        g0, g1 = gamma_fem(d_cf, N_INORGANIC), gamma_fem(d_cf + 1e-9, N_INORGANIC)
        d_fem = d_cf - (g0 - target) * 1e-9 / (g1 - g0)
        assert abs(d_fem - d_cf) < 1e-12
        ratios.append(d_fem / d_org)
        if MPI.COMM_WORLD.rank == 0:
            print(
                f"Gamma {target:.4f}: {d_fem * 1e9:.3f} nm of n=1.97 vs {d_org * 1e9:.0f} nm "
                f"of n=1.74, ratio {ratios[-1]:.4f}"
            )
    assert cutoff(N_INORGANIC) / cutoff(N_ORGANIC) < ratios[0] < ratios[1] < 0.7


@pytest.mark.parametrize("pol", ["TE", "TM"])
def test_thermo_optic_shift_and_group_index(pol: str) -> None:
    """First-order d n_eff/dT and the group index against finite differences of full solves."""
    msh = stack(
        "film.thickness_nm=200",
        "cladding.material=mgf2",
        "cladding.thickness_nm=300",
        "mesh.scale=0.5",
    )
    n = {"substrate": N_GLASS, "cladding": N_MGF2, "film": N_INORGANIC, "cover": 1.0}
    dn_dt = {"substrate": 1e-5, "cladding": 2e-6, "film": -3e-4}

    def solve(dt: float, wavelength: float = WAVELENGTH) -> Mode:
        eps = {r: (n[r] + dn_dt.get(r, 0.0) * dt) ** 2 for r in n}
        return stack_modes(msh, eps, wavelength, pol)[0]

    mode = solve(0.0)
    first = thermo_optic_shift(mode, {r: v**2 for r, v in n.items()}, dn_dt)
    dt = 1.0
    fd = (solve(dt).n_eff - solve(-dt).n_eff) / (2 * dt)
    assert first == pytest.approx(fd, rel=1e-4)
    assert first < 0  # the film's negative dn/dT dominates

    dl = 1e-11
    up, down = solve(0.0, WAVELENGTH + dl), solve(0.0, WAVELENGTH - dl)
    n_g = mode.n_eff - WAVELENGTH * (up.n_eff - down.n_eff) / (2 * dl)
    assert mode.group_index == pytest.approx(n_g, rel=1e-6)

    # Bragg line of the second-order DFB: Lambda dn_eff/dT at fixed wavelength, times n_eff/n_g.
    period = 430e-9
    assert bragg_wavelength_shift(mode, first, period, dispersive=False) == pytest.approx(
        period * first
    )
    assert bragg_wavelength_shift(mode, first, period) == pytest.approx(
        period * first * mode.n_eff / mode.group_index
    )
    # perturbation_shift: a uniform change of eps everywhere by delta (TE) shifts n_eff^2 by delta.
    if pol == "TE":
        assert perturbation_shift(mode, dict.fromkeys(n, 0.01)).real == pytest.approx(0.01)


def test_only_guided_modes() -> None:
    """Below the TE0 cut-off (59 nm for n = 1.97 on glass) nothing is guided."""
    eps = {"substrate": N_GLASS**2, "film": N_INORGANIC**2, "cover": 1.0}
    assert stack_modes(stack("film.thickness_nm=45"), eps, WAVELENGTH, "TE") == []
    modes = stack_modes(stack("film.thickness_nm=900"), eps, WAVELENGTH, "TE", n_modes=10)
    assert [m.order for m in modes] == list(range(len(modes)))
    assert len(modes) == sum(
        slab_n_eff(900e-9, N_INORGANIC**2, N_GLASS**2, 1.0, "TE", m) is not None for m in range(10)
    )
    assert all(m.n_eff > N_GLASS for m in modes)
    assert np.all(np.diff([m.n_eff for m in modes]) < 0)


def test_errors() -> None:
    msh = stack()
    with pytest.raises(KeyError, match="missing"):
        stack_modes(msh, {"substrate": 2.0, "film": 4.0}, WAVELENGTH)
    with pytest.raises(KeyError, match="unknown"):
        stack_modes(msh, {"substrate": 2.0, "film": 4.0, "cover": 1.0, "cap": 2.0}, WAVELENGTH)
    with pytest.raises(ValueError, match="polarisation"):
        stack_modes(msh, {"substrate": 2.0, "film": 4.0, "cover": 1.0}, WAVELENGTH, "TEM")
    with pytest.raises(SolverError, match="modes_stack_") as failure:
        stack_modes(
            msh,
            {"substrate": 2.0, "film": 4.0, "cover": 1.0},
            WAVELENGTH,
            petsc_options={"eps_max_it": 1, "eps_tol": 1e-16},
        )
    assert (failure.value.solver, failure.value.prefix) == ("SLEPc EPS", "modes_stack_")
    assert failure.value.reason_name == "DIVERGED_ITS"
    assert failure.value.options["eps_max_it"] == 1


def test_gain_confinement_weighs_regions_by_their_cqd() -> None:
    """The gain confinement counts each region by the CQD fraction the heat source gives it:
    film and resolved fill whole, the homogenised grating layer by 1 - f, the rest not."""
    device = Device(grating=Grating(pillar_diameter_nm=200))
    f = device.grating.fill_fraction
    fractions = cqd_fractions(device)
    homogenised = {"substrate": 0.3, "grating": 0.2, "film": 0.4, "cap": 0.1}
    resolved = {"substrate": 0.3, "pillars": 0.05, "grating_fill": 0.15, "film": 0.4, "cap": 0.1}
    for gamma in (homogenised, resolved):
        expected = sum(g * fractions.get(r, 0.0) for r, g in gamma.items())
        assert gain_confinement(gamma, f) == pytest.approx(expected, rel=1e-15)
    assert gain_confinement(homogenised, f) == pytest.approx(0.4 + (1 - f) * 0.2, rel=1e-15)
    assert gain_confinement(resolved, f) == pytest.approx(0.55, rel=1e-15)
    assert gain_confinement({"film": 0.5, "substrate": 0.5}, 0.0) == 0.5
