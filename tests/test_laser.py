"""Threshold models, lasing duration and the CW criterion against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cqdlaser.geometry.config import load_device
from cqdlaser.physics.laser import (
    KW_CM2,
    ThresholdModel,
    cw_exponential,
    cw_window,
    fit_activation_energy,
    fit_t0,
    lasing_duration,
    thermal_resistance,
    threshold_model,
)


def test_t0_and_activation_energy_reproduce_the_paper_point() -> None:
    # 1.7x at ~60 C (333 K): T0 ~ 72 K and E_a ~ 78 meV (physics.md 1.5)
    t0 = fit_t0(1.7, 333.0)
    ea = fit_activation_energy(1.7, 333.0)
    assert t0 == pytest.approx(71.6, abs=0.1)
    assert ea == pytest.approx(0.078, abs=0.002)
    for model in (
        ThresholdModel(52 * KW_CM2, t0=t0),
        ThresholdModel(52 * KW_CM2, model="auger", activation_energy=ea),
    ):
        assert model(333.0) / model(295.0) == pytest.approx(1.7, rel=1e-12)
        assert model.temperature_at(88 * KW_CM2) == pytest.approx(
            333.0 if 88 / 52 == 1.7 else model.temperature_at(88 * KW_CM2)
        )
        assert float(model(model.temperature_at(88 * KW_CM2))) == pytest.approx(88 * KW_CM2)


def test_threshold_model_from_config() -> None:
    m = threshold_model(load_device(None, ["laser.model=auger", "laser.activation_energy_mev=50"]))
    assert m.model == "auger" and m.activation_energy == pytest.approx(0.05)
    assert m(295.0) == pytest.approx(52 * KW_CM2)


def test_lasing_duration_against_a_prescribed_history() -> None:
    # T(t) = T_s + dT (1 - exp(-t/tau)); P = P0 exp((T - T_s)/T0) crosses at
    # t* = -tau ln(1 - T0 ln(P/P0) / dT)
    model = ThresholdModel(52 * KW_CM2, t0=72.0)
    tau, dT, pump = 1e-6, 60.0, 88 * KW_CM2
    exact = -tau * math.log(1.0 - 72.0 * math.log(88 / 52) / dT)
    t = np.linspace(0.0, 5e-6, 20001)
    temp = 295.0 + dT * (1.0 - np.exp(-t / tau))
    got = lasing_duration(t, temp, pump, model, pulse=5e-6)
    assert got == pytest.approx(exact, rel=1e-6)
    # below threshold from the start, and lasing through the whole pulse
    assert lasing_duration(t, temp, 40 * KW_CM2, model, pulse=5e-6) is None
    assert lasing_duration(t, temp, 500 * KW_CM2, model, pulse=2.5e-6) == 2.5e-6


def test_cw_closed_form_is_the_lambert_w_window() -> None:
    model = ThresholdModel(52 * KW_CM2, t0=72.0)
    r = 0.2 / KW_CM2  # 0.2 K per kW/cm2
    res = cw_exponential(r, model)
    a = r * 52 * KW_CM2 / 72.0
    assert res.criterion == pytest.approx(a) and res.possible is (a <= 1 / math.e)
    low, high = res.pump_range
    # both ends lie exactly on threshold: P = P_th(T_sink + R P)
    for p in (low, high):
        assert p == pytest.approx(float(model(295.0 + r * p)), rel=1e-10)
    assert low < high
    # the numerical window finds the same range from T_ss(P) alone
    num = cw_window(lambda p: 295.0 + r * p, model, pump_max=1e5 * KW_CM2, samples=2000)
    assert num.pump_range == pytest.approx((low, high), rel=1e-8)
    # beyond the criterion there is no window, in both methods
    r_bad = 1.01 / math.e * 72.0 / (52 * KW_CM2)
    assert not cw_exponential(r_bad, model).possible
    assert not cw_window(lambda p: 295.0 + r_bad * p, model, pump_max=1e5 * KW_CM2).possible
    # at the criterion the window closes onto x = 1
    r_crit = (1 / math.e) * 72.0 / (52 * KW_CM2) * (1 - 1e-9)
    low, high = cw_exponential(r_crit, model).pump_range
    assert low == pytest.approx(high, rel=1e-3) and low * r_crit / 72.0 == pytest.approx(
        1, rel=1e-3
    )


def test_cw_sink_above_reference_shifts_threshold() -> None:
    model = ThresholdModel(52 * KW_CM2, t0=72.0, reference_temperature=295.0)
    cold = cw_exponential(0.1 / KW_CM2, model, sink_temperature=295.0)
    hot = cw_exponential(0.1 / KW_CM2, model, sink_temperature=315.0)
    assert hot.criterion == pytest.approx(cold.criterion * math.exp(20 / 72))


def test_emission_lowers_the_heat_while_lasing() -> None:
    from cqdlaser.physics.laser import lasing_heat_scale, steady_temperature_lasing

    model = ThresholdModel(52 * KW_CM2, t0=72.0)
    assert lasing_heat_scale(88 * KW_CM2, 52 * KW_CM2, 0.1, 0.0) == 1.0
    assert lasing_heat_scale(40 * KW_CM2, 52 * KW_CM2, 0.1, 0.05) == 1.0  # below threshold
    # eta_s (I - P_th) leaves as light: 0.05 * 36 / (0.1 * 88) of the heat
    assert lasing_heat_scale(88 * KW_CM2, 52 * KW_CM2, 0.1, 0.05) == pytest.approx(1 - 1.8 / 8.8)
    r = 0.2 / KW_CM2
    linear = lambda s: 295.0 + r * 80 * KW_CM2 * s  # noqa: E731
    plain = steady_temperature_lasing(80 * KW_CM2, linear, model, 0.1, 0.0)
    assert plain == pytest.approx(295.0 + r * 80 * KW_CM2)
    t = steady_temperature_lasing(80 * KW_CM2, linear, model, 0.1, 0.05)
    # self-consistent: T = T_sink + R I s(T), and cooler than without emission
    s = lasing_heat_scale(80 * KW_CM2, float(model(t)), 0.1, 0.05)
    assert t == pytest.approx(295.0 + r * 80 * KW_CM2 * s, abs=1e-8) and t < plain


def test_thermal_resistance_is_the_rise_per_intensity() -> None:
    """R = rise / I (K m^2/W): 44 K at 88 kW/cm^2 is 0.5 K cm^2/kW, and the closed-form CW
    criterion a = R P_th0 / T0 takes it as it is."""
    resistance = thermal_resistance(44.0, 88.0 * KW_CM2)
    assert resistance * KW_CM2 == pytest.approx(0.5, rel=1e-15)
    model = ThresholdModel(threshold=52.0 * KW_CM2, t0=72.0)
    assert cw_exponential(resistance, model).criterion == pytest.approx(0.5 * 52.0 / 72.0)
