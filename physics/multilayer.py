r"""Exact TE and TM modes of a planar multilayer: guided, lossy and leaky, by the transfer matrix.

The stack is the one of :mod:`physics.modes` without its truncation: a semi-infinite substrate
(:math:`z < 0`), finite layers, a semi-infinite cover. A mode is :math:`e^{i\beta x}` (time
:math:`e^{-i\omega t}`), :math:`N = \beta/k_0` complex, :math:`\alpha = 2 k_0\,\mathrm{Im}\,N` its
power loss. A region's permittivity is a number or a uniaxial pair
:math:`(\varepsilon_\parallel, \varepsilon_\perp)` (axis along :math:`z`), complex.

Equations (those of :mod:`physics.modes`, solved exactly). In a homogeneous region the field
:math:`u` (TE :math:`E_y`, TM :math:`H_y`) obeys :math:`u'' = \gamma^2 u`,

- TE: :math:`\gamma^2 = k_0^2 (N^2 - \varepsilon_\parallel)`, with :math:`u` and :math:`u'`
  continuous (:math:`p = 1`);
- TM: from :math:`(H'/\varepsilon_\parallel)' + k_0^2 H = \beta^2 H/\varepsilon_\perp`,
  :math:`\gamma^2 = k_0^2 (\varepsilon_\parallel/\varepsilon_\perp)(N^2 - \varepsilon_\perp)`, with
  :math:`H` and :math:`H'/\varepsilon_\parallel` continuous (:math:`p = \varepsilon_\parallel`),

that is :math:`\gamma^2 = k_0^2 a (N^2 - b)` with :math:`(a, b) = (1, \varepsilon_\parallel)` (TE)
or :math:`(\varepsilon_\parallel/\varepsilon_\perp, \varepsilon_\perp)` (TM). The state
:math:`(u, w = u'/p)` crosses a layer of thickness :math:`t` by the characteristic matrix

.. math:: \begin{pmatrix} u \\ w \end{pmatrix}_{top} = \begin{pmatrix} \cosh\gamma t &
   p\,\sinh(\gamma t)/\gamma \\ \gamma \sinh(\gamma t)/p & \cosh\gamma t \end{pmatrix}
   \begin{pmatrix} u \\ w \end{pmatrix}_{bottom},

even in :math:`\gamma` (no branch to choose inside a layer). Below the stack :math:`u =
e^{\gamma_s z}`, so the state at the substrate's top is :math:`(1, \gamma_s/p_s)`; above it
:math:`u \propto e^{-\gamma_c (z - z_{top})}`, so the state at the cover's bottom is
:math:`(1, -\gamma_c/p_c)`. The first is carried up to the top of the core (the layer of largest
:math:`\mathrm{Re}\,b`), the second down to it, each in the direction in which the field it
carries grows (stable), and the dispersion function is their normalised Wronskian

.. math:: f(N^2) = \frac{u_\uparrow w_\downarrow - w_\uparrow u_\downarrow}
   {|u_\uparrow w_\downarrow| + |w_\uparrow u_\downarrow|},

zero at a mode; the positive real normaliser makes :math:`|f| \le 1`, keeps the real-axis sign
changes the roots', and makes :math:`|f|` at a root the relative cancellation (the residual
reported). The states are renormalised by a positive number after every layer and the layer
matrices are evaluated as :math:`e^{-|\mathrm{Re}\,\gamma| t}` times themselves, so nothing
overflows however thick a layer is, and the residual of a root does not grow with the thickness
of a cap or a cladding.

Outer regions, :math:`q^2 = a (b - N^2)` (:math:`\gamma^2 = -k_0^2 q^2`), two branches:
evanescent :math:`\gamma = k_0\sqrt{-q^2}` (:math:`\mathrm{Re}\,\gamma > 0`; cut on
:math:`q^2 > 0`) and outgoing :math:`\gamma = -i k_0 \sqrt{q^2}` (phase running away from the guide;
cut on :math:`q^2 < 0`). They agree where :math:`\mathrm{Im}\,q^2 > 0` and are opposite where
:math:`\mathrm{Im}\,q^2 < 0`. The physical one is evanescent where :math:`\mathrm{Re}\,q^2 \le 0`
(a guided side; a metal, :math:`\mathrm{Re}\,\varepsilon < 0`, always is one) and outgoing where
:math:`\mathrm{Re}\,q^2 > 0` (a substrate or cover of higher index than the mode), whose amplitude
grows away from the guide in a lossless medium: a *leaky* mode. :func:`dispersion` uses the physical
branches.

Finding the modes, without a seed:

1. The lossless reference stack: every permittivity replaced by its real part, and an outer region
   of higher index than its neighbouring layer (Si, sapphire, diamond under a low-index cladding)
   replaced by that neighbour's permittivity, so that the modes that will leak into it are guided.
   Its guided modes have real :math:`N^2` between the outer regions' :math:`b` and the largest
   layer :math:`b` (for TM with a metal up to 1.5 times the largest surface-plasmon
   :math:`N^2 = \varepsilon_m\varepsilon_d/(\varepsilon_m+\varepsilon_d)`), where :math:`f` is
   real: a scan on a grid uniform in :math:`\sqrt{b_{max} - N^2}` (the transverse wavenumber, in
   which the roots are nearly evenly spaced; 64 points per expected mode, at least 2048), sign
   changes refined by Brent's method, local minima of :math:`|f|` searched for a hidden pair of
   roots.
2. Continuation in :math:`s \in [0, 1]` from the reference (:math:`s = 0`) to the true stack:
   :math:`\mathrm{Im}\,\varepsilon` of every region scaled by :math:`s`, a replaced outer
   permittivity moved linearly to its true value with a temporary absorption
   :math:`i D \sin(\pi s)`, :math:`D` = 0.1 of the move plus twice the largest
   :math:`|\mathrm{Im}\,\varepsilon|` of the layers, so that the root goes round the branch point
   :math:`q^2 = 0` (in :math:`\mathrm{Im}\,q^2 > 0`, where both branches agree) rather than
   through it. The outer branches are followed analytically: each step is solved on fixed
   branches, those of the previous root, switched to the physical one only where
   :math:`\mathrm{Im}\,q^2 > 0` (there they agree). Predictor: linear extrapolation in :math:`s`;
   corrector: secant iterations on :math:`N^2` to :math:`|\delta N^2| \le 4\epsilon|N^2|`; a step
   is halved when the corrector fails or lands further from the prediction than a tenth of the gap
   to the nearest other reference root (no jumping between modes). At :math:`s = 1` a root left on
   a non-physical branch (:math:`\mathrm{Im}\,q^2 \le 0`, the branch not the physical one) has
   passed its cutoff: an improper root, whose field grows into that region without carrying power
   away, not a mode; it is left out with a logged warning. Otherwise its residual must be below
   :data:`RESIDUAL_TOLERANCE`, and two modes may not end on the same root. A failure raises
   RuntimeError naming the polarisation, the seed and the residual.

Each mode is ``"guided"`` (evanescent in both outer regions; lossy with absorption anywhere) or
``"leaky"`` (a propagating wave in the substrate or the cover). A guided mode of a lossless stack
has a real N: its round-off imaginary part (a continuation through complex values leaves
:math:`|\mathrm{Im}\,N| \sim 10^{-19}`) is set to 0.

Confinement factor of a region, as in :mod:`physics.modes`: TE the fraction of
:math:`|E_y|^2`, TM of :math:`|E_x|^2 + |E_z|^2 \propto |w|^2/k_0^2 + |N|^2|H|^2/|\varepsilon_
\perp|^2` (with the true, complex permittivities and :math:`N`). The field is built from both ends
(up from the substrate to the highest-index layer, down from the cover to it, matched there), so
that it is accurate on both sides; layer integrals by composite 20-point Gauss-Legendre rules,
panels of :math:`|\gamma| h \le 2` (exact to round-off), outer tails in closed form,
:math:`\int |u|^2 = |u_0|^2/(2\,\mathrm{Re}\,\gamma)`. A leaky mode's field grows without bound
in the region it leaks into (or carries away power there that the absorption takes up): that
region's confinement is reported as 0, and the others are fractions of the field in the layers and
the evanescent outer region(s).

Limits: modes are continued from the guided modes of the reference stack, so a mode that exists
only by leakage (an anti-guided mode of a layer of lower index than both neighbours) is not
sought; nor is a mode above the scanned range (a short-range plasmon of a very thin metal layer);
two lossless reference modes closer than the scan resolves and with no minimum of :math:`|f|`
between them would be missed. A mode just beyond an outer region's cutoff in a lossless stack
(within about its own leakage of it, where the leaky root has split into two improper real ones)
is left out as above; one ending exactly on the branch point would stall the continuation
(RuntimeError). :math:`N` is computed to about :math:`10^{-15}` absolute: a leakage
:math:`\mathrm{Im}\,N` below about :math:`10^{-13}` (a loss below :math:`3\times10^{-6}` /cm at
643 nm) has few correct digits. Checked against the slab closed forms, the FEM stack solver and an
independent PML finite-element solve (:mod:`physics.stack_pml`) in tests/test_multilayer.py.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from cqdlaser.geometry.device import Device
from cqdlaser.geometry.layers import layer_stack
from cqdlaser.physics.modes import POLARISATIONS, Permittivity
from cqdlaser.physics.permittivity import region_permittivity

logger = logging.getLogger(__name__)

RESIDUAL_TOLERANCE = 1e-10
"""Largest accepted |f| (relative cancellation of the dispersion function) at a polished root."""

KINDS = ("guided", "leaky")

_GL_POINTS = 20
_SCAN_MIN_POINTS = 2048
_SCAN_POINTS_PER_MODE = 64
_STEP_MIN = 2.0**-20
_BRANCH_TOLERANCE = 1e-12


@dataclass(frozen=True)
class PlanarLayer:
    """A finite layer of a planar stack.

    Attributes:
        name: Region name (``cladding``, ``grating``, ``film``, ``cap``, ...).
        permittivity: Relative permittivity, complex, or a uniaxial pair (eps_par, eps_perp).
        thickness: Thickness (m).
    """

    name: str
    permittivity: Permittivity
    thickness: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.thickness) and self.thickness > 0.0):
            raise ValueError(f"layer {self.name!r}: thickness = {self.thickness} m must be > 0")
        _check_permittivity(self.name, self.permittivity)


@dataclass(frozen=True)
class Stack:
    """A planar stack: semi-infinite substrate, finite layers (bottom up), semi-infinite cover.

    Attributes:
        wavelength: Vacuum wavelength (m).
        substrate: Substrate permittivity (number or (eps_par, eps_perp)).
        layers: The finite layers, from the substrate up.
        cover: Cover permittivity (air by default).
    """

    wavelength: float
    substrate: Permittivity
    layers: tuple[PlanarLayer, ...]
    cover: Permittivity = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.wavelength) and self.wavelength > 0.0):
            raise ValueError(f"wavelength = {self.wavelength} m must be positive")
        if not self.layers:
            raise ValueError("layers = (): a stack needs at least one finite layer")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names) or {"substrate", "cover"} & set(names):
            raise ValueError(
                f"layer names = {names}: must be distinct and not 'substrate' or 'cover'"
            )
        _check_permittivity("substrate", self.substrate)
        _check_permittivity("cover", self.cover)

    @property
    def k0(self) -> float:
        """Vacuum wavenumber (1/m)."""
        return 2.0 * math.pi / self.wavelength

    @property
    def regions(self) -> tuple[str, ...]:
        """Region names from the bottom: ``substrate``, the layers, ``cover``."""
        return ("substrate", *(layer.name for layer in self.layers), "cover")

    def permittivity_pairs(self) -> np.ndarray:
        """(eps_par, eps_perp) of every region, bottom up (shape (regions, 2), complex)."""
        values = [self.substrate, *(layer.permittivity for layer in self.layers), self.cover]
        return np.array([_pair(v) for v in values], dtype=complex)

    @property
    def thicknesses(self) -> np.ndarray:
        """Layer thicknesses (m), bottom up."""
        return np.array([layer.thickness for layer in self.layers])


@dataclass(frozen=True)
class LayerMode:
    """An exact mode of a planar stack.

    Attributes:
        polarisation: ``"TE"`` (field E_y) or ``"TM"`` (field H_y).
        order: 0 for the largest Re N, then 1, 2, ... (per polarisation).
        n_eff_complex: N = beta / k0 (Im N > 0: loss).
        kind: ``"guided"`` (evanescent on both sides) or ``"leaky"`` (radiates into the substrate
            or the cover).
        confinement: Region -> fraction of |E|^2 (see the module docstring; a leaky mode's
            radiating region gets 0).
        wavelength: Vacuum wavelength (m).
        residual: |f| at the root (relative cancellation of the dispersion function).
    """

    polarisation: str
    order: int
    n_eff_complex: complex
    kind: str
    confinement: dict[str, float] = field(hash=False)
    wavelength: float
    residual: float

    @property
    def n_eff(self) -> float:
        """Effective index Re N."""
        return self.n_eff_complex.real

    @property
    def k0(self) -> float:
        """Vacuum wavenumber (1/m)."""
        return 2.0 * math.pi / self.wavelength

    @property
    def loss_per_cm(self) -> float:
        """Modal power loss 2 k0 Im N (1/cm)."""
        return 2.0 * self.k0 * self.n_eff_complex.imag / 100.0


def _pair(value: Permittivity) -> tuple[complex, complex]:
    if isinstance(value, tuple):
        return complex(value[0]), complex(value[1])
    return complex(value), complex(value)


def _check_permittivity(name: str, value: Permittivity) -> None:
    if isinstance(value, tuple) and len(value) != 2:
        raise ValueError(f"permittivity of {name!r} = {value}: a number or (eps_par, eps_perp)")
    pair = _pair(value)
    if not all(np.isfinite(e) and e.real != 0.0 for e in pair):
        raise ValueError(f"permittivity of {name!r} = {value}: finite, with Re(eps) not zero")


def stack_from_device(device: Device) -> Stack:
    """The planar stack of a device at ``optics.wavelength``: substrate, its layers (region names
    as in :func:`~physics.permittivity.region_permittivity`; the grating layer homogenised and
    uniaxial) and the air cover."""
    eps = region_permittivity(device)
    layers = tuple(
        PlanarLayer(layer.name, eps[layer.name], layer.thickness)
        for layer in layer_stack(device)[1:]
    )
    return Stack(device.optics.wavelength, eps["substrate"], layers, eps["cover"])


# --- the dispersion function ------------------------------------------------------------------


def _coefficients(pairs: np.ndarray, te: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, p) per region: gamma^2 = k0^2 a (N^2 - b); p the weight of w = u'/p."""
    par, perp = pairs[:, 0], pairs[:, 1]
    if te:
        ones = np.ones_like(par)
        return ones, par, ones
    return par / perp, perp, par


_Sheets = tuple[bool | None, bool | None]
"""Per outer region (substrate, cover): True the outgoing-wave branch, False the evanescent one,
None the physical choice (outgoing where Re q^2 > 0)."""

_PHYSICAL: _Sheets = (None, None)


def _outer_gamma(
    k0: float, a: complex, b: complex, n2: np.ndarray, radiating: bool | None = None
) -> np.ndarray:
    """Decay constant of an outer region, from the interface outwards: the evanescent branch
    k0 sqrt(-q^2) (Re gamma > 0 off its cut, q^2 > 0) or the outgoing wave -i k0 sqrt(q^2) (cut
    q^2 < 0), q^2 = a (b - N^2); by default the physical one, outgoing where Re q^2 > 0."""
    q2 = a * (b - n2)
    outgoing = q2.real > 0.0 if radiating is None else radiating
    return np.where(outgoing, -1j * k0 * np.sqrt(q2), k0 * np.sqrt(-q2))


def _layer_matrix(
    k0: float,
    a: complex,
    b: complex,
    n2: complex | np.ndarray,
    t: float | np.ndarray,
    *,
    scaled: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(C, S, g^2) = (cosh(g t), sinh(g t)/g, g^2) for a signed height t, both scaled by
    exp(-|Re g t|) unless not ``scaled``: the layer matrix is [[C, p S], [g^2 S / p, C]]."""
    g2 = k0**2 * a * (np.asarray(n2, dtype=complex) - b)
    g = np.sqrt(g2)
    gt = g * t
    r = np.abs(gt.real) if scaled else np.zeros_like(gt.real)
    grow = np.exp(gt - r)
    decay = np.exp(-gt - r)
    small = np.abs(gt) < 1e-3
    safe = np.where(small, 1.0, g)
    x = gt * gt
    series = t * (1.0 + x / 6.0 + x * x / 120.0) * np.exp(-r)
    return 0.5 * (grow + decay), np.where(small, series, 0.5 * (grow - decay) / safe), g2


def _dispersion(
    n2: complex | np.ndarray,
    k0: float,
    coefficients: tuple[np.ndarray, np.ndarray, np.ndarray],
    thicknesses: np.ndarray,
    sheets: _Sheets = _PHYSICAL,
) -> np.ndarray:
    """The normalised dispersion function f(N^2) of the module docstring (vectorised)."""
    a, b, p = coefficients
    n2 = np.asarray(n2, dtype=complex)
    core = _core(b)
    up = (np.ones_like(n2), _outer_gamma(k0, a[0], b[0], n2, sheets[0]) / p[0])
    for j in range(1, core + 2):
        up = _step(up, k0, a[j], b[j], p[j], n2, thicknesses[j - 1])
    down = (np.ones_like(n2), -_outer_gamma(k0, a[-1], b[-1], n2, sheets[1]) / p[-1])
    for j in range(len(thicknesses), core + 1, -1):
        down = _step(down, k0, a[j], b[j], p[j], n2, -thicknesses[j - 1])
    first, second = up[0] * down[1], up[1] * down[0]
    return (first - second) / (np.abs(first) + np.abs(second))


def _core(b: np.ndarray) -> int:
    """Index among the layers (0-based) of the one of largest Re b, where the solutions from
    below and from above meet."""
    return int(np.argmax(b[1:-1].real))


def _step(
    state: tuple[np.ndarray, np.ndarray],
    k0: float,
    a: complex,
    b: complex,
    p: complex,
    n2: np.ndarray,
    t: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(u, w) carried across a layer of signed thickness t, renormalised by a positive number."""
    u, w = _apply(state, *_layer_matrix(k0, a, b, n2, t), p)
    norm = np.abs(u) + np.abs(w) / k0
    return u / norm, w / norm


def _apply(
    state: tuple[np.ndarray, np.ndarray], c: np.ndarray, s: np.ndarray, g2: np.ndarray, p: complex
) -> tuple[np.ndarray, np.ndarray]:
    """The layer matrix [[C, p S], [g^2 S / p, C]] applied to (u, w)."""
    u, w = state
    return c * u + p * s * w, g2 / p * s * u + c * w


def dispersion(stack: Stack, polarisation: str, n2: complex | np.ndarray) -> np.ndarray:
    """The normalised dispersion function of a stack at N^2 (zero at a mode; |f| <= 1).

    Args:
        stack: The stack.
        polarisation: ``"TE"`` or ``"TM"``.
        n2: N^2, a number or an array.
    """
    _check_polarisation(polarisation)
    coefficients = _coefficients(stack.permittivity_pairs(), polarisation == "TE")
    return _dispersion(n2, stack.k0, coefficients, stack.thicknesses)


def _check_polarisation(polarisation: str) -> None:
    if polarisation not in POLARISATIONS:
        raise ValueError(f"polarisation = {polarisation!r} must be one of {POLARISATIONS}")


# --- the reference stack and the continuation -------------------------------------------------


@dataclass(frozen=True)
class _Path:
    """The stacks along the continuation s in [0, 1]: s = 0 the lossless reference, s = 1 the
    true stack (module docstring, step 2)."""

    k0: float
    te: bool
    true_pairs: np.ndarray
    reference_pairs: np.ndarray
    detour: np.ndarray
    thicknesses: np.ndarray

    @classmethod
    def build(cls, stack: Stack, te: bool) -> _Path:
        true = stack.permittivity_pairs()
        ref = true.real.astype(complex)
        b = ref[:, 0 if te else 1].real.copy()
        layer_b = b[1:-1]
        absorption = float(np.max(np.abs(true[1:-1].imag)))
        detour = np.zeros(len(true))
        for outer, neighbour in ((0, 1), (-1, -2)):
            if b[outer] > b[neighbour] and b[neighbour] < layer_b.max():
                ref[outer] = b[neighbour]
                detour[outer] = 0.1 * (b[outer] - b[neighbour]) + 2.0 * absorption
        return cls(stack.k0, te, true, ref, detour, stack.thicknesses)

    def pairs(self, s: float) -> np.ndarray:
        """(eps_par, eps_perp) of every region at s."""
        moved = self.reference_pairs + s * (self.true_pairs.real - self.reference_pairs)
        return moved + 1j * (
            s * self.true_pairs.imag + (self.detour * math.sin(math.pi * s))[:, None]
        )

    def function(self, s: float, sheets: _Sheets = _PHYSICAL) -> Callable[[complex], complex]:
        """f(N^2) of the stack at s, on the given outer branches."""
        coefficients = _coefficients(self.pairs(s), self.te)
        return lambda n2: complex(_dispersion(n2, self.k0, coefficients, self.thicknesses, sheets))

    def q2(self, s: float, n2: complex) -> tuple[complex, complex]:
        """q^2 = a (b - N^2) of the substrate and the cover at s."""
        a, b, _ = _coefficients(self.pairs(s)[[0, -1]], self.te)
        return complex(a[0] * (b[0] - n2)), complex(a[1] * (b[1] - n2))

    def scan_range(self) -> tuple[float, float]:
        """(lo, hi): the reference stack's guided modes have lo < N^2 < hi."""
        pairs = self.reference_pairs.real
        b = pairs[:, 0 if self.te else 1]
        lo = max(b[0], b[-1], 0.0)
        hi = float(b[1:-1].max())
        if not self.te:
            metals = pairs[pairs[:, 0] < 0.0, 0]
            dielectrics = pairs[pairs[:, 1] > 0.0, 1]
            for em in metals:
                for ed in dielectrics:
                    if -em > ed:
                        hi = max(hi, 1.5 * em * ed / (em + ed))
        return lo, hi


def _secant(
    f: Callable[[complex], complex], x0: complex, step: complex, maxiter: int = 50
) -> tuple[complex, bool]:
    """A root of f by secant iterations from x0 and x0 + step; converged when
    |dx| <= 4 eps |x| (or f = 0)."""
    x1 = x0 + step
    f0, f1 = f(x0), f(x1)
    for _ in range(maxiter):
        if f1 == 0.0:
            return x1, True
        if f1 == f0:
            return x1, False
        x2 = x1 - f1 * (x1 - x0) / (f1 - f0)
        if not np.isfinite(x2):
            return x1, False
        if abs(x2 - x1) <= 4.0 * np.finfo(float).eps * abs(x2):
            return x2, True
        x0, f0, x1, f1 = x1, f1, x2, f(x2)
    return x1, False


def _reference_roots(path: _Path) -> list[float]:
    """Real N^2 of the guided modes of the lossless reference stack, decreasing."""
    lo, hi = path.scan_range()
    if hi <= lo:
        return []
    f0 = path.function(0.0)
    kt = path.k0 * float(np.sum(path.thicknesses)) * math.sqrt(hi - lo)
    n = max(_SCAN_MIN_POINTS, int(_SCAN_POINTS_PER_MODE * (kt / math.pi + 2)))
    span = math.sqrt(hi - lo)
    v = np.linspace(span * 1e-9, span * (1.0 - 1e-12), n)
    coefficients = _coefficients(path.reference_pairs, path.te)
    values = _dispersion(hi - v * v, path.k0, coefficients, path.thicknesses).real

    def g(x: float) -> float:
        return f0(hi - x * x).real

    brackets = [
        (v[i], v[i + 1]) for i in np.nonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0)[0]
    ]
    mags, signs = np.abs(values), np.sign(values)
    dips = (mags[1:-1] < mags[:-2]) & (mags[1:-1] < mags[2:]) & (mags[1:-1] < 0.5)
    same = (signs[1:-1] == signs[:-2]) & (signs[1:-1] == signs[2:])
    for i in np.nonzero(dips & same)[0] + 1:
        sign = math.copysign(1.0, values[i])
        best = minimize_scalar(
            lambda x: sign * g(x),
            bounds=(v[i - 1], v[i + 1]),
            method="bounded",
            options={"xatol": 1e-14 * span},
        )
        if sign * best.fun < 0.0:
            brackets += [(v[i - 1], best.x), (best.x, v[i + 1])]
    roots = [hi - brentq(g, x0, x1, xtol=1e-15 * span, rtol=1e-15) ** 2 for x0, x1 in brackets]
    return sorted(roots, reverse=True)


def _follow_sheets(sheets: _Sheets, q2: tuple[complex, complex]) -> _Sheets:
    """The outer branches to continue on: where Im q^2 > 0 both agree and the physical one is
    taken; elsewhere (and on the real axis, to round-off) the branch the root came in on is kept
    (analytic continuation)."""
    return tuple(  # type: ignore[return-value]
        (q.real > 0.0) if q.imag > _BRANCH_TOLERANCE else sheet
        for sheet, q in zip(sheets, q2, strict=True)
    )


def _continue_root(
    path: _Path, seed: float, gap: float, polarisation: str
) -> tuple[complex, _Sheets]:
    """Carry the reference root ``seed`` (N^2) to the true stack (s = 1), following the outer
    branches (module docstring): the root and the branches it ends on."""
    s, x = 0.0, complex(seed)
    sheets: _Sheets = (False, False)
    prev: tuple[float, complex] | None = None
    h = 1.0 / 16.0
    tol = 0.1 * gap
    while s < 1.0:
        h = min(h, 1.0 - s)
        s_new = s + h
        predicted = x if prev is None else x + (x - prev[1]) * (h / (s - prev[0]))
        f = path.function(s_new, sheets)
        root, ok = _secant(f, predicted, 1e-7 * max(abs(predicted - x), 1e-3 * tol))
        if ok and abs(root - predicted) <= tol:
            prev, s, x = (s, x), s_new, root
            sheets = _follow_sheets(sheets, path.q2(s, x))
            h *= 1.5
            continue
        h *= 0.5
        if h < _STEP_MIN:
            residual = abs(f(root)) if np.isfinite(root) else math.inf
            raise RuntimeError(
                f"{polarisation} mode seeded at n_eff = {math.sqrt(seed):.10f} (lossless "
                f"reference): the continuation to the true stack stalled at s = {s:.6g} "
                f"(N = {complex(np.sqrt(x)):.10f}, residual {residual:.3e}); the mode may be at an "
                "outer region's cutoff"
            )
    return x, sheets


def _mode_roots(path: _Path, polarisation: str, n_max: int) -> list[tuple[float, complex, float]]:
    """(seed, polished N^2, residual) of the reference modes carried to the true stack."""
    seeds = _reference_roots(path)[:n_max]
    lo, hi = path.scan_range()
    out = []
    for i, seed in enumerate(seeds):
        neighbours = [abs(seed - other) for j, other in enumerate(seeds) if j != i]
        gap = min([*neighbours, hi - lo])
        x, sheets = _continue_root(path, seed, gap, polarisation)
        f1 = path.function(1.0, sheets)
        polished, _ = _secant(f1, x, 1e-10 * abs(x))
        if abs(f1(polished)) < abs(f1(x)):
            x = polished
        improper = [
            side
            for side, sheet, q in zip(("substrate", "cover"), sheets, path.q2(1.0, x), strict=True)
            if sheet != (q.real > 0.0) and q.imag <= _BRANCH_TOLERANCE
        ]
        if improper:
            logger.warning(
                "%s mode seeded at n_eff = %.10f ends beyond the cutoff of the %s (N = %s, on the "
                "improper branch there): not a mode of the stack, left out",
                polarisation,
                math.sqrt(seed),
                " and ".join(improper),
                f"{complex(np.sqrt(x)):.10f}",
            )
            continue
        residual = abs(f1(x))
        if not residual <= RESIDUAL_TOLERANCE:
            raise RuntimeError(
                f"{polarisation} mode seeded at n_eff = {math.sqrt(seed):.10f}: the root "
                f"N = {complex(np.sqrt(x)):.10f} has residual {residual:.3e} > "
                f"{RESIDUAL_TOLERANCE:g}"
            )
        for other_seed, other, _ in out:
            if abs(x - other) <= 1e-9 * abs(x):
                raise RuntimeError(
                    f"{polarisation} modes seeded at n_eff = {math.sqrt(other_seed):.10f} and "
                    f"{math.sqrt(seed):.10f} ended on the same root N = "
                    f"{complex(np.sqrt(x)):.10f} (residual {residual:.3e})"
                )
        out.append((seed, x, residual))
    return out


# --- fields and confinement -------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """The mode's field: (u, w) at the bottom of every layer and of the cover, and the outer
    decay constants; u and w as in the module docstring."""

    k0: float
    n2: complex
    a: np.ndarray
    b: np.ndarray
    p: np.ndarray
    z: np.ndarray
    u: np.ndarray
    w: np.ndarray
    gamma_sub: complex
    gamma_cover: complex

    @classmethod
    def build(cls, stack: Stack, te: bool, n2: complex) -> _Field:
        k0 = stack.k0
        a, b, p = _coefficients(stack.permittivity_pairs(), te)
        t = stack.thicknesses
        n = len(t)
        x = np.asarray(n2, dtype=complex)
        g_s = complex(_outer_gamma(k0, a[0], b[0], x))
        g_c = complex(_outer_gamma(k0, a[-1], b[-1], x))
        up = np.zeros((n + 1, 2), dtype=complex)
        down = np.zeros((n + 1, 2), dtype=complex)
        up[0] = 1.0, g_s / p[0]
        down[n] = 1.0, -g_c / p[-1]
        for j in range(n):
            matrix = _layer_matrix(k0, a[j + 1], b[j + 1], x, t[j], scaled=False)
            up[j + 1] = _apply((up[j, 0], up[j, 1]), *matrix, p[j + 1])
            k = n - 1 - j
            matrix = _layer_matrix(k0, a[k + 1], b[k + 1], x, -t[k], scaled=False)
            down[k] = _apply((down[k + 1, 0], down[k + 1, 1]), *matrix, p[k + 1])
        core = _core(b)
        ref = up[core + 1]
        scale = np.vdot(down[core + 1], ref) / np.vdot(down[core + 1], down[core + 1])
        states = np.concatenate([up[: core + 1], scale * down[core + 1 :]])
        if not np.all(np.isfinite(states)):
            raise RuntimeError(
                f"the field of the mode N = {complex(np.sqrt(x)):.10f} overflows: a layer is "
                "too thick for the field's exponential growth across it"
            )
        z = np.concatenate([[0.0], np.cumsum(t)])
        return cls(k0, complex(n2), a, b, p, z, states[:, 0], states[:, 1], g_s, g_c)

    def state(self, j: int, dz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(u, w) at heights dz above the bottom of layer j (0-based among the layers)."""
        matrix = _layer_matrix(self.k0, self.a[j + 1], self.b[j + 1], self.n2, dz, scaled=False)
        return _apply((self.u[j], self.w[j]), *matrix, self.p[j + 1])

    def intensity(self, u: np.ndarray, w: np.ndarray, region: int, te: bool) -> np.ndarray:
        """|E|^2 (up to a common factor): TE |u|^2, TM |w|^2/k0^2 + |N|^2 |u|^2/|eps_perp|^2."""
        if te:
            return np.abs(u) ** 2
        perp = self.b[region]
        return np.abs(w / self.k0) ** 2 + abs(self.n2) * np.abs(u / perp) ** 2

    def layer_integrals(self, te: bool) -> np.ndarray:
        """Integral of |E|^2 over every layer (composite Gauss-Legendre)."""
        nodes, weights = np.polynomial.legendre.leggauss(_GL_POINTS)
        out = []
        for j in range(len(self.z) - 1):
            t = self.z[j + 1] - self.z[j]
            g = abs(np.sqrt(complex(self.k0**2 * self.a[j + 1] * (self.n2 - self.b[j + 1]))))
            panels = max(1, math.ceil(g * t / 2.0))
            h = t / panels
            dz = (np.arange(panels)[:, None] + 0.5 * (nodes[None, :] + 1.0)).ravel() * h
            u, w = self.state(j, dz)
            e2 = self.intensity(u, w, j + 1, te)
            out.append(0.5 * h * float(np.sum(e2.reshape(panels, -1) @ weights)))
        return np.array(out)

    def peak(self) -> float:
        """The largest |u| within the layers: the best of a fine sampling, refined."""
        best, where = 0.0, (0, 0.0, 0.0)
        for j in range(len(self.z) - 1):
            dz = np.linspace(0.0, self.z[j + 1] - self.z[j], 257)
            size = np.abs(self.state(j, dz)[0])
            i = int(np.argmax(size))
            if size[i] > best:
                best, where = size[i], (j, dz[max(i - 1, 0)], dz[min(i + 1, len(dz) - 1)])
        j, lo, hi = where
        found = minimize_scalar(
            lambda x: -abs(self.state(j, np.array([x]))[0][0]),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-6 * (hi - lo)},
        )
        return max(best, -float(found.fun))

    def tail(self, side: int, te: bool) -> float:
        """Closed-form integral of |E|^2 over an evanescent outer region (0: substrate,
        -1: cover)."""
        g = self.gamma_sub if side == 0 else self.gamma_cover
        u = self.u[0] if side == 0 else self.u[-1]
        sign = 1.0 if side == 0 else -1.0
        e2 = self.intensity(np.array(u), np.array(sign * g / self.p[side] * u), side, te)
        return float(e2) / (2.0 * g.real)


def _outer_leaks(k0: float, a: np.ndarray, b: np.ndarray, n2: complex) -> tuple[bool, bool]:
    """Whether the substrate and the cover carry a propagating wave (Re q^2 > 0)."""
    return bool((a[0] * (b[0] - n2)).real > 0.0), bool((a[-1] * (b[-1] - n2)).real > 0.0)


def _confinement(stack: Stack, te: bool, n2: complex) -> tuple[dict[str, float], str]:
    """Confinement per region and the kind of the mode N^2."""
    fld = _Field.build(stack, te, n2)
    layers = fld.layer_integrals(te)
    leaks = _outer_leaks(stack.k0, fld.a, fld.b, n2)
    sub = 0.0 if leaks[0] else fld.tail(0, te)
    cover = 0.0 if leaks[1] else fld.tail(-1, te)
    total = sub + cover + float(np.sum(layers))
    names = stack.regions
    values = [sub, *layers, cover]
    kind = "leaky" if any(leaks) else "guided"
    return {name: float(v / total) for name, v in zip(names, values, strict=True)}, kind


def mode_field(stack: Stack, mode: LayerMode, z: np.ndarray) -> np.ndarray:
    """The mode's field at heights z (m, from the substrate's top, positive upwards): E_y (TE) or
    H_y (TM), complex, scaled to a largest |field| of 1 within the layers.

    Args:
        stack: The stack the mode was computed for.
        mode: A mode from :func:`multilayer_modes`.
        z: Heights (m); below 0 the substrate, above the last layer the cover.
    """
    te = mode.polarisation == "TE"
    n2 = mode.n_eff_complex**2
    fld = _Field.build(stack, te, n2)
    peak = fld.peak()
    z = np.asarray(z, dtype=float)
    out = np.zeros(z.shape, dtype=complex)
    below = z < 0.0
    out[below] = fld.u[0] * np.exp(fld.gamma_sub * z[below])
    above = z >= fld.z[-1]
    out[above] = fld.u[-1] * np.exp(-fld.gamma_cover * (z[above] - fld.z[-1]))
    for j in range(len(fld.z) - 1):
        inside = (z >= fld.z[j]) & (z < fld.z[j + 1])
        out[inside] = fld.state(j, z[inside] - fld.z[j])[0]
    return out / peak


# --- public entry points ----------------------------------------------------------------------


def multilayer_modes(stack: Stack, polarisation: str, *, n_max: int = 8) -> list[LayerMode]:
    """All modes of one polarisation that continue from the guided modes of the lossless
    reference stack (module docstring), sorted by decreasing Re N.

    Args:
        stack: The stack.
        polarisation: ``"TE"`` or ``"TM"``.
        n_max: At most this many modes, those of the largest reference N.

    Returns:
        The modes (empty when the reference stack guides none).

    Raises:
        ValueError: for a wrong polarisation or n_max.
        RuntimeError: when a root cannot be followed or polished, or two modes end on one root
            (names the polarisation, the seed and the residual).
    """
    _check_polarisation(polarisation)
    if n_max < 1:
        raise ValueError(f"n_max = {n_max} must be at least 1")
    te = polarisation == "TE"
    path = _Path.build(stack, te)
    roots = _mode_roots(path, polarisation, n_max)
    lossless = not np.any(stack.permittivity_pairs().imag)
    found = []
    for _, n2, residual in roots:
        confinement, kind = _confinement(stack, te, n2)
        n = complex(np.sqrt(n2))
        if lossless and kind == "guided":
            n = complex(n.real, 0.0)
        found.append((n, kind, confinement, residual))
    found.sort(key=lambda item: -item[0].real)
    return [
        LayerMode(polarisation, order, n, kind, confinement, stack.wavelength, residual)
        for order, (n, kind, confinement, residual) in enumerate(found)
    ]


def device_modes(
    device: Device, polarisations: Sequence[str] = POLARISATIONS, *, n_max: int = 8
) -> list[LayerMode]:
    """The exact modes of a device's planar stack (:func:`stack_from_device`), polarisation by
    polarisation, each sorted by decreasing Re N."""
    stack = stack_from_device(device)
    return [m for pol in polarisations for m in multilayer_modes(stack, pol, n_max=n_max)]


def leaky_te_index(device: Device, n_eff_seed: float, *, tol: float = 1e-13) -> complex:
    """Complex effective index N of the device's TE mode whose Re N is nearest ``n_eff_seed``.

    Kept for the CW study: the exact TE modes of :func:`device_modes`; ``tol`` is unused (the
    roots are polished to round-off).

    Args:
        device: The device (its layer stack at ``optics.wavelength_nm``).
        n_eff_seed: An effective index near the wanted mode's (a nearby guided mode's).
        tol: Kept for compatibility.

    Returns:
        N, with 2 k0 Im(N) the modal power loss (1/m).

    Raises:
        RuntimeError: when the stack has no TE mode, or the root finder fails.
    """
    del tol
    modes = device_modes(device, ("TE",))
    if not modes:
        raise RuntimeError(f"leaky_te_index: no TE mode near n_eff = {n_eff_seed}")
    return min(modes, key=lambda m: abs(m.n_eff - n_eff_seed)).n_eff_complex
