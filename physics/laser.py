"""Laser threshold versus temperature, lasing duration under a pump pulse, and the CW criterion.

Threshold models (``[laser] model``):

- ``exponential``: the characteristic-temperature law P_th(T) = P_th0 exp((T - T_ref)/T0).
- ``auger``: the threshold is inversely proportional to the Auger lifetime of the paper's Eq. (1),
  tau ∝ (E/kT)^(3/2) exp(E/kT), normalised at T_ref, with an *effective* activation energy E_a:
  P_th(T) = P_th0 (T/T_ref)^(3/2) exp[(E_a/k)(1/T_ref - 1/T)]. Eq. (1) taken literally with the
  band gap (~1.9 eV) would raise the threshold 10^4-fold over 40 K; E_a ~ 78 meV reproduces the
  paper's 1.7x at ~333 K (physics.md §1.5).

Lasing lasts while the pump exceeds the threshold at the film's hottest point. In steady state the
film temperature is T_ss(P) = T_sink + R P for a linear device (R: thermal resistance, K per W/m^2
of pump), and CW lasing needs P >= P_th(T_ss(P)). For the exponential law with a = R P_th0'/T0,
P_th0' = P_th0 exp((T_sink - T_ref)/T0), and x = R P/T0 the condition is x e^(-x) >= a: CW is
possible iff a <= 1/e, between x_low = -W_0(-a) and x_high = -W_(-1)(-a) (Lambert W branches).
For nonlinear devices (k(T), temperature-dependent losses) :func:`cw_window` finds the same window
numerically from any T_ss(P).

The threshold scales with the lasing mode (:func:`lasing_optics`): ``[laser] threshold_kw_cm2``
is P_th0 of a reference laser (the paper's) whose mode has gain confinement Gamma_ref and no
absorption or leakage; a device whose lasing mode (``optics.polarisation``, order 0, from the exact
multilayer solver :mod:`physics.multilayer`) has gain confinement Gamma and modal loss alpha lases
from P_th0 (Gamma_ref/Gamma)(1 + alpha/alpha_ref) (:func:`optical_threshold_factor`). The
``lasing`` command, the design studies and the API share it (:func:`device_threshold_model`).
``[laser] optics = "vector"`` takes the lasing mode from the full-vector DFB band edges instead
(``studies.threshold``: they need a mesh); Gamma_ref is then the paper laser's in that model
(:data:`REFERENCE_GAIN_CONFINEMENT`, :func:`reference_gain_confinement`).

Light that leaves as laser emission is not heat. With a slope efficiency eta_s (laser power out per
pump power above threshold), the heat while lasing is eta_h I - eta_s (I - P_th(T)) instead of
eta_h I (eta_h: the heat fraction): the source is scaled by :func:`lasing_heat_scale`. In steady
state this makes T_ss(P) nonlinear even for a linear device: :func:`steady_temperature_lasing`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import lambertw

from cqdlaser.geometry.device import Device

BOLTZMANN_EV = 8.617333262e-5
"""Boltzmann constant (eV/K)."""

KW_CM2 = 1e7
"""1 kW/cm^2 in W/m^2."""

REFERENCE_GAIN_CONFINEMENT: Mapping[str, float] = MappingProxyType(
    {"stack": 0.8115, "vector": 0.8854}
)
"""Gain confinement Gamma_ref of the paper laser's lasing mode (studies/configs/
paper_inorganic_mgf2.toml, whose threshold ``[laser] threshold_kw_cm2`` is) in each optics model
of ``[laser] optics``: ``stack``, the TE0 mode of its planar stack (:func:`lasing_optics`);
``vector``, its full-vector band-edge lasing mode at the default resolution, the A2 TE-like dark
edge at 755.72 nm (``cqdlaser bands studies/configs/paper_inorganic_mgf2.toml --kind vector``).
A device's Gamma must be set against the reference's in the same model, or the paper's own device
would not reproduce its own measured threshold."""


def reference_gain_confinement(device: Device, model: str | None = None) -> float:
    """Gamma_ref of a device: ``[laser] reference_gain_confinement`` where set, else the paper
    laser's in the optics model ``model`` (default ``[laser] optics``;
    :data:`REFERENCE_GAIN_CONFINEMENT`)."""
    laser = device.laser
    if laser.reference_gain_confinement is not None:
        return laser.reference_gain_confinement
    return REFERENCE_GAIN_CONFINEMENT[model or laser.optics]


def thermal_resistance(rise_k: float, intensity_w_m2: float) -> float:
    """Thermal resistance R (K m^2/W): the steady film-maximum temperature rise per unit pump
    intensity, ``T_ss = T_sink + R P`` for a linear device.

    Args:
        rise_k: Steady rise of the film's maximum temperature above the sink (K).
        intensity_w_m2: The pump intensity that causes it (W/m^2).
    """
    return rise_k / intensity_w_m2


@dataclass(frozen=True)
class ThresholdModel:
    """Threshold intensity versus film temperature.

    Attributes:
        threshold: P_th0, threshold intensity at ``reference_temperature`` (W/m^2).
        reference_temperature: T_ref (K).
        model: ``"exponential"`` or ``"auger"``.
        t0: Characteristic temperature T0 (K), exponential model.
        activation_energy: Effective activation energy E_a (eV), Auger model.
    """

    threshold: float
    reference_temperature: float = 295.0
    model: str = "exponential"
    t0: float = 72.0
    activation_energy: float = 0.078

    def __post_init__(self) -> None:
        if self.model not in ("exponential", "auger"):
            raise ValueError(f"model must be 'exponential' or 'auger', got {self.model!r}")

    def __call__(self, temperature: npt.ArrayLike) -> npt.NDArray[np.float64] | float:
        """P_th(T) in W/m^2 (vectorised over temperatures in K)."""
        t = np.asarray(temperature, dtype=float)
        tr = self.reference_temperature
        with np.errstate(over="ignore"):  # a runaway temperature gives an infinite threshold
            if self.model == "exponential":
                out = self.threshold * np.exp((t - tr) / self.t0)
            else:
                out = (
                    self.threshold
                    * (t / tr) ** 1.5
                    * np.exp(self.activation_energy / BOLTZMANN_EV * (1.0 / tr - 1.0 / t))
                )
        return float(out) if out.ndim == 0 else out

    def temperature_at(self, intensity: float) -> float:
        """The film temperature (K) at which the threshold reaches ``intensity`` (W/m^2)."""
        if self.model == "exponential":
            return self.reference_temperature + self.t0 * math.log(intensity / self.threshold)
        tr = self.reference_temperature
        f = lambda t: float(self(t)) - intensity  # noqa: E731
        lo, hi = 1.0, tr
        while f(hi) < 0.0:
            hi *= 2.0
        return float(brentq(f, lo, hi, xtol=1e-10))


def optical_threshold_factor(
    gain_confinement: float,
    loss_per_cm: float,
    reference_gain_confinement: float,
    loss_budget_per_cm: float,
) -> float:
    r"""How a lasing mode scales the reference threshold: :math:`P_{th0}'/P_{th0} =
    (\Gamma_{ref}/\Gamma)(1 + \alpha/\alpha_{ref})`.

    The threshold of a DFB of modal loss alpha and gain confinement Gamma scales as
    (alpha_int + alpha_mirror + alpha) / (Gamma g'), g' the material gain per unit pump; the
    reference laser (Gamma_ref, no absorption or leakage) pays alpha_ref = alpha_int +
    alpha_mirror with its threshold P_th0.

    Args:
        gain_confinement: Gamma of the device's lasing mode (NaN or <= 0: no mode).
        loss_per_cm: Its modal power loss alpha from absorption and leakage (1/cm).
        reference_gain_confinement: Gamma_ref (:func:`reference_gain_confinement`).
        loss_budget_per_cm: alpha_ref (1/cm).

    Returns:
        The factor (infinite without a lasing mode: the device does not lase).
    """
    if not gain_confinement > 0.0 or not math.isfinite(loss_per_cm):
        return math.inf
    return (reference_gain_confinement / gain_confinement) * (
        1.0 + loss_per_cm / loss_budget_per_cm
    )


def q_loss_per_cm(quality_factor: float, wavelength: float, gain_index: float) -> float:
    r"""The loss of a standing-wave (band-edge) mode of quality factor Q as a gain per unit length
    of the gain medium that would balance it: :math:`\alpha = k_0 n_g / Q` (1/cm).

    A material gain g in a medium of index n makes a mode's energy grow at the rate
    :math:`(c/n)\,g\,\Gamma` (:math:`\Gamma` the mode's electric-energy share in that medium);
    a mode of quality factor Q decays at :math:`\omega/Q`. Threshold:
    :math:`\Gamma g = k_0 n / Q`.

    Args:
        quality_factor: Q (inf: no loss).
        wavelength: Vacuum wavelength (m).
        gain_index: Refractive index n of the gain medium.
    """
    if quality_factor == math.inf:
        return 0.0
    return 2.0 * math.pi * gain_index / (wavelength * quality_factor) / 100.0


def band_edge_threshold_gain(
    gain_confinement: float,
    quality_factor: float,
    wavelength: float,
    gain_index: float,
    internal_loss_per_cm: float,
) -> float:
    r"""Threshold material gain of a band-edge mode (1/cm):
    :math:`g_{th} = (\alpha_{int} + k_0 n / Q) / \Gamma`.

    Its losses are those of its Q (radiation and absorption together,
    :func:`q_loss_per_cm`) and the loss the model does not resolve, ``internal_loss_per_cm``
    (``[laser] loss_budget_per_cm``: the film's internal loss and the finite grating's in-plane
    leakage, the reference laser's budget). Against the reference laser's
    :math:`g_{ref} = \alpha_{int}/\Gamma_{ref}` this is :func:`optical_threshold_factor` with
    :math:`\alpha = k_0 n/Q`.

    Args:
        gain_confinement: Gamma, the mode's electric-energy share in the gain material (<= 0 or
            NaN: the mode sees no gain, infinite threshold).
        quality_factor: Q of the mode's radiation and absorption.
        wavelength: Vacuum wavelength (m).
        gain_index: Refractive index of the gain material.
        internal_loss_per_cm: alpha_int (1/cm).
    """
    if not gain_confinement > 0.0:
        return math.inf
    alpha = q_loss_per_cm(quality_factor, wavelength, gain_index)
    return (internal_loss_per_cm + alpha) / gain_confinement


@dataclass(frozen=True)
class LasingOptics:
    """The lasing mode of a device in one optics model and the threshold factor it implies.

    Attributes:
        polarisation: ``optics.polarisation`` (stack); the band edge's family, ``"TE-like"`` or
            ``"TM-like"`` (vector).
        n_eff_complex: Its complex effective index N (NaN without a mode, and for a band edge).
        kind: ``"guided"`` or ``"leaky"`` (stack), ``"band edge"`` (vector), or ``"none"`` (no
            such mode: no laser).
        gain_confinement: Gamma, in the CQD material (:func:`physics.modes.gain_confinement`).
        loss_per_cm: Modal power loss (1/cm): 2 k0 Im N from absorption and leakage (stack),
            k0 n/Q from radiation and absorption (vector, :func:`q_loss_per_cm`).
        factor: P_th0'/P_th0 (:func:`optical_threshold_factor`; inf without a mode).
        model: ``[laser] optics``: ``"stack"`` or ``"vector"``.
        wavelength: The mode's vacuum wavelength (m): ``optics.wavelength_nm`` (stack), the band
            edge's (vector); NaN without a mode.
        symmetry: The band edge's C4v class (vector); None for a stack mode.
        q_factor: The band edge's Q of radiation and absorption (vector; inf: unbounded); None
            for a stack mode.
    """

    polarisation: str
    n_eff_complex: complex
    kind: str
    gain_confinement: float
    loss_per_cm: float
    factor: float
    model: str = "stack"
    wavelength: float = math.nan
    symmetry: str | None = None
    q_factor: float | None = None


def lasing_optics(device: Device) -> LasingOptics:
    """The device's lasing mode: the fundamental ``optics.polarisation`` mode of its planar
    stack, exact (complex root of the multilayer dispersion, guided or leaky), and its threshold
    factor against ``[laser]``'s reference.

    Raises:
        RuntimeError: the exact root finder failed (never a guessed mode).
    """
    from cqdlaser.physics.modes import gain_confinement
    from cqdlaser.physics.multilayer import device_modes

    pol = device.optics.polarisation
    modes = device_modes(device, (pol,), n_max=1)
    if not modes:
        return LasingOptics(pol, complex(math.nan, math.nan), "none", math.nan, math.nan, math.inf)
    mode = modes[0]
    fill = 0.0 if device.grating is None else device.grating.fill_fraction
    gamma = gain_confinement(mode.confinement, fill)
    factor = optical_threshold_factor(
        gamma,
        mode.loss_per_cm,
        reference_gain_confinement(device),
        device.laser.loss_budget_per_cm,
    )
    return LasingOptics(
        pol,
        mode.n_eff_complex,
        mode.kind,
        gamma,
        mode.loss_per_cm,
        factor,
        wavelength=device.optics.wavelength,
    )


def device_threshold_model(device: Device) -> tuple[ThresholdModel, LasingOptics]:
    """The device's threshold law with its optics: ``[laser]`` scaled by its lasing mode."""
    optics = lasing_optics(device)
    return threshold_model(device, optics.factor), optics


def threshold_model(device: Device, factor: float = 1.0) -> ThresholdModel:
    """The threshold model of a device's ``[laser]`` section, its P_th0 times ``factor``
    (:func:`optical_threshold_factor` of the device's lasing mode; 1: the ``[laser]`` value as
    stated, for thermal-only studies)."""
    laser = device.laser
    return ThresholdModel(
        threshold=laser.threshold_kw_cm2 * KW_CM2 * factor,
        reference_temperature=laser.reference_temperature_k,
        model=laser.model,
        t0=laser.t0_k,
        activation_energy=laser.activation_energy_mev * 1e-3,
    )


def fit_t0(ratio: float, temperature: float, reference_temperature: float = 295.0) -> float:
    """T0 such that P_th(temperature)/P_th(T_ref) = ``ratio`` (K); e.g. 1.7x at 333 K gives 72 K."""
    return (temperature - reference_temperature) / math.log(ratio)


def fit_activation_energy(
    ratio: float, temperature: float, reference_temperature: float = 295.0
) -> float:
    """Effective E_a (eV) of the Auger model giving ``ratio`` at ``temperature``."""
    tr = reference_temperature
    return (
        BOLTZMANN_EV
        * (math.log(ratio) - 1.5 * math.log(temperature / tr))
        / (1.0 / tr - 1.0 / temperature)
    )


def lasing_duration(
    times: npt.ArrayLike,
    temperature: npt.ArrayLike,
    intensity: float,
    model: ThresholdModel,
    pulse: float | None = None,
) -> float | None:
    """How long the film lases under a pump pulse of constant ``intensity`` (W/m^2).

    Args:
        times: Increasing times (s) from the start of the pulse.
        temperature: The film's maximum temperature (K) at those times.
        intensity: Pump intensity during the pulse (W/m^2).
        model: Threshold model.
        pulse: Pulse length (s); None for CW (the end of the history bounds the answer).

    Returns:
        None if the pump is below threshold from the start; the pulse length (or the last time)
        if it lases throughout; else the time at which P_th(T(t)) overtakes the pump, linearly
        interpolated between samples.
    """
    t = np.asarray(times, dtype=float)
    temp = np.asarray(temperature, dtype=float)
    if t.shape != temp.shape or t.ndim != 1 or t.size < 1:
        raise ValueError("times and temperature must be 1D arrays of the same length")
    end = t[-1] if pulse is None else pulse
    inside = t <= end
    t, temp = t[inside], temp[inside]
    margin = intensity - np.asarray(model(temp))
    if margin[0] < 0.0:
        return None
    below = np.nonzero(margin < 0.0)[0]
    if below.size == 0:
        return float(end)
    i = int(below[0])
    m0, m1 = margin[i - 1], margin[i]
    return float(t[i - 1] + (t[i] - t[i - 1]) * m0 / (m0 - m1))


@dataclass(frozen=True)
class CWResult:
    """The CW verdict of a device.

    Attributes:
        possible: True if some pump intensity lases in steady state.
        pump_range: (low, high) pump intensities (W/m^2) that lase CW, or None.
        criterion: a = R P_th0'/T0 for the exponential model (CW iff a <= 1/e); NaN otherwise.
        margin: (1/e)/a for the exponential model (> 1 means CW is possible with that factor to
            spare); for a numerical window, max over P of P/P_th(T_ss(P)).
    """

    possible: bool
    pump_range: tuple[float, float] | None
    criterion: float
    margin: float


def cw_exponential(
    thermal_resistance: float, model: ThresholdModel, sink_temperature: float = 295.0
) -> CWResult:
    """Closed-form CW window for a linear device and the exponential threshold law.

    Args:
        thermal_resistance: R, steady film temperature rise per unit pump intensity (K m^2/W).
        model: An exponential threshold model.
        sink_temperature: T_sink (K).
    """
    if model.model != "exponential":
        raise ValueError("the closed form holds for the exponential threshold model only")
    p0 = model.threshold * math.exp((sink_temperature - model.reference_temperature) / model.t0)
    a = thermal_resistance * p0 / model.t0
    margin = math.inf if a == 0.0 else (1.0 / math.e) / a
    if a > 1.0 / math.e:
        return CWResult(False, None, a, margin)
    if a == 0.0:
        return CWResult(True, (p0, math.inf), a, margin)
    x_low = -lambertw(-a, 0).real
    x_high = -lambertw(-a, -1).real
    scale = model.t0 / thermal_resistance
    return CWResult(True, (x_low * scale, x_high * scale), a, margin)


def cw_window(
    steady_temperature: Callable[[float], float],
    model: ThresholdModel,
    pump_max: float,
    *,
    samples: int = 400,
) -> CWResult:
    """Numerical CW window for any steady film temperature T_ss(P) (K) of pump P (W/m^2).

    Samples g(P) = P - P_th(T_ss(P)) on a logarithmic grid up to ``pump_max`` and refines the sign
    changes with Brent's method. Assumes at most one window (g rises, then falls).
    """
    grid = np.geomspace(pump_max * 1e-4, pump_max, samples)
    g = np.array([p - float(model(steady_temperature(p))) for p in grid])
    ratio = float(np.max(grid / (grid - g)))
    ok = np.nonzero(g >= 0.0)[0]
    if ok.size == 0:
        return CWResult(False, None, math.nan, ratio)
    f = lambda p: p - float(model(steady_temperature(p)))  # noqa: E731
    i0, i1 = int(ok[0]), int(ok[-1])
    low = grid[i0] if i0 == 0 else brentq(f, grid[i0 - 1], grid[i0], xtol=1e-12, rtol=1e-12)
    if i1 == samples - 1:
        high = math.inf
    else:
        high = brentq(f, grid[i1], grid[i1 + 1], xtol=1e-12, rtol=1e-12)
    return CWResult(True, (float(low), float(high)), math.nan, ratio)


def lasing_heat_scale(
    intensity: float, threshold: float, heat_fraction: float, slope_efficiency: float
) -> float:
    """Factor on the heat source while the film lases: 1 - eta_s (I - P_th)/(eta_h I), in [0, 1].

    Args:
        intensity: Pump intensity I (W/m^2).
        threshold: Threshold P_th at the film's current temperature (W/m^2).
        heat_fraction: eta_h, the fraction of the incident pump that becomes heat without lasing.
        slope_efficiency: eta_s, laser power out per pump power above threshold.
    """
    if slope_efficiency == 0.0 or intensity <= threshold:
        return 1.0
    emitted = slope_efficiency * (intensity - threshold) / (heat_fraction * intensity)
    return max(0.0, 1.0 - emitted)


def steady_temperature_lasing(
    intensity: float,
    steady_temperature: Callable[[float], float],
    model: ThresholdModel,
    heat_fraction: float,
    slope_efficiency: float,
) -> float:
    """Steady film temperature (K) at pump ``intensity`` when the heat follows the lasing state.

    ``steady_temperature(s)`` is the steady film temperature with the pump's heat scaled by s
    (``T_sink + R I s`` for a linear device, a steady k(T) solve otherwise). The scale s* solves
    s = :func:`lasing_heat_scale` at P_th(T(s)); g(s) = s - scale(s) is <= 0 at s = 0 and >= 0 at
    s = 1, so Brent's method on [0, 1] finds it.
    """

    def g(s: float) -> float:
        t = steady_temperature(s)
        return s - lasing_heat_scale(intensity, float(model(t)), heat_fraction, slope_efficiency)

    if slope_efficiency == 0.0 or g(1.0) <= 0.0:
        return steady_temperature(1.0)
    return steady_temperature(float(brentq(g, 0.0, 1.0, xtol=1e-12)))
